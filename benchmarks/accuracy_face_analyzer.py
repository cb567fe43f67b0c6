"""Accuracy of the face front-end against exact ground truth: the synthetic face world's rendered faces, and
optionally the yaw AFLW labels on real photos.

For each rendered face: 68-point NME (mean error over sqrt(w * h) of the true landmarks' box) of
``FaceAnalyzer().landmarks68`` and the absolute error of its (yaw, pitch, roll) against the pose the world applied.
Rendered faces have no hair, ears or neck, so this is a check of the pipeline on known geometry, not a substitute
for a real benchmark such as AFLW2000-3D.

``--aflw-labels CSV`` adds real photos over all yaws: crops in 3DDFA's ``AFLW_GT_crop`` layout (the CSV's
``file`` and ``yaw_deg`` columns; images in ``--aflw-images``, by default the folder beside the CSV named like it
without ``_labels.csv``), ``--per-bin`` of them drawn from each 10-degree bin of labelled |yaw|, enlarged
``--upscale`` times. Per bin: faces found, the mean labelled and read |yaw|, and the mean absolute yaw error (AFLW's
yaw has the opposite sign to facehub's). This is the range over which the analyzer's yaw, the ``achieved_pose`` every
rotation reports, can be trusted: MediaPipe's mesh stops turning with the head past about 55 degrees, and the
analyzer's calibration (:mod:`facehub.modeling.faces.yaw_calibration`) recovers the turn only on average there.

Usage: ``python benchmarks/accuracy_face_analyzer.py [--identities 16] [--views 4] [--size 224] [--seed 7]
[--aflw-labels ../shared/data/2DASL/AFLW_GT_crop_labels.csv [--per-bin 25] [--upscale 3]]``
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from tqdm.auto import tqdm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=16)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--aflw-labels", default=None, help="AFLW_GT_crop_labels.csv (3DDFA's layout) of real photos")
    parser.add_argument("--aflw-images", default=None, help="folder of those crops (default: beside the CSV)")
    parser.add_argument("--per-bin", type=int, default=25, help="photos per 10-degree bin of labelled |yaw|")
    parser.add_argument("--upscale", type=int, default=3, help="enlarge the (120 px) crops this many times")
    args = parser.parse_args()

    from facehub.modeling.faces import FaceAnalyzer
    from facehub.modeling.geometry.landmark_metrics import nme
    from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig

    world = SyntheticFaceWorld(SyntheticWorldConfig(num_identities=args.identities, views_per_identity=args.views,
                                                    image_size=args.size, uv_size=32, seed=args.seed))
    analyzer = FaceAnalyzer(compute_embedding=False)
    errors, pose_errors, missed = [], [], 0
    for index in tqdm(range(len(world)), desc="synthetic faces"):
        row = world[index]
        faces = analyzer(row["image"])
        if not faces:
            missed += 1
            continue
        errors.append(float(nme(faces[0].landmarks68, row["landmarks68"])))
        pose_errors.append(np.abs(np.asarray(faces[0].pose) - np.asarray(row["pose"])))
    pose_errors = np.asarray(pose_errors)
    c = world.config
    print(f"{len(world)} faces ({args.size} px, yaw within +-{c.max_yaw:.0f}, pitch +-{c.max_pitch:.0f}, roll "
          f"+-{c.max_roll:.0f} degrees), {missed} not found")
    print(f"68-point NME: mean {100 * np.mean(errors):.2f}%, median {100 * np.median(errors):.2f}%")
    print(f"pose MAE (degrees): yaw {pose_errors[:, 0].mean():.1f}, pitch {pose_errors[:, 1].mean():.1f}, "
          f"roll {pose_errors[:, 2].mean():.1f}")
    if args.aflw_labels:
        real_photo_yaw(analyzer, args.aflw_labels, args.aflw_images, args.per_bin, args.upscale, args.seed)
    return 0


def real_photo_yaw(analyzer, labels_csv: str, images: str | None, per_bin: int, upscale: int, seed: int) -> None:
    """The analyzer's yaw against AFLW's labelled yaw, by 10-degree bin of |yaw| (module docstring)."""
    from pathlib import Path

    from PIL import Image

    from facehub.trainers.data.fit_labels import read_aflw21_labels

    labels = {name: label.yaw for name, label in read_aflw21_labels(labels_csv).items() if label.yaw is not None}
    folder = Path(images) if images else Path(labels_csv).with_name(Path(labels_csv).name.replace("_labels.csv", ""))
    rng = np.random.default_rng(seed)
    print(f"Real photos: {folder} (yaw labelled by AFLW; facehub's yaw is its negative)")
    print(f"{'|yaw| bin':>10}{'photos':>8}{'found':>7}{'labelled':>10}{'read':>7}{'MAE':>7}")
    for low in range(0, 90, 10):
        names = sorted(n for n, yaw in labels.items() if low <= abs(yaw) < low + 10)
        chosen = [names[i] for i in rng.permutation(len(names))[:per_bin]]
        truth, read = [], []
        for name in tqdm(chosen, desc=f"|yaw| {low}-{low + 10}", leave=False):
            photo = Image.open(folder / name).convert("RGB")
            photo = photo.resize((photo.width * upscale, photo.height * upscale), Image.BICUBIC)
            faces = analyzer(np.asarray(photo))
            if faces:
                truth.append(-labels[name])
                read.append(faces[0].pose[0])
        truth, read = np.asarray(truth), np.asarray(read)
        if len(truth):
            print(f"{f'[{low}, {low + 10})':>10}{len(chosen):>8}{len(truth):>7}{np.abs(truth).mean():>10.1f}"
                  f"{np.abs(read).mean():>7.1f}{np.abs(read - truth).mean():>7.1f}")
        else:
            print(f"{f'[{low}, {low + 10})':>10}{len(chosen):>8}{0:>7}")


if __name__ == "__main__":
    sys.exit(main())
