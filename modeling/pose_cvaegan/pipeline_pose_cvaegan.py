"""Face rotation by re-generation with the pose-conditioned CVAE-GAN (seed 000, sections 3 and 4.3).

The face of a photo is aligned (the FaceAnalyzer's crop, :func:`facehub.modeling.faces.alignment.aligned_crop`),
encoded by E into ``z_x`` and drawn again by G at the requested pose code; the generated crop is colour-matched to
the face and pasted back into the photo through the crop's inverse similarity with a feathered elliptical mask
(:func:`facehub.modeling.faces.compositing.paste_aligned_crop`). Nothing is warped, so nothing tears:
where the photo has no pixels (the far side of a turned face), G draws them from what it learned.

What it can and cannot do: G was trained on faces with |yaw| <= 45 degrees (section 4.1), so poses beyond
``max_yaw`` raise :class:`~facehub.modeling.pipeline_utils.UnreachablePoseError`. The paper notes (section 4.3) that
hair and face outline do not follow the pose well, and that results break down when the input is turned one way
and the requested pose the other. The output has the generator's resolution (64 px for the ``cpu-small`` default)
scaled up to the face's size in the photo, so it is blurrier than the photo around it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from facehub.modeling.faces.alignment import aligned_crop
from facehub.modeling.faces.compositing import paste_aligned_crop, paste_mask  # noqa: F401  (re-exported)
from facehub.modeling.modeling_utils import FaceHubPipeline
from facehub.modeling.pipeline_utils import (
    FacePipelineMixin,
    GeneratedCropRotationOutput,
    Pose,
    RotationPipelineMixin,
    UnreachablePoseError,
    measure_pose,
)
from facehub.modeling.pose_cvaegan.modeling_pose_cvaegan import PoseEncoder, PoseGenerator, PosePredictor


@dataclass
class PoseCVAEGANRotationOutput(GeneratedCropRotationOutput):
    """What :class:`PoseCVAEGANRotationPipeline` returns (:class:`~facehub.modeling.pipeline_utils.
    GeneratedCropRotationOutput`): ``crops`` is the generated crop at the requested pose, ``reconstructions`` the
    same face re-generated at its own pose, ``G(z_x, y_x)``; ``timings`` has ``analysis``, ``generation``,
    ``paste`` and ``measure``."""


class PoseCVAEGANRotationPipeline(RotationPipelineMixin, FacePipelineMixin, FaceHubPipeline):
    """Turn the face in a photo by re-generating it (module docstring).

    ``pipe = PoseCVAEGANRotationPipeline.from_pretrained("facehub/pose-cvaegan")`` (also importable as
    ``facehub.modeling.pose_cvaegan.FaceRotationPipeline``, the rotation contract's name);
    ``out = pipe(image, yaw=30.0, pitch=0.0)`` or ``pipe(image, target_image=other)``: ``out.images``,
    ``out.requested_pose``, ``out.achieved_pose`` (measured on the result), ``out.crops``.

    Option: ``noise_seed`` (default 0), the seed of E's noise channel ``eps`` (AVB's implicit posterior): another
    seed draws another sample of ``z_x``.
    """

    model_cpu_offload_seq = "encoder->generator"
    max_yaw = 45.0
    max_pitch = 45.0
    unreachable_reason = "the generator was trained on faces turned at most 45 degrees (seed 000, section 4.1)"
    output_class = PoseCVAEGANRotationOutput
    rotation_options = ("noise_seed",)
    _optional_components = ["predictor"]

    def __init__(self, encoder: PoseEncoder, generator: PoseGenerator, predictor: PosePredictor | None = None):
        super().__init__()
        self.register_modules(encoder=encoder, generator=generator, predictor=predictor)

    @property
    def image_size(self) -> int:
        return int(self.generator.config.image_size)

    def pose_code(self, pose) -> torch.Tensor:
        """(yaw, pitch, roll) degrees -> G's (1, 3) pose code."""
        return self.generator.pose_code(torch.tensor([list(pose)], dtype=torch.float32))

    @torch.no_grad()
    def generate(self, crop: np.ndarray, poses, noise_seed: int = 0) -> list[np.ndarray]:
        """The aligned ``crop`` (RGB uint8, :attr:`image_size`) encoded once and drawn at each of ``poses``
        ((yaw, pitch, roll) degrees): a list of RGB uint8 crops."""
        self.encoder.eval()
        self.generator.eval()
        x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        latent = self.encoder(x, generator=torch.Generator().manual_seed(int(noise_seed))).latent
        codes = torch.cat([self.pose_code(pose) for pose in poses])
        images = self.generator(latent.expand(len(codes), -1), codes).image
        pixels = ((images.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return list(pixels)

    def _rotate_one(self, photo, yaw, pitch, roll, target_photo, face_index, target_face_index, min_interocular,
                    measure, noise_seed: int = 0) -> dict:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        faces, face, target_face = self.select_faces(photo, target_photo, face_index, target_face_index,
                                                     min_interocular)
        source_pose = Pose.of(face.pose)
        target_pose = self.requested_pose(face, target_face, yaw, pitch, roll)
        if abs(source_pose.yaw) > 90:
            raise UnreachablePoseError(f"The face is turned {source_pose.yaw:.0f} degrees; the encoder only knows "
                                       "faces turned at most 45 degrees.")
        aligned = aligned_crop(photo, face.landmarks68, self.image_size)
        timings["analysis"] = time.perf_counter() - start

        start = time.perf_counter()
        generated, reconstruction = self.generate(aligned.image, [target_pose, source_pose], noise_seed)
        timings["generation"] = time.perf_counter() - start

        start = time.perf_counter()
        image = paste_aligned_crop(photo, generated, aligned)
        timings["paste"] = time.perf_counter() - start

        output_face = achieved_pose = None
        if measure:
            start = time.perf_counter()
            output_face, achieved_pose = measure_pose(self.find_faces, image, face.bbox)
            timings["measure"] = time.perf_counter() - start
        return {
            "image": image,
            "requested_pose": target_pose,
            "achieved_pose": achieved_pose,
            "crops": generated,
            "reconstructions": reconstruction,
            "face": face,
            "target_face": target_face,
            "output_face": output_face,
            "num_faces": len(faces),
            "timings": timings,
        }
