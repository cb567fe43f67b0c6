"""Morphable-model fitting (``face_fitting``): the project's morphable face model fitted to a photo by optimisation.

- :func:`fit_face`: one face -> :class:`FittedFace` (a :class:`~facehub.modeling.prn_dense.FaceReconstruction` plus
  :class:`FaceCoefficients`, per-texel visibility, texture completed by symmetry, final losses); extra or only
  hand-labelled points as :class:`SparseLandmarks`.
- :class:`FaceFittingConfig`, :data:`FACE_FITTING_PRESETS`, :func:`face_fitting_config`: the fit's settings;
  :class:`FaceFitter`: the same settings as a pipeline component.
- :class:`FaceCoefficientRegressor` (presets :data:`FACE_REGRESSOR_PRESETS`): a ResNet reading every coefficient from
  the face crop in one pass (the R-Net of seed 002), the fit's start or its fast replacement.
- :class:`FaceFittingPipeline`: photo -> one :class:`FittedFace` per face (the reconstruction contract), loaded with
  ``FaceFittingPipeline.from_pretrained("facehub/face-fitting")``.
- :class:`FaceFittingRotationPipeline`: the rotation contract by re-rendering the fitted face with the whole head
  (:mod:`facehub.modeling.pipeline_head_rotation`); :class:`FaceFittingSwapPipeline`: the swap contract by texture
  transfer onto the source's shape at the target's pose (:mod:`facehub.modeling.pipeline_texture_swap`).
"""

from facehub.modeling.face_fitting.configuration_face_fitting import (
    FACE_FITTING_PRESETS,
    FaceFitter,
    FaceFittingConfig,
    face_fitting_config,
)
from facehub.modeling.face_fitting.fitting import FaceCoefficients, FittedFace, SparseLandmarks, fit_face
from facehub.modeling.face_fitting.modeling_face_regressor import (
    FACE_REGRESSOR_PRESETS,
    FaceCoefficientRegressor,
    FaceRegressorOutput,
    fitted_face_from_coefficients,
)
from facehub.modeling.face_fitting.pipeline_face_fitting import FaceFittingPipeline, FaceFittingPipelineOutput
from facehub.modeling.face_fitting.pipeline_head_rotation import (
    FaceFittingRotationPipeline,
    FaceFittingRotationPipelineOutput,
)
from facehub.modeling.face_fitting.pipeline_texture_swap import FaceFittingSwapPipeline, FaceFittingSwapPipelineOutput

__all__ = [
    "FACE_FITTING_PRESETS",
    "FACE_REGRESSOR_PRESETS",
    "FaceCoefficientRegressor",
    "FaceCoefficients",
    "FaceFitter",
    "FaceFittingConfig",
    "FaceFittingPipeline",
    "FaceFittingPipelineOutput",
    "FaceFittingRotationPipeline",
    "FaceFittingRotationPipelineOutput",
    "FaceFittingSwapPipeline",
    "FaceFittingSwapPipelineOutput",
    "FaceRegressorOutput",
    "FittedFace",
    "SparseLandmarks",
    "face_fitting_config",
    "fit_face",
    "fitted_face_from_coefficients",
]
