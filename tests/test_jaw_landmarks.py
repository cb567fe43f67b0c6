"""The 68 landmarks' jaw: its rows along MediaPipe's face oval, and a reconstruction's jaw at its 3D depth."""

import numpy as np
import pytest

from facehub.modeling.geometry.jaw_depth import EAR_SETBACK_MM, jaw_offsets, jaw_setback
from facehub.modeling.geometry.landmarks68 import FACE_OVAL, JAW_ON_FACE_OVAL, landmark_weights, landmarks68_from_mesh
from facehub.modeling.geometry.morphable import MorphableFaceModel
from facehub.modeling.geometry.rotations import rotation_matrix


@pytest.fixture(scope="module")
def mean_shape():
    return MorphableFaceModel.default().mean_shape.double().numpy()


def test_jaw_rows_interpolate_neighbouring_oval_vertices_and_mirror_each_other(mean_shape):
    weights = landmark_weights()
    oval = set(FACE_OVAL)
    for k, position in enumerate(JAW_ON_FACE_OVAL):
        used = np.flatnonzero(weights[k])
        assert set(used) <= oval and len(used) <= 2
        below = FACE_OVAL[int(position)]
        assert weights[k, below] == pytest.approx(1.0 - (position - int(position)))
    # The mean face is left/right symmetric about x = 0 (to about a millimetre: vertices 234 and 454 lie at -69.1 and
    # +70.1), so point k and point 18 - k (1-based) are mirror images.
    jaw = (weights @ mean_shape)[:17]
    mirrored = jaw[::-1] * [-1.0, 1.0, 1.0]
    assert np.abs(jaw - mirrored).max() < 1.5  # mm
    # The measured rows sit lower on the face than the source table's single vertices did (module docstring).
    assert jaw[1, 1] > mean_shape[234, 1] + 3.0 and jaw[2, 1] > mean_shape[93, 1] + 3.0


def test_the_shipped_face_model_carries_the_same_landmark_table():
    model = MorphableFaceModel.default()
    np.testing.assert_allclose(model.landmark_weights.numpy(), landmark_weights(), atol=1e-6)


def test_the_3d_jaw_moves_back_by_the_ear_setback_and_turns_with_the_head(mean_shape):
    offsets = jaw_setback(mean_shape)
    # Only the jaw moves, only in depth; its upper ends by the measured setback, the chin not at all.
    assert np.abs(offsets[17:]).max() == 0 and np.abs(offsets[:, :2]).max() == 0
    assert offsets[[1, 15], 2].mean() == pytest.approx(-EAR_SETBACK_MM)
    assert offsets[8, 2] == 0.0
    assert np.all(np.diff(offsets[1:9, 2]) > 0)  # shallower from the ear down to the chin

    # A posed copy of the mean face (scale 3 px/mm, turned 40 degrees): the 3D jaw is the posed setback.
    rotation = rotation_matrix(40.0, -10.0, 5.0)
    posed = 3.0 * mean_shape @ rotation.T + [200.0, 150.0, 0.0]
    landmarks = landmarks68_from_mesh(posed) + jaw_offsets(posed, mean_shape)
    expected = 3.0 * (landmark_weights() @ mean_shape + offsets) @ rotation.T + [200.0, 150.0, 0.0]
    np.testing.assert_allclose(landmarks, expected, atol=1e-6)
    # Turned, the jaw's x changes by the setback's projection: 3 px/mm * 19.9 mm * sin(40) at the ear-level points.
    shift = landmarks[[1, 15]] - landmarks68_from_mesh(posed)[[1, 15]]
    assert np.abs(shift[:, 0]).mean() == pytest.approx(3.0 * EAR_SETBACK_MM * abs(rotation[0, 2]), rel=0.05)

    # Facing the camera, x and y stay: the setback is along the line of sight.
    frontal = 3.0 * mean_shape + [200.0, 150.0, 0.0]
    np.testing.assert_allclose(jaw_offsets(frontal, mean_shape)[:, :2], 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="468"):
        jaw_offsets(np.zeros((100, 3)), mean_shape)


def test_a_reconstruction_reports_the_3d_jaw_and_keeps_the_mesh_points(mean_shape):
    from facehub.modeling.face_fitting import FaceCoefficients
    from facehub.modeling.face_fitting.modeling_face_regressor import fitted_face_from_coefficients

    model = MorphableFaceModel.default()
    photo = np.full((256, 256, 3), 120, np.uint8)
    coefficients = FaceCoefficients(
        identity=np.zeros(40), expression=np.zeros(14), albedo=np.zeros(9), lighting=np.zeros((3, 9)),
        rotation=(35.0, 0.0, 0.0), translation=np.array([128.0, 128.0, 0.0]), scale=1.2)
    face = fitted_face_from_coefficients(photo, coefficients, model=model, texture_size=32, complete=False,
                                         compute_depth=False)
    mesh_points = face.mesh_landmarks68
    np.testing.assert_allclose(mesh_points, landmarks68_from_mesh(face.vertices), atol=1e-4)
    np.testing.assert_allclose(face.landmarks68[17:], mesh_points[17:], atol=1e-4)  # inner points: the mesh's own
    moved = np.linalg.norm(face.landmarks68[:17, :2] - mesh_points[:17, :2], axis=1)
    # Turned 35 degrees, the ear-level jaw points move ~1.2 px/mm * 19.9 mm * sin(35) = 13.7 px; the chin stays.
    assert moved[[1, 15]].mean() == pytest.approx(1.2 * EAR_SETBACK_MM * np.sin(np.radians(35.0)), rel=0.1)
    assert moved[8] < 0.5
