"""Measure how far the coefficient regressor's AFLW training crops are rolled, beside the roll past which it reads
a face from an upright crop.

The regressor learned from the AFLW crops of ../shared/data's ``splits/train_landmarks_labelled.txt`` (3DDFA's
``AFLW_GT_crop``) with their own rolls and no rotation jitter (plus synthetic faces rolled at most 20 degrees).
A crop's roll is read here from its hand labels: the angle of the line from AFLW's left to right eye centre
(``LeftEyeCenter``, ``RightEyeCenter``), on the crops where both are labelled; at large yaw the line also tilts
with the head's pitch, so it is an estimate. The percentiles of ``|roll|`` are printed beside
:data:`facehub.modeling.face_fitting.modeling_face_regressor.UPRIGHT_BEYOND_ROLL`, which is set near the 95th: past
it the network has seen few faces. AFLW2000-3D is not read here.

Usage: ``python benchmarks/measure_training_rolls.py [--data ../shared/data]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

PERCENTILES = (50, 90, 95, 98, 99)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    args = parser.parse_args(argv)

    from facehub.modeling.face_fitting.modeling_face_regressor import UPRIGHT_BEYOND_ROLL
    from facehub.modeling.geometry.landmarks_aflw21 import AFLW21_NAMES
    from facehub.trainers.data.fit_labels import read_aflw_training_crops

    try:
        all_labels, crops = read_aflw_training_crops(args.data)
    except FileNotFoundError as err:
        raise SystemExit(f"{err} (--data)") from None
    left, right = AFLW21_NAMES.index("LeftEyeCenter"), AFLW21_NAMES.index("RightEyeCenter")
    rolls = []
    for labels in (all_labels[Path(crop).name] for crop in crops):
        if labels.visible[left] and labels.visible[right]:
            dx, dy = labels.points[right] - labels.points[left]
            rolls.append(np.degrees(np.arctan2(dy, dx)))
    rolls = np.abs(np.asarray(rolls))
    print(f"{len(rolls)} of {len(crops)} training crops have both eye centres labelled")
    print("\n| percentile | abs(roll), degrees |\n|---|---|")
    for percentile, value in zip(PERCENTILES, np.percentile(rolls, PERCENTILES), strict=True):
        print(f"| {percentile} | {value:.1f} |")
    within = 100.0 * float((rolls <= UPRIGHT_BEYOND_ROLL).mean())
    print(f"\nUPRIGHT_BEYOND_ROLL = {UPRIGHT_BEYOND_ROLL:g}: {within:.1f}% of these crops lie within it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
