"""The FaceAnalyzer's yaw, read through a calibration: MediaPipe's mesh turns less than the head past 45 degrees.

The analyzer's head pose is a similarity fit of the canonical face to MediaPipe's dense mesh
(:func:`facehub.modeling.faces.pose.estimate_head_pose`). Up to about 45 degrees of yaw that fit reads the turn
without bias on real photos: faces it reads at 45 degrees are turned 45 degrees (the median). Further round, the mesh
keeps more of the far cheek than the photo shows, and the fit reads less and less of the turn: hand-labelled AFLW
faces turned 60 degrees read about 55, and faces between 60 and 90 degrees mostly read 55-65.

:data:`YAW_CALIBRATION` undoes that on average. Each knot pairs an analyzer reading with the median true yaw of the
AFLW training crops read within 2.5 degrees of it: every second crop of the 4,000 in ../shared/data's
``splits/train_landmarks_labelled.txt``, with AFLW's yaw labels (1,881 of the 2,000 faces found), each crop also
mirrored, so the table is odd. The evaluation half of AFLW2000-3D was not read. ``python
benchmarks/measure_yaw_calibration.py`` measures the medians again and prints them beside the table.

The map is monotonic: a reading past 45 degrees still orders faces by their turn, and the calibration stretches it
back to the true scale. Readings past the last knot continue with the last segment's slope. A reading is a median over
faces: one face turned 80 degrees may still read 70 after it, and a face turned 45 that the mesh reads at 50 now reads
56. So the calibration trades some accuracy on faces turned 45-60 degrees for much more on faces turned further
(``benchmarks/measure_yaw_calibration.py`` prints the yaw error by bin with and without it). Only the yaw is
calibrated; pitch and roll are read as fitted, and :attr:`facehub.modeling.faces.Face.head_pose` keeps the fit's own
angles and similarity.
"""

from __future__ import annotations

import numpy as np

#: ``(analyzer's |yaw|, median true |yaw|)`` in degrees, increasing (module docstring). Medians measured on the AFLW
#: training crops by benchmarks/measure_yaw_calibration.py, rounded to a degree; below 45 the reading is kept.
YAW_CALIBRATION: tuple[tuple[float, float], ...] = (
    (0.0, 0.0), (45.0, 45.0), (50.0, 56.0), (55.0, 60.0), (60.0, 69.0), (65.0, 77.0),
)


def calibrated_yaw(raw_yaw: float) -> float:
    """The analyzer's yaw reading (degrees, house convention) -> the calibrated yaw: :data:`YAW_CALIBRATION`
    interpolated on ``|raw_yaw|``, the sign kept; past the last knot the last segment's slope continues."""
    readings, truths = (np.array(column, dtype=np.float64) for column in zip(*YAW_CALIBRATION, strict=True))
    magnitude = abs(float(raw_yaw))
    if magnitude <= readings[-1]:
        value = float(np.interp(magnitude, readings, truths))
    else:
        slope = (truths[-1] - truths[-2]) / (readings[-1] - readings[-2])
        value = float(truths[-1] + slope * (magnitude - readings[-1]))
    return float(np.copysign(value, raw_yaw))
