"""Morphable face model: default instance, bases, SH lighting, BFM .mat loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facehub.modeling.geometry.morphable import SH_DC, MorphableFaceModel, sh_shading


@pytest.fixture(scope="module")
def model():
    return MorphableFaceModel.default()


def test_default_model_shapes_and_mean(model):
    assert model.mean_shape.shape == (468, 3) and model.num_identity == 40 and 10 <= model.num_expression <= 20
    assert model.albedo_mean.shape[0] == 3 and model.albedo_space == "uv"
    assert torch.equal(model.shape(torch.zeros(2, 40), torch.zeros(2, model.num_expression))[1], model.mean_shape)
    assert model.mean_shape.abs().mean(0)[2] > 0  # 3D
    width = (model.mean_shape[:, 0].max() - model.mean_shape[:, 0].min()).item()
    assert 100 < width < 200  # millimetres
    assert torch.allclose(model.mean_shape.mean(0), torch.zeros(3), atol=1e-3)


def test_bases_orthogonal_and_change_shape(model):
    for basis in (model.id_basis,):
        flat = basis.reshape(basis.shape[0], -1)
        unit = flat / flat.norm(dim=1, keepdim=True)
        gram = unit @ unit.T
        assert (gram - torch.eye(len(gram))).abs().max() < 1e-3
    for k in range(model.num_identity):
        coeffs = torch.zeros(1, model.num_identity)
        coeffs[0, k] = 1.0
        assert (model.shape(coeffs) - model.mean_shape).norm(dim=-1).max() > 0.1  # mm
    for k in range(model.num_expression):
        coeffs = torch.zeros(1, model.num_expression)
        coeffs[0, k] = 1.0
        assert (model.shape(exp_coeffs=coeffs) - model.mean_shape).norm(dim=-1).max() > 0.5


def test_albedo(model):
    tex = model.albedo(torch.zeros(1, model.num_albedo))
    assert torch.allclose(tex[0], model.albedo_mean.clamp(0, 1))
    assert 0.2 < model.albedo_mean.mean() < 0.9


def test_sh_dc_term_gives_uniform_shading():
    normals = torch.nn.functional.normalize(torch.randn(1, 50, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    coeffs = torch.zeros(1, 3, 9)
    coeffs[0, :, 0] = torch.tensor([1.0, 0.5, 2.0])
    shade = sh_shading(normals, coeffs)
    expected = np.pi * 0.282095 * np.array([1.0, 0.5, 2.0])
    assert abs(SH_DC - np.pi * 0.282095) < 1e-9
    np.testing.assert_allclose(shade[0].numpy(), np.broadcast_to(expected, (50, 3)), rtol=1e-6)
    coeffs[0, :, 2] = 1.0  # a light along +z brightens normals facing the camera
    shade = sh_shading(torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]]), coeffs)
    assert (shade[0, 0] > shade[0, 1]).all()


def test_save_load_round_trip(model, tmp_path):
    model.save(tmp_path / "m.safetensors")
    again = MorphableFaceModel.load(tmp_path / "m.safetensors")
    assert torch.equal(again.id_basis, model.id_basis) and again.expression_names == model.expression_names


def _tiny_mesh():
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.2]], dtype=np.float64) * 1e5
    tri = np.array([[1, 2, 3], [2, 4, 3]])  # 1-based, counter-clockwise seen from +z with y up
    return verts, tri


def test_from_bfm_mat_2009_layout(tmp_path):
    from scipy.io import savemat

    verts, tri = _tiny_mesh()
    rng = np.random.default_rng(0)
    pcs = rng.normal(size=(12, 3))
    savemat(tmp_path / "01_MorphableModel.mat", {
        "shapeMU": verts.reshape(-1, 1), "shapePC": pcs, "shapeEV": np.array([[2.0], [1.0], [0.5]]),
        "texMU": np.full((12, 1), 128.0), "texPC": rng.normal(size=(12, 2)), "texEV": np.array([[3.0], [1.0]]),
        "tl": tri.astype(np.float64),
    })
    m = MorphableFaceModel.from_bfm_mat(tmp_path / "01_MorphableModel.mat")
    assert m.mean_shape.shape == (4, 3) and m.num_identity == 3 and m.num_expression == 0 and m.albedo_space == "vertex"
    np.testing.assert_allclose(m.id_basis[0].numpy(), pcs[:, 0].reshape(4, 3) * [1, -1, 1] * 2.0 * 1e-3, rtol=1e-5)
    assert m.triangles.min() == 0 and m.triangles.max() == 3
    v, t = m.mean_shape.numpy(), m.triangles.numpy()
    assert (np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])[:, 2] > 0).all()
    np.testing.assert_allclose(m.albedo_mean.numpy(), 128 / 255, rtol=1e-6)
    # Not MediaPipe's 468 vertices: no canonical face to compare with, so its rotation is its head pose.
    np.testing.assert_array_equal(m.rest_pose_rotation, np.eye(3))
    assert m.head_pose((20.0, -5.0, 3.0)) == pytest.approx((20.0, -5.0, 3.0), abs=1e-9)


def test_the_default_models_rest_pose_is_read_pitched_up_by_the_analyzers_estimator(model):
    """Head poses are read in the FaceAnalyzer's frame; the model's rest pose (its area-weighted normal along the
    view) is 3.3 degrees up in it, so rotation coefficients and head poses differ by that turn, both ways."""
    from facehub.modeling.faces.pose import estimate_head_pose

    rest = model.head_pose((0.0, 0.0, 0.0))
    assert rest == pytest.approx(estimate_head_pose(model.mean_shape.double().numpy()).angles, abs=1e-9)
    assert 2.5 < rest[1] < 4.0 and abs(rest[0]) < 0.5 and abs(rest[2]) < 0.5
    for rotation in ((0.0, 0.0, 0.0), (40.0, -15.0, 10.0), (-70.0, 20.0, -5.0)):
        pose = model.head_pose(rotation)
        assert model.rotation_for_head_pose(pose) == pytest.approx(rotation, abs=1e-9)


def test_from_bfm_mat_deep3d_layout(tmp_path):
    from scipy.io import savemat

    verts, tri = _tiny_mesh()
    rng = np.random.default_rng(1)
    savemat(tmp_path / "BFM_model_front.mat", {
        "meanshape": verts.reshape(1, -1) * 1e-5, "idBase": rng.normal(size=(12, 5)), "exBase": rng.normal(size=(12, 4)),
        "meantex": np.full((1, 12), 100.0), "texBase": rng.normal(size=(12, 6)), "tri": tri.astype(np.float64),
        "keypoints": np.array([[1, 2, 3, 4]], dtype=np.float64),
    })
    m = MorphableFaceModel.from_bfm_mat(tmp_path / "BFM_model_front.mat")
    assert (m.num_identity, m.num_expression, m.num_albedo) == (5, 4, 6)
    assert m.landmark_weights.shape == (4, 4) and torch.equal(m.landmark_weights, torch.eye(4))
    width = (m.mean_shape[:, 0].max() - m.mean_shape[:, 0].min()).item()
    assert width == pytest.approx(100.0)  # 1 unit (1e-1 m) -> 100 mm
    with pytest.raises(KeyError, match="neither"):
        savemat(tmp_path / "bad.mat", {"foo": np.zeros(3)})
        MorphableFaceModel.from_bfm_mat(tmp_path / "bad.mat")
