"""PRN-Dense (seed 003, "DenseNet encoder-decoder for face alignment and 3D reconstruction", 2021): PRNet-style UV
position-map regression with a DenseNet encoder, its SSIM-weighted loss, and 3D face reconstruction from photos with
mesh export.

- :class:`PRNDenseModel`: face crop (B, 3, S, S) in [-1, 1] -> UV position map (B, 3, S, S) in crop units
  ``(x / S, y / S, z / S)``; presets ``paper`` (Table 1, 256 px), ``fast`` (256 px, half width, 2x bottleneck),
  ``cpu-small`` (128 px).
- :func:`face_crop_transform`, :func:`crop_face_image`, :func:`image_positions_to_crop_units`,
  :func:`crop_units_to_image_positions`: the crop and the unit convention, shared by training and inference.
- :func:`prn_loss`, :func:`ssim_map`: eq. 4-9 (1 - SSIM weighted by PRNet's mask) or PRNet's weighted MSE.
- :class:`FaceReconstructionPipeline` -> :class:`FaceReconstructionPipelineOutput` whose ``reconstructions`` are
  :class:`FaceReconstruction` objects (mesh, 68 landmarks in 3D, pose, colours, texture, depth image,
  ``export(".obj" | ".ply" | ".glb")``); faces rolled beyond 20 degrees are cropped upright.
- :class:`FaceMeshRotationPipeline`: turn a face to a pose by re-rendering its reconstruction with the whole head
  (the rotation contract of :class:`~facehub.modeling.pipeline_utils.RotationPipelineOutput`);
  :class:`FaceMeshSwapPipeline`: face swap by drawing the source's completed texture on the target's mesh.
"""

from facehub.modeling.prn_dense.configuration_prn_dense import PRN_DENSE_PRESETS, PRNDenseConfig, prn_dense_config
from facehub.modeling.prn_dense.cropping import (
    PRNET_CROP_SCALE,
    UPRIGHT_ROLL_THRESHOLD,
    crop_face_image,
    crop_units_to_image_positions,
    face_crop_transform,
    image_positions_to_crop_units,
    upright_crop_transform,
)
from facehub.modeling.prn_dense.losses import PAPER_SSIM_C1, PAPER_SSIM_C2, prn_loss, ssim_map
from facehub.modeling.prn_dense.modeling_prn_dense import PRNDenseModel, PRNDenseOutput
from facehub.modeling.prn_dense.pipeline_mesh_rotation import (
    FaceMeshRotationPipeline,
    FaceMeshRotationPipelineOutput,
    FaceMeshSwapPipeline,
    FaceMeshSwapPipelineOutput,
)
from facehub.modeling.prn_dense.pipeline_prn_dense import FaceReconstructionPipeline, FaceReconstructionPipelineOutput
from facehub.modeling.prn_dense.reconstruction import FaceReconstruction, build_reconstruction

__all__ = [
    "PAPER_SSIM_C1",
    "PAPER_SSIM_C2",
    "PRNET_CROP_SCALE",
    "PRN_DENSE_PRESETS",
    "UPRIGHT_ROLL_THRESHOLD",
    "FaceMeshRotationPipeline",
    "FaceMeshRotationPipelineOutput",
    "FaceMeshSwapPipeline",
    "FaceMeshSwapPipelineOutput",
    "FaceReconstruction",
    "FaceReconstructionPipeline",
    "FaceReconstructionPipelineOutput",
    "PRNDenseConfig",
    "PRNDenseModel",
    "PRNDenseOutput",
    "build_reconstruction",
    "crop_face_image",
    "crop_units_to_image_positions",
    "face_crop_transform",
    "image_positions_to_crop_units",
    "prn_dense_config",
    "prn_loss",
    "ssim_map",
    "upright_crop_transform",
]
