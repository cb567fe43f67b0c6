"""Training recipe of the pose-conditioned CVAE-GAN (Morikawa & Saito, "Deep Face Rotation with Ordinary Dataset",
seed 000, section 3.2 and Algorithm 1), plugged into the shared loop.

Run: ``facehub train pose_cvaegan --preset cpu-small data.sources=[runs/data/aflw] data.synthetic.num_identities=1000``
or ``accelerate launch -m facehub.trainers.pose_cvaegan --preset cpu-small ...``. ``facehub train pose_cvaegan
--help`` lists every setting.

Data (:class:`PoseLabelledFaces`). Single-view faces with a head pose and no identity pairs, as in the paper (which
used CelebA labelled by a head-pose estimator): ``data.sources`` are ``facehub prepare`` folders (pose from the
FaceAnalyzer, or from the morphable-model fit with ``--fit``), and ``data.synthetic`` renders one view per identity
of the synthetic face world (exact pose), so no identity is ever seen twice. Every face is aligned with the
FaceAnalyzer's crop (:func:`facehub.modeling.faces.alignment.align_face`, the crop the rotation pipeline uses),
resized to the model's ``image_size`` and kept in memory; faces with |yaw| > ``data.max_yaw`` (45, section 4.1) are
dropped. The pose code is ``angle / pose_unit_degrees`` clipped to [-1, 1] (section 4.2). Random left-right flips
(``data.flip``) negate yaw and roll; they are a pure function of seed, epoch and sample, so resuming is exact.

Attributes (``data.attributes``): CelebA has 40 binary attributes per photo; our data has none, so

- ``dataset``: the ``attributes`` column of the prepared dataset (``facehub prepare --attributes list_attr.txt``);
- ``shape_signs`` (the substitute): the signs of the first ``num_attributes`` identity-shape coefficients of the
  morphable model (exact for synthetic faces, fitted for photos prepared with ``--fit``). Like CelebA's attributes
  they describe the person, not the pose, which is what the attribute-consistency loss (eq. 8) relies on;
- ``none``: no attributes (``model.num_attributes`` must then be 0);
- ``auto`` (default): ``dataset`` when every source has ``num_attributes`` attributes, else ``shape_signs``.

Objective, per step (Algorithm 1, lambda1 = ``losses.reconstruction_weight`` = 3e-5, lambda2 =
``losses.image_gan_weight`` = 1e-3):

- ``z_x = E(x, eps)``; ``G`` draws the reconstruction ``G(z_x, y_x)``, a prior sample ``G(z, y_p)`` with ``z ~ N(0, I)``
  and the rotated encoding ``G(z_x, y_p)``, where ``y_p`` are the batch's own pose labels in a random order
  (Algorithm 1 line 6, "y_p same label as y_x": poses drawn from the data's distribution).
- E and G minimise ``lambda1 L_rec + L_codeGAN + lambda2 L_imgGAN + L_pose + L_attr``: eq. 1 (feature
  reconstruction, :func:`facehub.trainers.losses.perceptual.feature_reconstruction_loss`), eq. 4 (fool D1), eq. 5
  (fool D2; zero while pre-training), eq. 7 (P reads ``y_p`` on ``G(z, y_p)``; with
  ``losses.pose_loss_on_encoded`` also on ``G(z_x, y_p)``) and eq. 8 (P's attributes of ``G(z_x, y_p)`` match those
  of ``x``). P, D1 and D2 are read through frozen copies (``ctx.frozen``): this step sends them no gradient.
- D1 minimises eq. 2 on (x, z) pairs: prior samples are "real", encodings ``z_x`` are not.
- D2 minimises eq. 3 on photos against prior samples ``G(z, y_p)``; not during the first
  ``losses.pretraining_steps`` steps (Algorithm 1 line 8-9).
- P minimises eq. 6: squared error of the pose code plus the attributes' binary cross-entropy, on photos.

Every loss is computed with the networks as they were at the start of the step, and then each optimiser steps
(Algorithm 1 lines 13-16): four Adam optimisers (``generator`` over E and G, ``predictor``,
``code_discriminator``, ``image_discriminator``), 1e-4, betas (0.9, 0.999), batch 32 (section 4.2).

Logged: every loss, ``reconstruction_l1`` (mean absolute pixel error of ``G(z_x, y_x)``, in [0, 2]) and
``predictor_yaw_error`` (P's yaw error on the photos, degrees). Samples (``sample_steps``): inputs, reconstructions and
each face re-generated at yaw -45 ... +45.

Export: ``PoseCVAEGANRotationPipeline(encoder=E, generator=G, predictor=P).save_pretrained(export/)`` plus the model card;
D1 and D2 live in the checkpoints.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from facehub.modeling.pose_cvaegan import (
    POSE_CVAEGAN_PRESETS,
    CodeDiscriminator,
    ImageDiscriminator,
    PoseCVAEGANConfig,
    PoseEncoder,
    PoseGenerator,
    PosePredictor,
    pose_cvaegan_config,
)
from facehub.trainers.core import StepContext, TrainingConfig, TrainingMethod
from facehub.trainers.core.config import ConfigError, ConfigSection, ModelSection
from facehub.trainers.data.aligned_faces import FaceTable, aligned_face_table, face_sources

logger = logging.getLogger(__name__)

METHOD_NAME = "pose_cvaegan"
ATTRIBUTE_SOURCES = ("auto", "dataset", "shape_signs", "none")
#: Yaws of the sample grid's rows, degrees.
SAMPLE_YAWS = (-45.0, -22.5, 0.0, 22.5, 45.0)


# --------------------------------------------------------------------------------------------------------------------
# Config


@dataclass
class PoseCVAEGANModelConfig(ModelSection):
    """``model``: a :data:`~facehub.modeling.pose_cvaegan.POSE_CVAEGAN_PRESETS` name (``paper``, ``cpu-small``) plus
    overrides of :class:`~facehub.modeling.pose_cvaegan.PoseCVAEGANConfig`'s fields (``null``: the preset's value).

    Fields:
        preset: ``paper`` (Table 1, 96 px) or ``cpu-small`` (64 px, narrower).
        image_size: side of the face crops.
        latent_size: width of the latent ``z``.
        num_pose: pose values (yaw, pitch, roll).
        num_attributes: binary attributes P predicts (0: none).
        channels: widths of Conv1 and the three residual blocks.
        hidden_size: width of the FC layers.
        pose_unit_degrees: degrees that a pose value of 1 stands for.
        inception: Inception modules in the residual blocks of E, G and P.
        leaky_slope: LeakyReLU slope.
    """

    model_presets: ClassVar[dict[str, dict[str, Any]]] = POSE_CVAEGAN_PRESETS

    preset: str = "cpu-small"
    image_size: int | None = None
    latent_size: int | None = None
    num_pose: int | None = None
    num_attributes: int | None = None
    channels: list[int] | None = None
    hidden_size: int | None = None
    pose_unit_degrees: float | None = None
    inception: bool | None = None
    leaky_slope: float | None = None


@dataclass
class PoseCVAEGANDataConfig(ConfigSection):
    """``data``: the single-view faces (see the module docstring).

    Fields:
        sources: ``facehub prepare`` folders (photos or ``prepare --synthetic`` output).
        synthetic: a synthetic face world rendered at the start with one view per identity (any
            ``SyntheticWorldConfig`` field; ``views_per_identity`` is always 1); ``null`` for none.
        max_yaw: faces turned further than this (degrees) are left out (45: section 4.1).
        attributes: ``auto``, ``dataset``, ``shape_signs`` or ``none`` (module docstring).
        flip: random left-right flips (yaw and roll change sign).
    """

    sources: list[str] = field(default_factory=list)
    synthetic: dict[str, Any] | None = None
    max_yaw: float = 45.0
    attributes: Literal["auto", "dataset", "shape_signs", "none"] = "auto"
    flip: bool = True

    def __post_init__(self):
        if not 0 < self.max_yaw <= 90:
            raise ConfigError(f"Got {self.max_yaw} for `data.max_yaw`; expected degrees in (0, 90].")
        if self.attributes not in ATTRIBUTE_SOURCES:
            raise ConfigError(f"Got {self.attributes!r} for `data.attributes`; expected one of {ATTRIBUTE_SOURCES}.")
        if self.synthetic is not None and not isinstance(self.synthetic, dict):
            raise ConfigError(f"Got {self.synthetic!r} for `data.synthetic`; give SyntheticWorldConfig fields "
                              "(e.g. {num_identities: 1000}) or null.")


@dataclass
class PoseCVAEGANLossesConfig(ConfigSection):
    """``losses``: Algorithm 1's weights and schedule, and the feature network of eq. 1.

    Fields:
        reconstruction_weight: lambda1, the weight of the feature reconstruction loss (eq. 1): 3e-5.
        image_gan_weight: lambda2, the weight of the image GAN loss (eq. 5): 1e-3.
        pretraining_steps: steps at the start without the image GAN (D2 is not trained, eq. 3 and 5 are 0).
        feature_network: ``dlib-resnet`` (default; the face network that ships with dlib) or ``vgg16`` (needs
            ``feature_weights``); see :mod:`facehub.trainers.losses.perceptual`.
        feature_weights: safetensors file of torchvision's VGG16 ``state_dict`` for ``feature_network: vgg16``.
        pose_loss_on_encoded: also apply the pose condition loss (eq. 7) to ``G(z_x, y_p)``, the rotated encodings
            (ours; the paper applies it to prior samples only).
    """

    reconstruction_weight: float = 3e-5
    image_gan_weight: float = 1e-3
    pretraining_steps: int = 0
    feature_network: Literal["dlib-resnet", "vgg16"] = "dlib-resnet"
    feature_weights: str | None = None
    pose_loss_on_encoded: bool = False

    def __post_init__(self):
        for name in ("reconstruction_weight", "image_gan_weight", "pretraining_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"Got {getattr(self, name)} for `losses.{name}`; it must be 0 or more.")
        if self.feature_network == "vgg16" and not self.feature_weights:
            raise ConfigError("`losses.feature_network` is vgg16 but `losses.feature_weights` is not set; give a "
                              "safetensors file of torchvision's vgg16 state_dict, or use dlib-resnet.")


@dataclass
class PoseCVAEGANTrainingConfig(TrainingConfig):
    """Pose CVAE-GAN training: the shared fields with the paper's optimiser (Adam 1e-4, betas (0.9, 0.999),
    batch 32, no gradient clipping) plus :class:`PoseCVAEGANModelConfig`, :class:`PoseCVAEGANDataConfig` and
    :class:`PoseCVAEGANLossesConfig`.

    Presets: ``paper`` (Table 1 at 96 px, Algorithm 1's weights) and ``cpu-small`` (64 px; what the embedded
    default was trained with). ``cpu-small`` departs from the paper in three settings, each for the budget of two CPU
    cores: lambda1 = 3e-4 instead of 3e-5, because the paper's weight balances the squared sums of VGG16 features,
    whose scale differs from the dlib features used here (with 3e-5 the reconstruction barely moves in a short run;
    with 3e-2 it outweighs the pose condition loss so far that G ignored the requested pose: its pose loss stayed at
    the level of a generator that does not read the pose code for 800 steps); a learning rate of 5e-4 instead of
    1e-4, so that 2,200 steps get somewhere; and the pose loss on the rotated encodings as well.
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {
            "max_steps": 200_000, "train_batch_size": 32, "learning_rate": 1e-4, "adam_beta1": 0.9,
            "adam_beta2": 0.999, "max_grad_norm": None, "checkpointing_steps": 5000, "logging_steps": 100,
            "model": {"preset": "paper"},
            "losses": {"reconstruction_weight": 3e-5, "image_gan_weight": 1e-3, "pretraining_steps": 20_000},
        },
        "cpu-small": {
            "max_steps": 2200, "train_batch_size": 32, "learning_rate": 5e-4, "adam_beta1": 0.9,
            "adam_beta2": 0.999, "max_grad_norm": None, "checkpointing_steps": 250, "checkpoints_total_limit": 2,
            "logging_steps": 25,
            "model": {"preset": "cpu-small"},
            "losses": {"reconstruction_weight": 3e-4, "image_gan_weight": 1e-3, "pretraining_steps": 700,
                       "pose_loss_on_encoded": True},
            "data": {"synthetic": {"num_identities": 1500, "image_size": 128, "max_yaw": 45.0, "seed": 1}},
        },
    }

    method: str = METHOD_NAME
    train_batch_size: int = 32
    max_grad_norm: float | None = None
    sample_steps: int = 250
    model: PoseCVAEGANModelConfig = field(default_factory=PoseCVAEGANModelConfig)
    data: PoseCVAEGANDataConfig = field(default_factory=PoseCVAEGANDataConfig)
    losses: PoseCVAEGANLossesConfig = field(default_factory=PoseCVAEGANLossesConfig)

    def __post_init__(self):
        super().__post_init__()
        if self.sample_steps < 0:
            raise ConfigError(f"Got {self.sample_steps} for `sample_steps`; use 0 (none) or a positive interval.")
        self.model.validate(lambda **settings: pose_cvaegan_config(**settings),
                            {"preset": self.model.preset, **self.model.overrides()})
        network = self.network()
        if self.data.attributes == "none" and network.num_attributes:
            raise ConfigError(f"`data.attributes` is none but the model predicts {network.num_attributes} "
                              "attributes; set model.num_attributes=0 as well.")

    def network(self) -> PoseCVAEGANConfig:
        return pose_cvaegan_config(self.model.preset, **self.model.overrides())


