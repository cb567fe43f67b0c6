"""``facehub prepare``: a folder of ordinary photos -> a labelled face dataset (``datasets.Dataset`` on disk).

Every photo goes through the face front-end (:class:`facehub.modeling.faces.FaceAnalyzer`): its largest face is
aligned and cropped, and the crop gets its 68 and dense landmarks, pose, identity embedding and UV position map
(schema: :mod:`facehub.trainers.data.schema`). Nested folders name identities (``DIR/<person>/<photo>``); a CelebA
``list_attr_celeba.txt`` adds the 40 binary attributes by file name.

The work is split into shards of at most ``shard_size`` photos; each shard is mapped with ``datasets.map`` over
``num_proc`` processes and saved as soon as it is done, with a ``manifest.json`` of what it holds: every photo's
path relative to the folder, size and modification time, plus the settings that shape its rows (crop and UV sizes,
pixel limit, the folder, the attributes file). A second run re-plans from the folder as it is then: a finished shard
whose photos are all still there, unchanged, and whose settings match is kept; every other photo (added, changed,
or in a shard that was never finished) goes into new shards; shards that no longer match are removed at the end.
So a killed run continues where it stopped, and each photo of the folder is processed exactly once.

Files that are not photos (other suffixes; SVG, a vector format), unreadable files, images over the pixel limit and
photos without a face are skipped and counted in ``report.json`` with their reason, never a crash. A plot of the
pose distribution is written next to the dataset.

With ``fit=True`` (``--fit``) each face is labelled by fitting the morphable model instead, optionally to hand-labelled
points given by ``landmarks`` (``--landmarks``, AFLW's 21 points), and the rows also carry the fitted coefficients
(:mod:`facehub.trainers.data.fit_labels`): real faces at every yaw for PRN-Dense and the coefficient regressor.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
#: Image formats facehub does not read, with what to do about them.
UNSUPPORTED_IMAGE_SUFFIXES = {
    ".svg": "an SVG is a vector drawing, not a photo; export it as PNG or JPEG to use it",
    ".svgz": "an SVG is a vector drawing, not a photo; export it as PNG or JPEG to use it",
    ".heic": "HEIC photos are not read; convert it to JPEG",
    ".heif": "HEIF photos are not read; convert it to JPEG",
    ".avif": "AVIF images are not read; convert it to JPEG or PNG",
}
DEFAULT_MAX_PIXELS = 40_000_000
STATUS_OK = "ok"
#: Columns a fitted row adds (the synthetic world's names for the morphable-model coefficients).
FIT_COLUMNS = ("shape_coefficients", "expression_coefficients", "albedo_coefficients", "lighting")
MANIFEST_NAME = "manifest.json"


@dataclass
class PrepareConfig:
    """Options of ``facehub prepare`` (see the module docstring)."""

    images: Path
    out: Path
    attributes: Path | None = None
    size: int = 128
    uv_size: int = 256
    num_proc: int = 1
    shard_size: int = 256
    max_pixels: int = DEFAULT_MAX_PIXELS
    push_to_hub: str | None = None
    fit: bool = False
    landmarks: Path | None = None
    analyzer_max_yaw: float = 40.0

    def __post_init__(self):
        self.images, self.out = Path(self.images), Path(self.out)
        self.attributes = Path(self.attributes) if self.attributes else None
        self.landmarks = Path(self.landmarks) if self.landmarks else None
        if self.landmarks is not None and not self.fit:
            raise ValueError("--landmarks (hand-labelled points) is used by the fitting; add --fit.")
        if self.landmarks is not None and not self.landmarks.is_file():
            raise FileNotFoundError(f"--landmarks {self.landmarks} does not exist.")
        if not self.images.is_dir():
            raise FileNotFoundError(f"--images {self.images} is not a folder of photos.")
        if self.attributes is not None and not self.attributes.is_file():
            raise FileNotFoundError(f"--attributes {self.attributes} does not exist.")
        for name in ("size", "uv_size", "num_proc", "shard_size", "max_pixels"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"Got {getattr(self, name)} for `{name}`; it must be a positive integer.")


@dataclass
class PrepareReport:
    """What ``prepare`` did: counts per outcome and every skipped file with its reason."""

    total: int = 0  # files considered: photos and the files skipped without reading (not photos)
    kept: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    identities: int = 0
    dataset_dir: str = ""
    plot: str = ""

    def summary(self) -> str:
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items()) if k != STATUS_OK)
        return f"{self.kept} of {self.total} files kept" + (f" (skipped {parts})" if parts else "")


def saved_dataset_dir(path: str | Path) -> Path | None:
    """The folder holding the saved dataset of a ``facehub prepare`` output: ``path`` itself or its ``dataset/``
    (whichever has ``dataset_info.json`` or ``state.json``); ``None`` when neither does."""
    path = Path(path)
    for folder in (path, path / "dataset"):
        if (folder / "dataset_info.json").is_file() or (folder / "state.json").is_file():
            return folder
    return None


def scan_images(root: Path) -> list[tuple[str, str]]:
    """``(path, identity_name)`` for every image-suffixed file under ``root``, sorted; the identity is the folder
    path relative to ``root`` ("" for photos directly in it)."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            parent = path.parent.relative_to(root).as_posix()
            found.append((str(path), "" if parent == "." else parent))
    return found


