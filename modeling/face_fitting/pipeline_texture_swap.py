"""Face swap with the morphable-model fit: the source's shape and completed texture at the target's pose and
expression, drawn into the target photo (:mod:`facehub.modeling.pipeline_texture_swap`).

``FaceFittingSwapPipeline.from_pretrained("facehub/face-fitting")(source, target).images[0]``. The fit separates
identity (shape) from expression and pose, so the mesh the source's texture is drawn on has the source's shape
coefficients with the target's expression, rotation, scale and position (``transfer_shape=True``, the default); with
``transfer_shape=False`` it is the target's own fitted mesh.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from facehub.modeling.face_fitting.configuration_face_fitting import FaceFitter
from facehub.modeling.face_fitting.modeling_face_regressor import FaceCoefficientRegressor
from facehub.modeling.face_fitting.pipeline_face_fitting import FaceFittingPipeline
from facehub.modeling.pipeline_texture_swap import TextureSwapMixin, TextureSwapPipelineOutput


@dataclass
class FaceFittingSwapPipelineOutput(TextureSwapPipelineOutput):
    """What :class:`FaceFittingSwapPipeline` returns (:class:`~facehub.modeling.pipeline_texture_swap.
    TextureSwapPipelineOutput`; ``reconstructions`` are :class:`~facehub.modeling.face_fitting.FittedFace` s)."""


class FaceFittingSwapPipeline(TextureSwapMixin, FaceFittingPipeline):
    """Put a source photo's face on a target photo's head by texture transfer onto the fitted model (module
    docstring). Loads the bundles of :class:`~facehub.modeling.face_fitting.FaceFittingPipeline`.

    Attributes:
        transfer_shape: draw on the source's shape at the target's pose and expression (else the target's mesh).
    """

    loads_bundles_of = ("FaceFittingPipeline",)
    swap_output_class = FaceFittingSwapPipelineOutput
    swap_reconstruction_settings = {"appearance_iterations": 0}
    transfer_shape = True

    def __init__(self, fitter: FaceFitter, regressor: FaceCoefficientRegressor | None = None):
        super().__init__(fitter=fitter, regressor=regressor)

    def swap_geometry(self, target_photo, source, target):
        if not self.transfer_shape:
            return target
        from facehub.modeling.face_fitting.modeling_face_regressor import fitted_face_from_coefficients

        coefficients = replace(target.coefficients, identity=source.coefficients.identity)
        return fitted_face_from_coefficients(target_photo, coefficients, model=self.fitter.face_model,
                                             complete=False, compute_depth=False)
