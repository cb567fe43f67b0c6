"""The 68 iBUG 300-W landmarks as points of the dense face mesh (MediaPipe face-mesh vertex numbering).

Each iBUG landmark is the mean of one or two mesh vertices. The correspondence table is index data from
Peizhi Yan, "Mediapipe_2_Dlib_Landmarks" (github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks), carried over as facts;
rows are iBUG points 1-68 in order (jaw 1-17, right brow 18-22, left brow 23-27, nose 28-36, right eye 37-42,
left eye 43-48, outer lips 49-60, inner lips 61-68), "right" meaning the subject's right. One row differs from
the source: point 14 is the mean of (361, 288), the mirror images of point 4's (132, 58), where the source had 361
alone; every other row of the table is already left/right symmetric.
"""

from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 68
NUM_MESH_VERTICES = 468  # the face mesh without its 10 iris points (478 with them)

MESH_VERTICES_OF_LANDMARK: tuple[tuple[int, ...], ...] = (
    # jaw, 1-17
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,),
    (400,), (379,), (365,), (397, 288), (361, 288), (323,), (454,), (356,),
    # right brow, 18-22; left brow, 23-27
    (70,), (63,), (105,), (66,), (107,),
    (336,), (296,), (334,), (293,), (300,),
    # nose bridge 28-31, nostrils 32-36
    (168, 6), (197, 195), (5,), (4,), (75,), (97,), (2,), (326,), (305,),
    # right eye 37-42, left eye 43-48
    (33,), (160,), (158,), (133,), (153,), (144,),
    (362,), (385,), (387,), (263,), (373,), (380,),
    # outer lips 49-60
    (61,), (39,), (37,), (0,), (267,), (269,), (291,), (321,), (314,), (17,), (84,), (91,),
    # inner lips 61-68
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),
)

#: iBUG index groups (0-based), e.g. for region masks and inter-ocular normalisation.
LANDMARK_GROUPS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose": tuple(range(27, 36)),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "outer_lips": tuple(range(48, 60)),
    "inner_lips": tuple(range(60, 68)),
}


def landmark_weights(num_vertices: int = NUM_MESH_VERTICES) -> np.ndarray:
    """(68, num_vertices) matrix W with ``landmarks68 = W @ vertices``; each row sums to 1."""
    weights = np.zeros((NUM_LANDMARKS, num_vertices), dtype=np.float64)
    for row, vertices in enumerate(MESH_VERTICES_OF_LANDMARK):
        weights[row, list(vertices)] = 1.0 / len(vertices)
    return weights


def landmarks68_from_mesh(vertices: np.ndarray) -> np.ndarray:
    """(..., V, D) dense mesh vertices (V >= 468, MediaPipe order) -> (..., 68, D) iBUG landmarks."""
    vertices = np.asarray(vertices)
    if vertices.shape[-2] < NUM_MESH_VERTICES:
        raise ValueError(f"Expected at least {NUM_MESH_VERTICES} mesh vertices, got shape {vertices.shape}.")
    return np.einsum("lv,...vd->...ld", landmark_weights(vertices.shape[-2]), vertices)


assert len(MESH_VERTICES_OF_LANDMARK) == NUM_LANDMARKS
