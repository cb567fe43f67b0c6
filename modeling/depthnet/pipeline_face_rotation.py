"""Face rotation and frontalization with DepthNet (Moniz, Beckham et al. 2018, sections 2 and 3.3).

DepthNet moves a face to a *target geometry* given only as 2D keypoints: it infers the source keypoints' depths
``z_p`` from source and target keypoints, solves the 3D-to-2D affine ``m`` (eq. 1-3) and warps the photo with both
(section 2.1 step 5, :mod:`facehub.modeling.depthnet.warp`). Section 3.3 rotates faces to "a range of other poses
defined by the faces in the row above"; section 2 notes that for frontalization "the same image and geometry can
be used as the target". Here the target keypoints come from either

- a requested pose: the 68-point 3D template (the iBUG points of the canonical frontal face,
  :mod:`facehub.modeling.faces.canonical`) rotated to (yaw, pitch, roll) with
  :func:`facehub.modeling.geometry.rotations.rotation_matrix` (the house convention: yaw > 0 turns the face
  towards the image's right, pitch > 0 looks up, roll > 0 tilts clockwise), projected orthographically and placed
  with the scale and centre of the similarity that fits the canonical face to the source face
  (``face.head_pose.transform``), so the head turns about its own centre and keeps its size; or
- a target photo: its face's 68 keypoints, moved into the source photo by the similarity that takes the target
  head's centre and scale onto the source head's (no rotation: the target's roll is part of its pose).

The source face is then warped in its own photo with an anchored frame around it, so the rest of the photo stays.

What the method cannot do: it only has the visible half of the head. Target poses beyond ``max_yaw`` /
``max_pitch`` (the template's far-side contour points are hidden and its projection degenerates towards a line),
or more than ``max_rotation`` degrees away from the source pose (surfaces that faced away from the camera would
have to appear), raise :class:`UnreachablePoseError` (a ``ValueError``) with the numbers.

Faces are found with :class:`facehub.modeling.faces.FaceAnalyzer` (the largest first); photos with no face or a
face too small to warp raise :class:`FaceSelectionError` subclasses naming the photo.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from facehub.modeling.depthnet.modeling_depthnet import DepthNetModel
from facehub.modeling.depthnet.pipeline_depthnet import KeypointRegistration, register_keypoints
from facehub.modeling.depthnet.warp import orient_depths_towards_camera, warp_image
from facehub.modeling.faces.analyzer import Face
from facehub.modeling.geometry.rotations import rotation_matrix
from facehub.modeling.modeling_utils import FaceHubPipeline
from facehub.modeling.pipeline_utils import (  # noqa: F401  (selection names re-exported for old imports)
    MIN_INTEROCULAR_PIXELS,
    FacePipelineMixin,
    FaceSelectionError,
    FaceTooSmallError,
    NoFaceFoundError,
    Pose,
    RotationPipelineMixin,
    RotationPipelineOutput,
    UnreachablePoseError,
    check_output_type,
    check_pose_angles,
    face_nearest,
    measure_pose,
    select_face,
)

#: Pipelines sharing the ``facehub/depthnet`` bundle (a ``depth_net`` component; other components are optional).
DEPTHNET_BUNDLE_CLASSES = (
    "KeypointRegistrationPipeline",
    "FaceRotationPipeline",
    "FaceFrontalizationPipeline",
    "FaceSwapPipeline",
)


@lru_cache(maxsize=1)
def template_keypoints_3d() -> np.ndarray:
    """(68, 3) frontal 3D keypoint template: the iBUG points of the canonical face (house frame, eye distance 1)."""
    from facehub.modeling.faces.canonical import canonical_face
    from facehub.modeling.geometry.landmarks68 import NUM_MESH_VERTICES, landmarks68_from_mesh

    template = landmarks68_from_mesh(canonical_face()[:NUM_MESH_VERTICES])
    template.setflags(write=False)  # cached and shared
    return template


def posed_keypoints(face: Face, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(68, 2) target keypoints: the template rotated to (yaw, pitch, roll) degrees, projected orthographically,
    with the source ``face``'s scale and head centre (from ``face.head_pose.transform``)."""
    transform = face.head_pose.transform
    rotated = template_keypoints_3d() @ rotation_matrix(yaw, pitch, roll).T
    return transform.scale * rotated[:, :2] + transform.translation[:2]


def keypoints_in_frame_of(target_face: Face, source_face: Face) -> np.ndarray:
    """The target face's (68, 2) keypoints moved so its head centre and scale are the source face's."""
    target, source = target_face.head_pose.transform, source_face.head_pose.transform
    ratio = source.scale / target.scale
    return (np.asarray(target_face.landmarks68) - target.translation[:2]) * ratio + source.translation[:2]


