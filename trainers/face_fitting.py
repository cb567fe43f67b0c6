"""Training the coefficient regressor (the R-Net of seed 002) for the shared loop.

Run: ``facehub train face_fitting --preset cpu-small`` (``accelerate launch -m facehub.trainers.run face_fitting
--config FILE``); ``facehub train face_fitting --help`` lists every setting.

The network is :class:`~facehub.modeling.face_fitting.FaceCoefficientRegressor`; it reads PRNet's crop around the 68
landmarks (the same at inference) and is trained on faces with exact coefficients:

- ``data.synthetic``: a synthetic face world (:class:`~facehub.trainers.data.synthetic_world.SyntheticWorldConfig`
  fields) rendered at the start; every row carries its identity, expression and albedo coefficients, lighting,
  pose and posed mesh, from which the scale and translation follow exactly.
- ``data.sources``: prepared folders (``datasets.save_to_disk``) with the same columns (``image``, ``landmarks68``,
  ``dense_landmarks``, ``pose``, ``shape_coefficients``, ``expression_coefficients``, ``albedo_coefficients``,
  ``lighting``): a saved synthetic world, or photos labelled by the optimisation fitting (the hook for real faces:
  write the fit's :class:`~facehub.modeling.face_fitting.FaceCoefficients` into those columns).

``data.profiling_probability`` turns prepared faces to larger yaws by face profiling before they are cropped
(:mod:`facehub.trainers.data.face_profiling`, 3DDFA's way of making 300W-LP); their rotation and 68 landmarks turn
with them, so the targets stay exact for the rendered image.

The loss (``losses``) is Deep3DFaceRecon's supervision in the synthetic setting: a per-group weighted L2 on the
normalised coefficients (:data:`~facehub.modeling.face_fitting.modeling_face_regressor.OUTPUT_NORMALISATION`) plus
the 68-landmark reprojection through the morphable model (L_lm: predicted coefficients posed and projected, against
the true landmarks in the crop, Gaussian with ``landmark_sigma`` crop sides).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from facehub.modeling.face_fitting.modeling_face_regressor import (
    FACE_REGRESSOR_PRESETS,
    GROUPS,
    FaceCoefficientRegressor,
    face_crop,
    posed_landmarks68,
    validate_face_regressor_config,
)
from facehub.modeling.geometry.landmarks68 import NUM_MESH_VERTICES
from facehub.trainers.core import StepContext, TrainingConfig, TrainingMethod
from facehub.trainers.core.config import ConfigError, ConfigSection, ModelSection

METHOD_NAME = "face_fitting"

#: Columns a prepared source must have.
REQUIRED_COLUMNS = ("image", "landmarks68", "dense_landmarks", "pose", "shape_coefficients",
                    "expression_coefficients", "albedo_coefficients", "lighting")


def _regressor_defaults() -> dict[str, Any]:
    import inspect

    return {name: p.default for name, p in inspect.signature(FaceCoefficientRegressor.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


@dataclass
class FaceRegressorModelConfig(ModelSection):
    """``model``: a :data:`~facehub.modeling.face_fitting.FACE_REGRESSOR_PRESETS` name plus overrides.

    Fields:
        preset: ``cpu-small`` (basic blocks, 96 px), ``cpu-small-eval`` (other widths, 112 px: the evaluation
            regressor) or ``paper`` (ResNet-50, 224 px, as Deep3DFaceRecon).
        image_size: the crop side read. stem_channels, stage_channels, stage_blocks, bottleneck: the ResNet.
    """

    model_presets: ClassVar[dict[str, dict[str, Any]]] = FACE_REGRESSOR_PRESETS

    preset: str = "cpu-small"
    image_size: int | None = None
    stem_channels: int | None = None
    stage_channels: tuple[int, ...] | None = None
    stage_blocks: tuple[int, ...] | None = None
    bottleneck: bool | None = None

    def __post_init__(self):
        super().__post_init__()
        self.validate(validate_face_regressor_config, {**_regressor_defaults(), **self.settings()})


@dataclass
class FaceRegressorDataConfig(ConfigSection):
    """``data``: the faces and the crop augmentation.

    Fields:
        synthetic: a synthetic face world rendered at the start (any ``SyntheticWorldConfig`` field; by default 128
            faces at 96 px); ``null``: none.
        sources: prepared folders with the coefficient columns (module docstring), e.g. photos labelled by the fit.
        shift_jitter: random shift of the crop centre, fraction of the landmarks' box side.
        scale_jitter: random change of the crop side, fraction (0.1: 0.9-1.1x).
        colour_jitter: random per-channel gain and brightness, fraction.
        profiling_probability: chance of turning a face of ``sources`` to a larger ``|yaw|`` by face profiling
            (:mod:`facehub.trainers.data.face_profiling`; 3DDFA's way of making 300W-LP) before it is cropped; its
            rotation, 68 landmarks and crop turn with it. The synthetic world renders every pose exactly, so its
            faces are not profiled.
        profiling_max_yaw: largest ``|yaw|`` profiling turns a face to, degrees.
        profiling_pitch: profiling's pitch change within +- this, degrees.
    """

    synthetic: dict[str, Any] | None = field(default_factory=lambda: {"num_identities": 32, "views_per_identity": 4,
                                                                      "image_size": 96, "uv_size": 8})
    sources: list[str] = field(default_factory=list)
    shift_jitter: float = 0.05
    scale_jitter: float = 0.1
    colour_jitter: float = 0.1
    profiling_probability: float = 0.0
    profiling_max_yaw: float = 90.0
    profiling_pitch: float = 10.0

    def __post_init__(self):
        if not self.synthetic and not self.sources:
            raise ConfigError("No training faces: set `data.synthetic` (a synthetic world's settings) or "
                              "`data.sources` (prepared folders with coefficient columns).")
        for name in ("shift_jitter", "scale_jitter", "colour_jitter"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"Got {getattr(self, name)} for `data.{name}`; expected a fraction in [0, 1).")
        if not 0 <= self.profiling_probability <= 1:
            raise ConfigError(f"Got {self.profiling_probability} for `data.profiling_probability`; expected a "
                              "probability in [0, 1].")
        if not 0 < self.profiling_max_yaw <= 90 or not 0 <= self.profiling_pitch <= 45:
            raise ConfigError(f"Got {self.profiling_max_yaw} / {self.profiling_pitch} for `data.profiling_max_yaw` / "
                              "`data.profiling_pitch`; use degrees in (0, 90] and [0, 45].")
        if self.synthetic:
            from facehub.trainers.data.synthetic_world import SyntheticWorldConfig

            try:
                SyntheticWorldConfig(**self.synthetic)
            except TypeError as err:
                raise ConfigError(f"`data.synthetic` has an unknown setting ({err}); its settings are the fields of "
                                  "SyntheticWorldConfig.") from None
            except ValueError as err:
                raise ConfigError(f"data.synthetic: {err}") from None


@dataclass
class FaceRegressorLossesConfig(ConfigSection):
    """``losses``: weights of the coefficient groups' L2 (on normalised values) and of the landmark reprojection.

    Fields:
        identity, expression, albedo, lighting, rotation, translation, scale: per-group weights.
        landmarks: weight of the 68-landmark reprojection term (0 turns it off).
        landmark_sigma: its noise level, crop sides.
    """

    identity: float = 1.0
    expression: float = 1.0
    albedo: float = 0.5
    lighting: float = 0.5
    rotation: float = 2.0
    translation: float = 1.0
    scale: float = 1.0
    landmarks: float = 1.0
    landmark_sigma: float = 0.02

    def __post_init__(self):
        for name in ("identity", "expression", "albedo", "lighting", "rotation", "translation", "scale", "landmarks"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"Got {getattr(self, name)} for `losses.{name}`; a weight must be 0 or more.")
        if not self.landmark_sigma > 0:
            raise ConfigError(f"Got {self.landmark_sigma} for `losses.landmark_sigma`; it must be > 0 (crop sides).")

    def group_weights(self) -> dict[str, float]:
        return {"identity": self.identity, "expression": self.expression, "albedo": self.albedo,
                "lighting": self.lighting, "rotation": self.rotation, "translation": self.translation,
                "log_scale": self.scale}


# --------------------------------------------------------------------------------------------------------------------
# Data


def exact_camera(model, shape_coefficients: np.ndarray, expression_coefficients: np.ndarray, rotation,
                 dense: np.ndarray) -> tuple[np.ndarray, float]:
    """The translation (3,) and scale (pixels per model unit) that pose the model's shape onto a row's mesh
    (``dense = s R (S - mean S) + t`` with ``R = rotation_matrix(*rotation)``, the model's rotation for the row's head
    pose; least squares in s, exact for synthetic rows)."""
    from facehub.modeling.geometry.rotations import rotation_matrix

    shape = model.shape(torch.as_tensor(shape_coefficients, dtype=torch.float32)[None],
                        torch.as_tensor(expression_coefficients, dtype=torch.float32)[None])[0].double().numpy()
    posed = (shape - shape.mean(axis=0)) @ rotation_matrix(*rotation).T
    dense = np.asarray(dense, np.float64)[: len(shape)]
    centred = dense - dense.mean(axis=0)
    return dense.mean(axis=0), float((centred * posed).sum() / (posed * posed).sum())


class CoefficientFaces(Dataset):
    """Faces with exact coefficients, as regressor items.

    Items: ``pixel_values`` (3, S, S) in [-1, 1] (the regressor's crop, jittered), the crop-frame targets
    ``identity``, ``expression``, ``albedo``, ``lighting`` (3, 9), ``rotation`` (3,) radians, ``translation`` (2,)
    crop sides, ``log_scale`` (), and ``landmarks68`` (68, 2) crop sides.
    """

    def __init__(self, tables: list, image_size: int, crop_scale: float = 1.6, *, shift_jitter: float = 0.0,
                 scale_jitter: float = 0.0, colour_jitter: float = 0.0, seed: int = 0, model=None,
                 profiling_probability: float = 0.0, profiling_max_yaw: float = 90.0, profiling_pitch: float = 10.0,
                 profiled_tables: list[bool] | None = None):
        from facehub.modeling.geometry.morphable import MorphableFaceModel

        self.model = model or MorphableFaceModel.default()
        self.image_size, self.crop_scale = int(image_size), float(crop_scale)
        self.shift_jitter, self.scale_jitter, self.colour_jitter = shift_jitter, scale_jitter, colour_jitter
        self.profiling = (float(profiling_probability), float(profiling_max_yaw), float(profiling_pitch))
        self.seed, self.epoch = seed, 0
        profiled_tables = [True] * len(tables) if profiled_tables is None else list(profiled_tables)
        if len(profiled_tables) != len(tables):
            raise ValueError(f"Got {len(profiled_tables)} `profiled_tables` flags for {len(tables)} tables.")
        self._weights68 = self.model.landmark_weights.double().numpy()
        self.rows = []
        for table, profiled in zip(tables, profiled_tables, strict=True):
            for index in range(len(table)):
                row = table[index]
                rotation = np.asarray(self.model.rotation_for_head_pose(row["pose"]), np.float64)
                translation, scale = exact_camera(self.model, row["shape_coefficients"],
                                                  row["expression_coefficients"], rotation, row["dense_landmarks"])
                self.rows.append({
                    "image": np.asarray(row["image"], np.uint8),
                    "landmarks68": np.asarray(row["landmarks68"], np.float64)[:, :2],
                    "rotation": rotation,
                    "identity": np.asarray(row["shape_coefficients"], np.float32),
                    "expression": np.asarray(row["expression_coefficients"], np.float32),
                    "albedo": np.asarray(row["albedo_coefficients"], np.float32),
                    "lighting": np.asarray(row["lighting"], np.float32).reshape(3, 9),
                    "centre": translation[:2], "scale": scale,
                    # Profiling turns the posed mesh (what the coefficients and camera describe) with the image.
                    "mesh": np.asarray(row["dense_landmarks"], np.float32)[:NUM_MESH_VERTICES] if profiled else None,
                    "yaw": float(np.asarray(row["pose"])[0]),
                })

    def profiled(self, row: dict, rng: np.random.Generator) -> dict:
        """The row turned by face profiling (3DDFA), or the row itself when this draw leaves it: the image
        re-rendered with the mesh turned about its centre, the model's rotation ``turn @ R``, and the 68 landmarks
        of the turned mesh; the centre and scale do not change (:func:`~facehub.trainers.data.face_profiling.
        profile_face`)."""
        from facehub.modeling.geometry.rotations import euler_from_rotation_matrix, rotation_matrix
        from facehub.trainers.data.face_profiling import profile_face, profiling_angles

        probability, max_yaw, max_pitch = self.profiling
        if row["mesh"] is None or probability <= 0 or rng.random() >= probability:
            return row
        yaw_change, pitch_change = profiling_angles(row["yaw"], rng, max_yaw, max_pitch)
        if yaw_change == 0.0 and pitch_change == 0.0:
            return row
        image, mesh, turn = profile_face(row["image"], row["mesh"], yaw_change, pitch_change)
        rotation = np.asarray(euler_from_rotation_matrix(turn @ rotation_matrix(*row["rotation"])), np.float64)
        return {**row, "image": image, "rotation": rotation, "landmarks68": self._weights68 @ mesh[:, :2],
                "mesh": mesh, "yaw": float(self.model.head_pose(rotation)[0])}

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from facehub.modeling.prn_dense.cropping import face_crop_transform

        row = self.rows[index]
        if self.profiling[0] > 0:  # its own draws, so that the crop's jitter is the same with profiling on or off
            row = self.profiled(row, np.random.default_rng([self.seed, self.epoch, index, 1]))
        rng = np.random.default_rng([self.seed, self.epoch, index])
        offset = rng.uniform(-1, 1, 2) * self.shift_jitter
        zoom_jitter = 1.0 + rng.uniform(-1, 1) * self.scale_jitter
        size = self.image_size
        matrix = face_crop_transform(row["landmarks68"], size, scale=self.crop_scale * zoom_jitter,
                                     offset=tuple(offset))
        crop = face_crop(row["image"], matrix, size).astype(np.float32)
        if self.colour_jitter:
            gain = 1.0 + rng.uniform(-1, 1, 3) * self.colour_jitter
            crop = np.clip(crop * gain + rng.uniform(-1, 1) * self.colour_jitter * 64.0, 0, 255)
        zoom = float(matrix[0, 0])
        centre = (matrix[:, :2] @ row["centre"] + matrix[:, 2]) / size
        landmarks = (row["landmarks68"] @ matrix[:, :2].T + matrix[:, 2]) / size
        return {
            "pixel_values": torch.from_numpy(crop.astype(np.float32)).permute(2, 0, 1) / 127.5 - 1.0,
            "identity": torch.from_numpy(row["identity"]),
            "expression": torch.from_numpy(row["expression"]),
            "albedo": torch.from_numpy(row["albedo"]),
            "lighting": torch.from_numpy(row["lighting"]),
            "rotation": torch.from_numpy(np.deg2rad(row["rotation"])).float(),
            "translation": torch.from_numpy(centre).float(),
            "log_scale": torch.tensor(math.log(row["scale"] * zoom / size), dtype=torch.float32),
            "landmarks68": torch.from_numpy(landmarks).float(),
        }


def load_source(path: str):
    """A prepared folder (``datasets.save_to_disk``, ``dataset/`` inside or not) with the coefficient columns."""
    import datasets

    folder = Path(path)
    dataset_dir = folder / "dataset" if (folder / "dataset").is_dir() else folder
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"{path} is not a prepared folder (no dataset inside); write one with "
                                "datasets' save_to_disk or `facehub prepare`.")
    table = datasets.load_from_disk(str(dataset_dir))
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)} the regressor is trained on; label its faces "
                         "with the fitting (FaceCoefficients) or use a synthetic world.")
    return table.with_format("numpy", columns=list(REQUIRED_COLUMNS))


def regressor_loss(model, out, batch: dict[str, torch.Tensor], losses: FaceRegressorLossesConfig,
                   face_model) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-group weighted L2 on normalised coefficients plus the 68-landmark reprojection (module docstring)."""
    target = model.normalise({name: batch[name] for name in GROUPS})
    error = (out.normalised - target).square()
    weights = losses.group_weights()
    logs, total, start = {}, out.normalised.new_zeros(()), 0
    for name in GROUPS:
        width = model.sizes[name]
        term = error[:, start:start + width].mean()
        start += width
        logs[name] = term.detach().item()
        total = total + weights[name] * term
    if losses.landmarks > 0:
        predicted = posed_landmarks68(face_model, out.identity, out.expression, out.rotation, out.translation,
                                      out.log_scale)
        distance = (predicted - batch["landmarks68"]).square().sum(-1).mean()
        term = 0.5 * distance / losses.landmark_sigma ** 2
        logs["landmarks68"] = distance.sqrt().detach().item()
        total = total + losses.landmarks * term
    logs["loss"] = total.detach().item()
    return total, logs


# --------------------------------------------------------------------------------------------------------------------
# The method


#: The ``default`` preset: the first stage of the embedded regressor (``default-profiled`` fine-tunes its export).
_DEFAULT_RUN: dict[str, Any] = {
    "max_steps": 20_000, "train_batch_size": 32, "learning_rate": 2e-3, "lr_scheduler": "cosine",
    "lr_warmup_steps": 50, "checkpointing_steps": 500, "logging_steps": 50, "dataloader_num_workers": 0,
    "model": {"preset": "cpu-small"},
    "data": {"synthetic": {"num_identities": 1000, "views_per_identity": 2, "image_size": 96,
                           "uv_size": 8, "max_yaw": 75.0, "max_pitch": 30.0, "max_roll": 20.0, "seed": 0},
             "sources": ["runs/data/aflw-fitted", "runs/data/aflw-fitted-b"], "shift_jitter": 0.1,
             "scale_jitter": 0.25},
}

#: The ``default-profiled`` preset: ``default``'s export fine-tuned with face profiling (``default-profiled-more``
#: continues from its export, with more faces profiled and larger pitch changes).
_PROFILED_RUN: dict[str, Any] = {
    **_DEFAULT_RUN, "init_from": "runs/face-fitting-default/export", "max_steps": 10_000, "learning_rate": 5e-4,
    "lr_warmup_steps": 100,
    "data": {**_DEFAULT_RUN["data"], "profiling_probability": 0.3, "profiling_max_yaw": 90.0, "profiling_pitch": 10.0},
}


@dataclass
class FaceRegressorTrainingConfig(TrainingConfig):
    """Coefficient-regressor training: :class:`~facehub.trainers.core.TrainingConfig` plus
    :class:`FaceRegressorModelConfig`, :class:`FaceRegressorDataConfig` and :class:`FaceRegressorLossesConfig`.

    Presets: ``cpu-small`` (the 96 px network on 512 synthetic faces, minutes on two CPU cores), ``paper``
    (ResNet-50 at 224 px on 8,000 synthetic faces: a GPU run), ``default`` (the first stage of the embedded
    ``facehub/face-fitting`` regressor: 2,000 synthetic faces and the real AFLW crops of ``runs/data/aflw-fitted``
    and ``runs/data/aflw-fitted-b``, labelled by ``facehub prepare --fit --landmarks``;
    trainers/configs/face-fitting-default.yaml has the commands; wider crop jitter than ``cpu-small``, since a face
    found by its box alone is first read from a looser crop) and ``default-profiled`` (its second stage:
    ``default``'s export fine-tuned on the same faces with face profiling, ``data.profiling_probability`` 0.3;
    trainers/configs/face-fitting-profiled.yaml) and ``default-profiled-more`` (its third stage: ``default-profiled``'s
    export fine-tuned 5,000 steps more with profiling probability 0.5 and pitch changes up to 20 degrees;
    trainers/configs/face-fitting-profiled-more.yaml).
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "cpu-small": {
            "max_steps": 1500, "train_batch_size": 32, "learning_rate": 2e-3, "lr_scheduler": "cosine",
            "lr_warmup_steps": 50, "checkpointing_steps": 500, "logging_steps": 50, "dataloader_num_workers": 0,
            "model": {"preset": "cpu-small"},
            "data": {"synthetic": {"num_identities": 128, "views_per_identity": 4, "image_size": 128,
                                   "uv_size": 8, "max_yaw": 75.0, "max_pitch": 30.0, "max_roll": 20.0, "seed": 0}},
        },
        "paper": {
            "max_steps": 100_000, "train_batch_size": 32, "learning_rate": 1e-4, "lr_scheduler": "cosine",
            "lr_warmup_steps": 1000, "checkpointing_steps": 5000, "logging_steps": 100, "dataloader_num_workers": 8,
            "model": {"preset": "paper"},
            "data": {"synthetic": {"num_identities": 2000, "views_per_identity": 4, "image_size": 256,
                                   "uv_size": 8, "max_yaw": 90.0, "max_pitch": 30.0, "max_roll": 20.0, "seed": 0}},
        },
        "default": _DEFAULT_RUN,
        "default-profiled": _PROFILED_RUN,
        "default-profiled-more": {
            **_PROFILED_RUN, "init_from": "runs/face-fitting-profiled/export", "max_steps": 5_000,
            "lr_warmup_steps": 50,
            "data": {**_PROFILED_RUN["data"], "profiling_probability": 0.5, "profiling_pitch": 20.0},
        },
    }

    method: str = METHOD_NAME
    train_batch_size: int = 32
    learning_rate: float = 2e-3
    model: FaceRegressorModelConfig = field(default_factory=FaceRegressorModelConfig)
    data: FaceRegressorDataConfig = field(default_factory=FaceRegressorDataConfig)
    losses: FaceRegressorLossesConfig = field(default_factory=FaceRegressorLossesConfig)


class FaceRegressorTraining(TrainingMethod):
    """The coefficient regressor on faces with exact coefficients; see the module docstring."""

    name = METHOD_NAME
    config_class = FaceRegressorTrainingConfig
    config: FaceRegressorTrainingConfig

    def __init__(self, config: FaceRegressorTrainingConfig):
        super().__init__(config)
        from facehub.modeling.geometry.morphable import MorphableFaceModel

        self.face_model = MorphableFaceModel.default()

    def build_models(self) -> dict[str, torch.nn.Module]:
        m = self.face_model
        return {"regressor": FaceCoefficientRegressor(**{**self.config.model.settings(),
                                                         "num_identity": m.num_identity,
                                                         "num_expression": m.num_expression,
                                                         "num_albedo": m.num_albedo})}

    def build_dataset(self) -> CoefficientFaces:
        from accelerate import PartialState

        data = self.config.data
        tables = [load_source(path) for path in data.sources]
        if data.synthetic:
            from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig

            with PartialState().main_process_first():
                table = SyntheticFaceWorld(SyntheticWorldConfig(**data.synthetic)).to_dataset()
            tables.append(table.with_format("numpy", columns=list(REQUIRED_COLUMNS)))
        image_size = self.config.model.settings()["image_size"]
        return CoefficientFaces(tables, image_size, shift_jitter=data.shift_jitter, scale_jitter=data.scale_jitter,
                                colour_jitter=data.colour_jitter, seed=self.config.seed, model=self.face_model,
                                profiling_probability=data.profiling_probability,
                                profiling_max_yaw=data.profiling_max_yaw, profiling_pitch=data.profiling_pitch,
                                profiled_tables=[True] * len(data.sources) + [False] * (len(tables) - len(data.sources)))

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        regressor = ctx.models["regressor"]
        out = regressor(batch["pixel_values"])
        loss, logs = regressor_loss(ctx.accelerator.unwrap_model(regressor), out, batch, self.config.losses,
                                    self.face_model)
        ctx.optimize("main", loss)
        return logs

    def build_optimizers(self, models: dict[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"main": torch.optim.AdamW(models["regressor"].parameters(), lr=c.learning_rate,
                                          betas=(c.adam_beta1, c.adam_beta2), weight_decay=c.weight_decay)}

    def export(self, models: dict[str, torch.nn.Module], folder: Path) -> None:
        from facehub.modeling.face_fitting import FaceFitter, FaceFittingPipeline

        FaceFittingPipeline(fitter=FaceFitter(), regressor=models["regressor"]).save_pretrained(folder)

    def model_card(self) -> dict[str, Any]:
        settings = {**_regressor_defaults(), **self.config.model.settings()}
        parts = [f"the prepared faces of {path}" for path in self.config.data.sources]
        if self.config.data.synthetic:
            w = self.config.data.synthetic
            parts.append(f"a synthetic world of {w.get('num_identities', 8)} x {w.get('views_per_identity', 4)} "
                         f"morphable-model faces at {w.get('image_size', 128)} px (yaw up to {w.get('max_yaw', 60.0)} "
                         "degrees) with their exact coefficients")
        return {
            "description": (
                f"Morphable-model fitting with a learned start: a ResNet coefficient regressor (the R-Net of Deng et "
                f"al.; {self.config.model.preset} preset, {settings['image_size']} px PRNet crops, widths "
                f"{list(settings['stage_channels'])}) predicts identity, expression, albedo, SH lighting and pose in "
                f"one pass; the optimisation fit refines it (`pipe(image)`) or is skipped (`pipe(image, "
                f"refine=False)`). Trained with a per-group coefficient L2 and the 68-landmark reprojection on "
                f"{' and '.join(parts)}."
            ),
            "tags": ["3dmm", "coefficient-regression", "3d-face-reconstruction", "r-net"],
            "pipeline_tag": "image-to-3d",
        }


def main(argv: list[str] | None = None) -> int:
    from facehub.trainers.run import main as run_main

    return run_main(argv, method=METHOD_NAME)


if __name__ == "__main__":
    sys.exit(main())
