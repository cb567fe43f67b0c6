"""DiscoFaceGAN's factors between the public API and the networks (seed 002, Sec. 3.1): the public factors carry
the pose in degrees (the house convention), the model-space lambda in radians; the generator reads each lambda factor
standardised by its VAE's data statistics, then the noise. Shared by the generation pipeline, the embedding and the
trainer."""

from __future__ import annotations

import math

import torch

from facehub.modeling.disco_facegan.configuration_disco_facegan import FACTORS
from facehub.modeling.disco_facegan.modeling_disco_facegan import FactorVAEs


def lambda_from_factors(factors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model-space lambda of public factors: pose degrees -> radians, everything else as it is."""
    lam = {key: factors[key] for key in FACTORS}
    lam["pose"] = factors["pose"] * (math.pi / 180.0)
    return lam


def factors_from_lambda(lam: dict[str, torch.Tensor], noise: torch.Tensor) -> dict[str, torch.Tensor]:
    """Public factors of model-space lambda (pose radians -> degrees) and the noise."""
    factors = {key: lam[key] for key in FACTORS}
    factors["pose"] = lam["pose"] * (180.0 / math.pi)
    factors["noise"] = noise
    return factors


def generator_input(vaes: FactorVAEs, lam: dict[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
    """The generator's input: each lambda factor standardised by its VAE's data statistics, then the noise."""
    parts = [vaes.standardise(factor, lam[factor].reshape(len(lam[factor]), -1)) for factor in FACTORS]
    return torch.cat([*parts, noise], dim=-1)
