"""Accuracy of the face front-end against exact ground truth: the synthetic face world's rendered faces.

For each rendered face: 68-point NME (mean error over sqrt(w * h) of the true landmarks' box) of
``FaceAnalyzer().landmarks68`` and the absolute error of its (yaw, pitch, roll) against the pose the world applied.
Rendered faces have no hair, ears or neck, so this is a check of the pipeline on known geometry, not a substitute
for a real benchmark such as AFLW2000-3D.

Usage: ``python benchmarks/accuracy_face_analyzer.py [--identities 16] [--views 4] [--size 224] [--seed 7]``
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
