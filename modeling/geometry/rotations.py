"""Head-pose rotations. Public angles are degrees, ``*_rad`` functions take radians.

Frame (see :mod:`facehub.modeling.geometry`): x to the image's right, y down, z towards the camera.
``R = Rz(roll) @ Rx(pitch) @ Ry(yaw)``: yaw turns about the vertical y axis, pitch about the horizontal x axis,
roll about the viewing z axis, each with the matrix of a right-handed rotation by that angle in these coordinates.
"""

from __future__ import annotations

import numpy as np


def rotation_matrix_rad(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) rotation ``Rz(roll) @ Rx(pitch) @ Ry(yaw)`` for angles in radians."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return rz @ rx @ ry


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) rotation for (yaw, pitch, roll) in degrees; see :func:`rotation_matrix_rad`."""
    return rotation_matrix_rad(*np.deg2rad([yaw, pitch, roll]))
