"""StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020): the generator and
discriminator that DiscoFaceGAN (paper 002) and StyleFaceUV (paper 004) share, their presets, an image pipeline,
and the converter from the common PyTorch checkpoint layout (``facehub convert stylegan2``)."""

from facehub.modeling.stylegan2.configuration_stylegan2 import (
    STYLEGAN2_PRESETS,
    StyleGAN2Config,
    stylegan2_channels,
    stylegan2_config,
)
from facehub.modeling.stylegan2.convert import StyleGAN2ConversionError, convert_rosinality_checkpoint
from facehub.modeling.stylegan2.modeling_stylegan2 import (
    StyleGAN2Discriminator,
    StyleGAN2DiscriminatorOutput,
    StyleGAN2Generator,
    StyleGAN2GeneratorOutput,
)
from facehub.modeling.stylegan2.pipeline_stylegan2 import StyleGAN2Pipeline, StyleGAN2PipelineOutput, tensor_to_uint8

__all__ = [
    "STYLEGAN2_PRESETS",
    "StyleGAN2Config",
    "StyleGAN2ConversionError",
    "StyleGAN2Discriminator",
    "StyleGAN2DiscriminatorOutput",
    "StyleGAN2Generator",
    "StyleGAN2GeneratorOutput",
    "StyleGAN2Pipeline",
    "StyleGAN2PipelineOutput",
    "convert_rosinality_checkpoint",
    "stylegan2_channels",
    "stylegan2_config",
    "tensor_to_uint8",
]
