"""Conversions between a dense face mesh and a PRNet-style UV position map.

A UV position map (Feng et al., "Joint 3D Face Reconstruction and Dense Alignment with Position Map Regression
Network", ECCV 2018, Sec. 3.1; seed 003, Sec. 2.4) is an image in the mesh's UV space whose pixel ``(v, u)`` stores
the 3D position ``(x, y, z)`` of the surface point with those UV coordinates: ``Pos(u_i, v_i) = (x_i, y_i, z_i)``.

- mesh -> map (:func:`mesh_to_uv_position_map`): the mesh is rasterised in UV space and each pixel centre gets the
  barycentric interpolation of its triangle's vertex positions, which is exact on the mesh's own (flat) triangles.
  Pixels just outside the footprint and in its holes (eyes, mouth) get the linear extension of the nearest
  triangle, so that bilinear sampling at boundary vertices stays exact to first order.
- map -> mesh (:func:`uv_position_map_to_mesh`): bilinear sampling at the vertex UVs with
  ``torch.nn.functional.grid_sample``, differentiable with respect to the map.

Pixel convention: pixel ``(row i, column j)`` of a ``size`` x ``size`` map has its centre at
``u = (j + 0.5) / size``, ``v = (i + 0.5) / size`` (``grid_sample(..., align_corners=False)``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facehub.modeling.geometry.topology import FaceTopology, mirror_vertex_map


@dataclass(frozen=True, eq=False)
class UVRasterization:
    """Which triangle each UV pixel samples, and where.

    Attributes:
        face_index: (S, S) int64 triangle per pixel, -1 where the map is left empty (0).
        barycentric: (S, S, 3) float32 weights of the triangle's vertices (may be < 0 in the filled band).
        covered: (S, S) bool, True where the pixel centre lies on the mesh itself.
    """

    face_index: np.ndarray
    barycentric: np.ndarray
    covered: np.ndarray


def _barycentric(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(..., 3) barycentric coordinates of (..., 2) ``points`` w.r.t. (..., 3, 2) triangle ``corners``."""
    a, b, c = corners[..., 0, :], corners[..., 1, :], corners[..., 2, :]
    v0, v1, v2 = b - a, c - a, points - a
    den = v0[..., 0] * v1[..., 1] - v1[..., 0] * v0[..., 1]
    den = np.where(np.abs(den) < 1e-20, 1e-20, den)
    w1 = (v2[..., 0] * v1[..., 1] - v1[..., 0] * v2[..., 1]) / den
    w2 = (v0[..., 0] * v2[..., 1] - v2[..., 0] * v0[..., 1]) / den
    return np.stack([1.0 - w1 - w2, w1, w2], axis=-1)


def rasterize_uv(uvs: np.ndarray, triangles: np.ndarray, size: int, fill_band: int = 0) -> UVRasterization:
    """Rasterise a mesh's UV layout on a ``size`` x ``size`` grid of pixel centres (exact, vectorised per triangle).

    Args:
        uvs: (V, 2) UVs in [0, 1]^2. triangles: (F, 3) vertex indices.
        fill_band: also assign pixels in the footprint's holes and up to this many pixels outside it to the nearest
            covered pixel's triangle, with extrapolated barycentric weights (a linear extension of the mesh).
    """
    key = (hashlib.sha1(np.ascontiguousarray(uvs, dtype=np.float64).tobytes()).hexdigest(),
           hashlib.sha1(np.ascontiguousarray(triangles, dtype=np.int64).tobytes()).hexdigest(), int(size), int(fill_band))
    if key not in _RASTER_CACHE:
        if len(_RASTER_CACHE) >= 16:
            _RASTER_CACHE.pop(next(iter(_RASTER_CACHE)))
        _RASTER_CACHE[key] = _rasterize_uv(np.asarray(uvs, np.float64), np.asarray(triangles, np.int64), size, fill_band)
    return _RASTER_CACHE[key]


_RASTER_CACHE: dict[tuple, UVRasterization] = {}


