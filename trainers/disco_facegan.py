"""Training recipe of DiscoFaceGAN (Deng et al., CVPR 2020, seed 002: imitative-contrastive learning), plugged into
the shared loop.

Run: ``facehub train disco_facegan --preset cpu-small data.sources=[runs/data/faces]`` (``accelerate launch -m
facehub.trainers.disco_facegan`` works too); ``facehub train disco_facegan --help`` lists every setting.

Before the loop (:func:`fit_factor_vaes`): the face-fitting regressor (``losses.regressor``, the one the imitative
losses use) reads lambda = (identity shape + albedo, expression, SH lighting, pose) from every training crop; four
VAEs are fitted to those coefficients (Sec. 3.1, Supplement I; the first stage of Dai & Wipf's two-stage VAE). They
are saved in ``output_dir/factor_vaes`` and read back from there when a run resumes, so every step samples from the
same prior.

Per step, with ``z`` drawn for every factor, ``lambda = V(z)``, ``x = G(lambda, noise)`` and the morphable model's
render ``x_hat`` of lambda in the same aligned frame (:class:`~facehub.modeling.disco_facegan.FactorRenderer`):

- adversarial: StyleGAN2's non-saturating logistic loss for G (through a frozen D) and D, lazy R1 (as
  :mod:`facehub.trainers.stylegan2`); the generator's EMA is what samples and the export use;
- the schedule of the paper scaled to the preset (Supplement I): for the first ``losses.pixel_steps`` steps the
  mean L1 between ``x`` and ``x_hat`` on the rendered face, at half resolution (the paper's "pixel loss at low
  resolution", weight 20); then the imitative losses:

  - eq. 2 ``l_id = max(1 - cos(f_id(x), f_id(x_hat)) - tau, 0)``, tau = 0.3, with dlib's face ResNet as ``f_id``
    (the paper's face network is not available; ours is differentiable, :mod:`facehub.modeling.faces.dlib_resnet`);
  - eq. 3 ``l_lm = ||p(x) - p_hat||^2``: the regressor's 68 landmarks against the render's, in units of the image
    side, mean over the landmarks;
  - eq. 4 ``l_sh = |gamma(x) - gamma_hat|_1`` (mean over the 27 coefficients);
  - eq. 5 ``l_cl = |c(x) - c(x_hat)|_1``: the mean colour on the rendered face;

  with weights 3, 500, 10 and 20; from ``losses.contrastive_from`` on also the contrastive losses on pairs that differ
  in one factor (the first half of the batch gets a second expression, the second half a second lighting):

  - eq. 6 ``l_ex = |x(v) - x'|_1``: ``x`` warped into ``x'``'s geometry through the correspondence of the two renders
    (:func:`~facehub.modeling.disco_facegan.warp_to`), on ``x'``'s rendered face;
  - eq. 7 ``l_il1 = ||m(x) - m(x')||^2 + omega ||p(x) - p(x')||^2``; we have no face-parsing network for the hair map
    ``m``, so only the landmark term is used (omega = 1000 as in the paper);
  - eq. 8 ``l_il2 = 1 - cos(f_id(x), f_id(x'))``;

  with weights 10, 10 and 20, and the landmark weight lowered to 100 (Supplement I).

The regressor reads a generated face through the crop it was trained on (PRNet's square around the landmarks,
placed on the render's landmarks, resampled differentiably), so ``p(x)`` and ``gamma(x)`` carry gradients to G.
Departures, all for a CPU budget: one resolution (no progressive growing: the pixel phase stands in for the
<= 32 px stages), style mixing off (Sec. 4: "discard the style-mixing strategy"), and ``model.synthesis_from`` can start
the synthesis network and D from a trained facehub StyleGAN2 (the mapping network's first layer, which reads the
factors, always starts fresh).

Logged: every loss above, D's scores, ``landmark_error_px`` (mean distance of ``p(x)`` from ``p_hat`` in pixels) and
``identity_cosine`` (cos(f_id(x), f_id(x_hat))). Samples: for fixed factors, the render, the generated face, the same
identity with new expressions, lightings and poses (-30, 0, +30 degrees).

Export: :class:`~facehub.modeling.disco_facegan.DiscoFaceGANPipeline` (``image_generator`` = G_ema, ``factor_vaes``).
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from facehub.modeling.disco_facegan import (
    DISCO_FACEGAN_PRESETS,
    FACTORS,
    DiscoFaceGANConfig,
    FactorRender,
    FactorRenderer,
    FactorVAEs,
    disco_facegan_config,
    factor_dims,
    generator_input,
)
from facehub.modeling.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator, stylegan2_config
from facehub.trainers.core import StepContext, TrainingConfig, TrainingMethod
from facehub.trainers.core.config import ConfigError, ConfigSection, ModelSection
from facehub.trainers.core.gan import half_life_decay
from facehub.trainers.data.aligned_faces import AlignedFaceImages
from facehub.trainers.losses.imitation import (
    FaceReader,
    colour_loss,
    cosine_distance,
    expression_contrastive_loss,
    identity_imitation_loss,
    landmark_loss,
    lighting_loss,
    pixel_loss,
)
from facehub.trainers.stylegan2 import discriminator_step, generator_logistic_loss, lazy_adam

logger = logging.getLogger(__name__)

METHOD_NAME = "disco_facegan"
#: Training faces whose mean dlib descriptor centres the identity features (:meth:`FaceReader.identity_features`).
IDENTITY_CENTRE_FACES = 512
#: Faces in the sample grid, and their seed.
SAMPLE_COUNT = 6
SAMPLE_SEED = 0


# --------------------------------------------------------------------------------------------------------------------
# Config


@dataclass
class DiscoFaceGANModelConfig(ModelSection):
    """``model``: a :data:`~facehub.modeling.disco_facegan.DISCO_FACEGAN_PRESETS` name plus overrides.

    Fields:
        preset: ``paper`` (256 px networks) or ``cpu-small`` (64 px).
        latent_dims: z width per factor (``{identity: 40, expression: 10, lighting: 16, pose: 3}``).
        hidden_dims: VAE hidden width per factor.
        noise_dim: width of the noise factor.
        resolution, latent_dim, mapping_layers, channels, mapping_lr_multiplier: overrides of the StyleGAN2
            preset's networks.
        synthesis_from: a facehub StyleGAN2 folder whose synthesis network and discriminator start this run.
    """

    model_presets: ClassVar[dict[str, dict[str, Any]]] = DISCO_FACEGAN_PRESETS

    preset: str = "cpu-small"
    latent_dims: dict[str, int] | None = None
    hidden_dims: dict[str, int] | None = None
    noise_dim: int | None = None
    resolution: int | None = None
    latent_dim: int | None = None
    mapping_layers: int | None = None
    channels: list[int] | None = None
    mapping_lr_multiplier: float | None = None
    synthesis_from: str | None = None

    def network_overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("latent_dims", "hidden_dims", "noise_dim") if getattr(self, k) is not None}

    def stylegan2_overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("resolution", "latent_dim", "mapping_layers", "channels",
                                              "mapping_lr_multiplier") if getattr(self, k) is not None}


@dataclass
class DiscoFaceGANDataConfig(ConfigSection):
    """``data``: the real faces D sees and the regressor reads the factor distribution from.

    Fields:
        sources: ``facehub prepare`` folders.
        synthetic: a synthetic face world with one view per identity (``SyntheticWorldConfig`` fields) or ``null``.
        max_yaw: faces turned further than this (degrees) are left out.
        flip: random left-right flips of the real faces D sees.
    """

    sources: list[str] = field(default_factory=list)
    synthetic: dict[str, Any] | None = None
    max_yaw: float = 60.0
    flip: bool = True

    def __post_init__(self):
        if not 0 < self.max_yaw <= 180:
            raise ConfigError(f"Got {self.max_yaw} for `data.max_yaw`; expected degrees in (0, 180].")


@dataclass
class DiscoFaceGANLossesConfig(ConfigSection):
    """``losses``: weights and schedule (Supplement I) and the networks the imitation reads with.

    Fields:
        pixel_weight: the early pixel loss (20).
        identity_weight, landmark_weight, lighting_weight, colour_weight: eq. 2-5 (3, 500, 10, 20).
        contrastive_landmark_weight: ``landmark_weight`` once the contrastive losses are on (100).
        expression_weight, illumination_weight, illumination_identity_weight: eq. 6, 7, 8 (10, 10, 20).
        illumination_landmark_omega: omega of eq. 7 (1000).
        pixel_steps: steps with the pixel loss before the imitative losses take over.
        contrastive_from: step from which the contrastive losses are on (0: never).
        regressor: the face-fitting checkpoint whose regressor reads lambda (``facehub/face-fitting``; never the
            evaluation-only ``facehub/face-fitting-eval``).
        r1_gamma, r1_interval, ema_half_life_images: as in :mod:`facehub.trainers.stylegan2` (a half-life of 0
            exports G itself).
        vae_steps, vae_batch_size, vae_learning_rate: the factor VAEs' fit before the loop.
    """

    pixel_weight: float = 20.0
    identity_weight: float = 3.0
    landmark_weight: float = 500.0
    lighting_weight: float = 10.0
    colour_weight: float = 20.0
    contrastive_landmark_weight: float = 100.0
    expression_weight: float = 10.0
    illumination_weight: float = 10.0
    illumination_identity_weight: float = 20.0
    illumination_landmark_omega: float = 1000.0
    pixel_steps: int = 200
    contrastive_from: int = 1500
    regressor: str = "facehub/face-fitting"
    r1_gamma: float = 0.05
    r1_interval: int = 16
    ema_half_life_images: float = 5000.0
    vae_steps: int = 1500
    vae_batch_size: int = 256
    vae_learning_rate: float = 1e-3

    def __post_init__(self):
        for name in ("pixel_weight", "identity_weight", "landmark_weight", "lighting_weight", "colour_weight",
                     "contrastive_landmark_weight", "expression_weight", "illumination_weight",
                     "illumination_identity_weight", "illumination_landmark_omega", "pixel_steps", "contrastive_from",
                     "r1_gamma", "ema_half_life_images", "vae_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"Got {getattr(self, name)} for `losses.{name}`; it must be 0 or more.")
        for name in ("r1_interval", "vae_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"Got {getattr(self, name)} for `losses.{name}`; it must be at least 1.")
        if "face-fitting-eval" in str(self.regressor):
            raise ConfigError("`losses.regressor` is the evaluation-only regressor; the generator must be graded by a "
                              "network it was not trained against. Use facehub/face-fitting.")


@dataclass
class DiscoFaceGANTrainingConfig(TrainingConfig):
    """DiscoFaceGAN training: StyleGAN2's optimiser (Adam, betas (0, 0.99)) plus :class:`DiscoFaceGANModelConfig`,
    :class:`DiscoFaceGANDataConfig` and :class:`DiscoFaceGANLossesConfig`.

    Presets: ``paper`` (256 px, the paper's image counts: imitative to 15M images, contrastive to 20M, at batch 32)
    and ``cpu-small`` (64 px on two CPU cores, batch 8, 2,000 steps: the pixel loss for the first 700, the imitative
    losses alone for the next 700, the contrastive losses added for the last 600). The paper spends most of its
    low-resolution stages on the pixel loss; a first cpu-small run with 150 pixel steps of 1,600 ignored the pose and
    expression factors (the evaluation regressor read the same yaw, -3 degrees, for faces asked at -25, 0 and +25),
    so the pixel phase takes about a third of the run here; and the mapping network learns at the full rate
    (``mapping_lr_multiplier`` 1 instead of StyleGAN2's 0.01): its first layer, which reads the factors, starts
    fresh, and at a hundredth of the rate it could not learn to steer the synthesis in a few thousand steps. No
    generator average either (``ema_half_life_images`` 0 exports G itself): in a 16,000-image run StyleGAN2's
    5,000-image half-life averages over the steps in which control is still forming, and the averaged generator's yaw
    followed the asked yaw less than G's (-8.6 / -2.3 / +5.7 degrees read for -25 / 0 / +25 asked against
    +2.3 / +4.4 / +4.7).
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {
            "max_steps": 625_000, "train_batch_size": 32, "learning_rate": 0.002, "adam_beta1": 0.0,
            "adam_beta2": 0.99, "max_grad_norm": None, "checkpointing_steps": 5000, "logging_steps": 100,
            "model": {"preset": "paper"},
            "losses": {"pixel_steps": 60_000, "contrastive_from": 468_750, "r1_gamma": 10.0,
                       "ema_half_life_images": 10_000.0},
        },
        "cpu-small": {
            "max_steps": 2000, "train_batch_size": 8, "learning_rate": 0.002, "adam_beta1": 0.0,
            "adam_beta2": 0.99, "max_grad_norm": None, "checkpointing_steps": 200, "checkpoints_total_limit": 2,
            "logging_steps": 25,
            "model": {"preset": "cpu-small", "mapping_lr_multiplier": 1.0},
            "losses": {"pixel_steps": 700, "contrastive_from": 1400, "ema_half_life_images": 0.0},
        },
    }

    method: str = METHOD_NAME
    train_batch_size: int = 16
    learning_rate: float = 0.002
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99
    max_grad_norm: float | None = None
    sample_steps: int = 250
    model: DiscoFaceGANModelConfig = field(default_factory=DiscoFaceGANModelConfig)
    data: DiscoFaceGANDataConfig = field(default_factory=DiscoFaceGANDataConfig)
    losses: DiscoFaceGANLossesConfig = field(default_factory=DiscoFaceGANLossesConfig)

    def __post_init__(self):
        super().__post_init__()
        if self.sample_steps < 0:
            raise ConfigError(f"Got {self.sample_steps} for `sample_steps`; use 0 (none) or a positive interval.")
        self.model.validate(lambda **settings: disco_facegan_config(**settings),
                            {"preset": self.model.preset, **self.model.network_overrides()})
        self.model.validate(lambda **settings: self.stylegan2(), {})
        if self.train_batch_size < 2 or self.train_batch_size % 2:
            raise ConfigError(f"Got {self.train_batch_size} for `train_batch_size`; the contrastive pairs split the "
                              "batch in two halves, so use an even size of at least 2.")

    def network(self) -> DiscoFaceGANConfig:
        return disco_facegan_config(self.model.preset, **self.model.network_overrides())

    def stylegan2(self):
        return stylegan2_config(self.network().stylegan2_preset, **self.model.stylegan2_overrides())


