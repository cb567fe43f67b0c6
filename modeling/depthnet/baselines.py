"""The two baselines of DepthNets' Table 1 (Moniz, Beckham et al. 2018, section 3.1, models 1 and 2).

1. :func:`register_affine_2d`: a 2D affine registration of the source keypoints onto the target, no depth at all.
2. :func:`register_with_template`: "a 3D average face template ... aligned to a front-facing face using Procrustes
   superimposition ... mapping the template face to each source face via Procrustes superimposition (to get a 3D face
   f) and then use an affine transformation from the 3D face f to the target face". Fitting a 3D template to 2D
   keypoints needs a camera: we fit the 3D-to-2D affine of eq. 3 from the template to the source keypoints, take the
   closest scaled orthographic camera (the two rows of the affine made orthogonal and of equal norm, the third axis
   their cross product), and read the source depths ``z_f`` off the rotated template. The 3D face is
   ``f = (x_s, y_s, z_f)``, registered onto the target with eq. 3, as DepthNet's depths are.

The template is a Procrustes mean of frontal 3D keypoint sets (:func:`keypoint_template`); by default, the 68
landmarks of facehub's morphable face model's mean shape (frontal, house frame: z towards the camera).
"""

from __future__ import annotations

import numpy as np
import torch

from facehub.modeling.geometry.affine import apply_affine_3d_to_2d, solve_affine_3d_to_2d
from facehub.modeling.geometry.procrustes import procrustes_mean


def _batched(points, width: int) -> tuple[torch.Tensor, bool]:
    tensor = torch.as_tensor(np.asarray(points, dtype=np.float64))
    single = tensor.dim() == 2
    tensor = tensor[None] if single else tensor
    if tensor.dim() != 3 or tensor.shape[-1] != width:
        raise ValueError(f"Expected (N, {width}) or (B, N, {width}) points, got shape {tuple(tensor.shape)}.")
    return tensor, single


def register_affine_2d(source_keypoints, target_keypoints) -> np.ndarray:
    """Model 1 of Table 1: the least-squares 2D affine from source to target keypoints, applied to the source.

    (N, 2) or (B, N, 2) pixel arrays in, registered source keypoints of the same shape out.
    """
    source, single = _batched(source_keypoints, 2)
    target, _ = _batched(target_keypoints, 2)
    flat = torch.cat([source, torch.zeros_like(source[..., :1])], dim=-1)  # z = 0: eq. 3 reduces to a 2D affine
    registered = apply_affine_3d_to_2d(solve_affine_3d_to_2d(flat, target), flat).numpy()
    return registered[0] if single else registered


def keypoint_template(frontal_keypoints3d: list[np.ndarray]) -> np.ndarray:
    """Procrustes mean of (N, 3) frontal keypoint sets, centred, with unit RMS radius (the baseline's template)."""

    def normalise(mean: np.ndarray) -> np.ndarray:
        centred = mean - mean.mean(axis=0)
        return centred / np.sqrt((centred**2).sum(axis=1).mean())

    return procrustes_mean([np.asarray(k, dtype=np.float64) for k in frontal_keypoints3d], normalise=normalise)


def default_template() -> np.ndarray:
    """(68, 3) frontal template: the 68 landmarks of the default morphable model's mean shape, normalised."""
    from facehub.modeling.geometry.morphable import MorphableFaceModel

    model = MorphableFaceModel.default()
    landmarks = model.landmarks68(model.mean_shape[None].float())[0].double().numpy()
    return keypoint_template([landmarks])


def template_depths(source_keypoints, template: np.ndarray | None = None) -> np.ndarray:
    """Source keypoint depths ``z_f`` read off the 3D template fitted to the source (see the module docstring).

    (N, 2) or (B, N, 2) pixels in; (N,) or (B, N) depths in source pixels (z towards the camera) out.
    """
    source, single = _batched(source_keypoints, 2)
    template_t = torch.as_tensor(default_template() if template is None else np.asarray(template, np.float64))
    if template_t.shape != (source.shape[1], 3):
        raise ValueError(f"The template has shape {tuple(template_t.shape)}; expected ({source.shape[1]}, 3).")
    points = template_t.expand(len(source), -1, -1)
    linear = solve_affine_3d_to_2d(points, source)[..., :3]  # (B, 2, 3) template -> source pixels
    # Closest scaled orthographic camera s [r1; r2]: the orthogonal polar factor of the 2x3 rows, mean singular value.
    u, singular, vh = torch.linalg.svd(linear, full_matrices=False)
    rows = u @ vh  # (B, 2, 3), orthonormal rows
    scale = singular.mean(dim=-1)
    third = torch.linalg.cross(rows[:, 0], rows[:, 1], dim=-1)  # the camera's z axis in the template frame
    # The template's x, y go to image x (right), y (down); z = x cross y points towards the camera, as in the house frame.
    depths = scale[:, None] * (points @ third[..., None])[..., 0]
    out = depths.numpy()
    return out[0] if single else out


def register_with_template(source_keypoints, target_keypoints, template: np.ndarray | None = None) -> np.ndarray:
    """Model 2 of Table 1: source keypoints with template depths, registered onto the target by eq. 3."""
    source, single = _batched(source_keypoints, 2)
    target, _ = _batched(target_keypoints, 2)
    depths = torch.as_tensor(template_depths(source.numpy(), template))
    if depths.dim() == 1:
        depths = depths[None]
    points3d = torch.cat([source, depths[..., None]], dim=-1)
    registered = apply_affine_3d_to_2d(solve_affine_3d_to_2d(points3d, target), points3d).numpy()
    return registered[0] if single else registered
