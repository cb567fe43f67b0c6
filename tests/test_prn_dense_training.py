"""PRN-Dense training and evaluation (seed 003): the AFLW2000-3D reader, Table 2's yaw bins, ICP for Table 3, the
training items (crop, UV target convention, augmentation consistency) and a short training run in the shared loop
that clearly lowers the 68-point NME on held-out synthetic faces.

Everything is rendered here: a tiny synthetic face world at 64 px (32 training faces, 8 held-out faces of other
identities), and a face whose texture encodes its own UV coordinates as colours, which lets the augmentation test
read off the image where each surface point ended up and compare it with the training target.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facehub.modeling.geometry.landmarks68 import landmarks68_from_mesh
from facehub.modeling.geometry.procrustes import umeyama
from facehub.modeling.geometry.rotations import euler_from_rotation_matrix, rotation_matrix
from facehub.modeling.geometry.topology import mirror_vertex_map
from facehub.modeling.geometry.uv_maps import uv_position_map_to_mesh
from facehub.modeling.prn_dense import FaceReconstructionPipeline, PRNDenseModel, crop_units_to_image_positions
from facehub.trainers.core import load_config, train
from facehub.trainers.data.aflw2000 import (
    AFLW2000FormatError,
    facehub_pose,
    find_aflw2000_samples,
    read_aflw2000_sample,
)
from facehub.trainers.data.prepare import prepare_synthetic
from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig
from facehub.trainers.evaluation import prn_dense as prn_eval
from facehub.trainers.prn_dense import (
    PositionMapFaces,
    PreparedFaceSource,
    PRNDenseTraining,
    step_learning_rate_factor,
)

CONFIGS = Path(__file__).resolve().parents[1] / "trainers" / "configs"
CROP = 64
WORLD = {"image_size": 64, "uv_size": 8, "max_yaw": 75.0, "max_pitch": 20.0, "max_roll": 15.0}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """``facehub prepare --synthetic`` folders: 32 training faces and 8 held-out faces (another seed)."""
    root = tmp_path_factory.mktemp("prn-worlds")
    prepare_synthetic(SyntheticWorldConfig(num_identities=8, views_per_identity=4, seed=0, **WORLD), root / "train")
    prepare_synthetic(SyntheticWorldConfig(num_identities=4, views_per_identity=2, seed=77, **WORLD), root / "held_out")
    return root


# --------------------------------------------------------------------------------------------------------------------
# AFLW2000-3D reader and Table 2 / Table 3 metrics


def _write_aflw_sample(folder, stem: str, landmarks: np.ndarray, pose_radians: tuple[float, float, float]):
    from PIL import Image
    from scipy.io import savemat

    rows, cols = np.mgrid[0:120, 0:100]
    image = np.stack([2 * rows, 2 * cols, np.full_like(rows, 128)], axis=-1).astype(np.uint8)  # smooth: JPEG-safe
    Image.fromarray(image).save(folder / f"{stem}.jpg", quality=95)
    pitch, yaw, roll = pose_radians
    savemat(folder / f"{stem}.mat", {
        "pt3d_68": landmarks.T,  # (3, 68), as the benchmark stores it
        "Pose_Para": np.array([[pitch, yaw, roll, 10.0, 20.0, 30.0, 0.0012]]),
        "Shape_Para": np.zeros((199, 1)),
        "roi": np.array([[1, 1, 100, 120]]),
    })
    return image


def _3ddfa_rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """3DDFA's MATLAB ``RotationMatrix(phi, gamma, theta)`` (radians), written out entry by entry as the fitting code
    that made AFLW2000-3D builds it: ``R = Rx * Ry * Rz`` with ``Rx = [1 0 0; 0 c s; 0 -s c]``,
    ``Ry = [c 0 -s; 0 1 0; s 0 c]``, ``Rz = [c s 0; -s c 0; 0 0 1]``, applied to a model whose y axis points up."""
    cx, sx, cy, sy, cz, sz = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw), np.cos(roll), np.sin(roll)
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def test_the_benchmark_pose_is_read_as_the_rotation_of_its_stored_landmarks(tmp_path):
    """The pose MAE compares facehub's (yaw, pitch, roll) with the benchmark's: the conversion must describe the
    rotation that moved the stored 3D landmarks, which a Procrustes fit recovers from the points alone. Angle by
    angle with the yaw's sign flipped (the evaluation's old reading) is right only for one angle at a time."""
    head = np.random.default_rng(3).normal(0.0, 40.0, size=(68, 3))  # a head in facehub's frame (y down, z out)
    height = 300.0
    for pose_radians in [(0.0, 0.5, 0.0), (0.3, 0.0, 0.0), (0.0, 0.0, 0.2), (0.25, -1.2, 0.35), (-0.2, 1.4, -0.4)]:
        up = head * [1.0, -1.0, 1.0]  # the model frame of 3DDFA: y up
        stored = 1.3 * up @ _3ddfa_rotation(*pose_radians).T + [150.0, 140.0, 20.0]
        stored[:, 1] = height + 1.0 - stored[:, 1]  # MATLAB's image: y down, 1-based
        _write_aflw_sample(tmp_path, "image00001", stored, pose_radians)
        sample = read_aflw2000_sample(tmp_path / "image00001.mat")
        fitted = umeyama(head, sample.landmarks68)
        assert fitted.scale == pytest.approx(1.3)
        np.testing.assert_allclose(rotation_matrix(*sample.facehub_pose), fitted.rotation, atol=1e-9)
        np.testing.assert_allclose(sample.facehub_pose, euler_from_rotation_matrix(fitted.rotation), atol=1e-6)
        pitch, yaw, roll = np.rad2deg(pose_radians)
        assert sample.pose == pytest.approx((yaw, pitch, roll))  # as stored
        sign_flipped = np.array([-yaw, pitch, roll])
        if np.count_nonzero(pose_radians) == 1:
            np.testing.assert_allclose(sample.facehub_pose, sign_flipped, atol=1e-9)
        else:  # a turned face tilted in its own frame: its roll is not facehub's roll
            assert np.abs(np.asarray(sample.facehub_pose) - sign_flipped).max() > 5.0
    assert facehub_pose(10.0, -30.0, 0.0) == pytest.approx((30.0, 10.0, 0.0))  # no roll: the same two turns


def test_aflw2000_reader_on_a_written_mat(tmp_path):
    landmarks = np.random.default_rng(1).uniform(10, 90, size=(68, 3))
    image = _write_aflw_sample(tmp_path, "image00042", landmarks, (0.1, -0.9, 0.2))
    (tmp_path / "image00043.mat").write_bytes(b"no photo next to this one")

    assert [p.name for p in find_aflw2000_samples(tmp_path)] == ["image00042.mat"]
    sample = read_aflw2000_sample(tmp_path / "image00042.mat")
    assert sample.image.shape == image.shape and np.abs(sample.image.astype(int) - image).mean() < 3  # JPEG
    np.testing.assert_allclose(sample.landmarks68[:, :2], landmarks[:, :2] - 0.5)  # MATLAB 1-based -> facehub
    np.testing.assert_allclose(sample.landmarks68[:, 2], landmarks[:, 2])
    np.testing.assert_allclose(sample.pose, np.rad2deg([-0.9, 0.1, 0.2]))  # (yaw, pitch, roll) degrees
    np.testing.assert_allclose(sample.translation, [10.0, 20.0, 30.0])
    assert sample.scale == pytest.approx(0.0012)
    same = read_aflw2000_sample(tmp_path / "image00042.jpg", pixel_origin="corner")  # from the photo's path
    np.testing.assert_allclose(same.landmarks68, landmarks)

    data = prn_eval.open_evaluation_data(tmp_path)
    assert data.kind == "aflw2000-3d" and data.count == 1
    face = next(iter(data.faces))
    assert face.yaw == pytest.approx(np.rad2deg(-0.9)) and face.mesh is None
    # the benchmark path end to end (a random tiny model; only the bookkeeping is checked)
    tiny = FaceReconstructionPipeline(prn=PRNDenseModel.from_preset("cpu-small", sample_size=32))
    evaluation = prn_eval.evaluate({"tiny": tiny}, prn_eval.open_evaluation_data(tmp_path), mediapipe=False,
                                   progress=False)
    assert evaluation.rows[0].nme.counts == [0, 1, 0] and np.isfinite(evaluation.rows[0].nme.bins[1])
    assert "dense NME" not in evaluation.table()
    assert prn_eval.eval_results(evaluation)["dataset"] == "aflw2000-3d"

    from scipy.io import savemat

    savemat(tmp_path / "broken.mat", {"pt2d": np.zeros((2, 21))})
    (tmp_path / "broken.jpg").write_bytes((tmp_path / "image00042.jpg").read_bytes())
    with pytest.raises(AFLW2000FormatError, match="pt3d_68"):
        read_aflw2000_sample(tmp_path / "broken.mat")


def test_prepared_photos_are_scored_against_mediapipe_landmarks(tmp_path):
    """A `facehub prepare --images` folder has no true geometry: its ground truth is the front-end's own 68
    landmarks, read back in the original photo's pixels, and MediaPipe's row is left out (0 by construction)."""
    import shutil

    from facehub.modeling.faces import FaceAnalyzer
    from facehub.modeling.faces.image_io import load_image
    from facehub.trainers.data.prepare import PrepareConfig, prepare

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "photos" / "obama.jpg", photos / "obama.jpg")
    prepare(PrepareConfig(images=photos, out=tmp_path / "prepared", size=96, uv_size=16))
    data = prn_eval.open_evaluation_data(tmp_path / "prepared")
    assert data.kind == "photos" and data.count == 1 and "MediaPipe" in data.name
    face = next(iter(data.faces))
    photo = load_image(photos / "obama.jpg")
    assert face.image.shape == photo.shape and face.mesh is None  # the original photo, not the 96 px crop
    found = FaceAnalyzer(compute_embedding=False)(photo)[0]
    np.testing.assert_allclose(face.landmarks68, found.landmarks68[:, :2], atol=0.05)
    assert face.yaw == pytest.approx(found.pose[0], abs=1e-3)

    tiny = FaceReconstructionPipeline(prn=PRNDenseModel.from_preset("cpu-small", sample_size=32))
    evaluation = prn_eval.evaluate({"tiny": tiny}, prn_eval.open_evaluation_data(tmp_path / "prepared"),
                                   progress=False)
    assert [row.label for row in evaluation.rows if row.measured] == ["tiny"]
    assert sum(evaluation.rows[0].nme.counts) == 1 and evaluation.rows[0].nme.all_faces > 0
    assert prn_eval.eval_results(evaluation)["dataset"] == "facehub-prepared-photos"


def test_yaw_bins_follow_table2():
    yaws = [0.0, 29.9, -30.0, 45.0, -59.99, 60.0, 90.0, -97.0]
    assert prn_eval.yaw_bin_index(yaws).tolist() == [0, 0, 1, 1, 1, 2, 2, 2]
    binned = prn_eval.nme_by_yaw([1.0, 3.0, 4.0, 6.0, np.nan, 7.0, 9.0, 11.0], yaws)
    assert binned.bins == [2.0, 5.0, 9.0] and binned.counts == [2, 2, 3]
    assert binned.mean == pytest.approx(16.0 / 3)  # Table 2's "mean": of the bin means
    assert binned.all_faces == pytest.approx(41.0 / 7) and binned.missed == 1
    # seed 003's own rows satisfy the same definition
    for bins, mean, _ in prn_eval.PAPER_ROWS.values():
        assert np.mean(bins) == pytest.approx(mean, abs=0.01)  # published to two decimals


def test_icp_recovers_a_rigid_motion():
    mesh = SyntheticFaceWorld(SyntheticWorldConfig(image_size=128, seed=5))[1]["dense_landmarks"].astype(np.float64)
    rotation, translation = rotation_matrix(9.0, -6.0, 4.0), np.array([3.0, -2.5, 1.5])
    moved = (mesh - mesh.mean(0)) @ rotation.T + mesh.mean(0) + translation
    shuffled = moved[np.random.default_rng(2).permutation(len(moved))]  # ICP needs no correspondences
    result = prn_eval.icp(shuffled, mesh)
    np.testing.assert_allclose(result.transform.rotation, rotation.T, atol=1e-8)
    np.testing.assert_allclose(result.transform.apply(moved), mesh, atol=1e-6)
    assert result.mean_distance < 1e-6
    dense_iod, dense_box = prn_eval.dense_nme_after_icp(moved, mesh)
    assert dense_iod < 1e-6 and dense_box < 1e-6
    # A non-rigid error survives the registration: 20% too deep a face keeps most of its error after rigid ICP
    # (normalised by the outer inter-ocular distance, in percent).
    deeper = mesh.copy()
    deeper[:, 2] *= 1.2
    iod = np.linalg.norm(landmarks68_from_mesh(mesh)[36] - landmarks68_from_mesh(mesh)[45])
    after_translation = 100 * np.abs(0.2 * (mesh[:, 2] - mesh[:, 2].mean())).mean() / iod
    assert 0.6 * after_translation < prn_eval.dense_nme_after_icp(deeper, mesh)[0] < after_translation


def test_learning_rate_steps_of_the_paper():
    assert [step_learning_rate_factor(s, 100, [0.5, 0.8], [1.0, 1e-2, 1e-4]) for s in (0, 49, 50, 79, 80, 99)] == [
        1.0, 1.0, 1e-2, 1e-2, 1e-4, 1e-4]
    config = load_config(CONFIGS / "prn-dense-paper.yaml")
    method = PRNDenseTraining(config)
    assert (config.train_batch_size, config.learning_rate, method.crop_size) == (16, 1e-4, 256)
    rates = [config.learning_rate * step_learning_rate_factor(s, config.max_steps, method.losses["lr_milestones"],
                                                              method.losses["lr_factors"])
             for s in (0, config.max_steps - 1)]
    assert rates == pytest.approx([1e-4, 1e-8])
    with pytest.raises(ValueError, match="losses.kind"):
        PRNDenseTraining(load_config(None, {"method": "prn_dense", "losses": {"kind": "l1"}}))
    with pytest.raises(ValueError, match=r"Unknown config key `data.flip` for method prn_dense; did you mean "
                                         r"`data.flip_probability`\?"):
        PRNDenseTraining(load_config(None, {"method": "prn_dense", "data": {"flip": True}}))


# --------------------------------------------------------------------------------------------------------------------
# Training items


def test_items_shapes_ranges_and_uv_target_convention(worlds):
    source = PreparedFaceSource(worlds / "train")
    plain = PositionMapFaces([(source, 1.0)], CROP, 96, {"augment": False}, seed=0)
    assert len(plain) == 32
    item = plain[5]
    assert item["image"].shape == (3, CROP, CROP) and item["image"].dtype == torch.float32
    assert -1.0 <= float(item["image"].min()) < 0.0 < float(item["image"].max()) <= 1.0
    assert item["uv_position_map"].shape == (3, 96, 96)  # any output size: the target comes from the mesh

    for index in range(4):
        view = plain.view(index)
        face = source.face(plain.locate(index)[1])
        # The target, taken back through the crop transform, is the ground-truth mesh of the photo.
        vertices = crop_units_to_image_positions(uv_position_map_to_mesh(view.target.transpose(1, 2, 0)),
                                                 view.source_to_crop, CROP)
        error = np.linalg.norm(vertices[:, :2] - face.mesh[:, :2], axis=-1)
        landmark_error = np.linalg.norm(landmarks68_from_mesh(vertices)[:, :2] - face.landmarks68, axis=-1)
        assert np.median(error) < 0.1 and landmark_error.mean() < 0.15  # pixels of a 64 px render
        depth_offset = vertices[:, 2] - face.mesh[:, 2]  # z: the same up to its origin (the deepest vertex)
        assert np.median(np.abs(depth_offset - np.median(depth_offset))) < 0.1
        assert abs(view.mesh[:, 2].min()) < 1e-9
        # the crop is the inference crop: PRNet's square of 1.6 x the landmark box, centred on the box
        landmarks = landmarks68_from_mesh(view.mesh)[:, :2]
        low, high = landmarks.min(0), landmarks.max(0)
        np.testing.assert_allclose((low + high) / 2, [CROP / 2, CROP / 2], atol=1e-6)
        assert (high - low).mean() * 1.6 == pytest.approx(CROP)

    jittered = PositionMapFaces([(source, 2.0)], CROP, CROP, {"profiling_probability": 0.5}, seed=3)
    assert len(jittered) == 64
    first = [jittered[i]["uv_position_map"] for i in range(3)]
    jittered.set_epoch(1)
    assert not torch.equal(first[0], jittered[0]["uv_position_map"])  # new draws every epoch...
    jittered.set_epoch(0)
    assert all(torch.equal(a, jittered[i]["uv_position_map"]) for i, a in enumerate(first))  # ...reproducible


def _uv_code_texture(size: int = 128) -> torch.Tensor:
    rows, cols = np.mgrid[0:size, 0:size]
    return torch.from_numpy(np.stack([(cols + 0.5) / size, (rows + 0.5) / size, np.full((size, size), 0.5)]))[
        None].float()


def _render_uv_code(
    mesh: np.ndarray, size: int, vertex_order: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, 3) image whose red / green are the UV coordinates of the surface seen at each pixel, and the
    face mask; with ``vertex_order``, vertex ``i`` carries the UV code of vertex ``vertex_order[i]``."""
    from facehub.modeling.geometry.render import FaceRenderer, OrthographicCamera
    from facehub.modeling.geometry.topology import FaceTopology

    topology = FaceTopology.default()
    uvs = topology.uvs if vertex_order is None else topology.uvs[vertex_order]
    out = FaceRenderer(size)(torch.from_numpy(np.asarray(mesh, np.float32))[None],
                             torch.from_numpy(topology.triangles), OrthographicCamera(),
                             uvs=torch.from_numpy(np.ascontiguousarray(uvs)), albedo_texture=_uv_code_texture())
    return out.image[0].permute(1, 2, 0).numpy(), out.mask[0, 0].numpy() > 0


