"""A dense face mesh read off a whole UV position map, as PRNet builds its 43k-vertex meshes, and mesh export.

A UV position map stores the 3D point of every UV pixel (seed 003 eq. 10, ``Pos(u_i, v_i) = (x_i, y_i, z_i)``;
Feng et al., ECCV 2018, sec. 3.1). PRNet's mesh is the map itself: every pixel inside the face region is a vertex, and
each 2x2 block of such pixels gives two triangles, so the mesh has the map's full resolution and its UVs are the
pixels' own, so a UV texture of the same layout maps onto it exactly.

facehub's UV layout (:class:`~facehub.modeling.geometry.topology.FaceTopology`) keeps the face's aspect ratio, so its
footprint covers 45% of the square (7.5k pixels of a 128 px map, 30k of a 256 px one, against PRNet's 67%). The
grid is therefore ``subdivision`` times finer than the map: its points are the map's pixel centres plus
``subdivision - 1`` bilinear points between each pair of neighbours,

    ``u_k = (k / s + 1/2) / U``,  ``k = 0 .. s (U - 1)``  (the same for ``v``),

for a map of side ``U`` and subdivision ``s``. Every map pixel is a grid point whose position is exactly the map's
value; the points between are bilinear (the same interpolation :func:`~facehub.modeling.geometry.uv_maps.
uv_position_map_to_mesh` uses for the 468-vertex mesh). ``s = 2`` gives about 30k vertices from a 128 px map and 119k
from a 256 px one; ``s = 1`` is PRNet's one vertex per pixel.

The face region is the part of the grid the 468-vertex mesh covers in UV. Its three holes are the eye and mouth
openings: with ``openings="closed"`` their points are vertices too (the map is trained there: PRNet's weight mask
covers the eyes and mouth, and the training maps fill the holes by extending the surrounding triangles), with
``openings="open"`` they are left out. Either way :attr:`DenseMesh.in_opening` flags the vertices inside them.

Exported files (:func:`export_mesh`) use the right-handed y-up frame of OBJ / glTF viewers: ``(x, -y, z)``, triangles
re-wound so their fronts still face the viewer (+z), texture ``v`` flipped as OBJ and glTF readers expect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facehub.modeling.geometry.topology import FaceTopology, uv_orientation
from facehub.modeling.geometry.uv_maps import rasterize_uv

EXPORT_FORMATS = (".obj", ".ply", ".glb")
OPENING_MODES = ("closed", "open")


@dataclass(frozen=True, eq=False)
class DenseMesh:
    """A mesh with one vertex per grid point of a UV position map's face region (module docstring).

    Attributes:
        vertices: (N, 3) float32 positions, in the map's units (photo pixels for a reconstruction: x right, y down,
            z towards the camera).
        triangles: (F, 3) int64, two per 2x2 block of grid points (one where only three of the four are on the face),
            wound like the 468-vertex topology: fronts towards the camera on a frontal face.
        uvs: (N, 2) float32 each vertex's own UV in [0, 1]^2 (``v`` downwards, like image rows).
        grid_index: (N, 2) int64 ``(row, col)`` of each vertex on the grid; ``grid_index / subdivision`` is its
            position in map pixels (an integer pair: the vertex is that map pixel).
        in_opening: (N,) bool, the vertex lies in an eye or mouth opening (only possible with ``openings="closed"``).
        map_size: side ``U`` of the UV position map.
        subdivision: grid points per map pixel along each axis.
        colors: (N, 3) uint8 RGB per vertex, or ``None``.
        texture: (T, T, 3) uint8 UV texture in the same layout, or ``None``.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    uvs: np.ndarray
    grid_index: np.ndarray
    in_opening: np.ndarray
    map_size: int
    subdivision: int
    colors: np.ndarray | None = None
    texture: np.ndarray | None = None

    @property
    def grid_size(self) -> int:
        """Points along each side of the grid: ``subdivision * (map_size - 1) + 1``."""
        return grid_size(self.map_size, self.subdivision)

    def to_trimesh(self, textured: bool = True):
        """A ``trimesh.Trimesh`` in the export frame: UV-textured (needs ``texture``) or with vertex colours."""
        return mesh_to_trimesh(self.vertices, self.triangles, self.uvs, self.colors, self.texture, textured=textured)

    def export(self, path: str | Path) -> Path:
        """Write ``.obj`` (+ ``<name>.mtl`` and ``<name>.png``), ``.ply`` (vertex colours) or ``.glb`` (embedded
        texture); returns the path (:func:`export_mesh`)."""
        return export_mesh(path, self.vertices, self.triangles, self.uvs, self.colors, self.texture)


