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
    FaceRotationPipelineOutput,
    FaceSelectionError,
    FaceTooSmallError,
    NoFaceFoundError,
    UnreachablePoseError,
)
from facehub.modeling.depthnet.pipeline_face_swap import FaceSwapOutput, FaceSwapPipeline, FaceSwapPipelineOutput
from facehub.modeling.pipeline_utils import Pose

__all__ = [
    "DEPTHNET_PRESETS",
    "DepthDiscriminatorModel",
    "DepthDiscriminatorOutput",
    "DepthNetModel",
    "DepthNetOutput",
    "FaceFrontalizationPipeline",
    "FaceRotationOutput",
    "FaceRotationPipeline",
    "FaceRotationPipelineOutput",
    "FaceSelectionError",
    "FaceSwapOutput",
    "FaceSwapPipeline",
    "FaceSwapPipelineOutput",
    "FaceTooSmallError",
    "KeypointRegistration",
    "KeypointRegistrationPipeline",
    "NoFaceFoundError",
    "Pose",
    "UnreachablePoseError",
    "register_keypoints",
]
