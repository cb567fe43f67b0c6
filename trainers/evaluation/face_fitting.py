"""``facehub eval face_fitting``: the reconstruction table, every registered reconstruction method side by side.

Usage::

    facehub eval face_fitting --data DIR [--model ID ...] [--method NAME[=ID] ...] [--out DIR] [--limit N]
                              [--every K] [--fit KEY=VALUE ...] [--no-analyzer] [--no-box-detector]
                              [--pixel-origin matlab|zero_based|corner]

``--data`` (read by :func:`facehub.trainers.evaluation.reconstruction.open_evaluation_data`):

- a synthetic-world folder (``facehub prepare --synthetic``): 68-point NME by yaw bin, pose MAE, dense NME after ICP,
  and per group (identity, expression, albedo, lighting) the RMS error of the coefficients against the world's exact
  ones, with the mean face (all coefficients at the prior mean, ambient light, frontal pose) as the baseline row;
- an AFLW2000-3D folder (``imageNNNNN.jpg`` + ``.mat``): the paper's table, 68-point NME / ``sqrt(w * h)`` of the
  ground-truth box by ``|yaw|`` bin ``[0, 30)``, ``[30, 60)``, ``[60, 90]`` (angles wrapped, past 90 in the last
  bin), the mean of the bins, faces found (%) and pose MAE (degrees; the benchmark's rotation read as facehub's
  yaw, pitch and roll: :func:`facehub.trainers.data.aflw2000.facehub_pose`), and in a second table each row's yaw by
  bin, its mean signed error (negative: read as less turned than the face is) and MAE
  (:func:`~facehub.trainers.evaluation.reconstruction.yaw_reading`);
- a folder of prepared photos (agreement with MediaPipe's landmarks, which are its ground truth).

Rows, all on the same faces:

- each ``--model`` of face fitting (default ``facehub/face-fitting``), fitted to the face the FaceAnalyzer finds;
  when a checkpoint carries a coefficient regressor, also the regressor alone (its prediction, no optimisation);
- every other registered reconstruction method (``methods.available("reconstruction")``; ``--method`` picks some,
  ``NAME=ID`` a checkpoint), run on the same found face, as a user runs it;
- the FaceAnalyzer's own 68 landmarks (MediaPipe's mesh mapped to iBUG 68), the reference row (left out on prepared
  photos, whose ground truth it is);
- the mean-face baseline (synthetic world): every coefficient at the prior mean, ambient light, frontal pose, its
  mesh placed on the found face's 68 landmarks by a 2D similarity (:func:`mean_face_placement`).

A face the FaceAnalyzer does not find is given, as a box from the fallback detector (dlib's CNN, as the pipelines do),
to the methods that reconstruct from a box (PRN-Dense; face fitting through its regressor, since a box has no
landmarks to fit); it is missed by the other rows, which the "found %" column shows (``--no-box-detector``: missed
by every row). Rows that found different faces are then also compared on only the faces all of them found, in a
table of its own (``paired`` in ``results.json``): the question "is this method ahead of the analyzer's landmarks in a
bin" is answered there, on the same faces, not by rows whose hardest faces differ. "ms / face" is each method's time
per found face after the FaceAnalyzer (whose own time per photo is on the reference row). ``--fit KEY=VALUE`` changes
fit settings (``appearance_iterations=0`` skips the photometric stage: the landmarks and pose are then those of the
geometric fit, several times faster).

Outputs with ``--out``: ``results.json`` (every row), ``eval_results.json`` (the first face-fitting row, the
:mod:`facehub.hub.cards` format) and ``nme_by_yaw.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facehub.trainers.evaluation.reconstruction import (
    YAW_BIN_LABELS,
    EvaluationData,
    RowAccumulator,
    RowResult,
    eval_results_entry,
    matching_face,
    open_evaluation_data,
    paired_nme,
    plot_nme_by_yaw,
    reconstruction_table,
)

DEFAULT_MODEL_ID = "facehub/face-fitting"
METHOD_NAME = "face_fitting"
REFERENCE_LABEL = "FaceAnalyzer 68 (reference)"
BASELINE_LABEL = "mean face (baseline)"


def coefficient_groups(coefficients) -> dict:
    """A :class:`~facehub.modeling.face_fitting.FaceCoefficients` as arrays by group (identity, expression, albedo,
    lighting), the layout of the synthetic world's columns."""
    return {"identity": np.asarray(coefficients.identity), "expression": np.asarray(coefficients.expression),
            "albedo": np.asarray(coefficients.albedo), "lighting": np.asarray(coefficients.lighting).ravel()}


