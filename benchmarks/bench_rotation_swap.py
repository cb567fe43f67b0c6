"""Benchmark: seconds to rotate and to swap a 512 px photo with every registered rotation and swap method, by stage.

The rotation issue's target is a 512 px photo rotated or swapped in at most a second on a CPU. Each method runs
``--runs`` times after one warm-up call on ``tests/data/photos/astronaut.png`` (``--photo`` for another; ``--target``
for the swap's target, obama.jpg by default), both resized to 512 px on their longer side (``--size``), and the
benchmark prints the median total and the median of each stage the pipeline reports in ``out.timings``; the DepthNet
warp, the paper's method, is the reference row measured in the same run, and each row gives its ratio to it. Each row
also gives the minor page faults a call (pages the kernel had to map and zero) and the process's resident memory, and
the header the allocator's settings: like the ``facehub`` command, the benchmark first lets the process reuse freed
memory (:func:`facehub.reuse_freed_memory`); ``--default-allocator`` measures glibc's defaults instead, as code that
imports facehub into its own process gets them unless it makes the same call. Each method runs in a process of its own,
as in a demo or script serving one method: what the allocator has kept or given back depends on what the process did
before, so methods timed one after another in one process would change each other's figures.

Run ``python benchmarks/bench_rotation_swap.py [--runs 5] [--yaw 30] [--default-allocator]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def minor_page_faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed(call, runs: int) -> tuple[float, dict[str, float], float]:
    """Median seconds of ``call()`` over ``runs`` runs after a warm-up, the median of each reported stage, and the
    median minor page faults a call."""
    call()
    totals, stages, faults = [], {}, []
    for _ in range(runs):
        before = minor_page_faults()
        start = time.perf_counter()
        out = call()
        totals.append(time.perf_counter() - start)
        faults.append(minor_page_faults() - before)
        for name, seconds in (getattr(out, "timings", None) or {}).items():
            stages.setdefault(name, []).append(seconds)
    return float(np.median(totals)), {name: float(np.median(v)) for name, v in stages.items()}, float(np.median(faults))


def resident_mib() -> float:
    """This process's resident memory now, MiB (Linux; NaN elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


def measure_one(args, capability: str, name: str) -> dict:
    """Time one method in this process (``--only``): its row as a dict."""
    import torch

    from facehub import methods, reuse_freed_memory
    from facehub.modeling.faces.image_io import load_image

    allocator = "glibc defaults" if args.default_allocator else (
        "reusing freed memory" if reuse_freed_memory() else "unchanged (opted out, or not glibc)")
    photo, target = load_image(args.photo), load_image(args.target)
    if args.size:
        import cv2

        def resized(image):
            scale = args.size / max(image.shape[:2])
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)

        photo, target = resized(photo), resized(target)
    pipe = methods.load(name, capability)
    if capability == "rotation":
        total, stages, faults = timed(lambda: pipe(photo, yaw=args.yaw, output_type="np"), args.runs)
    else:
        total, stages, faults = timed(lambda: pipe(photo, target, output_type="np"), args.runs)
    return {"total": total, "stages": stages, "faults": faults, "resident_mib": resident_mib(),
            "allocator": allocator, "threads": torch.get_num_threads(),
            "photo": f"{photo.shape[1]}x{photo.shape[0]}", "target": f"{target.shape[1]}x{target.shape[0]}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default=str(ROOT / "tests" / "data" / "photos" / "astronaut.png"))
    parser.add_argument("--target", default=str(ROOT / "tests" / "data" / "photos" / "obama.jpg"),
                        help="The swap's target photo (the source is --photo).")
    parser.add_argument("--size", type=int, default=512,
                        help="Resize both photos to this longer side first (default 512; 0 keeps them).")
    parser.add_argument("--runs", type=int, default=5, help="Timed runs per method (default 5).")
    parser.add_argument("--yaw", type=float, default=30.0, help="Rotation request in degrees (default 30).")
    parser.add_argument("--default-allocator", action="store_true",
                        help="Keep glibc's default allocator settings instead of reusing freed memory as the facehub "
                        "command does.")
    parser.add_argument("--only", metavar="CAPABILITY:NAME",
                        help="Time this one method in this process and print its row as JSON (what each method's "
                        "own process runs).")
    args = parser.parse_args(argv)
    if args.only:
        capability, _, name = args.only.partition(":")
        print(json.dumps(measure_one(args, capability, name)))
        return 0

    from facehub import methods

    passed = [f"--photo={args.photo}", f"--target={args.target}", f"--size={args.size}", f"--runs={args.runs}",
              f"--yaw={args.yaw}"] + (["--default-allocator"] if args.default_allocator else [])
    header = False
    for capability in ("rotation", "swap"):
        rows = {}
        for name in methods.available(capability):
            run = subprocess.run([sys.executable, __file__, f"--only={capability}:{name}", *passed],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                print(run.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{capability} {name}: the benchmark's process failed (its error is above)")
            rows[name] = json.loads(run.stdout.strip().splitlines()[-1])
            if not header:
                row = rows[name]
                print(f"photo {row['photo']}, target {row['target']}, {row['threads']} threads, allocator "
                      f"{row['allocator']}, median of {args.runs} runs, each method in its own process\n")
                header = True
        reference = rows["depthnet"]["total"] if "depthnet" in rows else None
        print(f"| {capability} | s / call | x DepthNet warp | page faults / call | resident MiB | stages (s) |\n"
              "|---|---|---|---|---|---|")
        for name, row in rows.items():
            ratio = "-" if not reference else f"{row['total'] / reference:.2f}"
            parts = ", ".join(f"{stage} {seconds:.3f}" for stage, seconds in row["stages"].items())
            print(f"| {name} | {row['total']:.3f} | {ratio} | {row['faults']:.0f} | {row['resident_mib']:.0f} | "
                  f"{parts} |")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
