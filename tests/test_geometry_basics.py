"""Rotation conventions, Umeyama alignment and the 68-landmark map of the dense mesh."""

import numpy as np
import pytest

from facehub.modeling.geometry.landmarks68 import MESH_VERTICES_OF_LANDMARK, landmark_weights, landmarks68_from_mesh
from facehub.modeling.geometry.procrustes import umeyama
from facehub.modeling.geometry.rotations import euler_from_rotation_matrix, rotation_matrix


def test_euler_angles_round_trip():
    rng = np.random.default_rng(0)
    for angles in rng.uniform([-89, -89, -179], [89, 89, 179], size=(200, 3)):
        np.testing.assert_allclose(euler_from_rotation_matrix(rotation_matrix(*angles)), angles, atol=1e-7)



def test_rotation_matrix_of_arrays_is_one_matrix_per_element():
    angles = np.random.default_rng(2).uniform(-80, 80, size=(4, 5, 3))
    matrices = rotation_matrix(angles[..., 0], angles[..., 1], angles[..., 2])
    assert matrices.shape == (4, 5, 3, 3)
    for index in np.ndindex(4, 5):
        np.testing.assert_allclose(matrices[index], rotation_matrix(*angles[index]), atol=1e-15)
    # Scalars broadcast against arrays: a yaw sweep at one pitch.
    sweep = rotation_matrix(np.array([-30.0, 0.0, 30.0]), 10.0, 0.0)
    np.testing.assert_allclose(sweep[2], rotation_matrix(30, 10, 0), atol=1e-15)
    nose_x = (sweep @ [0.0, 0.0, 1.0])[:, 0]
    assert nose_x == pytest.approx([-0.5, 0.0, 0.5])  # pitch about x leaves the yaw's sideways turn alone


def test_sign_conventions_on_a_nose_tip():
    nose = np.array([0.0, 0.0, 1.0])  # towards the camera
    assert (rotation_matrix(30, 0, 0) @ nose)[0] == pytest.approx(0.5)  # yaw > 0: nose to the image's right
    assert (rotation_matrix(0, 30, 0) @ nose)[1] == pytest.approx(-0.5)  # pitch > 0: nose up (y down)
    right = np.array([1.0, 0.0, 0.0])
    assert (rotation_matrix(0, 0, 30) @ right)[1] == pytest.approx(0.5)  # roll > 0: clockwise in the image


def test_umeyama_recovers_a_similarity_and_never_reflects():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(40, 3))
    rotation = rotation_matrix(25, -10, 5)
    target = 1.7 * source @ rotation.T + [3, -2, 1] + rng.normal(scale=1e-9, size=(40, 3))
    fit = umeyama(source, target)
    assert fit.scale == pytest.approx(1.7, rel=1e-8)
    np.testing.assert_allclose(fit.rotation, rotation, atol=1e-8)
    np.testing.assert_allclose(fit.inverse().apply(fit.apply(source)), source, atol=1e-9)
    mirrored = source * [-1, 1, 1]  # the best orthogonal map is a reflection: Umeyama must return a rotation
    assert np.linalg.det(umeyama(source, mirrored).rotation) == pytest.approx(1.0)
    rigid = umeyama(source, target, with_scale=False)
    assert rigid.scale == 1.0


def test_landmark_map_rows_average_their_vertices():
    weights = landmark_weights(478)
    assert weights.shape == (68, 478)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert weights[:, 468:].sum() == 0  # iris points are never used
    vertices = np.random.default_rng(2).normal(size=(478, 3))
    lms = landmarks68_from_mesh(vertices)
    # iBUG point 4 lies 0.63 of the way along the face oval from vertex 132 to vertex 58
    np.testing.assert_allclose(lms[3], 0.37 * vertices[132] + 0.63 * vertices[58])
    np.testing.assert_allclose(lms[30], vertices[4])  # iBUG point 31, nose tip
    assert len({v for row in MESH_VERTICES_OF_LANDMARK for v in row}) >= 66
    with pytest.raises(ValueError, match="at least 468"):
        landmarks68_from_mesh(np.zeros((100, 3)))


def test_procrustes_mean_of_moved_copies_is_the_shape():
    from facehub.modeling.geometry.procrustes import procrustes_mean

    rng = np.random.default_rng(3)
    shape = rng.normal(size=(30, 3))
    copies = [s * shape @ rotation_matrix(*a).T + t for s, a, t in
              zip((1.0, 2.0, 0.5), ((0, 0, 0), (20, -5, 10), (-30, 15, 0)), rng.normal(size=(3, 3)), strict=True)]
    mean = procrustes_mean(copies)  # starts from the first copy, so it lands in its frame
    np.testing.assert_allclose(mean, copies[0], atol=1e-9)
    # rigid alignment fitted on the first 10 points only: same-size copies still average back to the first one
    same_size = [c / s for c, s in zip(copies, (1.0, 2.0, 0.5), strict=True)]
    np.testing.assert_allclose(procrustes_mean(same_size, with_scale=False, fit_points=10), same_size[0], atol=1e-9)
