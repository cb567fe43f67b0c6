"""Measure, on the coefficient regressor's AFLW training crops, which of two readers of a face is nearer the hand
labels when they disagree: the FaceAnalyzer's dense mesh or the regressor's reading.

For each crop the analyzer finds a face in, the regressor reads it from the crop cut around the analyzer's landmarks
(:meth:`~facehub.modeling.face_fitting.FaceFittingPipeline.regress` with ``reread=False``, the first reading, on
which the pipeline chooses between fitting and keeping the reading). Their disagreement is
:func:`~facehub.modeling.face_fitting.modeling_face_regressor.landmark_disagreement` (mean distance between the 68
mesh landmarks, a fraction of the face size). The regressor's error is that of the reading a face keeps when it
switches: read again where the first reading is in doubt (turned beyond 60 degrees, or contradicting the analyzer's
landmarks; ``regressor_rereads``). Each reader's error is the mean distance of its AFLW points
(:mod:`facehub.modeling.geometry.landmarks_aflw21`, the 19 with mesh vertices, where labelled) to the hand labels,
in the same unit. The table gives, by disagreement, how many faces, both readers' mean errors and how often the
regressor is nearer; :data:`~facehub.modeling.face_fitting.configuration_face_fitting.READERS_DISAGREE_BEYOND` is
printed beside it.

The regressor learned from these crops (labelled by fits constrained by the same hand points), so it is nearer the
labels here than on photos it has not seen: the switch is set where it is clearly ahead, not where it first draws
level. AFLW2000-3D is not read here.

Usage: ``python benchmarks/measure_reader_disagreement.py [--data ../shared/data] [--every 5]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

EDGES = (0.0, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.12, np.inf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--every", type=int, default=5, help="read every k-th training crop (default 5)")
    parser.add_argument("--model", default="facehub/face-fitting", help="face-fitting bundle with a regressor")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from facehub.modeling.face_fitting import FaceFittingPipeline
    from facehub.modeling.face_fitting.configuration_face_fitting import READERS_DISAGREE_BEYOND
    from facehub.modeling.face_fitting.modeling_face_regressor import landmark_disagreement, posed_mesh
    from facehub.modeling.faces import FaceAnalyzer
    from facehub.modeling.faces.image_io import load_image
    from facehub.modeling.geometry.landmarks_aflw21 import aflw21_weights
    from facehub.trainers.data.fit_labels import read_aflw_training_crops

    if args.every < 1:
        raise SystemExit(f"Got --every {args.every}; use a whole number >= 1.")
    data = Path(args.data)
    try:
        labels, crops = read_aflw_training_crops(data)
    except FileNotFoundError as err:
        raise SystemExit(f"{err} (--data)") from None
    crops = crops[::args.every]

    analyzer = FaceAnalyzer(compute_embedding=False)
    pipe = FaceFittingPipeline.from_pretrained(args.model)
    if getattr(pipe, "regressor", None) is None:
        raise SystemExit(f"{args.model} has no coefficient regressor to compare with the analyzer.")
    model = pipe.fitter.face_model
    weights, kept = aflw21_weights()
    disagreement, analyzer_error, regressor_error = [], [], []
    for rel in tqdm(crops, desc="training crops"):
        hand = labels[Path(rel).name]
        visible = hand.visible[kept]
        if visible.sum() < 3:
            continue
        photo = load_image(data / rel)
        faces = analyzer(photo)
        if not faces:
            continue
        face = faces[0]
        first = pipe.regress(photo, [face], reread=False)[0]
        reading = pipe.regress(photo, [face])[0]  # what a face that switches keeps
        target = np.asarray(face.landmarks68, np.float64)[:, :2]
        size = float(np.sqrt(np.prod(np.ptp(target, axis=0))))
        points = hand.points[kept][visible]
        dense = np.asarray(face.dense_landmarks, np.float64)[:weights.shape[1], :2]
        by_analyzer = (weights @ dense)[visible]
        by_regressor = (weights @ posed_mesh(reading, model)[:, :2].astype(np.float64))[visible]
        disagreement.append(landmark_disagreement(first, target, model))
        analyzer_error.append(float(np.linalg.norm(by_analyzer - points, axis=1).mean()) / size)
        regressor_error.append(float(np.linalg.norm(by_regressor - points, axis=1).mean()) / size)

    disagreement, analyzer_error, regressor_error = map(np.asarray, (disagreement, analyzer_error, regressor_error))
    print(f"{len(disagreement)} of {len(crops)} training crops read (analyzer found a face, >= 3 points labelled); "
          f"disagreement percentiles 50/90/95/99: "
          f"{' / '.join(f'{100 * v:.1f}%' for v in np.percentile(disagreement, (50, 90, 95, 99)))}")
    print("\n| disagreement | faces | analyzer error | regressor error | regressor nearer |\n|---|---|---|---|---|")
    for low, high in zip(EDGES[:-1], EDGES[1:], strict=True):
        inside = (disagreement >= low) & (disagreement < high)
        if not inside.any():
            continue
        span = f"[{100 * low:.0f}, {100 * high:.0f})%" if np.isfinite(high) else f">= {100 * low:.0f}%"
        print(f"| {span} | {int(inside.sum())} | {100 * analyzer_error[inside].mean():.2f}% | "
              f"{100 * regressor_error[inside].mean():.2f}% | "
              f"{100 * (regressor_error[inside] < analyzer_error[inside]).mean():.0f}% |")
    switched = np.where(disagreement > READERS_DISAGREE_BEYOND, regressor_error, analyzer_error)
    print(f"\nREADERS_DISAGREE_BEYOND = {READERS_DISAGREE_BEYOND:g}: {100 * (disagreement > READERS_DISAGREE_BEYOND).mean():.1f}% "
          f"of these faces switch to the regressor; mean error {100 * analyzer_error.mean():.2f}% (analyzer) -> "
          f"{100 * switched.mean():.2f}% (switched)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