def mean_face_coefficients(truth: dict) -> dict:
    """The baseline's coefficients: every group at the prior mean (zeros) and ambient light of irradiance 1."""
    from facehub.modeling.geometry.morphable import SH_DC

    baseline = {group: np.zeros_like(np.asarray(values, np.float64)) for group, values in truth.items()}
    if "lighting" in baseline:
        lighting = baseline["lighting"].reshape(3, 9)
        lighting[:, 0] = 1.0 / SH_DC
        baseline["lighting"] = lighting.ravel()
    return baseline


def mean_face_placement(found_landmarks68: np.ndarray, face_model) -> tuple[np.ndarray, np.ndarray]:
    """The baseline's geometry: the model's mean face (all coefficients 0), frontal, placed in the photo by the 2D
    similarity (Umeyama) that best maps its 68 landmarks onto the found ones; returns its (68, 2) landmarks and its
    (V, 3) mesh (z scaled alike). The model's y axis may point up or down; the better-fitting sign is kept."""
    import torch

    from facehub.modeling.geometry.procrustes import umeyama

    with torch.no_grad():
        mesh = face_model.shape()[0].double().numpy()
        landmarks = face_model.landmarks68(torch.from_numpy(mesh)[None].float())[0].double().numpy()
    target = np.asarray(found_landmarks68, np.float64)[:, :2]
    best = None
    for flip in (1.0, -1.0):
        source = landmarks[:, :2] * [1.0, flip]
        transform = umeyama(source, target, with_scale=True)
        residual = float(np.linalg.norm(transform.apply(source) - target, axis=-1).mean())
        if best is None or residual < best[0]:
            best = (residual, flip, transform)
    _, flip, transform = best
    placed = np.empty_like(mesh)
    placed[:, :2] = transform.apply(mesh[:, :2] * [1.0, flip])
    placed[:, 2] = mesh[:, 2] * transform.scale
    return transform.apply(landmarks[:, :2] * [1.0, flip]), placed


@dataclass
class FaceFittingEvaluation:
    """The reconstruction table of one evaluation folder."""

    rows: list[RowResult]
    data: str
    kind: str
    num_faces: int
    yaws: list[float] = field(default_factory=list, repr=False)
    box_detector: bool = True

    def table(self) -> str:
        start = ("every method starts from the face the FaceAnalyzer finds, or where it finds none, the methods that "
                 "can from the fallback detector's box") if self.box_detector else \
            "every method starts from the face the FaceAnalyzer finds"
        return reconstruction_table(self.rows, f"{self.num_faces} faces of {self.data}; {start}", self.yaws)

    def row(self, label: str) -> RowResult:
        return next(r for r in self.rows if r.label == label)

    def to_json(self) -> dict:
        return {
            "data": self.data, "kind": self.kind, "num_faces": self.num_faces, "yaw_bins": list(YAW_BIN_LABELS),
            "rows": [{"label": r.label, "measured": r.measured, **asdict(r.nme), "found_percent": r.found_percent,
                      "pose_mae": r.pose_mae, "dense_nme": r.dense_nme, "dense_nme_box": r.dense_nme_box,
                      "coefficient_errors": r.coefficient_errors, "milliseconds_per_face": r.milliseconds_per_face,
                      "yaw_bias": None if r.yaw is None else r.yaw.bias, "yaw_mae": None if r.yaw is None else r.yaw.mae}
                     for r in self.rows],
            "paired": {label: asdict(binned)
                       for label, binned in (paired_nme(self.rows, self.yaws) or {}).items()},
        }


def regressor_alone(pipeline, fit_settings: dict | None = None):
    """``(image, face) -> FittedFace``: a face-fitting checkpoint's coefficient regressor with no optimisation
    (``reconstruct_faces(..., refine=False)``, with the run's fit settings, e.g. ``regressor_flip_test``), or ``None``
    when the checkpoint has no regressor."""
    if getattr(pipeline, "regressor", None) is None:
        return None
    settings = dict(fit_settings or {})

    def predict(image, face):
        return pipeline.reconstruct_faces(image, [face], compute_depth=False, refine=False, **settings)[0]

    return predict


