"""Measure, on training photos, the two facts behind the 68 landmarks' jaw, and compare them with the tables in code.

1. **Where the jaw points lie along MediaPipe's face oval** (``landmarks68.JAW_ON_FACE_OVAL``). Photos with 68-point
   labels (dlib's example photos, whose labels dlib's iBUG-trained shape predictor made, and the FFHQ samples of
   ``photometric_optimization``, labelled by FAN) go through the FaceAnalyzer. On each face the analyzer reads as
   turned by at most ``--max-yaw`` degrees, each labelled jaw point is projected onto the analyzer's face oval (a
   polyline through :data:`FACE_OVAL`'s vertices), giving its position along the oval. The median over faces, made
   left/right symmetric (position ``36 - t`` mirrors ``t``), is printed beside the table's.
2. **How deep the ear lies behind the face oval** (``jaw_depth.EAR_SETBACK_MM``). AFLW crops whose ear lobes were
   hand-labelled are fitted (:func:`facehub.trainers.data.fit_labels.fit_photo`'s rule: the analyzer's mesh where it
   reads the face as turned by at most 40 degrees, AFLW's hand points always). With the fitted camera
   (``photo = s R (X - centroid) + t``), each labelled ear gives two linear equations on its offset from the oval
   vertex at iBUG jaw point 2 (or 16) in the model's frame; a robust least-squares solve over all crops (Huber
   weights) gives that offset, in millimetres. Depth is seen through the spread of yaws. The chin, a point the model
   has, is measured the same way as a check of the method: its offset should be near zero.

Both sets of photos are training photos in ../shared/data (see its README); AFLW2000-3D, the evaluation half, is not
read.

Usage: ``python benchmarks/measure_jaw_landmarks.py [--data ../shared/data] [--crops 600] [--max-yaw 20]``
(``--crops 0`` skips part 2; the figures in code came from 2,400 crops with an ear).
"""

from __future__ import annotations

import argparse
import glob
import json
import random
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm


def oval_position(point: np.ndarray, polyline: np.ndarray, first: int, last: int) -> float:
    """Position (segment index + fraction) of ``point``'s nearest point on ``polyline[first..last]``."""
    best, position = np.inf, float(first)
    for i in range(first, last):
        a, b = polyline[i], polyline[i + 1]
        s = float(np.clip(np.dot(point - a, b - a) / max(np.dot(b - a, b - a), 1e-12), 0.0, 1.0))
        distance = float(np.linalg.norm(point - (a + s * (b - a))))
        if distance < best:
            best, position = distance, i + s
    return position


def labelled_faces(data: Path):
    """(image, (68, 2) labels) of the photos with 68-point labels."""
    from facehub.modeling.faces.image_io import load_image

    for path in sorted(glob.glob(str(data / "dlib/examples/faces/*.dlib_faces.json"))):
        image = load_image(path.replace(".dlib_faces.json", ".jpg"))
        for face in json.loads(Path(path).read_text())["faces"]:
            if face.get("landmarks68"):
                yield image, np.asarray(face["landmarks68"], np.float64)
    for path in sorted(glob.glob(str(data / "photometric_optimization/FFHQ/*.npy"))):
        yield load_image(path.replace(".npy", ".png")), np.load(path).astype(np.float64)


def measure_oval_positions(data: Path, max_yaw: float) -> None:
    import cv2

    from facehub.modeling.faces import FaceAnalyzer
    from facehub.modeling.geometry.landmarks68 import FACE_OVAL, JAW_ON_FACE_OVAL

    analyzer = FaceAnalyzer(compute_embedding=False)
    positions, seen = [], 0
    for image, labels in tqdm(list(labelled_faces(data)), desc="68-point labelled faces"):
        seen += 1
        upscale = max(1.0, 300.0 / float(np.ptp(labels[:, 0])))  # small faces: enlarge for the analyzer
        big = cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC) if upscale > 1 else image
        eyes = np.linalg.norm(labels[36:42].mean(0) - labels[42:48].mean(0))
        found = [(float(np.linalg.norm(np.asarray(f.landmarks68) / upscale - labels, axis=1).mean()), f)
                 for f in analyzer(np.ascontiguousarray(big))]
        if not found:
            continue
        error, face = min(found, key=lambda pair: pair[0])
        if error > 0.5 * eyes or abs(float(face.pose[0])) > max_yaw:
            continue
        oval = np.asarray(face.dense_landmarks)[list(FACE_OVAL), :2] / upscale
        positions.append([oval_position(labels[k], oval, *((4, 19) if k < 8 else (17, 20) if k == 8 else (18, 33)))
                          for k in range(17)])
    positions = np.asarray(positions)
    median = np.median(positions, axis=0)
    symmetric = [(median[k] + len(FACE_OVAL) - median[16 - k]) / 2.0 for k in range(8)]
    print(f"\n1. Jaw points along the face oval: {len(positions)} faces with |yaw| <= {max_yaw:g} of {seen} labelled")
    print("| iBUG point | measured (median) | left/right symmetric | table |\n|---|---|---|---|")
    for k in range(17):
        mirrored = symmetric[k] if k < 8 else (len(FACE_OVAL) - symmetric[16 - k] if k > 8 else 18.0)
        print(f"| {k + 1} | {median[k]:.2f} | {mirrored:.2f} | {JAW_ON_FACE_OVAL[k]:.2f} |")


