"""Training recipe of StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020)
on aligned face crops, plugged into the shared loop.

Run: ``facehub train stylegan2 --preset cpu-small data.sources=[runs/data/faces]`` or
``accelerate launch -m facehub.trainers.stylegan2 --preset cpu-small ...``; ``facehub train stylegan2 --help``
lists every setting.

Data: ``facehub prepare`` folders and/or the synthetic face world (one view per identity), aligned with the
FaceAnalyzer's crop (:mod:`facehub.trainers.data.aligned_faces`), faces turned more than ``data.max_yaw`` left out,
random left-right flips (a pure function of seed, epoch and index, so resuming is exact).

Objective, per step (the original's config F, with its lazy regularisation):

- D minimises the non-saturating logistic loss ``softplus(D(G(z))) + softplus(-D(x))`` on the real batch and the
  samples of the generator step (detached; the original draws fresh ones, which costs a third generator pass); every
  ``losses.r1_interval`` steps it adds R1, ``gamma / 2 * E ||grad_x D(x)||^2`` on the real batch, multiplied by the
  interval (so its average weight is ``gamma / 2``);
- G minimises ``softplus(-D(G(z)))`` through a frozen D; every ``losses.pl_interval`` steps (when
  ``losses.pl_weight`` > 0) it adds the path-length penalty ``(||J_w^T y|| - a)^2`` (Sec. 3.2: ``y`` random images
  scaled by ``1 / sqrt(H W)``, ``a`` the running mean of the lengths with decay 0.01), on
  ``batch / losses.pl_batch_shrink`` samples, times the interval. As in the original, ``a`` is not checkpointed: it
  starts again from the first batch's lengths after a resume;
- style mixing: with probability ``losses.style_mixing`` a batch takes its styles from a second ``z`` from a random
  layer on;
- ``w_avg`` follows the batch mean of ``w`` (EMA 0.995), the truncation centre;
- the generator's EMA (``G_ema``) has a half-life of ``losses.ema_half_life_images`` images
  (``beta = 0.5 ** (batch / half_life)``), and is what samples and the export use.

Optimisers: Adam for G (mapping layers at 0.01 of its rate, through the equalised learning rate) and D, with the
lazy-regularisation correction of the original (rate ``* c``, betas ``** c``, ``c = interval / (interval + 1)``).

Logged: ``generator``, ``discriminator``, ``real_score``, ``fake_score`` (mean logits), ``r1`` and ``path_length``
on the steps that compute them. Samples: a fixed set of ``z`` drawn by ``G_ema`` with the stored noise, without and
with truncation 0.7.

Export: :class:`~facehub.modeling.stylegan2.StyleGAN2Pipeline` (``image_generator`` = ``G_ema``, ``discriminator``).
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from facehub.modeling.stylegan2 import (
    STYLEGAN2_PRESETS,
    StyleGAN2Config,
    StyleGAN2Discriminator,
    StyleGAN2Generator,
    stylegan2_config,
)
from facehub.trainers.core import StepContext, TrainingConfig, TrainingMethod
from facehub.trainers.core.config import ConfigError, ConfigSection, ModelSection
from facehub.trainers.core.gan import half_life_decay, r1_penalty
from facehub.trainers.data.aligned_faces import AlignedFaceImages

logger = logging.getLogger(__name__)

METHOD_NAME = "stylegan2"
#: Truncation of the second half of the sample grid.
SAMPLE_TRUNCATION = 0.7
#: How many fixed ``z`` the sample grid shows (seed 0).
SAMPLE_COUNT = 8


# --------------------------------------------------------------------------------------------------------------------
# Config


@dataclass
class StyleGAN2ModelConfig(ModelSection):
    """``model``: a :data:`~facehub.modeling.stylegan2.STYLEGAN2_PRESETS` name (``paper``, ``ffhq-256``,
    ``cpu-small``) plus overrides of :class:`~facehub.modeling.stylegan2.StyleGAN2Config`'s fields (``null``: the
    preset's value).

    Fields:
        preset: the network preset.
        resolution: image side (a power of two).
        latent_dim: width of z, w and the styles.
        mapping_layers: depth of the mapping network.
        channels: widths at 4, 8, ..., resolution px.
        mapping_lr_multiplier: the mapping network's learning-rate multiplier.
    """

    model_presets: ClassVar[dict[str, dict[str, Any]]] = STYLEGAN2_PRESETS

    preset: str = "cpu-small"
    resolution: int | None = None
    latent_dim: int | None = None
    mapping_layers: int | None = None
    channels: list[int] | None = None
    mapping_lr_multiplier: float | None = None


@dataclass
class StyleGAN2DataConfig(ConfigSection):
    """``data``: the face crops.

    Fields:
        sources: ``facehub prepare`` folders.
        synthetic: a synthetic face world with one view per identity (``SyntheticWorldConfig`` fields) or ``null``.
        max_yaw: faces turned further than this (degrees) are left out.
        flip: random left-right flips.
    """

    sources: list[str] = field(default_factory=list)
    synthetic: dict[str, Any] | None = None
    max_yaw: float = 60.0
    flip: bool = True

    def __post_init__(self):
        if not 0 < self.max_yaw <= 180:
            raise ConfigError(f"Got {self.max_yaw} for `data.max_yaw`; expected degrees in (0, 180].")
        if self.synthetic is not None and not isinstance(self.synthetic, dict):
            raise ConfigError(f"Got {self.synthetic!r} for `data.synthetic`; give SyntheticWorldConfig fields "
                              "(e.g. {num_identities: 1000}) or null.")


@dataclass
class StyleGAN2LossesConfig(ConfigSection):
    """``losses``: the regularisers and averages of config F.

    Fields:
        r1_gamma: R1 weight gamma (10 for FFHQ at 1024 px; the original scales it with resolution squared).
        r1_interval: apply R1 every N steps (lazy regularisation; 16).
        pl_weight: path-length regularisation weight (2; 0 turns it off).
        pl_interval: apply it every N steps (4).
        pl_batch_shrink: it runs on batch / N samples (2).
        pl_decay: decay of the running mean path length ``a`` (0.01).
        style_mixing: probability that a batch mixes two latents (0.9).
        ema_half_life_images: half-life of the generator EMA in images (10,000).
        w_avg_beta: EMA factor of the truncation centre (0.995).
    """

    r1_gamma: float = 10.0
    r1_interval: int = 16
    pl_weight: float = 2.0
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing: float = 0.9
    ema_half_life_images: float = 10_000.0
    w_avg_beta: float = 0.995

    def __post_init__(self):
        for name in ("r1_gamma", "pl_weight", "ema_half_life_images"):
            if getattr(self, name) < 0:
                raise ConfigError(f"Got {getattr(self, name)} for `losses.{name}`; it must be 0 or more.")
        for name in ("r1_interval", "pl_interval", "pl_batch_shrink"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"Got {getattr(self, name)} for `losses.{name}`; it must be at least 1.")
        for name in ("pl_decay", "style_mixing", "w_avg_beta"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"Got {getattr(self, name)} for `losses.{name}`; expected a value in [0, 1].")


@dataclass
class StyleGAN2TrainingConfig(TrainingConfig):
    """StyleGAN2 training: the shared fields with the original's optimiser (Adam 0.002, betas (0, 0.99), batch 32,
    no clipping) plus :class:`StyleGAN2ModelConfig`, :class:`StyleGAN2DataConfig` and
    :class:`StyleGAN2LossesConfig`.

    Presets: ``paper`` (config F at 1024 px, gamma 10) and ``cpu-small`` (64 px on two CPU cores: batch 16, gamma
    0.05 as the original's ``0.0002 * resolution^2 / batch`` rule gives for 64 px, no path-length penalty: it doubles
    the cost of a generator step and matters for the smoothness of W, not for whether faces appear in a short run).
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {
            "max_steps": 781_250, "train_batch_size": 32, "learning_rate": 0.002, "adam_beta1": 0.0,
            "adam_beta2": 0.99, "max_grad_norm": None, "checkpointing_steps": 5000,
            "logging_steps": 100,
            "model": {"preset": "paper"},
            "losses": {"r1_gamma": 10.0, "pl_weight": 2.0},
        },
        "cpu-small": {
            "max_steps": 6000, "train_batch_size": 16, "learning_rate": 0.0025, "adam_beta1": 0.0,
            "adam_beta2": 0.99, "max_grad_norm": None, "checkpointing_steps": 500,
            "checkpoints_total_limit": 2, "logging_steps": 50,
            "model": {"preset": "cpu-small"},
            "losses": {"r1_gamma": 0.05, "pl_weight": 0.0, "ema_half_life_images": 5000.0},
        },
    }

    method: str = METHOD_NAME
    train_batch_size: int = 16
    learning_rate: float = 0.002
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99
    max_grad_norm: float | None = None
    sample_steps: int = 500
    model: StyleGAN2ModelConfig = field(default_factory=StyleGAN2ModelConfig)
    data: StyleGAN2DataConfig = field(default_factory=StyleGAN2DataConfig)
    losses: StyleGAN2LossesConfig = field(default_factory=StyleGAN2LossesConfig)

    def __post_init__(self):
        super().__post_init__()
        if self.sample_steps < 0:
            raise ConfigError(f"Got {self.sample_steps} for `sample_steps`; use 0 (none) or a positive interval.")
        self.model.validate(lambda **settings: stylegan2_config(**settings),
                            {"preset": self.model.preset, **self.model.overrides()})
        group = min(self.network().mbstd_group_size, self.train_batch_size)
        if self.train_batch_size % group:
            raise ConfigError(f"Got {self.train_batch_size} for `train_batch_size`; the discriminator's minibatch "
                              f"standard deviation groups {group} images, so use a multiple of {group}.")

    def network(self) -> StyleGAN2Config:
        return stylegan2_config(self.model.preset, **self.model.overrides())


