"""Benchmark: FaceAnalyzer on one 512x512 photo against the libraries it is built on, measured in the same run.

    python benchmarks/bench_face_analyzer.py [--runs 30] [--image tests/data/photos/astronaut.png]

Prints the median wall time (time.perf_counter, after warm-up runs) of:

- FaceAnalyzer: detection, 68 + dense landmarks, head pose and the identity embedding (the whole analysis);
- FaceAnalyzer without the embedding;
- references: MediaPipe face mesh alone (static image mode, 478 points), dlib's HOG face detector alone (upsample 1,
  as face_recognition calls it), and dlib's 128-D descriptor alone on a given 5-point shape;

and compares the full analysis with the 100 ms target on 2 CPU cores. The photo is resized (area) to 512x512.
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


def median_ms(function, runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype", category=UserWarning)

    import dlib
    import mediapipe as mp

    from facehub.modeling.faces import FaceAnalyzer, load_image
    from facehub.modeling.faces.identity import DlibFaceDescriptor

    image = cv2.resize(load_image(args.image), (512, 512), interpolation=cv2.INTER_AREA)
    analyzer = FaceAnalyzer()
    analyzer_no_embedding = FaceAnalyzer(compute_embedding=False)
    faces = analyzer(image)
    if not faces:
        raise SystemExit(f"No face found in {args.image}; benchmark on a photo with a face.")

    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
    hog = dlib.get_frontal_face_detector()
    descriptor = DlibFaceDescriptor()
    shape = descriptor.shape_from_landmarks(faces[0].landmarks68)

    results = {
        "FaceAnalyzer (detect + 68/dense landmarks + pose + embedding)": median_ms(lambda: analyzer(image), args.runs),
        "FaceAnalyzer without embedding": median_ms(lambda: analyzer_no_embedding(image), args.runs),
        "reference: mediapipe face mesh alone": median_ms(lambda: mesh.process(image), args.runs),
        "reference: dlib HOG detector alone (upsample 1)": median_ms(lambda: hog(image, 1), args.runs),
        "reference: dlib 128-D descriptor alone": median_ms(
            lambda: descriptor.model.compute_face_descriptor(image, shape, 1), args.runs
        ),
    }
    print(f"image {args.image.name} resized to 512x512, {os.cpu_count()} CPU cores, median of {args.runs} runs")
    for name, value in results.items():
        print(f"  {name:<62} {value:7.1f} ms")
    total = results["FaceAnalyzer (detect + 68/dense landmarks + pose + embedding)"]
    own = total - results["reference: dlib 128-D descriptor alone"]
    print(f"  {'FaceAnalyzer minus the dlib descriptor (all our own work)':<62} {own:7.1f} ms")
    verdict = "within" if total <= TARGET_MS else "OVER"
    print(f"FaceAnalyzer {total:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main()