def _rasterize_uv(uvs: np.ndarray, triangles: np.ndarray, size: int, fill_band: int) -> UVRasterization:
    pix = uvs * size - 0.5  # UV -> continuous pixel index of centres
    face_index = np.full((size, size), -1, dtype=np.int64)
    bary = np.zeros((size, size, 3), dtype=np.float64)
    corners_all = pix[triangles]  # (F, 3, 2) as (col, row)
    lo = np.clip(np.ceil(corners_all.min(axis=1) - 1e-9), 0, size - 1).astype(np.int64)
    hi = np.clip(np.floor(corners_all.max(axis=1) + 1e-9), 0, size - 1).astype(np.int64)
    eps = 1e-7
    for f in range(len(triangles)):
        (c0, r0), (c1, r1) = lo[f], hi[f]
        if c1 < c0 or r1 < r0:
            continue
        cols, rows = np.meshgrid(np.arange(c0, c1 + 1), np.arange(r0, r1 + 1), indexing="xy")
        points = np.stack([cols, rows], axis=-1).astype(np.float64)
        w = _barycentric(points, np.broadcast_to(corners_all[f], points.shape[:-1] + (3, 2)))
        inside = (w >= -eps).all(axis=-1)
        face_index[rows[inside], cols[inside]] = f
        bary[rows[inside], cols[inside]] = w[inside]
    covered = face_index >= 0
    if fill_band > 0 and covered.any():
        from scipy.ndimage import binary_dilation, binary_fill_holes, distance_transform_edt

        target = binary_dilation(binary_fill_holes(covered), iterations=fill_band) & ~covered
        _, (near_r, near_c) = distance_transform_edt(~covered, return_indices=True)
        rows, cols = np.nonzero(target)
        faces = face_index[near_r[rows, cols], near_c[rows, cols]]
        points = np.stack([cols, rows], axis=-1).astype(np.float64)
        face_index[rows, cols] = faces
        bary[rows, cols] = _barycentric(points, corners_all[faces])
    return UVRasterization(face_index, bary.astype(np.float32), covered)


def mesh_to_uv_position_map(
    vertices: np.ndarray | torch.Tensor,
    size: int = 256,
    topology: FaceTopology | None = None,
    fill_band: int = 2,
) -> np.ndarray | torch.Tensor:
    """Render per-vertex attributes (usually xyz positions) into a UV position map.

    Args:
        vertices: (V, C) numpy array -> (size, size, C) float32 array (PRNet's HWC layout); or a torch tensor
            (V, C) -> (C, size, size) / (B, V, C) -> (B, C, size, size), differentiable w.r.t. the vertices.
        size: map side in pixels (PRNet uses 256).
        topology: mesh topology (default: the MediaPipe 468-vertex mesh).
        fill_band: pixels around the footprint (and in its holes) filled by linear extension; 0 leaves them at 0.
    """
    topology = topology or FaceTopology.default()
    raster = rasterize_uv(topology.uvs, topology.triangles, size, fill_band)
    valid = raster.face_index >= 0
    corner_ids = topology.triangles[np.where(valid, raster.face_index, 0)]  # (S, S, 3)
    if isinstance(vertices, torch.Tensor):
        squeeze = vertices.dim() == 2
        verts = vertices[None] if squeeze else vertices
        ids = torch.as_tensor(corner_ids, device=verts.device)
        w = torch.as_tensor(raster.barycentric * valid[..., None], device=verts.device, dtype=verts.dtype)
        out = (verts[:, ids] * w[None, ..., None]).sum(dim=-2)  # (B, S, S, C)
        out = out.permute(0, 3, 1, 2).contiguous()
        return out[0] if squeeze else out
    verts = np.asarray(vertices, dtype=np.float32)
    out = (verts[corner_ids] * raster.barycentric[..., None]).sum(axis=-2)
    return np.where(valid[..., None], out, 0.0).astype(np.float32)


