"""Training recipe of StyleFaceUV (seed 004) in the shared loop: the three stages of the paper.

Run: ``facehub train stylefaceuv --preset cpu-small model.backbone=PATH_TO_A_STYLEGAN2`` (a ``facehub train
stylegan2`` export or a converted checkpoint), or ``model.oracle={style_dim: 32}`` for the oracle mode below.

Stages 1 and 2 run once before the loop (their networks are saved in ``output_dir/style_to_coefficients`` and
``output_dir/yaw_step`` and reused when the run resumes); stage 3 is the loop:

- :func:`fit_style_to_coefficients` (Sec. 3.2.1): F_3D by the L1 distance between predicted and fitted
  coefficients (standardised, so every coefficient weighs alike), Adam with the learning rate decayed by cosine to a
  thousandth of its start (the paper decays 1e-3 to a small value over 22 epochs of batch 16).
- :func:`estimate_yaw_direction` (Sec. 3.2.2): the yaw of many stylecodes read by F_3D, then the linear SVM on the
  top and bottom 2%.
- :func:`fit_yaw_step` (eq. 2): F_yaw, taught by F_3D itself: a stylecode moved by a known step ``s`` along ``d``
  has the yaw ``a`` that F_3D reads from it, and F_yaw learns to give ``s`` back from ``(w, a)`` (L1 in units of
  the largest step).

- the UV generator (:func:`uv_reconstruction_loss`): a StyleGAN2 synthesis network writing diffuse RGB (a
  residual over the morphable model's albedo) and displacement, initialised from the backbone's synthesis network
  with its ToRGB layers at zero (so its maps start as the morphable model's face), reads a stylecode ``w``; its maps render the face of ``F_3D(w)`` and of the symmetric stylecode
  ``w_sym = w + F_yaw(w, -yaw(w)) d`` (the same face at the mirrored yaw, drawn by the backbone); the generator
  minimises eq. 8: for each view ``lambda_rec * L_rec + L_adv``, the symmetric view weighted by ``lambda_mv``;
  ``L_rec`` is eq. 4: eq. 5's photometric loss with the visibility weights plus ``lambda_percept`` (0.2) times a
  perceptual distance between the render and the target masked to the rendered face (VGG-16's weights cannot be
  downloaded here: the features are the first layers of dlib's face ResNet,
  :func:`facehub.trainers.losses.perceptual.feature_network`, their mean squared differences averaged over three
  taps); the discriminator (the backbone's, when the checkpoint has one) learns every
  ``losses.generator_steps_per_discriminator_step``-th step (5 in the paper) with the logistic loss and R1 (eq. 7),
  on the backbone's images masked to the rendered face against the renders (both black elsewhere: the renders have
  no background).

The pairs of stages 1 and 2 come from the backbone (stylecodes of normal draws, and the face-fitting regressor's
reading of their images) or, in oracle mode, from
:class:`~facehub.trainers.data.stylefaceuv_oracle.OracleStyleGenerator`, which plays the 2D generator with exact
coefficients and exact symmetric views.

Logged: ``photometric``, ``photometric_symmetric``, ``generator`` (the adversarial terms), and on discriminator
steps ``discriminator``, ``real_score``, ``fake_score``, ``r1``. Samples: target, render, symmetric target,
symmetric render, and the render turned to yaw -30 / 0 / +30. Export:
:class:`~facehub.modeling.stylefaceuv.StyleFaceUVPipeline` (oracle runs export the three networks alone: there is
no 2D generator to bundle: the UV generator's folder, with ``style_to_coefficients/`` and ``yaw_step/`` in it).
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
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from facehub.modeling.stylefaceuv import (
    PAPER_FRACTION,
    PAPER_HIDDEN_MULTIPLIERS,
    DetailedFaceRenderer,
    StyleToCoefficients,
    YawDirection,
    YawStepMapper,
    at_yaw,
    linear_svm_direction,
)
from facehub.trainers.core import StepContext, TrainingConfig, TrainingMethod
from facehub.trainers.core.config import ConfigError, ConfigSection


def _cosine_lr(optimizer: torch.optim.Optimizer, start: float, step: int, steps: int, floor: float = 1e-3) -> None:
    scale = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * step / max(1, steps)))
    for group in optimizer.param_groups:
        group["lr"] = start * scale


def fit_style_to_coefficients(styles: torch.Tensor, lam: dict[str, torch.Tensor], steps: int = 2000,
                              batch_size: int = 64, learning_rate: float = 1e-3,
                              hidden_multipliers=PAPER_HIDDEN_MULTIPLIERS, seed: int = 0,
                              progress: bool = True) -> tuple[StyleToCoefficients, float]:
    """F_3D fitted to (N, style_dim) stylecodes and their coefficients; returns the model and its last batch L1."""
    torch.manual_seed(seed)
    model = StyleToCoefficients(style_dim=int(styles.shape[1]),
                                factor_dims={f: int(v.shape[1]) for f, v in lam.items()},
                                hidden_multipliers=list(hidden_multipliers))
    model.set_normalisation(lam)
    targets = model.standardise(lam).detach()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    loss = torch.zeros(())
    for step in tqdm(range(int(steps)), desc="F_3D", disable=not progress, leave=False):
        _cosine_lr(optimizer, learning_rate, step, steps)
        chosen = torch.randint(0, len(styles), (batch_size,), generator=generator)
        loss = (model.standardised(styles[chosen]) - targets[chosen]).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval(), float(loss.detach())


@torch.no_grad()
def estimate_yaw_direction(f3d: StyleToCoefficients, styles: torch.Tensor,
                           fraction: float = PAPER_FRACTION) -> YawDirection:
    """The SVM yaw direction of ``styles`` (the paper samples 200,000) with yaws read by F_3D."""
    yaw = torch.cat([f3d(chunk)["pose"][:, 0] for chunk in styles.split(4096)])
    return linear_svm_direction(styles, yaw, fraction)


def fit_yaw_step(f3d: StyleToCoefficients, direction: torch.Tensor, styles: torch.Tensor, max_step: float,
                 steps: int = 1000, batch_size: int = 128, learning_rate: float = 1e-3, num_hidden_layers: int = 2,
                 seed: int = 0, progress: bool = True) -> tuple[YawStepMapper, float]:
    """F_yaw for the yaw ``direction``, with steps drawn in [-max_step, max_step] (module docstring)."""
    torch.manual_seed(seed)
    model = YawStepMapper(style_dim=int(styles.shape[1]), num_hidden_layers=num_hidden_layers)
    model.direction.copy_(direction / direction.norm())
    model.step_scale.fill_(float(max_step))
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    f3d.requires_grad_(False)
    loss = torch.zeros(())
    for step in tqdm(range(int(steps)), desc="F_yaw", disable=not progress, leave=False):
        _cosine_lr(optimizer, learning_rate, step, steps)
        chosen = torch.randint(0, len(styles), (batch_size,), generator=generator)
        w = styles[chosen]
        shift = (2.0 * torch.rand(batch_size, generator=generator) - 1.0) * max_step
        with torch.no_grad():
            reached = f3d(w + shift[:, None] * model.direction)["pose"][:, 0]
        loss = ((model(w, reached) - shift) / max_step).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval(), float(loss.detach())


#: Sec. 4.1: lambda_mv, the symmetric view's weight in eq. 8-9.
PAPER_LAMBDA_MV = 0.75


@dataclass
class TwoViews:
    """Both views rendered with the maps the UV generator draws from their own stylecodes, and eq. 5 on each,
    weighted by :func:`~facehub.modeling.stylefaceuv.rendering.symmetric_view_weights`."""

    original: Any
    mirrored: Any
    photometric: torch.Tensor
    photometric_symmetric: torch.Tensor


def render_two_views(renderer, uv_generator, styles: torch.Tensor, lam: dict[str, torch.Tensor], target: torch.Tensor,
                     symmetric_styles: torch.Tensor, symmetric_lam: dict[str, torch.Tensor],
                     symmetric_target: torch.Tensor, overlap_weight: float | None = None,
                     max_displacement: float | None = None, noise_mode: str = "const") -> TwoViews:
    """The original and the symmetric view of each face, rendered and scored by eq. 5 (see :class:`TwoViews`)."""
    from facehub.modeling.stylefaceuv.rendering import (
        MAX_DISPLACEMENT,
        OVERLAP_WEIGHT,
        photometric_loss,
        symmetric_view_weights,
    )

    both = uv_generator(torch.cat([styles, symmetric_styles]), input_is_w=True, noise_mode=noise_mode).images
    both_lam = {key: torch.cat([lam[key], symmetric_lam[key]]) for key in lam}
    diffuse, displacement = renderer.maps(both, both_lam,
                                          MAX_DISPLACEMENT if max_displacement is None else max_displacement)
    count = len(styles)
    original = renderer.render(lam, diffuse[:count], displacement[:count])
    mirrored = renderer.render(symmetric_lam, diffuse[count:], displacement[count:])
    weights, symmetric_weights = symmetric_view_weights(
        original, mirrored, diffuse.shape[-1], OVERLAP_WEIGHT if overlap_weight is None else overlap_weight)
    return TwoViews(original, mirrored, photometric_loss(original.image, target, weights),
                    photometric_loss(mirrored.image, symmetric_target, symmetric_weights))


def uv_reconstruction_loss(renderer, uv_generator, styles: torch.Tensor, lam: dict[str, torch.Tensor],
                           target: torch.Tensor, symmetric_styles: torch.Tensor,
                           symmetric_lam: dict[str, torch.Tensor], symmetric_target: torch.Tensor,
                           lambda_mv: float = PAPER_LAMBDA_MV, overlap_weight: float | None = None,
                           max_displacement: float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 5 on both views (:func:`render_two_views`), combined as eq. 8: ``L(original) + lambda_mv *
    L(symmetric)``. Returns the loss and its parts."""
    views = render_two_views(renderer, uv_generator, styles, lam, target, symmetric_styles, symmetric_lam,
                             symmetric_target, overlap_weight, max_displacement)
    loss = views.photometric + lambda_mv * views.photometric_symmetric
    return loss, {"photometric": float(views.photometric.detach()),
                  "photometric_symmetric": float(views.photometric_symmetric.detach())}


