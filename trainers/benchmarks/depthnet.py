"""Time DepthNet's face swap and face rotation on 512x512 photos, split into stages.

Stages (the pipelines' own ``timings``): ``analysis`` (MediaPipe face mesh and 68 keypoints of each photo, no identity
descriptor), ``depth`` (DepthNet's keypoint depths and the closed-form affine, eq. 1-3), ``warp`` (mesh, PyTorch3D
rasterisation, texture lookup; for the swap also the feathered paste), ``blend`` (swap: Reinhard colour transfer and
Poisson blending) and ``repair`` (swap with a repair network only). Medians over ``--runs`` calls after one warm-up.

Photos: the swap puts obama.jpg's face onto biden.jpg, both cut to a 512x512 square around the face; the rotation
turns astronaut.png (512x512) to yaw +25. Target: at most 0.5 s per swap and per rotation without repair.

``--repair`` adds a swap with section 3.3's CycleGAN repair: a :class:`FaceRepairPipeline` checkpoint (its ``repair``
generator), or a preset name of :data:`CYCLEGAN_PRESETS` (``cpu-small``, ``paper``, ...) for a freshly initialised
generator of that architecture, which costs the same time as a trained one.

``--train`` adds training throughput (pairs per second) with one and two processes: the real trainer (``accelerate
launch -m facehub.trainers.run depthnet``) on the embedded default's config (the ``default`` preset: DepthNet+GAN,
paper network) for ``--train-steps`` steps per process count, timed from the step times the loop logs in
``metrics.jsonl`` between the first and the last log, so start-up (imports, process group, data) is left out. Two
processes on a CPU-only machine are two gloo processes (``--multi_gpu --num_processes 2``); each takes a batch of
``--batch`` pairs per step. ``--train-only`` skips the photo timings.

Run ``facehub bench depthnet [--runs 7] [--threads 2] [--model facehub/depthnet] [--repair cpu-small] [--photos DIR]
[--train] [--train-steps 300] [--batch 64] [--processes 1 2]`` (or ``python benchmarks/bench_depthnet.py``, and
``python benchmarks/bench_depthnet_training.py`` for ``--train-only``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

#: The public-domain test photos of a source checkout (``--photos`` points elsewhere).
PHOTOS = Path(__file__).resolve().parents[2] / "tests" / "data" / "photos"
PHOTO_NAMES = ("obama.jpg", "biden.jpg", "astronaut.png")
SIZE = 512
TARGET_SECONDS = 0.5
STAGES = ("analysis", "depth", "warp", "blend", "repair")


def square_face_photo(path: Path, analyzer, size: int = SIZE) -> np.ndarray:
    """The photo cut to a square twice the face's size around it, resized to ``size`` x ``size``."""
    from facehub.modeling.faces import load_image

    image = load_image(path)
    x0, y0, x1, y1 = analyzer(image)[0].bbox
    half = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    top, left = int(max(cy - half, 0)), int(max(cx - half, 0))
    crop = image[top : int(cy + half), left : int(cx + half)]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def time_calls(call, runs: int) -> dict[str, float]:
    """Median seconds per stage and in total over ``runs`` calls (after one warm-up call)."""
    call()
    totals, stages = [], {name: [] for name in STAGES}
    for _ in range(runs):
        start = time.perf_counter()
        out = call()
        totals.append(time.perf_counter() - start)
        for name in STAGES:
            if name in out.timings:
                stages[name].append(out.timings[name])
    medians = {name: statistics.median(values) for name, values in stages.items() if values}
    medians["total"] = statistics.median(totals)
    return medians


