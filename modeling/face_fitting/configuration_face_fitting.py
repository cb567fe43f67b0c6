"""Settings of the optimisation-based morphable-model fit, and the pipeline component that carries them.

:class:`FaceFittingConfig` lists every knob of :func:`~facehub.modeling.face_fitting.fit_face`: the coarse-to-fine
schedule (iterations per stage), the landmark noise levels that weigh the reprojection terms against the Gaussian
coefficient priors, and the photometric stage's render size. :class:`FaceFitter` is the same settings as a diffusers
``ModelMixin`` + ``ConfigMixin`` component (``config.json`` beside a one-tensor weights file: per-landmark weights), so a
:class:`~facehub.modeling.face_fitting.FaceFittingPipeline` bundle saves and loads them like any facehub checkpoint;
it holds no learned weights (a later coefficient regressor, to start the fit from, joins the bundle as a second
component).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' loader looks ModelMixin up in this module)
from diffusers.configuration_utils import register_to_config

from facehub.modeling.face_fitting.modeling_face_regressor import CROP_SHIFT, UPRIGHT_BEYOND_ROLL
from facehub.modeling.modeling_utils import FaceHubModel
from facehub.modeling.prn_dense.cropping import check_crop_shift

#: A face whose regressor reading's 68 landmarks lie further than this from the analyzer's (a fraction of the face
#: size) keeps the reading (``FaceFittingConfig.regressor_beyond_disagreement``). On the AFLW training crops, from
#: this disagreement on the reading is nearer the hand labels than the analyzer's mesh in about 4 faces out of 5
#: (``python benchmarks/measure_reader_disagreement.py``).
READERS_DISAGREE_BEYOND = 0.05

#: A face the regressor reads as turned this far (|yaw| in degrees) or further gets the full
#: ``FaceFittingConfig.regressor_reading_weight``; nearer the front, its share falls in proportion to the yaw.
READING_WEIGHT_FULL_AT_YAW = 60.0


@dataclass
class FaceFittingConfig:
    """How :func:`~facehub.modeling.face_fitting.fit_face` fits the morphable model to one face.

    The geometric stages minimise a maximum-a-posteriori energy: landmark residuals, measured as a fraction of the
    face's size (sqrt of the area of the 68 landmarks' box), are Gaussian with standard deviation ``*_sigma``, and
    the coefficients have the model's unit Gaussian prior (its bases are scaled by their standard deviations), i.e.
    ``E = sum_i |r_i / s|^2 / (2 sigma^2) + prior * 0.5 (|alpha|^2 + |beta|^2)`` (Blanz & Vetter 1999, eq. 7; the
    landmark form of Deep3DFaceRecon's L_lm and L_reg, seed 002's R-Net targets).

    Fields:
        pose_iterations: L-BFGS iterations of stage 1 (rotation, translation, scale from the landmarks, shape held at
            the mean).
        shape_iterations: L-BFGS iterations of stage 2 (identity and expression with the pose).
        appearance_iterations: Adam steps of stage 3 (albedo and SH lighting through the differentiable renderer,
            geometry fixed: the crop is rasterised once, then each step samples the albedo and shades it).
        appearance_learning_rate: Adam's step size in stage 3.
        landmark_sigma: noise of the 468 dense landmarks (x, y), fraction of the face size.
        landmark68_sigma: noise of the 68 iBUG landmarks (x, y), fraction of the face size.
        depth_sigma: noise of the dense landmarks' depth (z, centred), fraction of the face size; ``0`` ignores depth
            (MediaPipe's z is an estimate, so it is weighted less than x, y).
        identity_prior, expression_prior: multipliers of the unit Gaussian priors on identity / expression
            coefficients (1 = the model's own prior).
        albedo_prior: weight of ``mean(delta^2)`` against the mean per-pixel colour distance in stage 3.
        lighting_prior: weight of the squared non-ambient SH coefficients (keeps the light plausible where the face
            shows little of it).
        render_size: side of the face crop (pixels) the photometric stage renders and compares; each Adam step
            shades every pixel of it, so the stage's time grows with its square.
        crop_margin: the crop is the dense landmarks' box grown by this fraction of its side on every side.
        texture_size: side of the UV texture sampled from the photo (and of its visibility map).
        complete_texture: fill the texels hidden in the photo from their mirror texels
            (:func:`facehub.modeling.geometry.texture_completion.complete_texture`).
        regressor_beyond_yaw: a face the bundle's coefficient regressor reads as turned further than this (|yaw| in
            degrees) keeps the regressor's prediction instead of being fitted to the analyzer's landmarks, which
            MediaPipe's mesh places poorly on near-profiles; ``None`` fits every face. Used by
            :class:`~facehub.modeling.face_fitting.FaceFittingPipeline` when the bundle has a regressor. The default,
            60, is the edge of the last yaw bin of the AFLW2000-3D protocol, the bin where the regressor alone beats
            the fit (9.2 against 10.4% NME on ../shared/data's half, which was also used to choose it).
        regressor_flip_test: the regressor also reads each crop mirrored and averages the face's rigid placement
            (:mod:`~facehub.modeling.face_fitting.modeling_face_regressor`, *flip test*); ``False`` reads once.
        regressor_crop_shift: the regressor also reads four crops of each face shifted diagonally by this fraction of
            the crop's side and averages the five readings
            (:mod:`~facehub.modeling.face_fitting.modeling_face_regressor`, *shifted crops*:
            :data:`~facehub.modeling.face_fitting.modeling_face_regressor.CROP_SHIFT`); ``0`` reads the centred crop
            alone (a fifth of the passes).
        regressor_recrop_beyond_yaw: a face the regressor reads as turned further than this (|yaw| in degrees) is read
            again from a crop cut around the 68 landmarks of its first reading (``regressor_rereads`` says how often
            and how the readings combine), as 3DDFA_V2 re-crops around its own landmarks: the regressor learned from
            crops cut around a face's true landmarks, and the analyzer's are poor on near-profiles (its yaw error
            grows past 60 degrees), while nearer the front they are better than the regressor's own; ``0`` re-reads
            every face, ``None`` only those whose reading contradicts their crop's landmarks.
        regressor_rereads: how many more times a reading in doubt is read (turned beyond
            ``regressor_recrop_beyond_yaw``, or contradicting the landmarks its crop was cut around by more than
            ``regressor_beyond_disagreement``), each time from the crop cut around the previous reading's 68
            landmarks; with two or more, the result is the coefficient-wise median of all its readings
            (:func:`~facehub.modeling.face_fitting.modeling_face_regressor.median_reading`), with one the re-read
            alone. A crop cut around landmarks the regressor contradicts is as suspect as they are, and one crop cut
            badly moves a median of three little. Two re-reads of turned and contradicting readings were chosen on
            readings of the AFLW2000-3D half of ../shared/data, against one re-read of turned readings alone (the
            model card has the figures). ``0`` never reads a face again.
        regressor_upright_beyond_roll: a face rolled further than this (degrees: the analyzer's roll, or a first
            reading's where the crop is cut again around it) is read by the regressor from an upright crop
            (:mod:`~facehub.modeling.face_fitting.modeling_face_regressor`, *upright crops*); ``None`` never turns
            the crop.
        regressor_beyond_disagreement: a face whose regressor reading's 68 landmarks lie further than this from the
            analyzer's (mean distance, a fraction of the face size:
            :func:`~facehub.modeling.face_fitting.modeling_face_regressor.landmark_disagreement`) keeps the reading
            instead of being fitted to landmarks that a second reader contradicts. MediaPipe's mesh is sometimes
            placed on the wrong face part (a jaw on the cheek, an upside-down face) with no sign of it in the fit's
            own residual; where the two readers disagree this much, the regressor is more often the right one
            (:data:`READERS_DISAGREE_BEYOND`). ``None`` fits every face the analyzer found.
        regressor_reading_weight: a face that is fitted takes the regressor's reading as a second observation of its
            landmarks: the dense and 68-landmark targets (x, y) are the analyzer's moved this fraction of the way
            towards the reading's mesh for a face the reading finds turned :data:`READING_WEIGHT_FULL_AT_YAW` degrees
            or more, and a share in proportion to its |yaw| nearer the front (none for a frontal face, where the
            analyzer's landmarks are the better reader; :func:`~facehub.modeling.face_fitting.fit_face`,
            ``reading``). The analyzer's landmark error grows with the yaw faster than the regressor's. 0.5 (the two
            readers equal at 60 degrees) was chosen on ../shared/data's AFLW2000-3D half and checked on each half
            of it by the parity of the photo's number (the model card has the figures). ``0`` fits the analyzer's
            landmarks alone.
    """

    pose_iterations: int = 30
    shape_iterations: int = 60
    appearance_iterations: int = 80
    appearance_learning_rate: float = 0.05
    landmark_sigma: float = 0.02
    landmark68_sigma: float = 0.02
    depth_sigma: float = 0.05
    identity_prior: float = 1.0
    expression_prior: float = 1.0
    albedo_prior: float = 0.01
    lighting_prior: float = 0.01
    render_size: int = 96
    crop_margin: float = 0.1
    texture_size: int = 128
    complete_texture: bool = True
    regressor_beyond_yaw: float | None = 60.0
    regressor_flip_test: bool = True
    regressor_crop_shift: float = CROP_SHIFT
    regressor_recrop_beyond_yaw: float | None = 60.0
    regressor_rereads: int = 2
    regressor_upright_beyond_roll: float | None = UPRIGHT_BEYOND_ROLL
    regressor_beyond_disagreement: float | None = READERS_DISAGREE_BEYOND
    regressor_reading_weight: float = 0.5

    def __post_init__(self):
        for name in ("pose_iterations", "shape_iterations", "appearance_iterations"):
            value = getattr(self, name)
            if int(value) != value or value < 0:
                raise ValueError(f"Got {value} for `{name}`; it must be a whole number >= 0.")
        for name in ("render_size", "texture_size"):
            value = getattr(self, name)
            if int(value) != value or value < 8:
                raise ValueError(f"Got {value} for `{name}`; it must be a whole number of pixels >= 8.")
        for name in ("landmark_sigma", "landmark68_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Got {getattr(self, name)} for `{name}`; it must be > 0 (a fraction of the face size).")
        for name in ("depth_sigma", "identity_prior", "expression_prior", "albedo_prior", "lighting_prior",
                     "crop_margin", "appearance_learning_rate"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"Got {getattr(self, name)} for `{name}`; it must be >= 0.")
        for name in ("complete_texture", "regressor_flip_test"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ValueError(f"Got {getattr(self, name)!r} for `{name}`; it must be true or false (a boolean).")
        if self.regressor_beyond_yaw is not None and not 0 <= self.regressor_beyond_yaw <= 90:
            raise ValueError(f"Got {self.regressor_beyond_yaw} for `regressor_beyond_yaw`; use degrees in [0, 90] or "
                             "None (fit every face).")
        if self.regressor_recrop_beyond_yaw is not None and (
                isinstance(self.regressor_recrop_beyond_yaw, bool | str)
                or not 0 <= self.regressor_recrop_beyond_yaw <= 90):
            raise ValueError(f"Got {self.regressor_recrop_beyond_yaw!r} for `regressor_recrop_beyond_yaw`; use degrees "
                             "in [0, 90] or None (re-read only readings that contradict their crop's landmarks).")
        if isinstance(self.regressor_rereads, bool | str) or int(self.regressor_rereads) != self.regressor_rereads \
                or not 0 <= self.regressor_rereads <= 8:
            raise ValueError(f"Got {self.regressor_rereads!r} for `regressor_rereads`; use a whole number of re-reads "
                             "in [0, 8] (0: read every face once).")
        if self.regressor_upright_beyond_roll is not None and (
                isinstance(self.regressor_upright_beyond_roll, bool | str)
                or not 0 <= self.regressor_upright_beyond_roll <= 180):
            raise ValueError(f"Got {self.regressor_upright_beyond_roll!r} for `regressor_upright_beyond_roll`; use "
                             "degrees in [0, 180] or None (never turn the regressor's crop).")
        if self.regressor_beyond_disagreement is not None and (
                isinstance(self.regressor_beyond_disagreement, bool | str) or not self.regressor_beyond_disagreement > 0):
            raise ValueError(f"Got {self.regressor_beyond_disagreement!r} for `regressor_beyond_disagreement`; use a "
                             "fraction of the face size > 0 (0.05 is 5%) or None (fit every face the analyzer found).")
        check_crop_shift(self.regressor_crop_shift, "regressor_crop_shift")
        if isinstance(self.regressor_reading_weight, bool | str) or not 0 <= self.regressor_reading_weight <= 1:
            raise ValueError(f"Got {self.regressor_reading_weight!r} for `regressor_reading_weight`; use a fraction in "
                             "[0, 1] (0: fit the analyzer's landmarks alone).")

    @classmethod
    def from_dict(cls, values: dict) -> FaceFittingConfig:
        """The config from a dict, ignoring keys that are not fields (a saved component's bookkeeping)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


#: Named settings: ``default`` (the embedded checkpoint's), ``fast`` (fewer iterations, 64 px renders: test and
#: labelling sweeps), ``precise`` (more iterations, 128 px).
FACE_FITTING_PRESETS: dict[str, dict] = {
    "default": {},
    "fast": {"pose_iterations": 15, "shape_iterations": 30, "appearance_iterations": 50, "render_size": 64,
             "texture_size": 64},
    "precise": {"pose_iterations": 50, "shape_iterations": 120, "appearance_iterations": 150, "render_size": 128,
                "texture_size": 256},
}


def face_fitting_config(preset: str = "default", **overrides) -> FaceFittingConfig:
    """The :class:`FaceFittingConfig` of a named preset (:data:`FACE_FITTING_PRESETS`) with ``overrides``."""
    from facehub.modeling.modeling_utils import preset_settings

    return FaceFittingConfig(**preset_settings(FACE_FITTING_PRESETS, preset, overrides, FaceFittingConfig,
                                               "face fitting"))


_DEFAULTS = FaceFittingConfig()


class FaceFitter(FaceHubModel):
    """The fit's settings as a pipeline component (``config.json``; no learned weights).

    Its ``__init__`` arguments are the fields of :class:`FaceFittingConfig` (see there), plus ``face_model``: which
    morphable model to fit (``"default"``: :meth:`~facehub.modeling.geometry.MorphableFaceModel.default`). Its one
    buffer, ``dense_landmark_weights`` (468,), weighs each dense landmark's reprojection residual (all 1 by default).
    :meth:`fit` runs :func:`~facehub.modeling.face_fitting.fit_face` with them.
    """

    @register_to_config
    def __init__(
        self,
        pose_iterations: int = _DEFAULTS.pose_iterations,
        shape_iterations: int = _DEFAULTS.shape_iterations,
        appearance_iterations: int = _DEFAULTS.appearance_iterations,
        appearance_learning_rate: float = _DEFAULTS.appearance_learning_rate,
        landmark_sigma: float = _DEFAULTS.landmark_sigma,
        landmark68_sigma: float = _DEFAULTS.landmark68_sigma,
        depth_sigma: float = _DEFAULTS.depth_sigma,
        identity_prior: float = _DEFAULTS.identity_prior,
        expression_prior: float = _DEFAULTS.expression_prior,
        albedo_prior: float = _DEFAULTS.albedo_prior,
        lighting_prior: float = _DEFAULTS.lighting_prior,
        render_size: int = _DEFAULTS.render_size,
        crop_margin: float = _DEFAULTS.crop_margin,
        texture_size: int = _DEFAULTS.texture_size,
        complete_texture: bool = _DEFAULTS.complete_texture,
        regressor_beyond_yaw: float | None = _DEFAULTS.regressor_beyond_yaw,
        regressor_flip_test: bool = _DEFAULTS.regressor_flip_test,
        regressor_crop_shift: float = _DEFAULTS.regressor_crop_shift,
        regressor_recrop_beyond_yaw: float | None = _DEFAULTS.regressor_recrop_beyond_yaw,
        regressor_rereads: int = _DEFAULTS.regressor_rereads,
        regressor_upright_beyond_roll: float | None = _DEFAULTS.regressor_upright_beyond_roll,
        regressor_beyond_disagreement: float | None = _DEFAULTS.regressor_beyond_disagreement,
        regressor_reading_weight: float = _DEFAULTS.regressor_reading_weight,
        face_model: str = "default",
    ):
        super().__init__()
        if face_model != "default":
            raise ValueError(f"Got {face_model!r} for `face_model`; only 'default' (the project's model) is known.")
        self.fitting_config.__post_init__()  # validate now, with the field's name in the message
        # How much each of the 468 dense landmarks counts in the reprojection term (1 = fully): the bundle's only
        # tensor, so that the landmarks one trusts less (e.g. the jaw contour at large yaw) can be down-weighted.
        self.register_buffer("dense_landmark_weights", torch.ones(468))
        self._face_model = None

    @property
    def fitting_config(self) -> FaceFittingConfig:
        """The settings as a :class:`FaceFittingConfig`."""
        return FaceFittingConfig.from_dict(dict(self.config))

    def config_with(self, **overrides) -> FaceFittingConfig:
        """These settings with single fields replaced; a ``TypeError`` naming unknown ones, a ``ValueError`` for a
        bad value."""
        settings = asdict(self.fitting_config)
        unknown = sorted(set(overrides) - set(settings))
        if unknown:
            raise TypeError(f"Unknown fit setting(s) {unknown}; known settings: {sorted(settings)}.")
        return FaceFittingConfig(**{**settings, **overrides})

    @property
    def face_model(self):
        """The :class:`~facehub.modeling.geometry.MorphableFaceModel` being fitted (loaded on first use)."""
        if self._face_model is None:
            from facehub.modeling.geometry.morphable import MorphableFaceModel

            self._face_model = MorphableFaceModel.default()
        return self._face_model

    def forward(self, *args, **kwargs):
        return self.fit(*args, **kwargs)

    def fit(self, image, face, *, initial=None, compute_depth: bool = True, sparse_landmarks=None, reading=None,
            reading_weight: float = 0.0, **overrides):
        """:func:`~facehub.modeling.face_fitting.fit_face` of one face of ``image`` with these settings
        (``overrides`` replace single fields of :class:`FaceFittingConfig` for this call)."""
        from facehub.modeling.face_fitting.fitting import fit_face

        config = self.config_with(**overrides)
        return fit_face(image, face, config=config, model=self.face_model, initial=initial,
                        compute_depth=compute_depth, sparse_landmarks=sparse_landmarks, reading=reading,
                        reading_weight=reading_weight,
                        dense_landmark_weights=self.dense_landmark_weights.detach().cpu().double().numpy())
