"""Pose-conditioned CVAE-GAN face rotation (Morikawa & Saito, "Deep Face Rotation with Ordinary Dataset", seed 000):
E, G, P, D1 and D2 of Table 1, their presets, and :class:`PoseCVAEGANRotationPipeline` (encode a photo's face, re-generate
it at the requested pose, paste it back)."""

from facehub.modeling.pose_cvaegan.configuration_pose_cvaegan import (
    POSE_CVAEGAN_PRESETS,
    PoseCVAEGANConfig,
    pose_cvaegan_config,
)
from facehub.modeling.pose_cvaegan.modeling_pose_cvaegan import (
    CodeDiscriminator,
    DiscriminatorOutput,
    ImageDiscriminator,
    PoseEncoder,
    PoseEncoderOutput,
    PoseGenerator,
    PoseGeneratorOutput,
    PosePredictor,
    PosePredictorOutput,
)
from facehub.modeling.pose_cvaegan.pipeline_pose_cvaegan import (
    PoseCVAEGANRotationOutput,
    PoseCVAEGANRotationPipeline,
    aligned_crop,
    paste_mask,
)

#: The rotation contract's name for this method's pipeline (the class is :class:`PoseCVAEGANRotationPipeline`).
FaceRotationPipeline = PoseCVAEGANRotationPipeline

__all__ = [
    "POSE_CVAEGAN_PRESETS",
    "CodeDiscriminator",
    "DiscriminatorOutput",
    "FaceRotationPipeline",
    "ImageDiscriminator",
    "PoseCVAEGANConfig",
    "PoseEncoder",
    "PoseEncoderOutput",
    "PoseGenerator",
    "PoseGeneratorOutput",
    "PosePredictor",
    "PoseCVAEGANRotationOutput",
    "PoseCVAEGANRotationPipeline",
    "PosePredictorOutput",
    "aligned_crop",
    "paste_mask",
    "pose_cvaegan_config",
]
