"""DepthNets (Moniz, Beckham et al., NeurIPS 2018): keypoint depth, the pseudo-inverse 3D affine, face rotation,
frontalization and face swap."""

from facehub.modeling.depthnet.configuration_depthnet import DEPTHNET_PRESETS
from facehub.modeling.depthnet.modeling_depth_discriminator import DepthDiscriminatorModel, DepthDiscriminatorOutput
from facehub.modeling.depthnet.modeling_depthnet import DepthNetModel, DepthNetOutput
from facehub.modeling.depthnet.pipeline_depthnet import (
    KeypointRegistration,
    KeypointRegistrationPipeline,
    register_keypoints,
)
from facehub.modeling.depthnet.pipeline_face_rotation import (
    FaceFrontalizationPipeline,
    FaceRotationOutput,
    FaceRotationPipeline,
    FaceSelectionError,
    FaceTooSmallError,
    NoFaceFoundError,
    UnreachablePoseError,
)
from facehub.modeling.depthnet.pipeline_face_swap import FaceSwapOutput, FaceSwapPipeline

__all__ = [
    "DEPTHNET_PRESETS",
    "DepthDiscriminatorModel",
    "DepthDiscriminatorOutput",
    "DepthNetModel",
    "DepthNetOutput",
    "FaceFrontalizationPipeline",
    "FaceRotationOutput",
    "FaceRotationPipeline",
    "FaceSelectionError",
    "FaceSwapOutput",
    "FaceSwapPipeline",
    "FaceTooSmallError",
    "KeypointRegistration",
    "KeypointRegistrationPipeline",
    "NoFaceFoundError",
    "UnreachablePoseError",
    "register_keypoints",
]
