"""DepthNets (Moniz, Beckham et al., NeurIPS 2018): keypoint depth and the pseudo-inverse 3D affine."""

from facehub.modeling.depthnet.configuration_depthnet import DEPTHNET_PRESETS
from facehub.modeling.depthnet.modeling_depthnet import DepthNetModel, DepthNetOutput
from facehub.modeling.depthnet.pipeline_depthnet import (
    KeypointRegistration,
    KeypointRegistrationPipeline,
    register_keypoints,
)

__all__ = [
    "DEPTHNET_PRESETS",
    "DepthNetModel",
    "DepthNetOutput",
    "KeypointRegistration",
    "KeypointRegistrationPipeline",
    "register_keypoints",
]
