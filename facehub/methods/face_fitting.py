"""Morphable-model fitting: the project's morphable face model fitted to a photo by optimisation (landmarks,
photometric loss through the differentiable renderer, coefficient priors); 3D reconstruction with coefficients."""

from facehub.methods import MethodSpec

METHOD = MethodSpec(
    name="face_fitting",
    title="Morphable-model fitting",
    paper="Blanz & Vetter, \"A Morphable Model for the Synthesis of 3D Faces\" (SIGGRAPH 1999), fitted with the "
    "losses of Deng et al., \"Accurate 3D Face Reconstruction with Weakly-Supervised Learning\" (CVPR-W 2019)",
    summary="fits identity, expression, albedo, spherical-harmonics lighting and pose of a morphable face model to "
    "one face: 3D reconstruction with its coefficients, a UV texture and its per-texel visibility; whole-head rotation "
    "and face swap by re-rendering the fit.",
    capabilities={"reconstruction": "facehub.modeling.face_fitting:FaceFittingPipeline",
                  "rotation": "facehub.modeling.face_fitting:FaceFittingRotationPipeline",
                  "swap": "facehub.modeling.face_fitting:FaceFittingSwapPipeline"},
    default_model="facehub/face-fitting",
    models={"fitter": "facehub.modeling.face_fitting:FaceFitter",
            "regressor": "facehub.modeling.face_fitting:FaceCoefficientRegressor"},
    training="facehub.trainers.face_fitting:FaceRegressorTraining",
    evaluation="facehub.trainers.evaluation.face_fitting:main",
    pipeline_tag="image-to-3d",
    tags=("3d-face-reconstruction", "3dmm", "morphable-model"),
)
