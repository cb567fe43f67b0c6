"""DepthNet training recipe (Moniz, Beckham et al. 2018, sections 2.1 and 2.3) for the shared loop.

Run: ``accelerate launch -m facehub.trainers.depthnet --config FILE`` or ``facehub train depthnet --config FILE``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from facehub.modeling.depthnet import DEPTHNET_PRESETS, DepthNetModel, KeypointRegistrationPipeline
from facehub.modeling.geometry.affine import apply_affine_3d_to_2d, solve_affine_3d_to_2d
from facehub.trainers.core import StepContext, TrainingMethod
from facehub.trainers.data.keypoint_pairs import RigidKeypointPairs

DATA_SOURCES = {"rigid_pairs": RigidKeypointPairs}


def registration_loss(
    source_keypoints: torch.Tensor, target_keypoints: torch.Tensor, depths: torch.Tensor, affine: torch.Tensor | None
) -> torch.Tensor:
    """Keypoint registration loss of eq. 1 (explicit ``affine``) or section 2.3 (``affine=None``: eq. 3 inside).

    ``sum_i || x_t^i - m [x_s^i, y_s^i, z_p^i, 1] ||^2``, averaged over keypoints and divided by the target's squared
    RMS radius so that faces of every size weigh the same (the paper's sum of squares up to a per-pair constant).
    """
    points3d = torch.cat([source_keypoints, depths[..., None]], dim=-1)
    if affine is None:
        affine = solve_affine_3d_to_2d(points3d, target_keypoints)
    registered = apply_affine_3d_to_2d(affine, points3d)
    centred = target_keypoints - target_keypoints.mean(dim=-2, keepdim=True)
    scale2 = centred.pow(2).sum(-1).mean(-1).clamp_min(1e-6)
    return ((registered - target_keypoints).pow(2).sum(-1).mean(-1) / scale2).mean()


class DepthNetTraining(TrainingMethod):
    name = "depthnet"
    default_config: dict[str, Any] = {
        "learning_rate": 1e-3,
        "train_batch_size": 64,
        "max_steps": 3000,
        "model": {"preset": "cpu-small"},
        "data": {"source": "rigid_pairs", "num_pairs": 20000},
    }

    def build_models(self) -> dict[str, torch.nn.Module]:
        options = dict(self.config.model)
        preset = options.pop("preset", "cpu-small")
        if preset not in DEPTHNET_PRESETS:
            raise ValueError(f"Got {preset!r} for `model.preset`; known presets: {sorted(DEPTHNET_PRESETS)}.")
        return {"depth_net": DepthNetModel(**{**DEPTHNET_PRESETS[preset], **options})}

    def build_dataset(self):
        options = dict(self.config.data)
        source = options.pop("source", "rigid_pairs")
        if source not in DATA_SOURCES:
            raise ValueError(f"Got {source!r} for `data.source`; known sources: {sorted(DATA_SOURCES)}.")
        options.setdefault("seed", self.config.seed)
        return DATA_SOURCES[source](**options)

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        depth_net = ctx.models["depth_net"]
        source, target = batch["source_keypoints"], batch["target_keypoints"]
        out = depth_net(source, target)
        loss = registration_loss(source, target, out.depths, out.affine)
        ctx.optimize("main", loss)
        return {"loss": loss.detach().item()}

    def export(self, models: dict[str, torch.nn.Module], folder: Path) -> None:
        KeypointRegistrationPipeline(depth_net=models["depth_net"]).save_pretrained(folder)

    def model_card(self) -> dict[str, Any]:
        return {
            "description": (
                "DepthNet (Moniz, Beckham et al., NeurIPS 2018), keypoint-only variant (case B), "
                f"{self.config.model.get('preset', 'cpu-small')} preset: infers the depths of 68 source keypoints "
                "so that a closed-form 3D-to-2D affine (eq. 3) maps them onto target keypoints. "
                f"Trained on {self._data_description()}."
            ),
            "tags": ["depthnet", "keypoints", "face-rotation", "3d-affine"],
        }


    def _data_description(self) -> str:
        source = self.config.data.get("source", "rigid_pairs")
        if source == "rigid_pairs":
            return (
                "synthetic pairs of views of rigid 3D keypoint sets that share a mean shape "
                "(facehub.trainers.data.keypoint_pairs), not on face photos"
            )
        return source


def main(argv: list[str] | None = None) -> int:
    from facehub.trainers.run import main as run_main

    return run_main(argv, method="depthnet")


if __name__ == "__main__":
    sys.exit(main())
