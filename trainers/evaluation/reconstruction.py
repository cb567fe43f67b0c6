"""The reconstruction benchmark shared by ``facehub eval prn_dense`` and ``facehub eval face_fitting``: evaluation
folders, the per-face metrics, rows binned by yaw, the table and the plot of NME against yaw.

Data (:func:`open_evaluation_data`): a folder in the AFLW2000-3D layout (:mod:`facehub.trainers.data.aflw2000`: the
benchmark's 68 3D landmarks and pose as ground truth), a synthetic-world folder from ``facehub prepare --synthetic``
(exact 68 landmarks, their jaw placed at its 3D depth as AFLW2000-3D and the morphable-model fit place it,
:mod:`facehub.modeling.geometry.jaw_depth`; face mesh, pose and morphable-model coefficients) or a folder of photos
prepared by ``facehub prepare --images`` (MediaPipe's own landmarks as ground truth: agreement with the front-end, not
accuracy).

Metrics (:mod:`facehub.modeling.geometry.landmark_metrics`):

- NME of the 68 landmarks (seed 003 eq. 11): the mean 2D point-to-point error over ``sqrt(w * h)`` of the
  ground-truth landmarks' box, percent, by ``|yaw|`` bin ``[0, 30)``, ``[30, 60)``, ``[60, 90]``: angles are first
  wrapped to ``[-180, 180)`` and faces past 90 degrees count in the last bin (:func:`yaw_bin_index`); the "mean" is
  the mean of the three bin means, as in seed 003's Table 2 (PRN's 3.62 = mean(2.75, 3.51, 4.61));
- faces found: the share of faces a row could measure (a face the detector misses has no landmarks);
- pose MAE: the mean absolute difference of (yaw, pitch, roll), wrapped, in degrees, over the faces found;
- the yaw by bin (:func:`yaw_reading`): per ``|yaw|`` bin, the mean signed yaw error, positive where the face is
  read as turned further than it is, and the yaw MAE: a pose reader's bias at large yaw, which one MAE hides;
- dense NME after ICP (synthetic world; seed 003's Table 3): :func:`dense_nme_after_icp`;
- coefficient errors (synthetic world, methods that return morphable-model coefficients): the RMS difference per
  group (identity, expression, albedo, lighting) between the predicted and the world's exact coefficients
  (:func:`coefficient_errors`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facehub.modeling.faces.profile_detection import FaceBox
from facehub.modeling.geometry.landmark_metrics import nme
from facehub.modeling.geometry.procrustes import Similarity, umeyama

YAW_BINS: tuple[tuple[float, float], ...] = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))
YAW_BIN_LABELS = ("[0, 30)", "[30, 60)", "[60, 90]")
COEFFICIENT_GROUPS = ("identity", "expression", "albedo", "lighting")


# --------------------------------------------------------------------------------------------------------------------
# Metrics


def wrap_degrees(angles) -> np.ndarray:
    """Angles (degrees) wrapped to ``[-180, 180)``."""
    return (np.asarray(angles, dtype=np.float64) + 180.0) % 360.0 - 180.0


def pose_error(predicted, truth) -> float:
    """Mean absolute difference (degrees) of two (yaw, pitch, roll) triples, each difference wrapped."""
    difference = wrap_degrees(np.asarray(predicted, np.float64)[:3] - np.asarray(truth, np.float64)[:3])
    return float(np.abs(difference).mean())


def coefficient_errors(predicted: dict, truth: dict) -> dict[str, float]:
    """RMS difference per group of :data:`COEFFICIENT_GROUPS` present in both dicts (arrays by group name).

    A group with fewer predicted than true coefficients (a fit that uses only the leading identity modes) counts the
    missing ones as 0, the prior mean.
    """
    errors = {}
    for group in COEFFICIENT_GROUPS:
        if predicted.get(group) is None or truth.get(group) is None:
            continue
        true = np.asarray(truth[group], np.float64).ravel()
        guess = np.zeros_like(true)
        given = np.asarray(predicted[group], np.float64).ravel()[: true.size]
        guess[: given.size] = given
        errors[group] = float(np.sqrt(np.mean((guess - true) ** 2)))
    return errors


def signed_yaw_error(predicted, truth) -> float:
    """Yaw read minus true yaw (degrees, wrapped), signed so that a positive value means the face was read as turned
    further from frontal than it is (``nan`` for a frontal truth)."""
    true_yaw = float(wrap_degrees(float(np.asarray(truth, np.float64)[0])))
    difference = float(wrap_degrees(float(np.asarray(predicted, np.float64)[0]) - true_yaw))
    return difference * float(np.sign(true_yaw)) if true_yaw != 0.0 else float("nan")


@dataclass
class YawReading:
    """How a row reads the yaw, by ``|yaw|`` bin: ``bias`` the mean :func:`signed_yaw_error` (negative: read as less
    turned than the face is), ``mae`` the mean absolute yaw error; ``nan`` for a bin without faces."""

    bias: list[float]
    mae: list[float]


def yaw_reading(signed_errors, yaw_degrees) -> YawReading:
    """Bin per-face signed yaw errors (``nan``: not measured) by ``|yaw|``, as :func:`nme_by_yaw` bins NME values."""
    values = np.asarray(signed_errors, dtype=np.float64)
    return YawReading(nme_by_yaw(values, yaw_degrees).bins, nme_by_yaw(np.abs(values), yaw_degrees).bins)


def yaw_bin_index(yaw_degrees) -> np.ndarray:
    """Index (0, 1, 2) of each yaw's Table 2 bin by ``|yaw|`` after wrapping to ``[-180, 180)``: [0, 30), [30, 60),
    [60, 90], and past 90 the last bin."""
    magnitude = np.abs(wrap_degrees(yaw_degrees))
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

    ``predicted_mesh`` is registered to ``true_mesh`` by :func:`icp`, started from the centroids' offset; errors are between corresponding vertices
    (the two share facehub's 468-vertex topology). Normalisers come from the ground truth: the 3D distance between
    iBUG points 37 and 46 (seed 003, section 3.2.2) and the 2D box of its 68 landmarks (PRNet).
    """
    from facehub.modeling.geometry.landmarks68 import landmarks68_from_mesh

    predicted_mesh = np.asarray(predicted_mesh, dtype=np.float64)[:468]
    true_mesh = np.asarray(true_mesh, dtype=np.float64)[:468]
    # start from the centroids' offset: meshes whose depths have different origins (a fit's z, a network's) would
    # otherwise pair the front of one face with the back of the other
    start = Similarity(1.0, np.eye(3), true_mesh.mean(axis=0) - predicted_mesh.mean(axis=0))
    registration = icp(predicted_mesh, true_mesh, initial=start)
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
    source ``yaw`` (degrees) and, for the synthetic world, the ground-truth (468, 3) mesh in image pixels.

    ``pose``: the true (yaw, pitch, roll) in facehub's convention where known (AFLW2000-3D, synthetic world);
    ``coefficients``: the synthetic world's exact morphable-model coefficients by group (:data:`COEFFICIENT_GROUPS`).
    """

    image: np.ndarray
    landmarks68: np.ndarray
    yaw: float
    mesh: np.ndarray | None
    source: str
    pose: tuple[float, float, float] | None = None
    coefficients: dict | None = None


@dataclass
class EvaluationData:
    """Faces of one benchmark folder, read lazily."""

    kind: str  # "aflw2000-3d", "synthetic" or "photos"
    name: str
    count: int
    faces: Iterator[EvaluationFace] = field(repr=False)


def open_evaluation_data(folder: str | Path, limit: int | None = None,
                         pixel_origin: str = "matlab", every: int = 1) -> EvaluationData:
    """An AFLW2000-3D folder or a ``facehub prepare`` folder, synthetic or of photos (see the module docstring).

    ``every``: keep every ``every``-th face (a spread-out sample of a sorted benchmark); ``limit``: then the first
    ``limit`` of those.
    """
    if every < 1:
        raise ValueError(f"Got {every} for `every`; it must be >= 1 (1 keeps every face).")
    from facehub.trainers.data.aflw2000 import find_aflw2000_samples, read_aflw2000_sample

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"--data {folder} is not a folder (an AFLW2000-3D folder or a `facehub prepare` "
                                "output).")
    annotations = find_aflw2000_samples(folder)
    if annotations:
        annotations = annotations[::every]
        annotations = annotations[:limit] if limit else annotations

        def aflw_faces() -> Iterator[EvaluationFace]:
            for path in annotations:
                sample = read_aflw2000_sample(path, pixel_origin=pixel_origin)
                yield EvaluationFace(sample.image, sample.landmarks68, sample.yaw, None, sample.source,
                                     sample.facehub_pose)

        return EvaluationData("aflw2000-3d", f"AFLW2000-3D ({folder})", len(annotations), aflw_faces())
    return _prepared_data(folder, limit, every)


def _prepared_data(folder: Path, limit: int | None, every: int = 1) -> EvaluationData:
    import datasets

    from facehub.modeling.faces.alignment import apply_affine
    from facehub.modeling.faces.image_io import load_image
    from facehub.modeling.geometry.jaw_depth import jaw_offsets

    dataset_dir = next((d for d in (folder, folder / "dataset") if (d / "dataset_info.json").is_file()), None)
    if dataset_dir is None:
        raise FileNotFoundError(f"{folder} holds neither AFLW2000-3D annotations (*.mat next to their photos) nor a "
                                "dataset written by `facehub prepare`.")
    table = datasets.load_from_disk(str(dataset_dir))
    if "landmarks68_3d" not in table.column_names:  # photos: only the synthetic world knows its true geometry
        return _prepared_photos(folder, dataset_dir, limit, every)
    rows = list(range(0, len(table), every))
    rows = rows[:limit] if limit else rows
    coefficient_columns = {"identity": "shape_coefficients", "expression": "expression_coefficients",
                           "albedo": "albedo_coefficients", "lighting": "lighting"}
    coefficient_columns = {g: c for g, c in coefficient_columns.items() if c in table.column_names}
    geometry = table.select_columns(["landmarks68_3d", "dense_landmarks", "pose", "crop_to_image",
                                     *coefficient_columns.values()])
    geometry.set_format("numpy")

    def synthetic_faces() -> Iterator[EvaluationFace]:
        for row in rows:
            columns = geometry[row]
            to_image = np.asarray(columns["crop_to_image"], np.float64)
            scale = float(np.sqrt(abs(np.linalg.det(to_image[:, :2]))))
            landmarks = np.asarray(columns["landmarks68_3d"], np.float64).copy()
            mesh = np.asarray(columns["dense_landmarks"], np.float64)[:468].copy()
            for points in (landmarks, mesh):
                points[:, :2] = apply_affine(to_image, points[:, :2])
                points[:, 2] *= scale
            landmarks += jaw_offsets(mesh)  # the jaw at its 3D depth, where AFLW2000-3D and the fit put it
            coefficients = {g: np.asarray(columns[c], np.float64) for g, c in coefficient_columns.items()}
            pose = tuple(float(a) for a in columns["pose"])
            yield EvaluationFace(load_image(table[row]["image"]), landmarks, pose[0], mesh, f"{dataset_dir} row {row}",
                                 pose, coefficients or None)

    return EvaluationData("synthetic", f"synthetic world ({folder})", len(rows), synthetic_faces())


def _prepared_photos(folder: Path, dataset_dir: Path, limit: int | None, every: int = 1) -> EvaluationData:
    """Prepared photos, read as training reads them: the original photo when its file still exists (the model then
    crops with its own margins), else the prepared crop; the stored landmarks (MediaPipe's) in that image's pixels."""
    from facehub.trainers.prn_dense import PreparedFaceSource

    source = PreparedFaceSource(dataset_dir, original_images="auto", name=str(folder))
    rows = list(range(0, len(source), every))
    rows = rows[:limit] if limit else rows

    def photo_faces() -> Iterator[EvaluationFace]:
        for row in rows:
            face = source.face(row)
            yield EvaluationFace(face.image, face.landmarks68, face.yaw, None, face.name)

    return EvaluationData("photos", f"prepared photos ({folder}; MediaPipe's landmarks as ground truth)", len(rows),
                          photo_faces())


# --------------------------------------------------------------------------------------------------------------------
# Rows


@dataclass
class RowResult:
    """One row of the table: NME by yaw bin, and where measured dense NME, pose MAE, coefficient errors and the
    time per found face (``milliseconds_per_face``).

    ``measured`` is False for a quoted (published) row; ``faces`` is how many faces the row was run on.
    """

    label: str
    nme: BinnedNME
    dense_nme: float | None = None
    dense_nme_box: float | None = None
    measured: bool = True
    per_face_nme: list[float] = field(default_factory=list, repr=False)
    pose_mae: float | None = None
    coefficient_errors: dict[str, float] = field(default_factory=dict)
    faces: int = 0
    milliseconds_per_face: float | None = None
    yaw: YawReading | None = None

    @property
    def found_percent(self) -> float:
        """Faces the row measured, percent of the faces it was run on (``nan`` for a quoted row)."""
        return 100.0 * (self.faces - self.nme.missed) / self.faces if self.measured and self.faces else float("nan")


def paired_nme(rows: list[RowResult], yaws) -> dict[str, BinnedNME] | None:
    """Each measured row's NME by yaw bin over only the faces that every measured row found, so that rows which
    found different faces (a method that reads a face from a detector's box where the analyzer finds none) are
    compared on the same faces; ``None`` when they all found the same ones (the main table is then already paired)
    or fewer than two rows were measured."""
    measured = [r for r in rows if r.measured and len(r.per_face_nme) == len(yaws)]
    if len(measured) < 2:
        return None
    values = np.asarray([r.per_face_nme for r in measured], dtype=np.float64)
    found = np.isfinite(values)
    if (found == found[0]).all():
        return None
    common = found.all(axis=0)
    return {r.label: nme_by_yaw(np.where(common, v, np.nan), yaws) for r, v in zip(measured, values, strict=True)}


def _dense_means(values: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    array = np.asarray(values, dtype=np.float64)
    return float(array[:, 0].mean()), float(array[:, 1].mean())


@dataclass
class RowAccumulator:
    """Collects one row's per-face results; :meth:`result` bins them by yaw."""

    label: str
    nme: list[float] = field(default_factory=list)
    dense: list[tuple[float, float]] = field(default_factory=list)
    pose: list[float] = field(default_factory=list)
    yaw_errors: list[float] = field(default_factory=list)  # one per face, aligned with nme (nan: no pose read)
    coefficients: dict[str, list[float]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    def add(self, predicted_landmarks: np.ndarray | None, face: EvaluationFace,
            predicted_mesh: np.ndarray | None = None, predicted_pose=None, predicted_coefficients: dict | None = None,
            ) -> None:
        """One face: ``predicted_landmarks`` ``None`` counts it as missed; the other predictions are optional."""
        if predicted_landmarks is None:
            self.nme.append(float("nan"))
            self.yaw_errors.append(float("nan"))
            return
        self.nme.append(100.0 * float(nme(np.asarray(predicted_landmarks)[:, :2], face.landmarks68[:, :2])))
        if predicted_mesh is not None and face.mesh is not None:
            self.dense.append(dense_nme_after_icp(predicted_mesh, face.mesh))
        if predicted_pose is not None and face.pose is not None:
            self.pose.append(pose_error(predicted_pose, face.pose))
            self.yaw_errors.append(signed_yaw_error(predicted_pose, face.pose))
        else:
            self.yaw_errors.append(float("nan"))
        if predicted_coefficients is not None and face.coefficients is not None:
            for group, error in coefficient_errors(predicted_coefficients, face.coefficients).items():
                self.coefficients.setdefault(group, []).append(error)

    def result(self, yaws: list[float]) -> RowResult:
        dense, dense_box = _dense_means(self.dense)
        return RowResult(self.label, nme_by_yaw(self.nme, yaws), dense, dense_box, per_face_nme=list(self.nme),
                         pose_mae=float(np.mean(self.pose)) if self.pose else None,
                         coefficient_errors={g: float(np.mean(v)) for g, v in self.coefficients.items()},
                         faces=len(self.nme),
                         milliseconds_per_face=1000.0 * float(np.mean(self.seconds)) if self.seconds else None,
                         yaw=yaw_reading(self.yaw_errors, yaws) if self.pose else None)


def _centre(face) -> np.ndarray:
    if isinstance(face, FaceBox):
        box = face.landmark_box()
        return (box[:2] + box[2:]) / 2.0
    return np.asarray(face.landmarks68, np.float64).mean(axis=0)


def _matching_face(faces: list, landmarks68: np.ndarray):
    """The found face (a Face, or a :class:`~facehub.modeling.faces.profile_detection.FaceBox` by the centre of the
    landmark box it implies) whose centre is nearest the ground truth's, if it lies inside the true box."""
    if not faces:
        return None
    truth = np.asarray(landmarks68, np.float64)[:, :2]
    low, high = truth.min(axis=0), truth.max(axis=0)
    centres = [_centre(f) for f in faces]
    best = int(np.argmin([np.linalg.norm(c - truth.mean(axis=0)) for c in centres]))
    inside = bool(np.all(centres[best] >= low) and np.all(centres[best] <= high))
    return faces[best] if inside else None


matching_face = _matching_face



# --------------------------------------------------------------------------------------------------------------------
# Table and plot


def _number(value, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if value is not None and np.isfinite(value) else "-"


def _signed(value, digits: int = 1) -> str:
    return f"{value:+.{digits}f}" if value is not None and np.isfinite(value) else "-"


def reconstruction_table(rows: list[RowResult], header: str, yaws=None) -> str:
    """Markdown: NME by yaw bin, mean of bins, all faces, faces found, pose MAE; dense NME when any row measured it;
    then, when the rows found different faces, the same bins over only the faces all of them found
    (:func:`paired_nme`); then the yaw read by bin (:class:`YawReading`) and the coefficient errors, each a table of
    its own when any row measured them. Each bin's heading counts its faces: all of them when ``yaws``
    (every face's yaw) is given, else those the first measured row found."""
    dense = any(r.dense_nme is not None for r in rows)
    pose = any(r.pose_mae is not None for r in rows)
    counts = next((r.nme.counts for r in rows if r.measured), [0, 0, 0])
    if yaws is not None:
        counts = np.bincount(yaw_bin_index(yaws), minlength=len(YAW_BINS)).tolist()
    head = " | ".join(f"{label} ({n})" for label, n in zip(YAW_BIN_LABELS, counts, strict=True))
    columns = f"| Method | {head} | mean | all faces | found % |" + (" pose MAE (deg) |" if pose else "")
    columns += " dense NME (IOD) | dense NME (box) |" if dense else ""
    timed = any(r.milliseconds_per_face is not None for r in rows)
    columns += " ms / face |" if timed else ""
    lines = [header, "", columns, "|---" * (columns.count("|") - 1) + "|"]
    for r in rows:
        cells = [_number(v) for v in (*r.nme.bins, r.nme.mean, r.nme.all_faces if r.measured else None)]
        cells.append(_number(r.found_percent, 1))
        if pose:
            cells.append(_number(r.pose_mae))
        if dense:
            cells += [_number(r.dense_nme, 3), _number(r.dense_nme_box, 3)]
        if timed:
            cells.append(_number(r.milliseconds_per_face, 0))
        lines.append(f"| {r.label} | {' | '.join(cells)} |")
    paired = paired_nme(rows, yaws) if yaws is not None else None
    if paired:
        common = next(iter(paired.values())).counts
        lines += ["", "The same, on only the faces every row found (a row's faces found from a box alone left out), so "
                  "that the rows are compared on the same faces", "",
                  "| Method | " + " | ".join(f"{label} ({n})" for label, n in zip(YAW_BIN_LABELS, common, strict=True))
                  + " | mean |", "|---" * (len(YAW_BINS) + 2) + "|"]
        for label, binned in paired.items():
            lines.append(f"| {label} | {' | '.join(_number(v) for v in (*binned.bins, binned.mean))} |")
    read = [r for r in rows if r.yaw is not None]
    if read:
        lines += ["", "Yaw read against the truth by |yaw| bin (degrees): the mean signed error (negative: read as "
                  "less turned than the face is) / the yaw MAE", "",
                  "| Method | " + " | ".join(YAW_BIN_LABELS) + " |", "|---" * (len(YAW_BIN_LABELS) + 1) + "|"]
        for r in read:
            cells = [f"{_signed(b)} / {_number(m, 1)}" for b, m in zip(r.yaw.bias, r.yaw.mae, strict=True)]
            lines.append(f"| {r.label} | {' | '.join(cells)} |")
    groups = [g for g in COEFFICIENT_GROUPS if any(g in r.coefficient_errors for r in rows)]
    if groups:
        lines += ["", "Coefficient errors (RMS against the exact coefficients; pose: MAE in degrees)", "",
                  "| Method | " + " | ".join(groups) + " | pose |", "|---" * (len(groups) + 2) + "|"]
        for r in rows:
            if r.coefficient_errors:
                cells = [_number(r.coefficient_errors.get(g), 3) for g in groups] + [_number(r.pose_mae)]
                lines.append(f"| {r.label} | {' | '.join(cells)} |")
    return "\n".join(lines)


#: ``dataset`` of an ``eval_results.json`` entry (:mod:`facehub.hub.cards`) for each kind of evaluation folder.
EVAL_DATASET_TYPES = {"aflw2000-3d": "aflw2000-3d", "synthetic": "facehub-synthetic-world",
                      "photos": "facehub-prepared-photos"}
YAW_BIN_METRICS = ("nme_yaw_0_30", "nme_yaw_30_60", "nme_yaw_60_90")


def eval_results_entry(row: RowResult, kind: str, data: str, task: str,
                       extra: dict[str, float | None] | None = None) -> dict:
    """One row's metrics as an ``eval_results.json`` entry: NME (mean of the bins, all faces, each yaw bin), dense
    NME when measured, and ``extra`` metrics; every finite value rounded to 4 digits, the rest left out."""
    metrics = {"nme": row.nme.mean, "nme_all_faces": row.nme.all_faces, **(extra or {}),
               **dict(zip(YAW_BIN_METRICS, row.nme.bins, strict=True)), "dense_nme": row.dense_nme}
    metrics = {key: round(float(value), 4) for key, value in metrics.items()
               if value is not None and np.isfinite(value)}
    return {"task": task, "dataset": EVAL_DATASET_TYPES[kind], "dataset_name": data, "metrics": metrics}


def plot_nme_by_yaw(rows: list[RowResult], yaws, path: Path, title: str,
                    reference: RowResult | None = None) -> Path:
    """Per-face NME (%) against ``|yaw|`` (wrapped) for every measured row, with each row's bin means as steps;
    ``reference`` (a quoted row) is drawn dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yaws = np.abs(wrap_degrees(yaws))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    measured = [r for r in rows if r.measured and r.per_face_nme]
    for number, row in enumerate(measured):
        colour = colours[number % len(colours)]
        values = np.asarray(row.per_face_nme, dtype=np.float64)
        found = np.isfinite(values)
        ax.scatter(yaws[found], values[found], s=8, alpha=0.35, color=colour)
        for (low, high), mean in zip(YAW_BINS, row.nme.bins, strict=True):
            if np.isfinite(mean):
                ax.hlines(mean, low, high, colors=colour, linewidth=2.2)
        ax.plot([], [], color=colour, linewidth=2.2, label=f"{row.label} (mean {row.nme.mean:.2f}%)")
    if reference is not None:
        for (low, high), mean in zip(YAW_BINS, reference.nme.bins, strict=True):
            ax.hlines(mean, low, high, colors="black", linewidth=1.2, linestyles="--")
        ax.plot([], [], color="black", linewidth=1.2, linestyle="--", label=f"{reference.label}, published")
    for low, _ in YAW_BINS[1:]:
        ax.axvline(low, color="grey", linewidth=0.8, linestyle=":")
    finite = np.concatenate([np.asarray(r.per_face_nme)[np.isfinite(r.per_face_nme)] for r in measured] or [[1.0]])
    ax.set_ylim(0, max(1.0, float(np.percentile(finite, 99)) * 1.1 if finite.size else 1.0))
    ax.set_xlim(0, max(90.0, float(yaws.max(initial=0.0))))
    ax.set_xlabel("|yaw| (degrees)")
    ax.set_ylabel("68-point NME (%), box-normalised")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
