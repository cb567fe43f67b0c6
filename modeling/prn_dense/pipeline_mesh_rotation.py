"""Face rotation by 3D reconstruction with PRN-Dense: reconstruct the face's dense mesh, turn it, re-render it.

``FaceMeshRotationPipeline.from_pretrained("facehub/prn-dense")`` honours the rotation contract every facehub
rotation method shares (:class:`~facehub.modeling.pipeline_utils.RotationPipelineOutput`):
``pipe(image, yaw=, pitch=, roll=None, target_image=None)`` -> ``.images``, ``.requested_pose``, ``.achieved_pose``.
Steps, for the ``face_index``-th face (largest first) of each photo:

1. **Reconstruction**: PRN-Dense's UV position map gives the face's 468-vertex mesh in the photo's pixels
   (:class:`~facehub.modeling.prn_dense.FaceReconstructionPipeline`, seed 003 eq. 10).
2. **Target pose**: ``(yaw, pitch, roll)`` in degrees (house convention); ``roll=None`` keeps the mesh's own roll.
   With ``target_image`` the pose is that of its face (the largest, or ``target_face_index``) as the analyzer
   measures it.
3. **Re-rendering**: the photo is sampled into the mesh's UV texture, the mesh is rotated about its centre from its
   own pose (:func:`~facehub.modeling.geometry.profiling.pose_from_mesh`) to the target and rendered orthographically
   over the photo; pixels the face uncovered are inpainted (3DDFA's face profiling,
   :func:`~facehub.modeling.geometry.profiling.rotate_face`). Hair and background stay where they were.
4. **Measurement**: the :class:`~facehub.modeling.faces.FaceAnalyzer` finds the face again on the result;
   ``achieved_pose`` is its pose (``None`` when it finds none).

What the method cannot do: the mesh covers the face only (no ears, no back of the head), and its texture is what the
photo shows, so surfaces hidden in the photo take the colour of what covered them. Targets with ``|yaw|`` or
``|pitch|`` above ``max_yaw`` / ``max_pitch`` (90 degrees: the face would look away from the camera) raise
:class:`~facehub.modeling.pipeline_utils.UnreachablePoseError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from facehub.modeling.faces.analyzer import Face
from facehub.modeling.pipeline_utils import (
    Pose,
    RotationPipelineMixin,
    RotationPipelineOutput,
    measure_pose,
)
from facehub.modeling.prn_dense.modeling_prn_dense import PRNDenseModel
from facehub.modeling.prn_dense.pipeline_prn_dense import FaceReconstructionPipeline
from facehub.modeling.prn_dense.reconstruction import FaceReconstruction


@dataclass
class FaceMeshRotationPipelineOutput(RotationPipelineOutput):
    """What :class:`FaceMeshRotationPipeline` returns.

    Attributes:
        images: the photos with the face turned, one per input image: PIL images, or (H, W, 3) RGB uint8 arrays with
            ``output_type="np"``.
        requested_pose: :class:`~facehub.modeling.pipeline_utils.Pose` the mesh was turned to.
        achieved_pose: :class:`~facehub.modeling.pipeline_utils.Pose` measured on the result by the face analyzer
            (``None`` when no face is found there, or with ``measure=False``).
        face: the :class:`~facehub.modeling.faces.Face` that was turned (as the analyzer found it in the photo).
        reconstruction: its :class:`~facehub.modeling.prn_dense.FaceReconstruction` (mesh, pose, ...).
        num_faces: faces found in the photo.
        timings: seconds per stage: ``reconstruction``, ``render`` (and ``measure``).
        target_face: the face of the target photo, when one was given.
        output_face: the face found again on the result.

    For one input image every field but ``images`` holds one value; for a list input each is a list with one value
    per image. ``.image`` (the first image as an array) is a deprecated alias.
    """

    face: Face | list[Face]
    reconstruction: FaceReconstruction | list[FaceReconstruction]
    num_faces: int | list[int]
    timings: dict[str, float] | list[dict[str, float]] = field(default_factory=dict)
    target_face: Face | list[Face | None] | None = None
    output_face: Face | list[Face | None] | None = None


class FaceMeshRotationPipeline(RotationPipelineMixin, FaceReconstructionPipeline):
    """Turn the face in a photo to a pose by rotating its PRN-Dense mesh and re-rendering it (module docstring).

    ``pipe = FaceMeshRotationPipeline.from_pretrained("facehub/prn-dense")``;
    ``out = pipe(image, yaw=30.0, pitch=0.0)`` or ``pipe(image, target_image=other)``; ``out.images[0]``,
    ``out.requested_pose``, ``out.achieved_pose``. Component: ``prn`` (:class:`PRNDenseModel`); it loads the bundles
    saved by :class:`FaceReconstructionPipeline` and the other way round.

    Attributes:
        max_yaw, max_pitch: largest |yaw| / |pitch| (degrees) of a reachable target pose.
    """

    loads_bundles_of = ("FaceReconstructionPipeline",)
    max_yaw = 90.0
    max_pitch = 90.0
    unreachable_reason = "the reconstructed face would look away from the camera"
    output_class = FaceMeshRotationPipelineOutput
    default_min_interocular = 0.0

    def __init__(self, prn: PRNDenseModel):
        super().__init__(prn=prn)

    def _rotate_one(
        self, photo, yaw, pitch, roll, target_photo, face_index, target_face_index, min_interocular, measure
    ) -> dict:
        from facehub.modeling.geometry.profiling import rotate_face

        timings: dict[str, float] = {}
        start = time.perf_counter()
        faces, face, target_face = self.select_faces(photo, target_photo, face_index, target_face_index,
                                                     min_interocular)
        if target_face is not None:
            yaw, pitch, roll = target_face.pose
            self.check_reachable(yaw, pitch, roll)
        reconstruction = self.reconstruct_faces(photo, [face], compute_depth=False)[0]
        requested = Pose.of((yaw, pitch, reconstruction.pose[2] if roll is None else roll))
        timings["reconstruction"] = time.perf_counter() - start

        start = time.perf_counter()
        rotated = rotate_face(photo, reconstruction.vertices, *requested)
        timings["render"] = time.perf_counter() - start

        output_face = achieved = None
        if measure:
            start = time.perf_counter()
            output_face, achieved = measure_pose(self.find_faces, rotated, face.bbox)
            timings["measure"] = time.perf_counter() - start
        return {
            "image": np.asarray(rotated, dtype=np.uint8),
            "requested_pose": requested,
            "achieved_pose": achieved,
            "face": face,
            "reconstruction": reconstruction,
            "num_faces": len(faces),
            "timings": timings,
            "target_face": target_face,
            "output_face": output_face,
        }
