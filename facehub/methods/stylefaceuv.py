"""StyleFaceUV (Chung et al., BMVC 2022, seed 004): a trained StyleGAN2 turned into a generator of textured 3D faces
with diffuse and displacement UV maps, consistent across views."""

from facehub.methods import MethodSpec

METHOD = MethodSpec(
    name="stylefaceuv",
    title="StyleFaceUV",
    paper='Chung et al., "StyleFaceUV: a 3D Face UV Map Generator for View-Consistent Face Image Synthesis" '
    "(BMVC 2022)",
    summary="reads morphable-model coefficients from a StyleGAN2 stylecode (F_3D), finds the yaw direction in W, and "
    "generates diffuse and displacement UV maps so each generated face becomes a textured 3D face that turns, "
    "relights and re-expresses.",
    capabilities={"generation": "facehub.modeling.stylefaceuv:StyleFaceUVPipeline",
                  "rotation": "facehub.modeling.stylefaceuv:StyleFaceUVRotationPipeline"},
    default_model="facehub/stylefaceuv",
    models={"image_generator": "facehub.modeling.stylegan2:StyleGAN2Generator",
            "style_to_coefficients": "facehub.modeling.stylefaceuv:StyleToCoefficients",
            "yaw_step": "facehub.modeling.stylefaceuv:YawStepMapper",
            "uv_generator": "facehub.modeling.stylegan2:StyleGAN2Generator",
            "factor_vaes": "facehub.modeling.disco_facegan:FactorVAEs"},
    training="facehub.trainers.stylefaceuv:StyleFaceUVTraining",
    evaluation="facehub.trainers.evaluation.stylefaceuv:main",
    pipeline_tag="unconditional-image-generation",
    tags=("stylefaceuv", "stylegan2", "3d-face", "uv-map"),
)
