"""The jaw of a reconstructed face's 68 landmarks, placed at its depth in 3D rather than on the mesh's rim.

The face mesh (MediaPipe's topology) ends at the face oval, in front of the ears, and the 68-point table
(:mod:`.landmarks68`) puts iBUG's jaw points 1-17 on that oval. Benchmarks labelled in 3D (AFLW2000-3D and 300W-LP,
which PRNet and 3DDFA train on; seed 003's Table 2) instead put them on the head's 3D jaw line: where the outline of a
frontal face runs, and for the upper jaw, where the face meets the ear. On a frontal face the two agree in x and y. They
part as the face turns: a point behind the oval turns about a deeper centre, so the mesh's rim swings too far in the
direction of the turn, on the far side most.

How deep the jaw lies was measured on the training photos, not on a benchmark: the ear lobes that AFLW's annotators
labelled on 2,017 fitted AFLW crops of every yaw (``python benchmarks/measure_jaw_landmarks.py``) lie
:data:`EAR_SETBACK_MM` behind the oval vertex at iBUG point 2 (or 16), in the model's mean-shape frame (millimetres).
The rule (:func:`jaw_setback`): each jaw point's depth behind the chin is stretched by one factor, chosen so that the
jaw's upper ends (points 2 and 16) reach that depth. The chin stays where it is and the inner points do not move.

:func:`jaw_offsets` carries the setback into the photo's frame through the mean shape's similarity onto a 468-vertex
mesh (:func:`~facehub.modeling.geometry.procrustes.umeyama`). Every reconstruction reports its landmarks this way:
the morphable-model fit and its coefficient regressor
(:meth:`~facehub.modeling.geometry.MorphableFaceModel.reconstruction_landmarks68`), whose fitted meshes the setback
was measured on, and PRN-Dense (:class:`~facehub.modeling.prn_dense.FaceReconstruction`), which learned its rim from
maps of such fits (the AFLW2000-3D figures of both are on their model cards). What a mask, an outline drawn on the
photo or a crop needs is the mesh's own points (:func:`~.landmarks68.landmarks68_from_mesh`, a reconstruction's
``mesh_landmarks68``): behind a turned cheek the 3D jaw is hidden, and past the far side it can project onto the
background.
"""

from __future__ import annotations

import functools

import numpy as np

from facehub.modeling.geometry.landmarks68 import NUM_MESH_VERTICES, landmark_weights
from facehub.modeling.geometry.procrustes import umeyama

#: How far (mm, along the mean shape's depth axis) the ear lobe lies behind the face oval at iBUG jaw point 2 / 16
#: (module docstring; ``benchmarks/measure_jaw_landmarks.py`` measures it).
EAR_SETBACK_MM = 19.9

#: iBUG jaw points (0-based) whose depth the setback is scaled to: 2 and 16, the oval vertices nearest the ear.
_EAR_LEVEL = (1, 15)
_CHIN = 8


def jaw_setback(mean_shape: np.ndarray, setback: float = EAR_SETBACK_MM) -> np.ndarray:
    """(68, 3) offsets in the mean shape's frame that move the jaw points to the 3D jaw (module docstring).

    Only the jaw rows are non-zero, and only in z: ``-setback * (z_chin - z_k) / (z_chin - z_ear)``, where ``z_k``
    is jaw point k's depth on the mean shape and ``z_ear`` the mean depth of points 2 and 16. Point 9 (the chin) does
    not move.
    """
    mean_shape = np.asarray(mean_shape, np.float64)
    landmarks = landmark_weights(mean_shape.shape[0]) @ mean_shape
    depth_behind_chin = landmarks[_CHIN, 2] - landmarks[:17, 2]
    ear_depth = float(np.mean(depth_behind_chin[list(_EAR_LEVEL)]))
    if not ear_depth > 0:
        raise ValueError("The mean shape's jaw does not lie behind its chin (z towards the camera); cannot place the "
                         "3D jaw.")
    offsets = np.zeros((68, 3))
    offsets[:17, 2] = -setback * depth_behind_chin / ear_depth
    return offsets


@functools.lru_cache(maxsize=1)
def _default_mean_shape() -> np.ndarray:
    from facehub.modeling.geometry.morphable import MorphableFaceModel

    return MorphableFaceModel.default().mean_shape.double().numpy()


def jaw_offsets(vertices: np.ndarray, mean_shape: np.ndarray | None = None,
                setback: float = EAR_SETBACK_MM) -> np.ndarray:
    """(68, 3) what to add to a face mesh's own 68 landmarks to put its jaw at its 3D depth (module docstring):
    :func:`jaw_setback` carried into the photo by the mean shape's similarity onto the mesh.

    Args:
        vertices: (V, 3) mesh in the photo's frame (x right, y down, z towards the camera, z in the units of x and
            y), MediaPipe's vertex order (V >= 468).
        mean_shape: (468, 3) the face model's mean shape in its own frame (default: the default model's).
        setback: :data:`EAR_SETBACK_MM`; 0 gives zeros.
    """
    vertices = np.asarray(vertices, np.float64)
    if vertices.ndim != 2 or vertices.shape[0] < NUM_MESH_VERTICES or vertices.shape[1] != 3:
        raise ValueError(f"Expected (V >= {NUM_MESH_VERTICES}, 3) mesh vertices, got shape {vertices.shape}.")
    if setback == 0:
        return np.zeros((68, 3))
    mean_shape = _default_mean_shape() if mean_shape is None else np.asarray(mean_shape, np.float64)
    if mean_shape.shape != (NUM_MESH_VERTICES, 3):
        raise ValueError(f"Expected a ({NUM_MESH_VERTICES}, 3) mean shape, got {mean_shape.shape}.")
    placement = umeyama(mean_shape, vertices[:NUM_MESH_VERTICES], with_scale=True)
    return placement.scale * jaw_setback(mean_shape, setback) @ placement.rotation.T

