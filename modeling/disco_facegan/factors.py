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


def prior_width(vaes: FactorVAEs, generator_input_dim: int) -> int:
    """Width of one draw of DiscoFaceGAN's prior: every factor's VAE latent, then the noise (the generator's input
    past the factors)."""
    noise_dim = int(generator_input_dim) - sum(vaes.factor_dims.values())
    return sum(vaes.latent_dims.values()) + noise_dim


def generator_input_of_prior(vaes: FactorVAEs, z: torch.Tensor) -> torch.Tensor:
    """The generator input of normal draws ``z`` (N, :func:`prior_width`) of the prior of Sec. 3.1: each factor's
    slice decoded by its VAE (``lambda_i = V_i(z_i)``), the rest taken as the noise. ``vaes.sample`` with its noise
    is the same distribution; this form keeps a face a pure function of one normal vector, which is what a StyleGAN2
    backbone's users (StyleFaceUV) seed."""
    lam, start = {}, 0
    for factor in FACTORS:
        width = vaes.latent_dims[factor]
        lam[factor] = vaes.decode(factor, z[:, start:start + width])
        start += width
    return generator_input(vaes, lam, z[:, start:])