def scan_folder(root: Path, exclude: tuple[Path, ...] = ()) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """Every file under ``root`` (sorted): ``(photos, skipped)`` where ``photos`` are ``(path, identity_name)`` as
    :func:`scan_images` gives them and ``skipped`` the other files as report entries (``source``, ``status``,
    ``reason``). Files under a folder in ``exclude`` (the output folder) or equal to one of them are left out."""
    photos, skipped = [], []
    excluded = [Path(p).resolve() for p in exclude]
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        resolved = path.resolve()
        if any(resolved == e or e in resolved.parents for e in excluded):
            continue
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            parent = path.parent.relative_to(root).as_posix()
            photos.append((str(path), "" if parent == "." else parent))
        elif suffix in UNSUPPORTED_IMAGE_SUFFIXES:
            skipped.append({"source": str(path), "status": "unsupported", "reason": UNSUPPORTED_IMAGE_SUFFIXES[suffix]})
        else:
            skipped.append({"source": str(path), "status": "not_an_image",
                            "reason": f"not a photo ({suffix or 'no suffix'}); photos end in "
                                      f"{', '.join(sorted(IMAGE_SUFFIXES))}"})
    return photos, skipped


def read_celeba_attributes(path: Path) -> tuple[list[str], dict[str, list[int]]]:
    """Parse ``list_attr_celeba.txt``: a count line, a line of attribute names, then ``file v1 v2 ...`` with +-1."""
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError(f"{path} is not a CelebA attribute file: expected a count line and a names line.")
    names = lines[1]
    table = {}
    for number, row in enumerate(lines[2:], start=3):
        if len(row) != len(names) + 1:
            raise ValueError(f"{path}, line {number}: expected a file name and {len(names)} values, got {len(row) - 1}.")
        table[row[0]] = [1 if int(v) > 0 else 0 for v in row[1:]]
    return names, table


_ANALYZER = None


def _analyzer():
    """One FaceAnalyzer per worker process, created on first use."""
    global _ANALYZER
    if _ANALYZER is None:
        from facehub.modeling.faces import FaceAnalyzer

        _ANALYZER = FaceAnalyzer()
    return _ANALYZER


@contextlib.contextmanager
def _spawned_workers():
    """Make ``datasets.map`` start fresh worker processes instead of forking this one.

    A fork of a process in which MediaPipe or torch already started their thread pools dies in the child
    ("One of the subprocesses has abruptly died"), e.g. when ``prepare`` runs after a FaceAnalyzer was used.
    """
    import multiprocess

    previous = multiprocess.get_start_method(allow_none=True)
    multiprocess.set_start_method("spawn", force=True)
    try:
        yield
    finally:
        multiprocess.set_start_method(previous, force=True)


