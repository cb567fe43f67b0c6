"""Least-squares 3D-to-2D affine cameras (DepthNets, Moniz et al. 2018, eq. 2-3).

A 3D-to-2D affine ``m`` is a (2, 4) matrix ``[[m1 m2 m3 tx], [m4 m5 m6 ty]]`` mapping a 3D point ``(x, y, z)``
to ``(x', y') = m @ (x, y, z, 1)``: an affine camera followed by orthographic projection.
"""

from __future__ import annotations

import torch


def solve_affine_3d_to_2d(
    source_points: torch.Tensor,
    target_points: torch.Tensor,
    weights: torch.Tensor | None = None,
    rcond: float | None = None,
) -> torch.Tensor:
    """Solve ``m = (A^T A)^-1 A^T x_t`` (eq. 3) for a batch, differentiably.

    Eq. 2 stacks one row pair per keypoint; its two halves share the design matrix ``[x y z 1]``, so the 8-unknown
    system splits into two 4-unknown problems. We centre both point sets (which solves for the translation
    exactly), then solve the 3x3 normal equations with a Tikhonov term ``rcond * trace(C) / 3``. The term is
    negligible for well-spread points and keeps the solution finite and smooth when the keypoints are nearly
    coplanar (e.g. all predicted depths close to zero at the start of training), where an explicit inverse of
    ``A^T A`` would explode.

    Args:
        source_points: (B, N, 3) or (N, 3) depth-augmented source keypoints ``x_s`` (eq. 2).
        target_points: (B, N, 2) or (N, 2) target keypoints ``x_t``.
        weights: optional (B, N) non-negative per-keypoint weights (weighted least squares).
        rcond: relative ridge strength; default ``100 * eps`` of the dtype (1.2e-5 for float32, 2.2e-14 for
            float64), below the precision of the data itself.

    Returns:
        (B, 2, 4) affine matrices (or (2, 4) for unbatched input).
    """
    unbatched = source_points.dim() == 2
    if unbatched:
        source_points, target_points = source_points[None], target_points[None]
        weights = None if weights is None else weights[None]
    if source_points.shape[-1] != 3 or target_points.shape[-1] != 2:
        raise ValueError(
            f"Expected source (B, N, 3) and target (B, N, 2) points, got {tuple(source_points.shape)} and "
            f"{tuple(target_points.shape)}."
        )
    if source_points.shape[:-1] != target_points.shape[:-1]:
        raise ValueError(
            f"Source and target must have the same keypoints: {tuple(source_points.shape)} vs "
            f"{tuple(target_points.shape)}."
        )
    if source_points.shape[-2] < 4:
        raise ValueError(f"A 3D-to-2D affine needs at least 4 keypoints, got {source_points.shape[-2]}.")

    if rcond is None:
        rcond = 100 * torch.finfo(source_points.dtype).eps
    if weights is None:
        weights = torch.ones(source_points.shape[:-1], dtype=source_points.dtype, device=source_points.device)
    w = (weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-12))[..., None]  # (B, N, 1), sums to 1
    source_mean = (w * source_points).sum(dim=-2, keepdim=True)
    target_mean = (w * target_points).sum(dim=-2, keepdim=True)
    ps = source_points - source_mean
    pt = target_points - target_mean
    covariance = ps.transpose(-1, -2) @ (w * ps)  # (B, 3, 3) = A^T A restricted to the linear part
    cross = ps.transpose(-1, -2) @ (w * pt)  # (B, 3, 2) = A^T x_t
    trace = covariance.diagonal(dim1=-2, dim2=-1).sum(-1)
    ridge = (rcond * trace / 3).clamp_min(torch.finfo(ps.dtype).tiny)[..., None, None]
    eye = torch.eye(3, dtype=ps.dtype, device=ps.device)
    linear = torch.linalg.solve(covariance + ridge * eye, cross).transpose(-1, -2)  # (B, 2, 3)
    translation = target_mean.transpose(-1, -2) - linear @ source_mean.transpose(-1, -2)  # (B, 2, 1)
    affine = torch.cat([linear, translation], dim=-1)
    return affine[0] if unbatched else affine


def apply_affine_3d_to_2d(affine: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Map (B, N, 3) points through (B, 2, 4) affines: ``x_n = m @ [x_s y_s z_p 1]^T`` (section 2.1, step 4)."""
    return points @ affine[..., :3].transpose(-1, -2) + affine[..., 3][..., None, :]
