"""StyleFaceUV's pipeline (seed 004): a StyleGAN2 image and the textured 3D face of the same stylecode.

``out = pipe(num_images=2, generator=torch.Generator().manual_seed(0))`` draws stylecodes ``w`` (the StyleGAN2's
mapped latents, truncated when ``truncation_psi < 1``) and returns:

- ``out.images``: the StyleGAN2 images of ``w``;
- ``out.faces``: one :class:`TexturedFace` per image: the coefficients F_3D reads from ``w`` (Sec. 3.2.1), the
  diffuse and displacement UV maps the UV generator draws from ``w`` (Sec. 3.3), and the dense displaced mesh;
  ``face.render(yaw=30.0)`` turns it (``pitch=``, ``expression=``, ``lighting=`` too), ``face.export("face.glb")``
  writes it (``.obj`` / ``.ply`` as well);
- ``out.styles``: the stylecodes, for :meth:`StyleFaceUVPipeline.turn`, which moves them along the yaw direction
  with F_yaw (eq. 2) so the StyleGAN2 itself draws the same face at another yaw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facehub.modeling.disco_facegan import FactorVAEs
from facehub.modeling.modeling_utils import FaceHubPipeline
from facehub.modeling.pipeline_utils import ImagePipelineOutput, check_output_type, convert_images
from facehub.modeling.stylefaceuv.backbone import StyleBackbone
from facehub.modeling.stylefaceuv.modeling_stylefaceuv import StyleToCoefficients, YawStepMapper
from facehub.modeling.stylefaceuv.rendering import DetailedFaceRenderer
from facehub.modeling.stylegan2 import StyleGAN2Generator, tensor_to_uint8

MAX_IMAGES_PER_CALL = 16


@dataclass
class TexturedFace:
    """One generated face in 3D (see the module docstring).

    Attributes:
        coefficients: F_3D's coefficients, one row each (identity, expression, lighting, pose in radians).
        diffuse: (1, 3, T, T) diffuse UV map in [0, 1]. displacement: (1, 1, T, T) displacement UV map, mm.
        renderer: the :class:`~facehub.modeling.stylefaceuv.rendering.DetailedFaceRenderer` it renders with.
    """

    coefficients: dict[str, torch.Tensor]
    diffuse: torch.Tensor
    displacement: torch.Tensor
    renderer: DetailedFaceRenderer = field(repr=False)

    @property
    def triangles(self) -> np.ndarray:
        """(F, 3) triangles of the dense mesh."""
        return self.renderer.triangles.cpu().numpy()

    @property
    def uvs(self) -> np.ndarray:
        """(N, 2) UV coordinates of the dense mesh's vertices."""
        return self.renderer.uvs.cpu().numpy()

    @property
    @torch.no_grad()
    def vertices(self) -> np.ndarray:
        """(N, 3) the displaced dense mesh, unposed, in the model's millimetres (house frame: x right, y down,
        z towards the viewer)."""
        dense = self.renderer.dense_shape(self.coefficients)
        return self.renderer.displace(dense, self.displacement)[0].cpu().numpy()

    @property
    def texture(self) -> np.ndarray:
        """(T, T, 3) uint8 diffuse map."""
        return (self.diffuse[0].permute(1, 2, 0).clamp(0, 1) * 255.0 + 0.5).byte().cpu().numpy()

    @torch.no_grad()
    def render(self, yaw: float | None = None, pitch: float | None = None, expression: torch.Tensor | None = None,
               lighting: torch.Tensor | None = None, output_type: str = "pil"):
        """The face rendered with its maps; ``yaw`` / ``pitch`` in degrees (default: its own pose), another
        ``expression`` (14 coefficients) or ``lighting`` (27 SH coefficients)."""
        check_output_type(output_type)
        lam = {key: value.clone() for key, value in self.coefficients.items()}
        for column, angle in ((0, yaw), (1, pitch)):
            if angle is not None:
                if not math.isfinite(float(angle)) or abs(float(angle)) > 90.0:
                    raise ValueError(f"Got {angle} for a pose angle; expected degrees in [-90, 90].")
                lam["pose"][:, column] = math.radians(float(angle))
        for name, value in (("expression", expression), ("lighting", lighting)):
            if value is not None:
                value = torch.as_tensor(value, dtype=lam[name].dtype).reshape(1, -1)
                if value.shape[1] != lam[name].shape[1]:
                    raise ValueError(f"`{name}` has {value.shape[1]} values; this face has {lam[name].shape[1]}.")
                lam[name] = value
        image = self.renderer.render(lam, self.diffuse, self.displacement).image
        return convert_images(list(tensor_to_uint8(image)), output_type)[0]

    def export(self, path: str | Path) -> Path:
        """Write the textured mesh: ``.glb`` (embedded texture), ``.obj`` (+ ``.mtl`` and ``.png``) or ``.ply``."""
        from facehub.modeling.geometry.dense_mesh import export_mesh, sample_texture

        texture = self.texture
        return export_mesh(path, self.vertices, self.triangles, self.uvs, sample_texture(texture, self.uvs), texture)