def test_augmentation_keeps_image_and_target_consistent():
    """A face textured with its own UV coordinates is profiled, jittered and cropped; re-rendering the item's target
    mesh with the same texture must reproduce the augmented image: each surface point is where the target says."""
    import datasets
    from scipy.ndimage import binary_erosion

    from facehub.modeling.geometry.topology import FaceTopology

    row = SyntheticFaceWorld(SyntheticWorldConfig(image_size=128, max_yaw=10, max_pitch=5, max_roll=5, seed=3))[0]
    coded, _ = _render_uv_code(row["dense_landmarks"], 128)
    features = datasets.Features({
        "image": datasets.Image(), "landmarks68": datasets.Array2D((68, 2), "float32"),
        "dense_landmarks": datasets.Array2D((None, 3), "float32"),
        "pose": datasets.List(datasets.Value("float32"), length=3),
        "crop_to_image": datasets.Array2D((2, 3), "float32"), "source": datasets.Value("string")})
    table = datasets.Dataset.from_dict({
        "image": [(coded * 255 + 0.5).astype(np.uint8)], "landmarks68": [row["landmarks68"]],
        "dense_landmarks": [row["dense_landmarks"]], "pose": [row["pose"]], "crop_to_image": [row["crop_to_image"]],
        "source": ["uv-coded face"]}, features=features)
    size = 96
    options = {"profiling_probability": 1.0, "profiling_max_yaw": 70.0, "colour_jitter": 0.0, "flip_probability": 0.5}
    items = PositionMapFaces([(PreparedFaceSource(table), 6.0)], size, size, options, seed=1)
    unflipped = PositionMapFaces([(PreparedFaceSource(table), 6.0)], size, size, {**options, "flip_probability": 0.0},
                                 seed=1)
    mirror = mirror_vertex_map()
    uv_per_pixel = np.ptp(FaceTopology.default().uvs[:, 0])
    flips = []
    for index in range(len(items)):
        view = items.view(index)
        flips.append(view.flipped)
        turned = np.rad2deg(np.arctan2(view.rotation[0, 2], view.rotation[2, 2]))
        assert abs(turned) > 5.0  # profiled: the face was turned
        if view.flipped:  # the flip is the last draw: the same item unflipped, mirrored, vertex i <- its partner
            plain = unflipped.view(index)
            np.testing.assert_array_equal(view.image, plain.image[:, ::-1])
            np.testing.assert_allclose(view.mesh, plain.mesh[mirror] * [-1, 1, 1] + [size, 0, 0], atol=1e-4)
        # A flipped face shows vertex i where its partner's texture was: its code comes from the partner.
        rendered, mask = _render_uv_code(view.mesh, size, mirror if view.flipped else None)
        inside = binary_erosion(mask & (view.image.sum(-1) > 0), iterations=2)
        assert inside.sum() > 500
        pixels_per_uv = np.ptp(view.mesh[:, 0]) / uv_per_pixel
        error = np.median(np.abs(view.image[..., :2] / 255.0 - rendered[..., :2])[inside]) * pixels_per_uv
        shifted = view.mesh + np.array([1.5, 0.0, 0.0])  # control: a target off by 1.5 px is seen as such
        rendered_shifted, mask_shifted = _render_uv_code(shifted, size)
        both = inside & binary_erosion(mask_shifted, iterations=2)
        control = np.median(np.abs(view.image[..., :2] / 255.0 - rendered_shifted[..., :2])[both]) * pixels_per_uv
        assert error < 0.25 and control > 0.5, (index, error, control)
    assert any(flips) and not all(flips)