def grid_size(map_size: int, subdivision: int) -> int:
    """Points along each side of the grid of a ``map_size`` px map at ``subdivision``."""
    return int(subdivision) * (int(map_size) - 1) + 1


def grid_coordinates(map_size: int, subdivision: int) -> np.ndarray:
    """(G,) float64 UV coordinates ``u_k = (k / s + 1/2) / U`` of the grid's points along one axis."""
    return (np.arange(grid_size(map_size, subdivision)) / subdivision + 0.5) / map_size


def upsample_uv_map(uv_map: np.ndarray, subdivision: int) -> np.ndarray:
    """(U, U, C) map -> (G, G, C) float32 map on the grid: bilinear, and exactly the map at its own pixel centres."""
    uv_map = np.asarray(uv_map, dtype=np.float64)
    size = uv_map.shape[0]
    position = np.arange(grid_size(size, subdivision)) / subdivision  # in map pixel indices
    low = np.minimum(np.floor(position).astype(np.int64), size - 1)
    high = np.minimum(low + 1, size - 1)
    t = (position - low)[:, None, None]
    rows = uv_map[low] * (1.0 - t) + uv_map[high] * t
    t = t[None, :, :, 0]
    return (rows[:, low] * (1.0 - t) + rows[:, high] * t).astype(np.float32)


