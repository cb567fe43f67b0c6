"""The loop's own checkpoints: exact resume, one metrics line per step, fallback past a damaged newest checkpoint,
nothing unpickled on resume (planted pickles never run), and a damaged RNG state as an error."""

import hashlib
import json
import logging
import pathlib
import pickle
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import TensorDataset

from facehub.trainers.core import CheckpointError, TrainingConfig, TrainingMethod, list_checkpoints, train
from facehub.trainers.core import loop as core_loop


class NoisyRegression(TrainingMethod):
    """A linear regression whose inputs get fresh noise from the global RNG every step (so an exact resume needs
    the RNG state), with an EMA of the network (so the checkpoint carries one)."""

    name = "toy"

    def build_models(self):
        return {"net": torch.nn.Linear(4, 1)}

    def build_optimizers(self, models):
        return {"main": torch.optim.AdamW(models["net"].parameters(), lr=self.config.learning_rate)}

    def build_dataset(self):
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=generator)
        return TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]))

    def ema_decays(self):
        return {"net": 0.8}

    def training_step(self, batch, ctx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(ctx.models["net"](x + 0.1 * torch.randn_like(x)), y)
        ctx.optimize("main", loss)
        return {"loss": loss.item()}

    def export(self, models, folder):
        save_file(models["net"].state_dict(), str(folder / "net.safetensors"))


@pytest.fixture(autouse=True)
def no_model_card(monkeypatch):
    monkeypatch.setattr(core_loop, "_write_card", lambda *args: None)


def run(output_dir, max_steps, resume=False):
    config = TrainingConfig(method="toy", output_dir=str(output_dir), seed=3, max_steps=max_steps,
                            train_batch_size=8, learning_rate=0.05, report_to="none", logging_steps=1,
                            checkpointing_steps=4, checkpoints_total_limit=None, resume=resume)
    return train(NoisyRegression(config))


def exported(output_dir):
    return load_file(output_dir / "export" / "net.safetensors")


def steps_logged(output_dir):
    return [json.loads(line)["step"] for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def killed_after(output_dir, steps, last_checkpoint):
    """A run that got to ``steps`` and whose checkpoints after ``last_checkpoint`` were never written."""
    run(output_dir, steps)
    for path in list_checkpoints(output_dir, complete_only=False):
        if int(path.name.split("-")[1]) > last_checkpoint:
            shutil.rmtree(path)
    shutil.rmtree(output_dir / "export")


def rewrite_manifest(checkpoint):
    """Make the manifest agree with the files as they are now (what a forger, or a bug, would do)."""
    manifest = json.loads((checkpoint / "facehub_checkpoint.json").read_text())
    for name in manifest["files"]:
        data = (checkpoint / name).read_bytes()
        manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (checkpoint / "facehub_checkpoint.json").write_text(json.dumps(manifest))


class Plant:
    """Unpickling this creates ``marker``: a stand-in for a planted pickle that runs code."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("straight")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(core_loop, "_write_card", lambda *args: None)
        run(output_dir, 12)
    return output_dir


def test_checkpoint_holds_only_facehub_files_with_a_manifest(straight):
    checkpoint = straight / "checkpoints" / "checkpoint-12"
    names = sorted(p.name for p in checkpoint.iterdir())
    assert names == ["ema_net.safetensors", "facehub_checkpoint.json", "model_net.safetensors", "optimizer_main.pt",
                     "progress.json", "rng_state_0.json"]
    manifest = json.loads((checkpoint / "facehub_checkpoint.json").read_text())
    assert manifest["step"] == 12 and manifest["num_processes"] == 1 and manifest["models"] == ["net"]
    data = (checkpoint / "optimizer_main.pt").read_bytes()
    assert manifest["files"]["optimizer_main.pt"] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert json.loads((checkpoint / "progress.json").read_text()) == {"step": 12, "micro_step": 12}
    # The export is the EMA copy, which is not the raw network.
    assert torch.equal(exported(straight)["weight"], load_file(checkpoint / "ema_net.safetensors")["weight"])
    assert not torch.equal(exported(straight)["weight"], load_file(checkpoint / "model_net.safetensors")["weight"])
    assert [p.name for p in list_checkpoints(straight)] == ["checkpoint-4", "checkpoint-8", "checkpoint-12"]


def test_resume_is_exact_and_metrics_keep_one_line_per_step(straight, tmp_path, caplog):
    killed_after(tmp_path, 10, last_checkpoint=8)
    assert steps_logged(tmp_path) == list(range(1, 11))
    with caplog.at_level(logging.INFO):
        summary = run(tmp_path, 12, resume=True)
    assert summary["step"] == 12
    assert "at step 8" in caplog.text
    assert steps_logged(tmp_path) == list(range(1, 13))  # steps 9 and 10 of the killed run were dropped
    assert json.loads((tmp_path / "run_state.json").read_text())["start_step"] == 8
    for name in ("model_net.safetensors", "ema_net.safetensors"):
        a = load_file(straight / "checkpoints" / "checkpoint-12" / name)
        b = load_file(tmp_path / "checkpoints" / "checkpoint-12" / name)
        assert all(torch.equal(a[key], b[key]) for key in a), name
    straight_log = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    resumed_log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["loss"] for m in resumed_log] == [m["loss"] for m in straight_log]


@pytest.mark.parametrize("damaged", ["model_net.safetensors", "optimizer_main.pt", "rng_state_0.json"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(straight, tmp_path, caplog, damaged):
    killed_after(tmp_path, 10, last_checkpoint=10)
    file = tmp_path / "checkpoints" / "checkpoint-10" / damaged
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])  # truncated, as by a full disk
    with caplog.at_level(logging.INFO):
        run(tmp_path, 12, resume=True)
    assert f"checkpoint-10 is not usable ({damaged} has" in caplog.text
    assert "falling back to checkpoint-8" in caplog.text and "at step 8" in caplog.text
    a, b = exported(straight), exported(tmp_path)
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert steps_logged(tmp_path) == list(range(1, 13))


def test_no_intact_checkpoint_is_a_clear_error(tmp_path):
    killed_after(tmp_path, 4, last_checkpoint=4)
    file = tmp_path / "checkpoints" / "checkpoint-4" / "model_net.safetensors"
    file.write_bytes(file.read_bytes()[:10])
    old_style = tmp_path / "checkpoints" / "checkpoint-2"  # what accelerate's save_state left behind
    old_style.mkdir()
    (old_style / "facehub_checkpoint.json").write_text(json.dumps({"step": 2, "method": "toy"}))
    with pytest.raises(CheckpointError, match=r"No intact checkpoint in .*checkpoint-4: model_net.safetensors has 10 "
                       r"bytes.*checkpoint-2: .*older checkpoints hold pickles.*set resume=false to start over"):
        run(tmp_path, 8, resume=True)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_planted_pickles_are_never_unpickled(tmp_path, caplog):
    marker = tmp_path / "code-ran"
    check = tmp_path / "plant-works"
    pickle.loads(pickle.dumps(Plant(check)))
    assert check.exists()  # the payload is live: unpickling it runs code
    payload = pickle.dumps(Plant(marker))

    killed_after(tmp_path / "run", 8, last_checkpoint=8)
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-8"
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin", "pytorch_model.bin"):
        (checkpoint / name).write_bytes(payload)  # accelerate's file names, which its load_state would unpickle
    with caplog.at_level(logging.INFO):
        run(tmp_path / "run", 12, resume=True)
    assert not marker.exists()
    assert "Ignoring files in" in caplog.text and "custom_checkpoint_0.pkl" in caplog.text

    # A planted file under a name facehub does read, with a manifest forged to match: refused, not run.
    (checkpoint / "optimizer_main.pt").write_bytes(payload)
    rewrite_manifest(checkpoint)
    with pytest.raises(CheckpointError, match=r"optimizer_main.pt holds something other than tensors"):
        run(tmp_path / "run", 12, resume=str(checkpoint))
    assert not marker.exists()


def test_a_damaged_rng_state_is_an_error(tmp_path):
    killed_after(tmp_path, 8, last_checkpoint=8)
    checkpoint = tmp_path / "checkpoints" / "checkpoint-8"
    state = json.loads((checkpoint / "rng_state_0.json").read_text())
    state["numpy"]["keys"] = state["numpy"]["keys"][:100]
    (checkpoint / "rng_state_0.json").write_text(json.dumps(state))
    rewrite_manifest(checkpoint)  # intact as far as the manifest knows: the state itself is wrong
    with pytest.raises(CheckpointError, match=r"random state .*rng_state_0.json is damaged \(NumPy's state has 100 "
                       r"keys, expected 624\)"):
        run(tmp_path, 12, resume=True)
    with pytest.raises(CheckpointError, match=r"Cannot resume from .*checkpoint-3: .*no facehub_checkpoint.json"):
        run(tmp_path, 12, resume=str(tmp_path / "checkpoints" / "checkpoint-3"))


def test_another_process_count_resumes_with_a_warning(tmp_path, caplog):
    killed_after(tmp_path, 8, last_checkpoint=8)
    checkpoint = tmp_path / "checkpoints" / "checkpoint-8"
    shutil.copy(checkpoint / "rng_state_0.json", checkpoint / "rng_state_1.json")
    manifest = json.loads((checkpoint / "facehub_checkpoint.json").read_text())
    manifest["num_processes"] = 2
    manifest["files"]["rng_state_1.json"] = {}
    (checkpoint / "facehub_checkpoint.json").write_text(json.dumps(manifest))
    rewrite_manifest(checkpoint)  # as a two-process run would have written it
    with caplog.at_level(logging.INFO):
        assert run(tmp_path, 10, resume=True)["step"] == 10
    assert "written by 2 process(es) and this run has 1" in caplog.text and "at step 8" in caplog.text
