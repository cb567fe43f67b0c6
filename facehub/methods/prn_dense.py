"""PRN-Dense (paper 003): UV position-map regression with a DenseNet encoder; dense 3D reconstruction, 68-point
alignment, and rotation by turning the reconstructed mesh."""

from facehub.methods import MethodSpec

METHOD = MethodSpec(
    name="prn_dense",
    title="PRN-Dense",
    paper="DenseNet encoder-decoder for face alignment and 3D reconstruction (Computer Systems & Applications "
    "2021), after PRNet (Feng et al., ECCV 2018)",
    summary="regresses a UV position map from one face image: dense 3D reconstruction and 68-point alignment; "
    "whole-head rotation and face swap by re-rendering the reconstruction.",
    capabilities={
        "reconstruction": "facehub.modeling.prn_dense:FaceReconstructionPipeline",
        "rotation": "facehub.modeling.prn_dense:FaceMeshRotationPipeline",
        "swap": "facehub.modeling.prn_dense:FaceMeshSwapPipeline",
    },
    default_model="facehub/prn-dense",
    models={"prn": "facehub.modeling.prn_dense:PRNDenseModel"},
    training="facehub.trainers.prn_dense:PRNDenseTraining",
    evaluation="facehub.trainers.evaluation.prn_dense:main",
    benchmark="facehub.trainers.benchmarks.prn_dense:main",
    pipeline_tag="image-to-3d",
    tags=("3d-face-reconstruction", "face-alignment"),
)