def test_mirror_vertex_map_pairs_the_68_landmarks():
    """The left-right vertex partners map each iBUG landmark onto its mirror landmark (jaw 1 <-> 17, eye corners,
    mouth corners, ...), so a flipped training face carries consistent 68-point labels."""
    mirror = mirror_vertex_map()
    assert np.array_equal(mirror[mirror], np.arange(468)) and (mirror == np.arange(468)).sum() == 28
    ibug_mirror = np.array(
        [*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46,
         39, 38, 37, 36, 41, 40, 54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65])
    row = SyntheticFaceWorld(SyntheticWorldConfig(image_size=128, max_yaw=0, max_pitch=0, max_roll=0, seed=5))[0]
    mesh = np.asarray(row["dense_landmarks"], dtype=np.float64)
    flipped = mesh[mirror] * [-1, 1, 1] + [128, 0, 0]
    expected = landmarks68_from_mesh(mesh)[ibug_mirror] * [-1, 1, 1] + [128, 0, 0]
    error = np.linalg.norm(landmarks68_from_mesh(flipped) - expected, axis=1)
    face_width = np.ptp(mesh[:, 0])
    assert error.max() < 0.02 * face_width, error.max() / face_width


# --------------------------------------------------------------------------------------------------------------------
# A short training run in the shared loop


