"""Morphable face model: mean shape, identity / expression bases, UV albedo basis, spherical-harmonics lighting.

Shape (Blanz & Vetter 1999; the linear model of Deep3DFaceRecon / DiscoFaceGAN, seed 002 eq. 1):
``S = S_mean + B_id @ alpha + B_exp @ beta``, albedo ``T = T_mean + B_tex @ delta``; the bases are stored scaled
by their standard deviations, so coefficients are ~N(0, 1).

Lighting: Lambertian irradiance from 9 spherical-harmonics coefficients per colour channel (Ramamoorthi & Hanrahan,
"An Efficient Representation for Irradiance Environment Maps", SIGGRAPH 2001, eq. 7-8):
``E(n) = sum_{l<=2, m} A_l L_lm Y_lm(n)`` with ``A_0 = pi, A_1 = 2 pi / 3, A_2 = pi / 4`` and the real SH
``Y_00 = 0.282095; Y_1,-1..1 = 0.488603 (y, z, x); Y_2,-2 = 1.092548 xy; Y_2,-1 = 1.092548 yz;
Y_20 = 0.315392 (3 z^2 - 1); Y_21 = 1.092548 xz; Y_22 = 0.546274 (x^2 - y^2)``, normals in the house frame
(x right, y down, z towards the camera). The shaded colour is ``albedo * E(n)``; with only ``L_00`` set,
``E = pi * 0.282095 * L_00 = 0.886227 * L_00`` everywhere. (Deep3DFaceRecon uses the same basis with its y up and
its own band constants; convert its coefficients before use.)

The default model (``data/face_model.safetensors``, units mm, MediaPipe 468-vertex topology) is built by
``python -m facehub.modeling.geometry.build_face_model``. :meth:`MorphableFaceModel.from_bfm_mat` reads a Basel Face
Model ``.mat`` instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facehub.modeling.geometry.procrustes import umeyama
from facehub.modeling.geometry.rotations import euler_from_rotation_matrix, rotation_matrix
from facehub.modeling.geometry.topology import DEFAULT_MODEL_FILE, orient_towards_camera

SH_BAND_CONSTANTS = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0)  # A_0, A_1, A_2 (Ramamoorthi & Hanrahan, eq. 8)
SH_DC = SH_BAND_CONSTANTS[0] * 0.282095  # E(n) per unit L_00


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """(..., 9) ``A_l Y_lm(n)`` for unit normals (..., 3), in Ramamoorthi & Hanrahan's order (00, 1-1, 10, 11, 2-2,
    2-1, 20, 21, 22)."""
    x, y, z = normals.unbind(-1)
    a0, a1, a2 = SH_BAND_CONSTANTS
    return torch.stack([
        a0 * 0.282095 * torch.ones_like(x),
        a1 * 0.488603 * y, a1 * 0.488603 * z, a1 * 0.488603 * x,
        a2 * 1.092548 * x * y, a2 * 1.092548 * y * z, a2 * 0.315392 * (3.0 * z * z - 1.0),
        a2 * 1.092548 * x * z, a2 * 0.546274 * (x * x - y * y),
    ], dim=-1)


def sh_shading(normals: torch.Tensor, sh_coeffs: torch.Tensor) -> torch.Tensor:
    """Irradiance (B, ..., 3) from unit normals (B, ..., 3) and SH coefficients (B, 3, 9) or (B, 27)."""
    coeffs = sh_coeffs.reshape(sh_coeffs.shape[0], 3, 9)
    basis = sh_basis(normals)  # (B, ..., 9)
    flat = basis.reshape(basis.shape[0], -1, 9)
    return (flat @ coeffs.transpose(1, 2)).reshape(*basis.shape[:-1], 3)


def vertex_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) unit vertex normals: area-weighted sums of ``(v1 - v0) x (v2 - v0)`` over adjacent triangles."""
    v0, v1, v2 = (vertices[:, triangles[:, i]] for i in range(3))
    face_n = torch.cross(v1 - v0, v2 - v0, dim=-1)
    normals = torch.zeros_like(vertices)
    for i in range(3):
        normals = normals.index_add(1, triangles[:, i], face_n)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)


