"""Label real photos by fitting the morphable model (``facehub prepare --fit``), as 300W-LP did for PRNet.

PRNet's training set is a 3DMM fitted to hand-labelled photos, so its UV position maps exist for faces at every
yaw. Here the same: each photo's largest face is fitted by :func:`facehub.modeling.face_fitting.fit_face` to

- the FaceAnalyzer's dense landmarks, where MediaPipe finds the face and reads it as turned by at most
  ``analyzer_max_yaw`` degrees (beyond that its mesh drifts while hand labels stay exact), and
- hand-labelled points where a labels file gives them: AFLW's 21 points
  (:mod:`facehub.modeling.geometry.landmarks_aflw21`, 3DDFA's ``AFLW_GT_crop_labels.csv`` layout: ``file, yaw_deg, ..., x0..x20, y0..y20`` with -1 for a point not
  visible), which is what makes a profile that MediaPipe misses usable.

A row then holds what ``facehub prepare`` writes (a square crop around the fitted 68 landmarks, the fitted 468-vertex
mesh as ``dense_landmarks``, its UV position map, the fitted pose) plus the fitted coefficients in the synthetic
world's columns (``shape_coefficients``, ``expression_coefficients``, ``albedo_coefficients``, ``lighting``), so the
PRN-Dense trainer reads it as a photo source and the coefficient regressor as a coefficient source. The coefficients
are a fit, not the truth: cards of models trained on them say so.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Fewest visible hand points a face is fitted from when the analyzer's mesh is not used.
MIN_HAND_POINTS = 6
#: Side of a fitted row's crop over the mean side of the fitted 68 landmarks' box (PRNet's inference crop is 1.6).
CROP_SCALE = 2.0


@dataclass(frozen=True)
class HandLabels:
    """Hand-labelled points of one photo: ``points`` (N, 2) pixels, ``visible`` (N,) bool, ``yaw`` as labelled
    (the dataset's own convention; informative only)."""

    points: np.ndarray
    visible: np.ndarray
    yaw: float | None = None


def read_aflw21_labels(path: str | Path) -> dict[str, HandLabels]:
    """AFLW's 21 points per photo from a CSV in 3DDFA's ``AFLW_GT_crop_labels.csv`` layout, by file name.

    Raises:
        ValueError: the file lacks the ``file`` column or any ``x0..x20`` / ``y0..y20`` column.
    """
    path = Path(path)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        needed = {"file"} | {f"{axis}{i}" for axis in "xy" for i in range(21)}
        missing = sorted(needed - columns)
        if missing:
            raise ValueError(f"{path} is not an AFLW 21-point labels file: it lacks the column(s) "
                             f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''} (3DDFA's "
                             "AFLW_GT_crop_labels.csv layout: file, x0..x20, y0..y20, -1 = not visible).")
        labels = {}
        for row in reader:
            points = np.array([[float(row[f"x{i}"]), float(row[f"y{i}"])] for i in range(21)])
            visible = (points >= 0).all(axis=1)
            yaw = float(row["yaw_deg"]) if row.get("yaw_deg") not in (None, "") else None
            labels[Path(row["file"]).name] = HandLabels(np.where(visible[:, None], points, 0.0), visible, yaw)
    return labels


def read_aflw_training_crops(data: str | Path) -> tuple[dict[str, HandLabels], list[str]]:
    """The AFLW training crops of a folder laid out as ../shared/data's README says: their hand labels by file name
    (``2DASL/AFLW_GT_crop_labels.csv``) and the paths, relative to ``data``, of the crops in
    ``splits/train_landmarks_labelled.txt`` that have labels (in the split's order).

    Raises:
        FileNotFoundError: either file is missing, naming both.
    """
    data = Path(data)
    labels_path = data / "2DASL" / "AFLW_GT_crop_labels.csv"
    split = data / "splits" / "train_landmarks_labelled.txt"
    if not labels_path.is_file() or not split.is_file():
        raise FileNotFoundError(f"{labels_path} or {split} not found: give the folder of ../shared/data's README.")
    labels = read_aflw21_labels(labels_path)
    crops = [line.strip() for line in split.read_text().splitlines() if line.strip()]
    return labels, [crop for crop in crops if Path(crop).name in labels]


def aflw21_sparse_landmarks(labels: HandLabels):
    """The :class:`~facehub.modeling.face_fitting.SparseLandmarks` of AFLW's points that have mesh vertices."""
    from facehub.modeling.face_fitting import SparseLandmarks
    from facehub.modeling.geometry.landmarks_aflw21 import aflw21_weights

    weights, kept = aflw21_weights()
    return SparseLandmarks(weights, labels.points[kept], labels.visible[kept])


def fit_photo(image: np.ndarray, faces: list, labels: HandLabels | None, *, size: int, uv_size: int,
              analyzer_max_yaw: float = 40.0, max_hand_residual: float = 0.06,
              fit_config=None) -> tuple[str, str, dict[str, Any]]:
    """``(status, reason, columns)`` for one photo: fit its largest face (module docstring) and build the row.

    The crop is the square around the fitted 68 landmarks, ``CROP_SCALE`` times their box's mean side, so a profile
    keeps its whole head in view. ``status`` is ``ok``; ``no_face`` when neither a usable analyzer face nor enough hand
    points exist; ``fit_failed`` when the fit stays further than ``max_hand_residual`` (mean, fraction of the face
    size) from the hand-labelled points.
    """
    from facehub.modeling.face_fitting import fit_face
    from facehub.modeling.faces.alignment import apply_affine, invert_affine
    from facehub.modeling.geometry.uv_maps import mesh_to_uv_position_map
    from facehub.modeling.prn_dense.cropping import crop_face_image, face_crop_transform, image_positions_to_crop_units

    face = faces[0] if faces else None
    if face is not None and labels is not None and (
        abs(float(face.pose[0])) > analyzer_max_yaw or (labels.yaw is not None and abs(labels.yaw) > analyzer_max_yaw)
    ):
        face = None  # a large-yaw MediaPipe mesh would outweigh the exact hand points
    sparse = aflw21_sparse_landmarks(labels) if labels is not None else None
    usable = 0 if sparse is None else len(sparse.used[1])
    if face is None and usable < MIN_HAND_POINTS:
        reason = "no face found" if labels is None else (
            f"no face found and only {usable} usable hand-labelled points (at least {MIN_HAND_POINTS})")
        return "no_face", reason, {}
    if usable < MIN_HAND_POINTS:
        sparse = None
    fitted = fit_face(image, face, config=fit_config, sparse_landmarks=sparse, compute_depth=False)
    residual = fitted.losses.get("sparse_landmarks")
    if residual is not None and residual > max_hand_residual:
        return "fit_failed", (f"the fit misses the hand-labelled points by {residual:.1%} of the face size on average "
                              f"(more than {max_hand_residual:.0%})"), {}
    vertices = np.asarray(fitted.vertices, np.float64)[:468]
    # PRNet's square around the fitted 68 points (wider): a five-point similarity is meaningless at profile.
    matrix = face_crop_transform(fitted.mesh_landmarks68, size, scale=CROP_SCALE)
    mesh = image_positions_to_crop_units(vertices, matrix, 1)  # crop pixels, z scaled as x and y
    coefficients = fitted.coefficients
    return "ok", "", {
        "image": crop_face_image(image, matrix, size),
        "landmarks68": apply_affine(matrix, np.asarray(fitted.mesh_landmarks68)[:, :2]).astype(np.float32),
        "dense_landmarks": mesh.astype(np.float32),
        "pose": [float(a) for a in fitted.pose],
        "embedding": [0.0] * 128,
        "uv_position_map": np.asarray(mesh_to_uv_position_map(mesh, size=uv_size), np.float16),
        "crop_to_image": np.asarray(invert_affine(matrix), np.float32),
        "shape_coefficients": np.asarray(coefficients.identity, np.float32).tolist(),
        "expression_coefficients": np.asarray(coefficients.expression, np.float32).tolist(),
        "albedo_coefficients": np.asarray(coefficients.albedo, np.float32).tolist(),
        "lighting": np.asarray(coefficients.lighting, np.float32).reshape(-1).tolist(),
    }
