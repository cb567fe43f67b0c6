"""DepthNet training recipe (Moniz, Beckham et al. 2018, sections 2.1, 2.3 and 3.2) for the shared loop.

Run: ``facehub train depthnet --preset cpu-small`` or ``--config FILE`` (``accelerate launch -m
facehub.trainers.run depthnet --config FILE``); ``facehub train depthnet --help`` lists every setting.

The config is :class:`DepthNetConfig` (presets ``cpu-small``, ``paper`` and ``default``, the embedded
``facehub/depthnet``); beyond :class:`~facehub.trainers.core.TrainingConfig` (every field is documented on its
section's class):

- ``model``: ``preset`` (a :data:`~facehub.modeling.depthnet.DEPTHNET_PRESETS` name) plus any
  :class:`~facehub.modeling.depthnet.DepthNetModel` field. ``formulation: explicit_affine`` trains section 2.1
  (eq. 1 with the predicted affine; evaluating it with the affine re-solved by eq. 3 is section 2.2);
  ``pseudo_inverse`` trains section 2.3. A preset with ``image_size`` is case A (Siamese CNN on the crops).
- ``data``: ``source`` and its options.
  ``morphable_pairs`` (:class:`~facehub.trainers.data.keypoint_pairs.MorphableKeypointPairs`): landmarks of
  morphable-model faces under random poses, with exact depths; ``rigid_pairs``: rigid random point sets;
  ``dataset``: a folder written by ``facehub prepare`` (photos or the synthetic world; ``path``, ``mode``
  ``same_identity`` / ``any`` / ``auto``, ``num_pairs``): keypoints are its ``landmarks68``, depths (for the GAN and
  for evaluation) the z of its dense landmarks at the 68 points, crops its ``image`` column (case A).
- ``losses``: ``gan_weight`` (0 = plain DepthNet; > 0 = DepthNet+GAN, the weight of the adversarial term next to
  the keypoint loss), ``discriminator_hidden_sizes``, ``discriminator_learning_rate``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from facehub.modeling.depthnet import DEPTHNET_PRESETS, DepthNetModel, KeypointRegistrationPipeline
from facehub.modeling.depthnet.configuration_depthnet import validate_depthnet_config
from facehub.modeling.depthnet.modeling_depth_discriminator import DepthDiscriminatorModel
from facehub.modeling.geometry.affine import apply_affine_3d_to_2d, solve_affine_3d_to_2d
from facehub.trainers.core import StepContext, TrainingConfig, TrainingMethod
from facehub.trainers.core.config import ConfigError, ConfigSection, ModelSection
from facehub.trainers.data.keypoint_pairs import MorphableKeypointPairs, RigidKeypointPairs


def registration_loss(
    source_keypoints: torch.Tensor, target_keypoints: torch.Tensor, depths: torch.Tensor, affine: torch.Tensor | None
) -> torch.Tensor:
    """Keypoint registration loss of eq. 1 (explicit ``affine``) or section 2.3 (``affine=None``: eq. 3 inside).

    ``sum_i || x_t^i - m [x_s^i, y_s^i, z_p^i, 1] ||^2``, averaged over keypoints and divided by the target's squared
    RMS radius so that faces of every size weigh the same (the paper's sum of squares up to a per-pair constant).
    """
    points3d = torch.cat([source_keypoints, depths[..., None]], dim=-1)
    if affine is None:
        affine = solve_affine_3d_to_2d(points3d, target_keypoints)
    registered = apply_affine_3d_to_2d(affine, points3d)
    centred = target_keypoints - target_keypoints.mean(dim=-2, keepdim=True)
    scale2 = centred.pow(2).sum(-1).mean(-1).clamp_min(1e-6)
    return ((registered - target_keypoints).pow(2).sum(-1).mean(-1) / scale2).mean()


class PreparedKeypointPairs(Dataset):
    """Pairs of faces from a ``facehub prepare`` folder, as DepthNet items.

    Items: ``source_keypoints`` / ``target_keypoints`` (68, 2) crop pixels, ``source_depths`` / ``target_depths``
    (68,) the dense landmarks' z at the 68 points (exact for the synthetic world, MediaPipe's estimate for photos),
    and with ``image_size`` the crops ``source_images`` / ``target_images`` (3, S, S) in [-1, 1].
    """

    def __init__(self, path: str, mode: str = "auto", num_pairs: int | None = None, seed: int = 0,
                 image_size: int | None = None):
        import datasets

        from facehub.trainers.data.pairs import FacePairs

        folder = Path(path)
        dataset_dir = folder / "dataset" if (folder / "dataset").is_dir() else folder
        if not dataset_dir.is_dir():
            raise FileNotFoundError(f"{path} is not a folder written by `facehub prepare` (no dataset/ inside).")
        table = datasets.load_from_disk(str(dataset_dir))
        columns = ["landmarks68", "dense_landmarks"] + (["image"] if image_size else [])
        self.pairs = FacePairs(table.with_format("numpy", columns=columns), table["identity"], mode=mode,
                               num_pairs=num_pairs, seed=seed, columns=columns)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from facehub.modeling.geometry.landmarks68 import landmarks68_from_mesh

        pair = self.pairs[index]
        item = {}
        for side in ("source", "target"):
            item[f"{side}_keypoints"] = pair[f"{side}_landmarks68"]
            dense = pair[f"{side}_dense_landmarks"].numpy()
            item[f"{side}_depths"] = torch.from_numpy(landmarks68_from_mesh(dense)[:, 2]).float()
            if self.image_size:
                image = pair[f"{side}_image"].permute(2, 0, 1)[None] / 127.5 - 1.0
                item[f"{side}_images"] = F.interpolate(
                    image, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                    align_corners=False,
                )[0]
        return item


DATA_SOURCES = {"rigid_pairs": RigidKeypointPairs, "morphable_pairs": MorphableKeypointPairs,
                "dataset": PreparedKeypointPairs}


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the conditional depth discriminator (ground-truth depths real, DepthNet's fake)."""
    return 0.5 * (
        F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    )


