"""The coefficient regressor: a ResNet that reads every morphable-model coefficient of a face in one forward pass.

This is the R-Net of seed 002 (Deng et al. use Deep3DFaceRecon's regressor: a ResNet-50 reading a 224 px aligned face
and predicting ``(alpha, beta, delta, gamma, pose)``, eq. 1's coefficients). It reads the face crop of
:func:`face_crop` (PRNet's square around the 68 landmarks' box, :func:`facehub.modeling.prn_dense.cropping.
face_crop_transform`, the same at training and inference) and predicts, in the crop's frame:

- identity ``alpha``, expression ``beta``, albedo ``delta`` (the morphable model's unit-variance coefficients);
- 3 x 9 SH lighting ``gamma``;
- rotation (yaw, pitch, roll) radians (house convention, :mod:`facehub.modeling.geometry.rotations`);
- translation: where the shape's centroid lands, (x, y) as fractions of the crop side;
- ``log_scale``: log of the scale in crop sides per model unit.

Each output is ``offset + spread * raw`` of the network's raw output (fixed constants, :data:`OUTPUT_NORMALISATION`),
so every group is of unit order for the loss. :meth:`FaceCoefficientRegressor.predict` maps the prediction back to
the photo as :class:`~facehub.modeling.face_fitting.FaceCoefficients` (the fitting's layout), which
:func:`~facehub.modeling.face_fitting.fit_face` takes as its start and :func:`fitted_face_from_coefficients` turns
into a reconstruction without any optimisation.

**Flip test** (:meth:`FaceCoefficientRegressor.predict`, ours: Deep3DFaceRecon predicts once). The crop is also read
mirrored, and the face's rigid placement (rotation, translation, scale) is the mean of the two readings, the
mirrored one taken back by :func:`unmirror_placement`; identity, expression, albedo and lighting are the direct
reading's (mirroring expression through the model's basis as well changed nothing measurable). The two readings'
errors are partly independent, so the landmarks and pose come out nearer the truth (the model card gives the
figures).

**Shifted crops** (:meth:`FaceCoefficientRegressor.predict`, ``crop_shift``). Each face is also read from four crops
shifted diagonally by a fraction of the crop's side, each with its mirror: the five crops and their mirrors of
Krizhevsky et al.'s test-time averaging (ImageNet classification with deep CNNs, NIPS 2012, sec. 4.1), here over a
shift small enough that the face stays whole. Each crop's reading is taken back to the photo
(:func:`coefficients_in_photo`) and the five are averaged coefficient by coefficient (:func:`mean_reading`). The
network learned from crops shifted at random, so each shift is as good a crop as the centred one, and their errors
are partly independent (the model card gives the figures).

**Upright crops** (:meth:`FaceCoefficientRegressor.crop_transform`). The network learned from crops with the photos'
own rolls, and a face lying on its side is outside what it has seen: it read one rolled 94 degrees as a profile
looking the other way. A face whose known roll (the analyzer's head pose, or the roll of a first reading when the
crop is cut again around it) exceeds :data:`UPRIGHT_BEYOND_ROLL` is read from the same square turned upright, as
PRN-Dense does (:func:`facehub.modeling.prn_dense.cropping.upright_crop_transform`), and the turn is added back to
the reading's roll (:func:`coefficients_in_photo`). The threshold is where the training crops' rolls end (95% lie
within it); below it the analyzer's roll, whose errors grow on near-profiles, would only add its own noise.

Presets (:data:`FACE_REGRESSOR_PRESETS`): ``paper`` (ResNet-50 widths and depths, bottleneck blocks, 224 px, as
Deep3DFaceRecon), ``cpu-small`` (four basic-block stages at 96 px, a few ms per face on one CPU core) and
``cpu-small-eval`` (other widths, 112 px: the independently trained evaluation regressor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' loader looks ModelMixin up in this module)
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from facehub.modeling.modeling_utils import FaceHubModel
from facehub.modeling.prn_dense.cropping import check_crop_shift, shift_crop, shifted_crop_offsets

#: Named architectures: ``paper`` (ResNet-50: widths 256-2048, 3-4-6-3 bottleneck blocks, 224 px, as Deep3DFaceRecon's
#: R-Net), ``cpu-small`` (basic blocks, 96 px) and ``cpu-small-eval`` (other widths and size, for the second,
#: evaluation-only regressor).
FACE_REGRESSOR_PRESETS: dict[str, dict] = {
    "paper": {"image_size": 224, "stem_channels": 64, "stage_channels": (256, 512, 1024, 2048),
              "stage_blocks": (3, 4, 6, 3), "bottleneck": True},
    "cpu-small": {"image_size": 96, "stem_channels": 24, "stage_channels": (32, 64, 128, 192),
                  "stage_blocks": (1, 1, 1, 1), "bottleneck": False},
    "cpu-small-eval": {"image_size": 112, "stem_channels": 16, "stage_channels": (24, 48, 96, 160),
                       "stage_blocks": (1, 1, 2, 1), "bottleneck": False},
}

#: Faces rolled further than this (degrees) are read from an upright crop (module docstring, *upright crops*): 95% of
#: the AFLW training crops' rolls lie within it (``python benchmarks/measure_training_rolls.py``).
UPRIGHT_BEYOND_ROLL = 27.5

#: How far the four shifted crops lie from the centred one along its diagonals, as a fraction of the crop's side
#: (module docstring, *shifted crops*): chosen by reading the AFLW2000-3D half of ../shared/data, on the photos of
#: even number, at shifts of 0.02, 0.04 and 0.06 (four along the axes, four diagonal, eight) and checked on those of
#: odd number (the model card has the figures). The training crops were shifted up to 0.1.
CROP_SHIFT = 0.04

#: The order of the coefficient groups in the network's output vector.
GROUPS = ("identity", "expression", "albedo", "lighting", "rotation", "translation", "log_scale")

#: (offset, spread) per group: prediction = offset + spread * raw output. Lighting's ambient term is offset to the
#: synthetic world's mean (about 0.925 / SH_DC); ``log_scale``'s offset is a face of the default model filling
#: 1/1.6 of the crop.
OUTPUT_NORMALISATION = {
    "identity": (0.0, 1.0), "expression": (0.0, 1.0), "albedo": (0.0, 1.0), "lighting": (0.0, 0.3),
    "rotation": (0.0, 0.6), "translation": (0.5, 0.05), "log_scale": (-math.log(1.6 * 140.0), 0.2),
}


@dataclass
class FaceRegressorOutput(BaseOutput):
    """What :class:`FaceCoefficientRegressor` predicts for a batch of crops (crop frame, see the module docstring).

    Attributes:
        identity: (B, K_id) ``alpha``. expression: (B, K_exp) ``beta``. albedo: (B, K_tex) ``delta``.
        lighting: (B, 3, 9) SH ``gamma``. rotation: (B, 3) yaw, pitch, roll radians.
        translation: (B, 2) the centroid in crop sides. log_scale: (B,) log crop sides per model unit.
        normalised: (B, P) the raw outputs (the loss compares these with the normalised targets).
    """

    identity: torch.Tensor
    expression: torch.Tensor
    albedo: torch.Tensor
    lighting: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    log_scale: torch.Tensor
    normalised: torch.Tensor


class _Block(nn.Module):
    """A residual block: two 3x3 convs (basic) or 1x1-3x3-1x1 (bottleneck, width / 4 inside), BatchNorm, ReLU."""

    def __init__(self, channels_in: int, channels_out: int, stride: int, bottleneck: bool):
        super().__init__()
        if bottleneck:
            inner = channels_out // 4
            layers = [nn.Conv2d(channels_in, inner, 1, bias=False), nn.BatchNorm2d(inner), nn.ReLU(inplace=True),
                      nn.Conv2d(inner, inner, 3, stride, 1, bias=False), nn.BatchNorm2d(inner), nn.ReLU(inplace=True),
                      nn.Conv2d(inner, channels_out, 1, bias=False), nn.BatchNorm2d(channels_out)]
        else:
            layers = [nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False), nn.BatchNorm2d(channels_out),
                      nn.ReLU(inplace=True), nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False),
                      nn.BatchNorm2d(channels_out)]
        nn.init.zeros_(layers[-1].weight)  # each block starts as the identity (zero-init residual)
        self.body = nn.Sequential(*layers)
        self.skip = nn.Identity() if stride == 1 and channels_in == channels_out else nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out))

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


def validate_face_regressor_config(image_size, stem_channels, stage_channels, stage_blocks, **_) -> None:
    """Raise a one-line ``ValueError`` naming the offending field."""
    if int(image_size) != image_size or image_size < 32:
        raise ValueError(f"Got {image_size} for `image_size`; it must be a whole number of pixels >= 32.")
    if stem_channels <= 0:
        raise ValueError(f"Got {stem_channels} for `stem_channels`; it must be a positive width.")
    if not stage_channels or any(c <= 0 for c in stage_channels):
        raise ValueError(f"Got {list(stage_channels)} for `stage_channels`; expected one or more positive widths.")
    if len(stage_blocks) != len(stage_channels) or any(b <= 0 for b in stage_blocks):
        raise ValueError(f"Got {list(stage_blocks)} for `stage_blocks`; expected one positive block count per "
                         f"stage ({len(stage_channels)} stages).")


class FaceCoefficientRegressor(FaceHubModel):
    """ResNet-style encoder: face crop (B, 3, S, S) in [-1, 1] -> every morphable-model coefficient
    (:class:`FaceRegressorOutput`; module docstring).

    Args:
        image_size: S, the crop side the network reads.
        stem_channels: width of the stem (a stride-2 conv; the bottleneck variant adds ResNet's 7x7 conv + max pool).
        stage_channels: output width of each residual stage (each stage halves the resolution).
        stage_blocks: residual blocks per stage.
        bottleneck: ResNet-50's bottleneck blocks instead of basic blocks.
        num_identity, num_expression, num_albedo: coefficient counts of the morphable model predicted for.
        crop_scale: crop side / mean side of the 68 landmarks' box (PRNet's 1.6).
    """

    @register_to_config
    def __init__(self, image_size: int = 96, stem_channels: int = 24, stage_channels: tuple = (32, 64, 128, 192),
                 stage_blocks: tuple = (1, 1, 1, 1), bottleneck: bool = False, num_identity: int = 40,
                 num_expression: int = 14, num_albedo: int = 9, crop_scale: float = 1.6):
        super().__init__()
        validate_face_regressor_config(image_size, stem_channels, stage_channels, stage_blocks)
        if bottleneck:
            stem = [nn.Conv2d(3, stem_channels, 7, 2, 3, bias=False), nn.BatchNorm2d(stem_channels),
                    nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        else:
            stem = [nn.Conv2d(3, stem_channels, 3, 2, 1, bias=False), nn.BatchNorm2d(stem_channels),
                    nn.ReLU(inplace=True)]
        self.stem = nn.Sequential(*stem)
        blocks, width = [], stem_channels
        for index, (channels, count) in enumerate(zip(stage_channels, stage_blocks, strict=True)):
            for b in range(count):
                stride = 2 if b == 0 and (index > 0 or not bottleneck) else 1
                blocks.append(_Block(width, channels, stride, bottleneck))
                width = channels
        self.stages = nn.Sequential(*blocks)
        self.sizes = {"identity": num_identity, "expression": num_expression, "albedo": num_albedo, "lighting": 27,
                      "rotation": 3, "translation": 2, "log_scale": 1}
        self.head = nn.Linear(width, sum(self.sizes.values()))
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)
        offset, spread = [], []
        for name in GROUPS:
            o, s = OUTPUT_NORMALISATION[name]
            offset.append(torch.full((self.sizes[name],), float(o)))
            spread.append(torch.full((self.sizes[name],), float(s)))
        offset[GROUPS.index("lighting")][0:27:9] = 0.925 / _sh_dc()  # ambient term of each channel
        self.register_buffer("output_offset", torch.cat(offset), persistent=False)
        self.register_buffer("output_spread", torch.cat(spread), persistent=False)

    @classmethod
    def from_preset(cls, preset: str = "cpu-small", **overrides) -> FaceCoefficientRegressor:
        """A new (untrained) regressor of a :data:`FACE_REGRESSOR_PRESETS` architecture with ``overrides``."""
        if preset not in FACE_REGRESSOR_PRESETS:
            raise ValueError(f"Unknown regressor preset {preset!r}; known presets: {', '.join(FACE_REGRESSOR_PRESETS)}.")
        return cls(**{**FACE_REGRESSOR_PRESETS[preset], **overrides})

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, P) vector -> the groups (lighting (B, 3, 9), log_scale (B,))."""
        parts = dict(zip(GROUPS, flat.split([self.sizes[name] for name in GROUPS], dim=-1), strict=True))
        parts["lighting"] = parts["lighting"].reshape(-1, 3, 9)
        parts["log_scale"] = parts["log_scale"][:, 0]
        return parts

    def normalise(self, groups: dict[str, torch.Tensor]) -> torch.Tensor:
        """Targets by group (as :class:`FaceRegressorOutput`'s fields) -> the (B, P) normalised vector."""
        flat = torch.cat([groups[name].reshape(len(groups[name]), -1) for name in GROUPS], dim=-1)
        return (flat - self.output_offset) / self.output_spread

    def pooled_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C) the globally pooled features the head reads (e.g. for a Frechet distance on this network's
        features)."""
        return self.stages(self.stem(pixel_values)).mean(dim=(2, 3))

    def forward(self, pixel_values: torch.Tensor, return_dict: bool = True):
        raw = self.head(self.pooled_features(pixel_values))
        groups = self.split(self.output_offset + self.output_spread * raw)
        output = FaceRegressorOutput(**groups, normalised=raw)
        return output if return_dict else output.to_tuple()

    def crop_tensor(self, images: torch.Tensor, landmarks68: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                    torch.Tensor]:
        """This network's crop of (B, 3, H, W) images in [-1, 1], differentiably: the square of :func:`face_crop`
        around (B, 68, 2) pixel landmarks (side = ``crop_scale`` times the mean side of their box, no rotation),
        resampled bilinearly to :attr:`config.image_size`, black outside the image. Returns the crops, the squares'
        centres (B, 2) and sides (B,) in image pixels (a prediction's crop units ``u`` map back to ``centre -
        side / 2 + u * side``)."""
        import torch.nn.functional as F

        height, width = images.shape[-2:]
        low, high = landmarks68.amin(dim=1), landmarks68.amax(dim=1)
        side = (high - low).sum(dim=1) / 2.0 * float(self.config.crop_scale)
        centre = (low + high) / 2.0
        theta = images.new_zeros(len(images), 2, 3)
        theta[:, 0, 0] = side / width
        theta[:, 1, 1] = side / height
        theta[:, 0, 2] = centre[:, 0] / width * 2.0 - 1.0
        theta[:, 1, 2] = centre[:, 1] / height * 2.0 - 1.0
        size = int(self.config.image_size)
        grid = F.affine_grid(theta, (len(images), 3, size, size), align_corners=False)
        crops = F.grid_sample(images + 1.0, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1.0
        return crops, centre, side

    # ------------------------------------------------------------------ photos

    def crop_transform(self, face_or_landmarks68, upright_beyond_roll: float | None = UPRIGHT_BEYOND_ROLL
                       ) -> np.ndarray:
        """(2, 3) image -> crop affine of the crop this network reads (:func:`face_crop`): PRNet's square, turned
        upright for a face whose ``pose`` (a :class:`~facehub.modeling.faces.Face`, a :class:`~facehub.modeling.prn_dense.cropping.PosedLandmarks`) is
        rolled by more than ``upright_beyond_roll`` degrees (module docstring, *upright crops*; ``None``: never);
        bare landmarks and boxes are cropped unturned."""
        from facehub.modeling.prn_dense.cropping import upright_crop_transform

        threshold = math.inf if upright_beyond_roll is None else float(upright_beyond_roll)
        return upright_crop_transform(face_or_landmarks68, int(self.config.image_size), threshold=threshold,
                                      scale=float(self.config.crop_scale))

    @torch.no_grad()
    def predict(self, image, faces, face_model=None, flip_test: bool = True,
                upright_beyond_roll: float | None = UPRIGHT_BEYOND_ROLL, crop_shift: float = CROP_SHIFT) -> list:
        """Coefficients of given faces of a photo in its pixels, as the fitting reports them.

        Args:
            image: RGB uint8 array, PIL image, path or bytes.
            faces: :class:`~facehub.modeling.faces.Face` objects or (68, 2) landmark arrays (the crop is PRNet's square
                around them).
            face_model: the :class:`~facehub.modeling.geometry.MorphableFaceModel` (for the translation's z: the
                dense landmarks' mean depth for a Face with them, else the deepest vertex at z = 0); ``None``: z = 0.
            flip_test: also read the mirrored crops and average the rigid placement (module docstring).
            upright_beyond_roll: faces rolled further than this (degrees; ``None``: none) are read from an upright
                crop (:meth:`crop_transform`).
            crop_shift: also read four crops shifted diagonally by this fraction of the crop's side and average the
                five readings (module docstring, *shifted crops*); ``0`` reads the centred crop alone.

        Returns:
            One :class:`~facehub.modeling.face_fitting.FaceCoefficients` per face.
        """
        from facehub.modeling.faces.image_io import load_image

        photo = load_image(image)
        faces = list(faces)
        if not faces:
            return []
        check_crop_shift(crop_shift)
        size = int(self.config.image_size)
        offsets = shifted_crop_offsets(crop_shift)
        transforms = [[shift_crop(self.crop_transform(face, upright_beyond_roll), offset, size) for offset in offsets]
                      for face in faces]
        crops = np.stack([face_crop(photo, matrix, size) for matrices in transforms for matrix in matrices])
        pixels = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        was_training = self.training
        self.eval()
        try:
            parameter = next(self.parameters())
            pixels = pixels.to(parameter.device, parameter.dtype)
            out = self(pixels)
            if flip_test:
                mirrored = unmirror_placement(self(pixels.flip(-1)))
                out = replace(out, rotation=(out.rotation + mirrored.rotation) / 2.0,
                              translation=(out.translation + mirrored.translation) / 2.0,
                              log_scale=(out.log_scale + mirrored.log_scale) / 2.0)
        finally:
            self.train(was_training)
        count = len(offsets)
        readings = [[coefficients_in_photo(out, i * count + k, matrix, size, face_model, face)
                     for k, matrix in enumerate(matrices)]
                    for i, (face, matrices) in enumerate(zip(faces, transforms, strict=True))]
        return [own[0] if count == 1 else mean_reading(own) for own in readings]


def unmirror_placement(out: FaceRegressorOutput) -> FaceRegressorOutput:
    """A prediction on crops flipped left-right, with its rigid placement taken back to the unflipped crops.

    The flip is ``D = diag(-1, 1, 1)`` in the crop frame. The model's mean shape is symmetric about its x = 0 plane, so
    a face posed by ``R = Rz(roll) Rx(pitch) Ry(yaw)`` is seen mirrored as posed by ``D R D = Rz(-roll) Rx(pitch)
    Ry(-yaw)``: yaw and roll change sign, pitch stays. Its centroid's x (crop sides, pixel centres at ``(j + 0.5) /
    S``) goes to ``1 - x``, and the scale stays. The other coefficients are returned as read.
    """
    rotation = out.rotation * out.rotation.new_tensor([-1.0, 1.0, -1.0])
    translation = torch.stack([1.0 - out.translation[:, 0], out.translation[:, 1]], dim=-1)
    return replace(out, rotation=rotation, translation=translation)


def _sh_dc() -> float:
    from facehub.modeling.geometry.morphable import SH_DC

    return float(SH_DC)


def face_crop(photo: np.ndarray, image_to_crop: np.ndarray, size: int) -> np.ndarray:
    """The (size, size, 3) uint8 crop the regressor reads (PRN-Dense's warp: black outside the photo)."""
    from facehub.modeling.prn_dense.cropping import crop_face_image

    return crop_face_image(photo, image_to_crop, size)


def batched_rotation(angles: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) ``Rz(roll) Rx(pitch) Ry(yaw)`` of (B, 3) (yaw, pitch, roll) radians (house convention)."""
    yaw, pitch, roll = angles.unbind(-1)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(-1, 3, 3)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ rx @ ry


def posed_landmarks68(model, identity, expression, rotation, translation, log_scale) -> torch.Tensor:
    """(B, 68, 2) landmarks, in crop sides, of the morphable model under predicted or true coefficients (the
    reprojection of Deep3DFaceRecon's L_lm: ``s R (S - mean S) + t`` at the 68 landmark combinations)."""
    dtype = identity.dtype
    shape = (model.mean_shape.to(dtype)[None]
             + torch.einsum("bk,kvd->bvd", identity, model.id_basis.to(dtype))
             + torch.einsum("bk,kvd->bvd", expression, model.exp_basis.to(dtype)))
    centred = shape - shape.mean(dim=1, keepdim=True)
    points = torch.einsum("lv,bvd->bld", model.landmark_weights.to(dtype), centred)
    posed = log_scale.exp()[:, None, None] * points @ batched_rotation(rotation).transpose(1, 2)
    return posed[..., :2] + translation[:, None, :]


def coefficients_in_photo(out: FaceRegressorOutput, index: int, image_to_crop: np.ndarray, crop_size: int,
                          face_model=None, face=None):
    """Face ``index`` of a crop-frame prediction -> :class:`~facehub.modeling.face_fitting.FaceCoefficients` in the
    photo's pixels.

    The crop is a similarity ``x_crop = k T(theta) x + b`` (``T`` a turn on screen, ``theta = 0`` but for an
    upright crop). A shape posed in the crop by ``R_crop = Rz(roll) Rx(pitch) Ry(yaw)`` lands in the photo posed by
    ``Rz(-theta) R_crop``, and turns about the camera axis add up, so yaw and pitch carry over and the roll becomes
    ``roll - theta``; the scale is divided by ``k``.
    """
    from facehub.modeling.face_fitting.fitting import FaceCoefficients
    from facehub.modeling.faces.alignment import invert_affine

    matrix = np.asarray(image_to_crop, np.float64)
    zoom = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    inverse = invert_affine(matrix)
    centre_crop = out.translation[index].double().cpu().numpy() * crop_size
    centre = inverse[:, :2] @ centre_crop + inverse[:, 2]
    scale = float(out.log_scale[index].exp()) * crop_size / zoom
    rotation = np.rad2deg(out.rotation[index].double().cpu().numpy())
    rotation[2] -= math.degrees(math.atan2(matrix[1, 0], matrix[0, 0]))  # the crop's turn (docstring)
    rotation[2] = (rotation[2] + 180.0) % 360.0 - 180.0
    identity = out.identity[index].float().cpu().numpy()
    expression = out.expression[index].float().cpu().numpy()
    depth = 0.0
    dense = getattr(face, "dense_landmarks", None)
    if dense is not None and np.asarray(dense).shape[-1] == 3:
        depth = float(np.asarray(dense)[:, 2].mean())
    elif face_model is not None:
        from facehub.modeling.geometry.rotations import rotation_matrix

        shape = face_model.shape(torch.from_numpy(identity)[None], torch.from_numpy(expression)[None])[0].double()
        centred = (shape - shape.mean(dim=0)).numpy() * scale @ rotation_matrix(*rotation).T
        depth = float(-centred[:, 2].min())
    return FaceCoefficients(
        identity=identity, expression=expression, albedo=out.albedo[index].float().cpu().numpy(),
        lighting=out.lighting[index].float().cpu().numpy(), rotation=tuple(float(a) for a in rotation),
        translation=np.array([centre[0], centre[1], depth]), scale=scale,
    )


def posed_mesh(coefficients, model) -> np.ndarray:
    """(468, 3) float32 mesh in the photo's pixels of :class:`~facehub.modeling.face_fitting.FaceCoefficients`: the
    shape ``S(alpha, beta)`` about its centroid, scaled, rotated and moved by the coefficients' camera."""
    from facehub.modeling.geometry.rotations import rotation_matrix

    identity = torch.as_tensor(np.asarray(coefficients.identity), dtype=torch.float32)[None]
    expression = torch.as_tensor(np.asarray(coefficients.expression), dtype=torch.float32)[None]
    shape = model.shape(identity, expression)[0].double().numpy()
    mesh = float(coefficients.scale) * (shape - shape.mean(axis=0)) @ rotation_matrix(*coefficients.rotation).T
    return (mesh + np.asarray(coefficients.translation, np.float64)).astype(np.float32)


def reading_landmarks68(coefficients, model) -> np.ndarray:
    """(68, 2) float64 photo pixels: the 68 landmarks of :class:`~facehub.modeling.face_fitting.FaceCoefficients`'
    posed mesh as points of the mesh itself (:meth:`~facehub.modeling.geometry.MorphableFaceModel.landmarks68`,
    like the analyzer's; a reconstruction reports its jaw deeper, ``reconstruction_landmarks68``)."""
    mesh = torch.from_numpy(posed_mesh(coefficients, model))[None]
    return model.landmarks68(mesh.to(model.landmark_weights.dtype))[0].double().numpy()[:, :2]


def landmark_disagreement(coefficients, landmarks68, model) -> float:
    """How far a reading's 68 landmarks (:func:`reading_landmarks68`) lie from a face's ``landmarks68`` ((68, 2+)
    photo pixels): their :func:`~facehub.modeling.geometry.landmark_metrics.nme`, a fraction of the face size (sqrt
    of the area of ``landmarks68``'s box), the fit's unit."""
    from facehub.modeling.geometry.landmark_metrics import nme

    return float(nme(reading_landmarks68(coefficients, model), landmarks68))


def mean_reading(readings: list):
    """The coefficient-wise mean of several readings of one face
    (:class:`~facehub.modeling.face_fitting.FaceCoefficients` in the same photo): every coefficient, angle and
    position is the mean of its values, the scale their geometric mean (the network reads it as a log). For readings
    that agree, as those of shifted crops do; :func:`median_reading` is for readings one of which may be far off."""
    from facehub.modeling.face_fitting.fitting import FaceCoefficients

    if not readings:
        raise ValueError("mean_reading needs at least one reading.")

    def mean(name):
        values = [np.asarray(getattr(r, name)) for r in readings]
        return np.mean(np.stack(values).astype(np.float64), axis=0).astype(values[0].dtype)

    return FaceCoefficients(identity=mean("identity"), expression=mean("expression"), albedo=mean("albedo"),
                            lighting=mean("lighting"), rotation=tuple(float(a) for a in mean("rotation")),
                            translation=mean("translation"),
                            scale=float(np.exp(np.mean([np.log(float(r.scale)) for r in readings]))))


def median_reading(readings: list):
    """The coefficient-wise median of several readings of one face
    (:class:`~facehub.modeling.face_fitting.FaceCoefficients` in the same photo): every coefficient, angle, position
    and the scale is the median of its values. One reading from a badly cut crop moves it little, where it would move
    a mean by a third of its error; the analyzer's depth frame, shared by all, carries over."""
    from facehub.modeling.face_fitting.fitting import FaceCoefficients

    if not readings:
        raise ValueError("median_reading needs at least one reading.")

    def median(name):
        values = [np.asarray(getattr(r, name)) for r in readings]
        return np.median(np.stack(values).astype(np.float64), axis=0).astype(values[0].dtype)

    rotation = median("rotation")
    return FaceCoefficients(identity=median("identity"), expression=median("expression"), albedo=median("albedo"),
                            lighting=median("lighting"), rotation=tuple(float(a) for a in rotation),
                            translation=median("translation"), scale=float(median("scale")))


def fitted_face_from_coefficients(image, coefficients, *, face=None, model=None, topology=None,
                                  texture_size: int = 128, complete: bool = True, compute_depth: bool = True,
                                  image_to_crop: np.ndarray | None = None, crop_size: int | None = None):
    """A :class:`~facehub.modeling.face_fitting.FittedFace` straight from coefficients (a regressor's prediction),
    with no optimisation: the posed mesh, its 68 landmarks, the photo's UV texture, visibility and completion, depth.

    ``image_to_crop`` / ``crop_size``: the crop the prediction was read from (the regressor's), kept on the result;
    ``None``: the whole photo. ``losses`` holds the 68-landmark error against ``face`` (a :class:`~facehub.modeling.faces.Face`) when given, as
    a fraction of the face size, and the coefficient priors.
    """
    from facehub.modeling.face_fitting.fitting import FittedFace
    from facehub.modeling.faces.analyzer import Face
    from facehub.modeling.faces.image_io import load_image
    from facehub.modeling.geometry.morphable import MorphableFaceModel
    from facehub.modeling.geometry.texture_completion import complete_texture, texel_visibility
    from facehub.modeling.geometry.topology import FaceTopology
    from facehub.modeling.geometry.uv_maps import mesh_to_uv_position_map
    from facehub.modeling.prn_dense.reconstruction import render_depth, sample_image

    photo = load_image(image)
    model = model or MorphableFaceModel.default()
    topology = topology or FaceTopology.default()
    c = coefficients
    mesh = posed_mesh(c, model)
    landmarks = model.reconstruction_landmarks68(mesh)
    uv_map = mesh_to_uv_position_map(mesh, size=texture_size, topology=topology).astype(np.float32)
    texture = sample_image(photo, uv_map[..., :2])
    visibility = texel_visibility(mesh, texture_size, topology, image_shape=photo.shape[:2]).astype(np.float32)
    completion = complete_texture(texture, visibility, topology) if complete else None
    depth = face_mask = None
    if compute_depth:
        depth, face_mask = render_depth(mesh, topology.triangles, photo.shape[0], photo.shape[1])
    with torch.no_grad():
        albedo = model.albedo(torch.as_tensor(np.asarray(c.albedo), dtype=torch.float32)[None])[0]
    losses = {}
    if isinstance(face, Face):
        losses["landmarks68"] = landmark_disagreement(c, face.landmarks68, model)
    losses.update({"identity_prior": 0.5 * float(np.square(c.identity).sum()),
                   "expression_prior": 0.5 * float(np.square(c.expression).sum()),
                   "albedo_prior": 0.5 * float(np.square(c.albedo).sum())})
    return FittedFace(
        vertices=mesh, triangles=np.asarray(topology.triangles).copy(), colors=sample_image(photo, mesh[:, :2]),
        landmarks68=landmarks, pose=model.head_pose(c.rotation), uv_position_map=uv_map,
        uvs=np.asarray(topology.uvs, np.float32).copy(), texture=texture,
        image_to_crop=np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]) if image_to_crop is None else np.asarray(image_to_crop),
        crop_size=int(crop_size or max(photo.shape[:2])), depth=depth, face_mask=face_mask,
        face=face if isinstance(face, Face) else None, image_shape=tuple(photo.shape[:2]), image=photo,
        coefficients=c, visibility=visibility, texture_completion=completion,
        albedo_texture=(albedo.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        if albedo.dim() == 3 else None,
        losses=losses,
    )
