"""Keypoint and depth metrics shared by the evaluations.

- :func:`interocular_distance`: distance between the outer eye corners (iBUG points 37 and 46, 0-based 36 and 45);
  :func:`eye_centre_distance`: between the eye centres (means of iBUG 37-42 and 43-48).
- :func:`keypoint_mse` / :func:`keypoint_mse_norm`: DepthNets' Table 1 metrics (Moniz, Beckham et al. 2018, 3.1):
  the mean over keypoints of the squared distance between registered and ground-truth target keypoints, in pixels^2
  and divided by the squared inter-ocular distance of the target.
- :func:`depth_correlation`: DepthCorr of DepthNets' Table 2, as a mean over keypoints (the paper's "trace" is this
  times the number of keypoints).
- :func:`nme`: the normalised mean error of face alignment (mean point-to-point distance over sqrt(w * h) of the
  ground-truth landmarks' bounding box, as AFLW2000-3D evaluations report it).
"""

from __future__ import annotations

import numpy as np

OUTER_EYE_CORNERS = (36, 45)


def interocular_distance(keypoints: np.ndarray) -> np.ndarray:
    """(..., 68, 2) iBUG keypoints -> (...,) outer-eye-corner distance."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    return np.linalg.norm(keypoints[..., OUTER_EYE_CORNERS[0], :2] - keypoints[..., OUTER_EYE_CORNERS[1], :2], axis=-1)


def eye_centre_distance(keypoints: np.ndarray) -> np.ndarray:
    """(..., 68, 2) iBUG keypoints -> (...,) distance between the eye centres."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    return np.linalg.norm(keypoints[..., 36:42, :2].mean(-2) - keypoints[..., 42:48, :2].mean(-2), axis=-1)


def keypoint_mse(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., N, 2) -> (...,) mean squared keypoint distance in pixels^2."""
    return ((np.asarray(predicted, np.float64) - np.asarray(target, np.float64)) ** 2).sum(-1).mean(-1)


def keypoint_mse_norm(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (...,) :func:`keypoint_mse` divided by the target's squared inter-ocular distance."""
    return keypoint_mse(predicted, target) / interocular_distance(target) ** 2


def _standardise_per_face(depths: np.ndarray) -> np.ndarray:
    depths = np.asarray(depths, dtype=np.float64)
    centred = depths - depths.mean(axis=1, keepdims=True)
    return centred / np.maximum(centred.std(axis=1, keepdims=True), 1e-12)


def depth_correlation(predicted: np.ndarray, truth: np.ndarray) -> float:
    """DepthCorr of (P, N) inferred and true depths of N keypoints on P faces.

    Each face's depths are centred and scaled to unit spread (removing the scale and offset no keypoint method can
    know); then, for each keypoint, the Pearson correlation across the P faces between its inferred and true depth;
    the result is the mean over keypoints (in [-1, 1]; 1 = depths right up to scale and offset).
    """
    predicted, truth = _standardise_per_face(predicted), _standardise_per_face(truth)
    if predicted.shape != truth.shape or predicted.ndim != 2 or len(predicted) < 2:
        raise ValueError(f"Need (P, N) arrays of the same shape with P >= 2, got {predicted.shape} and {truth.shape}.")
    p = predicted - predicted.mean(axis=0)
    t = truth - truth.mean(axis=0)
    denominator = np.sqrt((p**2).sum(axis=0) * (t**2).sum(axis=0))
    return float(np.mean((p * t).sum(axis=0) / np.maximum(denominator, 1e-12)))


def nme(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., N, D) -> (...,) mean 2D point error over sqrt(w * h) of the target's bounding box (a fraction; x100 for %)."""
    predicted = np.asarray(predicted, np.float64)[..., :2]
    target = np.asarray(target, np.float64)[..., :2]
    size = np.sqrt(np.prod(target.max(axis=-2) - target.min(axis=-2), axis=-1))
    return np.linalg.norm(predicted - target, axis=-1).mean(-1) / size
