"""The embedded default checkpoints: listed, loadable with no network, and better than their baselines."""

import subprocess
import sys

import numpy as np
import torch

from facehub.hub import list_embedded, resolve
from facehub.modeling.depthnet import DepthNetModel, register_keypoints


def parameters_loaded_offline(module: str, class_name: str, model_id: str, subfolder: str) -> int:
    """Load an embedded default in a fresh interpreter with the Hub unreachable; its parameter count."""
    code = (
        f"from {module} import {class_name}\n"
        f"m = {class_name}.from_pretrained({model_id!r}, subfolder={subfolder!r})\n"
        "print(sum(p.numel() for p in m.parameters()))\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1])


def test_every_embedded_default_has_a_card_with_its_training_command():
    models = {m.model_id: m for m in list_embedded()}
    assert "facehub/depthnet" in models
    for model in models.values():
        card = (model.path / "README.md").read_text()
        assert card.startswith("---\n") and "library_name: facehub" in card
        assert "facehub train " in card, f"{model.model_id}: the card does not say how it was trained"
        assert model.class_name and model.description


def test_depthnet_default_loads_offline_and_beats_the_2d_affine_baseline():
    model = DepthNetModel.from_pretrained("facehub/depthnet", subfolder="depth_net")
    assert parameters_loaded_offline("facehub.modeling.depthnet", "DepthNetModel", "facehub/depthnet", "depth_net") \
        == sum(p.numel() for p in model.parameters())
    assert resolve("facehub/depthnet").is_relative_to(resolve.__globals__["EMBEDDED_DEFAULTS_DIR"])
    # The README's first line: the bundle root gives its one DepthNetModel component, no subfolder= needed.
    assert parameters_loaded_offline("facehub.modeling.depthnet", "DepthNetModel", "facehub/depthnet", "") \
        == sum(p.numel() for p in model.parameters())
    root = DepthNetModel.from_pretrained("facehub/depthnet")
    for name, weights in model.state_dict().items():
        assert torch.equal(root.state_dict()[name], weights), name



def test_depthnet_default_registers_held_out_faces_with_true_depths():
    from facehub.trainers.data.keypoint_pairs import MorphableKeypointPairs
    from facehub.trainers.evaluation.depthnet import evaluate

    model = DepthNetModel.from_pretrained("facehub/depthnet", subfolder="depth_net")
    # The default's own world (trainers/configs/depthnet-gan.yaml), a seed it never trained on.
    world = {"identity_scale": 2.0, "expression_scale": 1.0, "noise": 0.01, "max_yaw": 90.0, "max_pitch": 40.0,
             "max_roll": 30.0}
    evaluation = evaluate({"default": model}, MorphableKeypointPairs(500, seed=999, **world), progress=False)
    affine_2d, template, ours, truth = (evaluation.row(k) for k in
                                        ("affine_2d", "template_3d", "pseudo_inverse", "ground_truth"))
    assert ours.mse < 0.1 * affine_2d.mse and ours.mse < template.mse
    assert ours.mse < 1.5 * truth.mse  # close to what the true depths allow (noise and expressions remain)
    assert ours.depth_corr > 0.9  # DepthNet+GAN: depths match the truth, not just some depths that register


def test_depthnet_default_depths_follow_mediapipe_on_real_photos():
    """Real photos turned to several yaws (face profiling): DepthNet's depths against MediaPipe's."""
    from pathlib import Path

    from PIL import Image

    from facehub.modeling.depthnet.baselines import register_affine_2d
    from facehub.modeling.faces import FaceAnalyzer, load_image
    from facehub.modeling.geometry.landmark_metrics import depth_correlation, keypoint_mse_norm
    from facehub.modeling.geometry.landmarks68 import landmarks68_from_mesh
    from facehub.modeling.geometry.profiling import rotate_face

    analyzer = FaceAnalyzer(compute_embedding=False)
    keypoints, mediapipe_depths = [], []
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png"):
        image = load_image(Path(__file__).parent / "data" / "photos" / name)
        scale = 256 / max(image.shape[:2])  # the CPU rasteriser's cost grows with the pixel count
        image = np.asarray(Image.fromarray(image).resize((round(image.shape[1] * scale), round(image.shape[0] * scale))))
        face = analyzer(image)[0]
        for yaw in (-35.0, 0.0, 35.0):
            view = analyzer(rotate_face(image, face.dense_landmarks, yaw, 0.0) if yaw else image)[0]
            keypoints.append(view.landmarks68)
            mediapipe_depths.append(landmarks68_from_mesh(view.dense_landmarks)[:, 2])
    keypoints, mediapipe_depths = np.array(keypoints), np.array(mediapipe_depths)
    pairs = [(i, j) for i in range(len(keypoints)) for j in range(len(keypoints)) if i != j]
    source, target = keypoints[[i for i, _ in pairs]], keypoints[[j for _, j in pairs]]
    model = DepthNetModel.from_pretrained("facehub/depthnet", subfolder="depth_net")
    results = register_keypoints(source, target, model=model)
    depths = np.stack([r.depths for r in results])
    registered = np.stack([r.registered for r in results])
    reference = mediapipe_depths[[i for i, _ in pairs]]
    points = torch.from_numpy(np.concatenate([source, reference[..., None]], axis=-1))
    from facehub.modeling.geometry.affine import apply_affine_3d_to_2d, solve_affine_3d_to_2d

    with_mediapipe = apply_affine_3d_to_2d(solve_affine_3d_to_2d(points, torch.from_numpy(target)), points).numpy()
    flat = keypoint_mse_norm(register_affine_2d(source, target), target).mean()
    ours = keypoint_mse_norm(registered, target).mean()
    assert ours < 0.5 * flat
    assert ours < 1.2 * keypoint_mse_norm(with_mediapipe, target).mean()  # as good as MediaPipe's own depths
    assert depth_correlation(depths, reference) > 0.7


def test_prn_dense_default_loads_offline_and_reconstructs_a_photo(tmp_path):
    import trimesh

    from facehub.modeling.faces import FaceAnalyzer, load_image
    from facehub.modeling.geometry.landmark_metrics import nme
    from facehub.modeling.prn_dense import FaceReconstructionPipeline

    pipe = FaceReconstructionPipeline.from_pretrained("facehub/prn-dense")
    assert parameters_loaded_offline("facehub.modeling.prn_dense", "PRNDenseModel", "facehub/prn-dense", "prn") \
        == sum(p.numel() for p in pipe.prn.parameters())

    from pathlib import Path

    image = load_image(Path(__file__).parent / "data" / "photos" / "biden.jpg")
    reconstruction = pipe(image).reconstructions[0]
    reference = FaceAnalyzer(compute_embedding=False)(image)[0]
    # The small CPU-trained default lands its 68 points near MediaPipe's (an untrained network is 30%+ off).
    assert float(nme(reconstruction.landmarks68[:, :2], reference.landmarks68)) < 0.12
    assert abs(reconstruction.pose[0] - reference.pose[0]) < 15  # turned the same way, roughly as far
    path = reconstruction.export(tmp_path / "face.glb")
    assert len(trimesh.load(path, force="mesh").vertices) == len(reconstruction.vertices) == 468
