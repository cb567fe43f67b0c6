"""Real-image embedding and editing with DiscoFaceGAN (seed 002, Sec. 5.2, eq. 11), and the rotation contract on it.

``w_s+ = G_syn^-1(x_s)``, ``x_t = G_syn(w_s+ + Delta_w(i, a, b))``: a photo's aligned face is embedded into W+ by
optimisation (Abdal et al., Image2StyleGAN), and a factor is edited by adding the W-space change that moving factor
``i`` from ``a`` to ``b`` causes (eq. 10), computed with the photo's own factors: ``a`` is what the face-fitting
regressor reads from the photo (the paper's R-Net), ``b`` the same with the factor changed.

- :func:`embed_face`: the starting point is ``w`` of the photo's read factors (noise 0) for every layer; the shared
  inversion (:mod:`facehub.modeling.stylegan2.inversion`: pixel error plus dlib's identity term, in W+) takes it
  from there. Returns an :class:`EmbeddedFace`.
- :func:`edit_face`: ``G_syn(w+ + w(lambda_b) - w(lambda_a))`` as an aligned crop.
- :class:`DiscoFaceGANRotationPipeline`: the rotation contract (``pipe(photo, yaw=30.0)``): embed, edit the pose,
  colour-match and paste the edited crop back with a feathered ellipse. Loads the ``facehub/disco-facegan`` bundle.
  :meth:`~DiscoFaceGANRotationPipeline.embed_photo` and :meth:`~DiscoFaceGANRotationPipeline.edit` are the same
  two steps for any factor (``DiscoFaceGANPipeline.embed`` / ``.edit`` call them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from diffusers.utils import BaseOutput

from facehub.modeling.disco_facegan.configuration_disco_facegan import FACTORS
from facehub.modeling.disco_facegan.factors import generator_input
from facehub.modeling.disco_facegan.modeling_disco_facegan import FactorVAEs
from facehub.modeling.modeling_utils import FaceHubPipeline
from facehub.modeling.pipeline_utils import (
    FacePipelineMixin,
    GeneratedCropRotationOutput,
    Pose,
    RotationPipelineMixin,
    check_output_type,
    convert_images,
)
from facehub.modeling.stylegan2 import StyleGAN2Generator, tensor_to_uint8
from facehub.modeling.stylegan2.inversion import (
    EMBED_LEARNING_RATE,
    EMBED_STEPS,
    IDENTITY_WEIGHT,
    dlib_identity_net,
    invert,
)
from facehub.modeling.stylegan2.pipeline_inversion_rotation import InversionRotationMixin

#: The regressor that reads a photo's factors (the paper's R-Net), an embedded default.
READER_ID = "facehub/face-fitting"


@dataclass
class EmbeddedFace:
    """A photo's face in DiscoFaceGAN's spaces.

    Attributes:
        w_plus: (1, num_ws, latent) the optimised styles.
        factors: lambda read from the photo (model space: pose in radians), one row.
        crop: the (S, S, 3) aligned crop that was embedded; reconstruction: the generator's crop of ``w_plus``.
        loss: the final embedding loss.
    """

    w_plus: torch.Tensor
    factors: dict[str, torch.Tensor]
    crop: np.ndarray
    reconstruction: np.ndarray
    loss: float


@dataclass
class EmbeddedPhoto:
    """One face of a photo, embedded (:meth:`DiscoFaceGANRotationPipeline.embed_photo`): what :meth:`edit` needs.

    Attributes:
        photo: the RGB uint8 photo. face: its :class:`~facehub.modeling.faces.Face` that was embedded.
        aligned: the aligned crop and its transform back into the photo. embedded: the :class:`EmbeddedFace`.
    """

    photo: np.ndarray
    face: Any
    aligned: Any
    embedded: EmbeddedFace

    @property
    def factors(self) -> dict[str, torch.Tensor]:
        """The factors read from the photo in the house units (pose in degrees), one row."""
        pose = self.embedded.factors["pose"] * (180.0 / math.pi)
        return {**self.embedded.factors, "pose": pose}


@dataclass
class DiscoFaceGANEditOutput(BaseOutput):
    """An edited photo (:meth:`DiscoFaceGANRotationPipeline.edit`).

    Attributes:
        images: the photo with the edited face pasted back (one; PIL or RGB uint8 array).
        crops: the edited aligned crop (RGB uint8); reconstruction: the embedding's unedited crop.
        factors: the factors of the edited face (house units: pose in degrees), one row.
    """

    images: list
    crops: np.ndarray | None = None
    reconstruction: np.ndarray | None = None
    factors: dict[str, torch.Tensor] = field(default_factory=dict)


def read_factors(regressor, crop: torch.Tensor, landmarks68: torch.Tensor) -> dict[str, torch.Tensor]:
    """lambda (pose in radians) of aligned crops (B, 3, S, S) in [-1, 1] with their (B, 68, 2) landmarks, as the
    regressor reads them through its own crop."""
    out = regressor(regressor.crop_tensor(crop, landmarks68)[0])
    return {"identity": torch.cat([out.identity, out.albedo], dim=1), "expression": out.expression,
            "lighting": out.lighting.reshape(len(crop), 27), "pose": out.rotation}


def _styles(generator: StyleGAN2Generator, vaes: FactorVAEs, lam: dict[str, torch.Tensor]) -> torch.Tensor:
    noise_dim = generator.input_dim - sum(vaes.factor_dims.values())
    return generator.map(generator_input(vaes, lam, lam["pose"].new_zeros(len(lam["pose"]), noise_dim)))


def embed_face(generator: StyleGAN2Generator, vaes: FactorVAEs, crop: np.ndarray, factors: dict[str, torch.Tensor],
               steps: int = EMBED_STEPS, learning_rate: float = EMBED_LEARNING_RATE,
               identity_weight: float = IDENTITY_WEIGHT, identity_net=None) -> EmbeddedFace:
    """Optimise W+ to reproduce the aligned ``crop`` (RGB uint8 at the generator's resolution) from the styles of the
    photo's read ``factors`` (:func:`~facehub.modeling.stylegan2.inversion.invert`; module docstring)."""
    with torch.no_grad():
        start = _styles(generator, vaes, factors)
    found = invert(generator, crop, start, "w+", steps, learning_rate, identity_weight, identity_net)
    return EmbeddedFace(found.styles, {k: v.detach() for k, v in factors.items()}, crop, found.reconstruction,
                        found.loss)


@torch.no_grad()
def edit_face(generator: StyleGAN2Generator, vaes: FactorVAEs, embedded: EmbeddedFace,
              changes: dict[str, torch.Tensor]) -> np.ndarray:
    """Eq. 11: the embedded face with the factors in ``changes`` (model space) set, as an RGB uint8 aligned crop."""
    unknown = sorted(set(changes) - set(FACTORS))
    if unknown:
        raise ValueError(f"Cannot edit {unknown}; the factors are {list(FACTORS)}.")
    before = embedded.factors
    after = {**before, **changes}
    delta = _styles(generator, vaes, after) - _styles(generator, vaes, before)
    image = generator.synthesize(embedded.w_plus + delta[:, None], generator.noise_maps(1, "const"))
    return tensor_to_uint8(image)[0]


@dataclass
class DiscoFaceGANRotationOutput(GeneratedCropRotationOutput):
    """:class:`~facehub.modeling.pipeline_utils.GeneratedCropRotationOutput`: ``crops`` is the edited crop that was
    pasted, ``reconstructions`` the embedding's own crop; ``timings`` has ``analysis``, ``embedding`` and
    ``editing``."""


class DiscoFaceGANRotationPipeline(InversionRotationMixin, RotationPipelineMixin, FacePipelineMixin, FaceHubPipeline):
    """Turn the face in a photo by embedding it and editing its pose factor (module docstring).

    ``pipe = DiscoFaceGANRotationPipeline.from_pretrained("facehub/disco-facegan")``;
    ``pipe(photo, yaw=20.0)``. Option ``embed_steps`` (default 60): optimisation steps of the embedding.
    """

    loads_bundles_of = ("DiscoFaceGANPipeline",)
    model_cpu_offload_seq = "factor_vaes->image_generator"
    max_pitch = 30.0
    unreachable_reason = "the generator learned poses from training faces turned at most about 45 degrees"
    output_class = DiscoFaceGANRotationOutput
    turn_stage = "editing"

    def __init__(self, image_generator: StyleGAN2Generator, factor_vaes: FactorVAEs):
        super().__init__()
        self.register_modules(image_generator=image_generator, factor_vaes=factor_vaes)
        self._reader = None

    def reader(self):
        """The face-fitting regressor that reads a photo's factors (loaded on first use)."""
        if self._reader is None:
            from facehub.modeling.face_fitting.modeling_face_regressor import FaceCoefficientRegressor

            self._reader = FaceCoefficientRegressor.from_pretrained(READER_ID, subfolder="regressor").eval()
            self._reader.requires_grad_(False)
        return self._reader

    def embed(self, photo: np.ndarray, face, steps: int = EMBED_STEPS):
        """The aligned crop of ``face`` in ``photo``, its read factors and its W+ embedding."""
        from facehub.modeling.faces.alignment import aligned_crop

        size = int(self.image_generator.config.resolution)
        aligned = aligned_crop(photo, face.landmarks68, size)
        crop = torch.from_numpy(np.ascontiguousarray(aligned.image)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        with torch.no_grad():
            factors = read_factors(self.reader(), crop, torch.from_numpy(aligned.landmarks68[None]).float())
        embedded = embed_face(self.image_generator, self.factor_vaes, aligned.image, factors, steps,
                              identity_net=dlib_identity_net())
        return aligned, embedded

    @staticmethod
    def _turned_pose(face, embedded: EmbeddedFace, yaw: float, pitch: float) -> torch.Tensor:
        """The pose factor read from the photo, moved by the change from the face's measured yaw and pitch to the
        asked ones (degrees; the aligned frame keeps no roll)."""
        source = Pose.of(face.pose)
        pose = embedded.factors["pose"].clone()
        pose[:, 0] += math.radians(yaw - source.yaw)
        pose[:, 1] += math.radians(pitch - source.pitch)
        return pose

    def embed_photo(self, image, face_index: int = 0, embed_steps: int = EMBED_STEPS,
                    min_interocular: float | None = None) -> EmbeddedPhoto:
        """Embed the ``face_index``-th face (largest first) of ``image`` (array, PIL image or path) for
        :meth:`edit`. Raises :class:`~facehub.modeling.pipeline_utils.FaceSelectionError` without such a face and
        :class:`UnreachablePoseError` for a face turned beyond :attr:`max_yaw`."""
        from facehub.modeling.faces.image_io import load_image

        photo = load_image(image)
        interocular = self.default_min_interocular if min_interocular is None else min_interocular
        _, face, _ = self.select_faces(photo, None, face_index, 0, interocular)
        self.check_embeddable(face)
        aligned, embedded = self.embed(photo, face, embed_steps)
        return EmbeddedPhoto(photo, face, aligned, embedded)

    def edit(self, embedded: EmbeddedPhoto, *, identity=None, expression=None, lighting=None,
             yaw: float | None = None, pitch: float | None = None, output_type: str = "pil"):
        """Eq. 11 on an embedded photo: set any of the factors and paste the edited face back.

        ``identity`` / ``expression`` / ``lighting``: one row of that factor (as :meth:`DiscoFaceGANPipeline.
        sample_factors` gives, e.g. ``g["expression"][:1]``). ``yaw`` / ``pitch``: the pose to turn the face to, in
        degrees as the FaceAnalyzer measures the photo (the change from the face's own measured pose is applied to
        the pose read from it).
        """
        check_output_type(output_type)
        before = embedded.embedded.factors
        changes: dict[str, torch.Tensor] = {}
        for name, value in (("identity", identity), ("expression", expression), ("lighting", lighting)):
            if value is not None:
                value = torch.as_tensor(value, dtype=before[name].dtype).reshape(1, -1)
                if value.shape[1] != before[name].shape[1]:
                    raise ValueError(f"`{name}` has {value.shape[1]} values; this model reads {before[name].shape[1]}.")
                changes[name] = value
        if yaw is not None or pitch is not None:
            source = Pose.of(embedded.face.pose)
            target = (source.yaw if yaw is None else float(yaw), source.pitch if pitch is None else float(pitch))
            self.check_reachable(*target, None)
            changes["pose"] = self._turned_pose(embedded.face, embedded.embedded, *target)
        from facehub.modeling.faces.compositing import paste_aligned_crop

        crop = edit_face(self.image_generator, self.factor_vaes, embedded.embedded, changes)
        image = paste_aligned_crop(embedded.photo, crop, embedded.aligned)
        after = {**before, **changes}
        return DiscoFaceGANEditOutput(images=convert_images([image], output_type), crops=crop,
                                      reconstruction=embedded.embedded.reconstruction,
                                      factors={**after, "pose": after["pose"] * (180.0 / math.pi)})

    def turned_crop(self, face, embedding: EmbeddedFace, target_pose: Pose) -> tuple[np.ndarray, dict]:
        """Eq. 11 with the pose factor moved to ``target_pose`` (:class:`InversionRotationMixin` does the rest)."""
        pose = self._turned_pose(face, embedding, target_pose.yaw, target_pose.pitch)
        return edit_face(self.image_generator, self.factor_vaes, embedding, {"pose": pose}), {}
