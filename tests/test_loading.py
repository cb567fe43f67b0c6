"""Loading: a network out of a pipeline bundle, which copy of a name wins (local folder, embedded default, Hub),
Hub options reaching ``snapshot_download``, and clear errors for ids and checkpoints that cannot be loaded.

The Hub side is a real olah server (``local_hub.py``) serving a bare git repository under the embedded default's own
id, ``facehub/depthnet``; clients run in fresh interpreters because ``huggingface_hub`` reads ``HF_ENDPOINT`` when it
is imported.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from local_hub import start_local_hub

from facehub.hub.push import init_bare_repo, push_to_git
from facehub.hub.resolver import EMBEDDED_DEFAULTS_DIR, ModelNotFoundError, resolve
from facehub.modeling.cyclegan import CycleGANGenerator
from facehub.modeling.depthnet import (
    DepthNetModel,
    FaceRotationPipeline,
    FaceSwapPipeline,
    KeypointRegistrationPipeline,
)
from facehub.modeling.modeling_utils import CheckpointError

EMBEDDED_ID = "facehub/depthnet"


def tiny_pipeline(seed: int = 0, hidden: int = 16) -> KeypointRegistrationPipeline:
    torch.manual_seed(seed)
    return KeypointRegistrationPipeline(depth_net=DepthNetModel(hidden_sizes=(hidden,)))


# --- a network out of a bundle ------------------------------------------------------------------------------------


def test_a_model_loads_from_a_bundle_root_when_one_component_is_its_class(tmp_path):
    swap = FaceSwapPipeline(
        depth_net=tiny_pipeline().depth_net,
        repair=CycleGANGenerator(base_channels=8, num_residual_blocks=1, image_size=32),
    )
    swap.save_pretrained(tmp_path / "bundle")
    depth_net = DepthNetModel.from_pretrained(tmp_path / "bundle")
    repair = CycleGANGenerator.from_pretrained(tmp_path / "bundle")
    for loaded, original in ((depth_net, swap.depth_net), (repair, swap.repair)):
        for name, weights in original.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], weights), name

    # Two components of the class: the message names both subfolders.
    index = json.loads((tmp_path / "bundle" / "model_index.json").read_text())
    index["depth_net_ema"] = index["depth_net"]
    (tmp_path / "bundle" / "model_index.json").write_text(json.dumps(index))
    shutil.copytree(tmp_path / "bundle" / "depth_net", tmp_path / "bundle" / "depth_net_ema")
    with pytest.raises(CheckpointError, match=r"2 DepthNetModel components \('depth_net', 'depth_net_ema'\); pass "
                                              r"subfolder= one of them"):
        DepthNetModel.from_pretrained(tmp_path / "bundle")
    assert DepthNetModel.from_pretrained(tmp_path / "bundle", subfolder="depth_net_ema").config.hidden_sizes[0] == 16

    # None of the class: the components are listed.
    tiny_pipeline().save_pretrained(tmp_path / "plain")
    with pytest.raises(CheckpointError, match=r"without a CycleGANGenerator component \(its components: "
                                              r"'depth_net' \(DepthNetModel\)\); pass subfolder="):
        CycleGANGenerator.from_pretrained(tmp_path / "plain")


# --- checkpoints whose weights or config do not fit -----------------------------------------------------------------


def test_weights_of_another_model_are_refused_with_the_keys(tmp_path):
    DepthNetModel(hidden_sizes=(16,)).save_pretrained(tmp_path / "depthnet")
    CycleGANGenerator(base_channels=8, num_residual_blocks=1, image_size=32).save_pretrained(tmp_path / "cyclegan")
    shutil.copy(tmp_path / "cyclegan" / "diffusion_pytorch_model.safetensors", tmp_path / "depthnet")
    with pytest.raises(CheckpointError) as info:
        DepthNetModel.from_pretrained(tmp_path / "depthnet")
    message = str(info.value)
    assert "does not hold the weights of the DepthNetModel" in message
    assert "missing key(s): head.bias, head.weight, hidden.0.bias" in message and "unexpected key(s):" in message

    # Same keys, other shapes: a config edited after the export.
    DepthNetModel(hidden_sizes=(16,)).save_pretrained(tmp_path / "edited")
    config = json.loads((tmp_path / "edited" / "config.json").read_text())
    (tmp_path / "edited" / "config.json").write_text(json.dumps({**config, "hidden_sizes": [24]}))
    with pytest.raises(CheckpointError, match=r"key\(s\) of the wrong shape: head\.weight \[68, 16\] in the file, "
                                              r"\[68, 24\] in the model"):
        DepthNetModel.from_pretrained(tmp_path / "edited")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_sizes": [10**9]}, r"describes a DepthNetModel with [\d,]+ parameters, more than the 2,000,000,000"),
        ({"hidden_sizes": []}, r"describes a DepthNetModel that cannot be built \(ValueError: Got \[\] for"),
        ({"hidden_sizes": [1.5]}, r"describes a DepthNetModel that cannot be built \(TypeError: empty\(\) received"),
    ],
)
def test_absurd_configs_are_checkpoint_errors(tmp_path, change, message):
    DepthNetModel(hidden_sizes=(16,)).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(CheckpointError, match=message):
        DepthNetModel.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_residual_blocks", 10**9, r"Got 1000000000 for `num_residual_blocks`; at most 256 blocks"),
        ("num_downsamplings", 10**9, r"Got 1000000000 for `num_downsamplings`; at most 12 halvings"),
        ("image_size", 10**9, r"Got 1000000000 for `image_size`; at most 4096 pixels"),
        ("base_channels", 10**5, r"with [\d,]+ parameters, more than the 2,000,000,000 facehub loads"),
        ("padding", "x" * 2_000_000, r"config\.json is [\d,]+ bytes, more than any config facehub writes"),
    ],
)
def test_configs_that_would_hang_or_exhaust_memory_fail_at_once(tmp_path, field, value, message):
    """Counts are checked before anything is built (a billion blocks would take hours to create even without
    memory), sizes by the parameter count of a memoryless build."""
    CycleGANGenerator(base_channels=8, num_residual_blocks=1, image_size=32).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, field: value}))
    with pytest.raises(CheckpointError, match=message):
        CycleGANGenerator.from_pretrained(tmp_path)


@pytest.mark.parametrize("model_id", ["x" * 5000, "org/" + "n" * 300, "a/b/" * 1500])
def test_ids_too_long_for_any_folder_are_a_clear_error(model_id):
    for load in (DepthNetModel.from_pretrained, FaceRotationPipeline.from_pretrained, resolve):
        with pytest.raises(ModelNotFoundError, match=r"characters long .*too long for a folder path"):
            load(model_id)
    with pytest.raises(ModelNotFoundError, match="empty"):
        resolve(" ")


# --- which copy of a name wins --------------------------------------------------------------------------------------


def test_a_local_folder_wins_over_the_embedded_default_and_says_so(tmp_path, monkeypatch, caplog):
    tiny_pipeline(hidden=8).save_pretrained(tmp_path / EMBEDDED_ID)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="facehub.hub.resolver"):
        assert resolve(EMBEDDED_ID) == (tmp_path / EMBEDDED_ID).resolve()
        model = DepthNetModel.from_pretrained(EMBEDDED_ID)
    assert model.config.hidden_sizes[0] == 8  # the local folder's, not the embedded default's
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning and "shadows the embedded default of the same name" in warning[0].getMessage()

    monkeypatch.chdir(tmp_path / "facehub")  # elsewhere the id means the embedded copy again, and the log says so
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="facehub.hub.resolver"):
        assert resolve(EMBEDDED_ID) == EMBEDDED_DEFAULTS_DIR / EMBEDDED_ID
    assert "from the embedded copy" in caplog.text


CLIENT_SCRIPT = r"""
import json, logging, os, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
from facehub.hub.resolver import EMBEDDED_DEFAULTS_DIR, ModelNotFoundError, resolve
from facehub.modeling.depthnet import DepthNetModel, FaceRotationPipeline