def adversarial_depth_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator term: DepthNet's depths should be taken for ground truth."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


# --------------------------------------------------------------------------------------------------------------------
# Config


def _depthnet_model_defaults() -> dict[str, Any]:
    import inspect

    return {name: p.default for name, p in inspect.signature(DepthNetModel.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


@dataclass
class DepthNetModelConfig(ModelSection):
    """``model``: a :data:`~facehub.modeling.depthnet.DEPTHNET_PRESETS` name plus overrides of
    :class:`~facehub.modeling.depthnet.DepthNetModel`'s fields (``null``: the preset's value).

    Fields:
        preset: ``cpu-small`` or ``paper`` (keypoints only, case B), ``cpu-small-siamese`` or ``paper-siamese``
            (case A: a Siamese CNN reads the two face crops as well; train it on ``data.source: dataset``).
        num_keypoints: N, keypoints per face (68, iBUG order).
        formulation: ``pseudo_inverse`` (section 2.3: depths only, the affine solved by eq. 3) or ``explicit_affine``
            (section 2.1: depths and the affine m of eq. 1).
        hidden_sizes: widths of the dense layers (Figure 1, case B).
        norm: ``batch`` or ``none`` after each hidden layer.
        negative_slope: LeakyReLU slope of the hidden layers.
        image_size: S, side of case A's crops (a case-A preset sets it).
        image_channels: channels of the case-A CNN's conv + pool stages.
    """

    model_presets: ClassVar[dict[str, dict[str, Any]]] = DEPTHNET_PRESETS

    preset: str = "cpu-small"
    num_keypoints: int | None = None
    formulation: Literal["pseudo_inverse", "explicit_affine"] | None = None
    hidden_sizes: tuple[int, ...] | None = None
    norm: Literal["batch", "none"] | None = None
    negative_slope: float | None = None
    image_size: int | None = None
    image_channels: tuple[int, ...] | None = None

    def __post_init__(self):
        super().__post_init__()
        self.validate(validate_depthnet_config, {**_depthnet_model_defaults(), **self.settings()})


#: ``data.*`` keys each ``data.source`` reads (besides ``source``, ``num_pairs`` and ``seed``).
SOURCE_OPTIONS = {
    "morphable_pairs": ("max_yaw", "max_pitch", "max_roll", "identity_scale", "expression_scale", "same_expression",
                        "face_width", "noise"),
    "rigid_pairs": ("num_keypoints", "template_seed", "max_yaw", "max_pitch", "max_roll", "shape_axes",
                    "shape_variation", "noise_pixels"),
    "dataset": ("path", "mode"),
}


@dataclass
class DepthNetDataConfig(ConfigSection):
    """``data``: where the keypoint pairs come from. Source-specific keys left ``null`` take the source's default.

    Fields:
        source: ``morphable_pairs`` (landmarks of random morphable-model faces under random poses, exact depths:
            :class:`~facehub.trainers.data.keypoint_pairs.MorphableKeypointPairs`), ``rigid_pairs`` (rigid random
            point sets) or ``dataset`` (face pairs from a ``facehub prepare`` folder: keypoints are its
            ``landmarks68``, depths the z of its dense landmarks, crops its ``image`` column for case A).
        num_pairs: pairs per epoch.
        seed: seed of the pairs; ``null`` uses the run's ``seed``.
        path: (dataset) the ``facehub prepare`` output folder.
        mode: (dataset) ``same_identity``, ``any`` or ``auto`` (same identity when the folder has identities).
        max_yaw: (morphable_pairs, rigid_pairs) largest |yaw| of a view, degrees.
        max_pitch: (morphable_pairs, rigid_pairs) largest |pitch|, degrees.
        max_roll: (morphable_pairs, rigid_pairs) largest |roll|, degrees.
        identity_scale: (morphable_pairs) spread of identities, in units of the model's own.
        expression_scale: (morphable_pairs) spread of expressions.
        same_expression: (morphable_pairs) both views of a pair share one expression.
        face_width: (morphable_pairs) face width in pixels.
        noise: (morphable_pairs) keypoint noise as a fraction of the face width.
        num_keypoints: (rigid_pairs) points per set.
        template_seed: (rigid_pairs) seed of the shared mean shape.
        shape_axes: (rigid_pairs) axes of the mean shape's ellipsoid.
        shape_variation: (rigid_pairs) per-set deviation from the mean shape.
        noise_pixels: (rigid_pairs) keypoint noise in pixels.
    """

    source: Literal["morphable_pairs", "rigid_pairs", "dataset"] = "morphable_pairs"
    num_pairs: int = 20_000
    seed: int | None = None
    path: str | None = None
    mode: Literal["auto", "same_identity", "any"] | None = None
    max_yaw: float | None = None
    max_pitch: float | None = None
    max_roll: float | None = None
    identity_scale: float | None = None
    expression_scale: float | None = None
    same_expression: bool | None = None
    face_width: float | None = None
    noise: float | None = None
    num_keypoints: int | None = None
    template_seed: int | None = None
    shape_axes: tuple[float, float, float] | None = None
    shape_variation: float | None = None
    noise_pixels: float | None = None

    def __post_init__(self):
        if self.num_pairs <= 0:
            raise ConfigError(f"Got {self.num_pairs} for `data.num_pairs`; it must be a positive integer.")
        used = set(SOURCE_OPTIONS[self.source])
        stray = [key for key in self.keys()
                 if key not in used and key not in ("source", "num_pairs", "seed") and getattr(self, key) is not None]
        if stray:
            raise ConfigError(f"`data.{stray[0]}` does not apply to data.source={self.source}; that source reads "
                              f"{', '.join(f'data.{k}' for k in SOURCE_OPTIONS[self.source])}.")
        if self.source == "dataset" and not self.path:
            raise ConfigError("data.source=dataset needs `data.path`: a folder written by `facehub prepare`.")

    def source_options(self) -> dict[str, Any]:
        """Keyword arguments of the source's class (the keys set for it, and ``num_pairs``)."""
        options = {key: getattr(self, key) for key in SOURCE_OPTIONS[self.source] if getattr(self, key) is not None}
        return {"num_pairs": self.num_pairs, **options}


@dataclass
class DepthNetLossesConfig(ConfigSection):
    """``losses``: the keypoint loss (eq. 1 / section 2.3) and the optional conditional depth GAN (section 3.2).

    Fields:
        gan_weight: 0 trains plain DepthNet; > 0 trains DepthNet+GAN, the weight of the adversarial term next to the
            keypoint loss (the discriminator's real samples are the data's ground-truth depths).
        discriminator_hidden_sizes: widths of the depth discriminator's dense layers.
        discriminator_learning_rate: the discriminator's learning rate; ``null`` uses ``learning_rate``.
    """

    gan_weight: float = 0.0
    discriminator_hidden_sizes: tuple[int, ...] = (256, 256)
    discriminator_learning_rate: float | None = None

    def __post_init__(self):
        if self.gan_weight < 0:
            raise ConfigError(f"Got {self.gan_weight} for `losses.gan_weight`; it must be 0 (no GAN) or more.")
        if not self.discriminator_hidden_sizes or any(h <= 0 for h in self.discriminator_hidden_sizes):
            raise ConfigError(f"Got {list(self.discriminator_hidden_sizes)} for `losses.discriminator_hidden_sizes`; "
                              "expected one or more positive widths.")
        if self.discriminator_learning_rate is not None and self.discriminator_learning_rate <= 0:
            raise ConfigError(f"Got {self.discriminator_learning_rate} for `losses.discriminator_learning_rate`; it "
                              "must be positive (or null: learning_rate).")


@dataclass
class DepthNetConfig(TrainingConfig):
    """DepthNet training: the shared fields of :class:`~facehub.trainers.core.TrainingConfig` (with DepthNet's
    defaults: learning rate 1e-3, batch 64, 3,000 steps) plus :class:`DepthNetModelConfig`,
    :class:`DepthNetDataConfig` and :class:`DepthNetLossesConfig`.

    Presets: ``cpu-small`` (plain DepthNet, cpu-small network, minutes on two CPU cores), ``paper`` (the paper's
    keypoint-only network, model 7 of Table 1) and ``default`` (DepthNet+GAN on morphable-model faces up to 90
    degrees of yaw: what made the embedded ``facehub/depthnet``; its card gives the command).
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "cpu-small": {
            "max_steps": 3000, "train_batch_size": 64, "learning_rate": 1e-3, "lr_scheduler": "cosine",
            "lr_warmup_steps": 100, "checkpointing_steps": 500, "logging_steps": 50,
            "model": {"preset": "cpu-small"},
            "data": {"source": "morphable_pairs", "num_pairs": 200_000, "max_yaw": 75.0},
            "losses": {"gan_weight": 0.0},
        },
        "paper": {
            "max_steps": 8000, "train_batch_size": 64, "learning_rate": 1e-3, "lr_scheduler": "cosine",
            "lr_warmup_steps": 200, "checkpointing_steps": 1000, "logging_steps": 100,
            "model": {"preset": "paper"},
            "data": {"source": "morphable_pairs", "num_pairs": 500_000, "max_yaw": 90.0},
            "losses": {"gan_weight": 0.0},
        },
        "default": {
            "max_steps": 8000, "train_batch_size": 64, "learning_rate": 1e-3, "lr_scheduler": "cosine",
            "lr_warmup_steps": 200, "checkpointing_steps": 1000, "logging_steps": 100,
            "model": {"preset": "paper"},
            "data": {"source": "morphable_pairs", "num_pairs": 500_000, "identity_scale": 2.0,
                     "expression_scale": 1.0, "noise": 0.01, "max_yaw": 90.0, "max_pitch": 40.0, "max_roll": 30.0},
            "losses": {"gan_weight": 0.01, "discriminator_hidden_sizes": [256, 256]},
        },
    }

    method: str = "depthnet"
    max_steps: int = 3000
    train_batch_size: int = 64
    learning_rate: float = 1e-3
    model: DepthNetModelConfig = field(default_factory=DepthNetModelConfig)
    data: DepthNetDataConfig = field(default_factory=DepthNetDataConfig)
    losses: DepthNetLossesConfig = field(default_factory=DepthNetLossesConfig)

    def __post_init__(self):
        super().__post_init__()
        if self.model.settings().get("image_size") and self.data.source != "dataset":
            raise ConfigError(
                f"A case-A DepthNet (model.image_size={self.model.settings()['image_size']}) reads face crops: use "
                f"data.source=dataset with a `facehub prepare` folder, not {self.data.source!r}."
            )


class DepthNetTraining(TrainingMethod):
    name = "depthnet"
    config_class = DepthNetConfig
    config: DepthNetConfig

    @property
    def gan_weight(self) -> float:
        return self.config.losses.gan_weight

    def build_models(self) -> dict[str, torch.nn.Module]:
        models: dict[str, torch.nn.Module] = {"depth_net": DepthNetModel(**self.config.model.settings())}
        if self.gan_weight > 0:
            hidden = tuple(self.config.losses.discriminator_hidden_sizes)
            models["depth_discriminator"] = DepthDiscriminatorModel(
                num_keypoints=models["depth_net"].config.num_keypoints, hidden_sizes=hidden
            )
        return models

    def build_optimizers(self, models: dict[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        optimizers = {
            "main": torch.optim.AdamW(models["depth_net"].parameters(), lr=c.learning_rate,
                                      betas=(c.adam_beta1, c.adam_beta2), weight_decay=c.weight_decay)
        }
        if "depth_discriminator" in models:
            lr = c.losses.discriminator_learning_rate or c.learning_rate
            optimizers["discriminator"] = torch.optim.AdamW(models["depth_discriminator"].parameters(), lr=lr,
                                                            betas=(0.5, 0.999))
        return optimizers

    def build_dataset(self):
        data = self.config.data
        options = data.source_options()
        options["seed"] = self.config.seed if data.seed is None else data.seed
        if data.source == "dataset":  # the crops at the case-A network's size (None: keypoints only)
            options["image_size"] = self.config.model.settings().get("image_size")
        return DATA_SOURCES[data.source](**options)

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        depth_net = ctx.models["depth_net"]
        source, target = batch["source_keypoints"], batch["target_keypoints"]
        out = depth_net(source, target, batch.get("source_images"), batch.get("target_images"))
        keypoint_loss = registration_loss(source, target, out.depths, out.affine)
        logs = {"loss": keypoint_loss.detach().item()}
        loss = keypoint_loss
        if self.gan_weight > 0:
            if "source_depths" not in batch:
                raise ValueError("DepthNet+GAN (losses.gan_weight > 0) needs ground-truth depths in the data.")
            discriminator = ctx.models["depth_discriminator"]
            # The generator's term goes through the frozen discriminator (parameters and buffers), so its backward
            # pass leaves the discriminator's gradients, statistics and DDP reducer alone.
            fake = ctx.frozen("depth_discriminator", source, out.depths).logits
            adversarial = adversarial_depth_loss(fake)
            loss = loss + self.gan_weight * adversarial
            logs["adversarial"] = adversarial.detach().item()
        ctx.optimize("main", loss)
        if self.gan_weight > 0:
            real_logits = discriminator(source, batch["source_depths"]).logits
            fake_logits = discriminator(source, out.depths.detach()).logits
            d_loss = discriminator_loss(real_logits, fake_logits)
            ctx.optimize("discriminator", d_loss)
            logs["discriminator"] = d_loss.detach().item()
        return logs

    def export(self, models: dict[str, torch.nn.Module], folder: Path) -> None:
        KeypointRegistrationPipeline(depth_net=models["depth_net"]).save_pretrained(folder)

    def model_card(self) -> dict[str, Any]:
        preset = self.config.model.preset
        settings = {**_depthnet_model_defaults(), **self.config.model.settings()}
        formulation = settings["formulation"]
        case = "case A, Siamese CNN + keypoints" if settings.get("image_size") else "keypoint-only, case B"
        variant = "DepthNet+GAN (conditional depth discriminator, section 3.2)" if self.gan_weight > 0 else "DepthNet"
        return {
            "description": (
                f"{variant} (Moniz, Beckham et al., NeurIPS 2018), {case}, {formulation.replace('_', '-')} "
                f"formulation, {preset} preset: infers the depths of 68 source keypoints so that a 3D-to-2D affine "
                f"maps them onto target keypoints. Trained on {self._data_description()}."
            ),
            "tags": ["depthnet", "keypoints", "face-rotation", "3d-affine"],
        }

    def _data_description(self) -> str:
        source = self.config.data.source
        if source == "rigid_pairs":
            return (
                "synthetic pairs of views of rigid 3D keypoint sets that share a mean shape "
                "(facehub.trainers.data.keypoint_pairs), not on face photos"
            )
        if source == "morphable_pairs":
            return (
                "pairs of views of the 68 landmarks of random faces of facehub's morphable face model (random "
                "identity, expression and pose, orthographic projection; facehub.trainers.data.keypoint_pairs."
                "MorphableKeypointPairs), with their exact depths as the discriminator's real samples"
            )
        return f"face pairs from the prepared dataset {self.config.data.path}"


def main(argv: list[str] | None = None) -> int:
    from facehub.trainers.run import main as run_main

    return run_main(argv, method="depthnet")


if __name__ == "__main__":
    sys.exit(main())
