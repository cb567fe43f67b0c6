"""Labelling photos by fitting (`facehub prepare --fit --landmarks`): AFLW's 21 hand points as mesh points, a face
turned beyond MediaPipe's reach fitted from them alone, and the rows the PRN-Dense and regressor trainers read."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facehub.modeling.geometry.landmarks_aflw21 import AFLW21_NAMES, aflw21_weights
from facehub.trainers.data.fit_labels import HandLabels, fit_photo, read_aflw21_labels, read_aflw_training_crops
from facehub.trainers.data.prepare import PrepareConfig, prepare

PHOTOS = Path(__file__).parent / "data" / "photos"


@pytest.fixture(scope="module")
def world():
    from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig

    return SyntheticFaceWorld(SyntheticWorldConfig(num_identities=4, views_per_identity=1, image_size=192, hair=1.0,
                                                   background_plane=True, seed=3))


def hand_points(render) -> tuple[np.ndarray, np.ndarray]:
    """AFLW's 21 points of a synthetic render from its exact mesh: the ears unlabelled, as the mesh has none, and
    the points turned away from the camera hidden, as a labeller leaves them."""
    weights, kept = aflw21_weights()
    vertices = np.asarray(render["vertices"], np.float64)[:468]
    points, visible = np.zeros((21, 2)), np.zeros(21, bool)
    points[kept] = weights @ vertices[:, :2]
    depth = weights @ vertices[:, 2]
    visible[kept] = depth > np.median(depth) - 0.25 * np.ptp(depth)  # the far side of a profile is hidden
    return points, visible


def write_csv(path: Path, rows: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    head = ["file", "yaw_deg"] + [f"x{i}" for i in range(21)] + [f"y{i}" for i in range(21)]
    lines = [",".join(head)]
    for name, (points, visible) in rows.items():
        xy = np.where(visible[:, None], points, -1.0)
        lines.append(",".join([name, ""] + [f"{v:.2f}" for v in xy[:, 0]] + [f"{v:.2f}" for v in xy[:, 1]]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_aflw21_points_name_mesh_vertices_and_leave_the_ears_out():
    weights, kept = aflw21_weights()
    assert len(AFLW21_NAMES) == 21 and weights.shape == (19, 468)
    assert [AFLW21_NAMES[i] for i in sorted(set(range(21)) - set(kept.tolist()))] == ["LeftEar", "RightEar"]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    # "Left" is the image's left on a frontal face: the subject's right eye's outer corner, vertex 33
    assert weights[list(kept).index(AFLW21_NAMES.index("LeftEyeLeftCorner")), 33] == 1.0


def test_the_labels_file_is_read_by_name_and_a_foreign_layout_is_refused(tmp_path):
    points = np.arange(42, dtype=float).reshape(21, 2)
    visible = np.ones(21, bool)
    visible[[12, 16]] = False
    labels = read_aflw21_labels(write_csv(tmp_path / "labels.csv", {"dir/a.jpg": (points, visible)}))
    assert list(labels) == ["a.jpg"]
    np.testing.assert_array_equal(labels["a.jpg"].visible, visible)
    np.testing.assert_allclose(labels["a.jpg"].points[0], [0.0, 1.0])
    assert labels["a.jpg"].yaw is None
    (tmp_path / "other.csv").write_text("file,x0,y0\na.jpg,1,2\n")
    with pytest.raises(ValueError, match="not an AFLW 21-point labels file: it lacks the column\\(s\\) x1"):
        read_aflw21_labels(tmp_path / "other.csv")


def test_the_training_crops_are_the_split_s_labelled_photos_in_its_order(tmp_path):
    points, visible = np.zeros((21, 2)), np.ones(21, bool)
    (tmp_path / "2DASL").mkdir()
    write_csv(tmp_path / "2DASL" / "AFLW_GT_crop_labels.csv", {"crops/b.jpg": (points, visible),
                                                               "crops/a.jpg": (points, visible)})
    with pytest.raises(FileNotFoundError, match="train_landmarks_labelled.txt not found"):
        read_aflw_training_crops(tmp_path)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train_landmarks_labelled.txt").write_text("crops/a.jpg\nother/c.jpg\n\ncrops/b.jpg\n")
    labels, crops = read_aflw_training_crops(tmp_path)
    assert crops == ["crops/a.jpg", "crops/b.jpg"] and sorted(labels) == ["a.jpg", "b.jpg"]  # c.jpg has no labels


def test_a_profile_the_analyzer_misses_is_fitted_from_its_hand_points(world):
    from facehub.modeling.faces import FaceAnalyzer

    render = world.render_face(1, pose=(75.0, 0.0, 0.0))
    image = np.asarray(render["image"])
    assert FaceAnalyzer(compute_embedding=False)(image) == []  # beyond MediaPipe's reach
    points, visible = hand_points(render)
    assert 8 <= visible.sum() < 19
    status, reason, row = fit_photo(image, [], HandLabels(points, visible), size=128, uv_size=32)
    assert status == "ok", reason
    assert abs(row["pose"][0] - 75.0) < 5.0 and abs(row["pose"][1]) < 5.0 and abs(row["pose"][2]) < 5.0
    # the row's mesh, in its crop, puts the hand points where they were labelled (through crop_to_image)
    weights, kept = aflw21_weights()
    back = np.asarray(row["crop_to_image"], np.float64)
    in_photo = (weights @ row["dense_landmarks"][:, :2]) @ back[:, :2].T + back[:, 2]
    face_size = np.sqrt(np.prod(np.ptp(points[visible], axis=0)))
    error = np.linalg.norm(in_photo - points[kept], axis=1)[visible[kept]].mean() / face_size
    assert error < 0.03
    assert len(row["shape_coefficients"]) > 0 and len(row["lighting"]) == 27
    # too few usable points and no face: skipped with the reason, never a crash
    few = visible.copy()
    few[np.flatnonzero(few)[4:]] = False
    status, reason, _ = fit_photo(image, [], HandLabels(points, few), size=128, uv_size=32)
    assert status == "no_face" and "only 4 usable hand-labelled points" in reason


def test_prepare_fit_writes_rows_the_regressor_and_prn_dense_trainers_read(world, tmp_path):
    from facehub.trainers.face_fitting import load_source
    from facehub.trainers.prn_dense import PreparedFaceSource

    images = tmp_path / "photos"
    images.mkdir()
    render = world.render_face(2, pose=(-70.0, 5.0, 0.0))
    Image.fromarray(np.asarray(render["image"])).save(images / "profile.png")
    Image.open(PHOTOS / "obama.jpg").save(images / "obama.jpg")  # no hand labels: fitted to the analyzer's face
    csv = write_csv(tmp_path / "labels.csv", {"profile.png": hand_points(render)})
    with pytest.raises(ValueError, match="add --fit"):
        PrepareConfig(images=images, out=tmp_path / "out", landmarks=csv)
    report = prepare(PrepareConfig(images=images, out=tmp_path / "out", size=96, uv_size=32, fit=True,
                                   landmarks=csv))
    assert report.kept == 2, report.skipped
    table = load_source(str(tmp_path / "out"))
    assert len(table) == 2
    yaws = sorted(float(p[0]) for p in table["pose"])
    assert yaws[0] < -60.0 and abs(yaws[1]) < 25.0
    source = PreparedFaceSource(str(tmp_path / "out"))
    assert len(source) == 2
