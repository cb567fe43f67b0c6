"""Face rotation with the morphable-model fit: fit the face, turn the whole head, re-render it.

``FaceFittingRotationPipeline.from_pretrained("facehub/face-fitting")`` honours the rotation contract
(``pipe(image, yaw=, pitch=, roll=None, target_image=None)`` -> ``.images``, ``.requested_pose``,
``.achieved_pose``) with :class:`~facehub.modeling.pipeline_head_rotation.HeadRotationMixin`: the face is fitted to
the analyzer's landmarks (no photometric stage: the texture is the photo's either way), and its dense mesh with the
texture completed by symmetry is turned together with a layered-depth proxy of the rest of the head
(:func:`~facehub.modeling.geometry.head_rotation.rotate_head`). It loads the bundles of
:class:`~facehub.modeling.face_fitting.FaceFittingPipeline` and the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

from facehub.modeling.face_fitting.configuration_face_fitting import FaceFitter
from facehub.modeling.face_fitting.modeling_face_regressor import FaceCoefficientRegressor
from facehub.modeling.face_fitting.pipeline_face_fitting import FaceFittingPipeline
from facehub.modeling.pipeline_head_rotation import HeadRotationMixin, HeadRotationPipelineOutput


@dataclass
class FaceFittingRotationPipelineOutput(HeadRotationPipelineOutput):
    """What :class:`FaceFittingRotationPipeline` returns (:class:`~facehub.modeling.pipeline_head_rotation.
    HeadRotationPipelineOutput`; ``reconstruction`` is a :class:`~facehub.modeling.face_fitting.FittedFace`)."""


class FaceFittingRotationPipeline(HeadRotationMixin, FaceFittingPipeline):
    """Turn the face in a photo by re-rendering its morphable-model fit with the head around it (module docstring).

    ``pipe = FaceFittingRotationPipeline.from_pretrained("facehub/face-fitting")``; ``pipe(photo, yaw=30.0)``.
    """

    loads_bundles_of = ("FaceFittingPipeline",)
    output_class = FaceFittingRotationPipelineOutput
    reconstruction_settings = {"appearance_iterations": 0}

    def __init__(self, fitter: FaceFitter, regressor: FaceCoefficientRegressor | None = None):
        super().__init__(fitter=fitter, regressor=regressor)
