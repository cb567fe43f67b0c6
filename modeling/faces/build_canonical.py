"""Rebuild ``data/canonical_face.safetensors`` (the frontal mean face for head pose) from the test photos.

Run from the repository root::

    python -m facehub.modeling.faces.build_canonical [--photos tests/data/photos] [--output PATH]

Steps (see :mod:`facehub.modeling.faces.canonical` for the frame that results):

1. MediaPipe dense landmarks (478 points, pixels, z towards the camera) of each near-frontal photo and of its mirror
   image; each face centred and scaled to eye distance 1.
2. Generalised Procrustes analysis (Gower 1975): rigid-align every face to the current mean (Umeyama), average,
   repeat.
3. Coarse frame from the eyes and the forehead-chin line, then the left/right vertex permutation by optimal
   assignment (Hungarian) between the mean and its reflection.
4. Exact symmetry: rotate by half the rotation that takes the mean onto its mirror image (this removes yaw and roll),
   then average the mean with its mirror image.
5. Pitch: rotate about the x axis until the forehead top and the chin are at the same depth.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facehub.modeling.faces.canonical import (
    CANONICAL_FACE_PATH,
    CHIN_VERTEX,
    FOREHEAD_VERTEX,
    LEFT_EYE_VERTICES,
    RIGHT_EYE_VERTICES,
)
from facehub.modeling.geometry.procrustes import procrustes_mean, umeyama

#: Near-frontal photos the mean is built from (obama_partial_face.jpg is cut off at the image border; left out).
FRONTAL_PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.png")
NUM_MESH = 468
REFLECT = np.array([-1.0, 1.0, 1.0])


def _eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return points[list(RIGHT_EYE_VERTICES)].mean(axis=0), points[list(LEFT_EYE_VERTICES)].mean(axis=0)


def normalise(points: np.ndarray) -> np.ndarray:
    """Centre on the mean of the 468 mesh vertices and scale to eye-centre distance 1."""
    right, left = _eye_centres(points)
    return (points - points[:NUM_MESH].mean(axis=0)) / np.linalg.norm(left - right)


def coarse_frame(points: np.ndarray) -> np.ndarray:
    """Rotate so the eye line is +x (towards the subject's left eye) and the forehead-chin line is +y."""
    right, left = _eye_centres(points)
    x_axis = (left - right) / np.linalg.norm(left - right)
    down = points[CHIN_VERTEX] - points[FOREHEAD_VERTEX]
    y_axis = down - (down @ x_axis) * x_axis
    y_axis /= np.linalg.norm(y_axis)
    rotation = np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)])
    return points @ rotation.T


def mirror_permutation(points: np.ndarray) -> np.ndarray:
    """Vertex permutation between a roughly symmetric face (symmetry plane near x = 0) and its reflection."""
    from scipy.optimize import linear_sum_assignment

    reflected = points * REFLECT
    cost = np.linalg.norm(points[:, None, :] - reflected[None, :, :], axis=-1)
    rows, columns = linear_sum_assignment(cost)
    permutation = np.empty(len(points), dtype=np.int64)
    permutation[rows] = columns
    return permutation


def symmetrise(points: np.ndarray, permutation: np.ndarray) -> np.ndarray:
    """Remove the rotation that breaks mirror symmetry about x = 0, then average with the mirror image."""
    from scipy.spatial.transform import Rotation

    mirrored = (points * REFLECT)[permutation]
    rotation = umeyama(points[:NUM_MESH], mirrored[:NUM_MESH], with_scale=False).rotation
    half = Rotation.from_rotvec(0.5 * Rotation.from_matrix(rotation).as_rotvec()).as_matrix()
    points = points @ half.T
    return normalise((points + (points * REFLECT)[permutation]) / 2)


def level_pitch(points: np.ndarray) -> np.ndarray:
    """Rotate about x so that the forehead top and the chin are at the same depth."""
    chin_minus_forehead = points[CHIN_VERTEX] - points[FOREHEAD_VERTEX]
    angle = np.arctan2(-chin_minus_forehead[2], chin_minus_forehead[1])
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return normalise(points @ rotation.T)


def build(photos_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(478, 3) canonical face and (478,) mirror permutation from the photos in ``photos_dir``."""
    from facehub.modeling.faces.detection import MediaPipeFaceMesh
    from facehub.modeling.faces.image_io import load_image

    mesh = MediaPipeFaceMesh(max_num_faces=1)
    faces = []
    for name in FRONTAL_PHOTOS:
        image = load_image(photos_dir / name)
        for view in (image, np.ascontiguousarray(image[:, ::-1])):
            found = mesh(view)
            if not found:
                raise RuntimeError(f"MediaPipe found no face in {photos_dir / name}; cannot build the canonical face.")
            faces.append(normalise(found[0]))
    mesh.close()
    mean = coarse_frame(procrustes_mean(faces, with_scale=False, fit_points=NUM_MESH, normalise=normalise))
    permutation = mirror_permutation(mean)
    if not np.array_equal(permutation[permutation], np.arange(len(permutation))):
        raise RuntimeError("The left/right vertex matching is not an involution; the mean face is too asymmetric.")
    for _ in range(3):
        mean = symmetrise(mean, permutation)
    return level_pitch(mean), permutation


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=Path("tests/data/photos"), help="folder with the photos")
    parser.add_argument("--output", type=Path, default=CANONICAL_FACE_PATH, help="safetensors file to write")
    args = parser.parse_args(argv)
    from safetensors.numpy import save_file

    vertices, permutation = build(args.photos)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {"vertices": vertices.astype(np.float32), "mirror": permutation},
        str(args.output),
        metadata={"source": "facehub.modeling.faces.build_canonical", "photos": ",".join(FRONTAL_PHOTOS)},
    )
    pairs = sum(int(i < j) for i, j in enumerate(permutation))
    print(
        f"Wrote {args.output}: {len(vertices)} vertices, {pairs} mirror pairs, {len(vertices) - 2 * pairs} on the midline."
    )


if __name__ == "__main__":
    main()