@dataclass
class StyleFaceUVPipelineOutput(ImagePipelineOutput):
    """``images``: the StyleGAN2 images; ``faces``: a :class:`TexturedFace` each; ``styles``: (N, latent_dim)."""

    faces: list[TexturedFace] | None = None
    styles: torch.Tensor | None = None


class StyleFaceUVPipeline(FaceHubPipeline):
    """A StyleGAN2 and the three networks that make its faces 3D (module docstring)."""

    model_cpu_offload_seq = "image_generator->style_to_coefficients->uv_generator"
    _optional_components = ["factor_vaes"]

    def __init__(self, image_generator: StyleGAN2Generator, style_to_coefficients: StyleToCoefficients,
                 yaw_step: YawStepMapper, uv_generator: StyleGAN2Generator, factor_vaes: FactorVAEs | None = None):
        super().__init__()
        self.register_modules(image_generator=image_generator, style_to_coefficients=style_to_coefficients,
                              yaw_step=yaw_step, uv_generator=uv_generator, factor_vaes=factor_vaes)
        self._renderer: DetailedFaceRenderer | None = None

    def face_renderer(self) -> DetailedFaceRenderer:
        """The renderer of the faces, at the StyleGAN2's resolution (made on first use)."""
        if self._renderer is None:
            self._renderer = DetailedFaceRenderer(int(self.image_generator.config.resolution))
        return self._renderer

    @torch.no_grad()
    def styles(self, num_images: int, generator: torch.Generator | None = None,
               truncation_psi: float = 1.0) -> torch.Tensor:
        """(N, latent_dim) stylecodes ``w`` of ``num_images`` normal draws (through DiscoFaceGAN's factor prior when
        the backbone is one: :mod:`~facehub.modeling.stylefaceuv.backbone`)."""
        if not 1 <= int(num_images) <= MAX_IMAGES_PER_CALL:
            raise ValueError(f"Got {num_images} for `num_images`; expected 1 to {MAX_IMAGES_PER_CALL}.")
        backbone = StyleBackbone(self.image_generator, factor_vaes=self.factor_vaes)
        z = torch.randn(int(num_images), backbone.latent_width, generator=generator)
        return backbone.styles(z, truncation_psi)

    @torch.no_grad()
    def faces(self, styles: torch.Tensor) -> list[TexturedFace]:
        """The textured 3D face of each stylecode."""
        lam = self.style_to_coefficients(styles)
        renderer = self.face_renderer()
        diffuse, displacement = renderer.maps(self.uv_generator(styles, input_is_w=True, noise_mode="const").images,
                                              lam)
        return [TexturedFace({k: v[i:i + 1] for k, v in lam.items()}, diffuse[i:i + 1], displacement[i:i + 1],
                             renderer) for i in range(len(styles))]

    @torch.no_grad()
    def turn(self, styles: torch.Tensor, yaw: float, output_type: str = "pil") -> list:
        """Eq. 2: the StyleGAN2 images of ``w + F_yaw(w, yaw) d``, the same faces at ``yaw`` degrees in 2D."""
        check_output_type(output_type)
        turned = self.yaw_step.turn(styles, torch.tensor(math.radians(float(yaw))))
        images = self.image_generator(turned, input_is_w=True, noise_mode="const").images
        return convert_images(list(tensor_to_uint8(images)), output_type)

    @torch.no_grad()
    def __call__(self, num_images: int | None = None, *, styles: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, truncation_psi: float = 1.0, output_type: str = "pil",
                 return_dict: bool = True):
        """Draw ``num_images`` faces (default 1) with ``generator``, or give ``styles`` (N, latent_dim)."""
        check_output_type(output_type)
        if styles is not None and num_images is not None:
            raise ValueError("Give `num_images` or `styles`, not both.")
        if styles is None:
            styles = self.styles(1 if num_images is None else num_images, generator, truncation_psi)
        styles = torch.as_tensor(styles, dtype=self.image_generator.const.dtype).to(self.image_generator.const.device)
        if styles.ndim != 2 or styles.shape[1] != self.image_generator.latent_dim:
            raise ValueError(f"`styles` must be (N, {self.image_generator.latent_dim}); got {tuple(styles.shape)}.")
        images = self.image_generator(styles, input_is_w=True, noise_mode="const").images
        output = StyleFaceUVPipelineOutput(images=convert_images(list(tensor_to_uint8(images)), output_type),
                                           faces=self.faces(styles), styles=styles.cpu())
        return output if return_dict else (output.images,)