@pytest.fixture
def one_torch_thread():
    """Run torch on one intra-op thread for the test. With two, OpenMP threads busy-wait at every barrier, and when
    another process shares this machine's two cores each training step here went from 0.14 s to ~10 s (measured);
    with one thread it takes ~0.22 s alone and ~0.25 s shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def test_short_training_run_lowers_nme_on_held_out_faces(worlds, tmp_path, one_torch_thread):
    config = load_config(None, {
        "method": "prn_dense", "output_dir": str(tmp_path / "run"), "report_to": "none", "seed": 0,
        "max_steps": 100, "train_batch_size": 8, "learning_rate": 2e-3, "checkpointing_steps": 10_000,
        "logging_steps": 50,
        "model": {"preset": "cpu-small", "sample_size": CROP},
        "data": {"sources": [str(worlds / "train")], "profiling_probability": 0.0},
        "losses": {"kind": "ssim", "lr_milestones": [0.7, 0.9], "lr_factors": [1.0, 0.3, 0.1]},
    })
    summary = train(PRNDenseTraining(config))
    assert summary["step"] == 100
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["loss"] < 0.6 * logged[0]["loss"]
    # The loop applies and logs the paper's steps: factor 1 until 70% of the run, 0.1 after 90%.
    assert [m["lr/main"] for m in logged] == pytest.approx([2e-3, 2e-4])

    trained = FaceReconstructionPipeline.from_pretrained(tmp_path / "run" / "export")
    torch.manual_seed(0)
    untrained = FaceReconstructionPipeline(prn=PRNDenseModel.from_preset("cpu-small", sample_size=CROP))
    data = prn_eval.open_evaluation_data(worlds / "held_out")
    evaluation = prn_eval.evaluate({"trained": trained, "untrained": untrained}, data, mediapipe=False,
                                   progress=False)
    print(evaluation.table())
    rows = {row.label: row for row in evaluation.rows}
    assert rows["trained"].nme.missed == 0 and sum(rows["trained"].nme.counts) == 8
    assert rows["trained"].nme.all_faces < 0.5 * rows["untrained"].nme.all_faces
    assert rows["trained"].dense_nme < 0.6 * rows["untrained"].dense_nme

    # `facehub eval prn_dense` on the exported model writes the table's files
    out = tmp_path / "eval"
    assert prn_eval.main(["--data", str(worlds / "held_out"), "--model", str(tmp_path / "run" / "export"),
                          "--out", str(out), "--no-mediapipe", "--single-pass"]) == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert results["task"] == "face-alignment" and results["dataset"] == "facehub-synthetic-world"
    assert results["metrics"]["nme_all_faces"] == pytest.approx(rows["trained"].nme.all_faces, rel=1e-3)
    assert (out / "nme_by_yaw.png").stat().st_size > 10_000
    table = json.loads((out / "results.json").read_text())["rows"]
    assert table[0]["counts"] == rows["trained"].nme.counts
    # --single-pass adds the model predicting once (no flip test) on the same faces: another reading, same count.
    assert table[1]["label"].endswith("(one pass)") and table[1]["counts"] == table[0]["counts"]
    assert table[1]["all_faces"] != pytest.approx(table[0]["all_faces"], rel=1e-4)
