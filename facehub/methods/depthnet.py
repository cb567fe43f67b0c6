"""DepthNets (paper 001): keypoint depths and the pseudo-inverse 3D affine; rotation, frontalization and swap."""

from facehub.methods import MethodSpec

METHOD = MethodSpec(
    name="depthnet",
    title="DepthNets",
    paper='Moniz, Beckham et al., "Unsupervised Depth Estimation, 3D Face Rotation and Replacement" (NeurIPS 2018)',
    summary="infers keypoint depths without depth labels and the 3D affine that maps a face onto another pose or "
    "face (rotation, frontalization, face swap).",
    capabilities={
        "registration": "facehub.modeling.depthnet:KeypointRegistrationPipeline",
        "rotation": "facehub.modeling.depthnet:FaceRotationPipeline",
        "frontalization": "facehub.modeling.depthnet:FaceFrontalizationPipeline",
        "swap": "facehub.modeling.depthnet:FaceSwapPipeline",
    },
    default_model="facehub/depthnet",
    models={
        "depth_net": "facehub.modeling.depthnet:DepthNetModel",
        "depth_discriminator": "facehub.modeling.depthnet:DepthDiscriminatorModel",
    },
    training="facehub.trainers.depthnet:DepthNetTraining",
    evaluation="facehub.trainers.evaluation.depthnet:main",
    benchmark="facehub.trainers.benchmarks.depthnet:main",
    pipeline_tag="image-to-image",
    tags=("face-rotation", "face-swap", "keypoints"),
)
