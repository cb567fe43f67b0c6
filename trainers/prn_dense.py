"""Training recipe of the DenseNet position-map regression network (seed 003, after PRNet: Feng et al., ECCV 2018),
plugged into the shared loop.

Run: ``facehub train prn_dense --config trainers/configs/prn-dense-cpu-small.yaml`` (or ``accelerate launch -m
facehub.trainers.prn_dense --config FILE``). Seed 003's schedule is ``trainers/configs/prn-dense-paper.yaml``. The
config is :class:`PRNDenseTrainingConfig` with the presets ``paper``, ``cpu-small`` and ``default`` (the embedded
``facehub/prn-dense``; ``--preset NAME``); ``facehub train prn_dense --help`` lists every setting.

What is learnt (seed 003, section 3.1.1, eq. 10). A face image crop goes in; the network returns the UV position
map ``Pos(u_i, v_i) = (x_i, y_i, z_i)`` of the face: for every texel of the dense mesh's UV layout
(:mod:`facehub.modeling.geometry.topology`), the 3D position of that surface point in the crop, x right and y down
in crop pixels, z towards the camera in the same unit. Network outputs and training targets are that map divided
by the crop size ``S`` (``x / S, y / S, z / S``, so values are about [0, 1]), at the model's output size ``U``
(:func:`~facehub.modeling.prn_dense.image_positions_to_crop_units`).

The depth origin (``data.z_origin``). ``deepest`` (default) measures z from the face's deepest vertex, as PRNet's
position maps and the synthetic world do; ``dataset`` keeps each source's own origin. Sources disagree on it
(MediaPipe, hence ``facehub prepare`` on photos: about the head's centre; the synthetic world: the deepest vertex),
and nothing in a face image tells them apart, so a mix trained with ``dataset`` would ask for two depths for one
look; with ``deepest`` the target is the same whatever the source, and the reconstruction's depth image is positive
on the face and 0 off it.

Data (``data.*``). Any mix of

- ``sources``: folders written by ``facehub prepare`` (photos labelled by the face front-end, or the synthetic
  world, ``--synthetic``; the output folder or its ``dataset/``), each a path or ``{path: DIR, weight: W,
  original_images: auto|true|false}``;
- ``synthetic``: a synthetic face world rendered once at the start of training
  (``SyntheticFaceWorld(SyntheticWorldConfig(**options)).to_dataset()``, cached by ``datasets``, rendered by the
  main process first when several run), with an optional ``weight``.

A source of ``n`` faces with weight ``w`` gives ``round(w * n)`` items per epoch (a different random subset or
repetition of its faces each epoch). Every item is built from a face's image, its 68 landmarks and its dense mesh
(468 vertices; the ``dense_landmarks`` column), never from the stored ``uv_position_map`` (which is the same map at
the dataset's ``uv_size``): the target is :func:`~facehub.modeling.geometry.uv_maps.mesh_to_uv_position_map` of the
mesh after every transform below, exact at any ``U``.

The crop. Training crops are cut exactly as inference cuts them: ``face_crop_transform(landmarks68, S)``
(:mod:`facehub.modeling.prn_dense`), the affine from image to crop pixels that ``FaceReconstructionPipeline`` uses
on the landmarks of the face it found. The dataset's own ``image`` is an ArcFace-aligned crop (photos) or the full
render (synthetic world), whose framing differs from that crop, so every item is re-cropped:

- from the original photo when ``data.original_images`` allows it (``auto``, the default: when the file named in
  the row's ``source`` exists), with the landmarks and mesh mapped back through the row's ``crop_to_image``; the
  re-crop then never runs out of pixels where the prepared crop was tighter than ours;
- otherwise from the dataset's ``image`` (black where the new crop leaves it, as inference pads images).

Augmentation (``data.augment``; each item's draws are a pure function of ``(seed, epoch, index)``, so a resumed run
sees the same items):

- face profiling for large poses (3DDFA, Zhu et al. CVPR 2016, section 5; seed 003 trains on 300W-LP, which was made
  this way): with probability ``profiling_probability`` the face is turned
  (:mod:`facehub.trainers.data.face_profiling`) about its mesh centre to a larger ``|yaw|`` (uniform
  between its own and ``profiling_max_yaw``, on the side it already faces; a random side when it is near-frontal),
  plus a pitch change within ``+-profiling_pitch``. Only ever away from the camera: the photo's texture is correct
  for the surface it shows, so turning further reveals little that was hidden. The target is the map of the rotated
  mesh, and the crop is taken from the rotated face's landmarks, as inference would;
- PRNet's perturbation of the crop, through ``face_crop_transform``'s own ``scale`` (``1.6 x (1 +-
  scale_jitter)``), ``offset`` (``+-shift_jitter`` of the landmark box's side, 0.1 in PRNet) and ``rotation``
  (``+-rotation_jitter`` degrees), applied to image and mesh alike (seed 003, 3.1.1: some of the training images are
  shifted and rotated, "平移旋转");
- colour: per-channel gain, brightness, contrast and saturation within ``+-colour_jitter`` (the target is
  untouched);
- a horizontal flip with probability ``flip_probability`` (ours; neither PRNet nor seed 003 flips, so the default
  is 0): the crop is mirrored and the mesh becomes ``(S - x, y, z)`` of each vertex's left-right partner
  (:func:`~facehub.modeling.geometry.topology.mirror_vertex_map`), so the target is a face of the same topology.

Loss (``losses.kind``): seed 003's eq. 9, ``1 - SSIM(pred, target) * W`` with the PRNet weight mask ``W``
(:func:`~facehub.modeling.geometry.topology.prnet_weight_mask`, 16 : 4 : 3 : 0 for the 68 landmarks : eyes, nose,
mouth : rest of the face : outside), ``kind: ssim`` (default); ``kind: mse`` is PRNet's weighted squared error.
Both are :func:`facehub.modeling.prn_dense.prn_loss`. The log also shows ``landmark_error``, the mean 2D error of
the 68 landmarks read from the predicted map, in crop pixels.

Optimiser and schedule (seed 003, section 3.1.2): Adam (``learning_rate`` 1e-4, betas (0.9, 0.999), no weight
decay), batch 16, and the learning rate lowered step-wise to 1e-6 and then 1e-8. The paper does not say when; the
default ``losses.lr_milestones: [0.5, 0.8]`` switches at 50% and 80% of ``max_steps``, with ``losses.lr_factors:
[1, 1e-2, 1e-4]`` (the rates 1e-4, 1e-6, 1e-8). The shared loop's schedules (diffusers' ``get_scheduler``) have no
such steps, so the method gives the loop the factor as the optimiser's schedule, on top of ``lr_scheduler``
(``constant`` gives exactly the paper's schedule); ``lr/main`` in the log is the rate applied.

Model (``model.*``): ``preset`` (``paper``, ``fast``, ``cpu-small``: :data:`~facehub.modeling.prn_dense.
configuration_prn_dense.PRN_DENSE_PRESETS`) plus any :class:`~facehub.modeling.prn_dense.PRNDenseConfig` field as an
override (``model.sample_size=64``); ``S`` and ``U`` are the model's ``sample_size``.

Export: ``FaceReconstructionPipeline(prn=model).save_pretrained(export/)`` plus the model card.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from facehub.modeling.geometry.landmarks68 import landmarks68_from_mesh
from facehub.modeling.geometry.topology import mirror_vertex_map
from facehub.modeling.geometry.uv_maps import mesh_to_uv_position_map, uv_position_map_to_mesh
from facehub.modeling.prn_dense import (
    PRN_DENSE_PRESETS,
    PRNET_CROP_SCALE,
    FaceReconstructionPipeline,
    PRNDenseModel,
    crop_face_image,
    face_crop_transform,
    image_positions_to_crop_units,
    prn_dense_config,
    prn_loss,
)
from facehub.modeling.prn_dense.losses import LOSS_KINDS
from facehub.trainers.core import StepContext, TrainingConfig, TrainingMethod
from facehub.trainers.core.config import ConfigError, ConfigSection, ModelSection, build_checked
from facehub.trainers.data.face_profiling import profile_face, profiling_angles

logger = logging.getLogger(__name__)

METHOD_NAME = "prn_dense"
#: The registry's ``training`` entry of this method (``facehub/methods/prn_dense.py``).
METHOD_TARGET = "facehub.trainers.prn_dense:PRNDenseTraining"
NUM_MESH_VERTICES = 468
Z_ORIGINS = ("deepest", "dataset")


# --------------------------------------------------------------------------------------------------------------------
# Config sections (the training config with its presets is next to the method, below)


@dataclass
class PRNDenseModelConfig(ModelSection):
    """``model``: a :data:`~facehub.modeling.prn_dense.configuration_prn_dense.PRN_DENSE_PRESETS` name plus overrides
    of :class:`~facehub.modeling.prn_dense.PRNDenseConfig`'s fields (``null``: the preset's value); ``S`` and ``U``
    are ``sample_size``.

    Fields:
        preset: ``paper`` (Table 1, 256 px, 10.44M parameters), ``fast`` (256 px, half the widths) or ``cpu-small``
            (128 px, growth rate 12, 0.62M parameters).
        sample_size: S, side of the input crop and of the UV position map.
        in_channels: image channels.
        out_channels: position-map channels (x, y, z).
        stem_channels: width of the stem convolution.
        block_out_channels: channels after each dense block (or set ``growth_rate``).
        transition_out_channels: channels after each transition (one fewer than the blocks).
        layers_per_block: dense layers per block.
        bottleneck_factor: the 1x1 bottleneck's width in units of the growth per layer.
        decoder_channels: widths of the five transposed-convolution modules.
        output_activation: the output's squashing function.
        output_range: (low, high) the activation maps to, in crop units.
        growth_rate: derive the block and transition widths from one growth rate (DenseNet-BC) instead.
        compression: (growth_rate) transition compression.
        num_blocks: (growth_rate) dense blocks.
    """

    model_presets: ClassVar[dict[str, dict[str, Any]]] = PRN_DENSE_PRESETS

    preset: str = "paper"
    sample_size: int | None = None
    in_channels: int | None = None
    out_channels: int | None = None
    stem_channels: int | None = None
    block_out_channels: tuple[int, ...] | None = None
    transition_out_channels: tuple[int, ...] | None = None
    layers_per_block: int | None = None
    bottleneck_factor: int | None = None
    decoder_channels: tuple[int, ...] | None = None
    output_activation: str | None = None
    output_range: tuple[float, ...] | None = None
    growth_rate: int | None = None
    compression: float | None = None
    num_blocks: int | None = None

    def __post_init__(self):
        super().__post_init__()
        self.validate(prn_dense_config, {"preset": self.preset, **self.overrides()})

    def network(self):
        """The validated :class:`~facehub.modeling.prn_dense.PRNDenseConfig`."""
        return prn_dense_config(self.preset, **self.overrides())


@dataclass
class PRNDenseDataConfig(ConfigSection):
    """``data``: the face sources and the augmentation (see the module docstring).

    Fields:
        sources: ``facehub prepare`` folders, each a path or ``{path: DIR, weight: W, original_images: auto|true|false}``.
        synthetic: a synthetic face world rendered at the start (any ``SyntheticWorldConfig`` field, plus ``weight``);
            ``null`` for none.
        original_images: ``auto`` re-crops from the original photo when the file still exists; ``true`` requires it;
            ``false`` uses the dataset's image.
        augment: apply the augmentation below (``false``: the plain inference crop).
        profiling_probability: chance of turning a face to a larger yaw by face profiling (3DDFA).
        profiling_max_yaw: largest |yaw| profiling turns a face to, degrees.
        profiling_pitch: profiling's pitch change within +- this, degrees.
        scale_jitter: crop size x (1 +- this) (PRNet: 0.1).
        shift_jitter: crop centre +- this fraction of the landmark box (PRNet: 0.1).
        rotation_jitter: crop rotation within +- this, degrees.
        colour_jitter: per-channel gain, brightness, contrast and saturation within 1 +- this.
        flip_probability: chance of a horizontal flip (ours; 0 as in the paper).
        z_origin: ``deepest`` measures z from the face's deepest vertex; ``dataset`` keeps each source's origin.
    """

    sources: list[str | dict[str, Any]] = field(default_factory=list)
    synthetic: dict[str, Any] | None = None
    original_images: Literal["auto"] | bool = "auto"
    augment: bool = True
    profiling_probability: float = 0.3
    profiling_max_yaw: float = 90.0
    profiling_pitch: float = 10.0
    scale_jitter: float = 0.1
    shift_jitter: float = 0.1
    rotation_jitter: float = 15.0
    colour_jitter: float = 0.2
    flip_probability: float = 0.0
    z_origin: Literal["deepest", "dataset"] = "deepest"

    def __post_init__(self):
        for entry in self.sources:
            if isinstance(entry, dict) and ("path" not in entry or set(entry) - {"path", "weight", "original_images"}):
                raise ConfigError(f"Got {entry!r} in `data.sources`; each entry is a folder or "
                                  "{path: DIR, weight: W, original_images: auto|true|false}.")
        if self.synthetic:
            from facehub.trainers.data.synthetic_world import SyntheticWorldConfig

            world = dict(self.synthetic)
            weight = world.pop("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                raise ConfigError(f"Got {weight!r} for `data.synthetic.weight`; expected a number, 0 or more.")
            build_checked(SyntheticWorldConfig, world, "data.synthetic.", METHOD_NAME)
        for name in ("profiling_probability", "flip_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"Got {getattr(self, name)} for `data.{name}`; expected a probability in [0, 1].")


#: ``data.*`` settings and their defaults.
DATA_DEFAULTS: dict[str, Any] = PRNDenseDataConfig().to_dict()


@dataclass
class PRNDenseLossesConfig(ConfigSection):
    """``losses``: the loss and seed 003's step-wise learning rate.

    Fields:
        kind: ``ssim`` (seed 003's eq. 9, 1 - SSIM x W) or ``mse`` (PRNet's weighted squared error).
        lr_milestones: fractions of ``max_steps`` where the learning rate steps down (increasing, in [0, 1]).
        lr_factors: the factor on ``learning_rate`` before the first milestone and after each (one more value).
    """

    kind: str = "ssim"
    lr_milestones: list[float] = field(default_factory=lambda: [0.5, 0.8])
    lr_factors: list[float] = field(default_factory=lambda: [1.0, 1e-2, 1e-4])

    def __post_init__(self):
        if self.kind not in LOSS_KINDS:
            raise ConfigError(f"Got {self.kind!r} for `losses.kind`; expected one of {LOSS_KINDS}.")
        milestones, factors = self.lr_milestones, self.lr_factors
        if len(factors) != len(milestones) + 1:
            raise ConfigError(f"`losses.lr_factors` needs one more value than `losses.lr_milestones` (the factor "
                              f"before the first milestone); got {len(factors)} factors for {len(milestones)} "
                              "milestones.")
        if milestones != sorted(milestones) or any(not 0 <= m <= 1 for m in milestones):
            raise ConfigError(f"Got {milestones} for `losses.lr_milestones`; expected increasing fractions of "
                              "max_steps.")


#: ``losses.*`` settings and their defaults.
LOSS_DEFAULTS: dict[str, Any] = PRNDenseLossesConfig().to_dict()


# --------------------------------------------------------------------------------------------------------------------
# Geometry of an item: crops, mesh transforms, the UV target


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(2, 3) affine applying ``inner`` then ``outer``."""
    linear = outer[:, :2] @ inner[:, :2]
    return np.hstack([linear, (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])


def transform_mesh(vertices: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map (N, 3) pixel-space vertices through a (2, 3) image affine: x, y by the affine, z by its scale
    (:func:`~facehub.modeling.prn_dense.image_positions_to_crop_units` times the crop size)."""
    return image_positions_to_crop_units(vertices, matrix, 1)


def uv_position_target(mesh_in_crop: np.ndarray, crop_size: int, uv_size: int) -> np.ndarray:
    """(3, U, U) float32 training target of a (468, 3) mesh in crop pixels: its UV position map divided by the crop
    size (the network's crop units)."""
    mesh = np.asarray(mesh_in_crop, np.float64)[:NUM_MESH_VERTICES]
    position_map = mesh_to_uv_position_map((mesh / crop_size).astype(np.float32), size=uv_size)
    return np.ascontiguousarray(position_map.transpose(2, 0, 1))


def jitter_colours(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Random per-channel gain, brightness, contrast and saturation, each within ``1 +- strength`` (uint8 in/out)."""
    if strength <= 0:
        return image
    pixels = image.astype(np.float32) / 255.0
    gains = rng.uniform(1 - strength, 1 + strength, size=3).astype(np.float32)
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, size=3)
    pixels = pixels * gains * brightness
    grey = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    pixels = grey[..., None] + saturation * (pixels - grey[..., None])
    pixels = pixels.mean() + contrast * (pixels - pixels.mean())
    return (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------------
# Data sources


@dataclass
class SourceFace:
    """One face as a source holds it: ``image`` (H, W, 3) uint8 and, in its pixels, ``landmarks68`` (68, 2) and the
    dense ``mesh`` (468, 3); ``yaw`` in degrees (house convention); ``name`` for messages."""

    image: np.ndarray
    landmarks68: np.ndarray
    mesh: np.ndarray
    yaw: float
    name: str


class PreparedFaceSource:
    """The faces of a ``datasets.Dataset`` in facehub's schema (``facehub prepare`` output or the synthetic world).

    Args:
        table: the dataset (or a folder holding it: the ``prepare`` output folder or its ``dataset/``).
        original_images: ``"auto"`` re-reads the original photo named in ``source`` when that file exists,
            ``True`` requires it, ``False`` always uses the dataset's ``image``.
    """

    COLUMNS = ("image", "landmarks68", "dense_landmarks", "pose", "crop_to_image", "source")

    def __init__(self, table, original_images: bool | str = "auto", name: str | None = None):
        import datasets

        if isinstance(table, (str, Path)):
            folder = Path(table).expanduser()
            from facehub.trainers.data.prepare import saved_dataset_dir

            dataset_dir = saved_dataset_dir(folder) if folder.is_dir() else None
            if dataset_dir is None:
                raise FileNotFoundError(
                    f"{table} is not a folder written by `facehub prepare` (no saved dataset in it or in its "
                    "dataset/ subfolder). Run `facehub prepare --images DIR --out OUT` (photos) or `facehub prepare "
                    "--synthetic --out OUT` and give OUT."
                )
            table = datasets.load_from_disk(str(dataset_dir))
            name = name or str(folder)
        if isinstance(table, datasets.DatasetDict):
            if "train" not in table:
                raise ValueError(f"{name} holds the splits {sorted(table)} and no 'train' split; give one split.")
            table = table["train"]
        missing = [c for c in self.COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"{name} lacks the column(s) {missing}: it is not a facehub face dataset "
                             "(schema: facehub.trainers.data.schema).")
        if original_images not in ("auto", True, False):
            raise ValueError(f"Got {original_images!r} for `data.original_images`; expected auto, true or false.")
        self.name = name or "dataset"
        self.original_images = original_images
        self.table = table.select_columns(list(self.COLUMNS))
        self.geometry = table.select_columns(["landmarks68", "dense_landmarks", "pose", "crop_to_image", "source"])
        self.geometry.set_format("numpy")

    def __len__(self) -> int:
        return len(self.table)

    def face(self, row: int) -> SourceFace:
        from facehub.modeling.faces.image_io import load_image

        geometry = self.geometry[int(row)]
        mesh = np.asarray(geometry["dense_landmarks"], np.float64)
        if mesh.shape[0] < NUM_MESH_VERTICES:
            raise ValueError(f"{self.name} row {row} has {mesh.shape[0]} dense landmarks; the position-map target "
                             f"needs the {NUM_MESH_VERTICES}-vertex face mesh.")
        mesh = mesh[:NUM_MESH_VERTICES]
        landmarks = np.asarray(geometry["landmarks68"], np.float64)
        source = str(geometry["source"])
        crop_to_image = np.asarray(geometry["crop_to_image"], np.float64)
        label = f"{self.name} row {row}"
        use_original = self.original_images is True or (
            self.original_images == "auto" and Path(source).is_file() and abs(np.linalg.det(crop_to_image[:, :2])) > 0
        )
        if use_original:
            if not Path(source).is_file():
                raise FileNotFoundError(f"{label}: the original photo {source} does not exist "
                                        "(data.original_images is true); set it to auto or false.")
            from facehub.modeling.faces.alignment import apply_affine

            image = load_image(source, max_pixels=None)
            landmarks = apply_affine(crop_to_image, landmarks)
            mesh = transform_mesh(mesh, crop_to_image)
        else:
            image = load_image(self.table[int(row)]["image"])
        return SourceFace(image, landmarks[:, :2], mesh, float(np.asarray(geometry["pose"])[0]), label)


def synthetic_source(options: dict[str, Any]) -> PreparedFaceSource:
    """The synthetic face world of ``options`` (:class:`SyntheticWorldConfig` fields), rendered once as a dataset."""
    from accelerate import PartialState

    from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig

    try:
        world_config = SyntheticWorldConfig(**options)
    except TypeError as err:
        raise ValueError(f"`data.synthetic` has an unknown setting ({err}); its settings are the fields of "
                         "facehub.trainers.data.synthetic_world.SyntheticWorldConfig.") from err
    with PartialState().main_process_first():
        table = SyntheticFaceWorld(world_config).to_dataset()
    return PreparedFaceSource(table, original_images=False,
                              name=f"synthetic world ({len(table)} faces, {world_config.image_size} px)")


# --------------------------------------------------------------------------------------------------------------------
# The training items


@dataclass
class TrainingView:
    """One training item before it becomes tensors.

    Attributes:
        image: (S, S, 3) uint8 crop, as the network sees it (after every augmentation).
        mesh: (468, 3) the face mesh in crop pixels (z origin per ``data.z_origin``), the geometry of ``target``.
        target: (3, U, U) float32 UV position map / S.
        source_to_crop: (2, 3) affine from the source face's image to the crop; when the face was profiled it maps
            the profiled image (the same frame, the face turned by ``rotation`` about ``rotation_centre``).
        rotation: (3, 3) the profiling rotation (identity when the face was not profiled); rotation_centre: (3,).
        source: which face of which source.
        flipped: the crop was mirrored; ``source_to_crop`` includes the mirror, and mesh vertex ``i`` is the image of
            the source's vertex ``mirror_vertex_map()[i]``.
    """

    image: np.ndarray
    mesh: np.ndarray
    target: np.ndarray
    source_to_crop: np.ndarray
    rotation: np.ndarray
    rotation_centre: np.ndarray
    source: str
    flipped: bool = False


class PositionMapFaces(Dataset):
    """Items ``{"image": (3, S, S) in [-1, 1], "uv_position_map": (3, U, U)}`` from weighted face sources; see the
    module docstring for the crop, the target and the augmentations.

    Args:
        sources: ``(source, weight)`` pairs (:class:`PreparedFaceSource`).
        crop_size: ``S``, the network's input size; uv_size: ``U``, its output size.
        augmentation: the ``data.*`` augmentation settings (:data:`DATA_DEFAULTS` keys).
        seed: every random draw is a function of ``(seed, epoch, index)``.
    """

    def __init__(self, sources: list[tuple[PreparedFaceSource, float]], crop_size: int, uv_size: int,
                 augmentation: dict[str, Any] | None = None, seed: int = 0):
        if not sources:
            raise ValueError("No training data: set `data.sources` (folders written by `facehub prepare`) and/or "
                             "`data.synthetic` (synthetic world settings).")
        self.sources = [source for source, _ in sources]
        self.counts = []
        for source, weight in sources:
            if weight < 0:
                raise ValueError(f"Got weight {weight} for {source.name}; weights must be >= 0.")
            if len(source) == 0:
                raise ValueError(f"{source.name} holds no faces.")
            self.counts.append(int(round(weight * len(source))) if weight > 0 else 0)
        if sum(self.counts) == 0:
            raise ValueError("Every data source has weight 0: nothing to train on.")
        self.offsets = np.cumsum([0, *self.counts])
        self.crop_size, self.uv_size, self.seed, self.epoch = int(crop_size), int(uv_size), int(seed), 0
        options = {**DATA_DEFAULTS, **(augmentation or {})}
        self.augment = bool(options["augment"])
        self.options = options
        self._orders: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def locate(self, index: int) -> tuple[int, int]:
        """``(source number, row)`` of item ``index`` in the current epoch."""
        number = int(np.searchsorted(self.offsets, index, side="right") - 1)
        position = index - int(self.offsets[number])
        key = (number, self.epoch)
        if key not in self._orders:  # one shuffle of each source per epoch
            self._orders = {k: v for k, v in self._orders.items() if k[1] == self.epoch}
            self._orders[key] = np.random.default_rng((self.seed, number, self.epoch)).permutation(
                len(self.sources[number]))
        order = self._orders[key]
        return number, int(order[position % len(order)])

    def view(self, index: int) -> TrainingView:
        """Item ``index`` of the current epoch as arrays (what :meth:`__getitem__` turns into tensors)."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        number, row = self.locate(index)
        face = self.sources[number].face(row)
        rng = np.random.default_rng((self.seed, self.epoch, index, 7))
        options, size = self.options, self.crop_size
        image, mesh, landmarks = face.image, face.mesh, face.landmarks68
        rotation, centre, to_canvas = np.eye(3), mesh.mean(axis=0), None
        if self.augment and rng.random() < float(options["profiling_probability"]):
            yaw_change, pitch_change = profiling_angles(face.yaw, rng, float(options["profiling_max_yaw"]),
                                                       float(options["profiling_pitch"]))
            if yaw_change != 0.0 or pitch_change != 0.0:
                # Turn the face on a canvas around it (the inference crop plus a quarter on each side, at crop
                # scale) instead of the whole photo: rendering costs grow with the canvas.
                margin = size // 4
                to_canvas = compose_affine(np.array([[1.0, 0.0, margin], [0.0, 1.0, margin]]),
                                           face_crop_transform(landmarks, size))
                canvas_mesh = transform_mesh(mesh, to_canvas)
                image, mesh, rotation = profile_face(crop_face_image(image, to_canvas, size + 2 * margin),
                                                     canvas_mesh, yaw_change, pitch_change)
                centre = canvas_mesh.mean(axis=0)
                landmarks = landmarks68_from_mesh(mesh)[:, :2]  # the turned face's, as inference would find them
        if self.augment:  # PRNet's perturbation of the same crop (face_crop_transform's scale, offset, rotation)
            crop = face_crop_transform(
                landmarks, size,
                scale=PRNET_CROP_SCALE * rng.uniform(1 - options["scale_jitter"], 1 + options["scale_jitter"]),
                offset=tuple(rng.uniform(-options["shift_jitter"], options["shift_jitter"], size=2)),
                rotation=rng.uniform(-options["rotation_jitter"], options["rotation_jitter"]),
            )
        else:
            crop = face_crop_transform(landmarks, size)
        pixels = crop_face_image(image, crop, size)
        mesh_in_crop = transform_mesh(mesh, crop)
        if options["z_origin"] == "deepest":
            mesh_in_crop[:, 2] -= mesh_in_crop[:, 2].min()
        if self.augment:
            pixels = jitter_colours(pixels, rng, float(options["colour_jitter"]))
        flipped = self.augment and rng.random() < float(options["flip_probability"])
        if flipped:  # pixel column j -> S - 1 - j, i.e. x -> S - x (pixel centres at j + 0.5)
            mirror = np.array([[-1.0, 0.0, size], [0.0, 1.0, 0.0]])
            pixels = np.ascontiguousarray(pixels[:, ::-1])
            mesh_in_crop = transform_mesh(mesh_in_crop[mirror_vertex_map()], mirror)
            crop = compose_affine(mirror, crop)
        return TrainingView(
            image=pixels,
            mesh=mesh_in_crop,
            target=uv_position_target(mesh_in_crop, size, self.uv_size),
            source_to_crop=crop if to_canvas is None else compose_affine(crop, to_canvas),
            rotation=rotation,
            rotation_centre=centre,
            source=face.name,
            flipped=bool(flipped),
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        view = self.view(index)
        image = torch.from_numpy(np.ascontiguousarray(view.image)).permute(2, 0, 1).float() / 127.5 - 1.0
        return {"image": image, "uv_position_map": torch.from_numpy(view.target)}


# --------------------------------------------------------------------------------------------------------------------
# The learning-rate steps


def step_learning_rate_factor(step: int, max_steps: int, milestones: list[float], factors: list[float]) -> float:
    """Seed 003's piecewise-constant schedule as a factor on the learning rate: ``factors[k]`` from
    ``milestones[k - 1] * max_steps`` on (``factors[0]`` before the first milestone)."""
    passed = sum(step >= int(round(m * max_steps)) for m in milestones)
    return float(factors[passed])


# --------------------------------------------------------------------------------------------------------------------
# The method


#: What the ``default`` and ``default-aflw*`` presets share: the run on two CPU cores, the prepared folders and the
#: augmentation.
_CPU_RUN = {"train_batch_size": 16, "lr_scheduler": "constant", "max_grad_norm": None, "checkpointing_steps": 200,
            "checkpoints_total_limit": 2, "export_steps": 200, "logging_steps": 25, "model": {"preset": "cpu-small"}}
_CPU_SOURCES = ["runs/data/synthetic-300x6", {"path": "runs/data/photos", "weight": 60}]
_CPU_AUGMENTATION = {"augment": True, "profiling_probability": 0.15, "profiling_max_yaw": 85.0, "scale_jitter": 0.1,
                     "shift_jitter": 0.1, "rotation_jitter": 15.0, "colour_jitter": 0.2, "flip_probability": 0.5}
#: The fine-tuning stages' schedule (``default-aflw*``): the learning rate drops tenfold at 60% and 85% of the steps.
_FINE_TUNING_LOSSES = {"kind": "ssim", "lr_milestones": [0.6, 0.85], "lr_factors": [1.0, 0.1, 0.01]}
#: The AFLW crops of ../shared/data's training split, first half, labelled by fitting (``facehub prepare --fit``).
_AFLW_FITTED = {"path": "runs/data/aflw-fitted", "weight": 1}


@dataclass
class PRNDenseTrainingConfig(TrainingConfig):
    """PRN-Dense training: the shared fields of :class:`~facehub.trainers.core.TrainingConfig` with seed 003's
    optimiser (Adam, 1e-4, batch 16, no clipping) plus :class:`PRNDenseModelConfig`, :class:`PRNDenseDataConfig`
    and :class:`PRNDenseLossesConfig`.

    Presets: ``paper`` (seed 003, 3.1.2: the paper network, 80 epochs of 7529 iterations, 1e-4 -> 1e-6 -> 1e-8;
    give your ``facehub prepare`` folders in ``data.sources``), ``cpu-small`` (minutes on two CPU cores, on a
    synthetic world rendered at the start) and ``default`` (what made the embedded ``facehub/prn-dense``: prepared
    synthetic faces and photos, see trainers/configs/prn-dense-default.yaml for the prepare commands) and
    ``default-aflw`` (the ``default`` run's export fine-tuned with real AFLW crops labelled by fitting, ``facehub
    prepare --fit --landmarks``, beside the same data: trainers/configs/prn-dense-default-aflw.yaml) and
    ``default-aflw-4k`` (that run's export fine-tuned again with all 4,000 labelled AFLW crops, the second half new
    to it: trainers/configs/prn-dense-default-aflw-4k.yaml).
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {
            "max_steps": 602_320, "train_batch_size": 16, "learning_rate": 1e-4, "adam_beta1": 0.9,
            "adam_beta2": 0.999, "weight_decay": 0.0, "max_grad_norm": None, "lr_scheduler": "constant",
            "checkpointing_steps": 7529, "checkpoints_total_limit": 3, "export_steps": 75_290, "logging_steps": 100,
            "dataloader_num_workers": 8,
            "model": {"preset": "paper"},
            "losses": {"kind": "ssim", "lr_milestones": [0.5, 0.8], "lr_factors": [1.0, 1e-2, 1e-4]},
            "data": {
                "sources": [],
                "synthetic": {"num_identities": 1000, "views_per_identity": 8, "image_size": 256, "uv_size": 8,
                              "max_yaw": 90.0, "max_pitch": 30.0, "max_roll": 20.0, "seed": 0, "weight": 1.0},
                "original_images": "auto", "augment": True, "profiling_probability": 0.3, "profiling_max_yaw": 90.0,
                "profiling_pitch": 10.0, "scale_jitter": 0.1, "shift_jitter": 0.1, "rotation_jitter": 15.0,
                "colour_jitter": 0.2, "z_origin": "deepest",
            },
        },
        "cpu-small": {
            "max_steps": 600, "train_batch_size": 16, "learning_rate": 2e-3, "adam_beta1": 0.9, "adam_beta2": 0.999,
            "weight_decay": 0.0, "max_grad_norm": None, "lr_scheduler": "constant", "checkpointing_steps": 200,
            "checkpoints_total_limit": 2, "logging_steps": 25, "dataloader_num_workers": 0,
            "model": {"preset": "cpu-small"},
            "losses": {"kind": "ssim", "lr_milestones": [0.7, 0.9], "lr_factors": [1.0, 0.1, 0.01]},
            "data": {
                "sources": [],
                "synthetic": {"num_identities": 64, "views_per_identity": 8, "image_size": 128, "uv_size": 8,
                              "max_yaw": 90.0, "max_pitch": 30.0, "max_roll": 20.0, "seed": 0},
                "augment": True, "profiling_probability": 0.1, "profiling_max_yaw": 90.0, "scale_jitter": 0.1,
                "shift_jitter": 0.1, "rotation_jitter": 15.0, "colour_jitter": 0.2,
            },
        },
        "default": {
            **_CPU_RUN, "max_steps": 2000, "learning_rate": 2e-3,
            "losses": {"kind": "ssim", "lr_milestones": [0.7, 0.9], "lr_factors": [1.0, 0.1, 0.01]},
            "data": {"sources": _CPU_SOURCES, **_CPU_AUGMENTATION},
        },
        "default-aflw": {
            **_CPU_RUN, "init_from": "runs/prn-dense-default/export", "max_steps": 800, "learning_rate": 5e-4,
            "losses": _FINE_TUNING_LOSSES,
            "data": {"sources": [*_CPU_SOURCES, _AFLW_FITTED], **_CPU_AUGMENTATION},
        },
        "default-aflw-4k": {
            **_CPU_RUN, "init_from": "runs/prn-dense-default-aflw/export", "max_steps": 1000, "learning_rate": 3e-4,
            "losses": _FINE_TUNING_LOSSES,
            "data": {"sources": [*_CPU_SOURCES, _AFLW_FITTED, {"path": "runs/data/aflw-fitted-b", "weight": 1}],
                     **_CPU_AUGMENTATION},
        },
    }

    method: str = METHOD_NAME
    train_batch_size: int = 16
    max_grad_norm: float | None = None
    model: PRNDenseModelConfig = field(default_factory=PRNDenseModelConfig)
    data: PRNDenseDataConfig = field(default_factory=PRNDenseDataConfig)
    losses: PRNDenseLossesConfig = field(default_factory=PRNDenseLossesConfig)


class PRNDenseTraining(TrainingMethod):
    """UV position-map regression (seed 003) on faces from ``data.sources`` / ``data.synthetic``; see the module
    docstring."""

    name = METHOD_NAME
    config_class = PRNDenseTrainingConfig
    config: PRNDenseTrainingConfig

    def __init__(self, config: PRNDenseTrainingConfig):
        super().__init__(config)
        self.preset = config.model.preset
        self.network = config.model.network()
        self.crop_size = self.uv_size = int(self.network.sample_size)
        self.losses: PRNDenseLossesConfig = config.losses
        self.data: PRNDenseDataConfig = config.data
        self._weight_mask: torch.Tensor | None = None
        self._landmark_weights: torch.Tensor | None = None

    def build_models(self) -> dict[str, torch.nn.Module]:
        model = PRNDenseModel(**self.network.model_kwargs())
        self.crop_size, self.uv_size = int(model.config.sample_size), int(model.uv_size)
        return {"prn": model}

    def build_optimizers(self, models: dict[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        """Adam (seed 003, section 3.1.2)."""
        c = self.config
        return {"main": torch.optim.Adam(models["prn"].parameters(), lr=c.learning_rate,
                                         betas=(c.adam_beta1, c.adam_beta2), weight_decay=c.weight_decay)}

    def build_sources(self) -> list[tuple[PreparedFaceSource, float]]:
        sources = []
        for entry in self.data.sources:
            if isinstance(entry, dict):  # keys checked by PRNDenseDataConfig
                path, weight = entry["path"], float(entry.get("weight", 1.0))
                original = entry.get("original_images", self.data.original_images)
            else:
                path, weight, original = entry, 1.0, self.data.original_images
            sources.append((PreparedFaceSource(path, original_images=original), weight))
        if self.data.synthetic:
            options = dict(self.data.synthetic)
            weight = float(options.pop("weight", 1.0))
            sources.append((synthetic_source(options), weight))
        return sources

    def build_dataset(self) -> PositionMapFaces:
        sources = self.build_sources()
        data = PositionMapFaces(sources, self.crop_size, self.uv_size, self.data, seed=self.config.seed)
        for (source, weight), count in zip(sources, data.counts, strict=True):
            logger.info("data: %s, weight %g: %d items per epoch", source.name, weight, count)
        return data

    def learning_rate_schedules(self) -> dict[str, Callable[[int], float]]:
        """Seed 003's steps (:func:`step_learning_rate_factor`) as the optimiser's schedule, on top of
        ``lr_scheduler``."""
        max_steps = self.config.max_steps
        milestones, factors = list(self.losses.lr_milestones), list(self.losses.lr_factors)
        return {"main": lambda step: step_learning_rate_factor(step, max_steps, milestones, factors)}

    def _buffers(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._weight_mask is None:
            from facehub.modeling.geometry.topology import FaceTopology, prnet_weight_mask

            self._weight_mask = torch.from_numpy(prnet_weight_mask(self.uv_size))
            self._landmark_weights = torch.from_numpy(FaceTopology.default().landmark_weights)
        return self._weight_mask.to(device), self._landmark_weights.to(device)

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        images, target = batch["image"], batch["uv_position_map"]
        weight_mask, landmark_weights = self._buffers(images.device)
        with ctx.accelerator.autocast():
            predicted = ctx.models["prn"](images).uv_position_map
        loss = prn_loss(predicted.float(), target, weight_mask, kind=self.losses.kind)
        ctx.optimize("main", loss)
        with torch.no_grad():
            landmarks = [torch.einsum("lv,bvd->bld", landmark_weights, uv_position_map_to_mesh(m.float()))
                         for m in (predicted.detach(), target)]
            error = (landmarks[0] - landmarks[1])[..., :2].norm(dim=-1).mean() * self.crop_size
        return {"loss": loss.detach().item(), "landmark_error": error.item()}

    def export(self, models: dict[str, torch.nn.Module], folder: Path) -> None:
        FaceReconstructionPipeline(prn=models["prn"]).save_pretrained(folder)

    def model_card(self) -> dict[str, Any]:
        sizes = f"{self.crop_size} px crops -> {self.uv_size}x{self.uv_size} UV position maps"
        loss = ("1 - SSIM x W (seed 003, eq. 9)" if self.losses.kind == "ssim"
                else "PRNet's weighted squared error")
        return {
            "description": (
                f"DenseNet encoder-decoder position-map regression network (seed 003, after PRNet), {self.preset} "
                f"preset ({sizes}): regresses the UV position map of the face in a crop, giving its dense 3D "
                f"mesh and 68 landmarks. Trained with {loss} and the PRNet weight mask 16:4:3:0 on "
                f"{self._data_description()}."
            ),
            "tags": ["prn", "densenet", "uv-position-map", "3d-face-reconstruction", "face-alignment"],
            "pipeline_tag": "image-to-3d",
        }

    def _data_description(self) -> str:
        parts = []
        for entry in self.data.sources:
            parts.append(f"the prepared faces of {entry['path'] if isinstance(entry, dict) else entry}")
        if self.data.synthetic:
            world = dict(self.data.synthetic)
            parts.append(
                f"a synthetic world of {world.get('num_identities', 8)} x {world.get('views_per_identity', 4)} "
                f"morphable-model faces (yaw up to {world.get('max_yaw', 60.0)} degrees)"
            )
        augment = ""
        if self.data.augment:
            profiling = self.data.profiling_probability
            flip = self.data.flip_probability
            kinds = [f"face profiling (3DDFA, probability {profiling:g})"] if profiling else []
            kinds += ["crop jitter (scale, shift, rotation)", "colour jitter"]
            kinds += [f"horizontal flips (probability {flip:g})"] if flip else []
            augment = "; augmented by " + ", ".join(kinds[:-1]) + " and " + kinds[-1]
        return (" and ".join(parts) or "no data") + augment


def main(argv: list[str] | None = None) -> int:
    from facehub.trainers.run import main as run_main

    return run_main(argv, method=METHOD_NAME)


if __name__ == "__main__":
    sys.exit(main())