# --------------------------------------------------------------------------------------------------------------------
# Data


# --------------------------------------------------------------------------------------------------------------------
# Losses


def discriminator_logistic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The non-saturating logistic loss of D: ``E[softplus(D(G(z)))] + E[softplus(-D(x))]``."""
    return F.softplus(fake_scores).mean() + F.softplus(-real_scores).mean()


def generator_logistic_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """The non-saturating loss of G: ``E[softplus(-D(G(z)))]``."""
    return F.softplus(-fake_scores).mean()


def path_lengths(images: torch.Tensor, w_plus: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``||J_w^T y||_2`` per sample (StyleGAN2 Sec. 3.2): ``y ~ N(0, I) / sqrt(H W)``, the Jacobian taken w.r.t. the
    styles of every layer (squared norms averaged over the layers, as the original does). ``images`` may be the first
    rows of the batch ``w_plus`` made. The graph is kept."""
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype).to(images.device)
    noise = noise / math.sqrt(images.shape[2] * images.shape[3])
    (gradient,) = torch.autograd.grad((images * noise).sum(), w_plus, create_graph=True)
    return gradient[: images.shape[0]].square().sum(dim=2).mean(dim=1).sqrt()


def lazy_regularisation_factor(interval: int) -> float:
    """``c = interval / (interval + 1)``: the original scales the rate by ``c`` and the betas to the power ``c`` for
    an optimiser whose loss gets a regulariser every ``interval`` steps."""
    return interval / (interval + 1)


