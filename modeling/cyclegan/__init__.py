"""CycleGAN (Zhu et al., ICCV 2017) for the adversarial repair of DepthNet face swaps (Moniz, Beckham et al. 2018,
section 3.3): the ResNet generator, the 70x70 PatchGAN, their presets and :func:`repair_face`."""

from facehub.modeling.cyclegan.configuration_cyclegan import CYCLEGAN_PRESETS, CycleGANConfig, cyclegan_config
from facehub.modeling.cyclegan.modeling_cyclegan import (
    CycleGANGenerator,
    CycleGANGeneratorOutput,
    PatchDiscriminator,
    PatchDiscriminatorOutput,
)
from facehub.modeling.cyclegan.pipeline_cyclegan import (
    FaceRepairOutput,
    FaceRepairPipeline,
    FaceRepairPipelineOutput,
    crop_around_mask,
    repair_face,
)

__all__ = [
    "CYCLEGAN_PRESETS",
    "CycleGANConfig",
    "CycleGANGenerator",
    "CycleGANGeneratorOutput",
    "FaceRepairOutput",
    "FaceRepairPipeline",
    "FaceRepairPipelineOutput",
    "PatchDiscriminator",
    "PatchDiscriminatorOutput",
    "crop_around_mask",
    "cyclegan_config",
    "repair_face",
]