def rotation_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees of the rotation taking rotation matrix ``a`` to ``b``."""
    cosine = (np.trace(b @ a.T) - 1.0) / 2.0
    return math.degrees(math.acos(float(np.clip(cosine, -1.0, 1.0))))


@dataclass
class FaceRotationPipelineOutput(RotationPipelineOutput):
    """What :class:`FaceRotationPipeline` (and :class:`FaceFrontalizationPipeline`) returns.

    Attributes:
        images: the photos with their face moved to the target pose, one per input image: PIL images, or (H, W, 3)
            RGB uint8 arrays with ``output_type="np"``.
        requested_pose: :class:`~facehub.modeling.pipeline_utils.Pose` of the target (the target photo's face pose
            when one was given).
        achieved_pose: :class:`~facehub.modeling.pipeline_utils.Pose` measured on the result by the face analyzer
            (``None`` when no face is found there, or with ``measure=False``).
        mask: (H, W) bool, pixels drawn from the moved face region (keypoints and the ring around them).
        face: the source :class:`~facehub.modeling.faces.Face` that was rotated.
        target_keypoints: (68, 2) the target geometry in the photo's pixels.
        registration: DepthNet's :class:`KeypointRegistration` (depths oriented towards the camera, see
            :func:`~facehub.modeling.depthnet.warp.orient_depths_towards_camera`; ``registered`` is where the
            source keypoints land in the result).
        num_faces: faces found in the photo (the largest, or ``face_index``, was used).
        timings: seconds per stage: ``analysis``, ``depth``, ``warp`` (and ``measure``).
        target_face: the face of the target photo, when one was given.
        output_face: the face found again on the result (``None`` when none is found or ``measure=False``).
        folded_fraction: share of the moved face's pixels that show a triangle whose orientation flipped (a
            fold-over, :func:`~facehub.modeling.depthnet.warp.folded_triangles`); at most
            :attr:`FaceRotationPipeline.max_folded_fraction`, else the pipeline refuses.

    For one input image every field but ``images`` holds one value; for a list input each is a list with one value
    per image. ``.image`` (the first image as an array) and ``.measured_pose`` are deprecated aliases.
    """

    mask: np.ndarray | list[np.ndarray]
    face: Face | list[Face]
    target_keypoints: np.ndarray | list[np.ndarray]
    registration: KeypointRegistration | list[KeypointRegistration]
    num_faces: int | list[int]
    timings: dict[str, float] | list[dict[str, float]] = field(default_factory=dict)
    target_face: Face | list[Face | None] | None = None
    output_face: Face | list[Face | None] | None = None
    folded_fraction: float | list[float] = 0.0


#: Former name of :class:`FaceRotationPipelineOutput`.
FaceRotationOutput = FaceRotationPipelineOutput


class DepthNetPipelineMixin(FacePipelineMixin):
    """The face analysis of :class:`FacePipelineMixin` plus DepthNet's registration, for the DepthNet image
    pipelines."""

    def register(self, source_keypoints: np.ndarray, target_keypoints: np.ndarray) -> KeypointRegistration:
        """DepthNet registration (eq. 1-3) with the depth sign fixed for the z-buffer."""
        registration = register_keypoints(source_keypoints, target_keypoints, self.depth_net)
        depths, affine = orient_depths_towards_camera(registration.depths, registration.affine)
        return KeypointRegistration(depths=depths, affine=affine, registered=registration.registered)


class FaceRotationPipeline(RotationPipelineMixin, DepthNetPipelineMixin, FaceHubPipeline):
    """Turn the face in a photo to a requested pose, or to the pose of the face in another photo.

    ``pipe = FaceRotationPipeline.from_pretrained("facehub/depthnet")``;
    ``out = pipe(image, yaw=30.0, pitch=0.0)`` or ``out = pipe(image, target_image=other)``; ``out.images[0]``,
    ``out.requested_pose``, ``out.achieved_pose`` (measured on the result).
    See the module docstring for the method and its limits.

    Attributes:
        max_yaw, max_pitch: largest |yaw| / |pitch| (degrees) of a reachable target pose.
        max_rotation: largest rotation (degrees) between the source pose and the target pose.
        max_folded_fraction: largest share of the moved face's pixels that may show a fold-over (a triangle of the
            warp whose orientation flipped: the face folding over itself shows shards of its far side); a warp
            beyond it raises :class:`~facehub.modeling.pipeline_utils.UnreachablePoseError` instead of returning
            them. ``pipe.max_folded_fraction = 1.0`` returns every warp.
    """

    loads_bundles_of = DEPTHNET_BUNDLE_CLASSES
    model_cpu_offload_seq = "depth_net"
    max_yaw = 80.0
    max_pitch = 60.0
    unreachable_reason = "DepthNet only moves the visible half of the face"
    max_folded_fraction = 0.005
    output_class = FaceRotationPipelineOutput
    max_rotation = 75.0

    def __init__(self, depth_net: DepthNetModel):
        super().__init__()
        self.register_modules(depth_net=depth_net)

    def _check_rotation(self, face, target_rotation: np.ndarray, target_pose: tuple[float, float, float]) -> None:
        angle = rotation_angle(face.head_pose.transform.rotation, target_rotation)
        if angle > self.max_rotation:
            yaw, pitch, roll = face.pose
            raise UnreachablePoseError(
                f"The target pose (yaw {target_pose[0]:.0f}, pitch {target_pose[1]:.0f}, roll {target_pose[2]:.0f}) "
                f"is {angle:.0f} degrees away from the face's pose (yaw {yaw:.0f}, pitch {pitch:.0f}, roll "
                f"{roll:.0f}); at most {self.max_rotation:g} degrees can be reached from one photo, since the parts "
                "of the head that face away from the camera are not in it."
            )

    def folded_fraction_at(self, photo: np.ndarray, face: Face, pose) -> float:
        """The share of the warped face that folds over itself when ``face`` is turned to ``pose`` (yaw, pitch,
        roll) in degrees (:attr:`max_folded_fraction`)."""
        registration = self.register(face.landmarks68, posed_keypoints(face, *pose))
        return warp_image(photo, face.landmarks68, registration.depths, registration.affine,
                          anchored=True).folded_fraction

    def furthest_unfolded_pose(self, photo: np.ndarray, face: Face, target_pose, steps: int = 6) -> Pose | None:
        """The furthest pose towards ``target_pose`` whose warp folds no more than :attr:`max_folded_fraction`.

        The poses tried lie on the straight line from the face's own pose to the target's, in (yaw, pitch, roll);
        the fold-over share grows along it as more of the hidden side would have to show, so bisection finds where it
        crosses the limit, to ``1 / 2 ** steps`` of the turn (each step is one registration and one warp). ``None``
        when the face's own pose already folds.
        """
        start, end = np.asarray(face.pose, np.float64), np.asarray(tuple(target_pose), np.float64)
        if self.folded_fraction_at(photo, face, start) > self.max_folded_fraction:
            return None
        low, high = 0.0, 1.0
        for _ in range(int(steps)):
            middle = 0.5 * (low + high)
            if self.folded_fraction_at(photo, face, start + middle * (end - start)) > self.max_folded_fraction:
                high = middle
            else:
                low = middle
        return Pose.of(start + low * (end - start))

    def _rotate_one(
        self, photo, yaw, pitch, roll, target_photo, face_index, target_face_index, min_interocular, measure
    ) -> dict:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        faces, face, target_face = self.select_faces(photo, target_photo, face_index, target_face_index,
                                                     min_interocular)
        if target_face is not None:
            target_pose = Pose.of(target_face.pose)
            target_rotation = target_face.head_pose.transform.rotation
            target_keypoints = keypoints_in_frame_of(target_face, face)
        else:
            target_pose = self.requested_pose(face, None, yaw, pitch, roll)
            target_rotation = rotation_matrix(*target_pose)
            target_keypoints = posed_keypoints(face, *target_pose)
        self._check_rotation(face, target_rotation, target_pose)
        timings["analysis"] = time.perf_counter() - start

        start = time.perf_counter()
        registration = self.register(face.landmarks68, target_keypoints)
        timings["depth"] = time.perf_counter() - start

        start = time.perf_counter()
        warped = warp_image(photo, face.landmarks68, registration.depths, registration.affine, anchored=True)
        timings["warp"] = time.perf_counter() - start
        if warped.folded_fraction > self.max_folded_fraction:
            reachable = None if target_face is not None else self.furthest_unfolded_pose(photo, face, target_pose)
            smaller = ("Ask for a smaller turn" if reachable is None else
                       f"It turns without folding as far as {reachable} (`err.reachable_pose`)")
            raise UnreachablePoseError(
                f"Turning this face to yaw {target_pose[0]:.0f}, pitch {target_pose[1]:.0f} folds "
                f"{100 * warped.folded_fraction:.1f}% of the warped face over itself (its far side would show as "
                f"shards): DepthNet's 2D warp cannot show what the photo hides. {smaller}, or use a "
                "method that renders the head in 3D (`methods.load('face_fitting', 'rotation')`).",
                reachable_pose=reachable,
            )

        output_face = achieved_pose = None
        if measure:
            start = time.perf_counter()
            output_face, achieved_pose = measure_pose(self.find_faces, warped.image, face.bbox)
            timings["measure"] = time.perf_counter() - start
        return {
            "image": warped.image,
            "requested_pose": target_pose,
            "achieved_pose": achieved_pose,
            "mask": warped.mask,
            "face": face,
            "target_keypoints": target_keypoints,
            "registration": registration,
            "num_faces": len(faces),
            "timings": timings,
            "target_face": target_face,
            "output_face": output_face,
            "folded_fraction": warped.folded_fraction,
        }


class FaceFrontalizationPipeline(FaceRotationPipeline):
    """Turn the face in a photo to the frontal pose (yaw = pitch = roll = 0), section 2 of the paper.

    ``FaceFrontalizationPipeline.from_pretrained("facehub/depthnet")(image).images[0]``.
    """

    def __call__(
        self,
        image,
        *,
        face_index: int = 0,
        min_interocular: float = MIN_INTEROCULAR_PIXELS,
        measure: bool = True,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> FaceRotationPipelineOutput:
        """Frontalize the ``face_index``-th face of ``image`` (one image or a list); see
        :meth:`FaceRotationPipeline.__call__`."""
        return super().__call__(
            image, 0.0, 0.0, 0.0, face_index=face_index, min_interocular=min_interocular, measure=measure,
            output_type=output_type, return_dict=return_dict,
        )
