"""Differentiable face renderer on PyTorch3D's rasteriser, in the house frame (x right, y down, z to the camera).

Cameras project (B, V, 3) vertices to pixels ``(u, v)`` (continuous; pixel ``(row i, col j)`` has its centre at
``(j + 0.5, i + 0.5)``) and a positive view depth:

- :class:`OrthographicCamera`: ``u = c_x + s x``, ``v = c_y + s y``, depth ``-z`` (shifted positive);
- :class:`PerspectiveCamera`: camera at ``z = distance`` looking down -z, ``d = distance - z``,
  ``u = c_x + f x / d``, ``v = c_y + f y / d`` (Deep3DFaceRecon's set-up, y flipped to point down).

:class:`FaceRenderer` rasterises with ``pytorch3d.renderer.mesh.rasterize_meshes`` (one face per pixel, hard edges;
perspective-correct barycentrics for the perspective camera; tiled on the CPU, see :func:`rasterize_pixels`),
interpolates UVs, vertex normals, colours and z with
the barycentric weights, samples the UV albedo (``grid_sample``), shades with SH irradiance
(:func:`facehub.modeling.geometry.morphable.sh_shading`) and composites over a background. Gradients reach the
vertices through the barycentric weights and the normals, and reach albedo and lighting directly.
PyTorch3D is imported lazily, when a renderer first runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facehub.modeling.geometry.morphable import sh_shading, vertex_normals


@dataclass
class OrthographicCamera:
    """Pixels = ``center + scale * (x, y)``; ``scale`` in pixels per model unit (1 for meshes already in pixels)."""

    scale: float = 1.0
    center: tuple[float, float] = (0.0, 0.0)

    def project(self, vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        uv = vertices[..., :2] * self.scale + vertices.new_tensor(self.center)
        z = vertices[..., 2]
        depth = z.detach().amax(dim=-1, keepdim=True) + 1.0 - z  # positive, smaller = nearer
        return uv, depth

    perspective = False


@dataclass
class PerspectiveCamera:
    """Pinhole camera at ``z = distance`` looking towards -z; ``focal`` in pixels."""

    focal: float
    center: tuple[float, float]
    distance: float

    def project(self, vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        depth = self.distance - vertices[..., 2]
        uv = self.focal * vertices[..., :2] / depth[..., None] + vertices.new_tensor(self.center)
        return uv, depth

    perspective = True


@dataclass
class RenderOutput:
    """image (B, 3, H, W) in [0, 1] over the background; mask (B, 1, H, W) 1 on the face; depth (B, 1, H, W): the
    surface's z in the house frame (grows towards the camera), 0 off the face; face_index (B, H, W), -1 off it."""

    image: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    face_index: torch.Tensor


