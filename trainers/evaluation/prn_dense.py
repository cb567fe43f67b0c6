"""``facehub eval prn_dense``: seed 003's Table 2 (68-point NME by yaw bin) and Table 3 (dense NME after ICP).

Usage::

    facehub eval prn_dense --data DIR [--model ID ...] [--out DIR] [--limit N] [--crop gt|detector]
                           [--no-mediapipe] [--pixel-origin matlab|zero_based|corner]

``--data`` is either

- a folder in the AFLW2000-3D layout (``imageNNNNN.jpg`` + ``imageNNNNN.mat`` with ``pt3d_68`` and ``Pose_Para``;
  :mod:`facehub.trainers.data.aflw2000`): Table 2 only, the benchmark's 3D landmarks as ground truth;
- a synthetic-world folder from ``facehub prepare --synthetic``: Table 2 with the world's exact 68 landmarks,
  and Table 3 against its exact face mesh;
- or a folder of photos prepared by ``facehub prepare --images``: Table 2 against the landmarks prepare stored,
  which are MediaPipe's own (the face front-end's). It measures how far a model strays from MediaPipe on real
  photos, not its accuracy; MediaPipe's reference row is left out (it would be 0 by construction).

Metrics (:mod:`facehub.modeling.geometry.landmark_metrics`):

- NME of the 68 landmarks (seed 003 eq. 11): the mean 2D point-to-point error divided by ``sqrt(w * h)`` of the
  ground-truth landmarks' bounding box, in percent, reported per yaw bin ``[0, 30)``, ``[30, 60)``, ``[60, 90]``
  (``|yaw|`` in degrees; the few faces past 90 count in the last bin) and as Table 2's "mean", the mean of the three
  bin means (PRN's 3.62 = mean(2.75, 3.51, 4.61)); ``all faces`` is the plain mean over faces;
- dense NME (Table 3, synthetic world only): the predicted mesh is rigidly registered to the ground-truth mesh by
  ICP (:func:`icp`: nearest neighbours with ``scipy.spatial.cKDTree``, each step solved by Umeyama), then the mean
  3D distance between corresponding vertices (both meshes share facehub's topology) is divided by the ground
  truth's outer inter-ocular distance (3D), as seed 003 section 3.2.2 describes (``dense_nme``), and by the box
  size ``sqrt(w * h)`` of its 68 landmarks (``dense_nme_box``, the normalisation of the 2D metric).

Rows: each ``--model`` (a ``FaceReconstructionPipeline``; default ``facehub/prn-dense``), MediaPipe's own 68
landmarks (:class:`~facehub.modeling.faces.FaceAnalyzer`, the face front-end's iBUG mapping of its face mesh) as a
reference on the same faces (mapped to 68 points it reaches about 5% on AFLW2000-3D), and the published rows of
seed 003's Tables 2 and 3 (quoted, not measured; they are AFLW2000-3D numbers, context only on other data).

How a model sees a face (``--crop``): ``gt`` (default; the usual AFLW2000-3D protocol, where the face's box comes
from its annotation) crops with ``face_crop_transform`` from the ground-truth landmarks; ``detector`` runs the
whole pipeline (face front-end, then its crop), as a user would. A face MediaPipe (or the pipeline) does not find is
counted as missed and left out of that row's means; the table shows how many.

Outputs with ``--out``: ``results.json`` (every row, per-bin numbers and counts), ``eval_results.json`` (the first
model's metrics, the format of :mod:`facehub.hub.cards`), and ``nme_by_yaw.png``, per-face NME against ``|yaw|``
with each row's bin means.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facehub.modeling.geometry.landmark_metrics import nme
from facehub.modeling.geometry.procrustes import Similarity, umeyama

YAW_BINS: tuple[tuple[float, float], ...] = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))
YAW_BIN_LABELS = ("[0, 30)", "[30, 60)", "[60, 90]")
DEFAULT_MODEL_ID = "facehub/prn-dense"
#: Seed 003, Table 2 (NME %, AFLW2000-3D) and Table 3 (dense NME after ICP), as published.
PAPER_ROWS = {
    "3DDFA (published, AFLW2000-3D)": ((3.78, 4.54, 7.93), 5.42, 5.3695),
    "3DDFA + SDM (published, AFLW2000-3D)": ((3.43, 4.24, 7.17), 4.94, None),
    "PRN (published, AFLW2000-3D)": ((2.75, 3.51, 4.61), 3.62, 3.9625),
    "PRN-Dense (seed 003, AFLW2000-3D)": ((2.75, 3.48, 4.55), 3.59, 3.9372),
}
PAPER_ROW_OF_THIS_METHOD = "PRN-Dense (seed 003, AFLW2000-3D)"


# --------------------------------------------------------------------------------------------------------------------
# Metrics


def yaw_bin_index(yaw_degrees) -> np.ndarray:
    """Index (0, 1, 2) of each yaw's Table 2 bin by ``|yaw|``: [0, 30), [30, 60), [60, 90] (past 90 -> the last)."""
    magnitude = np.abs(np.asarray(yaw_degrees, dtype=np.float64))
    return np.digitize(magnitude, [YAW_BINS[1][0], YAW_BINS[2][0]]).astype(np.int64)