# --------------------------------------------------------------------------------------------------------------------
# The method in the shared loop

logger = logging.getLogger(__name__)

METHOD_NAME = "stylefaceuv"
SAMPLE_COUNT = 6


@dataclass
class StyleFaceUVModelConfig(ConfigSection):
    """``model``: the backbone and the three networks.

    Fields:
        backbone: a StyleGAN2 (``StyleGAN2Pipeline`` folder or id, or a ``DiscoFaceGANPipeline`` bundle, whose
            generator is drawn through its factor prior) whose faces become 3D; required unless ``oracle``.
        oracle: settings of :class:`~facehub.trainers.data.stylefaceuv_oracle.OracleStyleGenerator` (e.g.
            ``{style_dim: 32}``) to train against the synthetic world instead of a backbone; ``null`` otherwise.
        f3d_hidden_multipliers: F_3D's hidden widths in units of the stylecode width ((9, 6, 3) in the paper).
        yaw_hidden_layers: F_yaw's hidden layers.
        uv_channels: the UV generator's widths at 4, 8, ... px (``null``: the backbone's, so it starts from it).
        mesh_resolution: the dense mesh's UV raster (:class:`~facehub.modeling.stylefaceuv.DetailedFaceRenderer`).
    """

    backbone: str | None = None
    oracle: dict[str, Any] | None = None
    f3d_hidden_multipliers: list[int] = field(default_factory=lambda: [9, 6, 3])
    yaw_hidden_layers: int = 2
    uv_channels: list[int] | None = None
    mesh_resolution: int = 128

    def __post_init__(self):
        if not self.f3d_hidden_multipliers or any(int(m) <= 0 for m in self.f3d_hidden_multipliers):
            raise ConfigError(f"Got {self.f3d_hidden_multipliers} for `model.f3d_hidden_multipliers`; expected "
                              "positive multipliers ([9, 6, 3] in the paper).")
        if not 16 <= int(self.mesh_resolution) <= 512:
            raise ConfigError(f"Got {self.mesh_resolution} for `model.mesh_resolution`; expected 16 to 512.")