class FaceRenderer(torch.nn.Module):
    """Render triangle meshes with UV or per-vertex albedo and SH lighting; see the module docstring."""

    def __init__(self, image_size: int | tuple[int, int] = 128):
        super().__init__()
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)

    def rasterize(self, vertices: torch.Tensor, triangles: torch.Tensor, camera):
        """(B, V, 3) vertices -> (B, H, W) triangle index per pixel (-1 off the mesh), (B, H, W, 3) barycentrics
        (0 off the mesh).

        When no gradient has to reach the vertices (they do not require one, or autograd is off) an orthographic
        render on the CPU is rasterised by :func:`facehub.modeling.geometry.zbuffer.rasterize_zbuffer`, which draws the
        same pixels as PyTorch3D several times faster on face meshes; gradients to albedo and lighting are
        unaffected, since they do not pass through the rasterisation.
        """
        uv, depth = camera.project(vertices)
        needs_gradient = torch.is_grad_enabled() and uv.requires_grad
        if needs_gradient or camera.perspective or uv.is_cuda:
            return rasterize_pixels(uv, depth, triangles, self.image_size, perspective=camera.perspective)
        from facehub.modeling.geometry.zbuffer import rasterize_zbuffer

        drawn = [rasterize_zbuffer(points.numpy(), -far.numpy(), triangles, self.image_size)
                 for points, far in zip(uv.detach(), depth.detach(), strict=True)]
        face_index = torch.from_numpy(np.stack([index for index, _ in drawn]))
        barycentric = torch.from_numpy(np.stack([weights for _, weights in drawn])).to(uv.dtype)
        return face_index, barycentric

    @staticmethod
    def interpolate(attributes: torch.Tensor, triangles: torch.Tensor, face_index: torch.Tensor, bary: torch.Tensor):
        """(B, V, C) vertex attributes -> (B, H, W, C) barycentric interpolation (0 off the mesh)."""
        b, h, w = face_index.shape
        corners = triangles[face_index.clamp(min=0)]  # (B, H, W, 3)
        batch = torch.arange(b, device=attributes.device).view(b, 1, 1, 1)
        values = attributes[batch, corners]  # (B, H, W, 3, C)
        out = (values * bary[..., None]).sum(dim=-2)
        return out * (face_index >= 0)[..., None]

    def forward(self, vertices: torch.Tensor, triangles: torch.Tensor, camera, *, uvs: torch.Tensor | None = None,
                albedo_texture: torch.Tensor | None = None, vertex_colors: torch.Tensor | None = None,
                sh_coeffs: torch.Tensor | None = None, background: torch.Tensor | None = None) -> RenderOutput:
        """Render (B, V, 3) ``vertices`` (house frame, in the camera's coordinates).

        Args:
            uvs, albedo_texture: (V, 2) UVs and (B, 3, T, T) UV albedo; or ``vertex_colors`` (B, V, 3); else grey 0.7.
            sh_coeffs: (B, 3, 9) or (B, 27) SH lighting; None = unlit (the albedo itself).
            background: (B, 3, H, W) in [0, 1]; None = black.
        """
        face_index, bary = self.rasterize(vertices, triangles, camera)
        return self.shade(vertices, triangles, face_index, bary, uvs=uvs, albedo_texture=albedo_texture,
                          vertex_colors=vertex_colors, sh_coeffs=sh_coeffs, background=background)

    def shade(self, vertices: torch.Tensor, triangles: torch.Tensor, face_index: torch.Tensor, bary: torch.Tensor, *,
              uvs: torch.Tensor | None = None, albedo_texture: torch.Tensor | None = None,
              vertex_colors: torch.Tensor | None = None, sh_coeffs: torch.Tensor | None = None,
              background: torch.Tensor | None = None) -> RenderOutput:
        """The second half of :meth:`forward`: colour the pixels of a rasterisation already made (``face_index``
        (B, H, W), ``bary`` (B, H, W, 3); e.g. by the faster, non-differentiable
        :func:`facehub.modeling.geometry.zbuffer.rasterize_zbuffer` when no gradient has to reach the vertices)."""
        b = vertices.shape[0]
        h, w = face_index.shape[1:]
        mask = (face_index >= 0).unsqueeze(1).to(vertices.dtype)
        attrs = [vertices[..., 2:3]]
        if sh_coeffs is not None:
            attrs.append(vertex_normals(vertices, triangles))
        if albedo_texture is not None:
            attrs.append(uvs.to(vertices.dtype).expand(b, -1, -1))
        elif vertex_colors is not None:
            attrs.append(vertex_colors)
        per_pixel = self.interpolate(torch.cat(attrs, dim=-1), triangles, face_index, bary)
        depth = per_pixel[..., 0].unsqueeze(1)
        k = 1
        normals = None
        if sh_coeffs is not None:
            normals = F.normalize(per_pixel[..., 1:4], dim=-1, eps=1e-12)
            k = 4
        if albedo_texture is not None:
            grid = per_pixel[..., k:k + 2] * 2.0 - 1.0
            color = F.grid_sample(albedo_texture, grid, mode="bilinear", padding_mode="border", align_corners=False)
        elif vertex_colors is not None:
            color = per_pixel[..., k:k + 3].permute(0, 3, 1, 2)
        else:
            color = torch.full((b, 3, h, w), 0.7, dtype=vertices.dtype, device=vertices.device)
        if normals is not None:
            color = color * sh_shading(normals, sh_coeffs).permute(0, 3, 1, 2)
        if background is None:
            background = torch.zeros_like(color)
        image = mask * color + (1.0 - mask) * background
        return RenderOutput(image=image, mask=mask, depth=depth * mask, face_index=face_index)


