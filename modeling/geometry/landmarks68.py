"""The 68 iBUG 300-W landmarks as points of the dense face mesh (MediaPipe face-mesh vertex numbering).

Each inner landmark (brows, nose, eyes, lips: iBUG points 18-68) is the mean of one or two mesh vertices. That
correspondence table is index data from Peizhi Yan, "Mediapipe_2_Dlib_Landmarks"
(github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks), carried over as facts; rows are iBUG points 1-68 in order (jaw
1-17, right brow 18-22, left brow 23-27, nose 28-36, right eye 37-42, left eye 43-48, outer lips 49-60, inner lips
61-68), "right" meaning the subject's right.

The jaw (points 1-17) lies on MediaPipe's face oval (:data:`FACE_OVAL`), at the positions :data:`JAW_ON_FACE_OVAL`
along it, between two neighbouring oval vertices. The source table put points 2-3, 7-8 and 10-16 on single oval
vertices higher up the face than iBUG's annotators put them. The positions here were measured on the training
photos that carry 68-point labels: the median position along the oval of each label, over the 39 near-frontal
faces (the analyzer's |yaw| <= 20 degrees) of dlib's example photos and the FFHQ samples in ../shared/data, made
left/right symmetric. ``python benchmarks/measure_jaw_landmarks.py`` measures them again and compares them with the
table.
"""

from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 68
NUM_MESH_VERTICES = 468  # the face mesh without its 10 iris points (478 with them)

#: MediaPipe's face-oval loop: from the forehead's middle (vertex 10) down the subject's right side to the chin
#: (vertex 152, position 18), then up the left side. Position ``36 - t`` is the mirror image of position ``t``.
FACE_OVAL: tuple[int, ...] = (
    10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148,
    152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284, 332, 297, 338,
)

#: Positions along :data:`FACE_OVAL` of the subject's right jaw points 1-8 (module docstring); point 9 is the chin
#: (position 18) and points 10-17 are the mirror images of 8-1.
RIGHT_JAW_ON_FACE_OVAL: tuple[float, ...] = (6.99, 8.35, 9.55, 10.63, 11.79, 13.23, 14.83, 16.61)
JAW_ON_FACE_OVAL: tuple[float, ...] = (
    *RIGHT_JAW_ON_FACE_OVAL, 18.0, *(round(len(FACE_OVAL) - t, 2) for t in reversed(RIGHT_JAW_ON_FACE_OVAL)))


def _on_face_oval(position: float) -> tuple[tuple[int, float], ...]:
    """``(vertex, weight)`` pairs of the point at ``position`` along :data:`FACE_OVAL`: the oval vertex below it and,
    unless it lies on that vertex, the next one, weighted by linear interpolation."""
    below = int(position)
    fraction = position - below
    if fraction == 0.0:
        return ((FACE_OVAL[below], 1.0),)
    return (FACE_OVAL[below], 1.0 - fraction), (FACE_OVAL[below + 1], fraction)


#: Mesh vertices of each landmark. A jaw row names the two oval vertices its point lies between (its weights are the
#: interpolation along the oval, :func:`landmark_weights`); every other row is averaged with equal weights.
MESH_VERTICES_OF_LANDMARK: tuple[tuple[int, ...], ...] = (
    # jaw, 1-17
    *(tuple(vertex for vertex, _ in _on_face_oval(t)) for t in JAW_ON_FACE_OVAL),
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
    """(68, num_vertices) matrix W with ``landmarks68 = W @ vertices``; each row sums to 1 (a jaw row interpolates
    between two neighbouring oval vertices)."""
    weights = np.zeros((NUM_LANDMARKS, num_vertices), dtype=np.float64)
    for row, position in enumerate(JAW_ON_FACE_OVAL):
        for vertex, weight in _on_face_oval(position):
            weights[row, vertex] = weight
    for row, vertices in enumerate(MESH_VERTICES_OF_LANDMARK[len(JAW_ON_FACE_OVAL):], start=len(JAW_ON_FACE_OVAL)):
        weights[row, list(vertices)] = 1.0 / len(vertices)
    return weights


def landmarks68_from_mesh(vertices: np.ndarray) -> np.ndarray:
    """(..., V, D) dense mesh vertices (V >= 468, MediaPipe order) -> (..., 68, D) iBUG landmarks."""
    vertices = np.asarray(vertices)
    if vertices.shape[-2] < NUM_MESH_VERTICES:
        raise ValueError(f"Expected at least {NUM_MESH_VERTICES} mesh vertices, got shape {vertices.shape}.")
    return np.einsum("lv,...vd->...ld", landmark_weights(vertices.shape[-2]), vertices)


assert len(MESH_VERTICES_OF_LANDMARK) == NUM_LANDMARKS and len(JAW_ON_FACE_OVAL) == 17
