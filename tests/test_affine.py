"""The pseudo-inverse 3D-to-2D affine solver (DepthNets eq. 2-3) against numpy's least squares."""

import numpy as np
import pytest
import torch

from facehub.modeling.geometry.affine import apply_affine_3d_to_2d, solve_affine_3d_to_2d


def eq2_lstsq(points3d: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Build eq. 2's (2K, 8) system literally and solve it with numpy; return m as (2, 4)."""
    k = len(points3d)
    a = np.zeros((2 * k, 8))
    a[0::2, 0:3] = points3d
    a[1::2, 3:6] = points3d
    a[0::2, 6] = 1
    a[1::2, 7] = 1
    m, *_ = np.linalg.lstsq(a, targets.reshape(-1), rcond=None)
    return np.array([[m[0], m[1], m[2], m[6]], [m[3], m[4], m[5], m[7]]])


def test_matches_numpy_lstsq_of_eq2():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(5, 68, 3)) * [40, 50, 25] + [128, 128, 0]
    targets = rng.normal(size=(5, 68, 2)) * 30 + 100
    solved = solve_affine_3d_to_2d(torch.from_numpy(points), torch.from_numpy(targets)).numpy()
    for b in range(5):
        np.testing.assert_allclose(solved[b], eq2_lstsq(points[b], targets[b]), rtol=1e-6, atol=1e-6)


def test_recovers_a_known_affine_exactly():
    rng = np.random.default_rng(1)
    points = torch.from_numpy(rng.normal(size=(68, 3)) * 50)
    affine = torch.tensor([[0.9, -0.2, 0.4, 12.0], [0.1, 1.1, -0.3, -7.0]], dtype=torch.float64)
    targets = apply_affine_3d_to_2d(affine[None], points[None])[0]
    torch.testing.assert_close(solve_affine_3d_to_2d(points, targets), affine, rtol=1e-6, atol=1e-6)


def test_coplanar_points_stay_finite_and_fit_like_a_2d_affine():
    """All depths (nearly) equal: A^T A is singular, an explicit inverse would explode."""
    rng = np.random.default_rng(2)
    xy = rng.normal(size=(68, 2)) * 40
    targets = xy @ np.array([[1.1, 0.2], [-0.1, 0.9]]) + 5 + rng.normal(size=(68, 2))
    depths = torch.full((68, 1), 3.0, dtype=torch.float64) + 1e-12 * torch.randn(68, 1, dtype=torch.float64)
    depths.requires_grad_(True)
    points = torch.cat([torch.from_numpy(xy), depths], dim=1)
    affine = solve_affine_3d_to_2d(points, torch.from_numpy(targets))
    assert torch.isfinite(affine).all()
    residual = (apply_affine_3d_to_2d(affine[None], points[None])[0] - torch.from_numpy(targets)).pow(2).sum()
    # the best 2D affine fit of the same data, from numpy
    design = np.c_[xy, np.ones(68)]
    fit, *_ = np.linalg.lstsq(design, targets, rcond=None)
    expected = ((design @ fit - targets) ** 2).sum()
    assert residual.item() == pytest.approx(expected, rel=1e-6)
    residual.backward()
    assert torch.isfinite(depths.grad).all()


def test_weights_ignore_an_outlier():
    rng = np.random.default_rng(3)
    points = torch.from_numpy(rng.normal(size=(20, 3)) * 30)
    affine = torch.tensor([[1.0, 0.1, 0.5, 3.0], [-0.2, 0.8, 0.2, 1.0]], dtype=torch.float64)
    targets = apply_affine_3d_to_2d(affine[None], points[None])[0]
    targets[4] += 500.0
    weights = torch.ones(20, dtype=torch.float64)
    weights[4] = 0
    torch.testing.assert_close(solve_affine_3d_to_2d(points, targets, weights[None][0]), affine, rtol=1e-6, atol=1e-6)
    assert (solve_affine_3d_to_2d(points, targets) - affine).abs().max() > 1.0


def test_rejects_bad_shapes_with_a_clear_message():
    with pytest.raises(ValueError, match=r"source \(B, N, 3\)"):
        solve_affine_3d_to_2d(torch.zeros(1, 10, 2), torch.zeros(1, 10, 2))
    with pytest.raises(ValueError, match="at least 4 keypoints"):
        solve_affine_3d_to_2d(torch.zeros(1, 3, 3), torch.zeros(1, 3, 2))