def evaluate(fittings: dict, data: EvaluationData, others: dict | None = None, fit_settings: dict | None = None,
             analyzer=None, reference: bool = True, progress: bool = True,
             box_detector: bool = True) -> FaceFittingEvaluation:
    """The reconstruction table (see the module docstring).

    Args:
        fittings: label -> :class:`~facehub.modeling.face_fitting.FaceFittingPipeline` (with a regressor, also the
            row ``"<label>: regressor alone"``).
        data: an :class:`~facehub.trainers.evaluation.reconstruction.EvaluationData`.
        others: label -> any reconstruction pipeline with ``reconstruct_faces(image, faces, compute_depth=False)``
            (PRN-Dense...).
        fit_settings: fit overrides for every fitting (``appearance_iterations=0``...).
        analyzer: the :class:`~facehub.modeling.faces.FaceAnalyzer` that finds the faces (default: a new one).
        reference: add the FaceAnalyzer's own 68 landmarks as a row (never on prepared photos, its own ground truth).
        box_detector: where the analyzer misses a face, run the methods that reconstruct from a box
            (``reconstructs_from_boxes``) on the fallback detector's box, as their pipelines do.
    """
    if analyzer is None:
        from facehub.modeling.faces import FaceAnalyzer

        analyzer = FaceAnalyzer(compute_embedding=False)
    fit_settings = dict(fit_settings or {})
    detector = None
    if box_detector:
        from facehub.modeling.faces.profile_detection import DlibCNNFaceDetector

        detector = DlibCNNFaceDetector()
    runners: dict = {}
    from_boxes: dict[str, bool] = {}
    for label, pipe in fittings.items():
        pipe.fitter.config_with(**fit_settings)  # refuse unknown settings before any work

        def fit(image, face, pipe=pipe):
            return pipe.reconstruct_faces(image, [face], compute_depth=False, **fit_settings)[0]

        runners[label] = fit
        from_boxes[label] = pipe.reconstructs_from_boxes
        alone = regressor_alone(pipe, fit_settings)
        if alone is not None:
            runners[f"{label}: regressor alone"] = alone
            from_boxes[f"{label}: regressor alone"] = True
    for label, pipe in (others or {}).items():
        runners[label] = lambda image, face, pipe=pipe: pipe.reconstruct_faces(image, [face], compute_depth=False)[0]
        from_boxes[label] = bool(getattr(pipe, "reconstructs_from_boxes", False))
    rows = {label: RowAccumulator(label) for label in runners}
    reference_row = RowAccumulator(REFERENCE_LABEL) if reference and data.kind != "photos" else None
    baseline = RowAccumulator(BASELINE_LABEL) if data.kind == "synthetic" else None
    face_model = None
    if baseline is not None:
        from facehub.modeling.geometry.morphable import MorphableFaceModel

        face_model = next(iter(fittings.values())).fitter.face_model if fittings else MorphableFaceModel.default()
    yaws: list[float] = []
    for face in tqdm(data.faces, total=data.count, desc="face_fitting eval", disable=not progress):
        yaws.append(face.yaw)
        started = time.perf_counter()
        found = matching_face(analyzer(face.image), face.landmarks68)
        analyzer_seconds = time.perf_counter() - started
        box = None
        if found is None and detector is not None:
            box = matching_face(detector(face.image), face.landmarks68)
        if reference_row is not None:
            reference_row.add(None if found is None else np.asarray(found.landmarks68), face,
                              predicted_pose=None if found is None else found.pose)
            reference_row.seconds.append(analyzer_seconds)
        if baseline is not None and face.coefficients is not None:  # on the same faces as the methods
            placed = (None, None) if found is None else mean_face_placement(found.landmarks68, face_model)
            baseline.add(placed[0], face, placed[1], predicted_pose=(0.0, 0.0, 0.0),
                         predicted_coefficients=mean_face_coefficients(face.coefficients))
        for label, run in runners.items():
            given = found if found is not None else (box if from_boxes[label] else None)
            if given is None:
                rows[label].add(None, face)
                continue
            started = time.perf_counter()
            reconstruction = run(face.image, given)
            rows[label].seconds.append(time.perf_counter() - started)
            coefficients = getattr(reconstruction, "coefficients", None)
            rows[label].add(reconstruction.landmarks68, face, reconstruction.vertices, reconstruction.pose,
                            None if coefficients is None else coefficient_groups(coefficients))
    results = [accumulator.result(yaws) for accumulator in rows.values()]
    results += [extra.result(yaws) for extra in (reference_row, baseline) if extra is not None]
    return FaceFittingEvaluation(results, data.name, data.kind, len(yaws), yaws, box_detector=detector is not None)