def print_table(rows: dict[str, dict[str, float]]) -> None:
    header = f"{'':12s}" + "".join(f"{name:>10s}" for name in (*STAGES, "total")) + "   target"
    print(header)
    for label, medians in rows.items():
        cells = "".join(f"{1e3 * medians[n]:8.1f}ms" if n in medians else f"{'-':>10s}" for n in (*STAGES, "total"))
        if "repair" in medians:
            verdict = "(the target is for swaps without repair)"
        else:
            verdict = f"{'ok' if medians['total'] <= TARGET_SECONDS else 'SLOW'} (<= {1e3 * TARGET_SECONDS:.0f} ms)"
        print(f"{label:12s}{cells}   {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facehub bench depthnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed calls per pipeline (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--model", default="facehub/depthnet", help="DepthNet bundle id or folder")
    parser.add_argument("--repair", default=None, help="FaceRepairPipeline id / folder, or a CycleGAN preset name")
    parser.add_argument("--photos", type=Path, default=PHOTOS,
                        help=f"folder holding {', '.join(PHOTO_NAMES)} (default: the checkout's tests/data/photos)")
    parser.add_argument("--train", action="store_true", help="also measure training throughput")
    parser.add_argument("--train-only", action="store_true", help="only measure training throughput")
    parser.add_argument("--train-steps", "--steps", type=int, default=300, help="training steps per process count")
    parser.add_argument("--batch", type=int, default=64, help="pairs per process per training step")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts to train with")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    if args.train_steps < 50 or args.batch < 1 or min(args.processes) < 1:
        parser.error("--train-steps must be at least 50 (two logs), --batch and --processes at least 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not args.train_only:
        time_pipelines(args)
    if args.train or args.train_only:
        print_training_throughput(args.processes, args.train_steps, args.batch)
    return 0


def time_pipelines(args: argparse.Namespace) -> None:
    """Per-stage medians of the swap and rotation pipelines (and the swap with repair), printed as a table."""
    missing = [name for name in PHOTO_NAMES if not (args.photos / name).is_file()]
    if missing:
        raise FileNotFoundError(f"The benchmark photos {', '.join(missing)} are not in {args.photos}; pass --photos "
                                "DIR with the public-domain photos of a facehub checkout (tests/data/photos).")

    from facehub.modeling.depthnet.pipeline_face_rotation import FaceRotationPipeline
    from facehub.modeling.depthnet.pipeline_face_swap import FaceSwapPipeline
    from facehub.modeling.faces import FaceAnalyzer, load_image

    swap = FaceSwapPipeline.from_pretrained(args.model)
    rotate = FaceRotationPipeline.from_pretrained(args.model)
    analyzer = FaceAnalyzer(compute_embedding=False)
    source = square_face_photo(args.photos / "obama.jpg", analyzer)
    target = square_face_photo(args.photos / "biden.jpg", analyzer)
    portrait = load_image(args.photos / "astronaut.png")
    assert source.shape == target.shape == portrait.shape == (SIZE, SIZE, 3)

    rows = {
        "swap": time_calls(lambda: swap(source, target, output_type="np"), args.runs),
        "rotation": time_calls(lambda: rotate(portrait, yaw=25.0, measure=False, output_type="np"), args.runs),
    }
    if args.repair is not None:
        repairing = FaceSwapPipeline(depth_net=swap.depth_net, repair=load_repair(args.repair))
        rows["swap+repair"] = time_calls(lambda: repairing(source, target, output_type="np"), args.runs)
    print(
        f"DepthNet on {SIZE}x{SIZE} photos, median of {args.runs} runs, {torch.get_num_threads()} torch threads, "
        f"{args.model}" + (f", repair: {args.repair}" if args.repair else "")
    )
    print_table(rows)


def training_throughput(processes: int, steps: int, batch: int, workdir: Path) -> tuple[float, float]:
    """(pairs per second, seconds per step) of one training run with ``processes`` processes."""
    out = workdir / f"p{processes}"
    launch = ["--cpu"] if processes == 1 else ["--multi_gpu", "--num_processes", str(processes)]
    command = [
        sys.executable, "-m", "accelerate.commands.launch", *launch, "-m", "facehub.trainers.run", "depthnet",
        "--preset", "default", f"max_steps={steps}", f"train_batch_size={batch}", f"output_dir={out}",
        "report_to=none", f"checkpointing_steps={10 * steps}", "logging_steps=25", "lr_warmup_steps=0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // processes))}
    run = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"The {processes}-process training run failed: {run.stderr.strip().splitlines()[-1:]}")
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first, last = logs[0], logs[-1]
    seconds_per_step = (last["time"] - first["time"]) / (last["step"] - first["step"])
    return processes * batch / seconds_per_step, seconds_per_step


def print_training_throughput(process_counts: list[int], steps: int, batch: int) -> None:
    print(f"DepthNet+GAN training (the `default` preset), {steps} steps, batch {batch} per process, "
          f"{os.cpu_count()} CPU cores")
    print(f"{'processes':>10} {'pairs/s':>10} {'ms/step':>10} {'vs first':>10}")
    baseline = None
    with tempfile.TemporaryDirectory() as workdir:
        for processes in process_counts:
            pairs_per_second, seconds = training_throughput(processes, steps, batch, Path(workdir))
            baseline = baseline or pairs_per_second
            print(f"{processes:>10} {pairs_per_second:>10.0f} {1000 * seconds:>10.1f} "
                  f"{pairs_per_second / baseline:>9.2f}x")


def load_repair(name: str):
    """The CycleGAN generator for ``--repair``: a preset's architecture (untrained) or a saved FaceRepairPipeline's."""
    from facehub.modeling.cyclegan import CYCLEGAN_PRESETS, CycleGANGenerator, FaceRepairPipeline, cyclegan_config

    if name in CYCLEGAN_PRESETS:
        return CycleGANGenerator(**cyclegan_config(name).generator_kwargs()).eval()
    return FaceRepairPipeline.from_pretrained(name).repair


if __name__ == "__main__":
    sys.exit(main())
