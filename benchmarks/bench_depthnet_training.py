"""Benchmark: DepthNet training throughput (pairs per second) with one and two processes.

Runs the real trainer (``accelerate launch -m facehub.trainers.run depthnet``) on the embedded default's config,
``trainers/configs/depthnet-gan.yaml`` (DepthNet+GAN, paper preset), for a few hundred steps per process count, and
reads the step times the loop logs in ``metrics.jsonl``: throughput is measured between the first and the last log,
so start-up (imports, process group, data) is left out. Two processes on a CPU-only machine are two gloo processes
(``--multi_gpu --num_processes 2``); each takes a batch of ``train_batch_size`` pairs per step.

Usage: ``python benchmarks/bench_depthnet_training.py [--steps 300] [--batch 64] [--processes 1 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "trainers" / "configs" / "depthnet-gan.yaml"


def throughput(processes: int, steps: int, batch: int, workdir: Path) -> tuple[float, float]:
    """(pairs per second, seconds per step) of one run with ``processes`` processes."""
    out = workdir / f"p{processes}"
    launch = ["--cpu"] if processes == 1 else ["--multi_gpu", "--num_processes", str(processes)]
    command = [
        sys.executable, "-m", "accelerate.commands.launch", *launch, "-m", "facehub.trainers.run", "depthnet",
        "--config", str(CONFIG), f"max_steps={steps}", f"train_batch_size={batch}", f"output_dir={out}",
        "report_to=none", f"checkpointing_steps={10 * steps}", "logging_steps=25", "lr_warmup_steps=0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // processes))}
    subprocess.run(command, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first, last = logs[0], logs[-1]
    seconds_per_step = (last["time"] - first["time"]) / (last["step"] - first["step"])
    return processes * batch / seconds_per_step, seconds_per_step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64, help="pairs per process per step")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"DepthNet+GAN training ({CONFIG.relative_to(ROOT)}), {args.steps} steps, batch {args.batch} per process, "
          f"{os.cpu_count()} CPU cores")
    print(f"{'processes':>10} {'pairs/s':>10} {'ms/step':>10} {'vs 1 process':>14}")
    baseline = None
    with tempfile.TemporaryDirectory() as workdir:
        for processes in args.processes:
            pairs_per_second, seconds = throughput(processes, args.steps, args.batch, Path(workdir))
            baseline = baseline or pairs_per_second
            print(f"{processes:>10} {pairs_per_second:>10.0f} {1000 * seconds:>10.1f} "
                  f"{pairs_per_second / baseline:>13.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
