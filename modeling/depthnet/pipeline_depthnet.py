"""DepthNet inference: register source keypoints onto target keypoints (sections 2.2-2.3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.utils import BaseOutput

from facehub.modeling.depthnet.modeling_depthnet import DepthNetModel
from facehub.modeling.geometry.affine import apply_affine_3d_to_2d, solve_affine_3d_to_2d
from facehub.modeling.modeling_utils import FaceHubPipeline


@dataclass
class KeypointRegistration(BaseOutput):
    """Source keypoints registered onto a target.

    Attributes:
        depths: (N,) inferred source keypoint depths ``z_p`` in source pixels (scale and sign are those the model
            learnt; the affine absorbs both, section 2.3).
        affine: (2, 4) 3D-to-2D affine ``m`` of eq. 1, solved from the depths by eq. 3.
        registered: (N, 2) source keypoints mapped onto the target, ``m @ [x_s, y_s, z_p, 1]``.
    """

    depths: np.ndarray
    affine: np.ndarray
    registered: np.ndarray


def _as_batch(keypoints, name: str, device, dtype) -> torch.Tensor:
    array = torch.as_tensor(np.asarray(keypoints, dtype=np.float64), device=device).to(dtype)
    if array.dim() == 2:
        array = array[None]
    if array.dim() != 3 or array.shape[-1] != 2:
        raise ValueError(f"`{name}` must be (N, 2) or (B, N, 2) pixel coordinates, got shape {tuple(array.shape)}.")
    if not torch.isfinite(array).all():
        raise ValueError(f"`{name}` contains NaN or infinite coordinates.")
    return array


@torch.no_grad()
def register_keypoints(
    source_keypoints, target_keypoints, model: DepthNetModel, solve_affine: bool = True
) -> KeypointRegistration | list[KeypointRegistration]:
    """Infer source depths with ``model`` and map the source keypoints onto the target.

    Args:
        source_keypoints, target_keypoints: (N, 2) or (B, N, 2) pixel arrays (iBUG order for N = 68).
        model: a :class:`DepthNetModel`.
        solve_affine: solve the affine in closed form from the depths (eq. 3; sections 2.2 and 2.3). With
            ``False`` a model trained with ``formulation="explicit_affine"`` uses its own predicted affine (2.1).

    Returns:
        One :class:`KeypointRegistration` for (N, 2) input, a list for batched input.
    """
    param = next(model.parameters())
    source = _as_batch(source_keypoints, "source_keypoints", param.device, torch.float64)
    target = _as_batch(target_keypoints, "target_keypoints", param.device, torch.float64)
    if source.shape != target.shape:
        raise ValueError(f"Source and target keypoints differ in shape: {tuple(source.shape)} vs {tuple(target.shape)}.")
    was_training = model.training
    model.eval()
    try:
        out = model(source.to(param.dtype), target.to(param.dtype))
    finally:
        model.train(was_training)
    depths = out.depths.to(torch.float64)
    points3d = torch.cat([source, depths[..., None]], dim=-1)
    if solve_affine or out.affine is None:
        affine = solve_affine_3d_to_2d(points3d, target)
    else:
        affine = out.affine.to(torch.float64)
    registered = apply_affine_3d_to_2d(affine, points3d)
    results = [
        KeypointRegistration(depths=d.cpu().numpy(), affine=a.cpu().numpy(), registered=r.cpu().numpy())
        for d, a, r in zip(depths, affine, registered, strict=True)
    ]
    single = np.asarray(source_keypoints).ndim == 2
    return results[0] if single else results


class KeypointRegistrationPipeline(FaceHubPipeline):
    """DepthNet bundle: ``depth_net`` (:class:`DepthNetModel`) registering source keypoints onto targets.

    ``pipe(source_keypoints, target_keypoints)`` returns :class:`KeypointRegistration` (see
    :func:`register_keypoints`). The image-level pipelines (rotation, frontalization, swap) build on it.
    """

    model_cpu_offload_seq = "depth_net"

    def __init__(self, depth_net: DepthNetModel):
        super().__init__()
        self.register_modules(depth_net=depth_net)

    def __call__(self, source_keypoints, target_keypoints, solve_affine: bool = True):
        return register_keypoints(source_keypoints, target_keypoints, self.depth_net, solve_affine=solve_affine)