def eval_results(evaluation: FaceFittingEvaluation) -> dict:
    """The first row's metrics in the :mod:`facehub.hub.cards` ``eval_results.json`` format."""
    row = evaluation.rows[0]
    extra = {"faces_found_percent": row.found_percent, "pose_mae": row.pose_mae,
             **{f"{group}_coefficient_rmse": value for group, value in row.coefficient_errors.items()}}
    return eval_results_entry(row, evaluation.kind, evaluation.data, "3d-face-reconstruction", extra)


def _setting(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"Got {text!r} for --fit; expected KEY=VALUE, e.g. appearance_iterations=0.")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facehub eval face_fitting", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True,
                        help="Synthetic-world folder (`facehub prepare --synthetic`), AFLW2000-3D folder (photos + "
                        ".mat) or prepared photos.")
    parser.add_argument("--model", action="append", default=None, metavar="ID",
                        help=f"Face-fitting checkpoint (Hub id, embedded id or folder); repeat for several "
                        f"(default: {DEFAULT_MODEL_ID}).")
    parser.add_argument("--method", action="append", default=None, metavar="NAME[=ID]",
                        help="Other reconstruction method to add (default: every registered one, each with its "
                        "default checkpoint); `none` adds no other method.")
    parser.add_argument("--out", help="Folder for results.json, eval_results.json and nme_by_yaw.png.")
    parser.add_argument("--limit", type=int, help="Evaluate N faces only (after --every).")
    parser.add_argument("--every", type=int, default=1, help="Keep every K-th face (a spread-out quick sample).")
    parser.add_argument("--fit", action="append", type=_setting, default=[], metavar="KEY=VALUE",
                        help="Fit setting for this run (a FaceFittingConfig field; the value is read as JSON), e.g. "
                        "appearance_iterations=0 or regressor_flip_test=false.")
    parser.add_argument("--no-analyzer", action="store_true", help="Leave out the FaceAnalyzer's reference row.")
    parser.add_argument("--no-box-detector", action="store_true",
                        help="Do not hand faces the FaceAnalyzer misses to the methods as fallback detector boxes.")
    parser.add_argument("--pixel-origin", choices=("matlab", "zero_based", "corner"), default="matlab",
                        help="Pixel convention of AFLW2000-3D's pt3d_68 (default matlab: 1-based).")
    args = parser.parse_args(argv)

    from facehub import methods

    # the folder is checked before any checkpoint is loaded
    data = open_evaluation_data(args.data, limit=args.limit, pixel_origin=args.pixel_origin, every=args.every)
    fit_method = methods.get(METHOD_NAME)
    fittings = {f"{fit_method.title} ({model_id})": fit_method.load("reconstruction", model_id)
                for model_id in args.model or [DEFAULT_MODEL_ID]}
    chosen = args.method or [name for name in methods.available("reconstruction") if name != METHOD_NAME]
    others = {}
    for entry in chosen:
        if entry == "none":
            continue
        name, _, model_id = entry.partition("=")
        if name not in methods.available("reconstruction"):
            raise SystemExit(f"--method {name!r} is not a reconstruction method; choose from "
                             f"{', '.join(methods.available('reconstruction'))}.")
        spec = methods.get(name)
        label = f"{spec.title} ({model_id})" if model_id else spec.title
        others[label] = spec.load("reconstruction", model_id or None)
    evaluation = evaluate(fittings, data, others, dict(args.fit), reference=not args.no_analyzer,
                          box_detector=not args.no_box_detector)
    print(evaluation.table())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(evaluation.to_json(), indent=2))
        (out / "eval_results.json").write_text(json.dumps(eval_results(evaluation), indent=2))
        plot = plot_nme_by_yaw(evaluation.rows, evaluation.yaws, out / "nme_by_yaw.png",
                               f"NME against yaw: {evaluation.num_faces} faces of {evaluation.data}")
        print(f"results: {out / 'results.json'}\nplot: {plot}")
    return 0
