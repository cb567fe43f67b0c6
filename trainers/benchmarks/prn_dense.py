"""Benchmark: PRN-Dense speed against the machine's own floor, photo -> GLB, memory, and training throughput.

For each preset (``paper``: Table 1 at 256x256, ``fast``, ``cpu-small``), measured in this run:

- the network's FLOPs per face (``torch.utils.flop_counter``: 2 per multiply-add) and the machine's fp32
  matrix-multiply rate with the torch threads the network uses (a 2048x2048 ``torch.mm``, median of several runs)
  -> the floor ``FLOPs / rate``; the one-thread rate is printed too, for comparison with figures quoted per core;
- the network alone, batch 1, ``torch.inference_mode`` (median), eager and after
  ``model.compile(options={"freezing": True})`` (inductor, batch norms folded into the convolutions; the compile time
  is printed and left out of the median), each with its ratio to the floor (issue target: paper <= 1.25x the floor;
  a fast config < 50 ms);
- photo -> GLB: :class:`FaceReconstructionPipeline` on a 256x256 photo (detection, crop, network, mesh, colours,
  depth) plus ``export(".glb")``, and its ratio to the network's time (target <= 1.5x), reading the face once
  (``flip_test=False, crop_shift=0``) so that the ratio is the pipeline's cost around one pass (the default reads
  five crops and their mirrors: ten passes);
- the reference measured in the same run: MediaPipe's face mesh on the same photo;
- peak resident memory of a fresh process that runs the photo -> GLB path (``ru_maxrss``);
- with ``--train``: training throughput (faces per second) of ``facehub train prn_dense`` with one and two processes
  on a small synthetic world, read from the loop's ``metrics.jsonl`` between the first and last log (start-up left
  out).

Usage: ``facehub bench prn_dense [--runs 10] [--presets paper fast cpu-small] [--no-compile] [--train] [--photo FILE]``
(or ``python benchmarks/bench_prn_dense.py`` with the same options).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facehub.trainers.benchmarks.timing import median_seconds

#: A public-domain test photo of a source checkout (``--photo`` points elsewhere).
PHOTO = Path(__file__).resolve().parents[2] / "tests" / "data" / "photos" / "obama.jpg"


def matmul_rate(runs: int, threads: int | None = None) -> float:
    """fp32 FLOP/s of a 2048x2048 matrix product on this machine (median), with ``threads`` torch threads (default:
    the current setting)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
        return 2 * 2048**3 / median_seconds(lambda: torch.mm(a, b), runs)
    finally:
        torch.set_num_threads(previous)


