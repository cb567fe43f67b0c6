"""Build the default morphable face model, ``data/face_model.safetensors``, from what the project has offline.

Run ``python -m facehub.modeling.geometry.build_face_model`` (optionally ``--output PATH``); it is deterministic and
takes a few seconds on a CPU.

1. MediaPipe face mesh (legacy ``mp.solutions.face_mesh``, 468 points, static mode) on the public-domain portraits in
   ``tests/data/photos`` (obama.jpg, obama2.jpg, obama3.jpg, biden.jpg, astronaut.png; obama_partial_face.jpg is a
   crop of obama.jpg and left out) and on their mirror images: 10 meshes in pixels (z = -MediaPipe z * width,
   growing towards the camera).
2. Generalised Procrustes (Umeyama similarity, 5 rounds) -> mean shape; made frontal (its area-weighted normal along
   +z, the outer eye corners level), centred on its vertex centroid and scaled to millimetres assuming an outer eye
   corner distance (iBUG 37-46, exocanthion-exocanthion) of 90 mm, a typical adult value.
3. Topology: MediaPipe's tessellation (see :mod:`.topology`), wound towards +z on the mean; UV layout: a cylindrical
   projection of the mean.
4. Identity basis (40 modes, scaled so coefficients are ~N(0, 1)): PCA of the aligned shapes (few photos -> few
   modes, standard deviations from the data), then smooth modes: global width / height / depth, jaw width,
   nose length, then low-frequency eigenvectors of the mesh graph Laplacian along x, y and z; all Gram-Schmidt
   orthogonalised.
5. Expression basis (14 designed modes, a few mm per unit coefficient): smooth Gaussian-falloff displacements around
   the 68-landmark vertices, the eye modes restricted to the UV eye regions.
6. Albedo (128 x 128 UV texture, sRGB in [0, 1]): the mean of the photos' textures sampled into UV, plus PCA colour
   modes and smooth colour modes (per-channel offsets, left-right and top-bottom brightness gradients).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facehub.modeling.geometry.landmarks68 import MESH_VERTICES_OF_LANDMARK, NUM_MESH_VERTICES, landmark_weights
from facehub.modeling.geometry.procrustes import procrustes_mean, umeyama
from facehub.modeling.geometry.topology import (
    DEFAULT_MODEL_FILE,
    FaceTopology,
    cylindrical_uv,
    mediapipe_tessellation_triangles,
    orient_towards_camera,
    triangle_normals,
)

PHOTOS_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "photos"
PHOTOS = ("astronaut.png", "biden.jpg", "obama.jpg", "obama2.jpg", "obama3.jpg")
OUTER_EYE_CORNER_DISTANCE_MM = 90.0
NUM_IDENTITY_MODES = 40
ALBEDO_SIZE = 128

EXPRESSION_NAMES = (
    "jaw_open", "smile", "lip_pucker", "mouth_wide", "mouth_left", "upper_lip_raise", "lower_lip_depress",
    "brow_raise", "brow_frown", "eye_close_right", "eye_close_left", "cheek_puff", "nose_wrinkle", "jaw_left",
)


def detect_meshes(photos_dir: Path = PHOTOS_DIR) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images (each photo and its mirror) and their (468, 3) MediaPipe meshes in pixels."""
    import mediapipe as mp
    from PIL import Image

    images, meshes = [], []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False) as fm:
        for name in PHOTOS:
            image = np.asarray(Image.open(photos_dir / name).convert("RGB"))
            for im in (image, np.ascontiguousarray(image[:, ::-1])):
                result = fm.process(im)
                if not result.multi_face_landmarks:
                    raise RuntimeError(f"MediaPipe found no face in {name}.")
                h, w = im.shape[:2]
                lm = result.multi_face_landmarks[0].landmark[:NUM_MESH_VERTICES]
                meshes.append(np.array([[p.x * w, p.y * h, -p.z * w] for p in lm], dtype=np.float64))
                images.append(im)
    return images, meshes


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit vector a to unit vector b (Rodrigues)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1.0 + c)