# --------------------------------------------------------------------------------------------------------------------
# Data and the factor VAEs


@torch.no_grad()
def read_coefficients(reader: FaceReader, crops: np.ndarray, landmarks: np.ndarray,
                      batch_size: int = 128) -> dict[str, torch.Tensor]:
    """lambda of every training crop as the regressor reads it: ``identity`` (shape + albedo), ``expression``,
    ``lighting`` (27), ``pose`` (radians)."""
    parts: dict[str, list[torch.Tensor]] = {factor: [] for factor in FACTORS}
    for start in range(0, len(crops), batch_size):
        images = torch.from_numpy(crops[start:start + batch_size]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        read = reader.regress(images, torch.from_numpy(landmarks[start:start + batch_size]).float())
        parts["identity"].append(torch.cat([read["identity"], read["albedo"]], dim=1))
        parts["expression"].append(read["expression"])
        parts["lighting"].append(read["lighting"])
        parts["pose"].append(read["rotation"])
    return {factor: torch.cat(values) for factor, values in parts.items()}


def fit_factor_vaes(coefficients: dict[str, torch.Tensor], network: DiscoFaceGANConfig, steps: int,
                    batch_size: int = 256, learning_rate: float = 1e-3, seed: int = 0,
                    warmup_fraction: float = 0.3) -> tuple[FactorVAEs, dict]:
    """Fit the four VAEs to ``coefficients`` (module docstring); returns them and the last losses per factor.

    The KL term's weight rises linearly from 0 to 1 over the first ``warmup_fraction`` of the steps (KL annealing,
    Bowman et al. 2016): with the full weight from the start, a decoder that has not yet learned to use ``z`` can
    settle on ignoring it, and the pose VAE did so for pitch in one of two initialisations (its samples spread 1.4
    degrees of pitch against the data's 11). Everything, the initial weights included, follows ``seed``.
    """
    torch.manual_seed(seed)
    dims = {factor: int(values.shape[1]) for factor, values in coefficients.items()}
    vaes = FactorVAEs(dims, network.latent_dims, network.hidden_dims)
    for factor, values in coefficients.items():
        vaes.set_statistics(factor, values)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(list(vaes.parameters()), lr=learning_rate)
    count = len(next(iter(coefficients.values())))
    warmup = max(1, int(warmup_fraction * steps))
    last: dict[str, dict[str, float]] = {}
    for step in range(int(steps)):
        index = torch.randint(0, count, (min(batch_size, count),), generator=generator)
        kl_weight = min(1.0, (step + 1) / warmup)
        losses = {factor: vaes.loss(factor, values[index], kl_weight) for factor, values in coefficients.items()}
        total = sum(loss["total"] for loss in losses.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        last = {factor: {key: float(value.detach()) for key, value in loss.items()} for factor, loss in losses.items()}
    return vaes.eval().requires_grad_(False), last


# --------------------------------------------------------------------------------------------------------------------
# The method


def _select(lam: dict[str, torch.Tensor], rows: slice) -> dict[str, torch.Tensor]:
    return {key: value[rows] for key, value in lam.items()}


class DiscoFaceGANTraining(TrainingMethod):
    """Imitative-contrastive training of seed 002 in the shared loop; see the module docstring."""

    name = METHOD_NAME
    config_class = DiscoFaceGANTrainingConfig
    config: DiscoFaceGANTrainingConfig

    def __init__(self, config: DiscoFaceGANTrainingConfig):
        super().__init__(config)
        self.network: DiscoFaceGANConfig = config.network()
        self.gan = config.stylegan2()
        self.sample_steps = int(config.sample_steps)
        self.reader: FaceReader | None = None
        self.renderer = FactorRenderer(self.gan.resolution)
        self.vaes: FactorVAEs | None = None
        self.vae_losses: dict = {}
        self.data_count = 0

    # -- set-up ----------------------------------------------------------------------------------------------------

    def face_reader(self, device=None) -> FaceReader:
        if self.reader is None:
            self.reader = FaceReader(self.config.losses.regressor, self.renderer.face_model)
        return self.reader.to(device) if device is not None else self.reader

    def build_models(self) -> dict[str, torch.nn.Module]:
        dims = factor_dims(self.renderer.face_model.num_identity, self.renderer.face_model.num_albedo,
                           self.renderer.face_model.num_expression)
        generator = StyleGAN2Generator(**self.gan.generator_kwargs(), input_dim=self.network.generator_input_dim(dims),
                                       normalize_input=False)
        discriminator = StyleGAN2Discriminator(**self.gan.discriminator_kwargs())
        if self.config.model.synthesis_from:
            self._start_from_stylegan2(generator, discriminator, self.config.model.synthesis_from)
        return {"generator": generator, "discriminator": discriminator}

    @staticmethod
    def _start_from_stylegan2(generator, discriminator, source: str) -> None:
        """Copy every tensor of a trained StyleGAN2 but the mapping network's first layer (it reads the factors
        here) and ``w_avg``. Equalised weights are stored as ``weight / lr_multiplier``, so the mapping layers are
        rescaled when the two networks' multipliers differ: the copied layers compute what they computed there."""
        from facehub.modeling.stylegan2 import StyleGAN2Pipeline

        trained = StyleGAN2Pipeline.from_pretrained(source)
        ratio = (float(trained.image_generator.config.mapping_lr_multiplier)
                 / float(generator.config.mapping_lr_multiplier))
        copied = 0
        for target, origin in ((generator, trained.image_generator), (discriminator, trained.discriminator)):
            if origin is None:
                continue
            own = target.state_dict()
            for key, value in origin.state_dict().items():
                if key.startswith("mapping.0.") or key == "w_avg" or key not in own:
                    continue
                if own[key].shape != value.shape:
                    raise ConfigError(f"model.synthesis_from {source}: {key} is {tuple(value.shape)} there and "
                                      f"{tuple(own[key].shape)} here; match model.* to that StyleGAN2.")
                own[key] = value * ratio if target is generator and key.startswith("mapping.") else value
                copied += 1
            target.load_state_dict(own)
        logger.info("synthesis network and discriminator start from %s (%d tensors)", source, copied)

    def build_optimizers(self, models: dict[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        losses = self.config.losses
        return {"generator": lazy_adam(models["generator"].parameters(), self.config, 0),
                "discriminator": lazy_adam(models["discriminator"].parameters(), self.config,
                                           losses.r1_interval if losses.r1_gamma else 0)}

    def build_dataset(self) -> AlignedFaceImages:
        data = self.config.data
        dataset = AlignedFaceImages.from_sources(data.sources, data.synthetic, self.gan.resolution, data.max_yaw,
                                                 data.flip, self.config.seed)
        for table in dataset.tables:
            logger.info("data: %s: %d faces (%d with |yaw| > %g left out)", table.name, len(table.crops),
                        table.dropped, data.max_yaw)
        self.data_count = len(dataset)
        self.vaes = self._factor_vaes(dataset)
        chosen = np.random.default_rng(self.config.seed).permutation(len(dataset))[:IDENTITY_CENTRE_FACES]
        self.face_reader().centre_identity(dataset.crops[np.sort(chosen)])
        return dataset

    def _factor_vaes(self, dataset: AlignedFaceImages) -> FactorVAEs:
        """The VAEs of ``output_dir/factor_vaes`` when a resumed run saved them, else fitted now and saved there."""
        from accelerate import PartialState

        folder = Path(self.config.output_dir) / "factor_vaes"
        if (folder / "config.json").is_file():
            logger.info("factor VAEs: %s (fitted by this run before)", folder)
            return FactorVAEs.from_pretrained(folder).eval().requires_grad_(False)
        losses = self.config.losses
        coefficients = read_coefficients(self.face_reader(), dataset.crops, dataset.landmarks)
        vaes, self.vae_losses = fit_factor_vaes(coefficients, self.network, losses.vae_steps, losses.vae_batch_size,
                                                losses.vae_learning_rate, self.config.seed)
        for factor, values in self.vae_losses.items():
            logger.info("factor VAE %s: reconstruction %.3f (standardised MSE), KL %.2f", factor,
                        values["reconstruction"], values["kl"])
        state = PartialState()
        if state.is_main_process:
            vaes.save_pretrained(folder)
        state.wait_for_everyone()
        return vaes

    def ema_decays(self) -> dict[str, float]:
        return {"generator": half_life_decay(self.config, self.config.losses.ema_half_life_images)}

    # -- sampling --------------------------------------------------------------------------------------------------

    def sample_lambda(self, count: int, device, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        lam = self.vaes.to(device).sample(count, generator=generator)
        return lam

    def noise(self, count: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(count, self.network.noise_dim, generator=generator).to(device)

    def generate(self, generator: torch.nn.Module, lam: dict[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
        return generator(generator_input(self.vaes, lam, noise), noise_mode="random").images

    # -- the step --------------------------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        losses = self.config.losses
        real = batch["image"]
        size, device = real.shape[0], real.device
        reader = self.face_reader(device)
        generator = ctx.models["generator"]
        contrastive = bool(losses.contrastive_from) and ctx.step >= losses.contrastive_from
        pixel_phase = ctx.step < losses.pixel_steps
        logs: dict[str, float] = {}

        lam = self.sample_lambda(size, device)
        noise = self.noise(size, device)
        inputs = [generator_input(self.vaes, lam, noise)]
        if contrastive:
            half = size // 2
            second = self.sample_lambda(size, device)
            expression_lam = {**_select(lam, slice(0, half)), "expression": second["expression"][:half]}
            lighting_lam = {**_select(lam, slice(half, size)), "lighting": second["lighting"][half:]}
            paired_lam = {key: torch.cat([expression_lam[key], lighting_lam[key]]) for key in FACTORS}
            inputs.append(generator_input(self.vaes, paired_lam, noise))
        images = generator(torch.cat(inputs), noise_mode="random").images
        x = images[:size]
        render = self.renderer.render(lam)

        total = generator_logistic_loss(ctx.frozen("discriminator", x).scores)
        logs["generator"] = total.detach().item()
        if pixel_phase:
            pixels = pixel_loss(x, render)
            total = total + losses.pixel_weight * pixels
            logs["pixel"] = pixels.detach().item()
        else:
            read = reader.regress(x, render.landmarks68)
            features = reader.identity_features(torch.cat([x, render.image]))
            identity = identity_imitation_loss(features[:size], features[size:].detach())
            landmarks = landmark_loss(read["landmarks68"], render.landmarks68, x.shape[-1])
            lighting = lighting_loss(read["lighting"], lam["lighting"])
            colour = colour_loss(x, render.image, render.mask)
            landmark_weight = losses.contrastive_landmark_weight if contrastive else losses.landmark_weight
            total = total + (losses.identity_weight * identity + landmark_weight * landmarks
                             + losses.lighting_weight * lighting + losses.colour_weight * colour)
            with torch.no_grad():
                logs.update(identity=identity.item(), landmark=landmarks.item(), lighting=lighting.item(),
                            colour=colour.item(), landmark_error_px=(read["landmarks68"] - render.landmarks68)
                            .norm(dim=-1).mean().item(),
                            identity_cosine=F.cosine_similarity(features[:size], features[size:]).mean().item())
            if contrastive:
                paired = images[size:]
                paired_render = self.renderer.render(paired_lam)
                expression = expression_contrastive_loss(x[:half], paired[:half], _render_rows(render, slice(0, half)),
                                                         _render_rows(paired_render, slice(0, half)))
                paired_read = reader.regress(paired[half:], paired_render.landmarks68[half:])
                illumination = losses.illumination_landmark_omega * landmark_loss(
                    read["landmarks68"][half:], paired_read["landmarks68"], x.shape[-1])
                paired_features = reader.identity_features(paired[half:])
                illumination_identity = cosine_distance(features[half:size], paired_features)
                total = total + (losses.expression_weight * expression + losses.illumination_weight * illumination
                                 + losses.illumination_identity_weight * illumination_identity)
                logs.update(expression_contrastive=expression.detach().item(),
                            illumination_contrastive=illumination.detach().item(),
                            illumination_identity=illumination_identity.detach().item())
        ctx.optimize("generator", total)
        ctx.accelerator.unwrap_model(generator).update_w_avg(
            ctx.accelerator.unwrap_model(generator).map(inputs[0]).detach())

        logs.update(discriminator_step(ctx, real, x, losses.r1_gamma, losses.r1_interval))
        return logs

    # -- samples, export, card -------------------------------------------------------------------------------------

    def sample_images(self, models: dict[str, torch.nn.Module], batch: dict[str, torch.Tensor]):
        """Fixed factors (seed 0): the render, the face, then the same faces with one factor changed: new expressions,
        new lightings, and yaw -30, 0, +30 degrees."""
        generator = models["generator"]
        device = generator.const.device
        seed = torch.Generator().manual_seed(SAMPLE_SEED)
        lam = self.sample_lambda(SAMPLE_COUNT, device, seed)
        other = self.sample_lambda(SAMPLE_COUNT, device, seed)
        noise = self.noise(SAMPLE_COUNT, device, seed)

        def draw(values):
            return generator(generator_input(self.vaes, values, noise), noise_mode="const").images

        rows = {"render": self.renderer.render(lam).image, "generated": draw(lam),
                "new expression": draw({**lam, "expression": other["expression"]}),
                "new lighting": draw({**lam, "lighting": other["lighting"]})}
        for yaw in (-30.0, 0.0, 30.0):
            pose = lam["pose"].clone()
            pose[:, 0] = math.radians(yaw)
            rows[f"yaw {yaw:+.0f}"] = draw({**lam, "pose": pose})
        return rows

    def export(self, models: dict[str, torch.nn.Module], folder: Path) -> None:
        from facehub.modeling.disco_facegan import DiscoFaceGANPipeline

        DiscoFaceGANPipeline(image_generator=models["generator"], factor_vaes=self.vaes).save_pretrained(folder)

    def model_card(self) -> dict[str, Any]:
        data, losses = self.config.data, self.config.losses
        sources = [str(s) for s in data.sources]
        if data.synthetic:
            sources.append(f"the synthetic face world ({data.synthetic.get('num_identities', 8)} identities, one view "
                           "each)")
        start = (f" The synthesis network and D started from the StyleGAN2 {self.config.model.synthesis_from}."
                 if self.config.model.synthesis_from else "")
        return {
            "description": (
                f"DiscoFaceGAN (seed 002) trained with facehub, {self.config.model.preset} preset: {self.gan.resolution} "
                f"px aligned faces generated from identity, expression, lighting, pose and noise factors. Real faces "
                f"({self.data_count}, |yaw| <= {data.max_yaw:g}): {'; '.join(sources) or 'no data'}. Factor VAEs fitted "
                f"to the coefficients {losses.regressor}'s regressor reads from them. Schedule: pixel loss for "
                f"{losses.pixel_steps} steps, imitative losses (eq. 2-5) after, contrastive losses (eq. 6-8) from step "
                f"{losses.contrastive_from or 'never'}. Identity features: dlib's face ResNet; eq. 7 without its "
                f"hair-segmentation term (no face-parsing network).{start}"
            ),
            "tags": ["disco-facegan", "stylegan2", "face-generation", "disentanglement", "3dmm"],
            "pipeline_tag": "unconditional-image-generation",
        }


def _render_rows(render: FactorRender, rows: slice) -> FactorRender:
    return FactorRender(render.image[rows], render.mask[rows], render.landmarks68[rows], render.vertices[rows],
                        render.face_index[rows], render.barycentric[rows], render.triangles)


def main(argv: list[str] | None = None) -> int:
    from facehub.trainers.run import main as run_main

    return run_main(argv, method=METHOD_NAME)


if __name__ == "__main__":
    sys.exit(main())