cache, empty = Path(sys.argv[1]), Path(sys.argv[2])
report = {}
report["plain"] = str(resolve("facehub/depthnet"))
report["prefer_hub"] = str(resolve("facehub/depthnet", prefer_hub=True, cache_dir=cache))
blob = next(p for p in (cache).rglob("diffusion_pytorch_model.safetensors"))
report["inode"] = os.stat(blob.resolve()).st_ino
report["cached_only"] = str(resolve("facehub/depthnet", prefer_hub=True, cache_dir=cache, local_files_only=True))
try:
    resolve("facehub/depthnet", prefer_hub=True, cache_dir=empty, local_files_only=True)
except ModelNotFoundError as err:
    report["empty_cache_error"] = str(err)
report["forced"] = str(resolve("facehub/depthnet", force_download=True, cache_dir=cache))
report["inode_forced"] = os.stat(next(cache.rglob("diffusion_pytorch_model.safetensors")).resolve()).st_ino
report["revision"] = str(resolve("facehub/depthnet", revision="main", cache_dir=cache))
report["hub_hidden"] = DepthNetModel.from_pretrained("facehub/depthnet", prefer_hub=True, cache_dir=cache).config.hidden_sizes
report["embedded_hidden"] = DepthNetModel.from_pretrained("facehub/depthnet").config.hidden_sizes
pipe = FaceRotationPipeline.from_pretrained("facehub/depthnet", revision="main", cache_dir=cache, local_files_only=True)
report["pipeline_hidden"] = pipe.depth_net.config.hidden_sizes
report["embedded_dir"] = str(EMBEDDED_DEFAULTS_DIR)
print(json.dumps(report))
"""


def test_hub_options_reach_snapshot_download_and_the_embedded_copy_wins_only_for_its_exact_id(tmp_path):
    """The Hub holds a different model under the embedded default's own id: the plain id loads the embedded copy,
    ``prefer_hub`` / ``revision`` / ``force_download`` load the Hub's, into ``cache_dir``; ``local_files_only`` reads
    only that cache."""
    hub = start_local_hub(tmp_path / "olah")
    try:
        tiny_pipeline(hidden=12).save_pretrained(tmp_path / "export")
        push_to_git(tmp_path / "export", init_bare_repo(hub.repo_path(EMBEDDED_ID)), message="A tiny DepthNet")
        cache, empty = tmp_path / "cache", tmp_path / "empty-cache"
        result = subprocess.run(
            [sys.executable, "-c", CLIENT_SCRIPT, str(cache), str(empty)],
            env=hub.client_env(tmp_path / "hf-home"), cwd=tmp_path, capture_output=True, text=True, timeout=240,
        )
    finally:
        hub.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    embedded = str(Path(report["embedded_dir"]) / EMBEDDED_ID)
    assert report["plain"] == embedded
    assert "from the embedded copy" in result.stderr
    for key in ("prefer_hub", "cached_only", "forced", "revision"):
        assert Path(report[key]).is_relative_to(cache), key
    assert not any(Path(tmp_path / "hf-home").rglob("*.safetensors")), "cache_dir replaced the default cache"
    assert "local_files_only=True, so only the local cache was searched" in report["empty_cache_error"]
    assert report["inode_forced"] != report["inode"], "force_download fetched the file again"
    assert report["hub_hidden"] == [12] and report["pipeline_hidden"] == [12]
    assert report["embedded_hidden"] != [12]