@dataclass
class BinnedNME:
    """NME (percent) of one row by yaw bin.

    Attributes:
        bins: mean NME per bin (``nan`` for an empty bin); counts: faces per bin that the row measured.
        mean: Table 2's "mean", the mean of the non-empty bins' means; all_faces: the mean over every face.
        missed: faces the row could not measure (no face found).
    """

    bins: list[float]
    counts: list[int]
    mean: float
    all_faces: float
    missed: int = 0


def nme_by_yaw(nme_percent, yaw_degrees, missed: int = 0) -> BinnedNME:
    """Bin per-face NME values (percent) by ``|yaw|``; ``nan`` values count as missed faces."""
    values = np.asarray(nme_percent, dtype=np.float64)
    bins = yaw_bin_index(yaw_degrees)
    found = np.isfinite(values)
    means, counts = [], []
    for index in range(len(YAW_BINS)):
        chosen = found & (bins == index)
        counts.append(int(chosen.sum()))
        means.append(float(values[chosen].mean()) if chosen.any() else float("nan"))
    filled = [m for m in means if np.isfinite(m)]
    return BinnedNME(
        bins=means,
        counts=counts,
        mean=float(np.mean(filled)) if filled else float("nan"),
        all_faces=float(values[found].mean()) if found.any() else float("nan"),
        missed=int(missed + (~found).sum()),
    )


@dataclass
class ICPResult:
    """Rigid transform taking the source points onto the target (``transform.apply(source)``), the mean
    nearest-neighbour distance after it, and the iterations run."""

    transform: Similarity
    mean_distance: float
    iterations: int


def icp(source: np.ndarray, target: np.ndarray, iterations: int = 50, tolerance: float = 1e-7,
        with_scale: bool = False, initial: Similarity | None = None) -> ICPResult:
    """Iterative closest point (Besl & McKay 1992; the registration of seed 003's Table 3, its reference [17]).

    Each iteration pairs every (moved) source point with its nearest target point (``scipy.spatial.cKDTree``) and
    solves the best rigid transform of those pairs in closed form (:func:`~facehub.modeling.geometry.procrustes.
    umeyama`, ``with_scale=False``); it stops when the mean squared distance improves by less than ``tolerance``
    (relative) or after ``iterations`` steps.

    Args:
        source, target: (N, 3) and (M, 3) point clouds (need not correspond).
        initial: starting transform (default: the identity; both clouds are usually in the same image frame).
    """
    from scipy.spatial import cKDTree

    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    dim = source.shape[1]
    transform = initial or Similarity(1.0, np.eye(dim), np.zeros(dim))
    tree = cKDTree(target)
    distances, nearest = tree.query(transform.apply(source))
    iteration = 0
    while iteration < iterations:
        iteration += 1
        candidate = umeyama(source, target[nearest], with_scale=with_scale)
        new_distances, new_nearest = tree.query(candidate.apply(source))
        before, after = float(np.mean(distances**2)), float(np.mean(new_distances**2))
        if after > before:
            break  # each step lowers the mean squared distance in exact arithmetic; a safeguard against round-off
        transform, distances, nearest = candidate, new_distances, new_nearest
        if before - after <= tolerance * max(before, 1e-12):
            break
    return ICPResult(transform, float(distances.mean()), iteration)


