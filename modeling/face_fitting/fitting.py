"""Fitting the morphable face model to one face of a photo by optimisation (analysis by synthesis).

What is fitted (:class:`FaceCoefficients`; Blanz & Vetter 1999, and the coefficient set Deep3DFaceRecon's R-Net
predicts, seed 002 eq. 1): identity ``alpha`` and expression ``beta`` (shape ``S = S_mean + B_id alpha + B_exp
beta``, :meth:`~facehub.modeling.geometry.MorphableFaceModel.shape`), albedo ``delta`` (``T = T_mean + B_tex
delta``), 3 x 9 spherical-harmonics lighting ``gamma``, and a scaled-orthographic camera: rotation
``R = Rz(roll) Rx(pitch) Ry(yaw)`` (:mod:`facehub.modeling.geometry.rotations`), translation ``t`` and scale ``s``
(pixels per model unit). A vertex lands in the photo at ``s R (S_i - mean(S)) + t`` (x right, y down, z towards the
camera), exactly how the synthetic face world poses its faces.

The energy (:class:`~facehub.modeling.face_fitting.FaceFittingConfig` has the weights):

- landmark reprojection: the 468 dense landmarks of :class:`~facehub.modeling.faces.FaceAnalyzer` correspond one to
  one to the model's vertices (both are MediaPipe's topology), and its 68 iBUG landmarks to
  ``landmark_weights @ vertices``; residuals in x, y (and, weakly, the centred depth z) as fractions of the face size,
  Gaussian with ``landmark_sigma`` / ``landmark68_sigma`` / ``depth_sigma``; with a second reader of the same face
  (``reading``: the coefficient regressor's mesh posed in the photo) trusted with weight ``w``, each point's x, y
  term is ``(1 - w) |p - a|^2 + w |p - b|^2`` for the analyzer's point ``a`` and the reader's ``b``, which is
  ``|p - ((1 - w) a + w b)|^2`` plus a constant: the point is fitted to the blend of the two (inverse-variance
  weighting of two Gaussian observations, ``w = sigma_a^2 / (sigma_a^2 + sigma_b^2)``);
- photometric: the mean per-pixel colour distance ``|I_render - I_photo|_2`` over the rendered face
  (Deep3DFaceRecon's L_photo), the model rendered by :class:`~facehub.modeling.geometry.FaceRenderer` (PyTorch3D,
  differentiable) into a ``render_size`` crop around the face;
- Gaussian priors on the coefficients (unit variance in the model's scaled bases).

Coarse to fine: (1) the camera from a closed-form similarity (Umeyama; a scaled-orthographic projection fit for
landmarks without depth) refined by L-BFGS on the landmarks with the mean shape; (2) identity and expression: with
the camera fixed the landmark energy is quadratic in them, so each round solves them exactly (regularised normal
equations) and then updates the camera, and a last L-BFGS pass refines everything together; (3) albedo and lighting
by Adam through the renderer with the geometry fixed (the crop is rasterised once; ``benchmarks/bench_rotation_swap.py``
times a fit inside the rotation and the swap). The result (:class:`FittedFace`) is a
:class:`~facehub.modeling.prn_dense.FaceReconstruction` (mesh in photo pixels, 68 landmarks, pose, colours, UV
texture, ``export``) plus the coefficients, the per-texel visibility, the texture completed by symmetry
(:mod:`facehub.modeling.geometry.texture_completion`) and the final losses.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from facehub.modeling.face_fitting.configuration_face_fitting import FaceFittingConfig
from facehub.modeling.faces.analyzer import Face
from facehub.modeling.faces.image_io import load_image
from facehub.modeling.geometry.procrustes import umeyama
from facehub.modeling.geometry.rotations import euler_from_rotation_matrix
from facehub.modeling.prn_dense.reconstruction import FaceReconstruction, render_depth, sample_image

NUM_DENSE = 468

_THREADS_LOCK = threading.Lock()
_THREADS_STATE = {"active": 0, "saved": 1}


@contextmanager
def single_threaded_torch():
    """Run torch on one CPU thread inside the block (restored when the last concurrent block ends).

    The fit is thousands of tiny tensor operations (468 points, 54 coefficients); splitting each across threads only
    adds synchronisation, which on a busy CPU made a fit 5x slower than on one thread.
    """
    with _THREADS_LOCK:
        if _THREADS_STATE["active"] == 0:
            _THREADS_STATE["saved"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS_STATE["active"] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_STATE["active"] -= 1
            if _THREADS_STATE["active"] == 0:
                torch.set_num_threads(_THREADS_STATE["saved"])


@dataclass
class FaceCoefficients:
    """The fitted coefficients of one face, by group.

    Attributes:
        identity: (K_id,) shape coefficients ``alpha`` (unit Gaussian prior).
        expression: (K_exp,) expression coefficients ``beta``.
        albedo: (K_tex,) albedo coefficients ``delta``.
        lighting: (3, 9) SH coefficients ``gamma`` per colour channel, Ramamoorthi & Hanrahan's order
            (:func:`facehub.modeling.geometry.morphable.sh_basis`).
        rotation: (yaw, pitch, roll) degrees, house convention: the model's rotation ``R``. The head pose it gives
            (the reconstruction's ``pose``, in the FaceAnalyzer's frame) is
            :meth:`~facehub.modeling.geometry.morphable.MorphableFaceModel.head_pose` of it.
        translation: (3,) pixels: where the shape's centroid lands in the photo (z in the landmarks' depth frame).
        scale: pixels per model unit (the default model is in mm).
    """

    identity: np.ndarray
    expression: np.ndarray
    albedo: np.ndarray
    lighting: np.ndarray
    rotation: tuple[float, float, float]
    translation: np.ndarray
    scale: float

    def to_dict(self) -> dict:
        """Plain lists and floats (JSON-ready)."""
        return {
            "identity": np.asarray(self.identity).tolist(), "expression": np.asarray(self.expression).tolist(),
            "albedo": np.asarray(self.albedo).tolist(), "lighting": np.asarray(self.lighting).tolist(),
            "rotation": [float(a) for a in self.rotation], "translation": np.asarray(self.translation).tolist(),
            "scale": float(self.scale),
        }


@dataclass
class SparseLandmarks:
    """Extra 2D landmarks to fit, each a fixed combination of the model's vertices (hand-labelled points, another
    annotation scheme's landmarks): residual ``vertex_weights @ xy - points``, Gaussian with ``sigma``.

    Attributes:
        vertex_weights: (N, 468) rows summing to 1 (one vertex: a one-hot row).
        points: (N, 2) pixels in the photo.
        visible: (N,) bool, False for points not labelled (left out); ``None``: all.
        sigma: noise of the points as a fraction of the face size (hand labels: ~0.02).
    """

    vertex_weights: np.ndarray
    points: np.ndarray
    visible: np.ndarray | None = None
    sigma: float = 0.02

    def __post_init__(self):
        weights, points = np.asarray(self.vertex_weights, np.float64), np.asarray(self.points, np.float64)
        if weights.ndim != 2 or weights.shape[1] != NUM_DENSE or points.shape != (len(weights), 2):
            raise ValueError(f"Sparse landmarks need (N, {NUM_DENSE}) vertex weights and (N, 2) points; got "
                             f"{weights.shape} and {points.shape}.")
        visible = np.ones(len(points), bool) if self.visible is None else np.asarray(self.visible, bool).reshape(-1)
        if len(visible) != len(points):
            raise ValueError(f"`visible` has {len(visible)} entries for {len(points)} points; pass one per point.")
        if not self.sigma > 0:
            raise ValueError(f"Got {self.sigma} for `sigma`; it must be > 0 (a fraction of the face size).")

    @property
    def used(self) -> tuple[np.ndarray, np.ndarray]:
        """The visible points' (M, 468) vertex weights and (M, 2) pixels, float64."""
        weights, points = np.asarray(self.vertex_weights, np.float64), np.asarray(self.points, np.float64)
        if self.visible is None:
            return weights, points
        visible = np.asarray(self.visible, bool).reshape(-1)
        return weights[visible], points[visible]


