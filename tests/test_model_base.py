"""HF-style save/load of facehub networks and pipelines, and clear errors for wrong or damaged checkpoints."""

import json
import pickle

import numpy as np
import pytest
import torch

from facehub.modeling.depthnet import DepthNetModel, KeypointRegistrationPipeline, register_keypoints
from facehub.modeling.modeling_utils import CheckpointError


def make_model(seed: int = 0) -> DepthNetModel:
    torch.manual_seed(seed)
    model = DepthNetModel(hidden_sizes=(32, 32))
    model.eval()
    return model


def keypoints(seed: int, batch: int = 4) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(batch, 68, 2)) * 40 + 120).float()


def test_model_round_trip_gives_identical_outputs(tmp_path):
    model = make_model()
    source, target = keypoints(1), keypoints(2)
    expected = model(source, target).depths
    assert expected.abs().max() > 1e-3  # a real, non-flat output to compare
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["hidden_sizes"] == [32, 32]
    loaded = DepthNetModel.from_pretrained(tmp_path)
    assert torch.equal(loaded(source, target).depths, expected)
    assert loaded.config.hidden_sizes == [32, 32] or tuple(loaded.config.hidden_sizes) == (32, 32)


def test_pipeline_round_trip_with_subfolders(tmp_path):
    pipe = KeypointRegistrationPipeline(depth_net=make_model())
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "KeypointRegistrationPipeline"
    assert index["depth_net"] == ["facehub.modeling.depthnet.modeling_depthnet", "DepthNetModel"]
    assert (tmp_path / "depth_net" / "diffusion_pytorch_model.safetensors").is_file()

    loaded = KeypointRegistrationPipeline.from_pretrained(tmp_path)
    source, target = keypoints(3, 1)[0].numpy(), keypoints(4, 1)[0].numpy()
    before, after = pipe(source, target), loaded(source, target)
    np.testing.assert_array_equal(before.registered, after.registered)
    np.testing.assert_array_equal(before.depths, after.depths)
    # a component loads on its own from the bundle too
    sub = DepthNetModel.from_pretrained(tmp_path, subfolder="depth_net")
    assert torch.equal(sub.head.weight, pipe.depth_net.head.weight)


def test_registration_is_the_affine_of_the_inferred_depths(tmp_path):
    model = make_model()
    source, target = keypoints(5, 1)[0].numpy(), keypoints(6, 1)[0].numpy()
    out = register_keypoints(source, target, model=model)
    assert out.depths.shape == (68,) and out.affine.shape == (2, 4) and out.registered.shape == (68, 2)
    homogeneous = np.c_[source, out.depths, np.ones(68)]
    np.testing.assert_allclose(out.registered, homogeneous @ out.affine.T, rtol=1e-9, atol=1e-9)
    # least squares: the residual is orthogonal to every column of eq. 2's design matrix
    residual = target - out.registered
    np.testing.assert_allclose(homogeneous.T @ residual, 0, atol=1e-6)


def test_loading_a_folder_of_another_class_names_file_and_class(tmp_path):
    pipe = KeypointRegistrationPipeline(depth_net=make_model())
    pipe.save_pretrained(tmp_path / "pipe")
    # The bundle's root gives its one DepthNetModel component (tests/test_loading.py has the ambiguous cases).
    assert torch.equal(DepthNetModel.from_pretrained(tmp_path / "pipe").head.weight, pipe.depth_net.head.weight)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"config\.json does not exist.*DepthNetModel"):
        DepthNetModel.from_pretrained(tmp_path / "empty")
    with pytest.raises(CheckpointError, match=r"model_index\.json does not exist.*KeypointRegistrationPipeline"):
        KeypointRegistrationPipeline.from_pretrained(tmp_path / "pipe" / "depth_net")

    # a diffusers checkpoint of another class (config names a UNet) is refused before any weight is read
    folder = tmp_path / "other"
    make_model().save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["_class_name"] = "UNet2DModel"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"saved by UNet2DModel, not DepthNetModel"):
        DepthNetModel.from_pretrained(folder)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_safetensors_names_the_file(tmp_path, damage):
    make_model().save_pretrained(tmp_path)
    weights = tmp_path / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x07" * 64 + data[64:])
    with pytest.raises(CheckpointError) as info:
        DepthNetModel.from_pretrained(tmp_path)
    message = str(info.value)
    assert str(weights) in message and "DepthNetModel" in message and "truncated or corrupt" in message


class _Tripwire:
    """Unpickling this object writes a file: proof that a pickle was loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_pickle_weights_are_never_loaded(tmp_path):
    make_model().save_pretrained(tmp_path)
    (tmp_path / "diffusion_pytorch_model.safetensors").unlink()
    tripwire = tmp_path / "unpickled.txt"
    (tmp_path / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps(_Tripwire(tripwire)))
    with pytest.raises(CheckpointError, match="has no weights file"):
        DepthNetModel.from_pretrained(tmp_path)
    assert not tripwire.exists()


def test_config_errors_name_the_field_and_value():
    with pytest.raises(ValueError, match=r"Got 'svd' for `formulation`"):
        DepthNetModel(formulation="svd")
    with pytest.raises(ValueError, match=r"Got \[\] for `hidden_sizes`"):
        DepthNetModel(hidden_sizes=())
    with pytest.raises(ValueError, match=r"DepthNetModel expects \(B, 68, 2\)"):
        make_model()(torch.zeros(1, 5, 2), torch.zeros(1, 5, 2))