def dense_nme_after_icp(predicted_mesh: np.ndarray, true_mesh: np.ndarray) -> tuple[float, float]:
    """(dense NME over the outer inter-ocular distance, dense NME over ``sqrt(w * h)`` of the box), percent.

    ``predicted_mesh`` is registered to ``true_mesh`` by :func:`icp`; errors are between corresponding vertices
    (the two share facehub's 468-vertex topology). Normalisers come from the ground truth: the 3D distance between
    iBUG points 37 and 46 (seed 003, section 3.2.2) and the 2D box of its 68 landmarks (PRNet).
    """
    from facehub.modeling.geometry.landmarks68 import landmarks68_from_mesh

    predicted_mesh = np.asarray(predicted_mesh, dtype=np.float64)[:468]
    true_mesh = np.asarray(true_mesh, dtype=np.float64)[:468]
    registration = icp(predicted_mesh, true_mesh)
    error = np.linalg.norm(registration.transform.apply(predicted_mesh) - true_mesh, axis=-1).mean()
    landmarks = landmarks68_from_mesh(true_mesh)
    outer_eyes = float(np.linalg.norm(landmarks[36] - landmarks[45]))
    box = landmarks[:, :2].max(axis=0) - landmarks[:, :2].min(axis=0)
    return float(100.0 * error / outer_eyes), float(100.0 * error / np.sqrt(box.prod()))


# --------------------------------------------------------------------------------------------------------------------
# Evaluation data


@dataclass
class EvaluationFace:
    """One face to evaluate: the photo, its ground-truth 68 landmarks (68, >= 2) in image pixels, ``|yaw|`` bin
    source ``yaw`` (degrees) and, for the synthetic world, the ground-truth (468, 3) mesh in image pixels."""

    image: np.ndarray
    landmarks68: np.ndarray
    yaw: float
    mesh: np.ndarray | None
    source: str


@dataclass
class EvaluationData:
    """Faces of one benchmark folder, read lazily."""

    kind: str  # "aflw2000-3d", "synthetic" or "photos"
    name: str
    count: int
    faces: Iterator[EvaluationFace] = field(repr=False)


def open_evaluation_data(folder: str | Path, limit: int | None = None,
                         pixel_origin: str = "matlab") -> EvaluationData:
    """An AFLW2000-3D folder or a ``facehub prepare`` folder, synthetic or of photos (see the module docstring)."""
    from facehub.trainers.data.aflw2000 import find_aflw2000_samples, read_aflw2000_sample

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"--data {folder} is not a folder (an AFLW2000-3D folder or a `facehub prepare` "
                                "output).")
    annotations = find_aflw2000_samples(folder)
    if annotations:
        annotations = annotations[:limit] if limit else annotations

        def aflw_faces() -> Iterator[EvaluationFace]:
            for path in annotations:
                sample = read_aflw2000_sample(path, pixel_origin=pixel_origin)
                yield EvaluationFace(sample.image, sample.landmarks68, sample.yaw, None, sample.source)

        return EvaluationData("aflw2000-3d", f"AFLW2000-3D ({folder})", len(annotations), aflw_faces())
    return _prepared_data(folder, limit)


def _prepared_data(folder: Path, limit: int | None) -> EvaluationData:
    import datasets

    from facehub.modeling.faces.alignment import apply_affine
    from facehub.modeling.faces.image_io import load_image

    dataset_dir = next((d for d in (folder, folder / "dataset") if (d / "dataset_info.json").is_file()), None)
    if dataset_dir is None:
        raise FileNotFoundError(f"{folder} holds neither AFLW2000-3D annotations (*.mat next to their photos) nor a "
                                "dataset written by `facehub prepare`.")
    table = datasets.load_from_disk(str(dataset_dir))
    if "landmarks68_3d" not in table.column_names:  # photos: only the synthetic world knows its true geometry
        return _prepared_photos(folder, dataset_dir, limit)
    count = min(len(table), limit) if limit else len(table)
    geometry = table.select_columns(["landmarks68_3d", "dense_landmarks", "pose", "crop_to_image"])
    geometry.set_format("numpy")

    def synthetic_faces() -> Iterator[EvaluationFace]:
        for row in range(count):
            columns = geometry[row]
            to_image = np.asarray(columns["crop_to_image"], np.float64)
            scale = float(np.sqrt(abs(np.linalg.det(to_image[:, :2]))))
            landmarks = np.asarray(columns["landmarks68_3d"], np.float64).copy()
            mesh = np.asarray(columns["dense_landmarks"], np.float64)[:468].copy()
            for points in (landmarks, mesh):
                points[:, :2] = apply_affine(to_image, points[:, :2])
                points[:, 2] *= scale
            yield EvaluationFace(load_image(table[row]["image"]), landmarks, float(columns["pose"][0]), mesh,
                                 f"{dataset_dir} row {row}")

    return EvaluationData("synthetic", f"synthetic world ({folder})", count, synthetic_faces())