def _empty_row(config: PrepareConfig) -> dict[str, Any]:
    row = {
        "image": None,
        "landmarks68": np.zeros((68, 2), np.float32),
        "dense_landmarks": np.zeros((0, 3), np.float32),
        "pose": [0.0, 0.0, 0.0],
        "embedding": [0.0] * 128,
        "uv_position_map": np.zeros((config.uv_size, config.uv_size, 3), np.float16),
        "crop_to_image": np.zeros((2, 3), np.float32),
    }
    if config.fit:
        row.update({name: [] for name in FIT_COLUMNS[:3]}, lighting=[0.0] * 27)
    return row


_HAND_LABELS: dict[str, dict] = {}


def _hand_labels(config: PrepareConfig) -> dict:
    """The labels file's points by photo name, read once per worker process."""
    key = str(config.landmarks)
    if key not in _HAND_LABELS:
        from facehub.trainers.data.fit_labels import read_aflw21_labels

        _HAND_LABELS[key] = read_aflw21_labels(config.landmarks)
    return _HAND_LABELS[key]


def analyze_photo(path: str, config: PrepareConfig) -> tuple[str, str, dict[str, Any]]:
    """``(status, reason, columns)`` for one photo; status is ``ok``, ``unreadable``, ``too_large`` or ``no_face``."""
    from facehub.modeling.faces import ImageReadError, ImageTooLargeError, load_image
    from facehub.modeling.geometry.uv_maps import mesh_to_uv_position_map
    from facehub.modeling.prn_dense.cropping import image_positions_to_crop_units

    try:
        image = load_image(path, max_pixels=config.max_pixels)
    except ImageTooLargeError as err:
        return "too_large", str(err), _empty_row(config)
    except ImageReadError as err:
        return "unreadable", str(err), _empty_row(config)
    analyzer = _analyzer()
    faces = analyzer(image)
    if config.fit:
        from facehub.trainers.data.fit_labels import fit_photo

        labels = _hand_labels(config).get(Path(path).name) if config.landmarks else None
        status, reason, row = fit_photo(image, faces, labels, size=config.size, uv_size=config.uv_size,
                                        analyzer_max_yaw=config.analyzer_max_yaw)
        return status, reason, {**_empty_row(config), **row}
    if not faces:
        return "no_face", "no face found", _empty_row(config)
    face = faces[0]
    aligned = analyzer.align(image, face, size=config.size)
    dense = np.asarray(face.dense_landmarks, dtype=np.float64)
    dense_crop = image_positions_to_crop_units(dense, aligned.matrix, 1)  # crop pixels, z scaled as x and y
    uv_map = mesh_to_uv_position_map(dense_crop[:468], size=config.uv_size)
    return STATUS_OK, "", {
        "image": aligned.image,
        "landmarks68": np.asarray(aligned.landmarks68, np.float32),
        "dense_landmarks": dense_crop.astype(np.float32),
        "pose": [float(a) for a in face.pose],
        "embedding": [float(v) for v in face.embedding],
        "uv_position_map": np.asarray(uv_map, np.float16),
        "crop_to_image": np.asarray(aligned.inverse, np.float32),
    }


def _map_batch(batch: dict[str, list], config: PrepareConfig, attribute_table: dict[str, list[int]] | None):
    columns: dict[str, list] = {key: [] for key in (*_empty_row(config), "attributes", "status", "reason")}
    for path in batch["source"]:
        status, reason, row = analyze_photo(path, config)
        for key, value in row.items():
            columns[key].append(value)
        columns["attributes"].append(attribute_table.get(Path(path).name, []) if attribute_table else [])
        columns["status"].append(status)
        columns["reason"].append(reason)
    return columns


def _settings(config: PrepareConfig) -> dict[str, Any]:
    """What a shard's rows depend on besides its photos: a shard made with other settings is redone."""
    attributes = None
    if config.attributes is not None:
        attributes = hashlib.sha256(config.attributes.read_bytes()).hexdigest()
    settings = {"images": str(config.images.resolve()), "size": config.size, "uv_size": config.uv_size,
                "max_pixels": config.max_pixels, "attributes": attributes}
    if config.fit:
        settings["fit"] = {"analyzer_max_yaw": config.analyzer_max_yaw, "landmarks": hashlib.sha256(
            config.landmarks.read_bytes()).hexdigest() if config.landmarks else None}
    return settings


