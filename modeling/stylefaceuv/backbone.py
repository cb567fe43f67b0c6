"""The StyleGAN2 behind a StyleFaceUV model (seed 004, Sec. 3.1) and how its stylecodes are drawn.

Two kinds of checkpoint serve as the backbone:

- a plain StyleGAN2 (``facehub train stylegan2`` export, or ``facehub convert stylegan2``): ``w = mapping(z)`` with
  ``z ~ N(0, I)``;
- a DiscoFaceGAN bundle (seed 002): its generator is the same StyleGAN2, but its ``z`` is the factor prior of that
  paper, so a stylecode is ``w = mapping(generator_input(V(z_factors), noise))`` with every part drawn normal
  (:func:`~facehub.modeling.disco_facegan.factors.generator_input_of_prior`). Its factor VAEs travel with the
  StyleFaceUV bundle as the optional ``factor_vaes`` component.

Either way one normal vector of :meth:`StyleBackbone.latent_width` values fixes a face, so seeds work the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from facehub.hub.resolver import resolve
from facehub.modeling.disco_facegan import DiscoFaceGANPipeline, FactorVAEs
from facehub.modeling.disco_facegan.factors import generator_input_of_prior, prior_width
from facehub.modeling.modeling_utils import PIPELINE_INDEX_NAME, CheckpointError, check_class
from facehub.modeling.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator, StyleGAN2Pipeline

DISCO_FACEGAN_BUNDLE = DiscoFaceGANPipeline.__name__


@dataclass
class StyleBackbone:
    """A StyleGAN2 generator, its discriminator when the checkpoint has one, and DiscoFaceGAN's factor VAEs when its
    latent is that prior (module docstring)."""

    generator: StyleGAN2Generator
    discriminator: StyleGAN2Discriminator | None = None
    factor_vaes: FactorVAEs | None = None

    @property
    def latent_width(self) -> int:
        """Values in one normal draw."""
        if self.factor_vaes is None:
            return int(self.generator.input_dim)
        return prior_width(self.factor_vaes, int(self.generator.input_dim))

    @torch.no_grad()
    def styles(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        """(N, latent_dim) stylecodes ``w`` of the normal draws ``z`` (N, latent_width), pulled towards ``w_avg``
        when ``truncation_psi < 1``."""
        if z.ndim != 2 or z.shape[1] != self.latent_width:
            raise ValueError(f"Expected (N, {self.latent_width}) normal draws for this backbone; got {tuple(z.shape)}.")
        model = self.generator
        z = z.to(model.const.device, model.const.dtype)
        if self.factor_vaes is not None:
            z = generator_input_of_prior(self.factor_vaes.to(z.device), z)
        w = model.map(z)
        if truncation_psi != 1.0:
            w = model.w_avg + float(truncation_psi) * (w - model.w_avg)
        return w


def load_backbone(source: str) -> StyleBackbone:
    """The backbone saved at ``source`` (a folder or an embedded / Hub id): a ``StyleGAN2Pipeline`` folder, or a
    ``DiscoFaceGANPipeline`` bundle (its generator and factor VAEs)."""
    folder = resolve(source)
    index = folder / PIPELINE_INDEX_NAME
    try:
        saved = check_class(index, StyleGAN2Pipeline.__name__, (DISCO_FACEGAN_BUNDLE,))
    except CheckpointError as err:
        raise CheckpointError(f"{source} cannot be a StyleFaceUV backbone: it must be a {StyleGAN2Pipeline.__name__} "
                              f"folder (a `facehub train stylegan2` export or `facehub convert stylegan2` output) or "
                              f"a {DISCO_FACEGAN_BUNDLE} bundle. {err}") from None
    if saved.get("_class_name") == DISCO_FACEGAN_BUNDLE:
        pipe = DiscoFaceGANPipeline.from_pretrained(folder)
        return StyleBackbone(pipe.image_generator.eval().requires_grad_(False), None,
                             pipe.factor_vaes.eval().requires_grad_(False))
    pipe = StyleGAN2Pipeline.from_pretrained(folder)
    return StyleBackbone(pipe.image_generator.eval().requires_grad_(False), pipe.discriminator)
