"""Whole-head rotation for any method that reconstructs a face in 3D (PRN-Dense, the morphable-model fit).

:class:`HeadRotationMixin` gives a reconstruction pipeline the rotation contract
(:class:`~facehub.modeling.pipeline_utils.RotationPipelineMixin`): reconstruct the face, segment the person from
the background (:class:`~facehub.modeling.faces.segmentation.PersonSegmenter`), turn the whole head in front of the
still background with :func:`~facehub.modeling.geometry.head_rotation.rotate_head` (layered depth, z-buffer, texture
completed by symmetry), and measure the result with the face analyzer.

**Pose feedback.** A re-rendered face reads as less turned than its geometry: the face analyzer, nearly unbiased on
real photos up to 45 degrees of yaw, reads even the synthetic world's exact renders as turned about a third less
(the rim the renderer sets back, :mod:`~facehub.modeling.geometry.head_rotation`, closes part of the gap).
What a user asks for is how the face looks, so with ``pose_feedback=3`` (the default) the rendered angle is
corrected up to three times, by secant steps on yaw and pitch: the first through the face's measured and
reconstructed pose and the first render's measurement, each next one through the last two renders (the gain between
rendered and measured change clipped to [0.4, 1.5], the rendered change at most 1.4 times the requested one). It
stops once the measured pose is within 2 degrees of the request, and the render whose measured pose is nearest the
request is returned, nearest meaning the smallest angle ``sqrt(d_yaw**2 + d_pitch**2)``: the analyzer's pitch
drifts as a face turns, and comparing the larger of the two errors alone would keep a render turned 5 degrees short
over one a degree short whose pitch drifted 6. ``rendered_pose`` says which angle the geometry was turned to;
``achieved_pose`` is always the measurement. ``pose_feedback=0`` renders the geometric angle alone. A face more
than twice :data:`FEEDBACK_FACE_WIDTH` wide is tried in the photo resized to that width
(:class:`~facehub.modeling.geometry.head_rotation.ScaledReconstruction`), and the chosen pose is drawn and measured
once at full size: a large portrait then costs one full-size render instead of up to four.

**Turning axis.** Poses in and out (``requested_pose``, ``achieved_pose``, ``rendered_pose``, the reconstruction's
``pose``) are head poses in the face analyzer's frame. The renders are posed in the default morphable model's frame
(:meth:`~facehub.modeling.geometry.morphable.MorphableFaceModel.rotation_for_head_pose`), so a yaw request turns the
head about the reconstructed head's own vertical axis, which the analyzer sees tilted back 3.3 degrees. Turning
about the analyzer's vertical axis instead drifted the measured pitch further as the head turned, and the
morphable-model fit's rotation met the yaw targets of ``facehub eval rotation`` less often on development photos, at
45 and 60 degrees.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from facehub.modeling.faces.analyzer import Face
from facehub.modeling.geometry.morphable import MorphableFaceModel
from facehub.modeling.pipeline_utils import (
    Pose,
    RotationPipelineMixin,
    RotationPipelineOutput,
    measure_pose,
)

#: The feedback stops once the measured yaw and pitch are this close to the request (degrees).
POSE_TOLERANCE = 2.0
#: The feedback renders at most this many times the requested change of yaw and pitch (plus 3 degrees).
MAX_OVERTURN = 1.4
#: Most corrective re-renders a call may ask for.
MAX_POSE_FEEDBACK = 4
#: For a face more than twice this wide (pixels), the feedback's trial renders are drawn in the photo resized so that
#: the face is this wide, and only the render returned is drawn at the photo's own size: a render's cost grows with
#: the face's area, and the trials are only measured.
FEEDBACK_FACE_WIDTH = 256.0
#: Largest |yaw| and |pitch| (degrees) the feedback may render to.
MAX_RENDERED_YAW = 85.0
MAX_RENDERED_PITCH = 60.0


def pose_error(achieved: Pose | None, requested: Pose) -> float:
    """How far a measured pose is from the request, in degrees: ``sqrt(d_yaw**2 + d_pitch**2)`` (the roll is not
    steered); infinite when nothing was measured."""
    if achieved is None:
        return float("inf")
    return float(np.hypot(achieved.yaw - requested.yaw, achieved.pitch - requested.pitch))


@dataclass
class HeadRotationPipelineOutput(RotationPipelineOutput):
    """What a :class:`HeadRotationMixin` pipeline returns.

    Attributes:
        images: the photos with the head turned (PIL, or (H, W, 3) uint8 arrays with ``output_type="np"``).
        requested_pose: the :class:`~facehub.modeling.pipeline_utils.Pose` asked for (a target face's pose when a
            target photo was given).
        achieved_pose: the pose the face analyzer measures on the result (``None`` when it finds no face there or
            with ``measure=False``).
        rendered_pose: the pose the reconstructed geometry was turned to (module docstring, pose feedback).
        face: the :class:`~facehub.modeling.faces.Face` that was turned.
        reconstruction: its reconstruction (a :class:`~facehub.modeling.prn_dense.FaceReconstruction`).
        num_faces: faces found in the photo.
        filled_fraction: share of the re-rendered region that no drawn surface covered well (filled from the head
            proxy's colours, with the background the head uncovered, or inpainted).
        uncovered_fraction: the part of ``filled_fraction`` that shows the background the head uncovered (with
            ``segment_person``).
        folded_fraction: share of the re-rendered region that shows a surface from behind: always 0, since
            triangles whose winding flipped are culled (``culled_fraction`` says how much they would have covered).
        culled_fraction: share of the re-rendered region that culled (folded-over) triangles would have covered.
        region: (x0, y0, x1, y1) pixels re-rendered; the photo outside it is unchanged.
        timings: seconds per stage (``reconstruction``, ``segmentation`` with ``segment_person``, ``render``,
            ``measure``; ``render`` and ``measure`` add up over the feedback's renders).
        target_face: the target photo's face, when one was given.
        output_face: the face found again on the result.

    For one input image every field but ``images`` holds one value; for a list, one value per image.
    """

    rendered_pose: Pose | list[Pose] | None = None
    face: Face | list[Face] | None = None
    reconstruction: object = None
    num_faces: int | list[int] = 0
    filled_fraction: float | list[float] = 0.0
    uncovered_fraction: float | list[float] = 0.0
    folded_fraction: float | list[float] = 0.0
    culled_fraction: float | list[float] = 0.0
    region: tuple[int, int, int, int] | list[tuple[int, int, int, int]] | None = None
    timings: dict[str, float] | list[dict[str, float]] = field(default_factory=dict)
    target_face: Face | list[Face | None] | None = None
    output_face: Face | list[Face | None] | None = None


def _gain(measured: float, measured_start: float, rendered: float, rendered_start: float) -> float:
    """Measured change per rendered change of one angle, 1 when the rendered change is too small to tell."""
    if abs(rendered - rendered_start) < 3.0:
        return 1.0
    return float(np.clip((measured - measured_start) / (rendered - rendered_start), 0.4, 1.5))


class HeadRotationMixin(RotationPipelineMixin):
    """The rotation contract by whole-head re-rendering, for a pipeline with ``reconstruct_faces(photo, faces,
    compute_depth=False, **reconstruction_settings)`` (module docstring).

    Attributes:
        reconstruction_settings: extra keyword arguments of ``reconstruct_faces`` for rotation.
        head_proxy: the head's proportions and the renderer's settings
            (:class:`~facehub.modeling.geometry.head_rotation.HeadProxy`; ``None``: the defaults). Its ``pivot`` is
            where the head turns; the synthetic world turns its faces about the face's centroid, ``(0, 0, 0)``.
        pose_feedback: corrective re-renders by default (module docstring); ``pipe(..., pose_feedback=0)``
            for one call.
        segment_person: keep the background still while the head turns in front of it, by the person's outline
            (:class:`~facehub.modeling.faces.segmentation.PersonSegmenter`; ``False``: everything inside the head's
            outline turns with it).
    """

    max_yaw = 90.0
    max_pitch = 90.0
    unreachable_reason = "the reconstructed face would look away from the camera"
    output_class = HeadRotationPipelineOutput
    default_min_interocular = 0.0
    reconstruction_settings: dict = {}
    head_proxy = None
    pose_feedback: int = 3
    segment_person: bool = True
    rotation_options = ("pose_feedback",)
    _person_segmenter = None

    @property
    def person_segmenter(self):
        """The :class:`~facehub.modeling.faces.segmentation.PersonSegmenter` (created on first use)."""
        if self._person_segmenter is None:
            from facehub.modeling.faces.segmentation import PersonSegmenter

            self._person_segmenter = PersonSegmenter()
        return self._person_segmenter

    def person_mask(self, photo: np.ndarray) -> np.ndarray | None:
        """The person probability of each pixel of ``photo``, or ``None`` with ``segment_person=False``."""
        if not self.segment_person:
            return None
        with self.analysis_lock:
            return self.person_segmenter(photo)

    def __call__(self, image, yaw: float = 0.0, pitch: float | None = None, roll: float | None = None, *,
                 pose_feedback: int | None = None, **kwargs):
        """:meth:`RotationPipelineMixin.__call__ <facehub.modeling.pipeline_utils.RotationPipelineMixin.__call__>`,
        plus ``pose_feedback`` (0-4, default :attr:`pose_feedback`): corrective re-renders towards the requested
        pose as the face analyzer measures it (module docstring; needs ``measure=True``)."""
        feedback = self.pose_feedback if pose_feedback is None else pose_feedback
        if not isinstance(feedback, int) or not 0 <= feedback <= MAX_POSE_FEEDBACK:
            raise ValueError(f"Got {pose_feedback!r} for `pose_feedback`; use a whole number of corrective re-renders "
                             f"from 0 (the geometric angle alone) to {MAX_POSE_FEEDBACK}.")
        return super().__call__(image, yaw, pitch, roll, pose_feedback=feedback, **kwargs)

    def _rotate_one(self, photo, yaw, pitch, roll, target_photo, face_index, target_face_index, min_interocular,
                    measure, pose_feedback: int) -> dict:
        from facehub.modeling.geometry.head_rotation import ScaledReconstruction, rotate_head

        timings: dict[str, float] = {"render": 0.0, "measure": 0.0}
        start = time.perf_counter()
        faces, face, target_face = self.select_faces(photo, target_photo, face_index, target_face_index,
                                                     min_interocular)
        if target_face is not None:
            yaw, pitch, roll = target_face.pose
            self.check_reachable(yaw, pitch, roll)
        reconstruction = self.reconstruct_faces(photo, [face], compute_depth=False, **self.reconstruction_settings)[0]
        # The renders are posed in the morphable model's frame (module docstring, turning axis); what is reported is
        # in the analyzer's.
        frame = MorphableFaceModel.default()
        current = frame.rotation_for_head_pose(reconstruction.pose)
        # pitch=None keeps the face's own: the geometry is not pitched, and the feedback aims at the pitch the face
        # analyzer read on the photo (the frame it measures the result in).
        requested = Pose.of((yaw, face.pose[1] if pitch is None else pitch,
                             reconstruction.pose[2] if roll is None else roll))
        rendered_roll = current[2] if roll is None else float(roll)
        timings["reconstruction"] = time.perf_counter() - start
        start = time.perf_counter()
        person = self.person_mask(photo)
        if person is not None:
            timings["segmentation"] = time.perf_counter() - start

        # The trial renders of a large face are drawn in a resized photo (only their measurement is used).
        trial = (photo, reconstruction, face.bbox, person)
        width = float(face.bbox[2] - face.bbox[0])
        if measure and pose_feedback > 0 and width > 2.0 * FEEDBACK_FACE_WIDTH:
            import cv2

            h, w = photo.shape[:2]
            factor = FEEDBACK_FACE_WIDTH / width
            size = (max(int(round(w * factor)), 1), max(int(round(h * factor)), 1))
            factor = size[0] / w
            trial = (cv2.resize(photo, size, interpolation=cv2.INTER_AREA),
                     ScaledReconstruction(reconstruction, factor), tuple(float(v) * factor for v in face.bbox),
                     None if person is None else cv2.resize(person, size, interpolation=cv2.INTER_AREA))

        def render(pose, full: bool = False):
            image, rec, box, mask = (photo, reconstruction, face.bbox, person) if full else trial
            began = time.perf_counter()
            result = rotate_head(image, rec, *pose, current_pose=current, proxy=self.head_proxy, person_mask=mask)
            timings["render"] += time.perf_counter() - began
            found, achieved = None, None
            if measure:
                began = time.perf_counter()
                found, achieved = measure_pose(self.find_faces, result.image, box)
                timings["measure"] += time.perf_counter() - began
            return result, found, achieved

        rendered = Pose.of((requested.yaw, current[1] if pitch is None else requested.pitch, rendered_roll))
        best = (*render(rendered), rendered)
        # Secant steps on yaw and pitch: the first through (face's pose, geometry's pose) and the first render, each
        # next one through the last two renders.
        points = [(tuple(face.pose), tuple(current)), (tuple(best[2]), tuple(rendered))] if best[2] is not None else []
        for _ in range(pose_feedback if measure else 0):
            if best[2] is None or pose_error(best[2], requested) <= POSE_TOLERANCE or len(points) < 2:
                break
            (m0, r0), (m1, r1) = points[-2], points[-1]
            corrected = [r1[k] + (requested[k] - m1[k]) / _gain(m1[k], m0[k], r1[k], r0[k]) for k in (0, 1)]
            # Never more than MAX_OVERTURN times the requested change: beyond it the renders break up faster than
            # they read as turned.
            bounds = [sorted((current[k], current[k] + MAX_OVERTURN * (requested[k] - current[k]))) for k in (0, 1)]
            corrected = [float(np.clip(corrected[k], bounds[k][0] - 3.0, bounds[k][1] + 3.0)) for k in (0, 1)]
            step = Pose.of((float(np.clip(corrected[0], -MAX_RENDERED_YAW, MAX_RENDERED_YAW)),
                            float(np.clip(corrected[1], -MAX_RENDERED_PITCH, MAX_RENDERED_PITCH)), rendered_roll))
            if max(abs(step[0] - r1[0]), abs(step[1] - r1[1])) < 0.5:
                break
            again = (*render(step), step)
            if again[2] is None:
                break
            points.append((tuple(again[2]), tuple(step)))
            if pose_error(again[2], requested) < pose_error(best[2], requested):
                best = again
        if trial[0] is not photo:  # the chosen pose, drawn and measured at the photo's own size
            best = (*render(best[3], full=True), best[3])
        result, output_face, achieved, rendered = best
        if not measure:
            timings.pop("measure")
        return {
            "image": np.asarray(result.image, dtype=np.uint8),
            "requested_pose": requested,
            "achieved_pose": achieved,
            "rendered_pose": Pose.of(frame.head_pose(rendered)),
            "face": face,
            "reconstruction": reconstruction,
            "num_faces": len(faces),
            "filled_fraction": result.filled_fraction,
            "uncovered_fraction": result.uncovered_fraction,
            "folded_fraction": 0.0,
            "culled_fraction": result.culled_fraction,
            "region": result.region,
            "timings": timings,
            "target_face": target_face,
            "output_face": output_face,
        }
