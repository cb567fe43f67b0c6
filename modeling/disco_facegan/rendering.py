"""The analytic face DiscoFaceGAN imitates: lambda -> the morphable model's face rendered in the generator's frame
(seed 002, Sec. 3.1: "feed lambda to both the generator G and the renderer to obtain a generated face x and a
rendered face x_hat"), plus the correspondence between two renders that the expression contrastive loss warps with
(eq. 6, Fig. 3).

The frame. Training photos are the FaceAnalyzer's aligned crops: a similarity (no shear) takes the five points (eye
centres, nose tip, mouth corners) onto the ArcFace template (:func:`facehub.modeling.faces.alignment.template_points`).
A render is put in the same frame the same way: the posed mesh (``R(theta) S(alpha, beta)``) is projected
orthographically, the similarity taking its five points onto the template is fitted (:func:`umeyama_batched`) and
applied to every vertex (z scaled alike). Like the photos, a render therefore keeps no translation and, through the
in-plane part of the similarity, little roll (the paper: "we align the images to cancel translation").

:class:`FactorRender` carries the image (over black, in [-1, 1]), the face mask, the 68 landmarks in pixels (``p_hat``
of eq. 3), the aligned vertices and the rasteriser's triangle index and barycentric weights per pixel.
:func:`warp_to` resamples an image drawn with one render's geometry into another's: the pixel of render ``b`` on
triangle ``t`` at barycentric ``w`` takes the colour at the same surface point of render ``a`` (eq. 6's ``x(v)``);
pixels off ``b``'s face are flagged invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facehub.modeling.disco_facegan.configuration_disco_facegan import FACTORS, factor_dims


@dataclass
class FactorRender:
    """What :meth:`FactorRenderer.render` returns (B renders of S x S pixels).

    Attributes:
        image: (B, 3, S, S) in [-1, 1], black (-1) off the face.
        mask: (B, 1, S, S) 1 on the face.
        landmarks68: (B, 68, 2) pixel coordinates (house convention: pixel centres at half-integers).
        vertices: (B, V, 3) the aligned mesh, pixels.
        face_index: (B, S, S) triangle per pixel, -1 off the face. barycentric: (B, S, S, 3).
        triangles: (F, 3) the mesh's triangles.
    """

    image: torch.Tensor
    mask: torch.Tensor
    landmarks68: torch.Tensor
    vertices: torch.Tensor
    face_index: torch.Tensor
    barycentric: torch.Tensor
    triangles: torch.Tensor


def five_points(landmarks68: torch.Tensor) -> torch.Tensor:
    """(B, 68, 2) -> (B, 5, 2): eye centres, nose tip, mouth corners (the alignment's points, template order)."""
    return torch.stack([landmarks68[:, 36:42].mean(dim=1), landmarks68[:, 42:48].mean(dim=1), landmarks68[:, 30],
                        landmarks68[:, 48], landmarks68[:, 54]], dim=1)


class FactorRenderer(torch.nn.Module):
    """Render lambda (identity, expression, lighting, pose; pose in radians) at ``image_size`` px in the aligned frame.

    ``face_model``: the :class:`~facehub.modeling.geometry.MorphableFaceModel` (default: the project's).
    """

    def __init__(self, image_size: int = 64, face_model=None):
        super().__init__()
        from facehub.modeling.faces.alignment import template_points
        from facehub.modeling.geometry import FaceRenderer
        from facehub.modeling.geometry.morphable import MorphableFaceModel

        self.face_model = face_model if face_model is not None else MorphableFaceModel.default()
        self.image_size = int(image_size)
        self.renderer = FaceRenderer(self.image_size)
        self.register_buffer("template", torch.as_tensor(template_points(self.image_size), dtype=torch.float32))

    @property
    def num_identity(self) -> int:
        return int(self.face_model.num_identity)

    def aligned_vertices(self, lam: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The posed mesh in the aligned frame (B, V, 3) and its 68 landmarks (B, 68, 2), in pixels."""
        place, landmarks = self.aligned_frame(lam)
        return place(self.shape(lam)), landmarks

    def shape(self, lam: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, V, 3) the unposed mesh ``S(alpha, beta)`` in the model's units (mm)."""
        return self.face_model.shape(lam["identity"][:, : self.num_identity], lam["expression"])

    def aligned_frame(self, lam: dict[str, torch.Tensor]):
        """``place(points)``: (B, N, 3) points in the model's frame (those of the mesh ``S(alpha, beta)`` or on it)
        -> the aligned frame, posed by ``theta`` and moved by the similarity that takes the mesh's five points onto
        the template; and the mesh's 68 landmarks there (B, 68, 2)."""
        from facehub.modeling.face_fitting.modeling_face_regressor import batched_rotation
        from facehub.modeling.geometry.procrustes import umeyama_batched

        shape = self.shape(lam)
        centre = shape.mean(dim=1, keepdim=True)
        rotation3d = batched_rotation(lam["pose"]).transpose(1, 2)
        landmarks = self.face_model.landmarks68((shape - centre) @ rotation3d)[..., :2]
        scale, rotation, translation = umeyama_batched(five_points(landmarks), self.template)
        landmarks = scale[:, None, None] * landmarks @ rotation.transpose(1, 2) + translation[:, None, :]

        def place(points: torch.Tensor) -> torch.Tensor:
            posed = (points - centre) @ rotation3d
            planar = scale[:, None, None] * posed[..., :2] @ rotation.transpose(1, 2) + translation[:, None, :]
            return torch.cat([planar, scale[:, None, None] * posed[..., 2:]], dim=-1)

        return place, landmarks

    @torch.no_grad()
    def mean_face_landmarks(self) -> torch.Tensor:
        """(1, 68, 2) the 68 landmarks of the morphable model's mean face, frontal, neutral, in the aligned frame:
        where a reader's crop starts on a face it has not located yet."""
        lam = {factor: torch.zeros(1, width) for factor, width in factor_dims().items()}
        return self.aligned_frame(lam)[1]

    @torch.no_grad()
    def rasterize(self, vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Triangle index (B, S, S) and barycentric weights (B, S, S, 3) of aligned meshes (B, V, 3), nearest
        surface (largest z) first, with the fast z-buffer (:mod:`facehub.modeling.geometry.zbuffer`): the render is a
        target, so no gradient has to reach the vertices."""
        from facehub.modeling.geometry.zbuffer import rasterize_zbuffer

        size = (self.image_size, self.image_size)
        triangles = self.face_model.triangles.cpu()
        results = [rasterize_zbuffer(mesh[:, :2], mesh[:, 2], triangles, size) for mesh in vertices.detach().cpu()]
        face_index = torch.stack([torch.from_numpy(np.asarray(index)) for index, _ in results]).to(vertices.device)
        barycentric = torch.stack([torch.from_numpy(np.asarray(bary)) for _, bary in results])
        return face_index, barycentric.to(vertices.device, vertices.dtype)

    @torch.no_grad()
    def render(self, lam: dict[str, torch.Tensor]) -> FactorRender:
        """Render lambda (module docstring); no gradients (the render is the imitation target)."""
        for factor in FACTORS:
            if factor not in lam:
                raise ValueError(f"lambda lacks {factor!r}; it needs {list(FACTORS)}.")
        model = self.face_model
        vertices, landmarks = self.aligned_vertices(lam)
        face_index, barycentric = self.rasterize(vertices)
        albedo = model.albedo(lam["identity"][:, self.num_identity:])
        lighting = lam["lighting"].reshape(-1, 3, 9)
        out = self.renderer.shade(vertices, model.triangles, face_index, barycentric, uvs=model.uvs,
                                  albedo_texture=albedo, sh_coeffs=lighting)
        image = (out.image.clamp(0.0, 1.0) * 2.0 - 1.0) * out.mask + (out.mask - 1.0)
        return FactorRender(image, out.mask, landmarks, vertices, face_index, barycentric, model.triangles)


def warp_to(image: torch.Tensor, source: FactorRender, target: FactorRender) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample ``image`` (B, C, S, S), drawn with ``source``'s geometry, into ``target``'s geometry (eq. 6's
    ``x(v)``); returns it and the (B, 1, S, S) validity (on ``target``'s face). Both renders share the triangles."""
    from facehub.modeling.geometry import FaceRenderer

    size = image.shape[-1]
    points = FaceRenderer.interpolate(source.vertices[..., :2], source.triangles, target.face_index,
                                      target.barycentric)
    grid = points / size * 2.0 - 1.0                                         # house pixels -> grid_sample's [-1, 1]
    warped = F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    valid = (target.face_index >= 0).unsqueeze(1).to(image.dtype)
    return warped * valid, valid