def _entry(path: str, identity: str, root: Path) -> list:
    """``[relative path, size, mtime_ns, identity name]``: how a manifest records one photo."""
    stat = Path(path).stat()
    return [Path(path).relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns, identity]


def plan_shards(config: PrepareConfig, photos: list[tuple[str, str]]) -> tuple[list[Path], list[list[list]], list[Path]]:
    """``(kept, new, stale)``: finished shard folders that still hold exactly their photos (unchanged) with these
    settings, the photo entries (:func:`_entry`) of the shards still to make, and the shard folders to remove."""
    shard_root = config.out / "shards"
    settings = _settings(config)
    current = {entry[0]: entry for entry in (_entry(path, identity, config.images) for path, identity in photos)}
    claimed: set[str] = set()
    kept, stale = [], []
    for folder in sorted(shard_root.glob("shard-*")) if shard_root.is_dir() else []:
        manifest_path = folder / MANIFEST_NAME
        manifest = None
        if folder.is_dir() and not folder.name.endswith(".tmp") and manifest_path.is_file():
            with contextlib.suppress(ValueError, OSError):
                manifest = json.loads(manifest_path.read_text())
        files = manifest.get("files", []) if isinstance(manifest, dict) else []
        usable = (
            isinstance(manifest, dict) and manifest.get("settings") == settings and files
            and (folder / "dataset_info.json").is_file()
            and all(current.get(entry[0]) == entry and entry[0] not in claimed for entry in files)
        )
        if usable:
            kept.append(folder)
            claimed.update(entry[0] for entry in files)
        else:
            stale.append(folder)
    remaining = [entry for name, entry in sorted(current.items()) if name not in claimed]
    new = [remaining[i : i + config.shard_size] for i in range(0, len(remaining), config.shard_size)]
    return kept, new, stale


def _shard_name(entries: list[list], settings: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps([entries, settings], sort_keys=True).encode()).hexdigest()
    return f"shard-{digest[:16]}"


