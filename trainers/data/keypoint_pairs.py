"""Pairs of views of rigid 3D keypoint sets, with exact depths, for keypoint-registration methods.

Like faces, the shapes share a mean: a template of N points drawn once from an anisotropic Gaussian (by ``template_seed``),
plus a per-pair deformation of relative size ``shape_variation`` (by ``(seed, index)``). Each pair shows one shape
under two random head poses, scaled and shifted, then projected orthographically (the camera model of DepthNets eq. 1). The
source's true depths (z towards the camera, source pixels) come along for depth-correlation metrics. The synthetic
face world replaces the Gaussian shapes with morphable-model faces through the same item layout.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from facehub.modeling.geometry.rotations import rotation_matrix


class RigidKeypointPairs(Dataset):
    """``len`` pairs of views; item ``k`` is the same for every process and every epoch.

    Two datasets with the same ``template_seed`` and different ``seed`` are disjoint draws of the same shape
    distribution (a train and a held-out split).

    Items are dicts of float32 tensors: ``source_keypoints`` (N, 2), ``target_keypoints`` (N, 2) and
    ``source_depths`` (N,).
    """

    def __init__(
        self,
        num_pairs: int = 10_000,
        num_keypoints: int = 68,
        seed: int = 0,
        template_seed: int = 0,
        max_yaw: float = 60.0,
        max_pitch: float = 30.0,
        max_roll: float = 20.0,
        shape_axes: tuple[float, float, float] = (1.0, 1.2, 0.6),
        shape_variation: float = 0.15,
        noise_pixels: float = 0.0,
    ):
        if num_pairs <= 0 or num_keypoints < 4:
            raise ValueError(f"Need num_pairs > 0 and num_keypoints >= 4, got {num_pairs} and {num_keypoints}.")
        self.num_pairs, self.num_keypoints, self.seed = num_pairs, num_keypoints, seed
        self.max_angles = np.array([max_yaw, max_pitch, max_roll], dtype=np.float64)
        self.shape_axes = np.asarray(shape_axes, dtype=np.float64)
        self.noise_pixels = noise_pixels
        self.shape_variation = shape_variation
        self.template = np.random.default_rng([template_seed, 2**31]).normal(size=(num_keypoints, 3)) * self.shape_axes

    def __len__(self) -> int:
        return self.num_pairs

    def _view(self, rng: np.random.Generator, shape: np.ndarray) -> np.ndarray:
        yaw, pitch, roll = rng.uniform(-1.0, 1.0, size=3) * self.max_angles
        scale = rng.uniform(40.0, 60.0)
        shift = np.append(rng.uniform(100.0, 156.0, size=2), 0.0)
        points = scale * shape @ rotation_matrix(yaw, pitch, roll).T + shift
        if self.noise_pixels:
            points[:, :2] += rng.normal(scale=self.noise_pixels, size=(len(points), 2))
        return points

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.num_pairs:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        shape = self.template + self.shape_variation * rng.normal(size=(self.num_keypoints, 3)) * self.shape_axes
        source, target = self._view(rng, shape), self._view(rng, shape)
        return {
            "source_keypoints": torch.from_numpy(source[:, :2]).float(),
            "target_keypoints": torch.from_numpy(target[:, :2]).float(),
            "source_depths": torch.from_numpy(source[:, 2]).float(),
        }