def _prepared_photos(folder: Path, dataset_dir: Path, limit: int | None) -> EvaluationData:
    """Prepared photos, read as training reads them: the original photo when its file still exists (the model then
    crops with its own margins), else the prepared crop; the stored landmarks (MediaPipe's) in that image's pixels."""
    from facehub.trainers.prn_dense import PreparedFaceSource

    source = PreparedFaceSource(dataset_dir, original_images="auto", name=str(folder))
    count = min(len(source), limit) if limit else len(source)

    def photo_faces() -> Iterator[EvaluationFace]:
        for row in range(count):
            face = source.face(row)
            yield EvaluationFace(face.image, face.landmarks68, face.yaw, None, face.name)

    return EvaluationData("photos", f"prepared photos ({folder}; MediaPipe's landmarks as ground truth)", count,
                          photo_faces())


# --------------------------------------------------------------------------------------------------------------------
# Rows


@dataclass
class RowResult:
    """One row of Table 2 (and Table 3 when dense errors were measured)."""

    label: str
    nme: BinnedNME
    dense_nme: float | None = None
    dense_nme_box: float | None = None
    measured: bool = True
    per_face_nme: list[float] = field(default_factory=list, repr=False)


@dataclass
class PRNDenseEvaluation:
    rows: list[RowResult]
    data: str
    kind: str
    num_faces: int
    crop: str
    yaws: list[float] = field(default_factory=list, repr=False)

    def table(self) -> str:
        """Markdown: Table 2 (NME % by yaw bin), with Table 3's dense NME where measured."""
        dense = any(r.dense_nme is not None for r in self.rows)
        counts = next((r.nme.counts for r in self.rows if r.measured), [0, 0, 0])
        head = " | ".join(f"{label} ({n})" for label, n in zip(YAW_BIN_LABELS, counts, strict=True))
        lines = [f"{self.num_faces} faces of {self.data}; models crop from: {self.crop}", "",
                 f"| Method | {head} | mean | all faces | missed |" + (" dense NME (IOD) | dense NME (box) |" if dense
                                                                        else ""),
                 "|---|---|---|---|---|---|---|" + ("---|---|" if dense else "")]
        for r in self.rows:
            cells = [f"{v:.2f}" if np.isfinite(v) else "-" for v in (*r.nme.bins, r.nme.mean)]
            all_faces = f"{r.nme.all_faces:.2f}" if r.measured else "-"
            missed = str(r.nme.missed) if r.measured else "-"
            line = f"| {r.label} | {' | '.join(cells)} | {all_faces} | {missed} |"
            if dense:
                line += "".join(f" {v:.3f} |" if v is not None else " - |" for v in (r.dense_nme, r.dense_nme_box))
            lines.append(line)
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "data": self.data, "kind": self.kind, "num_faces": self.num_faces, "crop": self.crop,
            "yaw_bins": list(YAW_BIN_LABELS),
            "rows": [{"label": r.label, "measured": r.measured, **asdict(r.nme), "dense_nme": r.dense_nme,
                      "dense_nme_box": r.dense_nme_box} for r in self.rows],
        }


