"""The factor VAEs of DiscoFaceGAN (seed 002, Sec. 3.1 and Supplement I).

"We train four simple VAEs for alpha, beta, gamma and theta ... After training, we discard the VAE encoders and keep
the decoders V_i for z-space to lambda-space mapping." :class:`FactorVAEs` holds the four: each an MLP encoder (three
hidden ReLU layers) to the mean and log-variance of ``z_i``, and an MLP decoder (three hidden ReLU layers) back to
``lambda_i``. Both read and write the factor standardised by the mean and standard deviation of the coefficients it
was fitted on (buffers ``mean_<factor>`` / ``std_<factor>``), so every factor is of unit order inside.

Training follows the first stage of Dai & Wipf's two-stage VAE ("Diagnosing and enhancing VAE models", ICLR 2019),
as the paper does: a Gaussian decoder ``p(x | z) = N(mu(z), gamma^2 I)`` whose scale ``gamma`` is learned with the
networks (:meth:`FactorVAEs.loss`):

``L = KL(q(z | x) || N(0, I)) + ||x - mu(z)||^2 / (2 gamma^2) + d log gamma``

(per sample, ``d`` the factor's width; ``z`` drawn with the reparameterisation trick). A learned ``gamma`` lets
the reconstruction term sharpen as the fit improves instead of fixing its weight by hand.

The encoders are kept in the checkpoint (they embed a photo's coefficients into ``z`` for the evaluation and the
demo); generation uses the decoders only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks the base class up in this module)
from diffusers.configuration_utils import register_to_config
from torch import nn

from facehub.modeling.disco_facegan.configuration_disco_facegan import FACTORS
from facehub.modeling.modeling_utils import FaceHubModel


def mlp(in_features: int, hidden: int, out_features: int, num_hidden_layers: int) -> nn.Sequential:
    """``num_hidden_layers`` hidden ReLU layers of width ``hidden`` between ``in_features`` and ``out_features``."""
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(num_hidden_layers):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class FactorVAEs(FaceHubModel):
    """Four VAEs, one per factor of :data:`~facehub.modeling.disco_facegan.FACTORS` (see the module docstring).

    Args:
        factor_dims: lambda width per factor (``{"identity": 49, "expression": 14, "lighting": 27, "pose": 3}``).
        latent_dims: z width per factor.
        hidden_dims: hidden width per factor.
        num_hidden_layers: hidden layers of each encoder and decoder (3 in the paper).
    """

    @register_to_config
    def __init__(self, factor_dims: Mapping[str, int] | None = None, latent_dims: Mapping[str, int] | None = None,
                 hidden_dims: Mapping[str, int] | None = None, num_hidden_layers: int = 3):
        super().__init__()
        from facehub.modeling.disco_facegan.configuration_disco_facegan import (
            DISCO_FACEGAN_PRESETS,
            PAPER_HIDDEN_DIMS,
        )
        from facehub.modeling.disco_facegan.configuration_disco_facegan import (
            factor_dims as default_factor_dims,
        )

        factor_dims = dict(factor_dims or default_factor_dims())
        latent_dims = dict(latent_dims or DISCO_FACEGAN_PRESETS["cpu-small"]["latent_dims"])
        hidden_dims = dict(hidden_dims or PAPER_HIDDEN_DIMS)
        for name, values in (("factor_dims", factor_dims), ("latent_dims", latent_dims),
                             ("hidden_dims", hidden_dims)):
            if set(values) != set(FACTORS) or any(int(v) <= 0 for v in values.values()):
                raise ValueError(f"Got {values} for `{name}`; expected a positive width for each of {list(FACTORS)}.")
        if not 1 <= int(num_hidden_layers) <= 16:
            raise ValueError(f"Got {num_hidden_layers} for `num_hidden_layers`; expected 1 to 16 (3 in the paper).")
        self.factor_dims = {f: int(factor_dims[f]) for f in FACTORS}
        self.latent_dims = {f: int(latent_dims[f]) for f in FACTORS}
        self.encoders = nn.ModuleDict({f: mlp(self.factor_dims[f], int(hidden_dims[f]), 2 * self.latent_dims[f],
                                              int(num_hidden_layers)) for f in FACTORS})
        self.decoders = nn.ModuleDict({f: mlp(self.latent_dims[f], int(hidden_dims[f]), self.factor_dims[f],
                                              int(num_hidden_layers)) for f in FACTORS})
        self.log_gamma = nn.ParameterDict({f: nn.Parameter(torch.zeros(())) for f in FACTORS})
        for f in FACTORS:
            self.register_buffer(f"mean_{f}", torch.zeros(self.factor_dims[f]))
            self.register_buffer(f"std_{f}", torch.ones(self.factor_dims[f]))

    # -- data statistics -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def set_statistics(self, factor: str, values: torch.Tensor, min_std: float = 1e-3) -> None:
        """Standardise ``factor`` by the mean and standard deviation of ``values`` (N, d) from now on."""
        getattr(self, f"mean_{factor}").copy_(values.mean(dim=0))
        getattr(self, f"std_{factor}").copy_(values.std(dim=0).clamp(min=min_std))

    def standardise(self, factor: str, values: torch.Tensor) -> torch.Tensor:
        return (values - getattr(self, f"mean_{factor}")) / getattr(self, f"std_{factor}")

    def unstandardise(self, factor: str, values: torch.Tensor) -> torch.Tensor:
        return values * getattr(self, f"std_{factor}") + getattr(self, f"mean_{factor}")

    # -- the VAEs --------------------------------------------------------------------------------------------------

    def encode(self, factor: str, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z | lambda)``: the mean and log-variance of ``z`` for coefficients ``values`` (N, d)."""
        mean, log_variance = self.encoders[factor](self.standardise(factor, values)).chunk(2, dim=-1)
        return mean, log_variance.clamp(-30.0, 20.0)

    def decode(self, factor: str, z: torch.Tensor) -> torch.Tensor:
        """``V_i(z)``: coefficients (N, d) for ``z`` (N, latent)."""
        return self.unstandardise(factor, self.decoders[factor](z))

    def sample(self, count: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Coefficients of ``count`` new faces: ``V_i(z_i)`` with ``z_i ~ N(0, I)`` for every factor."""
        device = self.mean_pose.device
        out = {}
        for factor in FACTORS:
            z = torch.randn(count, self.latent_dims[factor], generator=generator)
            out[factor] = self.decode(factor, z.to(device, self.mean_pose.dtype))
        return out

    def loss(self, factor: str, values: torch.Tensor, kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """The first-stage objective of the two-stage VAE (module docstring), averaged over the batch, with the KL
        term scaled by ``kl_weight`` (for annealing; 1 is the objective itself); also returns its ``kl`` and
        ``reconstruction`` (mean squared error in standardised units) parts."""
        target = self.standardise(factor, values)
        mean, log_variance = self.encoders[factor](target).chunk(2, dim=-1)
        log_variance = log_variance.clamp(-30.0, 20.0)
        z = mean + torch.randn_like(mean) * (0.5 * log_variance).exp()
        decoded = self.decoders[factor](z)
        squared = (target - decoded).square().sum(dim=-1)
        log_gamma = self.log_gamma[factor]
        kl = 0.5 * (mean.square() + log_variance.exp() - 1.0 - log_variance).sum(dim=-1)
        nll = squared / (2.0 * (2.0 * log_gamma).exp()) + target.shape[-1] * (log_gamma + 0.5 * math.log(2 * math.pi))
        return {"total": (kl_weight * kl + nll).mean(), "kl": kl.mean(),
                "reconstruction": squared.mean() / target.shape[-1]}

    def forward(self, factor: str, values: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``values`` through ``factor``'s VAE at the posterior mean."""
        mean, _ = self.encode(factor, values)
        return self.decode(factor, mean)