def lazy_adam(parameters, config: TrainingConfig, interval: int) -> torch.optim.Adam:
    """Adam with the config's rate and betas, corrected for a regulariser applied every ``interval`` steps (rate
    ``* c``, betas ``** c``, :func:`lazy_regularisation_factor`; ``interval`` 0: no regulariser, no correction)."""
    factor = lazy_regularisation_factor(interval) if interval else 1.0
    return torch.optim.Adam(parameters, lr=config.learning_rate * factor,
                            betas=(config.adam_beta1**factor, config.adam_beta2**factor))


def discriminator_step(ctx: StepContext, real: torch.Tensor, fake: torch.Tensor, r1_gamma: float,
                       r1_interval: int) -> dict[str, float]:
    """D's update: the logistic loss on ``real`` against ``fake`` (detached), plus ``gamma / 2`` R1 times the interval
    on its lazy steps; optimiser ``"discriminator"`` steps. Returns the logged scalars (``discriminator``,
    ``real_score``, ``fake_score`` and, on R1 steps, ``r1``)."""
    size = real.shape[0]
    regularise = r1_gamma > 0 and ctx.step % r1_interval == 0
    real = real.detach().requires_grad_(regularise)
    scores = ctx.models["discriminator"](torch.cat([real, fake.detach()])).scores
    real_scores, fake_scores = scores[:size], scores[size:]
    loss = discriminator_logistic_loss(real_scores, fake_scores)
    logs = {"discriminator": loss.detach().item(), "real_score": real_scores.detach().mean().item(),
            "fake_score": fake_scores.detach().mean().item()}
    if regularise:
        r1 = r1_penalty(real_scores, real)
        loss = loss + r1 * (r1_gamma / 2) * r1_interval
        logs["r1"] = r1.detach().item()
    ctx.optimize("discriminator", loss)
    return logs