def _fit_crop(job):
    name, folder, points, visible, yaw = job
    import cv2

    from facehub.modeling.face_fitting import FaceFittingConfig, fit_face
    from facehub.modeling.face_fitting.fitting import single_threaded_torch
    from facehub.modeling.faces import FaceAnalyzer
    from facehub.modeling.faces.image_io import load_image
    from facehub.trainers.data.fit_labels import MIN_HAND_POINTS, HandLabels, aflw21_sparse_landmarks

    global _ANALYZER
    if "_ANALYZER" not in globals():
        _ANALYZER = FaceAnalyzer(compute_embedding=False)
    upscale = 3  # the crops are 120 px
    image = load_image(Path(folder) / name)
    image = np.ascontiguousarray(cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC))
    points = points * upscale
    faces = _ANALYZER(image)
    face = faces[0] if faces and abs(float(faces[0].pose[0])) <= 40 and abs(yaw) <= 40 else None
    sparse = aflw21_sparse_landmarks(HandLabels(np.where(visible[:, None], points, 0.0), visible, yaw))
    if face is None and len(sparse.used[1]) < MIN_HAND_POINTS:
        return None
    with single_threaded_torch():
        fitted = fit_face(image, face, config=FaceFittingConfig(appearance_iterations=0), sparse_landmarks=sparse,
                          compute_depth=False)
    if fitted.losses.get("sparse_landmarks", 0.0) > 0.04:
        return None
    c = fitted.coefficients
    return dict(points=points, visible=visible, identity=c.identity, expression=c.expression, rotation=c.rotation,
                translation=c.translation, scale=c.scale)


def offset_from_vertex(fits: list, label: int, vertex: int, model) -> tuple[np.ndarray, int]:
    """Robust least-squares offset (model frame, mm) of AFLW point ``label`` from mesh ``vertex`` over ``fits``."""
    import torch

    from facehub.modeling.geometry.rotations import rotation_matrix

    rows, targets = [], []
    for fit in fits:
        if not fit["visible"][label]:
            continue
        shape = model.shape(torch.tensor(fit["identity"])[None].float(),
                            torch.tensor(fit["expression"])[None].float())[0].double().numpy()
        rotation = rotation_matrix(*fit["rotation"])
        seen = (fit["points"][label] - fit["translation"][:2]) / fit["scale"]
        rows.append(rotation[:2])
        targets.append(seen - (rotation @ (shape[vertex] - shape.mean(axis=0)))[:2])
    rows, targets = np.asarray(rows), np.asarray(targets)
    weights = np.ones(len(rows))
    for _ in range(10):  # Huber weights at 1.5 median residuals
        offset = np.linalg.lstsq((rows * weights[:, None, None]).reshape(-1, 3),
                                 (targets * weights[:, None]).reshape(-1), rcond=None)[0]
        residual = np.linalg.norm(np.einsum("nij,j->ni", rows, offset) - targets, axis=1)
        limit = 1.5 * float(np.median(residual)) + 1e-9
        weights = np.sqrt(np.where(residual < limit, 1.0, limit / residual))
    return offset, len(rows)


def measure_ear_setback(data: Path, crops: int) -> None:
    from multiprocessing import get_context

    from facehub.modeling.geometry.jaw_depth import EAR_SETBACK_MM
    from facehub.modeling.geometry.morphable import MorphableFaceModel
    from facehub.trainers.data.fit_labels import read_aflw21_labels

    labels = read_aflw21_labels(data / "2DASL/AFLW_GT_crop_labels.csv")
    listed = [Path(line.strip()).name for line in (data / "splits/train_landmarks_labelled.txt").read_text().split()
              if "AFLW_GT_crop" in line]
    folder = str(data / "2DASL/AFLW_GT_crop")
    jobs = [(n, folder, labels[n].points, labels[n].visible, labels[n].yaw or 0.0) for n in listed
            if n in labels and (labels[n].visible[12] or labels[n].visible[16])]
    random.Random(0).shuffle(jobs)
    jobs = jobs[:crops]
    with get_context("spawn").Pool(2) as pool:
        fits = [f for f in tqdm(pool.imap_unordered(_fit_crop, jobs, chunksize=4), total=len(jobs),
                                desc="fitting AFLW crops with an ear") if f is not None]
    model = MorphableFaceModel.default()
    print(f"\n2. Offsets from the mesh in the model's frame (mm; x right, y down, z towards the camera), "
          f"{len(fits)} fitted crops of {len(jobs)}")
    print("| point | from vertex | x | y | z | crops |\n|---|---|---|---|---|---|")
    depths = []
    for name, label, vertex in (("ear lobe, image left", 12, 234), ("ear lobe, image right", 16, 454),
                                ("chin (check)", 20, 152)):
        offset, count = offset_from_vertex(fits, label, vertex, model)
        print(f"| {name} | {vertex} | {offset[0]:+.1f} | {offset[1]:+.1f} | {offset[2]:+.1f} | {count} |")
        if label != 20:
            depths.append(-offset[2])
    print(f"\nThe ear lies {np.mean(depths):.1f} mm behind the oval at iBUG point 2 / 16; the table has "
          f"EAR_SETBACK_MM = {EAR_SETBACK_MM}.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data", help="the shared photos folder (its README)")
    parser.add_argument("--crops", type=int, default=600, help="AFLW crops with an ear to fit (0: skip part 2)")
    parser.add_argument("--max-yaw", type=float, default=20.0, help="largest |yaw| of a labelled face in part 1")
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / "splits").is_dir():
        raise SystemExit(f"--data {data} is not the shared photos folder (no splits/ inside).")
    measure_oval_positions(data, args.max_yaw)
    if args.crops > 0:
        measure_ear_setback(data, args.crops)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
