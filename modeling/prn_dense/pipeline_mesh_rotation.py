"""Face rotation by 3D reconstruction with PRN-Dense: reconstruct the face's dense mesh, turn the whole head, re-render.

``FaceMeshRotationPipeline.from_pretrained("facehub/prn-dense")`` honours the rotation contract every facehub
rotation method shares (:class:`~facehub.modeling.pipeline_utils.RotationPipelineOutput`):
``pipe(image, yaw=, pitch=, roll=None, target_image=None)`` -> ``.images``, ``.requested_pose``, ``.achieved_pose``.
Steps, for the ``face_index``-th face (largest first) of each photo:

1. **Reconstruction**: PRN-Dense's UV position map gives the face's mesh in the photo's pixels
   (:class:`~facehub.modeling.prn_dense.FaceReconstructionPipeline`, seed 003 eq. 10).
2. **Target pose**: ``(yaw, pitch, roll)`` in degrees (house convention); ``roll=None`` keeps the mesh's own roll.
   With ``target_image`` the pose is that of its face (the largest, or ``target_face_index``) as the analyzer
   measures it.
3. **Re-rendering** (:func:`~facehub.modeling.geometry.head_rotation.rotate_head`): the dense mesh, textured with the
   texture completed by symmetry, and a layered-depth proxy of hair, ears, neck and the nearby background are turned
   about the head's pivot and drawn with one z-buffer; the band around the head fades to the unchanged photo.
4. **Measurement**: the :class:`~facehub.modeling.faces.FaceAnalyzer` finds the face again on the result;
   ``achieved_pose`` is its pose (``None`` when it finds none), and one corrective re-render aims the measured pose
   at the request (:mod:`facehub.modeling.pipeline_head_rotation`, pose feedback).

What the method cannot do: the head behind the face is an ellipsoid with the photo's pixels on it, so the far side of
the hair and an ear the photo does not show are stretched from what it does show (or inpainted where stretched too
far). Targets with ``|yaw|`` or ``|pitch|`` above ``max_yaw`` / ``max_pitch`` (90 degrees: the face would look away
from the camera) raise :class:`~facehub.modeling.pipeline_utils.UnreachablePoseError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from facehub.modeling.pipeline_head_rotation import HeadRotationMixin, HeadRotationPipelineOutput
from facehub.modeling.pipeline_texture_swap import TextureSwapMixin, TextureSwapPipelineOutput
from facehub.modeling.prn_dense.modeling_prn_dense import PRNDenseModel
from facehub.modeling.prn_dense.pipeline_prn_dense import FaceReconstructionPipeline


@dataclass
class FaceMeshRotationPipelineOutput(HeadRotationPipelineOutput):
    """What :class:`FaceMeshRotationPipeline` returns: :class:`~facehub.modeling.pipeline_head_rotation.
    HeadRotationPipelineOutput` (``images``, ``requested_pose``, ``achieved_pose``, ``rendered_pose``, ``face``,
    ``reconstruction`` (a :class:`~facehub.modeling.prn_dense.FaceReconstruction`), ``num_faces``, ``timings``...)."""


class FaceMeshRotationPipeline(HeadRotationMixin, FaceReconstructionPipeline):
    """Turn the face in a photo to a pose by re-rendering its PRN-Dense reconstruction with the head around it
    (module docstring).

    ``pipe = FaceMeshRotationPipeline.from_pretrained("facehub/prn-dense")``;
    ``out = pipe(image, yaw=30.0, pitch=0.0)`` or ``pipe(image, target_image=other)``; ``out.images[0]``,
    ``out.requested_pose``, ``out.achieved_pose``. Component: ``prn`` (:class:`PRNDenseModel`); it loads the bundles
    saved by :class:`FaceReconstructionPipeline` and the other way round.

    Attributes:
        max_yaw, max_pitch: largest |yaw| / |pitch| (degrees) of a reachable target pose.
    """

    loads_bundles_of = ("FaceReconstructionPipeline",)
    output_class = FaceMeshRotationPipelineOutput

    def __init__(self, prn: PRNDenseModel):
        super().__init__(prn=prn)


@dataclass
class FaceMeshSwapPipelineOutput(TextureSwapPipelineOutput):
    """What :class:`FaceMeshSwapPipeline` returns (:class:`~facehub.modeling.pipeline_texture_swap.
    TextureSwapPipelineOutput`)."""


class FaceMeshSwapPipeline(TextureSwapMixin, FaceReconstructionPipeline):
    """Put a source photo's face on a target photo's head: the source's PRN-Dense texture, completed by symmetry,
    drawn on the target's PRN-Dense mesh with a z-buffer, colour-matched and Poisson-blended
    (:mod:`facehub.modeling.pipeline_texture_swap`).

    ``FaceMeshSwapPipeline.from_pretrained("facehub/prn-dense")(source, target).images[0]``.
    """

    loads_bundles_of = ("FaceReconstructionPipeline",)
    swap_output_class = FaceMeshSwapPipelineOutput

    def __init__(self, prn: PRNDenseModel):
        super().__init__(prn=prn)
