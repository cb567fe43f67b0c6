"""``facehub eval prn_dense``: seed 003's Table 2 (68-point NME by yaw bin) and Table 3 (dense NME after ICP).

Usage::

    facehub eval prn_dense --data DIR [--model ID ...] [--out DIR] [--limit N] [--crop gt|detector]
                           [--no-mediapipe] [--single-pass] [--pixel-origin matlab|zero_based|corner]

``--data`` is either

- a folder in the AFLW2000-3D layout (``imageNNNNN.jpg`` + ``imageNNNNN.mat`` with ``pt3d_68`` and ``Pose_Para``;
  :mod:`facehub.trainers.data.aflw2000`): Table 2 only, the benchmark's 3D landmarks as ground truth;
- a synthetic-world folder from ``facehub prepare --synthetic``: Table 2 with the world's exact 68 landmarks,
  and Table 3 against its exact face mesh;
- or a folder of photos prepared by ``facehub prepare --images``: Table 2 against the landmarks prepare stored,
  which are MediaPipe's own (the face front-end's). It measures how far a model strays from MediaPipe on real
  photos, not its accuracy; MediaPipe's reference row is left out (it would be 0 by construction).

Metrics (:mod:`facehub.modeling.geometry.landmark_metrics`; data, metrics and plot are shared with ``facehub eval
face_fitting`` in :mod:`facehub.trainers.evaluation.reconstruction`):

- NME of the 68 landmarks (seed 003 eq. 11): the mean 2D point-to-point error divided by ``sqrt(w * h)`` of the
  ground-truth landmarks' bounding box, in percent, reported per yaw bin ``[0, 30)``, ``[30, 60)``, ``[60, 90]``
  (``|yaw|`` in degrees after wrapping to ``[-180, 180)``; faces past 90 count in the last bin) and as Table 2's "mean", the mean of the three
  bin means (PRN's 3.62 = mean(2.75, 3.51, 4.61)); ``all faces`` is the plain mean over faces;
- dense NME (Table 3, synthetic world only): the predicted mesh is rigidly registered to the ground-truth mesh by
  ICP (:func:`icp`: nearest neighbours with ``scipy.spatial.cKDTree``, each step solved by Umeyama), then the mean
  3D distance between corresponding vertices (both meshes share facehub's topology) is divided by the ground
  truth's outer inter-ocular distance (3D), as seed 003 section 3.2.2 describes (``dense_nme``), and by the box
  size ``sqrt(w * h)`` of its 68 landmarks (``dense_nme_box``, the normalisation of the 2D metric).

Rows: each ``--model`` (a ``FaceReconstructionPipeline``; default ``facehub/prn-dense``, with its flip test and
shifted crops; with ``--single-pass`` also each model predicting once from one crop, as the papers do), MediaPipe's
own 68 landmarks (:class:`~facehub.modeling.faces.FaceAnalyzer`, the face front-end's iBUG mapping of its face mesh)
as a reference on the same faces (mapped to 68 points it reaches about 5% on AFLW2000-3D), and the published rows of
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

# The benchmark's data, metrics and plot are shared with `facehub eval face_fitting`; re-exported here.
from facehub.trainers.evaluation.reconstruction import (  # noqa: F401
    YAW_BIN_LABELS,
    YAW_BINS,
    BinnedNME,
    EvaluationData,
    EvaluationFace,
    ICPResult,
    RowAccumulator,
    RowResult,
    dense_nme_after_icp,
    eval_results_entry,
    icp,
    matching_face,
    nme_by_yaw,
    open_evaluation_data,
    yaw_bin_index,
)
from facehub.trainers.evaluation.reconstruction import plot_nme_by_yaw as plot_rows_by_yaw

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
# Rows


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
    ground-truth landmarks; ``"detector"``: the crop around the face MediaPipe finds, or where it finds none, the
    fallback detector's box (the pipeline's own path).
    On prepared photos MediaPipe is the ground truth, so its row is left out.
    """
    if crop not in ("gt", "detector"):
        raise ValueError(f"Got {crop!r} for `crop`; expected 'gt' or 'detector'.")
    mediapipe = mediapipe and data.kind != "photos"
    analyzer = None
    if mediapipe or crop == "detector":
        from facehub.modeling.faces import FaceAnalyzer

        analyzer = FaceAnalyzer(compute_embedding=False)
    if crop == "detector":
        from facehub.modeling.faces.profile_detection import DlibCNNFaceDetector

        box_detector = DlibCNNFaceDetector()
    rows = {label: RowAccumulator(label) for label in pipelines}
    reference = RowAccumulator("MediaPipe 68 (FaceAnalyzer)") if mediapipe else None
    yaws: list[float] = []
    for face in tqdm(data.faces, total=data.count, desc="prn_dense eval", disable=not progress):
        yaws.append(face.yaw)
        found = analyzer(face.image) if analyzer is not None else []
        detected = matching_face(found, face.landmarks68)
        box = None
        if detected is None and crop == "detector":  # as the pipeline does: the fallback detector's box
            box = matching_face(box_detector(face.image), face.landmarks68)
        if reference is not None:
            reference.add(None if detected is None else np.asarray(detected.landmarks68), face)
        for label, pipe in pipelines.items():
            if crop == "gt":
                given = face.landmarks68[:, :2]
            elif detected is not None or box is not None:
                given = detected if detected is not None else box
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


def plot_nme_by_yaw(evaluation: PRNDenseEvaluation, path: Path) -> Path:
    """Per-face NME (%) against ``|yaw|`` for every measured row, with each row's bin means as steps and seed 003's
    published PRN-Dense row dashed."""
    paper = next((r for r in evaluation.rows if r.label == PAPER_ROW_OF_THIS_METHOD), None)
    return plot_rows_by_yaw(evaluation.rows, evaluation.yaws, path,
                            f"NME against yaw: {evaluation.num_faces} faces of {evaluation.data}", reference=paper)


def eval_results(evaluation: PRNDenseEvaluation) -> dict:
    """The first model row's metrics in the :mod:`facehub.hub.cards` ``eval_results.json`` format."""
    return eval_results_entry(evaluation.rows[0], evaluation.kind, evaluation.data, "face-alignment")


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
    parser.add_argument("--single-pass", action="store_true",
                        help="Add a row per model predicting once (flip_test=False, crop_shift=0), as the papers "
                        "do, beside the flip test and shifted crops (the pipeline's defaults).")
    parser.add_argument("--pixel-origin", choices=("matlab", "zero_based", "corner"), default="matlab",
                        help="Pixel convention of AFLW2000-3D's pt3d_68 (default matlab: 1-based).")
    args = parser.parse_args(argv)

    from facehub.modeling.prn_dense import FaceReconstructionPipeline

    pipelines = {model_id: FaceReconstructionPipeline.from_pretrained(model_id)
                 for model_id in args.model or [DEFAULT_MODEL_ID]}
    if args.single_pass:
        for model_id in list(pipelines):
            once = FaceReconstructionPipeline(prn=pipelines[model_id].prn)  # the same network, not loaded again
            once.flip_test, once.crop_shift = False, 0.0
            pipelines[f"{model_id} (one pass)"] = once
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
