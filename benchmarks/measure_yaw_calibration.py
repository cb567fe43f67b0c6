"""Measure, on AFLW training crops, the FaceAnalyzer's yaw calibration, and compare it with the table in code.

AFLW crops (3DDFA's ``AFLW_GT_crop``, the 4,000 of ../shared/data's ``splits/train_landmarks_labelled.txt``, with
AFLW's yaw labels in ``2DASL/AFLW_GT_crop_labels.csv``; AFLW's yaw has the opposite sign to facehub's) go through
the FaceAnalyzer at their own size. Each face's fitted yaw (``face.head_pose.yaw``, before calibration) is paired with
its labelled yaw, and every pair is also mirrored. For each knot of
:data:`facehub.modeling.faces.yaw_calibration.YAW_CALIBRATION`, the median labelled yaw of the faces read within 2.5
degrees of the knot is printed beside the table's value; then the yaw MAE by labelled |yaw| bin before and after the
calibration, on the same crops (so an in-sample check: the evaluation half of AFLW2000-3D is the out-of-sample one,
``facehub eval face_fitting``'s reference row), and the share of faces whose calibrated yaw is within 10 degrees of
the label: the analyzer measures every rotation's achieved pose, so this is how often it can confirm a photo turned
60 degrees at all (``facehub eval rotation``'s target at +-60). AFLW2000-3D is not read here.

Usage: ``python benchmarks/measure_yaw_calibration.py [--data ../shared/data] [--every 2]`` (the table in code came
from ``--every 2``).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

WINDOW = 2.5  # degrees either side of a knot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--every", type=int, default=2, help="Use every K-th crop of the label file.")
    args = parser.parse_args(argv)

    from facehub.modeling.faces import FaceAnalyzer
    from facehub.modeling.faces.yaw_calibration import YAW_CALIBRATION, calibrated_yaw

    labels = Path(args.data) / "2DASL" / "AFLW_GT_crop_labels.csv"
    if not labels.is_file():
        raise SystemExit(f"{labels} not found: give --data, the folder of ../shared/data's README.")
    with open(labels, newline="") as handle:
        rows = list(csv.DictReader(handle))[:: max(args.every, 1)]
    analyzer = FaceAnalyzer(compute_embedding=False, max_num_faces=1)
    read, truth = [], []
    for row in tqdm(rows, desc="AFLW crops"):
        faces = analyzer(labels.parent / "AFLW_GT_crop" / row["file"])
        if faces:
            read.append(float(faces[0].head_pose.yaw))
            truth.append(-float(row["yaw_deg"]))  # AFLW's sign is the opposite of facehub's
    read, truth = np.array(read), np.array(truth)
    print(f"{len(read)} of {len(rows)} crops found")
    mirrored_read, mirrored_truth = np.r_[read, -read], np.r_[truth, -truth]
    print("\n| reading (deg) | faces within 2.5 | median true yaw | table |\n|---|---|---|---|")
    for knot, value in YAW_CALIBRATION:
        near = np.abs(mirrored_read - knot) <= WINDOW
        median = float(np.median(mirrored_truth[near])) if near.any() else float("nan")
        print(f"| {knot:.0f} | {int(near.sum())} | {median:.1f} | {value:.0f} |")
    calibrated = np.array([calibrated_yaw(value) for value in read])
    print("\n| labelled abs(yaw) | faces | yaw MAE, fitted | yaw MAE, calibrated | within 10 deg, calibrated (%) |"
          "\n|---|---|---|---|---|")
    for low, high in ((0, 30), (30, 45), (45, 60), (60, 75), (75, 180)):
        chosen = (np.abs(truth) >= low) & (np.abs(truth) < high)
        if chosen.any():
            before = float(np.abs(read[chosen] - truth[chosen]).mean())
            after = float(np.abs(calibrated[chosen] - truth[chosen]).mean())
            within = 100.0 * float((np.abs(calibrated[chosen] - truth[chosen]) <= 10.0).mean())
            print(f"| [{low}, {high}) | {int(chosen.sum())} | {before:.1f} | {after:.1f} | {within:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
