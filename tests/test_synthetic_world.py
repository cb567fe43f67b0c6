"""The synthetic face world: deterministic, internally consistent ground truth, and the face front-end measured on it."""

import numpy as np
import pytest

from facehub.modeling.geometry.profiling import pose_from_mesh
from facehub.modeling.geometry.uv_maps import uv_position_map_to_mesh
from facehub.trainers.data.pairs import FacePairs
from facehub.trainers.data.schema import synthetic_features
from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig


@pytest.fixture(scope="module")
def world():
    return SyntheticFaceWorld(SyntheticWorldConfig(num_identities=4, views_per_identity=4, image_size=160, uv_size=96,
                                                   seed=1))


@pytest.fixture(scope="module")
def rows(world):
    return [world[i] for i in range(len(world))]


def test_world_is_a_function_of_its_seed(world, rows):
    again = SyntheticFaceWorld(world.config)
    np.testing.assert_array_equal(again[5]["image"], rows[5]["image"])
    other = SyntheticFaceWorld(SyntheticWorldConfig(**{**world.config.__dict__, "seed": 2}))
    assert not np.array_equal(other[5]["image"], rows[5]["image"])
    # views of one identity share its shape and albedo, not its pose or expression
    assert rows[4]["shape_coefficients"] == rows[5]["shape_coefficients"] != rows[0]["shape_coefficients"]
    assert rows[4]["pose"] != rows[5]["pose"] and rows[4]["expression_coefficients"] != rows[5]["expression_coefficients"]


def test_ground_truth_is_consistent(rows):
    for row in rows:
        dense, lms3d = row["dense_landmarks"], row["landmarks68_3d"]
        width = np.ptp(dense[:, 0])
        np.testing.assert_allclose(row["landmarks68"], lms3d[:, :2])
        # the UV position map holds the mesh: sampling it at the vertex UVs gives the vertices back
        back = uv_position_map_to_mesh(row["uv_position_map"].astype(np.float32))
        assert np.abs(back - dense).max() < 0.04 * width
        # the depth image shows the surface: at the nose tip pixel it equals the nose tip's z (facing the camera)
        x, y = np.round(lms3d[30, :2]).astype(int)
        assert float(row["depth"][y, x]) == pytest.approx(float(lms3d[30, 2]), abs=0.03 * float(width))
        # the face covers the image where the mesh projects: nose landmarks lie on rendered pixels (eye landmarks
        # border the mesh's open eye holes; beyond 40 degrees of yaw the nose is the face's outline)
        face = row["depth"] > 0
        nose = np.round(lms3d[27:36, :2]).astype(int)
        if abs(row["pose"][0]) < 40:
            assert face[nose[:, 1], nose[:, 0]].all()
        assert (dense[:, 2] >= 0).all() and row["depth"].min() >= 0
        # the pose is the rotation of the frontal mean: a rigid fit of the mean recovers it (identity and
        # expression make the fit inexact by a few degrees)
        assert np.abs(np.array(pose_from_mesh(dense)) - row["pose"]).max() < 5.0


def test_face_analyzer_on_rendered_faces(rows):
    """Landmark and pose error of the face front-end against exact ground truth (faces without hair or ears)."""
    from facehub.modeling.faces import FaceAnalyzer

    analyzer = FaceAnalyzer(compute_embedding=False)
    nme, yaw_error, found = [], [], 0
    for row in rows:
        faces = analyzer(row["image"])
        if not faces:
            continue
        found += 1
        truth = row["landmarks68"]
        box = np.ptp(truth, axis=0)
        nme.append(np.linalg.norm(faces[0].landmarks68 - truth, axis=1).mean() / np.sqrt(box[0] * box[1]))
        yaw_error.append(faces[0].pose[0] - row["pose"][0])
        if abs(row["pose"][0]) > 20:
            assert np.sign(faces[0].pose[0]) == np.sign(row["pose"][0])  # never the wrong way round
    assert found >= 0.9 * len(rows)
    assert np.mean(nme) < 0.08, np.mean(nme)
    assert np.mean(np.abs(yaw_error)) < 10.0, yaw_error


def test_world_as_a_dataset_with_the_prepare_schema(world, tmp_path):
    small = SyntheticFaceWorld(SyntheticWorldConfig(num_identities=2, views_per_identity=2, image_size=64, uv_size=32))
    data = small.to_dataset()
    assert data.features == synthetic_features(32, 64)
    assert len(data) == 4 and data["identity"] == [0, 0, 1, 1]
    row = data.with_format("numpy")[3]
    assert row["image"].shape == (64, 64, 3) and row["landmarks68_3d"].shape == (68, 3)
    pairs = FacePairs(data.with_format("numpy"), data["identity"], mode="same_identity", num_pairs=200)
    assert {pairs.pair(k) for k in range(len(pairs))} == {(0, 1), (1, 0), (2, 3), (3, 2)}


def test_the_cached_world_is_keyed_by_the_code_that_renders_it(tmp_path, monkeypatch):
    """datasets caches a generated world by its generator and arguments; the world's fingerprint adds the renderer's
    source and the model's file, so code that renders differently never gets an older rendering from the cache."""
    import shutil
    from pathlib import Path

    from facehub.modeling import geometry
    from facehub.trainers.data.synthetic_world import rendering_fingerprint

    config = SyntheticWorldConfig(num_identities=1, views_per_identity=1, image_size=32, uv_size=8)
    first = rendering_fingerprint(config)
    assert rendering_fingerprint(SyntheticWorldConfig(**{**config.__dict__})) == first
    assert rendering_fingerprint(SyntheticWorldConfig(**{**config.__dict__, "seed": 1})) != first
    data = SyntheticFaceWorld(config).to_dataset()
    assert data._fingerprint == first
    # The same config rendered by a changed renderer (a copy of the geometry package with one line added).
    copy = tmp_path / "geometry"
    shutil.copytree(Path(geometry.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(geometry, "__file__", str(copy / "__init__.py"))
    assert rendering_fingerprint(config) == first  # the same files in another place
    with (copy / "render.py").open("a") as handle:
        handle.write("# a change\n")
    assert rendering_fingerprint(config) != first


def test_prepare_cli_renders_the_synthetic_world(tmp_path):
    import json
    import subprocess
    import sys

    import datasets

    out = tmp_path / "world"
    run = subprocess.run([sys.executable, "-m", "facehub.apps.cli", "prepare", "--synthetic", "--identities", "2",
                          "--views", "3", "--size", "64", "--uv-size", "32", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    data = datasets.load_from_disk(str(out / "dataset"))
    assert len(data) == 6 and data.features == synthetic_features(32, 64)
    assert json.loads((out / "report.json").read_text())["kept"] == 6
    assert (out / "pose_distribution.png").stat().st_size > 10_000
    both = subprocess.run([sys.executable, "-m", "facehub.apps.cli", "prepare", "--synthetic", "--images", str(tmp_path),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert both.returncode == 2 and "Give either --images DIR (photos) or --synthetic" in both.stderr
