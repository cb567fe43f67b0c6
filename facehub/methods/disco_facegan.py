"""DiscoFaceGAN (seed 002): faces generated from independent identity, expression, lighting, pose and noise factors,
taught by the morphable model's renders (imitative losses) and by pairs that differ in one factor (contrastive
losses)."""

from facehub.methods import MethodSpec

METHOD = MethodSpec(
    name="disco_facegan",
    title="DiscoFaceGAN",
    paper='Deng et al., "Disentangled and Controllable Face Image Generation via 3D Imitative-Contrastive Learning" '
    "(CVPR 2020)",
    summary="generates faces of people who do not exist from identity, expression, lighting and pose factors that "
    "can each be set or changed on their own.",
    capabilities={"generation": "facehub.modeling.disco_facegan:DiscoFaceGANPipeline",
                  "rotation": "facehub.modeling.disco_facegan:DiscoFaceGANRotationPipeline"},
    default_model="facehub/disco-facegan",
    models={"image_generator": "facehub.modeling.stylegan2:StyleGAN2Generator",
            "factor_vaes": "facehub.modeling.disco_facegan:FactorVAEs"},
    training="facehub.trainers.disco_facegan:DiscoFaceGANTraining",
    evaluation="facehub.trainers.evaluation.disco_facegan:main",
    pipeline_tag="unconditional-image-generation",
    tags=("disco-facegan", "stylegan2", "face-generation", "disentanglement"),
)