def network_flops(model: torch.nn.Module, size: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops()


def photo_256(photo: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(photo).convert("RGB").resize((256, 256), Image.BILINEAR))


def peak_memory_mb(preset: str, photo: Path) -> float:
    """Peak RSS of a fresh process running photo -> GLB once with ``preset``."""
    code = (
        "import resource, sys, tempfile, numpy as np\n"
        "from PIL import Image\n"
        "from facehub.modeling.prn_dense import FaceReconstructionPipeline, PRNDenseModel\n"
        f"pipe = FaceReconstructionPipeline(prn=PRNDenseModel.from_preset({preset!r}).eval())\n"
        f"image = np.asarray(Image.open({str(photo)!r}).convert('RGB').resize((256, 256)))\n"
        "pipe(image, flip_test=False, crop_shift=0.0).reconstructions[0].export(tempfile.mkdtemp() + '/face.glb')\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def training_throughput(processes: int, workdir: Path, steps: int) -> float:
    out = workdir / f"train-p{processes}"
    launch = ["--cpu"] if processes == 1 else ["--multi_gpu", "--num_processes", str(processes)]
    command = [
        sys.executable, "-m", "accelerate.commands.launch", *launch, "-m", "facehub.trainers.run", "prn_dense",
        "--preset", "cpu-small", f"output_dir={out}",
        f"max_steps={steps}", "logging_steps=5", "report_to=none", f"checkpointing_steps={10 * steps}",
        "data.synthetic.num_identities=8", "data.synthetic.views_per_identity=4", "data.profiling_probability=0.0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // processes))}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    batch = 16
    seconds_per_step = (logs[-1]["time"] - logs[0]["time"]) / (logs[-1]["step"] - logs[0]["step"])
    return processes * batch / seconds_per_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facehub bench prn_dense", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--presets", nargs="+", default=["paper", "fast", "cpu-small"])
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled-network column (saves ~30 s "
                        "of inductor compilation per preset)")
    parser.add_argument("--train", action="store_true", help="also measure training throughput (1 and 2 processes)")
    parser.add_argument("--train-steps", type=int, default=40)
    parser.add_argument("--photo", type=Path, default=PHOTO, help="the face photo (default: the checkout's "
                        "tests/data/photos/obama.jpg)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.train_steps < 10:
        parser.error(f"--runs must be at least 1 and --train-steps at least 10, got {args.runs} and {args.train_steps}")
    if not args.photo.is_file():
        raise FileNotFoundError(f"The benchmark photo {args.photo} does not exist; pass --photo FILE (a face photo).")

    from facehub.modeling.faces import FaceAnalyzer
    from facehub.modeling.prn_dense import FaceReconstructionPipeline, PRNDenseModel

    torch.manual_seed(0)
    rate = matmul_rate(args.runs)
    rate_one_thread = matmul_rate(args.runs, threads=1)
    image = photo_256(args.photo)
    analyzer = FaceAnalyzer(compute_embedding=False)
    mediapipe = median_seconds(lambda: analyzer(image), args.runs)
    print(f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads; fp32 matmul rate "
          f"{rate / 1e9:.0f} GFLOP/s (the floor's; one thread: {rate_one_thread / 1e9:.0f} GFLOP/s); photo 256x256")
    print(f"reference: MediaPipe face detection + mesh on the photo: {1000 * mediapipe:.1f} ms")
    header = (f"{'preset':>10} {'input':>6} {'GFLOP':>7} {'floor ms':>9} {'network ms':>11} {'x floor':>8} "
              f"{'compiled ms':>12} {'x floor':>8} {'photo->GLB ms':>14} {'x network':>10} {'peak MB':>8}")
    print(header)
    with tempfile.TemporaryDirectory() as workdir:
        for preset in args.presets:
            model = PRNDenseModel.from_preset(preset).eval()
            size = int(model.config.sample_size)
            flops = network_flops(model, size)
            crop = torch.rand(1, 3, size, size) * 2 - 1

            def network(model=model, crop=crop):
                with torch.inference_mode():
                    model(crop)

            network_s = median_seconds(network, args.runs)
            pipe = FaceReconstructionPipeline(prn=model)
            glb = Path(workdir) / f"{preset}.glb"
            to_glb_s = median_seconds(lambda pipe=pipe, glb=glb: pipe(image, flip_test=False, crop_shift=0.0)
                                      .reconstructions[0].export(glb), args.runs)
            floor = flops / rate
            compiled = "-"
            if not args.no_compile:
                compiled_model = copy.deepcopy(model)
                compiled_model.compile(options={"freezing": True})
                start = time.perf_counter()
                network(compiled_model)
                print(f"  ({preset}: inductor compile {time.perf_counter() - start:.0f} s)")
                compiled_s = median_seconds(lambda m=compiled_model: network(m), args.runs)
                compiled = f"{1000 * compiled_s:>12.1f} {compiled_s / floor:>8.2f}"
            print(f"{preset:>10} {size:>6} {flops / 1e9:>7.1f} {1000 * floor:>9.1f} {1000 * network_s:>11.1f} "
                  f"{network_s / floor:>8.2f} {compiled:>21} {1000 * to_glb_s:>14.1f} {to_glb_s / network_s:>10.2f} "
                  f"{peak_memory_mb(preset, args.photo):>8.0f}")
        if args.train:
            print("training throughput (cpu-small, batch 16 per process, small synthetic world):")
            base = None
            for processes in (1, 2):
                faces_per_second = training_throughput(processes, Path(workdir), args.train_steps)
                base = base or faces_per_second
                print(f"  {processes} process(es): {faces_per_second:.1f} faces/s ({faces_per_second / base:.2f}x)")
    print(f"this process's peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
