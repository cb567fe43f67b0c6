"""Face profiling for training at large poses (3DDFA: Zhu et al., "Face Alignment Across Large Poses: A 3D
Solution", CVPR 2016, section 5; 300W-LP, the set PRNet and seed 003 train on, was made this way).

A labelled face is turned about its mesh centre to a larger ``|yaw|`` by re-rendering its textured mesh
(:func:`~facehub.modeling.geometry.profiling.rotate_face`); its label turns with it by the same rotation. Only ever
away from the camera: the photo's texture is correct for the surface it shows, so turning further reveals little that
was hidden. The PRN-Dense and coefficient-regressor trainers both draw their profiled faces here.
"""

from __future__ import annotations

import numpy as np

from facehub.modeling.geometry.landmarks68 import NUM_MESH_VERTICES
from facehub.modeling.geometry.profiling import rotate_face
from facehub.modeling.geometry.rotations import rotation_matrix


def profiling_angles(yaw: float, rng: np.random.Generator, max_yaw: float, max_pitch: float) -> tuple[float, float]:
    """A random ``(yaw_change, pitch_change)`` in degrees for a face at head yaw ``yaw``: the new ``|yaw|`` is
    uniform between the face's own and ``max_yaw``, on the side the face already looks to (a random side within 5
    degrees of frontal), and the pitch changes by up to ``+-max_pitch``. A face already at ``max_yaw`` or beyond
    keeps its yaw."""
    magnitude = abs(float(yaw))
    side = np.sign(yaw) if magnitude >= 5.0 else rng.choice([-1.0, 1.0])
    target = rng.uniform(min(magnitude, max_yaw), max_yaw)
    pitch = rng.uniform(-max_pitch, max_pitch) if max_pitch > 0 else 0.0
    return float(side * target - yaw) if magnitude < max_yaw else 0.0, float(pitch)


def profile_face(image: np.ndarray, mesh: np.ndarray, yaw_change: float, pitch_change: float):
    """Turn the face of ``image`` by ``(yaw_change, pitch_change)`` degrees about its mesh centre; returns the new
    image, the rotated (468, 3) mesh (the same rotation and centre as the image) and the (3, 3) turn,
    ``rotation_matrix(yaw_change, pitch_change, 0)`` applied in the camera's frame: a mesh posed as
    ``s R (S - mean S) + t`` becomes ``s (turn @ R) (S - mean S) + t``."""
    mesh = np.asarray(mesh, np.float64)[:NUM_MESH_VERTICES]
    turned = rotate_face(image, mesh, yaw_change, pitch_change, 0.0, relative=True)
    turn = rotation_matrix(yaw_change, pitch_change, 0.0)
    centre = mesh.mean(axis=0)
    return turned, (mesh - centre) @ turn.T + centre, turn
