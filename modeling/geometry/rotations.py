"""Head-pose rotations. Public angles are degrees, ``*_rad`` functions take radians.

Frame (see :mod:`facehub.modeling.geometry`): x to the image's right, y down, z towards the camera.
``R = Rz(roll) @ Rx(pitch) @ Ry(yaw)``: yaw turns about the vertical y axis, pitch about the horizontal x axis,
roll about the viewing z axis, each with the matrix of a right-handed rotation by that angle in these coordinates.

What the signs mean for a face looking at the camera (its nose tip at +z):

- yaw > 0: the face turns towards the image's right (the subject's own left); the nose tip moves to +x.
- pitch > 0: the face looks up; the nose tip moves to -y (up in the image).
- roll > 0: the head tilts clockwise in the image; a point on the image's right moves down (+y).

Pose 0, the frontal head, is the FaceAnalyzer's canonical face for every method's ``pose`` (the frame is stated in
:mod:`facehub.modeling.geometry`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def rotation_matrix_rad(yaw: ArrayLike, pitch: ArrayLike, roll: ArrayLike) -> np.ndarray:
    """Rotation ``Rz(roll) @ Rx(pitch) @ Ry(yaw)`` for angles in radians: (3, 3) for three numbers, (..., 3, 3) for
    arrays (broadcast together), one matrix per element."""
    yaw, pitch, roll = np.broadcast_arrays(*(np.asarray(angle, dtype=np.float64) for angle in (yaw, pitch, roll)))
    zero, one = np.zeros_like(yaw), np.ones_like(yaw)
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)

    def matrix(*rows):
        return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)

    ry = matrix((cy, zero, sy), (zero, one, zero), (-sy, zero, cy))
    rx = matrix((one, zero, zero), (zero, cp, -sp), (zero, sp, cp))
    rz = matrix((cr, -sr, zero), (sr, cr, zero), (zero, zero, one))
    return rz @ rx @ ry


def rotation_matrix(yaw: ArrayLike, pitch: ArrayLike, roll: ArrayLike) -> np.ndarray:
    """Rotation for (yaw, pitch, roll) in degrees, (3, 3) or (..., 3, 3); see :func:`rotation_matrix_rad`."""
    return rotation_matrix_rad(*np.deg2rad(np.broadcast_arrays(yaw, pitch, roll)))


def euler_from_rotation_matrix(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees with ``rotation == rotation_matrix(yaw, pitch, roll)``.

    Inverts ``Rz(roll) @ Rx(pitch) @ Ry(yaw)``: ``R[2, 1] = sin(pitch)``, ``R[2, 0] / R[2, 2] = -tan(yaw)``,
    ``R[0, 1] / R[1, 1] = -tan(roll)``. Pitch is kept in [-90, 90]; at exactly +-90 degrees yaw is set to 0.
    """
    r = np.asarray(rotation, dtype=np.float64)
    pitch = np.arcsin(np.clip(r[2, 1], -1.0, 1.0))
    if abs(np.cos(pitch)) < 1e-9:
        yaw, roll = 0.0, np.arctan2(r[1, 0], r[0, 0])
    else:
        yaw = np.arctan2(-r[2, 0], r[2, 2])
        roll = np.arctan2(-r[0, 1], r[1, 1])
    return tuple(float(v) for v in np.rad2deg([yaw, pitch, roll]))
