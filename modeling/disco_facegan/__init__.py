"""DiscoFaceGAN (Deng et al., "Disentangled and Controllable Face Image Generation via 3D Imitative-Contrastive
Learning", CVPR 2020, seed 002): faces generated from independent identity, expression, lighting, pose and noise
factors, on facehub's StyleGAN2, taught by the morphable model's renders."""

from facehub.modeling.disco_facegan.configuration_disco_facegan import (
    DISCO_FACEGAN_PRESETS,
    FACTOR_KEYS,
    FACTORS,
    DiscoFaceGANConfig,
    disco_facegan_config,
    factor_dims,
)
from facehub.modeling.disco_facegan.factors import factors_from_lambda, generator_input, lambda_from_factors
from facehub.modeling.disco_facegan.modeling_disco_facegan import FactorVAEs
from facehub.modeling.disco_facegan.pipeline_disco_facegan import DiscoFaceGANPipeline, DiscoFaceGANPipelineOutput
from facehub.modeling.disco_facegan.pipeline_embedding import (
    DiscoFaceGANEditOutput,
    DiscoFaceGANRotationOutput,
    DiscoFaceGANRotationPipeline,
    EmbeddedFace,
    EmbeddedPhoto,
    edit_face,
    embed_face,
)
from facehub.modeling.disco_facegan.rendering import FactorRender, FactorRenderer, warp_to

#: The rotation contract's name for this method's rotation pipeline.
FaceRotationPipeline = DiscoFaceGANRotationPipeline

__all__ = [
    "DISCO_FACEGAN_PRESETS",
    "FACTORS",
    "FACTOR_KEYS",
    "DiscoFaceGANConfig",
    "DiscoFaceGANPipeline",
    "DiscoFaceGANPipelineOutput",
    "DiscoFaceGANEditOutput",
    "DiscoFaceGANRotationOutput",
    "DiscoFaceGANRotationPipeline",
    "EmbeddedFace",
    "EmbeddedPhoto",
    "FaceRotationPipeline",
    "FactorRender",
    "FactorRenderer",
    "FactorVAEs",
    "disco_facegan_config",
    "edit_face",
    "embed_face",
    "factor_dims",
    "factors_from_lambda",
    "generator_input",
    "lambda_from_factors",
    "warp_to",
]
