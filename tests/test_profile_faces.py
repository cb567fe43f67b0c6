"""Faces the FaceAnalyzer misses (turned beyond MediaPipe's reach) are found by the fallback box detector and
reconstructed from their box by the methods that can (PRN-Dense, the coefficient regressor)."""

from pathlib import Path

import numpy as np
import pytest

from facehub.modeling.faces import FaceAnalyzer, load_image
from facehub.modeling.faces.profile_detection import DlibCNNFaceDetector, FaceBox
from facehub.modeling.geometry.landmark_metrics import nme

PHOTOS = Path(__file__).parent / "data" / "photos"


@pytest.fixture(scope="module")
def profiles():
    """Two synthetic heads turned 75 degrees, with hair and a background, that MediaPipe does not find: (image,
    true 68 landmarks) each."""
    from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig

    world = SyntheticFaceWorld(SyntheticWorldConfig(num_identities=4, views_per_identity=1, image_size=256, hair=1.0,
                                                    background_plane=True, seed=3))
    found = []
    for identity in (1, 2):
        render = world.render_face(identity, pose=world.model.head_pose((75.0, 0.0, 0.0)))  # the model turned 75
        image = np.asarray(render["image"])
        assert FaceAnalyzer(compute_embedding=False)(image) == []
        found.append((image, np.asarray(render["landmarks68"])[:, :2]))
    return found


def test_a_detector_box_implies_the_landmark_box():
    box = FaceBox((100.0, 100.0, 200.0, 200.0), 0.9)
    np.testing.assert_allclose(box.landmark_box(), [102.5, 120.5, 197.5, 215.5])  # 0.95 sides, 0.18 sides lower
    assert box.area == 10_000.0


def test_the_detector_agrees_with_the_analyzer_on_a_frontal_face_and_finds_no_cat():
    image = load_image(PHOTOS / "obama.jpg")
    landmarks = FaceAnalyzer(compute_embedding=False)(image)[0].landmarks68
    boxes = DlibCNNFaceDetector()(image)
    assert len(boxes) == 1
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    side = float((high - low).mean())
    implied = boxes[0].landmark_box()
    assert np.linalg.norm((implied[:2] + implied[2:]) / 2 - (low + high) / 2) < 0.1 * side
    assert abs((implied[2] - implied[0]) / side - 1.0) < 0.25
    assert DlibCNNFaceDetector()(load_image(PHOTOS / "chelsea.jpg")) == []


def test_profiles_the_analyzer_misses_are_reconstructed_from_their_box(profiles):
    """Measured with the embedded defaults: PRN-Dense 12.4% and 16.0% NME, yaw +37 and +65 (true +75); the regressor
    8.0% and +68 on the second head but turned the wrong way (-55) on the first, whose hair layer its training never
    showed it."""
    from facehub.modeling.face_fitting import FaceFittingPipeline
    from facehub.modeling.prn_dense import FaceReconstructionPipeline

    prn = FaceReconstructionPipeline.from_pretrained("facehub/prn-dense")
    fitting = FaceFittingPipeline.from_pretrained("facehub/face-fitting")
    assert fitting.reconstructs_from_boxes
    regressor_errors = []
    for image, truth in profiles:
        (face,) = prn(image, compute_depth=False).reconstructions
        assert face.pose[0] > 25.0 and 100 * nme(face.landmarks68, truth) < 20.0
        (fitted,) = fitting(image, compute_depth=False).reconstructions
        assert fitted.coefficients is not None
        regressor_errors.append((100 * nme(fitted.landmarks68, truth), fitted.pose[0]))
    best = min(regressor_errors)
    assert best[0] < 12.0 and best[1] > 50.0
