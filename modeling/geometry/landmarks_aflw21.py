"""AFLW's 21 hand-labelled landmarks as points of the dense face mesh (MediaPipe face-mesh vertex numbering).

AFLW (Koestinger et al., "Annotated Facial Landmarks in the Wild", 2011) labels up to 21 points per face, only
those visible, over all yaws; 3DDFA's AFLW crops keep them with "left" meaning the image's left on a frontal face
(the subject's right). Each point here is the mean of one or a few mesh vertices, chosen by the median distance
between AFLW's labels and the MediaPipe mesh on 936 near-frontal AFLW crops (|yaw| <= 30; distances as a fraction
of the face size, 0.02-0.04 for the rows kept). The two ear points have no mesh vertex: the face mesh ends in front
of the ear (the nearest jaw vertex lies 5.7% of the face size away on frontal faces, and further at profile, where
the ear is centimetres behind it), so they are left out (``None``) rather than pulling the fit.
"""

from __future__ import annotations

import numpy as np

from facehub.modeling.geometry.landmarks68 import NUM_MESH_VERTICES

AFLW21_NAMES: tuple[str, ...] = (
    "LeftBrowLeftCorner", "LeftBrowCenter", "LeftBrowRightCorner",
    "RightBrowLeftCorner", "RightBrowCenter", "RightBrowRightCorner",
    "LeftEyeLeftCorner", "LeftEyeCenter", "LeftEyeRightCorner",
    "RightEyeLeftCorner", "RightEyeCenter", "RightEyeRightCorner",
    "LeftEar", "NoseLeft", "NoseCenter", "NoseRight", "RightEar",
    "MouthLeftCorner", "MouthCenter", "MouthRightCorner", "ChinCenter",
)

#: Mesh vertices averaged for each AFLW point, in AFLW's order; ``None`` for the ears (module docstring).
MESH_VERTICES_OF_AFLW21: tuple[tuple[int, ...] | None, ...] = (
    (46,), (52,), (107,),
    (336,), (282,), (300,),
    (33,), (33, 133, 159, 145), (133,),
    (362,), (362, 263, 386, 374), (263,),
    None, (64,), (1,), (294,), None,
    (61,), (13, 14), (291,), (152,),
)


def aflw21_weights(num_vertices: int = NUM_MESH_VERTICES) -> tuple[np.ndarray, np.ndarray]:
    """``(weights, kept)``: the (19, num_vertices) vertex weights of the AFLW points that have mesh vertices (rows
    sum to 1) and their (19,) indices into AFLW's 21."""
    kept = np.array([i for i, vertices in enumerate(MESH_VERTICES_OF_AFLW21) if vertices is not None])
    weights = np.zeros((len(kept), num_vertices), dtype=np.float64)
    for row, index in enumerate(kept):
        vertices = MESH_VERTICES_OF_AFLW21[index]
        weights[row, list(vertices)] = 1.0 / len(vertices)
    return weights, kept


assert len(AFLW21_NAMES) == len(MESH_VERTICES_OF_AFLW21) == 21
