"""The rotation contract for methods that turn a photo's face by embedding it in a StyleGAN2 and drawing it again
(DiscoFaceGAN's pose edit, seed 002 Sec. 5.2; StyleFaceUV's yaw step, seed 004 eq. 2).

One photo goes: find the face and the pose asked for; refuse a face turned beyond what the generator learned; embed
the aligned crop (:mod:`facehub.modeling.stylegan2.inversion`); draw the turned crop (the method's own step); paste
it back with the compositing helpers; measure the pose on the result. A pipeline mixes
:class:`InversionRotationMixin` in before :class:`~facehub.modeling.pipeline_utils.RotationPipelineMixin` and
implements :meth:`~InversionRotationMixin.embed` and :meth:`~InversionRotationMixin.turned_crop`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from facehub.modeling.pipeline_utils import GeneratedCropRotationOutput, Pose, UnreachablePoseError, measure_pose
from facehub.modeling.stylegan2.inversion import EMBED_STEPS


class InversionRotationMixin:
    """Embed, turn, paste (module docstring). Class settings: ``max_yaw`` (also the most-turned face that can be
    embedded), ``unreachable_reason``, ``turn_stage`` (the name of the turning stage in ``timings``)."""

    max_yaw = 45.0
    output_class = GeneratedCropRotationOutput
    rotation_options = ("embed_steps",)
    turn_stage = "turning"

    def embed(self, photo: np.ndarray, face, steps: int = EMBED_STEPS) -> tuple[Any, Any]:
        """``(aligned, embedding)``: the aligned crop of ``face`` (its ``.image`` and the transform back) and the
        method's embedding of it, whose ``reconstruction`` is the generator's crop."""
        raise NotImplementedError

    def turned_crop(self, face, embedding, target_pose: Pose) -> tuple[np.ndarray, dict[str, Any]]:
        """The embedded face drawn at ``target_pose`` (RGB uint8 crop) and any extra output fields."""
        raise NotImplementedError

    def check_embeddable(self, face) -> None:
        """:class:`UnreachablePoseError` for a face turned beyond :attr:`max_yaw`: the generator never drew one."""
        yaw = Pose.of(face.pose).yaw
        if abs(yaw) > self.max_yaw:
            raise UnreachablePoseError(f"The face is turned {yaw:.0f} degrees; {self.unreachable_reason}, so it "
                                       "cannot embed this one.")

    def _rotate_one(self, photo, yaw, pitch, roll, target_photo, face_index, target_face_index, min_interocular,
                    measure, embed_steps: int = EMBED_STEPS) -> dict:
        from facehub.modeling.faces.compositing import paste_aligned_crop

        timings: dict[str, float] = {}
        start = time.perf_counter()
        faces, face, target_face = self.select_faces(photo, target_photo, face_index, target_face_index,
                                                     min_interocular)
        target_pose = self.requested_pose(face, target_face, yaw, pitch, roll)
        self.check_embeddable(face)
        timings["analysis"] = time.perf_counter() - start
        start = time.perf_counter()
        aligned, embedding = self.embed(photo, face, embed_steps)
        timings["embedding"] = time.perf_counter() - start
        start = time.perf_counter()
        crop, extra = self.turned_crop(face, embedding, target_pose)
        timings[self.turn_stage] = time.perf_counter() - start
        image = paste_aligned_crop(photo, crop, aligned)
        output_face = achieved_pose = None
        if measure:
            output_face, achieved_pose = measure_pose(self.find_faces, image, face.bbox)
        return {"image": image, "requested_pose": target_pose, "achieved_pose": achieved_pose, "crops": crop,
                "reconstructions": embedding.reconstruction, "face": face, "target_face": target_face,
                "output_face": output_face, "num_faces": len(faces), "timings": timings, **extra}
