"""StyleFaceUV (Chung et al., "StyleFaceUV: a 3D Face UV Map Generator for View-Consistent Face Image Synthesis",
BMVC 2022, seed 004): a trained StyleGAN2 turned into a generator of textured 3D faces. This package holds the
stylecode-to-coefficient networks of Sec. 3.2 (F_3D and F_yaw), the yaw direction in W, and the detailed face of
Sec. 3.3 (a dense mesh displaced and textured by the UV generator's maps, its renders, the symmetric view's weights
and eq. 5's photometric loss). The UV generator is a StyleGAN2 synthesis network with ``image_channels=4``."""

from facehub.modeling.stylefaceuv.modeling_stylefaceuv import (
    FACE_FACTORS,
    PAPER_HIDDEN_MULTIPLIERS,
    SCENE_FACTORS,
    StyleToCoefficients,
    YawStepMapper,
)
from facehub.modeling.stylefaceuv.pipeline_rotation import StyleFaceUVRotationOutput, StyleFaceUVRotationPipeline
from facehub.modeling.stylefaceuv.pipeline_stylefaceuv import (
    StyleFaceUVPipeline,
    StyleFaceUVPipelineOutput,
    TexturedFace,
)
from facehub.modeling.stylefaceuv.rendering import (
    MAX_DISPLACEMENT,
    OVERLAP_WEIGHT,
    DetailedFaceRenderer,
    DetailedRender,
    accessed_texels,
    at_yaw,
    mirrored_yaw,
    photometric_loss,
    symmetric_view_weights,
    uv_maps,
)
from facehub.modeling.stylefaceuv.yaw_direction import PAPER_FRACTION, YawDirection, linear_svm_direction

__all__ = [
    "FACE_FACTORS",
    "MAX_DISPLACEMENT",
    "OVERLAP_WEIGHT",
    "DetailedFaceRenderer",
    "DetailedRender",
    "accessed_texels",
    "at_yaw",
    "mirrored_yaw",
    "photometric_loss",
    "symmetric_view_weights",
    "uv_maps",
    "PAPER_FRACTION",
    "PAPER_HIDDEN_MULTIPLIERS",
    "SCENE_FACTORS",
    "StyleFaceUVPipeline",
    "StyleFaceUVPipelineOutput",
    "StyleFaceUVRotationOutput",
    "StyleFaceUVRotationPipeline",
    "StyleToCoefficients",
    "TexturedFace",
    "YawDirection",
    "YawStepMapper",
    "linear_svm_direction",
]
