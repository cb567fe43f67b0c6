"""Launcher flags take effect: with the config silent, the processes run with the launcher's mixed precision and
gradient accumulation; a value written in the config wins. Read back from what the launched process's Accelerator
reported (output_dir/run_state.json) and from the step counters of its last checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

TINY = {
    "method": "depthnet",
    "seed": 1,
    "max_steps": 4,
    "train_batch_size": 16,
    "report_to": "none",
    "logging_steps": 2,
    "checkpointing_steps": 4,
    "model": {"preset": "cpu-small", "hidden_sizes": [16, 16]},
    "data": {"source": "rigid_pairs", "num_pairs": 256},
}


def write_config(folder: Path, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump({**TINY, "output_dir": str(folder / "out"), **fields}))
    return path


def run_state(folder: Path) -> tuple[dict, dict]:
    out = folder / "out"
    state = json.loads((out / "run_state.json").read_text())
    progress = json.loads((out / "checkpoints" / "checkpoint-4" / "progress.json").read_text())
    return state, progress


def test_accelerate_launch_flags_reach_the_accelerator_when_the_config_is_silent(tmp_path):
    config = write_config(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "2"}
    run = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--mixed_precision", "bf16",
         "--num_processes", "1", "-m", "facehub.trainers.run", "depthnet", "--config", str(config)],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    state, progress = run_state(tmp_path)
    assert (state["mixed_precision"], state["gradient_accumulation_steps"], state["num_processes"]) == ("bf16", 2, 1)
    assert progress == {"step": 4, "micro_step": 8}


def test_facehub_train_passes_accumulation_and_the_config_wins_over_the_launcher(tmp_path):
    config = write_config(tmp_path, mixed_precision="no")
    facehub = Path(sys.executable).with_name("facehub")
    env = {key: value for key, value in os.environ.items() if key != "ACCELERATE_GRADIENT_ACCUMULATION_STEPS"}
    run = subprocess.run(
        [str(facehub), "train", "depthnet", "--config", str(config), "--cpu", "--mixed_precision", "bf16",
         "--gradient_accumulation_steps", "3"],
        capture_output=True, text=True, timeout=240, env={**env, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    state, progress = run_state(tmp_path)
    assert (state["mixed_precision"], state["gradient_accumulation_steps"]) == ("no", 3), (
        "facehub train must hand --gradient_accumulation_steps to the processes as ACCELERATE_GRADIENT_ACCUMULATION_"
        "STEPS: accelerate launch exports it only for DeepSpeed"
    )
    assert progress == {"step": 4, "micro_step": 12}