def grid_face_region(
    map_size: int, subdivision: int, topology: FaceTopology | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Which grid points lie on the face.

    Returns:
        ``covered`` (G, G) bool: the point lies on the 468-vertex mesh in UV (openings excluded), and ``openings``
        (G, G) bool: the point lies in one of the mesh's holes (the two eyes and the mouth).
    """
    from scipy.ndimage import binary_fill_holes

    topology = topology or FaceTopology.default()
    size = grid_size(map_size, subdivision)
    # Rescale the layout so that the grid's points are the pixel centres of a size x size raster.
    uvs = (np.asarray(topology.uvs, np.float64) * subdivision * map_size - 0.5 * subdivision + 0.5) / size
    covered = rasterize_uv(uvs, topology.triangles, size).face_index >= 0
    return covered, binary_fill_holes(covered) & ~covered


def grid_triangles(mask: np.ndarray, orientation: float = 1.0) -> np.ndarray:
    """(F, 3) int64 triangles of a grid, as flat indices ``row * G + col`` into the (G, G) ``mask``.

    Each 2x2 block ``(a b / c d)`` is split along ``b-c`` into ``(a, c, b)`` and ``(b, c, d)``; a triangle is kept
    when its three points are in ``mask``. ``orientation``: the sign of the doubled signed area in ``(u, v)`` the
    triangles should have (``(a, c, b)`` has -1: ``u`` along columns, ``v`` along rows); the other sign re-winds them.
    """
    mask = np.asarray(mask, dtype=bool)
    width = mask.shape[1]
    rows, cols = np.nonzero(mask[:-1, :-1] | mask[1:, 1:])  # a kept triangle has a or d among its corners' block
    a = rows * width + cols
    b, c, d = a + 1, a + width, a + width + 1
    flat = mask.ravel()
    candidates = np.concatenate([np.stack([a, c, b], axis=1), np.stack([b, c, d], axis=1)])
    triangles = candidates[flat[candidates].all(axis=1)]
    if orientation > 0:
        triangles = triangles[:, [0, 2, 1]]
    return triangles.astype(np.int64)


def dense_mesh_from_uv_position_map(
    uv_map: np.ndarray,
    *,
    subdivision: int = 2,
    openings: str = "closed",
    topology: FaceTopology | None = None,
    texture: np.ndarray | None = None,
    smoothing: float = 0.0,
) -> DenseMesh:
    """The dense mesh of a (U, U, 3) UV position map (module docstring).

    Args:
        uv_map: (U, U, 3) positions of the UV pixels (any units; a reconstruction's are photo pixels).
        subdivision: grid points per map pixel along each axis (1: one vertex per map pixel, as PRNet).
        openings: ``"closed"`` fills the eyes and mouth with vertices and triangles, ``"open"`` leaves them out.
        texture: (T, T, 3) uint8 UV texture of the same layout: kept on the mesh, and the vertex colours are read
            from it at the vertices' UVs (bilinear; at a map pixel of a texture of side U, exactly that texel).
        smoothing: Gaussian sigma, in map pixels, of a smoothing of the map inside the face's footprint before it is
            meshed (:func:`smooth_uv_map`); 0 (default) keeps the map's values exactly.
    """
    uv_map = np.asarray(uv_map)
    if uv_map.ndim != 3 or uv_map.shape[0] != uv_map.shape[1] or uv_map.shape[2] != 3:
        raise ValueError(f"Got a UV position map of shape {uv_map.shape}; expected (U, U, 3).")
    if openings not in OPENING_MODES:
        raise ValueError(f"Got {openings!r} for `openings`; use one of {', '.join(map(repr, OPENING_MODES))}.")
    if int(subdivision) != subdivision or subdivision < 1:
        raise ValueError(f"Got {subdivision!r} for `subdivision`; it must be a whole number of at least 1.")
    subdivision = int(subdivision)
    topology = topology or FaceTopology.default()
    size = uv_map.shape[0]
    covered, holes = grid_face_region(size, subdivision, topology)
    mask = covered | holes if openings == "closed" else covered
    orientation = float(np.sign(np.median(uv_orientation(topology.uvs, topology.triangles))))
    triangles = grid_triangles(mask, orientation)
    # Keep the points some triangle uses (a lone point on the region's rim would be an isolated vertex).
    used = np.unique(triangles)
    remap = np.full(mask.size, -1, np.int64)
    remap[used] = np.arange(len(used))
    rows, cols = np.divmod(used, mask.shape[1])
    if smoothing > 0:
        uv_map = smooth_uv_map(uv_map, smoothing, topology)
    grid = upsample_uv_map(uv_map, subdivision)
    coordinates = grid_coordinates(size, subdivision)
    uvs = np.stack([coordinates[cols], coordinates[rows]], axis=1).astype(np.float32)
    colors = None
    if texture is not None:
        texture = np.asarray(texture)
        colors = sample_texture(texture, uvs)
    return DenseMesh(
        vertices=grid[rows, cols].astype(np.float32),
        triangles=remap[triangles],
        uvs=uvs,
        grid_index=np.stack([rows, cols], axis=1),
        in_opening=holes[rows, cols],
        map_size=size,
        subdivision=subdivision,
        colors=colors,
        texture=texture,
    )


def smooth_uv_map(uv_map: np.ndarray, sigma: float, topology: FaceTopology | None = None) -> np.ndarray:
    """A Gaussian smoothing (``sigma`` in map pixels) of a (U, U, C) map over the face's UV footprint (holes
    filled), normalised by the footprint's own weight so that its rim is not pulled towards the values outside it;
    pixels off the footprint are returned unchanged.

    A network's map can carry pixel-scale noise that a 468-vertex mesh, sampling it every ~5 pixels, never shows but a
    mesh with a vertex per pixel turns into folds (on the embedded PRN-Dense default: 8% of the inner triangles
    face away from the camera unsmoothed, 1% at ``sigma = 1``).
    """
    from scipy.ndimage import gaussian_filter

    topology = topology or FaceTopology.default()
    uv_map = np.asarray(uv_map, dtype=np.float64)
    region = topology.footprint_mask(uv_map.shape[0])
    weight = gaussian_filter(region.astype(np.float64), sigma)
    smoothed = np.stack([gaussian_filter(uv_map[..., c] * region, sigma) for c in range(uv_map.shape[-1])], axis=-1)
    smoothed /= np.maximum(weight, 1e-12)[..., None]
    return np.where(region[..., None], smoothed, uv_map).astype(np.float32)


def sample_texture(texture: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 bilinear colours of a UV ``texture`` at (N, 2) UVs (texel centres at ``(j + 1/2) / T``)."""
    texture = np.asarray(texture, dtype=np.float64)
    side = texture.shape[0]
    position = np.clip(np.asarray(uvs, np.float64) * side - 0.5, 0, side - 1)
    low = np.minimum(np.floor(position).astype(np.int64), side - 1)
    high = np.minimum(low + 1, side - 1)
    t = position - low
    (c0, r0), (c1, r1), (tc, tr) = low.T, high.T, t.T[..., None]
    top = texture[r0, c0] * (1 - tc) + texture[r0, c1] * tc
    bottom = texture[r1, c0] * (1 - tc) + texture[r1, c1] * tc
    return np.clip(top * (1 - tr) + bottom * tr + 0.5, 0, 255).astype(np.uint8)


def mesh_to_trimesh(vertices, triangles, uvs, colors, texture, textured: bool = True):
    """A ``trimesh.Trimesh`` in the export frame (module docstring): UV-textured, or with vertex colours."""
    import trimesh
    from PIL import Image

    vertices = np.asarray(vertices, dtype=np.float64) * np.array([1.0, -1.0, 1.0])
    faces = np.asarray(triangles)[:, [0, 2, 1]]  # the y flip mirrors the mesh: keep fronts facing +z
    if textured:
        if texture is None:
            raise ValueError("This mesh has no texture; export it with vertex colours (.ply) instead.")
        material = trimesh.visual.material.SimpleMaterial(
            image=Image.fromarray(np.ascontiguousarray(texture)),
            diffuse=(255, 255, 255, 255), ambient=(255, 255, 255, 255), specular=(0, 0, 0, 255), name="face",
        )
        uv = np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], axis=1)  # OBJ / glTF texture v grows upwards
        visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    else:
        if colors is None:
            raise ValueError("This mesh has no vertex colours; export it with its texture (.obj or .glb) instead.")
        rgba = np.hstack([colors, np.full((len(colors), 1), 255, np.uint8)])
        visual = trimesh.visual.ColorVisuals(vertex_colors=rgba)
    return trimesh.Trimesh(vertices=vertices, faces=faces, visual=visual, process=False)


def export_mesh(path: str | Path, vertices, triangles, uvs, colors, texture) -> Path:
    """Write a mesh, format by extension: ``.obj`` (+ ``<name>.mtl`` and ``<name>.png`` texture beside it),
    ``.ply`` (vertex colours) or ``.glb`` (embedded texture). Returns the path written."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise ValueError(
            f"Cannot export {path.name!r}: unknown extension {path.suffix!r}; use one of {', '.join(EXPORT_FORMATS)}."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".obj":
        from trimesh.exchange.obj import export_obj

        mesh = mesh_to_trimesh(vertices, triangles, uvs, colors, texture, textured=True)
        mesh.visual.material.name = path.stem
        text, files = export_obj(
            mesh, include_normals=False, include_texture=True, return_texture=True, mtl_name=f"{path.stem}.mtl"
        )
        for name, data in files.items():
            (path.parent / name).write_bytes(data)
        path.write_text(text)
    elif suffix == ".ply":
        path.write_bytes(mesh_to_trimesh(vertices, triangles, uvs, colors, texture, textured=False).export(
            file_type="ply"))
    else:
        path.write_bytes(mesh_to_trimesh(vertices, triangles, uvs, colors, texture, textured=True).export(
            file_type="glb"))
    return path
