"""DepthNet training recipe (Moniz, Beckham et al. 2018, sections 2.1, 2.3 and 3.2) for the shared loop.

Run: ``facehub train depthnet --config FILE`` (``accelerate launch -m facehub.trainers.run depthnet --config FILE``).

Settings beyond :class:`~facehub.trainers.core.TrainingConfig`:

- ``model``: ``preset`` (a :data:`~facehub.modeling.depthnet.DEPTHNET_PRESETS` name) plus any
  :class:`~facehub.modeling.depthnet.DepthNetModel` field. ``formulation: explicit_affine`` trains section 2.1
  (eq. 1 with the predicted affine; evaluating it with the affine re-solved by eq. 3 is section 2.2);
  ``pseudo_inverse`` trains section 2.3. A preset with ``image_size`` is case A (Siamese CNN on the crops).
- ``data``: ``source`` and its options.
  ``morphable_pairs`` (:class:`~facehub.trainers.data.keypoint_pairs.MorphableKeypointPairs`): landmarks of
  morphable-model faces under random poses, with exact depths; ``rigid_pairs``: rigid random point sets;
  ``dataset``: a folder written by ``facehub prepare`` (photos or the synthetic world; ``path``, ``mode``
  ``same_identity`` / ``any`` / ``auto``, ``num_pairs``): keypoints are its ``landmarks68``, depths (for the GAN and
  for evaluation) the z of its dense landmarks at the 68 points, crops its ``image`` column (case A).
- ``losses``: ``gan_weight`` (0 = plain DepthNet; > 0 = DepthNet+GAN, the weight of the adversarial term next to
  the keypoint loss), ``discriminator_hidden_sizes``, ``discriminator_learning_rate``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from facehub.modeling.depthnet import DEPTHNET_PRESETS, DepthNetModel, KeypointRegistrationPipeline
from facehub.modeling.depthnet.modeling_depth_discriminator import DepthDiscriminatorModel
from facehub.modeling.geometry.affine import apply_affine_3d_to_2d, solve_affine_3d_to_2d
from facehub.trainers.core import StepContext, TrainingMethod
from facehub.trainers.data.keypoint_pairs import MorphableKeypointPairs, RigidKeypointPairs


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


class PreparedKeypointPairs(Dataset):
    """Pairs of faces from a ``facehub prepare`` folder, as DepthNet items.

    Items: ``source_keypoints`` / ``target_keypoints`` (68, 2) crop pixels, ``source_depths`` / ``target_depths``
    (68,) the dense landmarks' z at the 68 points (exact for the synthetic world, MediaPipe's estimate for photos),
    and with ``image_size`` the crops ``source_images`` / ``target_images`` (3, S, S) in [-1, 1].
    """

    def __init__(self, path: str, mode: str = "auto", num_pairs: int | None = None, seed: int = 0,
                 image_size: int | None = None):
        import datasets

        from facehub.trainers.data.pairs import FacePairs

        folder = Path(path)
        dataset_dir = folder / "dataset" if (folder / "dataset").is_dir() else folder
        if not dataset_dir.is_dir():
            raise FileNotFoundError(f"{path} is not a folder written by `facehub prepare` (no dataset/ inside).")
        table = datasets.load_from_disk(str(dataset_dir))
        columns = ["landmarks68", "dense_landmarks"] + (["image"] if image_size else [])
        self.pairs = FacePairs(table.with_format("numpy", columns=columns), table["identity"], mode=mode,
                               num_pairs=num_pairs, seed=seed, columns=columns)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from facehub.modeling.geometry.landmarks68 import landmarks68_from_mesh

        pair = self.pairs[index]
        item = {}
        for side in ("source", "target"):
            item[f"{side}_keypoints"] = pair[f"{side}_landmarks68"]
            dense = pair[f"{side}_dense_landmarks"].numpy()
            item[f"{side}_depths"] = torch.from_numpy(landmarks68_from_mesh(dense)[:, 2]).float()
            if self.image_size:
                image = pair[f"{side}_image"].permute(2, 0, 1)[None] / 127.5 - 1.0
                item[f"{side}_images"] = F.interpolate(
                    image, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                    align_corners=False,
                )[0]
        return item


DATA_SOURCES = {"rigid_pairs": RigidKeypointPairs, "morphable_pairs": MorphableKeypointPairs,
                "dataset": PreparedKeypointPairs}


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the conditional depth discriminator (ground-truth depths real, DepthNet's fake)."""
    return 0.5 * (
        F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    )


def adversarial_depth_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator term: DepthNet's depths should be taken for ground truth."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


