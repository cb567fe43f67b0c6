"""Benchmark: FaceAnalyzer on one 512x512 photo against the libraries it is built on, measured in the same run.

    python benchmarks/bench_face_analyzer.py [--runs 30] [--image tests/data/photos/astronaut.png] [--torch-threads N]

Prints the median and the fastest wall time (time.perf_counter, after warm-up runs) of:

- FaceAnalyzer: detection, 68 + dense landmarks, head pose and the identity embedding (the whole analysis), with the
  default PyTorch descriptor, and with dlib's own descriptor (``DlibFaceDescriptor(backend="dlib")``);
- FaceAnalyzer without the embedding;
- the identity descriptor alone on a 150x150 chip: dlib's network in PyTorch (:mod:`facehub.modeling.faces.dlib_resnet`)
  and dlib's own ``compute_face_descriptor`` on the same chip (the reference), and the chip extraction alone;
- references: MediaPipe face mesh alone (static image mode, 478 points), dlib's HOG face detector alone (upsample 1,
  as face_recognition calls it);

and compares the full analysis (median) with the 100 ms target on 2 CPU cores. The photo is resized (area) to 512x512. The
two descriptor timings are interleaved run by run, so background load on a shared machine hits both alike.
``--torch-threads 1`` measures PyTorch single-threaded (the library itself never changes torch's thread settings).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

import cv2

TARGET_MS = 100.0
DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / "tests" / "data" / "photos" / "astronaut.png"


def timings_ms(function, runs: int, warmup: int = 3) -> tuple[float, float]:
    """(median, fastest) milliseconds of ``function``."""
    return interleaved_timings_ms({"": function}, runs, warmup)[""]


def interleaved_timings_ms(functions: dict, runs: int, warmup: int = 3) -> dict[str, tuple[float, float]]:
    """(median, fastest) milliseconds of each function, run in turn (a, b, a, b, ...) so that load changes affect
    all alike."""
    for _ in range(warmup):
        for function in functions.values():
            function()
    times = {name: [] for name in functions}
    for _ in range(runs):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: (statistics.median(values), min(values)) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="call torch.set_num_threads with this before measuring (default: leave torch's own choice, one per core)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype", category=UserWarning)

    import dlib
    import mediapipe as mp
    import torch

    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)

    from facehub.modeling.faces import FaceAnalyzer, load_image
    from facehub.modeling.faces.identity import DlibFaceDescriptor

    load_before = os.getloadavg()[0]  # other processes on the machine slow everything down; printed for context
    image = cv2.resize(load_image(args.image), (512, 512), interpolation=cv2.INTER_AREA)
    analyzer = FaceAnalyzer()
    analyzer_dlib = FaceAnalyzer()
    analyzer_dlib.descriptor = DlibFaceDescriptor(backend="dlib")
    analyzer_no_embedding = FaceAnalyzer(compute_embedding=False)
    faces = analyzer(image)
    if not faces:
        raise SystemExit(f"No face found in {args.image}; benchmark on a photo with a face.")

    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
    hog = dlib.get_frontal_face_detector()
    descriptor = analyzer.descriptor
    reference = DlibFaceDescriptor(backend="dlib")
    chip = descriptor.chip(image, faces[0].landmarks68)
    difference = abs(descriptor.describe_chips(chip) - reference.describe_chips(chip)).max()

    descriptors = interleaved_timings_ms(
        {
            "torch": lambda: descriptor.describe_chips(chip),
            "dlib": lambda: reference.describe_chips(chip),
        },
        args.runs,
    )
    analyses = interleaved_timings_ms(
        {
            "torch": lambda: analyzer(image),
            "dlib": lambda: analyzer_dlib(image),
            "none": lambda: analyzer_no_embedding(image),
        },
        args.runs,
    )
    full = "FaceAnalyzer (detect + 68/dense landmarks + pose + embedding)"
    results = {
        full: analyses["torch"],
        "FaceAnalyzer with dlib's own descriptor (backend='dlib')": analyses["dlib"],
        "FaceAnalyzer without embedding": analyses["none"],
        "128-D descriptor alone, PyTorch port (150x150 chip)": descriptors["torch"],
        "128-D descriptor alone, dlib compute_face_descriptor (same chip)": descriptors["dlib"],
        "descriptor chip extraction alone (dlib.get_face_chip)": timings_ms(
            lambda: descriptor.chip(image, faces[0].landmarks68), args.runs
        ),
        "reference: mediapipe face mesh alone": timings_ms(lambda: mesh.process(image), args.runs),
        "reference: dlib HOG detector alone (upsample 1)": timings_ms(lambda: hog(image, 1), args.runs),
    }
    print(
        f"image {args.image.name} resized to 512x512, {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch "
        f"threads, {args.runs} runs each, load average before / after {load_before:.1f} / {os.getloadavg()[0]:.1f}"
    )
    print(f"  {'':<66} {'median':>7}    {'fastest':>7}")
    for name, (median, fastest) in results.items():
        print(f"  {name:<66} {median:7.1f} ms {fastest:7.1f} ms")
    print(f"  {'max |PyTorch - dlib| descriptor component on this chip':<66} {difference:9.1e}")
    total = results[full][0]
    verdict = "within" if total <= TARGET_MS else "OVER"
    print(f"FaceAnalyzer {total:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main()
