"""Unconditional image generation with a StyleGAN2 (:class:`StyleGAN2Pipeline`).

The bundle holds ``image_generator`` (:class:`StyleGAN2Generator`) and, optionally, ``discriminator``
(:class:`StyleGAN2Discriminator`, kept so that a trained or converted model can be fine-tuned or used to score
images). ``facehub convert stylegan2`` writes such a bundle from a checkpoint in the common PyTorch layout; the
StyleGAN2 trainer exports one.

```python
pipe = StyleGAN2Pipeline.from_pretrained(folder)
out = pipe(num_images=4, generator=torch.Generator().manual_seed(0), truncation_psi=0.7)
out.images     # PIL images; out.latents: the z drawn, out.w_plus: the styles the synthesis network read
```
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facehub.modeling.modeling_utils import FaceHubPipeline
from facehub.modeling.pipeline_utils import ImagePipelineOutput, check_output_type, convert_images
from facehub.modeling.stylegan2.modeling_stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

#: Most images one call makes (each is held in memory at full resolution).
MAX_IMAGES_PER_CALL = 1024


@dataclass
class StyleGAN2PipelineOutput(ImagePipelineOutput):
    """What :class:`StyleGAN2Pipeline` returns.

    Attributes:
        images: PIL images, or (H, W, 3) RGB uint8 arrays with ``output_type="np"``, or the (N, 3, H, W) float
            tensor in [-1, 1] with ``output_type="pt"``.
        latents: (N, latent_dim) the ``z`` used (``None`` when W or W+ was given).
        w_plus: (N, num_ws, latent_dim) the styles every layer read, after truncation and mixing.
    """

    latents: torch.Tensor | None
    w_plus: torch.Tensor


def tensor_to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) RGB uint8 (clamped, rounded)."""
    images = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return images.permute(0, 2, 3, 1).cpu().numpy()


class StyleGAN2Pipeline(FaceHubPipeline):
    """Draw images from a StyleGAN2 generator; see the module docstring."""

    model_cpu_offload_seq = "image_generator"
    _optional_components = ["discriminator"]

    def __init__(self, image_generator: StyleGAN2Generator, discriminator: StyleGAN2Discriminator | None = None):
        super().__init__()
        self.register_modules(image_generator=image_generator, discriminator=discriminator)

    @torch.no_grad()
    def __call__(self, num_images: int | None = None, *, latents: torch.Tensor | None = None,
                 w: torch.Tensor | None = None, truncation_psi: float = 1.0, noise_mode: str = "const",
                 generator: torch.Generator | None = None, output_type: str = "pil", return_dict: bool = True):
        """Generate images.

        Args:
            num_images: how many ``z ~ N(0, I)`` to draw with ``generator`` (default 1); or give ``latents`` (z) or
                ``w`` ((N, latent_dim) or W+ (N, num_ws, latent_dim)) instead.
            truncation_psi: pull the styles towards ``w_avg`` (0.5-0.8 trades variety for quality; 1: none).
            noise_mode: ``"const"`` (the stored noise maps, so a seed always gives the same image), ``"random"``
                (drawn with ``generator``) or ``"none"``.
            output_type: ``"pil"``, ``"np"`` or ``"pt"``.
        """
        model = self.image_generator
        device = model.const.device
        if output_type != "pt":
            check_output_type(output_type)
        given = [name for name, value in (("latents", latents), ("w", w)) if value is not None]
        if len(given) > 1:
            raise ValueError("Give at most one of `latents` and `w`.")
        if given and num_images is not None:
            raise ValueError(f"Got both `num_images` and `{given[0]}`; the number of images comes from `{given[0]}`.")
        if not given:
            num_images = 1 if num_images is None else int(num_images)
            if not 1 <= num_images <= MAX_IMAGES_PER_CALL:
                raise ValueError(f"Got {num_images} for `num_images`; expected 1 to {MAX_IMAGES_PER_CALL}.")
            latents = torch.randn(num_images, model.input_dim, generator=generator)
        source = w if w is not None else latents
        source = source.to(device, model.const.dtype)
        result = model(source, input_is_w=w is not None, truncation_psi=truncation_psi, noise_mode=noise_mode,
                       generator=generator)
        if output_type == "pt":
            images = result.images
        else:
            images = convert_images(list(tensor_to_uint8(result.images)), output_type)
        output = StyleGAN2PipelineOutput(images=images, latents=None if w is not None else latents.cpu(),
                                         w_plus=result.w_plus.cpu())
        return output if return_dict else (images,)