# --------------------------------------------------------------------------------------------------------------------
# Data


def shape_sign_attributes(shape_coefficients, count: int) -> np.ndarray | None:
    """The substitute attributes: ``1`` where identity-shape coefficient ``k < count`` is positive; ``None`` when
    the row has fewer coefficients (or none)."""
    values = np.asarray(shape_coefficients if shape_coefficients is not None else [], np.float32).ravel()
    if values.size < count or (count and not np.any(values)):
        return None
    return (values[:count] > 0).astype(np.float32)


def _choose_attributes(tables_rows: list, requested: str, num_attributes: int, synthetic: bool) -> str:
    """``data.attributes`` resolved: ``auto`` is ``dataset`` when every prepared source has ``num_attributes``
    attributes per face (and there is no synthetic world), else ``shape_signs``."""
    if num_attributes == 0:
        return "none"
    if requested != "auto":
        return requested
    if synthetic or not tables_rows:
        return "shape_signs"
    for rows in tables_rows:
        first = rows[0]
        if len(first.get("attributes") or []) != num_attributes:
            return "shape_signs"
    return "dataset"


class PoseLabelledFaces(Dataset):
    """Items ``{"image": (3, S, S) in [-1, 1], "pose": (3,) pose code, "attributes": (A,) 0/1}`` from single-view
    faces (module docstring). Flips depend only on ``(seed, epoch, index)``."""

    def __init__(self, tables: list[FaceTable], pose_unit_degrees: float, flip: bool = True, seed: int = 0):
        self.tables = tables
        self.crops = np.concatenate([t.crops for t in tables])
        self.poses = np.concatenate([t.poses for t in tables])
        self.attributes = np.concatenate([t.attributes for t in tables])
        self.pose_unit_degrees = float(pose_unit_degrees)
        self.flip, self.seed, self.epoch = bool(flip), int(seed), 0

    @classmethod
    def from_config(cls, data: PoseCVAEGANDataConfig, network: PoseCVAEGANConfig, seed: int) -> PoseLabelledFaces:
        from accelerate import PartialState

        sources = face_sources(data.sources, data.synthetic)
        kind = _choose_attributes([rows for name, rows in sources if not name.startswith("synthetic")],
                                  data.attributes, network.num_attributes, bool(data.synthetic))
        if kind == "dataset" and data.synthetic:
            raise ValueError("data.attributes=dataset, but the synthetic world has no dataset attributes; use "
                             "shape_signs or drop data.synthetic.")
        quiet = not PartialState().is_local_main_process
        count = network.num_attributes

        def label(row: dict) -> np.ndarray | None:
            if kind == "dataset":
                value = np.asarray(row.get("attributes") or [], np.float32)
                return value if value.size == count else None
            if kind == "shape_signs":
                return shape_sign_attributes(row.get("shape_coefficients"), count)
            return np.zeros(0, np.float32)

        tables = [
            aligned_face_table((rows[i] for i in range(len(rows))), name, network.image_size, data.max_yaw, len(rows),
                               label, quiet,
                               missing_label=f"{name} has no {kind} attributes for its faces ({count} needed); set "
                               "data.attributes to what the data has, or model.num_attributes=0 and "
                               "data.attributes=none.")
            for name, rows in sources
        ]
        dataset = cls(tables, network.pose_unit_degrees, data.flip, seed)
        dataset.attribute_kind = kind
        return dataset

    def __len__(self) -> int:
        return len(self.crops)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        crop, pose = self.crops[index], self.poses[index].copy()
        if self.flip and np.random.default_rng((self.seed, self.epoch, index)).random() < 0.5:
            crop = crop[:, ::-1]
            pose[0], pose[2] = -pose[0], -pose[2]  # a mirror image turns and tilts the other way
        image = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 127.5 - 1.0
        code = torch.from_numpy(np.clip(pose / self.pose_unit_degrees, -1, 1)).float()
        return {"image": image, "pose": code, "attributes": torch.from_numpy(self.attributes[index])}


