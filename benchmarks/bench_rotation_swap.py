"""Benchmark: seconds to rotate and to swap a 512 px photo with every registered rotation and swap method, by stage.

The rotation issue's target is a 512 px photo rotated or swapped in at most a second on a CPU. Each method runs
``--runs`` times after one warm-up call on ``tests/data/photos/astronaut.png`` (``--photo`` for another; ``--target``
for the swap's target, obama.jpg by default), both resized to 512 px on their longer side (``--size``) and prints the median total and the median of each stage the pipeline reports
in ``out.timings``; the DepthNet warp, the paper's method, is the reference row measured in the same run, and each
row gives its ratio to it.

Run ``python benchmarks/bench_rotation_swap.py [--runs 5] [--yaw 30]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def timed(call, runs: int) -> tuple[float, dict[str, float]]:
    """Median seconds of ``call()`` over ``runs`` runs after a warm-up, and the median of each reported stage."""
    call()
    totals, stages = [], {}
    for _ in range(runs):
        start = time.perf_counter()
        out = call()
        totals.append(time.perf_counter() - start)
        for name, seconds in (getattr(out, "timings", None) or {}).items():
            stages.setdefault(name, []).append(seconds)
    return float(np.median(totals)), {name: float(np.median(v)) for name, v in stages.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default=str(ROOT / "tests" / "data" / "photos" / "astronaut.png"))
    parser.add_argument("--target", default=str(ROOT / "tests" / "data" / "photos" / "obama.jpg"),
                        help="The swap's target photo (the source is --photo).")
    parser.add_argument("--size", type=int, default=512,
                        help="Resize both photos to this longer side first (default 512, the target's size; 0 keeps them).")
    parser.add_argument("--runs", type=int, default=5, help="Timed runs per method (default 5).")
    parser.add_argument("--yaw", type=float, default=30.0, help="Rotation request in degrees (default 30).")
    args = parser.parse_args(argv)

    import torch

    from facehub import methods
    from facehub.modeling.faces.image_io import load_image

    photo, target = load_image(args.photo), load_image(args.target)
    if args.size:
        import cv2

        def resized(image):
            scale = args.size / max(image.shape[:2])
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)

        photo, target = resized(photo), resized(target)
    print(f"photo {photo.shape[1]}x{photo.shape[0]}, target {target.shape[1]}x{target.shape[0]}, "
          f"{torch.get_num_threads()} threads, median of {args.runs} runs\n")
    for capability in ("rotation", "swap"):
        rows = {}
        for name in methods.available(capability):
            pipe = methods.load(name, capability)
            if capability == "rotation":
                rows[name] = timed(lambda pipe=pipe: pipe(photo, yaw=args.yaw, output_type="np"), args.runs)
            else:
                rows[name] = timed(lambda pipe=pipe: pipe(photo, target, output_type="np"), args.runs)
        reference = rows.get("depthnet", (None,))[0]
        print(f"| {capability} | s / call | x DepthNet warp | stages (s) |\n|---|---|---|---|")
        for name, (total, stages) in rows.items():
            ratio = "-" if not reference else f"{total / reference:.2f}"
            parts = ", ".join(f"{stage} {seconds:.3f}" for stage, seconds in stages.items())
            print(f"| {name} | {total:.3f} | {ratio} | {parts} |")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