@dataclass
class FittedFace(FaceReconstruction):
    """A :class:`~facehub.modeling.prn_dense.FaceReconstruction` made by fitting the morphable model (photo pixels,
    x right, y down, z towards the camera); everything a PRN-Dense reconstruction offers, ``export`` included.

    ``texture`` is the UV texture sampled from the photo (the photo at each texel's (x, y), as for PRN-Dense),
    ``visibility`` how well each texel was seen, and ``texture_completion`` / ``completed_texture`` the texture with
    the hidden texels filled by symmetry; ``image_to_crop`` / ``crop_size`` describe the crop the photometric stage
    rendered. The photo is kept (``image``), so :meth:`texture_at`, :meth:`dense_mesh` and ``export(..., dense=True)``
    work as for PRN-Dense.

    Attributes (beyond :class:`FaceReconstruction`'s):
        coefficients: the :class:`FaceCoefficients`.
        visibility: (S, S) float32 in [0, 1] how well each texel was seen
            (:func:`~facehub.modeling.geometry.texture_completion.texel_visibility`).
        texture_completion: the :class:`~facehub.modeling.geometry.texture_completion.TextureCompletion` of
            ``texture`` (``None`` when the config turned completion off; ``completed_texture`` then computes it).
        albedo_texture: (T, T, 3) uint8 the fitted model albedo ``T_mean + B_tex delta`` (unlit).
        rendered_crop: (R, R, 3) uint8 the fitted face rendered over the photo's crop (what stage 3 compared).
        losses: final values: ``landmarks68`` and ``dense_landmarks`` (mean point error / face size; when a face was
            given: against its own landmarks, also where a second reading was blended in), ``sparse_landmarks`` (the
            same, when given), ``photometric`` (mean colour distance in [0, 1] units over the face), ``identity_prior``,
            ``expression_prior``, ``albedo_prior`` (``0.5 |c|^2``).
    """

    coefficients: FaceCoefficients | None = None
    visibility: np.ndarray | None = None
    texture_completion: object | None = None
    albedo_texture: np.ndarray | None = None
    rendered_crop: np.ndarray | None = None
    losses: dict = field(default_factory=dict)


