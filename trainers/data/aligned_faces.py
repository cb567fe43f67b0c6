"""Aligned face crops in memory, for the generative trainers (the pose CVAE-GAN, StyleGAN2 and the methods built on
it): faces from ``facehub prepare`` folders and from the synthetic face world, each cut with the FaceAnalyzer's
alignment (:func:`facehub.modeling.faces.alignment.aligned_crop`, the crop the rotation pipelines use), resized to the
model's side and kept as uint8 with their pose and, optionally, a per-face label vector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

#: The columns a prepared dataset must have for aligned crops, and the optional ones carried along.
REQUIRED_COLUMNS = ("image", "landmarks68", "pose")
OPTIONAL_COLUMNS = ("attributes", "shape_coefficients")


@dataclass
class FaceTable:
    """Faces of one source, in memory: crops (N, S, S, 3) uint8, poses (N, 3) degrees, labels (N, A) float32, how
    many faces were ``dropped`` for being turned too far, and the 68 landmarks (N, 68, 2) in crop pixels."""

    name: str
    crops: np.ndarray
    poses: np.ndarray
    attributes: np.ndarray
    dropped: int
    landmarks: np.ndarray | None = None


def load_prepared_rows(path: str):
    """The rows of a ``facehub prepare`` folder (or its ``dataset/``) with the columns training needs."""
    import datasets

    from facehub.trainers.data.prepare import saved_dataset_dir

    folder = saved_dataset_dir(Path(path).expanduser())
    if folder is None:
        raise FileNotFoundError(f"{path} is not a folder written by `facehub prepare` (no saved dataset in it or in "
                                "its dataset/ subfolder); run `facehub prepare --images DIR --out OUT` and give OUT.")
    table = datasets.load_from_disk(str(folder))
    if isinstance(table, datasets.DatasetDict):
        table = table["train"]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}: not a facehub face dataset.")
    return table.select_columns([c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in table.column_names])


def synthetic_rows(options: dict[str, Any]):
    """One view per identity of the synthetic world of ``options`` (rendered lazily, row by row)."""
    from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig

    try:
        return SyntheticFaceWorld(SyntheticWorldConfig(**{**options, "views_per_identity": 1}))
    except TypeError as err:
        raise ValueError(f"`data.synthetic` has an unknown setting ({err}); its settings are the fields of "
                         "facehub.trainers.data.synthetic_world.SyntheticWorldConfig.") from err


def no_label(row: dict) -> np.ndarray:
    """The label of a face for trainers that need none: an empty vector."""
    return np.zeros(0, np.float32)


def aligned_face_table(rows: Iterable[dict], name: str, size: int, max_yaw: float, length: int,
                       label: Callable[[dict], np.ndarray | None] = no_label, quiet: bool = False,
                       missing_label: str | None = None) -> FaceTable:
    """Align and keep every face of ``rows`` with ``|yaw| <= max_yaw``; ``label(row)`` gives its label vector.
    A ``None`` label raises ``ValueError(missing_label)``: the source lacks the labels the trainer asked for."""
    from tqdm.auto import tqdm

    from facehub.modeling.faces.alignment import aligned_crop
    from facehub.modeling.faces.image_io import load_image

    crops, poses, labels, landmarks, dropped = [], [], [], [], 0
    for row in tqdm(rows, total=length, desc=f"aligning {name}", unit="face", leave=False, disable=quiet):
        pose = np.asarray(row["pose"], np.float64)
        if abs(pose[0]) > max_yaw:
            dropped += 1
            continue
        value = label(row)
        if value is None:
            raise ValueError(missing_label or f"{name} lacks the labels this training needs for its faces.")
        image = np.asarray(load_image(row["image"]))
        aligned = aligned_crop(image, np.asarray(row["landmarks68"], np.float64)[:, :2], size)
        crops.append(aligned.image)
        landmarks.append(aligned.landmarks68.astype(np.float32))
        poses.append(pose)
        labels.append(np.asarray(value, np.float32))
    if not crops:
        raise ValueError(f"{name} has no face with |yaw| <= {max_yaw} degrees.")
    return FaceTable(name, np.stack(crops), np.stack(poses), np.stack(labels).astype(np.float32), dropped,
                     np.stack(landmarks))


def face_sources(sources: Iterable[str], synthetic: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """``(name, rows)`` of every prepared folder in ``sources`` and, when given, of a synthetic world with one view
    per identity; ``ValueError`` when there is none."""
    found = [(str(path), load_prepared_rows(path)) for path in sources]
    if synthetic:
        world = synthetic_rows(synthetic)
        found.append((f"synthetic world ({len(world)} identities, one view each)", world))
    if not found:
        raise ValueError("No training faces: set `data.sources` (facehub prepare folders) and/or `data.synthetic` "
                         "(e.g. data.synthetic.num_identities=1000).")
    return found


class AlignedFaceImages(Dataset):
    """Items ``{"image": (3, S, S) in [-1, 1]}`` of aligned crops (the unconditional GANs' real faces), with the
    crops' 68 landmarks kept as ``landmarks`` (N, 68, 2); flips depend only on ``(seed, epoch, index)``."""

    def __init__(self, tables: list[FaceTable], flip: bool = True, seed: int = 0):
        self.tables = tables
        self.crops = np.concatenate([t.crops for t in tables])
        self.landmarks = np.concatenate([t.landmarks for t in tables])
        self.flip, self.seed, self.epoch = bool(flip), int(seed), 0

    @classmethod
    def from_sources(cls, sources, synthetic: dict[str, Any] | None, size: int, max_yaw: float, flip: bool,
                     seed: int) -> AlignedFaceImages:
        """The faces of :func:`face_sources`, aligned at ``size`` px, ``|yaw| <= max_yaw``."""
        from accelerate import PartialState

        quiet = not PartialState().is_local_main_process
        tables = [aligned_face_table((rows[i] for i in range(len(rows))), name, size, max_yaw, len(rows), quiet=quiet)
                  for name, rows in face_sources(sources, synthetic)]
        return cls(tables, flip, seed)

    def __len__(self) -> int:
        return len(self.crops)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        crop = self.crops[index]
        if self.flip and np.random.default_rng((self.seed, self.epoch, index)).random() < 0.5:
            crop = crop[:, ::-1]
        return {"image": torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 127.5 - 1.0}
