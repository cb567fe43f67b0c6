"""Differentiable renderer (PyTorch3D rasteriser), pose from a mesh and the face-profiling warp."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pytorch3d")

from facehub.modeling.geometry.morphable import SH_DC, MorphableFaceModel  # noqa: E402
from facehub.modeling.geometry.render import (  # noqa: E402
    FaceRenderer,
    OrthographicCamera,
    PerspectiveCamera,
    _rasterize_window,
    rasterize_pixels,
)
from facehub.modeling.geometry.rotations import rotation_matrix  # noqa: E402

SIZE = 96
NOSE_TIP = 4  # MediaPipe vertex at the nose tip (iBUG 31)


@pytest.fixture(scope="module")
def model():
    return MorphableFaceModel.default()


def _ortho():
    return OrthographicCamera(scale=SIZE / 200.0, center=(SIZE / 2.0, SIZE / 2.0))


def _unit_light():
    sh = torch.zeros(1, 3, 9)
    sh[:, :, 0] = 1.0 / SH_DC
    return sh


def test_mask_matches_projected_hull_and_depth_convention(model):
    from scipy.spatial import Delaunay

    verts = model.shape()
    out = FaceRenderer(SIZE)(verts, model.triangles, _ortho(), uvs=model.uvs, albedo_texture=model.albedo(),
                             sh_coeffs=_unit_light(), background=torch.ones(1, 3, SIZE, SIZE))
    mask = out.mask[0, 0].numpy() > 0
    uv, _ = _ortho().project(verts)
    centres = np.stack(np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5, indexing="xy"), -1).reshape(-1, 2)
    hull = (Delaunay(uv[0].numpy()).find_simplex(centres) >= 0).reshape(SIZE, SIZE)
    iou = (mask & hull).sum() / (mask | hull).sum()
    assert iou > 0.95 and (mask & ~hull).sum() == 0
    assert (out.image[0][:, ~torch.from_numpy(mask)] == 1).all()  # background kept
    # Depth = surface z (towards the camera): the nose tip is the nearest point.
    col, row = (uv[0, NOSE_TIP].numpy()).astype(int)
    depth = out.depth[0, 0]
    assert depth[row, col] == pytest.approx(verts[0, NOSE_TIP, 2].item(), abs=3.0)
    assert depth[row, col] > depth[mask].median() and depth[row, col] >= depth[mask].max() - 3.0


def test_dc_lighting_renders_albedo(model):
    out = FaceRenderer(64)(model.shape(), model.triangles, OrthographicCamera(64 / 200, (32, 32)),
                           uvs=model.uvs, albedo_texture=model.albedo(), sh_coeffs=_unit_light())
    unlit = FaceRenderer(64)(model.shape(), model.triangles, OrthographicCamera(64 / 200, (32, 32)),
                             uvs=model.uvs, albedo_texture=model.albedo())
    torch.testing.assert_close(out.image, unlit.image, atol=1e-5, rtol=1e-5)


def test_rotated_orthographic_render_matches_projection(model):
    rot = torch.from_numpy(rotation_matrix(30.0, 10.0, 0.0)).float()
    verts = model.shape() @ rot.T
    cam = _ortho()
    out = FaceRenderer(SIZE)(verts, model.triangles, cam)
    uv, _ = cam.project(verts)
    nose = uv[0, NOSE_TIP]
    assert nose[0] > SIZE / 2 + 5  # yaw > 0: the nose moves to the image's right
    # The rendered surface at the nose tip's projected pixel has the nose tip's depth ...
    col, row = nose.long().tolist()
    assert out.mask[0, 0, row, col] == 1
    assert out.depth[0, 0, row, col].item() == pytest.approx(verts[0, NOSE_TIP, 2].item(), abs=4.0)
    # ... and the nearest rendered pixel is where the front-most vertex projects.
    front = int(verts[0, :, 2].argmax())
    depth = out.depth[0, 0].masked_fill(out.mask[0, 0] == 0, -1e9)
    row, col = divmod(int(depth.argmax()), SIZE)
    assert abs(col + 0.5 - uv[0, front, 0].item()) <= 2.0 and abs(row + 0.5 - uv[0, front, 1].item()) <= 2.0


def test_perspective_camera_renders_face(model):
    cam = PerspectiveCamera(focal=1000.0 * 64 / 200, center=(32.0, 32.0), distance=1000.0)
    out = FaceRenderer(64)(model.shape(), model.triangles, cam, uvs=model.uvs, albedo_texture=model.albedo())
    assert 0.3 < out.mask.mean() < 0.7
    uv, _ = cam.project(model.shape())
    col, row = uv[0, NOSE_TIP].long().tolist()
    assert out.mask[0, 0, row, col] == 1 and out.depth[0, 0, row, col] > 0


@pytest.mark.parametrize("perspective", [False, True])
def test_cpu_tiles_match_one_naive_pass(model, perspective):
    """The CPU path rasterises tiles with only the triangles overlapping each; it must give exactly the triangle of
    one naive PyTorch3D pass over the whole image, the same barycentrics, and the same gradients."""
    torch.manual_seed(0)
    size = (80, 72)  # not a multiple of the tile: edge tiles are partial and non-square
    camera = PerspectiveCamera(focal=300.0, center=(36.0, 40.0), distance=900.0) if perspective else \
        OrthographicCamera(scale=72 / 200.0, center=(36.0, 40.0))
    vertices = model.shape(torch.randn(1, model.num_identity) * 0.5).requires_grad_(True)
    triangles = model.triangles
    uv, depth = camera.project(vertices)
    tiled_index, tiled_bary = rasterize_pixels(uv, depth, triangles, size, perspective=perspective, tile=16)
    naive_index, naive_bary = _rasterize_window(uv, depth, triangles, size, perspective, 0)
    assert (tiled_index >= 0).sum() > 0.3 * size[0] * size[1]
    assert torch.equal(tiled_index, naive_index)
    torch.testing.assert_close(tiled_bary, naive_bary, atol=1e-4, rtol=0)  # NDC shifts: float32 rounding
    weights = torch.rand(size[0], size[1], 3)
    (tiled_grad,) = torch.autograd.grad((tiled_bary * weights).sum(), vertices, retain_graph=True)
    (naive_grad,) = torch.autograd.grad((naive_bary * weights).sum(), vertices)
    assert tiled_grad.abs().sum() > 0
    torch.testing.assert_close(tiled_grad, naive_grad, atol=1e-4, rtol=1e-4)


def test_a_render_without_gradients_draws_what_pytorch3d_draws(model):
    """Vertices that need no gradient are rasterised by the z-buffer of zbuffer.py instead of PyTorch3D: the same
    triangle at every pixel, and colours and depths that differ only by float32 rounding (a render to uint8 can move
    a few pixels by one level). Gradients to albedo and lighting still flow, and a vertex that needs one still
    gets it through PyTorch3D."""
    torch.manual_seed(1)
    size = 128
    turned = model.shape(torch.randn(1, model.num_identity) * 0.7) @ torch.from_numpy(
        rotation_matrix(35.0, -10.0, 5.0)).float().T
    camera = OrthographicCamera(scale=size / 200.0, center=(size / 2.0, size / 2.0))
    sh = _unit_light().clone()
    sh[:, :, 2] = 0.5
    albedo = model.albedo().requires_grad_(True)
    fast = FaceRenderer(size)(turned, model.triangles, camera, uvs=model.uvs, albedo_texture=albedo, sh_coeffs=sh)
    moving = turned.clone().requires_grad_(True)
    slow = FaceRenderer(size)(moving, model.triangles, camera, uvs=model.uvs, albedo_texture=albedo, sh_coeffs=sh)
    assert (slow.face_index >= 0).sum() > 0.3 * size * size
    assert torch.equal(fast.face_index, slow.face_index)
    torch.testing.assert_close(fast.image, slow.image.detach(), atol=2e-3, rtol=0)
    torch.testing.assert_close(fast.depth, slow.depth.detach(), atol=5e-3, rtol=0)
    (albedo_grad,) = torch.autograd.grad(fast.image.mean(), albedo)
    assert albedo_grad.abs().sum() > 0
    (vertex_grad,) = torch.autograd.grad(slow.image.mean(), moving)
    assert vertex_grad.abs().sum() > 0


def test_gradient_flows_to_shape_coefficients(model):
    coeffs = torch.zeros(1, model.num_identity, requires_grad=True)
    exp = torch.zeros(1, model.num_expression, requires_grad=True)
    sh = _unit_light().clone()
    sh[:, :, 2] = 0.5
    out = FaceRenderer(64)(model.shape(coeffs, exp), model.triangles, OrthographicCamera(64 / 200, (32, 32)),
                           uvs=model.uvs, albedo_texture=model.albedo(), sh_coeffs=sh)
    out.image.mean().backward()
    assert coeffs.grad.abs().sum() > 0 and exp.grad.abs().sum() > 0


def test_pose_from_mesh_and_profiling_warp(model):
    from facehub.modeling.faces.pose import estimate_head_pose
    from facehub.modeling.geometry.profiling import pose_from_mesh, rotate_face

    rot = rotation_matrix(20.0, -10.0, 5.0)
    verts = model.mean_shape.numpy() @ rot.T * 0.5 + np.array([64.0, 64.0, 0.0])
    yaw, pitch, roll = pose_from_mesh(verts)
    # A head pose in the FaceAnalyzer's frame: the model's rotation times its rest pose, which the analyzer's own
    # estimator (a fit of its canonical face) reads on the same mesh.
    assert (yaw, pitch, roll) == pytest.approx(model.head_pose((20.0, -10.0, 5.0)), abs=1e-6)
    assert (yaw, pitch, roll) == pytest.approx(estimate_head_pose(verts).angles, abs=1e-6)
    assert (yaw, pitch, roll) != pytest.approx((20.0, -10.0, 5.0), abs=1.0)  # the rest pose is not frontal
    assert model.rotation_for_head_pose((yaw, pitch, roll)) == pytest.approx((20.0, -10.0, 5.0), abs=1e-9)

    rng = np.random.default_rng(0)
    image = np.zeros((128, 128, 3), np.uint8)
    image[:] = rng.integers(0, 255, size=(1, 128, 3), dtype=np.uint8)  # vertical stripes: the texture shows motion
    out = rotate_face(image, verts, yaw=-10.0, pitch=-10.0)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[:, :5] == image[:, :5]).all()  # far from the face the image is kept
    assert np.abs(out.astype(int) - image).mean() > 1.0  # the face region changed
    same = rotate_face(image, verts, yaw=20.0, pitch=-10.0)  # the current pose: nearly unchanged
    assert np.abs(same.astype(int) - image).mean() < np.abs(out.astype(int) - image).mean()