def rotation_matrix_torch(angles: torch.Tensor) -> torch.Tensor:
    """(3, 3) ``Rz(roll) @ Rx(pitch) @ Ry(yaw)`` of (yaw, pitch, roll) radians, differentiable
    (:func:`facehub.modeling.geometry.rotations.rotation_matrix_rad` in torch)."""
    yaw, pitch, roll = angles.unbind()
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    ry = torch.stack([torch.stack([cy, zero, sy]), torch.stack([zero, one, zero]), torch.stack([-sy, zero, cy])])
    rx = torch.stack([torch.stack([one, zero, zero]), torch.stack([zero, cp, -sp]), torch.stack([zero, sp, cp])])
    rz = torch.stack([torch.stack([cr, -sr, zero]), torch.stack([sr, cr, zero]), torch.stack([zero, zero, one])])
    return rz @ rx @ ry


def _initial_camera(points: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(yaw, pitch, roll) radians, (3,) translation, scale of the similarity taking model ``points`` (N, 3), given
    relative to the shape's centroid, onto the (N, 3) or (N, 2) ``target`` (Umeyama in 3D; a scaled-orthographic
    projection fit in 2D)."""
    if target.shape[1] == 3:
        similarity = umeyama(points, target)
        rotation, scale, translation = similarity.rotation, similarity.scale, similarity.translation
    else:
        mean = points.mean(axis=0)
        projection = np.linalg.lstsq(points - mean, target - target.mean(axis=0), rcond=None)[0].T  # (2, 3)
        u, singular, vt = np.linalg.svd(projection, full_matrices=False)
        rows = u @ vt
        rotation = np.vstack([rows, np.cross(rows[0], rows[1])])
        scale = float(singular.mean())
        translation = np.append(target.mean(axis=0) - scale * rows @ mean, 0.0)
    return np.deg2rad(euler_from_rotation_matrix(rotation)), np.asarray(translation, np.float64), float(scale)


def _targets(face, model) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(468, 2 or 3) dense and (68, 2) iBUG landmark targets of a Face or a dense-landmark array (``None``: none)."""
    if face is None:
        return None, None
    if isinstance(face, Face):
        dense = np.asarray(face.dense_landmarks, np.float64)[:NUM_DENSE]
        return dense, np.asarray(face.landmarks68, np.float64)[:, :2]
    dense = np.asarray(face, np.float64)
    if dense.ndim != 2 or dense.shape[0] < NUM_DENSE or dense.shape[1] not in (2, 3):
        raise ValueError(f"`face` must be a Face or ({NUM_DENSE}, 2 or 3) dense landmarks in pixels; got an array "
                         f"of shape {dense.shape}.")
    dense = dense[:NUM_DENSE]
    return dense, model.landmark_weights.double().numpy() @ dense[:, :2]


