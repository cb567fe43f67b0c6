"""Pairs of views of rigid 3D keypoint sets, with exact depths, for keypoint-registration methods.

Like faces, the shapes share a mean: a template of N points drawn once from an anisotropic Gaussian (by ``template_seed``),
plus a per-pair deformation of relative size ``shape_variation`` (by ``(seed, index)``). Each pair shows one shape
under two random head poses, scaled and shifted, then projected orthographically (the camera model of DepthNets eq. 1). The
source's true depths (z towards the camera, source pixels) come along for depth-correlation metrics.

:class:`MorphableKeypointPairs` draws the same items from faces: the 68 landmarks of morphable-model faces
(:meth:`facehub.modeling.geometry.MorphableFaceModel.default`; the geometry of the synthetic face world without its
rendering), with random identity, expression and pose, and exact depths for both views (the ground truth that
DepthNet+GAN's discriminator sees as "real").
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


class MorphableKeypointPairs(Dataset):
    """``num_pairs`` pairs of views of morphable-model faces' 68 landmarks, orthographically projected.

    Pair ``k`` draws an identity (shape coefficients with standard deviation ``identity_scale``), one expression per
    view (``expression_scale``; the same for both views with ``same_expression``), and for each view a head pose
    uniform in ``[-max, max]`` degrees, a face width of ``face_width`` pixels (+-25%) and a position in a 256-pixel
    frame; keypoints get Gaussian noise of ``noise`` face widths (a detector's error). Train and held-out splits are
    different ``seed`` values. Items: ``source_keypoints``, ``target_keypoints`` (68, 2), ``source_depths``,
    ``target_depths`` (68,), ``source_pose``, ``target_pose`` (3,), float32.
    """

    def __init__(
        self,
        num_pairs: int = 10_000,
        seed: int = 0,
        max_yaw: float = 75.0,
        max_pitch: float = 30.0,
        max_roll: float = 20.0,
        identity_scale: float = 1.0,
        expression_scale: float = 0.6,
        same_expression: bool = False,
        face_width: float = 120.0,
        noise: float = 0.005,
        model=None,
    ):
        if num_pairs <= 0:
            raise ValueError(f"Got {num_pairs} for `num_pairs`; expected a positive number of pairs.")
        from facehub.modeling.geometry.morphable import MorphableFaceModel

        model = model if model is not None else MorphableFaceModel.default()
        weights = model.landmark_weights.double()
        self.mean = (weights @ model.mean_shape.double()).numpy()  # (68, 3)
        self.identity_basis = torch.einsum("lv,kvd->kld", weights, model.id_basis.double()).numpy()
        self.expression_basis = torch.einsum("lv,kvd->kld", weights, model.exp_basis.double()).numpy()
        self.width_unit = float(np.ptp(model.mean_shape[:, 0].double().numpy()))
        self.num_pairs, self.seed = num_pairs, seed
        self.max_angles = np.array([max_yaw, max_pitch, max_roll], dtype=np.float64)
        self.identity_scale, self.expression_scale = identity_scale, expression_scale
        self.same_expression, self.face_width, self.noise = same_expression, face_width, noise

    def __len__(self) -> int:
        return self.num_pairs

    def _draw(self, index: int) -> dict[str, np.ndarray]:
        """Item ``index``'s random numbers, drawn from its own generator: the identity and the two expressions'
        coefficients, then per view its pose, size factor, position and keypoint noise."""
        if not 0 <= index < self.num_pairs:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index, 7])
        draws = {"identity": rng.normal(scale=self.identity_scale, size=len(self.identity_basis))}
        draws["source_expression"] = rng.normal(scale=self.expression_scale, size=len(self.expression_basis))
        draws["target_expression"] = (draws["source_expression"] if self.same_expression else
                                      rng.normal(scale=self.expression_scale, size=len(self.expression_basis)))
        for view in ("source", "target"):
            draws[f"{view}_pose"] = rng.uniform(-1.0, 1.0, size=3) * self.max_angles
            draws[f"{view}_size"] = rng.uniform(0.75, 1.25)
            draws[f"{view}_shift"] = rng.uniform(96.0, 160.0, size=2)
            draws[f"{view}_noise"] = rng.normal(scale=self.noise * self.face_width, size=(len(self.mean), 2))
        return draws

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        """Items ``indices`` (what a DataLoader asks for one batch): each item's numbers come from its own generator
        (:meth:`_draw`), the geometry of the whole batch is computed at once."""
        draws = [self._draw(int(index)) for index in indices]
        batch = {key: np.stack([draw[key] for draw in draws]) for key in draws[0]}
        identity = self.mean + _combine(batch["identity"], self.identity_basis)
        item = {}
        for view in ("source", "target"):
            shape = identity + _combine(batch[f"{view}_expression"], self.expression_basis)
            scale = self.face_width * batch[f"{view}_size"] / self.width_unit
            rotation = rotation_matrix(*batch[f"{view}_pose"].T)
            points = scale[:, None, None] * (shape - shape.mean(axis=1, keepdims=True)) @ rotation.transpose(0, 2, 1)
            points[..., :2] += batch[f"{view}_shift"][:, None, :] + batch[f"{view}_noise"]
            item[f"{view}_keypoints"], item[f"{view}_depths"] = points[..., :2], points[..., 2]
            item[f"{view}_pose"] = batch[f"{view}_pose"]
        tensors = {key: torch.from_numpy(np.ascontiguousarray(value)).float() for key, value in item.items()}
        return [{key: value[row] for key, value in tensors.items()} for row in range(len(indices))]


def _combine(coefficients: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """(B, L, 3) shapes ``sum_k coefficients[b, k] * basis[k]`` for (B, K) coefficients and a (K, L, 3) basis, as one
    matrix product (BLAS; NumPy's einsum loops over these axes)."""
    return (coefficients @ basis.reshape(len(basis), -1)).reshape(len(coefficients), *basis.shape[1:])