# --------------------------------------------------------------------------------------------------------------------
# The method


class StyleGAN2Training(TrainingMethod):
    """StyleGAN2 config F in the shared loop; see the module docstring."""

    name = METHOD_NAME
    config_class = StyleGAN2TrainingConfig
    config: StyleGAN2TrainingConfig

    def __init__(self, config: StyleGAN2TrainingConfig):
        super().__init__(config)
        self.network: StyleGAN2Config = config.network()
        self.sample_steps = int(config.sample_steps)
        self.pl_mean = torch.zeros(())

    def build_models(self) -> dict[str, torch.nn.Module]:
        c = self.network
        return {"generator": StyleGAN2Generator(**c.generator_kwargs()),
                "discriminator": StyleGAN2Discriminator(**c.discriminator_kwargs())}

    def build_optimizers(self, models: dict[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        """Adam for G and D with the lazy-regularisation correction (module docstring)."""
        losses = self.config.losses
        return {
            "generator": lazy_adam(models["generator"].parameters(), self.config,
                                   losses.pl_interval if losses.pl_weight else 0),
            "discriminator": lazy_adam(models["discriminator"].parameters(), self.config,
                                       losses.r1_interval if losses.r1_gamma else 0),
        }

    def build_dataset(self) -> AlignedFaceImages:
        options = self.config.data
        data = AlignedFaceImages.from_sources(options.sources, options.synthetic, self.network.resolution,
                                              options.max_yaw, options.flip, self.config.seed)
        for table in data.tables:
            logger.info("data: %s: %d faces (%d with |yaw| > %g left out)", table.name, len(table.crops),
                        table.dropped, self.config.data.max_yaw)
        return data

    def ema_decays(self) -> dict[str, float]:
        """``G_ema`` with the half-life of ``losses.ema_half_life_images`` images (over every process's batch)."""
        return {"generator": half_life_decay(self.config, self.config.losses.ema_half_life_images)}

    def _latents(self, size: int, device: torch.device) -> dict[str, Any]:
        """``z`` for a batch, with a second ``z`` and the crossover layer when the batch mixes styles."""
        dim, num_ws = self.network.latent_dim, 2 * int(math.log2(self.network.resolution)) - 2
        latents = {"latents": torch.randn(size, dim, device=device)}
        if float(torch.rand(())) < self.config.losses.style_mixing:
            latents["mixing_latents"] = torch.randn(size, dim, device=device)
            latents["mixing_index"] = int(torch.randint(1, num_ws, ()))
        return latents

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        losses = self.config.losses
        real = batch["image"]
        size, device = real.shape[0], real.device
        generator = ctx.models["generator"]
        logs: dict[str, float] = {}

        # Generator: non-saturating loss through a frozen D, the path-length penalty on its lazy steps.
        generated = generator(**self._latents(size, device))
        generator_loss = generator_logistic_loss(ctx.frozen("discriminator", generated.images).scores)
        logs["generator"] = generator_loss.detach().item()
        if losses.pl_weight and ctx.step % losses.pl_interval == 0:
            subset = max(1, size // losses.pl_batch_shrink)
            lengths = path_lengths(generated.images[:subset], generated.w_plus)
            self.pl_mean = self.pl_mean.to(device)
            self.pl_mean = torch.lerp(self.pl_mean, lengths.detach().mean(), losses.pl_decay)
            penalty = (lengths - self.pl_mean).square().mean()
            generator_loss = generator_loss + penalty * losses.pl_weight * losses.pl_interval
            logs["path_length"] = lengths.detach().mean().item()
        ctx.optimize("generator", generator_loss)
        ctx.accelerator.unwrap_model(generator).update_w_avg(generated.w_plus[:, 0], losses.w_avg_beta)

        # Discriminator: logistic loss on the real batch and this step's samples, R1 on its lazy steps.
        logs.update(discriminator_step(ctx, real, generated.images, losses.r1_gamma, losses.r1_interval))
        return logs

    def sample_images(self, models: dict[str, torch.nn.Module], batch: dict[str, torch.Tensor]):
        """The same :data:`SAMPLE_COUNT` ``z`` (seed 0) every time, with the stored noise; then truncated to 0.7;
        then a batch of training faces for comparison."""
        generator = models["generator"]
        z = torch.randn(SAMPLE_COUNT, self.network.latent_dim, generator=torch.Generator().manual_seed(0))
        z = z.to(generator.const.device)
        return {
            "G_ema": generator(z, noise_mode="const").images,
            f"psi {SAMPLE_TRUNCATION}": generator(z, noise_mode="const", truncation_psi=SAMPLE_TRUNCATION).images,
            "training faces": batch["image"][:SAMPLE_COUNT],
        }

    def export(self, models: dict[str, torch.nn.Module], folder: Path) -> None:
        from facehub.modeling.stylegan2 import StyleGAN2Pipeline

        StyleGAN2Pipeline(image_generator=models["generator"],
                          discriminator=models["discriminator"]).save_pretrained(folder)

    def model_card(self) -> dict[str, Any]:
        c, data = self.network, self.config.data
        sources = [str(s) for s in data.sources]
        if data.synthetic:
            sources.append(f"the synthetic face world ({data.synthetic.get('num_identities', 8)} identities, one view "
                           "each)")
        return {
            "description": (
                f"StyleGAN2 (config F networks) trained with facehub, {self.config.model.preset} preset: "
                f"{c.resolution} px aligned face crops, latent {c.latent_dim}, {c.mapping_layers} mapping layers, "
                f"widths {list(c.channels)}. Trained on faces with |yaw| <= {data.max_yaw:g}: "
                f"{'; '.join(sources) or 'no data'}. The export holds G_ema and D."
            ),
            "tags": ["stylegan2", "gan", "face-generation", "unconditional-image-generation"],
            "pipeline_tag": "unconditional-image-generation",
        }


def main(argv: list[str] | None = None) -> int:
    from facehub.trainers.run import main as run_main

    return run_main(argv, method=METHOD_NAME)


if __name__ == "__main__":
    sys.exit(main())
