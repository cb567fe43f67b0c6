"""StyleGAN2 (Karras et al., CVPR 2020): the unconditional face generator that DiscoFaceGAN (paper 002) and
StyleFaceUV (paper 004) are built on, with a converter from the common PyTorch checkpoint layout."""

from facehub.methods import MethodSpec

METHOD = MethodSpec(
    name="stylegan2",
    title="StyleGAN2",
    paper='Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020), config F',
    summary="draws face images from random latents through a mapping network and a style-modulated synthesis "
    "network; the backbone the controllable generators build on.",
    capabilities={"generation": "facehub.modeling.stylegan2:StyleGAN2Pipeline"},
    default_model=None,
    models={"image_generator": "facehub.modeling.stylegan2:StyleGAN2Generator",
            "discriminator": "facehub.modeling.stylegan2:StyleGAN2Discriminator"},
    training="facehub.trainers.stylegan2:StyleGAN2Training",
    benchmark="facehub.trainers.benchmarks.stylegan2:main",
    pipeline_tag="unconditional-image-generation",
    tags=("stylegan2", "gan", "face-generation"),
)
