"""Pose-conditioned CVAE-GAN face rotation (seed 000): a face re-generated at a requested pose by a generator trained
on single-view photos, with no multi-view pairs."""

from facehub.methods import MethodSpec

METHOD = MethodSpec(
    name="pose_cvaegan",
    title="Pose CVAE-GAN",
    paper='Morikawa & Saito, "Deep Face Rotation with Ordinary Dataset" (Japanese; pose-conditioned CVAE-GAN with '
    "Adversarial Variational Bayes)",
    summary="encodes a face and re-generates it at the requested yaw, pitch and roll with a generator trained on "
    "ordinary single-view photos (no multi-view pairs): it never tears, since what the photo hides is generated.",
    capabilities={"rotation": "facehub.modeling.pose_cvaegan:PoseCVAEGANRotationPipeline"},
    default_model="facehub/pose-cvaegan",
    models={"encoder": "facehub.modeling.pose_cvaegan:PoseEncoder",
            "generator": "facehub.modeling.pose_cvaegan:PoseGenerator",
            "predictor": "facehub.modeling.pose_cvaegan:PosePredictor"},
    training="facehub.trainers.pose_cvaegan:PoseCVAEGANTraining",
    evaluation="facehub.trainers.evaluation.pose_cvaegan:main",
    pipeline_tag="image-to-image",
    tags=("face-rotation", "cvae-gan", "novel-view-synthesis"),
)
