"""Head pose from dense 3D landmarks: a similarity fit of the canonical frontal face (Umeyama 1991).

The angles follow the convention of :mod:`facehub.modeling.geometry.rotations` (written down once, there):
``R = Rz(roll) @ Rx(pitch) @ Ry(yaw)`` in image coordinates (x right, y down, z towards the camera); yaw > 0 turns
the face towards the image's right, pitch > 0 looks up, roll > 0 tilts it clockwise in the image.

The camera is taken as orthographic (MediaPipe's landmarks are close to a weak-perspective projection with a depth
estimate), so the fit is the 3D similarity ``landmarks ~ scale * R @ canonical + t`` over the 468 mesh vertices
(iris points left out: the eyes move independently of the head).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facehub.modeling.faces.canonical import canonical_face
from facehub.modeling.geometry.procrustes import Similarity, umeyama
from facehub.modeling.geometry.rotations import euler_from_rotation_matrix

NUM_MESH_VERTICES = 468


@dataclass(frozen=True)
class HeadPose:
    """Head pose of one face.

    Attributes:
        yaw, pitch, roll: degrees, see the module docstring.
        transform: similarity from the canonical face (:func:`canonical_face`) to the face's dense landmarks in
            pixels; ``transform.rotation`` is the head rotation ``R``.
    """

    yaw: float
    pitch: float
    roll: float
    transform: Similarity

    @property
    def angles(self) -> tuple[float, float, float]:
        return (self.yaw, self.pitch, self.roll)


def _scaled_orthographic_fit(model: np.ndarray, image_points: np.ndarray) -> Similarity:
    """Similarity whose x, y best match ``image_points`` (N, 2) under orthographic projection.

    Least-squares 2x3 projection of the centred model, then the nearest scaled pair of orthonormal rows (SVD);
    the third row is their cross product, so the rotation is proper.
    """
    model_mean, image_mean = model.mean(axis=0), image_points.mean(axis=0)
    projection = np.linalg.lstsq(model - model_mean, image_points - image_mean, rcond=None)[0].T  # (2, 3)
    u, singular, vt = np.linalg.svd(projection, full_matrices=False)
    rows = u @ vt
    rotation = np.vstack([rows, np.cross(rows[0], rows[1])])
    scale = float(singular.mean())
    translation = np.append(image_mean, 0.0) - scale * rotation @ model_mean
    translation[2] = 0.0
    return Similarity(scale, rotation, translation)


def estimate_head_pose(dense_landmarks: np.ndarray) -> HeadPose:
    """Dense landmarks in pixels -> :class:`HeadPose`.

    Args:
        dense_landmarks: (N >= 468, 3) points with depth (z towards the camera, as :class:`Face` carries them), or
            (N >= 468, 2) image points only, fitted under scaled orthographic projection.
    """
    points = np.asarray(dense_landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] < NUM_MESH_VERTICES or points.shape[1] not in (2, 3):
        raise ValueError(f"Expected (>= {NUM_MESH_VERTICES}, 3 or 2) dense landmarks, got shape {points.shape}.")
    model = canonical_face()[:NUM_MESH_VERTICES]
    if points.shape[1] == 3:
        transform = umeyama(model, points[:NUM_MESH_VERTICES], with_scale=True)
    else:
        transform = _scaled_orthographic_fit(model, points[:NUM_MESH_VERTICES])
    yaw, pitch, roll = euler_from_rotation_matrix(transform.rotation)
    return HeadPose(yaw, pitch, roll, transform)