@dataclass
class StyleFaceUVLossesConfig(ConfigSection):
    """``losses``: stages 1-2 and the weights of eq. 4-9 (Sec. 4.1: gamma 10, lambda_mv 0.75, lambda_rec 10).

    Fields:
        f3d_pairs: (stylecode, coefficients) pairs for F_3D (36,000 in the paper). f3d_steps: its Adam steps.
        svm_samples: stylecodes whose F_3D yaw places the SVM (200,000 in the paper). svm_fraction: 0.02.
        yaw_steps: F_yaw's Adam steps. max_yaw_step: the largest step along d F_yaw learns (in W's units).
        reconstruction_weight: lambda_rec. multiview_weight: lambda_mv. adversarial_weight: on the GAN terms.
        perceptual_weight: lambda_percept (0.2; 0 leaves the perceptual term out). feature_network: its features
            (``dlib-resnet``, or ``vgg16`` with ``feature_weights``, a safetensors file of torchvision's vgg16).
        overlap_weight: the symmetric view's weight on texels the original also sees.
        r1_gamma: gamma of eq. 7. generator_steps_per_discriminator_step: 5 in the paper.
    """

    f3d_pairs: int = 36_000
    f3d_steps: int = 20_000
    svm_samples: int = 200_000
    svm_fraction: float = PAPER_FRACTION
    yaw_steps: int = 5_000
    max_yaw_step: float = 3.0
    reconstruction_weight: float = 10.0
    multiview_weight: float = PAPER_LAMBDA_MV
    adversarial_weight: float = 1.0
    perceptual_weight: float = 0.2
    feature_network: str = "dlib-resnet"
    feature_weights: str | None = None
    overlap_weight: float = 0.5
    r1_gamma: float = 10.0
    generator_steps_per_discriminator_step: int = 5

    def __post_init__(self):
        for name in ("f3d_pairs", "f3d_steps", "svm_samples", "yaw_steps", "generator_steps_per_discriminator_step"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"Got {getattr(self, name)} for `losses.{name}`; it must be at least 1.")
        if not 0 < self.svm_fraction <= 0.5:
            raise ConfigError(f"Got {self.svm_fraction} for `losses.svm_fraction`; expected (0, 0.5].")
        for name in ("reconstruction_weight", "multiview_weight", "adversarial_weight", "overlap_weight", "r1_gamma",
                     "max_yaw_step", "perceptual_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"Got {getattr(self, name)} for `losses.{name}`; it must be 0 or more.")


@dataclass
class StyleFaceUVTrainingConfig(TrainingConfig):
    """StyleFaceUV training: the shared fields (Adam 0.001 for G and D, batch 12, as Sec. 4.1) plus
    :class:`StyleFaceUVModelConfig` and :class:`StyleFaceUVLossesConfig`. ``num_styles``: stylecodes per epoch
    (seeded draws; the paper renders 38,820 images).

    Presets: ``paper`` and ``cpu-small`` (F_3D at (3, 2, 1) x the width, 4,000 pairs, 20,000 SVM samples, batch 4,
    a 96 px mesh raster).
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"max_steps": 38_820, "train_batch_size": 12, "learning_rate": 0.001, "checkpointing_steps": 2000,
                  "logging_steps": 50},
        "cpu-small": {"max_steps": 1000, "train_batch_size": 4, "learning_rate": 0.002, "checkpointing_steps": 250,
                      "checkpoints_total_limit": 2, "logging_steps": 25, "num_styles": 4000,
                      "model": {"f3d_hidden_multipliers": [3, 2, 1], "mesh_resolution": 96},
                      "losses": {"f3d_pairs": 4000, "f3d_steps": 3000, "svm_samples": 20_000, "yaw_steps": 1500,
                                 "r1_gamma": 0.05}},
    }

    method: str = METHOD_NAME
    train_batch_size: int = 12
    learning_rate: float = 0.001
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99
    max_grad_norm: float | None = None
    sample_steps: int = 250
    num_styles: int = 38_820
    model: StyleFaceUVModelConfig = field(default_factory=StyleFaceUVModelConfig)
    losses: StyleFaceUVLossesConfig = field(default_factory=StyleFaceUVLossesConfig)

    def __post_init__(self):
        super().__post_init__()
        if self.num_styles < self.train_batch_size:
            raise ConfigError(f"Got {self.num_styles} for `num_styles`; it must be at least one batch "
                              f"({self.train_batch_size}).")


class StyleSeeds(Dataset):
    """``num_styles`` normal latents, each a pure function of its index (so a resumed run sees the same ones)."""

    def __init__(self, count: int, width: int, seed: int):
        self.count, self.width, self.seed = int(count), int(width), int(seed)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
        return {"z": torch.randn(self.width, generator=generator)}

    def latents(self) -> torch.Tensor:
        """(count, width) every latent, in order."""
        return torch.stack([self[i]["z"] for i in range(len(self))])


class BackboneSource:
    """A trained StyleGAN2 as the 2D generator (a plain one or DiscoFaceGAN's: :mod:`facehub.modeling.stylefaceuv.
    backbone`): stylecodes, images, and coefficients read by the face-fitting regressor (stage 1's labels)."""

    def __init__(self, source: str):
        from facehub.modeling.stylefaceuv.backbone import load_backbone

        self.backbone = load_backbone(source)
        self.generator = self.backbone.generator
        self.discriminator = self.backbone.discriminator
        self.latent_width = self.backbone.latent_width
        self.style_dim = int(self.generator.latent_dim)
        self.resolution = int(self.generator.config.resolution)
        self._reader = None

    def styles(self, z: torch.Tensor) -> torch.Tensor:
        return self.backbone.styles(z)

    def images(self, styles: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.generator(styles, input_is_w=True, noise_mode="const").images.clamp(-1, 1)

    @torch.no_grad()
    def coefficients(self, styles: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
        """What ``facehub/face-fitting``'s regressor reads from the images of ``styles``, through its crop located
        in two passes from the average face's (as ``facehub eval disco_facegan`` locates it)."""
        from facehub.modeling.disco_facegan import FactorRenderer
        from facehub.trainers.losses.imitation import FaceReader

        if self._reader is None:
            renderer = FactorRenderer(self.resolution)
            self._reader = FaceReader("facehub/face-fitting", renderer.face_model)
            self._start = renderer.mean_face_landmarks()
        reads = [self._reader.as_lambda(self._reader.read_located(self.images(chunk), self._start))
                 for chunk in styles.split(batch_size)]
        return {key: torch.cat([read[key] for read in reads]) for key in reads[0]}


class OracleSource:
    """:class:`~facehub.trainers.data.stylefaceuv_oracle.OracleStyleGenerator` as the 2D generator (exact answers)."""

    def __init__(self, settings: dict[str, Any], resolution: int | None = None):
        from facehub.trainers.data.stylefaceuv_oracle import OracleStyleGenerator

        try:
            self.oracle = OracleStyleGenerator(**settings)
        except TypeError as err:
            raise ConfigError(f"`model.oracle` has an unknown setting ({err}); its settings are those of "
                              "OracleStyleGenerator.") from None
        self.style_dim, self.resolution = self.oracle.style_dim, self.oracle.image_size
        self.latent_width = self.style_dim  # the oracle's stylecodes are its normal draws
        self.discriminator = None

    def styles(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def images(self, styles: torch.Tensor) -> torch.Tensor:
        return self.oracle.images(styles.cpu()).to(styles.device)

    def coefficients(self, styles: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.to(styles.device) for k, v in self.oracle.coefficients(styles.cpu()).items()}


class StyleFaceUVTraining(TrainingMethod):
    """StyleFaceUV's three stages in the shared loop; see the module docstring."""

    name = METHOD_NAME
    config_class = StyleFaceUVTrainingConfig
    config: StyleFaceUVTrainingConfig

    def __init__(self, config: StyleFaceUVTrainingConfig):
        super().__init__(config)
        model = config.model
        if (model.backbone is None) == (model.oracle is None):
            raise ConfigError("Set exactly one of `model.backbone` (a StyleGAN2 export or converted checkpoint) and "
                              "`model.oracle` (e.g. {style_dim: 32, detail: true}).")
        self.source = BackboneSource(model.backbone) if model.backbone else OracleSource(model.oracle)
        self.renderer = DetailedFaceRenderer(self.source.resolution, model.mesh_resolution)
        self.f3d: StyleToCoefficients | None = None
        self.yaw_step: YawStepMapper | None = None
        self.features = None

    # -- stages 1 and 2 ------------------------------------------------------------------------------------------

    def _prepare_mappers(self) -> None:
        """Stages 1 and 2: the main process fits F_3D and F_yaw (or finds them saved by this run before) and saves
        them in ``output_dir``; every process then loads the saved ones."""
        from accelerate import PartialState

        folder = Path(self.config.output_dir)
        state = PartialState()
        if state.is_main_process:
            self._fit_mappers(folder)
        state.wait_for_everyone()
        self.f3d = StyleToCoefficients.from_pretrained(folder / "style_to_coefficients").eval().requires_grad_(False)
        self.yaw_step = YawStepMapper.from_pretrained(folder / "yaw_step").eval().requires_grad_(False)

    def _fit_mappers(self, folder: Path) -> None:
        losses = self.config.losses
        if (folder / "style_to_coefficients" / "config.json").is_file():
            logger.info("stage 1: F_3D from %s (fitted by this run before)", folder / "style_to_coefficients")
            f3d = StyleToCoefficients.from_pretrained(folder / "style_to_coefficients").eval()
        else:
            draws = StyleSeeds(losses.f3d_pairs, self._input_dim(), self.config.seed + 1)
            styles = self.source.styles(draws.latents()).cpu()
            logger.info("stage 1: F_3D on %d (stylecode, coefficient) pairs", len(styles))
            lam = {k: v.cpu() for k, v in self.source.coefficients(styles).items()}
            f3d, loss = fit_style_to_coefficients(styles, lam, losses.f3d_steps,
                                                  hidden_multipliers=self.config.model.f3d_hidden_multipliers,
                                                  seed=self.config.seed)
            logger.info("stage 1: F_3D's last L1 (standardised coefficients): %.3f", loss)
            f3d.save_pretrained(folder / "style_to_coefficients")
        if (folder / "yaw_step" / "config.json").is_file():
            logger.info("stage 2: F_yaw from %s (fitted by this run before)", folder / "yaw_step")
            return
        draws = StyleSeeds(losses.svm_samples, self._input_dim(), self.config.seed + 2)
        styles = self.source.styles(draws.latents()).cpu()
        direction = estimate_yaw_direction(f3d, styles, losses.svm_fraction)
        logger.info("stage 2: yaw direction from %d + %d stylecodes (yaw below %.1f / above %.1f degrees), SVM "
                    "accuracy %.3f", direction.count, direction.count, math.degrees(direction.margin_yaw[0]),
                    math.degrees(direction.margin_yaw[1]), direction.accuracy)
        yaw_step, loss = fit_yaw_step(f3d, direction.direction, styles, losses.max_yaw_step, losses.yaw_steps,
                                      num_hidden_layers=self.config.model.yaw_hidden_layers, seed=self.config.seed)
        logger.info("stage 2: F_yaw's last L1 (in units of the largest step): %.3f", loss)
        yaw_step.save_pretrained(folder / "yaw_step")

    def _input_dim(self) -> int:
        return int(self.source.latent_width)

    # -- the loop's hooks ----------------------------------------------------------------------------------------

    def build_models(self) -> dict[str, torch.nn.Module]:
        from facehub.modeling.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

        backbone = getattr(self.source, "generator", None)
        resolution = self.source.resolution
        channels = self.config.model.uv_channels or (list(backbone.config.channels) if backbone is not None
                                                     else [64] * (int(math.log2(resolution)) - 1))
        uv_generator = StyleGAN2Generator(resolution=resolution, latent_dim=self.source.style_dim, mapping_layers=1,
                                          channels=channels, image_channels=4)
        if backbone is not None:
            _start_from_backbone(uv_generator, backbone)
        zero_uv_output(uv_generator)
        discriminator = StyleGAN2Discriminator(resolution=resolution, channels=channels)
        if self.source.discriminator is not None and list(self.source.discriminator.config.channels) == channels:
            discriminator.load_state_dict(self.source.discriminator.state_dict())
        return {"uv_generator": uv_generator, "discriminator": discriminator}

    def build_optimizers(self, models):
        betas = (self.config.adam_beta1, self.config.adam_beta2)
        return {name: torch.optim.Adam(model.parameters(), lr=self.config.learning_rate, betas=betas)
                for name, model in models.items()}

    def build_dataset(self) -> StyleSeeds:
        self._prepare_mappers()
        return StyleSeeds(self.config.num_styles, self._input_dim(), self.config.seed)

    def _views(self, styles: torch.Tensor):
        """Stylecodes, coefficients and target images of the original and the symmetric view."""
        device = styles.device
        f3d, yaw_step = self.f3d.to(device), self.yaw_step.to(device)
        lam = {k: v.to(device) for k, v in f3d(styles).items()}
        if isinstance(self.source, OracleSource):
            symmetric = self.source.oracle.symmetric(styles.cpu()).to(device)
        else:
            symmetric = yaw_step.turn(styles, -lam["pose"][:, 0])
        symmetric_lam = {k: v.to(device) for k, v in f3d(symmetric).items()}
        return (styles, lam, self.source.images(styles), symmetric, symmetric_lam, self.source.images(symmetric))

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        losses = self.config.losses
        self.renderer.to(batch["z"].device)
        with torch.no_grad():
            styles, lam, target, symmetric, symmetric_lam, symmetric_target = self._views(
                self.source.styles(batch["z"]))
        views = render_two_views(self.renderer, ctx.models["uv_generator"], styles, lam, target, symmetric,
                                 symmetric_lam, symmetric_target, losses.overlap_weight, noise_mode="random")
        original, mirrored = views.original, views.mirrored
        photometric, photometric_symmetric = views.photometric, views.photometric_symmetric
        count = len(styles)
        renders = torch.cat([original.image, mirrored.image])
        masks = torch.cat([original.mask, mirrored.mask]).detach()
        real = torch.cat([target, symmetric_target]) * masks + (masks - 1.0)  # the face only, black elsewhere
        perceptual = perceptual_symmetric = renders.new_zeros(())
        if losses.perceptual_weight > 0:
            from facehub.trainers.losses.perceptual import feature_network, feature_reconstruction_loss

            if self.features is None:
                self.features = feature_network(losses.feature_network, losses.feature_weights)
            features = self.features.to(renders.device)
            perceptual = feature_reconstruction_loss(features, real[:count], original.image, reduction="mean")
            perceptual_symmetric = feature_reconstruction_loss(features, real[count:], mirrored.image,
                                                               reduction="mean")
        adversarial = F.softplus(-ctx.frozen("discriminator", renders).scores)
        adversarial = adversarial[:count].mean() + losses.multiview_weight * adversarial[count:].mean()
        reconstruction = photometric + losses.perceptual_weight * perceptual
        symmetric_reconstruction = photometric_symmetric + losses.perceptual_weight * perceptual_symmetric
        total = (losses.reconstruction_weight * (reconstruction + losses.multiview_weight * symmetric_reconstruction)
                 + losses.adversarial_weight * adversarial)
        ctx.optimize("uv_generator", total)
        logs = {"photometric": photometric.item(), "photometric_symmetric": photometric_symmetric.item(),
                "generator": adversarial.item()}
        if losses.perceptual_weight > 0:
            logs.update(perceptual=perceptual.item(), perceptual_symmetric=perceptual_symmetric.item())
        if ctx.step % losses.generator_steps_per_discriminator_step == 0:
            from facehub.trainers.stylegan2 import discriminator_step

            logs.update(discriminator_step(ctx, real, renders.detach(), losses.r1_gamma, 1))
        return logs

    @torch.no_grad()
    def sample_images(self, models, batch):
        generator = models["uv_generator"]
        device = generator.const.device
        self.renderer.to(device)
        draws = StyleSeeds(SAMPLE_COUNT, self._input_dim(), 7)
        styles = self.source.styles(draws.latents().to(device))
        styles, lam, target, symmetric, symmetric_lam, symmetric_target = self._views(styles)
        diffuse, displacement = self.renderer.maps(
            generator(torch.cat([styles, symmetric]), input_is_w=True, noise_mode="const").images,
            {key: torch.cat([lam[key], symmetric_lam[key]]) for key in lam})
        rows = {"target": target, "render": self.renderer.render(lam, diffuse[:SAMPLE_COUNT],
                                                                 displacement[:SAMPLE_COUNT]).image,
                "symmetric target": symmetric_target,
                "symmetric render": self.renderer.render(symmetric_lam, diffuse[SAMPLE_COUNT:],
                                                         displacement[SAMPLE_COUNT:]).image}
        for yaw in (-30.0, 0.0, 30.0):
            rows[f"render yaw {yaw:+.0f}"] = self.renderer.render(at_yaw(lam, yaw), diffuse[:SAMPLE_COUNT],
                                                                  displacement[:SAMPLE_COUNT]).image
        return rows

    def export(self, models, folder: Path) -> None:
        from facehub.modeling.stylefaceuv import StyleFaceUVPipeline

        if isinstance(self.source, OracleSource):  # the UV generator at the root, the mappers beside it
            models["uv_generator"].save_pretrained(folder)
            for name, model in (("style_to_coefficients", self.f3d), ("yaw_step", self.yaw_step)):
                model.save_pretrained(Path(folder) / name)
            return
        StyleFaceUVPipeline(image_generator=self.source.generator, style_to_coefficients=self.f3d,
                            yaw_step=self.yaw_step, uv_generator=models["uv_generator"],
                            factor_vaes=self.source.backbone.factor_vaes).save_pretrained(folder)

    def model_card(self) -> dict[str, Any]:
        model, losses = self.config.model, self.config.losses
        source = (f"the StyleGAN2 {model.backbone}" if model.backbone else
                  f"the oracle (the synthetic world as the 2D generator, {model.oracle})")
        return {
            "description": (
                f"StyleFaceUV (seed 004) trained with facehub on {source}: F_3D on {losses.f3d_pairs} (stylecode, "
                f"coefficient) pairs, the yaw direction by a linear SVM on {losses.svm_samples} stylecodes, F_yaw, "
                f"and the UV generator (diffuse and displacement maps, a {model.mesh_resolution} px mesh raster) "
                f"with eq. 5's photometric loss on the original and symmetric views (lambda_mv "
                f"{losses.multiview_weight}), a perceptual term on {losses.feature_network} features (weight "
                f"{losses.perceptual_weight}; VGG-16's weights cannot be downloaded here) and the adversarial loss."
            ),
            "tags": ["stylefaceuv", "stylegan2", "3d-face", "uv-map", "3dmm"],
            "pipeline_tag": "unconditional-image-generation",
        }


def _start_from_backbone(uv_generator, backbone) -> None:
    """Copy the backbone's synthesis network (every tensor of the same name and shape but the mapping network's)
    into the UV generator, as the paper initialises its 3D generator from the StyleGAN2."""
    own = uv_generator.state_dict()
    for key, value in backbone.state_dict().items():
        if not key.startswith("mapping.") and key in own and own[key].shape == value.shape:
            own[key] = value.clone()
    uv_generator.load_state_dict(own)


@torch.no_grad()
def zero_uv_output(uv_generator) -> None:
    """Zero the UV generator's ToRGB convolutions and biases: its maps then start as the morphable model's albedo
    and no displacement (:func:`~facehub.modeling.stylefaceuv.rendering.uv_maps`); the gradients still reach the
    convolutions (their inputs are not zero)."""
    for layer in uv_generator.to_rgbs:
        layer.conv.weight.zero_()
        layer.bias.zero_()


def main(argv: list[str] | None = None) -> int:
    from facehub.trainers.run import main as run_main

    return run_main(argv, method=METHOD_NAME)


if __name__ == "__main__":
    sys.exit(main())