class DepthNetTraining(TrainingMethod):
    name = "depthnet"
    default_config: dict[str, Any] = {
        "learning_rate": 1e-3,
        "train_batch_size": 64,
        "max_steps": 3000,
        "model": {"preset": "cpu-small"},
        "data": {"source": "morphable_pairs", "num_pairs": 20000},
        "losses": {"gan_weight": 0.0},
    }

    @property
    def gan_weight(self) -> float:
        return float(self.config.losses.get("gan_weight", 0.0))

    def build_models(self) -> dict[str, torch.nn.Module]:
        options = dict(self.config.model)
        preset = options.pop("preset", "cpu-small")
        if preset not in DEPTHNET_PRESETS:
            raise ValueError(f"Got {preset!r} for `model.preset`; known presets: {sorted(DEPTHNET_PRESETS)}.")
        models: dict[str, torch.nn.Module] = {"depth_net": DepthNetModel(**{**DEPTHNET_PRESETS[preset], **options})}
        if self.gan_weight > 0:
            hidden = tuple(self.config.losses.get("discriminator_hidden_sizes", (256, 256)))
            models["depth_discriminator"] = DepthDiscriminatorModel(
                num_keypoints=models["depth_net"].config.num_keypoints, hidden_sizes=hidden
            )
        return models

    def build_optimizers(self, models: dict[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        optimizers = {
            "main": torch.optim.AdamW(models["depth_net"].parameters(), lr=c.learning_rate,
                                      betas=(c.adam_beta1, c.adam_beta2), weight_decay=c.weight_decay)
        }
        if "depth_discriminator" in models:
            lr = float(c.losses.get("discriminator_learning_rate", c.learning_rate))
            optimizers["discriminator"] = torch.optim.AdamW(models["depth_discriminator"].parameters(), lr=lr,
                                                            betas=(0.5, 0.999))
        return optimizers

    def build_dataset(self):
        options = dict(self.config.data)
        source = options.pop("source", "morphable_pairs")
        if source not in DATA_SOURCES:
            raise ValueError(f"Got {source!r} for `data.source`; known sources: {sorted(DATA_SOURCES)}.")
        options.setdefault("seed", self.config.seed)
        preset = DEPTHNET_PRESETS.get(self.config.model.get("preset", "cpu-small"), {})
        image_size = self.config.model.get("image_size", preset.get("image_size"))
        if image_size and source != "dataset":
            raise ValueError(
                f"A case-A DepthNet (image_size={image_size}) reads face crops: use data.source=dataset with a "
                "`facehub prepare` folder, not " + repr(source) + "."
            )
        if source == "dataset":
            options["image_size"] = image_size
        return DATA_SOURCES[source](**options)

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        depth_net = ctx.models["depth_net"]
        source, target = batch["source_keypoints"], batch["target_keypoints"]
        out = depth_net(source, target, batch.get("source_images"), batch.get("target_images"))
        keypoint_loss = registration_loss(source, target, out.depths, out.affine)
        logs = {"loss": keypoint_loss.detach().item()}
        loss = keypoint_loss
        if self.gan_weight > 0:
            if "source_depths" not in batch:
                raise ValueError("DepthNet+GAN (losses.gan_weight > 0) needs ground-truth depths in the data.")
            discriminator = ctx.models["depth_discriminator"]
            # The generator's term goes through the frozen discriminator (parameters and buffers), so its backward
            # pass leaves the discriminator's gradients, statistics and DDP reducer alone.
            fake = ctx.frozen("depth_discriminator", source, out.depths).logits
            adversarial = adversarial_depth_loss(fake)
            loss = loss + self.gan_weight * adversarial
            logs["adversarial"] = adversarial.detach().item()
        ctx.optimize("main", loss)
        if self.gan_weight > 0:
            real_logits = discriminator(source, batch["source_depths"]).logits
            fake_logits = discriminator(source, out.depths.detach()).logits
            d_loss = discriminator_loss(real_logits, fake_logits)
            ctx.optimize("discriminator", d_loss)
            logs["discriminator"] = d_loss.detach().item()
        return logs

    def export(self, models: dict[str, torch.nn.Module], folder: Path) -> None:
        KeypointRegistrationPipeline(depth_net=models["depth_net"]).save_pretrained(folder)

    def model_card(self) -> dict[str, Any]:
        model = self.config.model
        preset = model.get("preset", "cpu-small")
        formulation = model.get("formulation", DEPTHNET_PRESETS.get(preset, {}).get("formulation", "pseudo_inverse"))
        case = "case A, Siamese CNN + keypoints" if DEPTHNET_PRESETS.get(preset, {}).get("image_size") or model.get(
            "image_size") else "keypoint-only, case B"
        variant = "DepthNet+GAN (conditional depth discriminator, section 3.2)" if self.gan_weight > 0 else "DepthNet"
        return {
            "description": (
                f"{variant} (Moniz, Beckham et al., NeurIPS 2018), {case}, {formulation.replace('_', '-')} "
                f"formulation, {preset} preset: infers the depths of 68 source keypoints so that a 3D-to-2D affine "
                f"maps them onto target keypoints. Trained on {self._data_description()}."
            ),
            "tags": ["depthnet", "keypoints", "face-rotation", "3d-affine"],
        }

    def _data_description(self) -> str:
        source = self.config.data.get("source", "morphable_pairs")
        if source == "rigid_pairs":
            return (
                "synthetic pairs of views of rigid 3D keypoint sets that share a mean shape "
                "(facehub.trainers.data.keypoint_pairs), not on face photos"
            )
        if source == "morphable_pairs":
            return (
                "pairs of views of the 68 landmarks of random faces of facehub's morphable face model (random "
                "identity, expression and pose, orthographic projection; facehub.trainers.data.keypoint_pairs."
                "MorphableKeypointPairs), with their exact depths as the discriminator's real samples"
            )
        return f"face pairs from the prepared dataset {self.config.data.get('path')}"


def main(argv: list[str] | None = None) -> int:
    from facehub.trainers.run import main as run_main

    return run_main(argv, method="depthnet")


if __name__ == "__main__":
    sys.exit(main())