def _dense_means(values: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    array = np.asarray(values, dtype=np.float64)
    return float(array[:, 0].mean()), float(array[:, 1].mean())


# --------------------------------------------------------------------------------------------------------------------
# Running the rows


@dataclass
class _RowAccumulator:
    label: str
    nme: list[float] = field(default_factory=list)
    dense: list[tuple[float, float]] = field(default_factory=list)

    def add(self, predicted_landmarks: np.ndarray | None, face: EvaluationFace,
            predicted_mesh: np.ndarray | None = None) -> None:
        if predicted_landmarks is None:
            self.nme.append(float("nan"))
            return
        self.nme.append(100.0 * float(nme(predicted_landmarks[:, :2], face.landmarks68[:, :2])))
        if predicted_mesh is not None and face.mesh is not None:
            self.dense.append(dense_nme_after_icp(predicted_mesh, face.mesh))

    def result(self, yaws: list[float]) -> RowResult:
        dense, dense_box = _dense_means(self.dense)
        return RowResult(self.label, nme_by_yaw(self.nme, yaws), dense, dense_box, per_face_nme=list(self.nme))


def evaluate(
    pipelines: dict,
    data: EvaluationData,
    crop: str = "gt",
    mediapipe: bool = True,
    progress: bool = True,
) -> PRNDenseEvaluation:
    """Table 2 (and Table 3 on the synthetic world) for ``pipelines`` (label -> ``FaceReconstructionPipeline``),
    MediaPipe's own 68 landmarks when ``mediapipe``, and seed 003's published rows.

    ``crop="gt"``: each model reads the crop :func:`~facehub.modeling.prn_dense.face_crop_transform` cuts around the
    ground-truth landmarks; ``"detector"``: the crop around the face MediaPipe finds (the pipeline's own path).
    On prepared photos MediaPipe is the ground truth, so its row is left out.
    """
    if crop not in ("gt", "detector"):
        raise ValueError(f"Got {crop!r} for `crop`; expected 'gt' or 'detector'.")
    mediapipe = mediapipe and data.kind != "photos"
    analyzer = None
    if mediapipe or crop == "detector":
        from facehub.modeling.faces import FaceAnalyzer

        analyzer = FaceAnalyzer(compute_embedding=False)
    rows = {label: _RowAccumulator(label) for label in pipelines}
    reference = _RowAccumulator("MediaPipe 68 (FaceAnalyzer)") if mediapipe else None
    yaws: list[float] = []
    for face in tqdm(data.faces, total=data.count, desc="prn_dense eval", disable=not progress):
        yaws.append(face.yaw)
        found = analyzer(face.image) if analyzer is not None else []
        detected = _matching_face(found, face.landmarks68)
        if reference is not None:
            reference.add(None if detected is None else np.asarray(detected.landmarks68), face)
        for label, pipe in pipelines.items():
            if crop == "gt":
                given = face.landmarks68[:, :2]
            elif detected is not None:
                given = detected
            else:
                rows[label].add(None, face)
                continue
            reconstruction = pipe.reconstruct_faces(face.image, [given], compute_depth=False)[0]
            rows[label].add(reconstruction.landmarks68, face, reconstruction.vertices)
    results = [accumulator.result(yaws) for accumulator in rows.values()]
    if reference is not None:
        results.append(reference.result(yaws))
    for label, (bins, mean, dense) in PAPER_ROWS.items():
        results.append(RowResult(label, BinnedNME(list(bins), [0, 0, 0], mean, float("nan")),
                                 dense if data.kind == "synthetic" else None, None, measured=False))
    return PRNDenseEvaluation(results, data.name, data.kind, len(yaws),
                              "ground-truth landmarks" if crop == "gt" else "MediaPipe's face", yaws)


def _matching_face(faces: list, landmarks68: np.ndarray):
    """The found face whose landmarks' centre is nearest the ground truth's, if it lies inside the true box."""
    if not faces:
        return None
    truth = np.asarray(landmarks68, np.float64)[:, :2]
    low, high = truth.min(axis=0), truth.max(axis=0)
    centres = [np.asarray(f.landmarks68, np.float64).mean(axis=0) for f in faces]
    best = int(np.argmin([np.linalg.norm(c - truth.mean(axis=0)) for c in centres]))
    inside = bool(np.all(centres[best] >= low) and np.all(centres[best] <= high))
    return faces[best] if inside else None


def plot_nme_by_yaw(evaluation: PRNDenseEvaluation, path: Path) -> Path:
    """Per-face NME (%) against ``|yaw|`` for every measured row, with each row's bin means as steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yaws = np.abs(np.asarray(evaluation.yaws, dtype=np.float64))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    measured = [r for r in evaluation.rows if r.measured]
    for number, row in enumerate(measured):
        colour = colours[number % len(colours)]
        values = np.asarray(row.per_face_nme, dtype=np.float64)
        found = np.isfinite(values)
        ax.scatter(yaws[found], values[found], s=8, alpha=0.35, color=colour)
        for (low, high), mean in zip(YAW_BINS, row.nme.bins, strict=True):
            if np.isfinite(mean):
                ax.hlines(mean, low, high, colors=colour, linewidth=2.2)
        ax.plot([], [], color=colour, linewidth=2.2, label=f"{row.label} (mean {row.nme.mean:.2f}%)")
    paper = next((r for r in evaluation.rows if r.label == PAPER_ROW_OF_THIS_METHOD), None)
    if paper is not None:
        for (low, high), mean in zip(YAW_BINS, paper.nme.bins, strict=True):
            ax.hlines(mean, low, high, colors="black", linewidth=1.2, linestyles="--")
        ax.plot([], [], color="black", linewidth=1.2, linestyle="--", label=f"{paper.label}, published")
    for low, _ in YAW_BINS[1:]:
        ax.axvline(low, color="grey", linewidth=0.8, linestyle=":")
    finite = np.concatenate([np.asarray(r.per_face_nme)[np.isfinite(r.per_face_nme)] for r in measured] or [[1.0]])
    ax.set_ylim(0, max(1.0, float(np.percentile(finite, 99)) * 1.1))
    ax.set_xlim(0, max(90.0, float(yaws.max(initial=0.0))))
    ax.set_xlabel("|yaw| (degrees)")
    ax.set_ylabel("68-point NME (%), box-normalised")
    ax.set_title(f"NME against yaw: {evaluation.num_faces} faces of {evaluation.data}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def eval_results(evaluation: PRNDenseEvaluation) -> dict:
    """The first model row's metrics in the :mod:`facehub.hub.cards` ``eval_results.json`` format."""
    row = evaluation.rows[0]
    metrics = {"nme": round(row.nme.mean, 4), "nme_all_faces": round(row.nme.all_faces, 4)}
    for key, value in zip(("nme_yaw_0_30", "nme_yaw_30_60", "nme_yaw_60_90"), row.nme.bins, strict=True):
        if np.isfinite(value):
            metrics[key] = round(value, 4)
    if row.dense_nme is not None:
        metrics["dense_nme"] = round(row.dense_nme, 4)
    dataset = {"aflw2000-3d": "aflw2000-3d", "synthetic": "facehub-synthetic-world",
               "photos": "facehub-prepared-photos"}[evaluation.kind]
    return {"task": "face-alignment", "dataset": dataset, "dataset_name": evaluation.data, "metrics": metrics}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facehub eval prn_dense", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True,
                        help="AFLW2000-3D folder (photos + .mat) or a `facehub prepare` folder (synthetic world, "
                        "or photos: NME against MediaPipe's landmarks).")
    parser.add_argument("--model", action="append", default=None, metavar="ID",
                        help=f"FaceReconstructionPipeline (Hub id, embedded id or folder); repeat for several "
                        f"(default: {DEFAULT_MODEL_ID}).")
    parser.add_argument("--out", help="Folder for results.json, eval_results.json and nme_by_yaw.png.")
    parser.add_argument("--limit", type=int, help="Evaluate the first N faces only.")
    parser.add_argument("--crop", choices=("gt", "detector"), default="gt",
                        help="Crop models' input around the ground-truth landmarks (default, the benchmark "
                        "protocol) or around the face MediaPipe finds.")
    parser.add_argument("--no-mediapipe", action="store_true", help="Leave out MediaPipe's reference row.")
    parser.add_argument("--pixel-origin", choices=("matlab", "zero_based", "corner"), default="matlab",
                        help="Pixel convention of AFLW2000-3D's pt3d_68 (default matlab: 1-based).")
    args = parser.parse_args(argv)

    from facehub.modeling.prn_dense import FaceReconstructionPipeline

    pipelines = {model_id: FaceReconstructionPipeline.from_pretrained(model_id)
                 for model_id in args.model or [DEFAULT_MODEL_ID]}
    data = open_evaluation_data(args.data, limit=args.limit, pixel_origin=args.pixel_origin)
    evaluation = evaluate(pipelines, data, crop=args.crop, mediapipe=not args.no_mediapipe)
    print(evaluation.table())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(evaluation.to_json(), indent=2))
        (out / "eval_results.json").write_text(json.dumps(eval_results(evaluation), indent=2))
        print(f"results: {out / 'results.json'}\nplot: {plot_nme_by_yaw(evaluation, out / 'nme_by_yaw.png')}")
    return 0
