"""The embedded default checkpoints: listed, loadable with no network, and better than their baselines."""

import subprocess
import sys

import numpy as np
import torch

from facehub.hub import list_embedded, resolve
from facehub.modeling.depthnet import DepthNetModel, register_keypoints
from facehub.trainers.data.keypoint_pairs import RigidKeypointPairs
from facehub.trainers.depthnet import registration_loss


def test_every_embedded_default_has_a_card_with_its_training_command():
    models = {m.model_id: m for m in list_embedded()}
    assert "facehub/depthnet" in models
    for model in models.values():
        card = (model.path / "README.md").read_text()
        assert card.startswith("---\n") and "library_name: facehub" in card
        assert "facehub train " in card, f"{model.model_id}: the card does not say how it was trained"
        assert model.class_name and model.description


def test_depthnet_default_loads_offline_and_beats_the_2d_affine_baseline():
    code = (
        "from facehub.modeling.depthnet import DepthNetModel\n"
        "m = DepthNetModel.from_pretrained('facehub/depthnet', subfolder='depth_net')\n"
        "print(sum(p.numel() for p in m.parameters()))\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    model = DepthNetModel.from_pretrained("facehub/depthnet", subfolder="depth_net")
    assert int(out.stdout.split()[-1]) == sum(p.numel() for p in model.parameters())
    assert resolve("facehub/depthnet").is_relative_to(resolve.__globals__["EMBEDDED_DEFAULTS_DIR"])

    held_out = RigidKeypointPairs(num_pairs=256, seed=999, noise_pixels=0.5)  # the training seed was 0
    items = [held_out[i] for i in range(len(held_out))]
    source = torch.stack([i["source_keypoints"] for i in items]).double()
    target = torch.stack([i["target_keypoints"] for i in items]).double()
    results = register_keypoints(source.numpy(), target.numpy(), model=model)
    depths = torch.from_numpy(np.stack([r.depths for r in results]))
    learned = registration_loss(source, target, depths, None).item()
    flat = registration_loss(source, target, torch.zeros_like(depths), None).item()
    true = torch.stack([i["source_depths"] for i in items]).double()
    oracle = registration_loss(source, target, true, None).item()
    assert learned < 0.1 * flat, (learned, flat)
    assert oracle < learned  # noise keeps even true depths above zero; the model sits between
