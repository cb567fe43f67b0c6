"""StyleFaceUV (Chung et al., "StyleFaceUV: a 3D Face UV Map Generator for View-Consistent Face Image Synthesis",
BMVC 2022, seed 004): a trained StyleGAN2 turned into a generator of textured 3D faces. This package holds the
stylecode-to-coefficient networks of Sec. 3.2 (F_3D and F_yaw) and the yaw direction in W."""

from facehub.modeling.stylefaceuv.modeling_stylefaceuv import (
    FACE_FACTORS,
    PAPER_HIDDEN_MULTIPLIERS,
    SCENE_FACTORS,
    StyleToCoefficients,
    YawStepMapper,
)
from facehub.modeling.stylefaceuv.yaw_direction import PAPER_FRACTION, YawDirection, linear_svm_direction

__all__ = [
    "FACE_FACTORS",
    "PAPER_FRACTION",
    "PAPER_HIDDEN_MULTIPLIERS",
    "SCENE_FACTORS",
    "StyleToCoefficients",
    "YawDirection",
    "YawStepMapper",
    "linear_svm_direction",
]