class MorphableFaceModel(nn.Module):
    """A linear 3D morphable face model (no trainable parameters; everything is a float32 buffer).

    Buffers:
        mean_shape (V, 3); id_basis (K_id, V, 3); exp_basis (K_exp, V, 3): vertex offsets per unit coefficient.
        albedo_mean: (3, T, T) UV texture when ``albedo_space == "uv"``, else (V, 3) per-vertex colours; in [0, 1].
        albedo_basis: (K_tex, 3, T, T) or (K_tex, V, 3).
        triangles (F, 3) int64, wound towards the camera; uvs (V, 2) in [0, 1]^2 (zeros when unknown);
        landmark_weights (68, V): ``landmarks68 = landmark_weights @ vertices``.
    """

    def __init__(self, mean_shape, id_basis, exp_basis, albedo_mean, albedo_basis, triangles, uvs=None,
                 landmark_weights=None, albedo_space: str = "uv", unit: str = "mm", expression_names=None):
        super().__init__()
        f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        n = len(mean_shape)
        self.register_buffer("mean_shape", f32(mean_shape))
        self.register_buffer("id_basis", f32(id_basis).reshape(-1, n, 3))
        self.register_buffer("exp_basis", f32(exp_basis).reshape(-1, n, 3))
        self.register_buffer("albedo_mean", f32(albedo_mean))
        self.register_buffer("albedo_basis", f32(albedo_basis))
        self.register_buffer("triangles", torch.as_tensor(np.asarray(triangles), dtype=torch.int64))
        self.register_buffer("uvs", f32(np.zeros((n, 2)) if uvs is None else uvs))
        self.register_buffer("landmark_weights", f32(np.zeros((68, n)) if landmark_weights is None else landmark_weights))
        if albedo_space not in ("uv", "vertex"):
            raise ValueError(f"`albedo_space` must be 'uv' or 'vertex', got {albedo_space!r}.")
        self.albedo_space, self.unit = albedo_space, unit
        self.expression_names = list(expression_names or [f"exp_{i}" for i in range(self.exp_basis.shape[0])])

    num_identity = property(lambda self: self.id_basis.shape[0])
    num_expression = property(lambda self: self.exp_basis.shape[0])
    num_albedo = property(lambda self: self.albedo_basis.shape[0])

    def shape(self, id_coeffs: torch.Tensor | None = None, exp_coeffs: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, 3) vertices ``mean + id_basis . alpha + exp_basis . beta`` (coefficients (B, K); None = zeros)."""
        batch = next((c.shape[0] for c in (id_coeffs, exp_coeffs) if c is not None), 1)
        out = self.mean_shape.expand(batch, -1, -1)
        if id_coeffs is not None:
            out = out + torch.einsum("bk,kvd->bvd", id_coeffs, self.id_basis)
        if exp_coeffs is not None:
            out = out + torch.einsum("bk,kvd->bvd", exp_coeffs, self.exp_basis)
        return out

    def albedo(self, tex_coeffs: torch.Tensor | None = None, batch: int = 1) -> torch.Tensor:
        """(B, 3, T, T) UV albedo or (B, V, 3) vertex albedo ``mean + albedo_basis . delta``, clamped to [0, 1]."""
        if tex_coeffs is None:
            return self.albedo_mean.expand(batch, *self.albedo_mean.shape)
        flat = self.albedo_basis.reshape(self.num_albedo, -1)
        out = self.albedo_mean.reshape(1, -1) + tex_coeffs @ flat
        return out.reshape(-1, *self.albedo_mean.shape).clamp(0.0, 1.0)

    def landmarks68(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, 68, 3) iBUG landmarks of (B, V, 3) vertices: points of the mesh itself (what the fitting matches to
        the FaceAnalyzer's landmarks; :meth:`reconstruction_landmarks68` is what a reconstruction reports)."""
        return torch.einsum("lv,bvd->bld", self.landmark_weights, vertices)

    def reconstruction_landmarks68(self, vertices: np.ndarray) -> np.ndarray:
        """(68, 3) float32 the landmarks a reconstruction reports for its (V, 3) mesh in the photo: :meth:`landmarks68`
        with, on MediaPipe's 468-vertex topology, the jaw moved to its 3D depth behind the mesh's rim
        (:mod:`facehub.modeling.geometry.jaw_depth`). A model of another topology keeps its own points."""
        from facehub.modeling.geometry.jaw_depth import jaw_offsets

        vertices = np.asarray(vertices, np.float64)
        landmarks = self.landmarks68(torch.from_numpy(vertices)[None].to(self.landmark_weights.dtype))[0]
        landmarks = landmarks.double().numpy()
        if self.mean_shape.shape[0] == 468:
            landmarks = landmarks + jaw_offsets(vertices, self.mean_shape.double().numpy())
        return landmarks.astype(np.float32)

    # ---------------------------------------------------------------- head pose
    @property
    def rest_pose_rotation(self) -> np.ndarray:
        """(3, 3) float64 rotation ``F``: the model's rest orientation (rotation coefficients 0) as a head pose.

        Head poses (``Face.pose``, a reconstruction's ``pose``, the rotation contract's requested and achieved poses)
        are read in one frame, the FaceAnalyzer's: a similarity fit of its canonical frontal face
        (:mod:`facehub.modeling.faces.canonical`, level eyes and the forehead-chin line in the image plane). The
        model's rest pose was made frontal by its own rule (the mean shape's area-weighted normal,
        :mod:`.build_face_model`), which differs from that by a few degrees of pitch. ``F`` is the rotation of the
        same similarity fit of the canonical face onto the mean shape, so a face the model poses with rotation ``R``
        has the head pose ``R @ F`` (:meth:`head_pose`) whatever its coefficients, and the FaceAnalyzer's estimator
        reads the posed mean shape at exactly that pose. A model whose vertices are not MediaPipe's 468 (a Basel
        Face Model) keeps its own frame (``F`` = identity).
        """
        cached = getattr(self, "_rest_pose_rotation", None)
        if cached is None:
            cached = np.eye(3)
            if self.mean_shape.shape[0] == 468:
                from facehub.modeling.faces.canonical import canonical_face

                fit = umeyama(canonical_face()[:468], self.mean_shape.double().numpy(), with_scale=True)
                cached = np.asarray(fit.rotation, np.float64)
            self._rest_pose_rotation = cached
        return cached

    def head_pose(self, rotation) -> tuple[float, float, float]:
        """(yaw, pitch, roll) degrees of the head the model poses with rotation coefficients ``rotation`` ((yaw,
        pitch, roll) degrees, ``R = rotation_matrix(*rotation)``): the Euler angles of ``R @ F``
        (:attr:`rest_pose_rotation`)."""
        return euler_from_rotation_matrix(rotation_matrix(*np.asarray(rotation, np.float64)[:3])
                                          @ self.rest_pose_rotation)

    def rotation_for_head_pose(self, pose) -> tuple[float, float, float]:
        """The rotation coefficients ((yaw, pitch, roll) degrees) that pose the model's head at ``pose`` (degrees):
        the inverse of :meth:`head_pose`."""
        return euler_from_rotation_matrix(rotation_matrix(*np.asarray(pose, np.float64)[:3])
                                          @ self.rest_pose_rotation.T)

    # ---------------------------------------------------------------- files
    def save(self, path: str | Path) -> None:
        """Write the model as safetensors (buffers + metadata)."""
        from safetensors.torch import save_file

        meta = {"format": "facehub-morphable-face-model", "albedo_space": self.albedo_space, "unit": self.unit,
                "expression_names": json.dumps(self.expression_names)}
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_MODEL_FILE) -> MorphableFaceModel:
        """Read a model written by :meth:`save` or by ``build_face_model`` (safetensors only, nothing unpickled)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"No face model at {path}; rebuild the default one with "
                                    "`python -m facehub.modeling.geometry.build_face_model`.")
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            t = {k: f.get_tensor(k) for k in f.keys()}
        return cls(t["mean_shape"], t["id_basis"], t["exp_basis"], t["albedo_mean"], t["albedo_basis"], t["triangles"],
                   t.get("uvs"), t.get("landmark_weights"), meta.get("albedo_space", "uv"), meta.get("unit", "mm"),
                   json.loads(meta["expression_names"]) if "expression_names" in meta else None)

    @classmethod
    def default(cls) -> MorphableFaceModel:
        """The project's own model built from the test photos (see :mod:`.build_face_model`)."""
        return cls.load(DEFAULT_MODEL_FILE)

    @classmethod
    def from_bfm_mat(cls, path: str | Path, unit_scale: float | None = None) -> MorphableFaceModel:
        """Load a Basel Face Model ``.mat`` with ``scipy.io.loadmat`` (MATLAB data only, no pickle).

        Two layouts are understood:

        - BFM 2009 ``01_MorphableModel.mat``: ``shapeMU`` (3V, 1), ``shapePC`` (3V, K), ``shapeEV`` (K, 1) standard
          deviations, ``texMU``, ``texPC``, ``texEV`` (0-255), ``tl`` (F, 3) 1-based triangles; no expressions.
          Units micrometres -> default ``unit_scale`` 1e-3 (mm).
        - Deep3DFaceRecon ``BFM_model_front.mat``: ``meanshape`` (1, 3V), ``idBase`` (3V, 80), ``exBase`` (3V, 64),
          ``meantex`` (1, 3V), ``texBase`` (3V, 80) (already scaled), ``tri`` (F, 3) 1-based, ``keypoints`` (1, 68)
          1-based. Units 1e-1 m (its camera stands at 10) -> default ``unit_scale`` 100 (mm).

        BFM's frame (y up, z towards the viewer) becomes the house frame (y down) by negating y; triangles are
        re-wound towards the camera. Albedo is per vertex (``albedo_space="vertex"``).
        """
        from scipy.io import loadmat

        m = loadmat(str(path))
        if "shapeMU" in m:
            scale = 1e-3 if unit_scale is None else unit_scale
            mean, id_b = m["shapeMU"].reshape(-1), m["shapePC"] * m["shapeEV"].reshape(1, -1)
            exp_b = np.zeros((mean.size, 0))
            tex_mean, tex_b = m["texMU"].reshape(-1), m["texPC"] * m["texEV"].reshape(1, -1)
            tri, keypoints = m["tl"], None
        elif "meanshape" in m:
            scale = 100.0 if unit_scale is None else unit_scale
            mean, id_b, exp_b = m["meanshape"].reshape(-1), m["idBase"], m["exBase"]
            tex_mean, tex_b, tri = m["meantex"].reshape(-1), m["texBase"], m["tri"]
            keypoints = m["keypoints"].reshape(-1).astype(np.int64) - 1 if "keypoints" in m else None
        else:
            raise KeyError(f"{path} has neither BFM 2009 ('shapeMU', ...) nor Deep3DFaceRecon ('meanshape', ...) "
                           f"fields; found {sorted(k for k in m if not k.startswith('__'))}.")
        flip = np.array([1.0, -1.0, 1.0])
        n = mean.size // 3

        def to_modes(b):  # (3V, K) -> (K, V, 3), y flipped, scaled
            return (np.asarray(b, np.float64).T.reshape(-1, n, 3) * flip * scale).astype(np.float32)

        mean_shape = (mean.reshape(n, 3) * flip * scale).astype(np.float32)
        mean_shape -= mean_shape.mean(axis=0)
        triangles = orient_towards_camera(np.asarray(tri, np.int64).reshape(-1, 3) - 1, mean_shape)
        weights = None
        if keypoints is not None:
            weights = np.zeros((len(keypoints), n), np.float32)
            weights[np.arange(len(keypoints)), keypoints] = 1.0
        return cls(mean_shape, to_modes(id_b), to_modes(exp_b), (tex_mean.reshape(n, 3) / 255.0).astype(np.float32),
                   np.asarray(tex_b, np.float64).T.reshape(-1, n, 3).astype(np.float32) / 255.0, triangles,
                   landmark_weights=weights, albedo_space="vertex")