def frontal_mean(meshes: list[np.ndarray], triangles: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Generalised Procrustes mean, made frontal, centred and in mm; and every mesh aligned onto it."""
    mean = procrustes_mean(meshes)
    normal = triangle_normals(mean, orient_towards_camera(triangles, mean)).sum(axis=0)
    mean = (mean - mean.mean(axis=0)) @ _rotation_between(normal, np.array([0.0, 0.0, 1.0])).T
    right, left = mean[MESH_VERTICES_OF_LANDMARK[36][0]], mean[MESH_VERTICES_OF_LANDMARK[45][0]]
    angle = np.arctan2(left[1] - right[1], left[0] - right[0])
    c, s = np.cos(-angle), np.sin(-angle)
    mean = mean @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T
    mean *= OUTER_EYE_CORNER_DISTANCE_MM / np.linalg.norm(left - right)
    mean -= mean.mean(axis=0)
    return mean, [umeyama(m, mean).apply(m) for m in meshes]


def _gram_schmidt(candidates: list[np.ndarray], basis: list[np.ndarray], limit: int) -> list[np.ndarray]:
    """Append unit directions of ``candidates`` orthogonal to ``basis`` (skipping near-dependent ones)."""
    basis = list(basis)
    for c in candidates:
        v = c.ravel().astype(np.float64)
        for b in basis:
            v = v - (v @ b) * b
        if np.linalg.norm(v) > 1e-3 * np.linalg.norm(c):
            basis.append(v / np.linalg.norm(v))
        if len(basis) >= limit:
            break
    return basis


def _fix_sign(v: np.ndarray) -> np.ndarray:
    return v if v.ravel()[np.argmax(np.abs(v.ravel()))] >= 0 else -v


def identity_basis(mean: np.ndarray, aligned: list[np.ndarray], triangles: np.ndarray) -> np.ndarray:
    """(40, V, 3) identity modes in mm per unit coefficient."""
    n_vert = len(mean)
    data = np.stack([a - mean for a in aligned]).reshape(len(aligned), -1)
    _, sv, vt = np.linalg.svd(data - data.mean(axis=0), full_matrices=False)
    sd_pca = sv / np.sqrt(max(len(aligned) - 1, 1))
    keep = sd_pca > 1e-3 * sd_pca[0]
    directions = [_fix_sign(v) for v in vt[keep]]
    scales = [s * 1.0 for s in sd_pca[keep]]  # ||mode|| over all coordinates = sd of the projection

    x, y, z = mean[:, 0], mean[:, 1], mean[:, 2]
    lower = np.clip((y - y.mean()) / np.ptp(y) * 2.0 + 0.5, 0.0, 1.0)
    nose = np.exp(-np.sum((mean - mean[4]) ** 2, axis=1) / (2 * 15.0**2))
    zero = np.zeros_like(x)
    globals_ = [np.stack(c, axis=1) for c in ((x, zero, zero), (zero, y, zero), (zero, zero, z - z.mean()),
                                              (x * lower, zero, zero), (zero, zero, nose))]
    adjacency = np.zeros((n_vert, n_vert))
    for a, b in ((0, 1), (1, 2), (2, 0)):
        adjacency[triangles[:, a], triangles[:, b]] = adjacency[triangles[:, b], triangles[:, a]] = 1.0
    _, eigvecs = np.linalg.eigh(np.diag(adjacency.sum(axis=1)) - adjacency)
    smooth = []
    for k in range(1, 40):
        for axis in range(3):
            mode = np.zeros((n_vert, 3))
            mode[:, axis] = _fix_sign(eigvecs[:, k])
            smooth.append(mode)
    basis = _gram_schmidt(globals_ + smooth, directions, NUM_IDENTITY_MODES)
    # A unit-norm mode over all 3V coordinates moves a vertex by 1/sqrt(V) on average, so scaling it by sqrt(V) * r
    # gives r mm of per-vertex RMS displacement: 3 mm for the global bends, then 1.5 mm falling off with the
    # Laplacian frequency, about 7 mm RMS all together (a plausible spread of adult face shapes around a mean).
    per_vertex = np.sqrt(n_vert)
    first_designed = len(scales)
    for i in range(first_designed, len(basis)):
        k = i - first_designed
        scales.append(per_vertex * (3.0 if k < len(globals_) else 1.5 / (1.0 + 0.25 * (k - len(globals_)))))
    return np.stack([b.reshape(n_vert, 3) * s for b, s in zip(basis, scales, strict=True)]).astype(np.float32)


def expression_basis(mean: np.ndarray, topology: FaceTopology) -> np.ndarray:
    """(14, V, 3) designed expression modes (mm per unit coefficient), in :data:`EXPRESSION_NAMES` order."""
    from facehub.modeling.geometry.uv_maps import uv_position_map_to_mesh

    def at(landmark: int) -> np.ndarray:  # 1-based iBUG number -> its 3D point on the mean
        return mean[list(MESH_VERTICES_OF_LANDMARK[landmark - 1])].mean(axis=0)

    def bump(centre: np.ndarray, sigma: float) -> np.ndarray:
        return np.exp(-np.sum((mean - centre) ** 2, axis=1) / (2.0 * sigma**2))[:, None]

    def region_weight(name: str) -> np.ndarray:
        mask = topology.region_masks(128)[name].astype(np.float32)[..., None]
        return uv_position_map_to_mesh(mask, topology.uvs)[:, :1]

    x, y = mean[:, :1], mean[:, 1:2]
    mouth_c = 0.5 * (at(63) + at(67))
    chin = at(9)
    jaw = np.clip((y - mouth_c[1]) / (chin[1] - mouth_c[1]), 0.0, 1.0) * np.exp(-(x / 60.0) ** 2)
    corners = [at(49), at(55)]
    lips = bump(mouth_c, 14.0)
    modes = {
        "jaw_open": jaw * np.array([0.0, 8.0, -2.0]),
        "smile": sum(bump(c, 12.0) * np.array([3.0 * np.sign(c[0]), -3.0, -1.0]) for c in corners),
        "lip_pucker": lips * np.array([0.0, 0.0, 4.0]) - lips * (mean - mouth_c) * np.array([0.25, 0.25, 0.0]),
        "mouth_wide": sum(bump(c, 10.0) * np.array([3.0 * np.sign(c[0]), 0.0, 0.0]) for c in corners),
        "mouth_left": lips * np.array([3.0, 0.0, 0.0]),
        "upper_lip_raise": bump(at(52), 8.0) * np.array([0.0, -2.5, 0.5]),
        "lower_lip_depress": bump(at(58), 8.0) * np.array([0.0, 2.5, 0.0]),
        "brow_raise": sum(bump(at(i), 12.0) for i in (18, 20, 22, 23, 25, 27)).clip(0, 1) * np.array([0.0, -4.0, 0.0]),
        "brow_frown": sum(bump(at(i), 9.0) * np.array([-2.0 * np.sign(at(i)[0]), 2.0, 0.0]) for i in (22, 23)),
        "cheek_puff": sum(bump(0.5 * (at(i) + at(j)), 16.0) for i, j in ((4, 49), (14, 55)))
        * np.array([0.0, 0.0, 4.0]) + sum(bump(0.5 * (at(i) + at(j)), 16.0) * np.array([2.0 * np.sign(at(i)[0]), 0, 0])
                                           for i, j in ((4, 49), (14, 55))),
        "nose_wrinkle": bump(at(34), 9.0) * np.array([0.0, -2.0, 0.0]),
        "jaw_left": jaw * np.array([4.0, 0.0, 0.0]),
    }
    eye_region = np.clip(region_weight("eyes") * 4.0, 0.0, 1.0)
    for name, (upper, lower, outer) in {"eye_close_right": ((38, 39), (41, 42), 37),
                                        "eye_close_left": ((44, 45), (47, 48), 46)}.items():
        gap = np.mean([at(i)[1] for i in lower]) - np.mean([at(i)[1] for i in upper])
        centre = 0.5 * (at(outer) + at(40 if outer == 37 else 43))
        above = (y < centre[1]).astype(np.float64)
        modes[name] = eye_region * above * bump(centre, 12.0) * np.array([0.0, gap, 0.0])
    return np.stack([modes[n] for n in EXPRESSION_NAMES]).astype(np.float32)


def albedo_model(images: list[np.ndarray], meshes: list[np.ndarray], topology: FaceTopology):
    """Mean UV albedo (3, T, T) and (A, 3, T, T) colour modes (sRGB in [0, 1] per unit coefficient)."""
    import torch
    from scipy.ndimage import distance_transform_edt

    from facehub.modeling.geometry.uv_maps import mesh_to_uv_position_map, rasterize_uv

    textures = []
    for image, mesh in zip(images, meshes, strict=True):
        xy = mesh_to_uv_position_map(mesh[:, :2].astype(np.float32), ALBEDO_SIZE, topology, fill_band=3)
        h, w = image.shape[:2]
        grid = torch.from_numpy(np.stack([(xy[..., 0] + 0.0) / w * 2 - 1, xy[..., 1] / h * 2 - 1], -1))[None]
        img = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        textures.append(torch.nn.functional.grid_sample(img, grid.float(), align_corners=False)[0].numpy())
    textures = np.stack(textures)
    valid = rasterize_uv(topology.uvs, topology.triangles, ALBEDO_SIZE, 3).face_index >= 0
    _, (rows, cols) = distance_transform_edt(~valid, return_indices=True)
    textures = textures[:, :, rows, cols]  # fill everything outside with the nearest valid texel
    mean = textures.mean(axis=0)
    data = (textures - mean).reshape(len(textures), -1)
    _, sv, vt = np.linalg.svd(data, full_matrices=False)
    sd = sv / np.sqrt(len(textures) - 1)
    pca = [_fix_sign(v) * s for v, s in zip(vt[:4], sd[:4], strict=True)]
    t = ALBEDO_SIZE
    ramp = (np.arange(t) + 0.5) / t * 2 - 1
    smooth = []
    for c in range(3):
        m = np.zeros((3, t, t))
        m[c] = 0.05
        smooth.append(m.ravel())
    smooth.append(np.broadcast_to(ramp[None, None, :] * 0.03, (3, t, t)).ravel())
    smooth.append(np.broadcast_to(ramp[None, :, None] * 0.03, (3, t, t)).ravel())
    basis = np.stack(pca + smooth).reshape(-1, 3, t, t)
    return mean.astype(np.float32), basis.astype(np.float32)


def build_face_model_tensors() -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All tensors and metadata of the default model file."""
    images, meshes = detect_meshes()
    raw_triangles = mediapipe_tessellation_triangles()
    mean, aligned = frontal_mean(meshes, raw_triangles)
    triangles = orient_towards_camera(raw_triangles, mean)
    uvs = cylindrical_uv(mean, triangles).astype(np.float32)
    topology = FaceTopology(triangles, uvs, landmark_weights().astype(np.float32))
    albedo_mean, albedo_basis = albedo_model(images, meshes, topology)
    tensors = {
        "mean_shape": mean.astype(np.float32),
        "id_basis": identity_basis(mean, aligned, triangles),
        "exp_basis": expression_basis(mean, topology),
        "albedo_mean": albedo_mean,
        "albedo_basis": albedo_basis,
        "triangles": triangles.astype(np.int64),
        "uvs": uvs,
        "landmark_weights": topology.landmark_weights,
    }
    metadata = {
        "format": "facehub-morphable-face-model",
        "albedo_space": "uv",
        "unit": "mm",
        "expression_names": json.dumps(list(EXPRESSION_NAMES)),
        "source": "built by `python -m facehub.modeling.geometry.build_face_model` from tests/data/photos",
    }
    return tensors, metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_MODEL_FILE, help="where to write the safetensors file")
    args = parser.parse_args(argv)
    from safetensors.numpy import save_file

    tensors, metadata = build_face_model_tensors()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(args.output), metadata=metadata)
    size_mb = args.output.stat().st_size / 1e6
    print(f"Wrote {args.output} ({size_mb:.2f} MB): " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items()))


if __name__ == "__main__":
    main()
