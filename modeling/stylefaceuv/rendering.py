"""StyleFaceUV's detailed face (seed 004, Sec. 3.3): the morphable model's face of F_3D's coefficients, refined by
the UV generator's two maps, rendered in the aligned frame of the 2D generator's images.

**The mesh.** The project's morphable model has 468 vertices (MediaPipe's topology): too few to carry a
displacement map's detail. :class:`DetailedFaceRenderer` therefore renders a dense mesh read off the UV layout at
``mesh_resolution`` (default 128): every pixel centre of a ``128 x 128`` UV raster that lies on the face (eyes and
mouth closed) is a vertex, about 7,400 of them with 14,600 triangles (two per 2x2 block, as
:mod:`facehub.modeling.geometry.dense_mesh` builds PRN-Dense's meshes), and its position is the barycentric
combination of the coarse triangle it lies on, so the dense mesh is exactly the morphable model's surface.

**The maps.** The diffuse map (B, 3, T, T) in [0, 1] takes the place of the morphable model's albedo; the
displacement map (B, 1, T, T) moves each dense vertex along its normal (in the model's millimetres) before posing:
``v' = v + D(u, v) n(v)``. :func:`uv_maps` turns the UV generator's 4-channel output into the two. The diffuse map is
a residual over the morphable model's albedo of F_3D's identity, ``A(alpha) + x_rgb / 2`` clamped (our choice: the
paper's generator starts from the backbone's weights, whose image-space output means nothing in UV space; with its
ToRGB layers at zero, ours starts exactly at the morphable model's face and learns only what that lacks; a
from-scratch map needed far longer to catch up with the albedo in oracle runs). The displacement is
``max_displacement * tanh(x_d)`` (the paper's scale is not in our text; ``max_displacement`` defaults to 5 mm,
wrinkles and nasal lines).

**Rendering** (eq. 5's ``I_render``): the displaced mesh is posed and placed by the same similarity as
:class:`~facehub.modeling.disco_facegan.FactorRenderer` (its five points onto the ArcFace template), rasterised by
the fast z-buffer, and its barycentric weights recomputed from the vertices so the image is differentiable in both
maps (through the texture lookup, and through the normals and positions the displacement moves); SH lighting as
everywhere else (:class:`~facehub.modeling.geometry.FaceRenderer`).

**The symmetric view's weights** (eq. 8-9, :func:`symmetric_view_weights`): "For both masks, the texels' values are
set to 1 if they are accessed by the renderer and 0 otherwise. We override the values ... for the symmetric view if
the texels are also accessed by the original view." A texel is accessed when a face pixel of that render looks it
up. The override value is lost in our text of the paper: ``overlap_weight`` (default 0.5) is ours. Each pixel's
weight is its texel's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: Displacement range (model mm) of :func:`uv_maps` (our choice; see the module docstring).
MAX_DISPLACEMENT = 5.0
#: The weight of a symmetric-view texel that the original view also sees (our choice; see the module docstring).
OVERLAP_WEIGHT = 0.5


@dataclass
class DetailedRender:
    """What :meth:`DetailedFaceRenderer.render` returns (B renders of S x S pixels).

    Attributes:
        image: (B, 3, S, S) in [-1, 1], black (-1) off the face. mask: (B, 1, S, S) 1 on the face.
        texel_uv: (B, S, S, 2) the UV coordinates each face pixel looks up (0 off the face).
        vertices: (B, N, 3) the displaced dense mesh in the aligned frame (pixels). landmarks68: (B, 68, 2).
        face_index: (B, S, S) dense triangle per pixel, -1 off the face.
    """

    image: torch.Tensor
    mask: torch.Tensor
    texel_uv: torch.Tensor
    vertices: torch.Tensor
    landmarks68: torch.Tensor
    face_index: torch.Tensor


def uv_maps(output: torch.Tensor, base_albedo: torch.Tensor,
            max_displacement: float = MAX_DISPLACEMENT) -> tuple[torch.Tensor, torch.Tensor]:
    """The UV generator's (B, 4, T, T) output over a (B, 3, T, T) base albedo -> diffuse map (B, 3, T, T) in
    [0, 1], displacement (B, 1, T, T) mm (module docstring)."""
    if output.ndim != 4 or output.shape[1] != 4:
        raise ValueError(f"Expected the UV generator's (B, 4, T, T) output; got {tuple(output.shape)}.")
    if base_albedo.shape[0] != output.shape[0] or base_albedo.shape[1:] != (3, *output.shape[-2:]):
        raise ValueError(f"The base albedo {tuple(base_albedo.shape)} does not match the output "
                         f"{tuple(output.shape)}: expected (B, 3, T, T).")
    diffuse = (base_albedo + 0.5 * output[:, :3]).clamp(0.0, 1.0)
    return diffuse, max_displacement * torch.tanh(output[:, 3:4])


def _barycentric(points: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """(..., 3) barycentric weights of (..., 2) points in (..., 3, 2) triangles (differentiable in the corners)."""
    a, b, c = corners[..., 0, :], corners[..., 1, :], corners[..., 2, :]
    v0, v1, v2 = b - a, c - a, points - a
    den = v0[..., 0] * v1[..., 1] - v1[..., 0] * v0[..., 1]
    den = torch.where(den.abs() < 1e-12, torch.full_like(den, 1e-12), den)
    w1 = (v2[..., 0] * v1[..., 1] - v1[..., 0] * v2[..., 1]) / den
    w2 = (v0[..., 0] * v2[..., 1] - v2[..., 0] * v0[..., 1]) / den
    return torch.stack([1.0 - w1 - w2, w1, w2], dim=-1)


class DetailedFaceRenderer(torch.nn.Module):
    """Render coefficients with a diffuse and a displacement UV map (module docstring).

    Args:
        image_size: side of the renders (the 2D generator's resolution).
        mesh_resolution: side of the UV raster whose face pixels are the dense mesh's vertices.
        face_model: the morphable model (default: the project's).
    """

    def __init__(self, image_size: int = 64, mesh_resolution: int = 128, face_model=None):
        super().__init__()
        from scipy.ndimage import binary_fill_holes

        from facehub.modeling.disco_facegan.rendering import FactorRenderer
        from facehub.modeling.geometry.dense_mesh import grid_triangles
        from facehub.modeling.geometry.topology import uv_orientation
        from facehub.modeling.geometry.uv_maps import rasterize_uv

        if not 16 <= int(mesh_resolution) <= 512:
            raise ValueError(f"Got {mesh_resolution} for `mesh_resolution`; expected 16 to 512.")
        self.coarse = FactorRenderer(image_size, face_model)
        self.image_size, self.mesh_resolution = int(image_size), int(mesh_resolution)
        model = self.coarse.face_model
        uvs = model.uvs.detach().cpu().numpy().astype(np.float64)
        triangles = model.triangles.detach().cpu().numpy()
        size = self.mesh_resolution
        raster = rasterize_uv(uvs, triangles, size, fill_band=2)
        region = binary_fill_holes(raster.covered) & (raster.face_index >= 0)  # eyes and mouth closed
        rows, cols = np.nonzero(region)
        index = np.full((size, size), -1, dtype=np.int64)
        index[rows, cols] = np.arange(len(rows))
        orientation = float(np.sign(np.median(uv_orientation(uvs, triangles))))
        dense_triangles = index.ravel()[grid_triangles(region, orientation)]
        self.register_buffer("coarse_corners", torch.as_tensor(triangles[raster.face_index[rows, cols]]))
        self.register_buffer("coarse_weights", torch.as_tensor(raster.barycentric[rows, cols], dtype=torch.float32))
        self.register_buffer("uvs", torch.as_tensor(np.stack([(cols + 0.5) / size, (rows + 0.5) / size], axis=1),
                                                    dtype=torch.float32))
        self.register_buffer("triangles", torch.as_tensor(dense_triangles, dtype=torch.int64))

    @property
    def num_vertices(self) -> int:
        return int(self.uvs.shape[0])

    def dense_shape(self, lam: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, N, 3) the dense mesh of ``S(alpha, beta)`` in the model's frame (on the morphable model's surface)."""
        shape = self.coarse.shape(lam)
        return (shape[:, self.coarse_corners] * self.coarse_weights[None, :, :, None]).sum(dim=2)

    def albedo_map(self, lam: dict[str, torch.Tensor], size: int) -> torch.Tensor:
        """(B, 3, size, size) the morphable model's albedo of the coefficients' identity, as a UV map."""
        albedo = self.coarse.face_model.albedo(lam["identity"][:, self.coarse.num_identity:])
        if albedo.shape[-1] != size:
            albedo = F.interpolate(albedo, size=(size, size), mode="area" if albedo.shape[-1] > size else "bilinear")
        return albedo

    def maps(self, output: torch.Tensor, lam: dict[str, torch.Tensor],
             max_displacement: float = MAX_DISPLACEMENT) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`uv_maps` of the UV generator's output over the albedo of ``lam``'s identity."""
        return uv_maps(output, self.albedo_map(lam, output.shape[-1]), max_displacement)

    def displace(self, vertices: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
        """Dense (B, N, 3) vertices moved along their unit normals by the (B, 1, T, T) displacement map (mm)."""
        from facehub.modeling.geometry.morphable import vertex_normals

        grid = (self.uvs * 2.0 - 1.0).to(displacement.dtype)[None, None].expand(len(vertices), -1, -1, -1)
        amount = F.grid_sample(displacement, grid, mode="bilinear", padding_mode="border", align_corners=False)
        normals = vertex_normals(vertices, self.triangles)
        return vertices + amount[:, 0, 0, :, None] * normals

    def render(self, lam: dict[str, torch.Tensor], diffuse: torch.Tensor | None = None,
               displacement: torch.Tensor | None = None) -> DetailedRender:
        """Render coefficients (pose in radians) with a (B, 3, T, T) diffuse map in [0, 1] (default: the morphable
        model's albedo) and a (B, 1, T, T) displacement map in mm (default: none)."""
        from facehub.modeling.geometry.zbuffer import rasterize_zbuffer

        model = self.coarse.face_model
        vertices = self.dense_shape(lam)
        if displacement is not None:
            vertices = self.displace(vertices, displacement)
        place, landmarks = self.coarse.aligned_frame(lam)
        vertices = place(vertices)
        if diffuse is None:
            diffuse = model.albedo(lam["identity"][:, self.coarse.num_identity:])
        size = (self.image_size, self.image_size)
        triangles = self.triangles
        face_index = torch.stack([
            torch.from_numpy(np.asarray(rasterize_zbuffer(mesh[:, :2], mesh[:, 2], triangles.cpu(), size)[0]))
            for mesh in vertices.detach().cpu()]).to(vertices.device)
        # barycentric weights recomputed from the vertices: the image follows them (and so the displacement)
        ys, xs = torch.meshgrid(torch.arange(size[0], device=vertices.device),
                                torch.arange(size[1], device=vertices.device), indexing="ij")
        centres = torch.stack([xs, ys], dim=-1).to(vertices.dtype) + 0.5
        corners = triangles[face_index.clamp(min=0)]  # (B, S, S, 3)
        batch = torch.arange(len(vertices), device=vertices.device).view(-1, 1, 1, 1)
        bary = _barycentric(centres.expand(len(vertices), -1, -1, -1), vertices[batch, corners][..., :2])
        bary = bary * (face_index >= 0)[..., None]
        out = self.coarse.renderer.shade(vertices, triangles, face_index, bary, uvs=self.uvs,
                                         albedo_texture=diffuse, sh_coeffs=lam["lighting"].reshape(-1, 3, 9))
        image = (out.image.clamp(0.0, 1.0) * 2.0 - 1.0) * out.mask + (out.mask - 1.0)
        texel_uv = self.coarse.renderer.interpolate(self.uvs.expand(len(vertices), -1, -1), triangles, face_index,
                                                    bary)
        return DetailedRender(image, out.mask, texel_uv, vertices, landmarks, face_index)


def texel_indices(render: DetailedRender, texture_size: int) -> torch.Tensor:
    """(B, S * S) the flat index of the texel (nearest, on a ``texture_size`` grid) each pixel looks up."""
    texels = (render.texel_uv.detach() * texture_size).floor().long().clamp(0, texture_size - 1)
    return (texels[..., 1] * texture_size + texels[..., 0]).flatten(1)


def accessed_texels(render: DetailedRender, texture_size: int) -> torch.Tensor:
    """(B, 1, T, T) 1 where a face pixel of ``render`` looks the texel up, else 0."""
    b = render.mask.shape[0]
    flat = texel_indices(render, texture_size)
    on_face = (render.mask[:, 0] > 0).flatten(1)
    seen = torch.zeros(b, texture_size * texture_size, device=render.mask.device)
    seen.scatter_(1, torch.where(on_face, flat, torch.zeros_like(flat)), on_face.to(seen.dtype))
    return (seen > 0).to(render.mask.dtype).reshape(b, 1, texture_size, texture_size)


def pixel_weights(render: DetailedRender, texel_weights: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) each face pixel's texel weight (nearest texel), 0 off the face."""
    flat = texel_indices(render, texel_weights.shape[-1])
    values = texel_weights.flatten(1).gather(1, flat).reshape(render.mask.shape)
    return values * render.mask


def symmetric_view_weights(original: DetailedRender, symmetric: DetailedRender, texture_size: int,
                           overlap_weight: float = OVERLAP_WEIGHT) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 8-9's ``M_render`` of the original and the symmetric view, (B, 1, S, S) each (module docstring)."""
    seen_original = accessed_texels(original, texture_size)
    seen_symmetric = accessed_texels(symmetric, texture_size)
    symmetric_texels = seen_symmetric * torch.where(seen_original > 0, torch.full_like(seen_original, overlap_weight),
                                                    torch.ones_like(seen_original))
    return pixel_weights(original, seen_original), pixel_weights(symmetric, symmetric_texels)


def photometric_loss(rendered: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 5: ``sum ||I_render - I_target||_2 * M_render / |M_render|``, the per-pixel colour distance weighted by the
    mask, over the number of pixels with a non-zero weight (per image, then the batch mean)."""
    distance = (rendered - target).square().sum(dim=1, keepdim=True).add(1e-12).sqrt()
    count = (weights > 0).flatten(1).sum(dim=1).clamp(min=1)
    return ((distance * weights).flatten(1).sum(dim=1) / count).mean()


def at_yaw(lam: dict[str, torch.Tensor], yaw: float) -> dict[str, torch.Tensor]:
    """The same coefficients turned to ``yaw`` degrees (pitch and roll kept)."""
    pose = lam["pose"].clone()
    pose[:, 0] = math.radians(float(yaw))
    return {**lam, "pose": pose}


def mirrored_yaw(lam: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same coefficients at the mirrored pose (yaw and roll negated): the symmetric view's pose."""
    pose = lam["pose"].clone()
    pose[:, 0] = -pose[:, 0]
    pose[:, 2] = -pose[:, 2]
    return {**lam, "pose": pose}
