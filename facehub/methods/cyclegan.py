"""CycleGAN repair of face swaps (DepthNets, paper 001, section 3.3): a pasted swap translated into the domain of
real faces."""

from facehub.methods import MethodSpec

METHOD = MethodSpec(
    name="cyclegan",
    title="CycleGAN face-swap repair",
    paper='Zhu et al., "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks" (ICCV '
    "2017), as DepthNets (Moniz, Beckham et al., NeurIPS 2018) use it to repair face swaps",
    summary="translates a pasted face swap into the domain of real faces, so the face matches hair and background.",
    capabilities={"repair": "facehub.modeling.cyclegan:FaceRepairPipeline"},
    default_model=None,  # no checkpoint is shipped yet: train one with `facehub train cyclegan`
    models={
        "repair": "facehub.modeling.cyclegan:CycleGANGenerator",
        "real_to_swap": "facehub.modeling.cyclegan:CycleGANGenerator",
    },
    training="facehub.trainers.cyclegan:CycleGANRepairTraining",
    pipeline_tag="image-to-image",
    tags=("face-swap", "cyclegan"),
)
