"""StyleFaceUV's rotation of a face in a photo through the rotation contract (seed 004, Sec. 3.2.2, eq. 2).

The photo's face is embedded into the StyleGAN2's W by optimisation (:mod:`facehub.modeling.stylegan2.inversion`, a
single stylecode: F_3D and F_yaw read one ``w``), then moved along the yaw direction, ``w' = w + F_yaw(w, a) d``, so
the backbone draws the same face at the yaw ``a``; the turned crop is colour-matched and pasted back into the photo.
``a`` is the yaw F_3D reads from ``w`` moved by the change the call asks for (from the FaceAnalyzer's measure of the
photo to the requested yaw), as DiscoFaceGAN's pose edit does. F_yaw moves the yaw only: the pitch stays the face's
own, and ``achieved_pose`` (measured on the result) says so.

Faces the backbone can draw (its own generated images) embed closely; a miniature backbone reproduces a real photo
only roughly, and the turned face is then its reconstruction, not the person.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from facehub.modeling.disco_facegan import FactorVAEs
from facehub.modeling.modeling_utils import FaceHubPipeline
from facehub.modeling.pipeline_utils import (
    FacePipelineMixin,
    GeneratedCropRotationOutput,
    Pose,
    RotationPipelineMixin,
)
from facehub.modeling.stylefaceuv.modeling_stylefaceuv import StyleToCoefficients, YawStepMapper
from facehub.modeling.stylegan2 import StyleGAN2Generator, tensor_to_uint8
from facehub.modeling.stylegan2.inversion import EMBED_STEPS, Inversion, dlib_identity_net, invert
from facehub.modeling.stylegan2.pipeline_inversion_rotation import InversionRotationMixin


@dataclass
class StyleFaceUVRotationOutput(GeneratedCropRotationOutput):
    """:class:`~facehub.modeling.pipeline_utils.GeneratedCropRotationOutput` (``crops``: the turned crop that was
    pasted; ``reconstructions``: the embedding's own crop; ``timings``: ``analysis``, ``embedding``, ``turning``)
    plus ``styles``, the embedded stylecode (1, latent_dim), for :class:`~facehub.modeling.stylefaceuv.
    StyleFaceUVPipeline` (``pipe(styles=out.styles)`` gives its textured 3D face)."""

    styles: torch.Tensor | list[torch.Tensor] | None = None


class StyleFaceUVRotationPipeline(InversionRotationMixin, RotationPipelineMixin, FacePipelineMixin, FaceHubPipeline):
    """Turn the face in a photo by embedding it in W and stepping along the yaw direction (module docstring).

    ``pipe = StyleFaceUVRotationPipeline.from_pretrained("facehub/stylefaceuv")``; ``pipe(photo, yaw=20.0)``.
    Option ``embed_steps`` (default 60): optimisation steps of the embedding.
    """

    loads_bundles_of = ("StyleFaceUVPipeline",)
    model_cpu_offload_seq = "image_generator->style_to_coefficients->yaw_step"
    _optional_components = ["uv_generator", "factor_vaes"]
    unreachable_reason = "the yaw direction is learned from the backbone's own faces, which turn about 45 degrees at most"
    output_class = StyleFaceUVRotationOutput

    def __init__(self, image_generator: StyleGAN2Generator, style_to_coefficients: StyleToCoefficients,
                 yaw_step: YawStepMapper, uv_generator: StyleGAN2Generator | None = None,
                 factor_vaes: FactorVAEs | None = None):
        super().__init__()
        self.register_modules(image_generator=image_generator, style_to_coefficients=style_to_coefficients,
                              yaw_step=yaw_step, uv_generator=uv_generator, factor_vaes=factor_vaes)

    def embed(self, photo: np.ndarray, face, steps: int = EMBED_STEPS):
        """The aligned crop of ``face`` in ``photo`` and its single-stylecode embedding, started from ``w_avg``."""
        from facehub.modeling.faces.alignment import aligned_crop

        generator = self.image_generator
        aligned = aligned_crop(photo, face.landmarks68, int(generator.config.resolution))
        found = invert(generator, aligned.image, generator.w_avg.detach().reshape(1, -1), "w", steps,
                       identity_net=dlib_identity_net())
        return aligned, found

    @torch.no_grad()
    def turned_styles(self, styles: torch.Tensor, yaw_change: float) -> torch.Tensor:
        """Eq. 2 for a change of ``yaw_change`` degrees from the yaw F_3D reads from ``styles``."""
        read = self.style_to_coefficients(styles)["pose"][:, 0]
        return self.yaw_step.turn(styles, read + math.radians(float(yaw_change)))

    def turned_crop(self, face, embedding: Inversion, target_pose: Pose) -> tuple[np.ndarray, dict]:
        """Eq. 2 from the face's measured yaw to the asked one (:class:`InversionRotationMixin` does the rest)."""
        turned = self.turned_styles(embedding.styles, target_pose.yaw - Pose.of(face.pose).yaw)
        with torch.no_grad():
            crop = tensor_to_uint8(self.image_generator(turned, input_is_w=True, noise_mode="const").images)[0]
        return crop, {"styles": embedding.styles.cpu()}