def _rasterize_window(uv: torch.Tensor, depth: torch.Tensor, triangles: torch.Tensor, size: tuple[int, int],
                      perspective: bool, bin_size: int | None):
    """One ``rasterize_meshes`` call over an (h, w) window whose top-left pixel corner is uv (0, 0)."""
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    h, w = size
    half = min(h, w) / 2.0
    # PyTorch3D NDC: +X left, +Y up, the shorter image side spans [-1, 1].
    ndc = torch.stack([(w / 2.0 - uv[..., 0]) / half, (h / 2.0 - uv[..., 1]) / half, depth], dim=-1)
    meshes = Meshes(verts=list(ndc), faces=[triangles] * len(ndc))
    pix_to_face, _, bary, _ = rasterize_meshes(
        meshes, image_size=(h, w), blur_radius=0.0, faces_per_pixel=1, bin_size=bin_size,
        perspective_correct=perspective, cull_backfaces=False,
    )
    num_faces = triangles.shape[0]
    local = torch.where(pix_to_face[..., 0] >= 0, pix_to_face[..., 0] % num_faces, -1)
    return local, torch.where((local >= 0)[..., None], bary[..., 0, :], 0.0)  # PyTorch3D writes -1 off the mesh


def rasterize_pixels(uv: torch.Tensor, depth: torch.Tensor, triangles: torch.Tensor, size: tuple[int, int], *,
                     perspective: bool = False, tile: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-buffer (B, V) meshes already projected to pixels: one triangle per pixel, the one of smallest ``depth``.

    ``uv`` (B, V, 2) are pixel positions (pixel ``(row i, col j)`` has its centre at ``(j + 0.5, i + 0.5)``),
    ``depth`` (B, V) positive view depths, ``triangles`` (F, 3). On CUDA this is one binned PyTorch3D call. On the
    CPU PyTorch3D has only its naive rasteriser, which tests every pixel against every triangle; rasterising
    ``tile``-pixel squares with only the triangles whose box overlaps each gives the same triangle ids and
    barycentrics (a triangle outside a square's box covers none of its pixel centres) for far fewer tests: a
    profiling-augmented 160 px training face of ``prn-dense-default.yaml`` (two renders) takes about 85 ms instead of
    235. Barycentrics stay differentiable with respect to ``uv`` and ``depth``.

    Returns:
        (B, H, W) int64 triangle index per pixel (-1 where none) and (B, H, W, 3) barycentric weights (0 where
        none).
    """
    h, w = size
    if uv.is_cuda:
        return _rasterize_window(uv, depth, triangles, (h, w), perspective, None)
    batch = uv.shape[0]
    face_index = torch.full((batch, h, w), -1, dtype=torch.int64)
    barycentric = uv.new_zeros((batch, h, w, 3))
    corners = uv.detach()[:, triangles]  # (B, F, 3, 2)
    low, high = corners.amin(dim=2), corners.amax(dim=2)
    for b in range(batch):
        for ty in range(0, h, tile):
            for tx in range(0, w, tile):
                ey, ex = min(ty + tile, h), min(tx + tile, w)
                chosen = torch.nonzero(
                    (low[b, :, 0] < ex) & (high[b, :, 0] > tx) & (low[b, :, 1] < ey) & (high[b, :, 1] > ty)
                ).flatten()
                if len(chosen) == 0:
                    continue
                local, bary = _rasterize_window(
                    uv[b : b + 1] - uv.new_tensor([tx, ty]), depth[b : b + 1], triangles[chosen], (ey - ty, ex - tx),
                    perspective, 0,
                )
                face_index[b, ty:ey, tx:ex] = torch.where(local[0] >= 0, chosen[local[0].clamp(min=0)], -1)
                barycentric[b, ty:ey, tx:ex] = bary[0]
    return face_index, barycentric


def rasterize_tiled(
    vertices: np.ndarray, triangles: np.ndarray, box: tuple[int, int, int, int], tile: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise output-pixel ``vertices`` (V, 3) over ``box = (x0, y0, x1, y1)`` (orthographic, z-buffered:
    larger z is nearer) with :func:`rasterize_pixels`.

    Returns:
        (h, w) int64 triangle index per pixel (-1 where none) and (h, w, 3) float32 barycentric weights.
    """
    x0, y0, x1, y1 = box
    points = torch.from_numpy(np.asarray(vertices, dtype=np.float32))
    uv = points[None, :, :2] - points.new_tensor([float(x0), float(y0)])
    depth = points[None, :, 2].amax() + 1.0 - points[None, :, 2]
    with torch.no_grad():
        face_index, barycentric = rasterize_pixels(
            uv, depth, torch.from_numpy(np.asarray(triangles, dtype=np.int64)), (y1 - y0, x1 - x0), tile=tile
        )
    return face_index[0].numpy(), barycentric[0].numpy()
