"""Rigid and similarity alignment of point sets (Procrustes / Umeyama)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Similarity:
    """``y = scale * rotation @ x + translation`` for column vectors x (apply to (N, D) rows with :meth:`apply`)."""

    scale: float
    rotation: np.ndarray  # (D, D), det +1
    translation: np.ndarray  # (D,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(points) @ self.rotation.T + self.translation

    def inverse(self) -> Similarity:
        rotation = self.rotation.T
        return Similarity(1.0 / self.scale, rotation, -(rotation @ self.translation) / self.scale)


def umeyama(source: np.ndarray, target: np.ndarray, with_scale: bool = True, weights: np.ndarray | None = None) -> Similarity:
    """Least-squares similarity (or rigid, ``with_scale=False``) transform taking ``source`` onto ``target``.

    Umeyama, "Least-squares estimation of transformation parameters between two point patterns", PAMI 1991
    (eq. 40-42): the rotation comes from the SVD of the cross-covariance, with the sign of the last singular vector
    flipped when needed so that the result is a rotation, never a reflection.

    Args:
        source, target: (N, D) corresponding points.
        weights: optional (N,) non-negative weights.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2:
        raise ValueError(f"Expected two (N, D) arrays of the same shape, got {source.shape} and {target.shape}.")
    n, dim = source.shape
    if n < dim:
        raise ValueError(f"Need at least {dim} points to align {dim}-D sets, got {n}.")
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
    mean_s, mean_t = w @ source, w @ target
    s, t = source - mean_s, target - mean_t
    covariance = (t * w[:, None]).T @ s
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(dim)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = (u * sign) @ vt
    variance = float(w @ (s**2).sum(axis=1))
    scale = float((singular * sign).sum() / variance) if with_scale else 1.0
    return Similarity(scale, rotation, mean_t - scale * rotation @ mean_s)


def procrustes_mean(
    shapes: list[np.ndarray],
    iterations: int = 5,
    with_scale: bool = True,
    fit_points: int | None = None,
    normalise: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Generalised Procrustes mean of corresponding (N, D) shapes.

    Starting from the first shape, align every shape onto the current mean with :func:`umeyama` (fitted on the first
    ``fit_points`` points, applied to all), average, optionally ``normalise`` the average, and repeat.
    """
    mean = shapes[0]
    for _ in range(iterations):
        aligned = [umeyama(s[:fit_points], mean[:fit_points], with_scale=with_scale).apply(s) for s in shapes]
        mean = np.mean(aligned, axis=0)
        if normalise is not None:
            mean = normalise(mean)
    return mean


def umeyama_batched(source, target):
    """:func:`umeyama` for a batch, in torch and differentiable: ``source`` (B, N, D) onto ``target`` (N, D) or
    (B, N, D). Returns ``(scale (B,), rotation (B, D, D), translation (B, D))`` with
    ``target ~ scale * rotation @ source + translation`` (equal weights; reflections excluded as in eq. 40-42)."""
    import torch

    target = target.to(source.dtype).expand_as(source)
    mean_s, mean_t = source.mean(dim=1, keepdim=True), target.mean(dim=1, keepdim=True)
    s, t = source - mean_s, target - mean_t
    covariance = t.transpose(1, 2) @ s / source.shape[1]
    u, singular, vt = torch.linalg.svd(covariance)
    sign = torch.ones_like(singular)
    sign[:, -1] = torch.sign(torch.linalg.det(u) * torch.linalg.det(vt))
    rotation = (u * sign[:, None, :]) @ vt
    variance = s.square().sum(dim=2).mean(dim=1)
    scale = (singular * sign).sum(dim=1) / variance
    translation = mean_t[:, 0] - scale[:, None] * (rotation @ mean_s[:, 0, :, None])[..., 0]
    return scale, rotation, translation