# --------------------------------------------------------------------------------------------------------------------
# Losses (seed 000, eq. 2-8; eq. 1 is facehub.trainers.losses.perceptual.feature_reconstruction_loss)


def binary_cross_entropy(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """``-E[log D]`` (real) or ``-E[log(1 - D)]`` (not real) with ``D = sigmoid(logits)``: the terms of eq. 2-5."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target)


def code_discriminator_loss(prior_logits: torch.Tensor, encoded_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ``L_D1 = -E_z[log D1(z)] - E_x[log(1 - D1(z_x))]``: prior samples are real, encodings are not."""
    return binary_cross_entropy(prior_logits, True) + binary_cross_entropy(encoded_logits, False)


def image_discriminator_loss(real_logits: torch.Tensor, generated_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 3: ``L_D2 = -E_x[log D2(x)] - E_z[log(1 - D2(G(z, y_p)))]``."""
    return binary_cross_entropy(real_logits, True) + binary_cross_entropy(generated_logits, False)


def pose_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||y - P_pose(.)||^2``: the squared L2 norm over the pose values, averaged over the batch (eq. 6, 7)."""
    return (predicted.float() - target.float()).pow(2).sum(dim=1).mean()


def attribute_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-y log P_attr - (1 - y) log(1 - P_attr)`` averaged over the attributes and the batch (eq. 6 with labels
    ``y``, eq. 8 with ``y = P_attr(x)``, probabilities). 0 without attributes.

    The paper writes the cross-entropy of the attribute vector without saying whether it is summed or averaged over
    the 40 attributes; it is averaged here. Summed, 40 attributes outweigh the pose term of eq. 6 forty to one, and
    with attributes that are hard to read from a photo (our substitute, the signs of shape coefficients) P then
    never learns the pose (its yaw error stayed at the spread of the labels, about 19 degrees, for 250 steps; with
    the mean it falls as fast as with the pose term alone).
    """
    if logits.shape[1] == 0:
        return logits.new_zeros(())
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def predictor_loss(pose: torch.Tensor, attribute_logits: torch.Tensor, pose_labels: torch.Tensor,
                   attribute_labels: torch.Tensor) -> torch.Tensor:
    """Eq. 6: ``L_pred = ||y^p_x - P_pose(x)||^2 + BCE(P_attr(x), y^a_x)``."""
    return pose_error(pose, pose_labels) + attribute_cross_entropy(attribute_logits, attribute_labels)


# --------------------------------------------------------------------------------------------------------------------
# The method


class PoseCVAEGANTraining(TrainingMethod):
    """Algorithm 1 of seed 000 in the shared loop; see the module docstring."""

    name = METHOD_NAME
    config_class = PoseCVAEGANTrainingConfig
    config: PoseCVAEGANTrainingConfig

    def __init__(self, config: PoseCVAEGANTrainingConfig):
        super().__init__(config)
        self.network: PoseCVAEGANConfig = config.network()
        self.sample_steps = int(config.sample_steps)
        self._features = None
        self.attribute_kind = None

    @property
    def features(self) -> torch.nn.Module:
        """The frozen feature network of eq. 1 (built on first use)."""
        if self._features is None:
            from facehub.trainers.losses.perceptual import feature_network

            losses = self.config.losses
            self._features = feature_network(losses.feature_network, losses.feature_weights)
        return self._features

    def build_models(self) -> dict[str, torch.nn.Module]:
        """E, G, P, D1 and D2, with channels-last weights (on a CPU their convolutions run about twice as fast)."""
        c = self.network
        models = {
            "encoder": PoseEncoder(**c.encoder_kwargs()),
            "generator": PoseGenerator(**c.generator_kwargs()),
            "predictor": PosePredictor(**c.predictor_kwargs()),
            "code_discriminator": CodeDiscriminator(**c.code_discriminator_kwargs()),
            "image_discriminator": ImageDiscriminator(**c.image_discriminator_kwargs()),
        }
        return {name: model.to(memory_format=torch.channels_last) for name, model in models.items()}

    def build_optimizers(self, models: dict[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        """Algorithm 1's four updates, each an Adam (section 4.2): E and G together, P, D1, D2."""
        c = self.config
        adam = dict(lr=c.learning_rate, betas=(c.adam_beta1, c.adam_beta2), weight_decay=c.weight_decay)
        generator = [*models["encoder"].parameters(), *models["generator"].parameters()]
        return {
            "generator": torch.optim.Adam(generator, **adam),
            "predictor": torch.optim.Adam(models["predictor"].parameters(), **adam),
            "code_discriminator": torch.optim.Adam(models["code_discriminator"].parameters(), **adam),
            "image_discriminator": torch.optim.Adam(models["image_discriminator"].parameters(), **adam),
        }

    def build_dataset(self) -> PoseLabelledFaces:
        data = PoseLabelledFaces.from_config(self.config.data, self.network, self.config.seed)
        self.attribute_kind = data.attribute_kind
        for table in data.tables:
            logger.info("data: %s: %d faces (%d with |yaw| > %g left out)", table.name, len(table.crops),
                        table.dropped, self.config.data.max_yaw)
        logger.info("attributes: %s", data.attribute_kind)
        return data

    def pretraining(self, step: int) -> bool:
        """Algorithm 1 line 8: no image GAN during the first ``losses.pretraining_steps`` steps."""
        return step < self.config.losses.pretraining_steps

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        losses = self.config.losses
        x, y_x, a_x = batch["image"], batch["pose"], batch["attributes"]
        size = x.shape[0]
        features = self.features.to(x.device)
        pretraining = self.pretraining(ctx.step)

        # Line 3: P on the photos (its update, eq. 6, comes last). Its attributes are eq. 8's targets.
        predicted = ctx.models["predictor"](x)
        attribute_targets = torch.sigmoid(predicted.attribute_logits.detach().float())

        # Lines 4-7: encode, then one G pass for the reconstruction, the prior samples and the rotated encodings.
        z_x = ctx.models["encoder"](x).latent
        z = torch.randn_like(z_x)
        y_p = y_x[torch.randperm(size, device=x.device)]
        images = ctx.models["generator"](torch.cat([z_x, z, z_x]), torch.cat([y_x, y_p, y_p])).image
        reconstruction, prior_samples, rotated = images.split(size)

        reconstruction_loss = self._reconstruction(features, x, reconstruction)  # eq. 1
        code_gan = binary_cross_entropy(ctx.frozen("code_discriminator", x, z_x).logits, True)  # eq. 4
        if losses.pose_loss_on_encoded:
            judged = ctx.frozen("predictor", torch.cat([prior_samples, rotated]))
            pose_loss = pose_error(judged.pose, torch.cat([y_p, y_p]))  # eq. 7 on both
            rotated_attributes = judged.attribute_logits[size:]
        else:
            pose_loss = pose_error(ctx.frozen("predictor", prior_samples).pose, y_p)  # eq. 7
            rotated_attributes = ctx.frozen("predictor", rotated).attribute_logits
        attribute_loss = attribute_cross_entropy(rotated_attributes, attribute_targets)  # eq. 8
        image_gan = x.new_zeros(())
        if not pretraining:
            image_gan = binary_cross_entropy(ctx.frozen("image_discriminator", prior_samples).logits, True)  # eq. 5
        generator_loss = (losses.reconstruction_weight * reconstruction_loss + code_gan
                          + losses.image_gan_weight * image_gan + pose_loss + attribute_loss)

        # Line 14, eq. 2: D1 on (x, z) pairs, prior samples against encodings (one batch, so batch norm sees both).
        pair_logits = ctx.models["code_discriminator"](torch.cat([x, x]), torch.cat([z, z_x.detach()])).logits
        code_discriminator = code_discriminator_loss(pair_logits[:size], pair_logits[size:])
        # Line 15, eq. 3: D2 on photos against prior samples, after pre-training.
        image_discriminator = None
        if not pretraining:
            scores = ctx.models["image_discriminator"](torch.cat([x, prior_samples.detach()])).logits
            image_discriminator = image_discriminator_loss(scores[:size], scores[size:])
        # Line 13, eq. 6.
        prediction = predictor_loss(predicted.pose, predicted.attribute_logits, y_x, a_x)

        # Lines 13-16: every loss above used the networks as they were at the start of the step.
        ctx.optimize("generator", generator_loss)
        ctx.optimize("code_discriminator", code_discriminator)
        if image_discriminator is not None:
            ctx.optimize("image_discriminator", image_discriminator)
        ctx.optimize("predictor", prediction)

        with torch.no_grad():
            yaw_error = (predicted.pose[:, 0].float() - y_x[:, 0]).abs().mean() * self.network.pose_unit_degrees
            logs = {
                "generator_total": generator_loss.detach().item(),
                "reconstruction": reconstruction_loss.detach().item(),
                "reconstruction_l1": (reconstruction.detach().float() - x).abs().mean().item(),
                "code_gan": code_gan.detach().item(),
                "image_gan": image_gan.detach().item(),
                "pose": pose_loss.detach().item(),
                "attribute": attribute_loss.detach().item(),
                "code_discriminator": code_discriminator.detach().item(),
                "predictor": prediction.detach().item(),
                "predictor_yaw_error": yaw_error.item(),
            }
            if image_discriminator is not None:
                logs["image_discriminator"] = image_discriminator.detach().item()
        return logs

    @staticmethod
    def _reconstruction(features: torch.nn.Module, real: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
        from facehub.trainers.losses.perceptual import feature_reconstruction_loss

        return feature_reconstruction_loss(features, real, generated)

    def sample_images(self, models: dict[str, torch.nn.Module], batch: dict[str, torch.Tensor]):
        """Up to 8 faces of the batch: inputs, reconstructions ``G(z_x, y_x)`` and each face at the yaws of
        :data:`SAMPLE_YAWS` (pitch and roll 0)."""
        x, y_x = batch["image"][:8], batch["pose"][:8]
        z_x = models["encoder"](x, generator=torch.Generator().manual_seed(0)).latent
        rows = {"input": x, "reconstruction": models["generator"](z_x, y_x).image}
        for yaw in SAMPLE_YAWS:
            pose = torch.zeros_like(y_x)
            pose[:, 0] = yaw / self.network.pose_unit_degrees
            rows[f"yaw {yaw:+.0f}"] = models["generator"](z_x, pose).image
        return rows

    def export(self, models: dict[str, torch.nn.Module], folder: Path) -> None:
        from facehub.modeling.pose_cvaegan import PoseCVAEGANRotationPipeline

        PoseCVAEGANRotationPipeline(encoder=models["encoder"], generator=models["generator"],
                             predictor=models["predictor"]).save_pretrained(folder)

    def model_card(self) -> dict[str, Any]:
        c, data, losses = self.network, self.config.data, self.config.losses
        sources = [str(s) for s in data.sources]
        if data.synthetic:
            sources.append(f"the synthetic face world ({data.synthetic.get('num_identities', 8)} identities, one view "
                           "each)")
        features = ("the first layers of dlib's face-recognition ResNet (ImageNet VGG16 was not available)"
                    if losses.feature_network == "dlib-resnet" else f"VGG16 from {losses.feature_weights}")
        return {
            "description": (
                f"Pose-conditioned CVAE-GAN face rotation (seed 000), {self.config.model.preset} preset: "
                f"{c.image_size} px aligned face crops, latent {c.latent_size}, pose code (yaw, pitch, roll) with 1 = "
                f"{c.pose_unit_degrees:g} degrees, {c.num_attributes} attributes "
                f"({self.attribute_kind or data.attributes}). Trained on single views with no identity pairs, |yaw| <= "
                f"{data.max_yaw:g}: {'; '.join(sources) or 'no data'}. Reconstruction features (eq. 1): {features}."
            ),
            "tags": ["face-rotation", "cvae-gan", "adversarial-variational-bayes", "novel-view-synthesis"],
            "pipeline_tag": "image-to-image",
        }


def main(argv: list[str] | None = None) -> int:
    from facehub.trainers.run import main as run_main

    return run_main(argv, method=METHOD_NAME)


if __name__ == "__main__":
    sys.exit(main())