def _lbfgs(parameters, closure, iterations: int) -> None:
    if iterations <= 0:
        return
    optimiser = torch.optim.LBFGS(parameters, lr=1.0, max_iter=int(iterations), history_size=20,
                                  tolerance_grad=1e-10, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def step():
        optimiser.zero_grad()
        loss = closure()
        loss.backward()
        return loss

    optimiser.step(step)


def crop_photo(photo: np.ndarray, x0: float, y0: float, side: float, size: int) -> np.ndarray:
    """The square ``[x0, x0 + side] x [y0, y0 + side]`` of the photo (house pixel convention) resampled to
    ``size`` x ``size``, low-passed first when shrinking; areas off the photo repeat its border."""
    h, w = photo.shape[:2]
    ix0, iy0 = int(math.floor(x0)) - 2, int(math.floor(y0)) - 2
    ix1, iy1 = int(math.ceil(x0 + side)) + 2, int(math.ceil(y0 + side)) + 2
    cx0, cy0 = min(max(ix0, 0), w - 1), min(max(iy0, 0), h - 1)
    cx1, cy1 = max(min(ix1, w), cx0 + 1), max(min(iy1, h), cy0 + 1)
    window = np.pad(photo[cy0:cy1, cx0:cx1], ((cy0 - iy0, max(iy1 - cy1, 0)), (cx0 - ix0, max(ix1 - cx1, 0)), (0, 0)),
                    mode="edge")
    k = size / side
    if k < 1.0:
        window = cv2.GaussianBlur(window, (0, 0), sigmaX=0.5 / k)
    # OpenCV puts pixel centres at integers: u_cv = k x_cv + k (0.5 - x0') - 0.5, x0' = x0 - ix0.
    matrix = np.array([[k, 0.0, k * (0.5 - (x0 - ix0)) - 0.5], [0.0, k, k * (0.5 - (y0 - iy0)) - 0.5]])
    return cv2.warpAffine(np.ascontiguousarray(window), matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def fit_face(image, face, *, config: FaceFittingConfig | None = None, model=None,
             initial: FaceCoefficients | None = None, compute_depth: bool = True, topology=None,
             dense_landmark_weights: np.ndarray | None = None,
             sparse_landmarks: SparseLandmarks | None = None, reading: np.ndarray | None = None,
             reading_weight: float = 0.0) -> FittedFace:
    """Fit the morphable model to one face of a photo (module docstring).

    Args:
        image: RGB uint8 array, PIL image, path or bytes.
        face: a :class:`~facehub.modeling.faces.Face` from :class:`~facehub.modeling.faces.FaceAnalyzer`, or its
            (468, 3) dense landmarks in the photo's pixels (z towards the camera), or (468, 2) without depth; or
            ``None`` to fit ``sparse_landmarks`` alone (where the analyzer finds no face, e.g. at large yaw).
        config: the :class:`FaceFittingConfig` (default settings when ``None``).
        model: the :class:`~facehub.modeling.geometry.MorphableFaceModel` (the default one when ``None``); it must
            have the 468-vertex MediaPipe topology the landmarks follow.
        initial: coefficients to start from (a regressor's prediction); ``None`` starts at the mean face with the
            camera from a closed-form similarity.
        compute_depth: also z-buffer the mesh into the photo's ``depth`` / ``face_mask``.
        dense_landmark_weights: (468,) weight of each dense landmark's residual (``None``: all 1).
        sparse_landmarks: :class:`SparseLandmarks` fitted as well (hand-labelled points); at least 6 visible ones
            when they are all there is.
        reading: (468, 2 or 3) a second reader's dense landmarks of the same face in the photo's pixels (the
            coefficient regressor's mesh, posed); its x, y count with ``reading_weight`` in [0, 1] against the
            analyzer's (module docstring, *landmark reprojection*); the depth target stays the analyzer's.

    Returns:
        :class:`FittedFace`.
    """
    from facehub.modeling.geometry.morphable import SH_DC, MorphableFaceModel, sh_shading, vertex_normals
    from facehub.modeling.geometry.render import FaceRenderer, OrthographicCamera
    from facehub.modeling.geometry.texture_completion import complete_texture, texel_visibility
    from facehub.modeling.geometry.topology import FaceTopology
    from facehub.modeling.geometry.uv_maps import mesh_to_uv_position_map

    config = config or FaceFittingConfig()
    model = model or MorphableFaceModel.default()
    topology = topology or FaceTopology.default()
    if model.mean_shape.shape[0] != NUM_DENSE:
        raise ValueError(f"The morphable model has {model.mean_shape.shape[0]} vertices; fitting needs the "
                         f"{NUM_DENSE}-vertex MediaPipe topology the FaceAnalyzer's dense landmarks follow.")
    photo = load_image(image)
    dense, landmarks = _targets(face, model)
    given_dense, given68 = dense, landmarks  # what the losses are measured against
    if not 0.0 <= reading_weight <= 1.0:
        raise ValueError(f"Got {reading_weight} for `reading_weight`; use a fraction in [0, 1].")
    if reading is not None and reading_weight > 0.0 and dense is not None:
        reading = np.asarray(reading, np.float64)
        if reading.ndim != 2 or reading.shape[0] != NUM_DENSE or reading.shape[1] not in (2, 3):
            raise ValueError(f"`reading` must be ({NUM_DENSE}, 2 or 3) dense landmarks in pixels; got an array of "
                             f"shape {reading.shape}.")
        dense = dense.copy()
        dense[:, :2] = (1.0 - reading_weight) * dense[:, :2] + reading_weight * reading[:, :2]
        reading68 = model.landmark_weights.double().numpy() @ reading[:, :2]
        landmarks = (1.0 - reading_weight) * landmarks + reading_weight * reading68
    sparse_weights_np, sparse_points_np = sparse_landmarks.used if sparse_landmarks is not None else (None, None)
    if dense is None and (sparse_landmarks is None or len(sparse_points_np) < 6):
        raise ValueError("Nothing to fit: pass a face (a Face or its dense landmarks), or sparse_landmarks with at "
                         "least 6 visible points.")
    has_depth = dense is not None and dense.shape[1] == 3 and config.depth_sigma > 0
    box_points = given68 if given68 is not None else sparse_points_np
    face_size = float(np.sqrt(np.prod(np.ptp(box_points, axis=0)))) or 1.0

    with torch.enable_grad(), single_threaded_torch():
        dtype = torch.float64
        mean_shape = model.mean_shape.to(dtype)
        id_basis, exp_basis = model.id_basis.to(dtype), model.exp_basis.to(dtype)
        weights68 = model.landmark_weights.to(dtype)
        if initial is None:
            centred_mean = mean_shape.numpy() - mean_shape.numpy().mean(axis=0)
            if dense is not None:
                angles0, translation0, scale0 = _initial_camera(centred_mean, dense)
            else:
                angles0, translation0, scale0 = _initial_camera(sparse_weights_np @ centred_mean, sparse_points_np)
            alpha0, beta0 = np.zeros(model.num_identity), np.zeros(model.num_expression)
        else:
            angles0 = np.deg2rad(np.asarray(initial.rotation, np.float64))
            translation0, scale0 = np.asarray(initial.translation, np.float64), float(initial.scale)
            alpha0, beta0 = np.asarray(initial.identity, np.float64), np.asarray(initial.expression, np.float64)
        angles = torch.tensor(angles0, dtype=dtype, requires_grad=True)
        shift = torch.tensor(translation0[:2], dtype=dtype, requires_grad=True)
        log_scale = torch.tensor(math.log(scale0), dtype=dtype, requires_grad=True)
        alpha = torch.tensor(alpha0, dtype=dtype, requires_grad=True)
        beta = torch.tensor(beta0, dtype=dtype, requires_grad=True)
        target_xy = torch.from_numpy(dense[:, :2]) if dense is not None else None
        target68 = torch.from_numpy(landmarks) if landmarks is not None else None
        if sparse_landmarks is not None:
            sparse_weights, sparse_points = torch.from_numpy(sparse_weights_np), torch.from_numpy(sparse_points_np)
        target_z = torch.from_numpy(dense[:, 2] - dense[:, 2].mean()) if has_depth else None
        root_weights = torch.ones(NUM_DENSE, dtype=dtype)
        if dense_landmark_weights is not None:
            root_weights = torch.as_tensor(np.asarray(dense_landmark_weights, np.float64)).reshape(NUM_DENSE).clamp(min=0).sqrt()

        basis = torch.cat([id_basis, exp_basis]).reshape(model.num_identity + model.num_expression, -1)
        prior = torch.cat([torch.full((model.num_identity,), float(config.identity_prior), dtype=dtype),
                           torch.full((model.num_expression,), float(config.expression_prior), dtype=dtype)])

        def posed_centred(coefficients: torch.Tensor | None = None) -> torch.Tensor:
            coefficients = torch.cat([alpha, beta]) if coefficients is None else coefficients
            shape = mean_shape + (coefficients @ basis).reshape(-1, 3)
            shape = shape - shape.mean(dim=0)
            return log_scale.exp() * shape @ rotation_matrix_torch(angles).T

        def residuals(points: torch.Tensor, linear_part: bool = False) -> torch.Tensor:
            """Landmark residuals of (..., V, 3) posed points, scaled so that the landmark energy is ``0.5 |r|^2``;
            ``linear_part`` leaves out the translation and the targets (what a change of the points adds)."""
            xy = points[..., :2] if linear_part else points[..., :2] + shift
            parts = []
            if target_xy is not None:
                dense_xy, xy68 = (xy, weights68 @ xy) if linear_part else (xy - target_xy, weights68 @ xy - target68)
                parts += [(dense_xy * root_weights[:, None] / (face_size * config.landmark_sigma)).flatten(-2),
                          (xy68 / (face_size * config.landmark68_sigma)).flatten(-2)]
            if sparse_landmarks is not None:
                sparse = sparse_weights @ xy if linear_part else sparse_weights @ xy - sparse_points
                parts.append((sparse / (face_size * sparse_landmarks.sigma)).flatten(-2))
            if target_z is not None:
                z = points[..., 2] - points[..., 2].mean(dim=-1, keepdim=True)
                z = z if linear_part else z - target_z
                parts.append(z * root_weights / (face_size * config.depth_sigma))
            return torch.cat(parts, dim=-1)

        def geometry_energy() -> torch.Tensor:
            coefficients = torch.cat([alpha, beta])
            return 0.5 * residuals(posed_centred(coefficients)).square().sum() + 0.5 * (prior * coefficients.square()).sum()

        def solve_shape() -> None:
            """The exact minimiser over identity and expression with the camera fixed: the residuals are linear in
            the coefficients, so the energy is quadratic (regularised normal equations)."""
            with torch.no_grad():
                current = torch.cat([alpha, beta])
                r0 = residuals(posed_centred(current))
                modes = basis.reshape(len(current), -1, 3)
                modes = log_scale.exp() * (modes - modes.mean(dim=1, keepdim=True)) @ rotation_matrix_torch(angles).T
                jacobian = residuals(modes, linear_part=True).T  # (residuals, coefficients)
                lhs = jacobian.T @ jacobian + torch.diag(prior)
                solution = torch.linalg.solve(lhs, jacobian.T @ (jacobian @ current - r0))
                alpha.copy_(solution[: model.num_identity])
                beta.copy_(solution[model.num_identity:])

        # Stage 1: the camera alone (shape held at the mean or at the initial coefficients).
        _lbfgs([angles, shift, log_scale], geometry_energy, config.pose_iterations)
        # Stage 2: identity and expression, alternating exact shape solves with camera updates, then jointly.
        for _ in range(3):
            solve_shape()
            _lbfgs([angles, shift, log_scale], geometry_energy, max(1, config.pose_iterations // 3))
        solve_shape()
        _lbfgs([angles, shift, log_scale, alpha, beta], geometry_energy, config.shape_iterations)

        with torch.no_grad():
            centred = posed_centred()
            if target_z is not None:
                depth_offset = float(dense[:, 2].mean())
            elif initial is not None:
                depth_offset = float(initial.translation[2])
            else:
                depth_offset = float(-centred[:, 2].min())  # the deepest vertex at z = 0
            translation = torch.cat([shift, shift.new_tensor([depth_offset])])
            vertices = (centred + translation).float()
            final_xy = vertices[:, :2].double()
            landmark_losses = {}
            if target_xy is not None:
                given_xy, given_xy68 = torch.from_numpy(given_dense[:, :2]), torch.from_numpy(given68)
                landmark_losses["landmarks68"] = float(
                    (weights68 @ final_xy - given_xy68).norm(dim=1).mean()) / face_size
                landmark_losses["dense_landmarks"] = float((final_xy - given_xy).norm(dim=1).mean()) / face_size
            if sparse_landmarks is not None:
                landmark_losses["sparse_landmarks"] = float(
                    (sparse_weights @ final_xy - sparse_points).norm(dim=1).mean()) / face_size

        # Stage 3: albedo and lighting through the renderer, geometry fixed, in a crop around the fitted mesh.
        xy = vertices[:, :2].double().numpy()
        low, high = xy.min(axis=0), xy.max(axis=0)
        side = float(max(high - low)) * (1.0 + 2.0 * config.crop_margin)
        x0, y0 = (low + high) / 2.0 - side / 2.0
        size = int(config.render_size)
        k = size / side
        camera = OrthographicCamera(k, (-k * float(x0), -k * float(y0)))
        target = torch.from_numpy(crop_photo(photo, float(x0), float(y0), side, size)).permute(2, 0, 1)[None].float()
        target = target / 255.0
        renderer = FaceRenderer(size)
        uvs = model.uvs
        delta = torch.tensor(np.zeros(model.num_albedo) if initial is None else np.asarray(initial.albedo),
                             dtype=torch.float32, requires_grad=True)
        batch_vertices = vertices[None]
        # The geometry is fixed in this stage, so the crop is rasterised once, without gradients (the renderer's fast
        # z-buffer); the renderer shades that rasterisation for the first estimate of the light, every Adam step and
        # the final render.
        with torch.no_grad():
            face_index, barycentric = renderer.rasterize(batch_vertices, model.triangles, camera)
            unlit = renderer.shade(batch_vertices, model.triangles, face_index, barycentric, uvs=uvs,
                                   albedo_texture=model.albedo(delta[None]))
            mask = -torch.nn.functional.max_pool2d(-unlit.mask, 3, stride=1, padding=1)  # drop silhouette pixels
            if mask.sum() < 16:
                mask = unlit.mask
            count = mask.sum().clamp(min=1.0)
            if initial is None:
                gamma0 = torch.zeros(3, 9)
                ratio = (target * mask).sum(dim=(0, 2, 3)) / (unlit.image * mask).sum(dim=(0, 2, 3)).clamp(min=1e-3)
                gamma0[:, 0] = ratio / SH_DC
            else:
                gamma0 = torch.as_tensor(np.asarray(initial.lighting), dtype=torch.float32).reshape(3, 9)
        gamma = gamma0.clone().requires_grad_(True)

        # Each pixel's UV and normal are interpolated once (the renderer's interpolation); every step then only samples
        # the albedo and shades it (render.py).
        with torch.no_grad():
            attributes = torch.cat([uvs[None], vertex_normals(batch_vertices, model.triangles)], dim=-1)
            per_pixel = FaceRenderer.interpolate(attributes, model.triangles, face_index, barycentric)
            grid = per_pixel[..., :2] * 2.0 - 1.0
            normals = torch.nn.functional.normalize(per_pixel[..., 2:5], dim=-1, eps=1e-12)
            covered = (face_index >= 0).unsqueeze(1).float()

        def appearance(delta_, gamma_) -> torch.Tensor:
            colour = torch.nn.functional.grid_sample(model.albedo(delta_[None]), grid, mode="bilinear",
                                                     padding_mode="border", align_corners=False)
            shaded = colour * sh_shading(normals, gamma_[None]).permute(0, 3, 1, 2)
            return covered * shaded + (1.0 - covered) * target

        def photometric(image) -> torch.Tensor:
            distance = ((image - target).square().sum(dim=1, keepdim=True) + 1e-8).sqrt()
            return (distance * mask).sum() / count

        if config.appearance_iterations > 0:
            optimiser = torch.optim.Adam([delta, gamma], lr=config.appearance_learning_rate)
            for _ in range(int(config.appearance_iterations)):
                optimiser.zero_grad()
                loss = (photometric(appearance(delta, gamma)) + config.albedo_prior * delta.square().mean()
                        + config.lighting_prior * gamma[:, 1:].square().mean())
                loss.backward()
                optimiser.step()
        with torch.no_grad():
            rendered = renderer.shade(batch_vertices, model.triangles, face_index, barycentric, uvs=uvs,
                                      albedo_texture=model.albedo(delta[None]), sh_coeffs=gamma[None],
                                      background=target)
            photo_loss = float(photometric(rendered.image))
            albedo = model.albedo(delta[None])[0]

    coefficients = FaceCoefficients(
        identity=alpha.detach().float().numpy(), expression=beta.detach().float().numpy(),
        albedo=delta.detach().numpy().copy(), lighting=gamma.detach().numpy().copy(),
        rotation=tuple(float(a) for a in np.rad2deg(angles.detach().numpy())),
        translation=translation.numpy().astype(np.float64), scale=float(log_scale.detach().exp()),
    )
    mesh = vertices.numpy().astype(np.float32)
    texture_size = int(config.texture_size)
    uv_map = mesh_to_uv_position_map(mesh, size=texture_size, topology=topology).astype(np.float32)
    photo_texture = sample_image(photo, uv_map[..., :2])
    visibility = texel_visibility(mesh, texture_size, topology, image_shape=photo.shape[:2]).astype(np.float32)
    completion = complete_texture(photo_texture, visibility, topology) if config.complete_texture else None
    depth = face_mask = None
    if compute_depth:
        depth, face_mask = render_depth(mesh, topology.triangles, photo.shape[0], photo.shape[1])
    to_uint8 = lambda t: (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)  # noqa: E731
    fitted = FittedFace(
        vertices=mesh,
        triangles=np.asarray(topology.triangles).copy(),
        colors=sample_image(photo, mesh[:, :2]),
        landmarks68=model.reconstruction_landmarks68(mesh),
        pose=model.head_pose(coefficients.rotation),
        uv_position_map=uv_map,
        uvs=np.asarray(topology.uvs, np.float32).copy(),
        texture=photo_texture,
        image_to_crop=np.array([[k, 0.0, -k * float(x0)], [0.0, k, -k * float(y0)]]),
        crop_size=size,
        depth=depth,
        face_mask=face_mask,
        face=face if isinstance(face, Face) else None,
        image_shape=tuple(photo.shape[:2]),
        image=photo,
        coefficients=coefficients,
        visibility=visibility,
        texture_completion=completion,
        albedo_texture=to_uint8(albedo) if albedo.dim() == 3 else None,
        rendered_crop=to_uint8(rendered.image[0]),
        losses={
            **landmark_losses,
            "photometric": photo_loss,
            "identity_prior": 0.5 * float(alpha.detach().square().sum()),
            "expression_prior": 0.5 * float(beta.detach().square().sum()),
            "albedo_prior": 0.5 * float(delta.detach().square().sum()),
        },
    )
    cache = getattr(fitted, "_cache", None)
    if completion is not None and isinstance(cache, dict):
        cache[("completion", texture_size)] = completion  # what texture_completion_at(texture_size) would compute
    return fitted