def prepare(config: PrepareConfig) -> PrepareReport:
    """Run the whole preparation (resumable); returns the report also written to ``out/report.json``."""
    import datasets
    from tqdm.auto import tqdm

    from facehub.trainers.data.schema import ATTRIBUTES_FEATURE_NAME, face_features, fitted_features

    exclude = (config.out,) + ((config.attributes,) if config.attributes else ())
    photos, not_photos = scan_folder(config.images, exclude=exclude)
    if not photos:
        raise FileNotFoundError(f"No image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {config.images}.")
    names = sorted({identity for _, identity in photos if identity})
    label = {name: number for number, name in enumerate(names)}
    attribute_names, attribute_table = read_celeba_attributes(config.attributes) if config.attributes else ([], None)

    config.out.mkdir(parents=True, exist_ok=True)
    shard_root = config.out / "shards"
    features = fitted_features(config.uv_size) if config.fit else face_features(config.uv_size)
    features.update({"status": datasets.Value("string"), "reason": datasets.Value("string")})
    settings = _settings(config)
    kept_shards, new_shards, stale = plan_shards(config, photos)
    if kept_shards:
        logger.info("Resuming: %d finished shard(s) kept, %d to make", len(kept_shards), len(new_shards))
    done = [datasets.load_from_disk(str(folder)) for folder in kept_shards]
    for number, entries in enumerate(tqdm(new_shards, desc="prepare (shards)", unit="shard")):
        folder = shard_root / _shard_name(entries, settings)
        table = datasets.Dataset.from_dict(
            {
                "source": [str(config.images / entry[0]) for entry in entries],
                "identity": [label.get(entry[3], -1) for entry in entries],
                "identity_name": [entry[3] for entry in entries],
            }
        )
        with _spawned_workers():
            mapped = table.map(
                _map_batch,
                fn_kwargs={"config": config, "attribute_table": attribute_table},
                batched=True,
                batch_size=max(1, min(16, len(entries) // config.num_proc or 1)),
                # datasets spawns a pool even for num_proc=1: one process stays in this one (and keeps its analyzer)
                num_proc=config.num_proc if config.num_proc > 1 and len(entries) > 1 else None,
                features=features,
                desc=f"shard {number + 1}/{len(new_shards)}",
            )
        staging = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        mapped.save_to_disk(str(staging))
        (staging / MANIFEST_NAME).write_text(json.dumps({"settings": settings, "files": entries}))
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)  # a shard exists only once it is complete, manifest included
        done.append(datasets.load_from_disk(str(folder)))
    for folder in stale:  # shards of photos that changed or left, or made with other settings
        shutil.rmtree(folder, ignore_errors=True)

    everything = datasets.concatenate_datasets(done).sort("source")
    # Identity numbers from this run's folder names (a shard kept from an earlier run may predate a new identity).
    order = everything.column_names
    identity = [label.get(name, -1) for name in everything["identity_name"]]
    everything = everything.remove_columns("identity").add_column("identity", identity).select_columns(order)
    statuses = everything["status"]
    counts = Counter(statuses)
    counts.update(entry["status"] for entry in not_photos)
    report = PrepareReport(total=len(everything) + len(not_photos), counts=dict(counts), identities=len(names))
    report.skipped = [
        {"source": source, "status": status, "reason": reason}
        for source, status, reason in zip(everything["source"], statuses, everything["reason"], strict=True)
        if status != STATUS_OK
    ] + not_photos
    report.skipped.sort(key=lambda entry: entry["source"])
    kept = everything.filter(lambda s: s == STATUS_OK, input_columns="status").remove_columns(["status", "reason"])
    report.kept = len(kept)
    kept.info.description = json.dumps({ATTRIBUTES_FEATURE_NAME: attribute_names, "identity_names": names})
    dataset_dir = config.out / "dataset"
    shutil.rmtree(dataset_dir, ignore_errors=True)
    kept.save_to_disk(str(dataset_dir))
    report.dataset_dir = str(dataset_dir)
    if report.kept:
        report.plot = str(plot_pose_distribution(np.asarray(kept["pose"], dtype=np.float64), config.out))
    (config.out / "report.json").write_text(json.dumps(asdict(report), indent=2))
    if config.push_to_hub:
        kept.push_to_hub(config.push_to_hub)
    logger.info("%s; dataset in %s", report.summary(), dataset_dir)
    return report


def plot_pose_distribution(poses: np.ndarray, out: Path) -> Path:
    """Histograms of yaw, pitch and roll (degrees) and a yaw-pitch scatter, saved as ``pose_distribution.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for axis, values, name in zip(axes[:3], poses.T, ("yaw", "pitch", "roll"), strict=True):
        axis.hist(values, bins=np.arange(-90, 91, 5), color="#4c72b0")
        axis.set_xlabel(f"{name} (degrees)")
        axis.set_ylabel("faces")
    axes[3].scatter(poses[:, 0], poses[:, 1], s=6, alpha=0.6)
    axes[3].set_xlim(-90, 90)
    axes[3].set_ylim(-90, 90)
    axes[3].set_xlabel("yaw")
    axes[3].set_ylabel("pitch")
    figure.suptitle(f"Pose distribution of {len(poses)} faces")
    figure.tight_layout()
    path = Path(out) / "pose_distribution.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def prepare_synthetic(world_config, out: Path) -> PrepareReport:
    """Render the synthetic face world (:mod:`facehub.trainers.data.synthetic_world`) into ``out`` like
    :func:`prepare` does for photos: ``dataset/`` in the same schema plus exact ground truth, ``report.json`` and
    the pose plot."""
    from facehub.trainers.data.synthetic_world import SyntheticFaceWorld

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = SyntheticFaceWorld(world_config).to_dataset()
    dataset_dir = out / "dataset"
    shutil.rmtree(dataset_dir, ignore_errors=True)
    data.save_to_disk(str(dataset_dir))
    report = PrepareReport(total=len(data), kept=len(data), counts={STATUS_OK: len(data)},
                           identities=world_config.num_identities, dataset_dir=str(dataset_dir))
    report.plot = str(plot_pose_distribution(np.asarray(data["pose"], dtype=np.float64), out))
    (out / "report.json").write_text(json.dumps(asdict(report), indent=2))
    return report