def uv_position_map_to_mesh(
    uv_map: np.ndarray | torch.Tensor, uvs: np.ndarray | torch.Tensor | None = None
) -> np.ndarray | torch.Tensor:
    """Sample a UV map bilinearly at the vertex UVs (``grid_sample``, ``align_corners=False``).

    Args:
        uv_map: (S, S, C) numpy array -> (V, C) array; or a tensor (C, S, S) -> (V, C) / (B, C, S, S) -> (B, V, C),
            differentiable w.r.t. the map.
        uvs: (V, 2) UVs in [0, 1]^2 (default: the MediaPipe mesh's layout).
    """
    if uvs is None:
        uvs = FaceTopology.default().uvs
    as_numpy = not isinstance(uv_map, torch.Tensor)
    maps = torch.from_numpy(np.asarray(uv_map, np.float32)).permute(2, 0, 1) if as_numpy else uv_map
    squeeze = maps.dim() == 3
    maps = maps[None] if squeeze else maps
    grid = torch.as_tensor(np.asarray(uvs) if not isinstance(uvs, torch.Tensor) else uvs, dtype=maps.dtype,
                           device=maps.device) * 2.0 - 1.0
    grid = grid[None, None].expand(maps.shape[0], 1, -1, 2)
    out = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0]
    out = out.permute(0, 2, 1)  # (B, V, C)
    if squeeze:
        out = out[0]
    return out.numpy() if as_numpy else out


def mirror_uv_position_map(flipped_map: np.ndarray, width: float, topology: FaceTopology | None = None) -> np.ndarray:
    """The UV position map of a face, read from the map of the same face seen in the image flipped left-right.

    Flipping an image takes pixel column ``j`` to ``W - 1 - j``, so x to ``W - x`` (pixel centres at ``j + 0.5``), and
    shows each surface point as its mirror partner (:func:`~facehub.modeling.geometry.topology.mirror_vertex_map`):
    the face's point at UV ``p`` is, in the flipped image, the point at the partner's UV ``sigma(p)``. ``sigma`` is
    piecewise linear: a point with barycentric weights ``w`` in triangle ``(a, b, c)`` of the layout goes to
    ``w . (uv[m[a]], uv[m[b]], uv[m[c]])`` (the layout is only nearly symmetric, so ``sigma`` is not ``u -> 1 - u``;
    pixels beyond the band around the footprint use that symmetric guess).

    Args:
        flipped_map: (S, S, C >= 1) map predicted on the flipped image; channel 0 is x.
        width: the flipped image's width in the map's x units (a crop's side for a crop-space map).
        topology: mesh topology (default: the MediaPipe 468-vertex mesh).

    Returns:
        (S, S, C) float32: the map of the unflipped face, in the unflipped image's units.
    """
    import cv2

    topology = topology or FaceTopology.default()
    sample = _mirror_sampling(topology, int(flipped_map.shape[0]))
    flipped_map = np.ascontiguousarray(flipped_map, dtype=np.float32)
    out = cv2.remap(flipped_map, sample[..., 0], sample[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = out.reshape(flipped_map.shape)
    out[..., 0] = width - out[..., 0]
    return out


_MIRROR_CACHE: dict[tuple, np.ndarray] = {}


def _mirror_sampling(topology: FaceTopology, size: int) -> np.ndarray:
    """(S, S, 2) float32 (column, row) in a ``size`` map of each pixel's mirror point ``sigma(p)``
    (:func:`mirror_uv_position_map`), cached per layout and size."""
    key = (hashlib.sha1(np.ascontiguousarray(topology.uvs, dtype=np.float64).tobytes()).hexdigest(), size)
    if key not in _MIRROR_CACHE:
        partner = mirror_vertex_map()
        if len(partner) != topology.num_vertices:
            raise ValueError(f"The mirror map pairs the default model's {len(partner)} vertices; this topology has "
                             f"{topology.num_vertices}.")
        raster = rasterize_uv(topology.uvs, topology.triangles, size, fill_band=4)
        partner_uvs = np.asarray(topology.uvs, np.float64)[partner]
        valid = raster.face_index >= 0
        corners = topology.triangles[np.where(valid, raster.face_index, 0)]  # (S, S, 3)
        mirrored = (partner_uvs[corners] * raster.barycentric[..., None]).sum(axis=-2)
        centres = (np.arange(size) + 0.5) / size
        u, v = np.meshgrid(centres, centres)
        mirrored = np.where(valid[..., None], mirrored, np.stack([1.0 - u, v], axis=-1))
        if len(_MIRROR_CACHE) >= 8:
            _MIRROR_CACHE.pop(next(iter(_MIRROR_CACHE)))
        _MIRROR_CACHE[key] = (mirrored * size - 0.5).astype(np.float32)  # continuous pixel index, as cv2.remap reads
    return _MIRROR_CACHE[key]
