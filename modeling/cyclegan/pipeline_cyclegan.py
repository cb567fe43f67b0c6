"""Adversarial repair of pasted face swaps (DepthNets, Moniz, Beckham et al. 2018, section 3.3; CycleGAN, Zhu et al.
2017).

A DepthNet face swap warps the source face onto the target's geometry and pastes it into the target photo; the pasted
face rarely matches the skin tone, lighting, hair line and background around it. The paper trains a CycleGAN whose
generator ``G: X -> Y`` maps the domain X of pasted swaps to the domain Y of real faces (eq. 3 of CycleGAN) and runs
it on the swap. :func:`repair_face` does that on a photo:

1. a square box around the pasted region (``mask``), enlarged by ``margin`` on each side so the generator sees the
   hair and background it has to match, is cut out (reflection-padded where it passes the photo's border) and
   resized to the generator's ``image_size``: the same framing :func:`crop_around_mask` gives training crops;
2. the generator translates the crop; the result is resized back to the box;
3. the repaired crop is blended into the photo with a feathered weight: 1 on the pasted region, falling smoothly to 0
   within ``feather`` (a fraction of the region's size) outside it. Pixels further away are copied from the input,
   bit for bit, so the rest of the photo is never touched (the CycleGAN output is only trusted near the face).

:class:`FaceRepairPipeline` holds the trained generators: ``repair`` (swap -> real, ``G``) and optionally
``real_to_swap`` (real -> swap, ``F``, the other half of the cycle; it makes real faces look pasted, e.g. to inspect
what the model learnt as "pasted").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import distance_transform_edt

from facehub.modeling.cyclegan.modeling_cyclegan import CycleGANGenerator
from facehub.modeling.modeling_utils import FaceHubPipeline
from facehub.modeling.pipeline_utils import (
    ImagePipelineOutput,
    as_image_list,
    broadcast,
    check_output_type,
    collate,
    convert_images,
)

#: Each side of the crop box extends this fraction of the pasted region's larger side beyond the region.
DEFAULT_MARGIN = 0.25
#: The blend falls from 1 to 0 over this fraction of the pasted region's larger side outside the region.
DEFAULT_FEATHER = 0.15

Box = tuple[int, int, int, int]


@dataclass
class FaceRepairPipelineOutput(ImagePipelineOutput):
    """What :class:`FaceRepairPipeline` returns.

    Attributes:
        images: the photos with their pasted face repaired, one per input image: PIL images, or (H, W, 3) RGB uint8
            arrays with ``output_type="np"``.
        blend_weight: (H, W) float32 in [0, 1], how much of each output pixel comes from the generator (0: copied
            from the input unchanged).
        box: (x0, y0, x1, y1) the square crop the generator saw, in photo pixels (it may extend past the border).

    For one input image ``blend_weight`` and ``box`` are single values; for a list input they are lists, one per
    image. ``.image`` (the first image as an array) is a deprecated alias.
    """

    blend_weight: np.ndarray | list[np.ndarray]
    box: Box | list[Box]


#: Former name of :class:`FaceRepairPipelineOutput`.
FaceRepairOutput = FaceRepairPipelineOutput


def _check_image(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"`image` must be an (H, W, 3) RGB uint8 numpy array or a PIL image, got {type(image).__name__}."
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(
            f"`image` must be an (H, W, 3) RGB array, got shape {image.shape}. Convert greyscale or RGBA images to RGB "
            "first (facehub.modeling.faces.load_image does)."
        )
    if image.dtype != np.uint8:
        raise ValueError(f"`image` must be uint8 (0-255), got dtype {image.dtype}.")
    return image


def _check_mask(mask, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool or numeric mask -> bool region of the pasted face (values above 0.5)."""
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"`mask` must be (H, W) = {shape} like the image, got shape {mask.shape}.")
    if mask.dtype == np.bool_:
        region = mask
    elif np.issubdtype(mask.dtype, np.number):
        if not np.isfinite(mask).all():
            raise ValueError("`mask` contains NaN or infinite values.")
        region = mask > 0.5
    else:
        raise ValueError(f"`mask` must be boolean or numeric, got dtype {mask.dtype}.")
    if not region.any():
        raise ValueError(
            "`mask` is empty: no pixel is above 0.5, so there is no pasted face to repair. Pass the region where the "
            "swapped face was pasted (True or 1 inside)."
        )
    return region


def _check_fractions(margin: float, feather: float) -> None:
    if not 0 <= margin <= 4:
        raise ValueError(f"Got {margin} for `margin`; expected a fraction of the face size in [0, 4].")
    if not 0 <= feather <= margin:
        raise ValueError(
            f"Got {feather} for `feather` with margin {margin}; the feathered band must fit inside the crop "
            "(0 <= feather <= margin)."
        )


def _region_size(region: np.ndarray) -> tuple[int, int, int, int, int]:
    """``(x0, y0, x1, y1, larger side)`` of the bounding box of a non-empty ``region``."""
    rows, cols = np.nonzero(region)
    y0, y1, x0, x1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    return x0, y0, x1, y1, max(y1 - y0, x1 - x0)


def square_box_around_mask(region: np.ndarray, margin: float = DEFAULT_MARGIN) -> Box:
    """The square ``(x0, y0, x1, y1)`` centred on ``region``'s bounding box, its larger side grown by ``margin`` on
    each side. It may extend past the image border."""
    x0, y0, x1, y1, larger_side = _region_size(region)
    side = max(int(math.ceil(larger_side * (1 + 2 * margin))), 1)
    left = int(round((x0 + x1 - side) / 2))
    top = int(round((y0 + y1 - side) / 2))
    return left, top, left + side, top + side


def _cut(image: np.ndarray, box: Box) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` with the parts past the border filled by reflection."""
    x0, y0, x1, y1 = box
    height, width = image.shape[:2]
    pads = ((max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width)), (0, 0))
    inside = image[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)]
    return np.pad(inside, pads, mode="reflect") if any(p for pair in pads for p in pair) else inside


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def crop_around_mask(image, mask, size: int | None = None, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The square crop :func:`repair_face` gives the generator, as RGB uint8 (resized to ``size`` when given).

    Use it to make the pasted-swap training images (``data.domain_a`` of :mod:`facehub.trainers.cyclegan`) so that
    the generator is trained on exactly the framing it is run on.
    """
    image = _check_image(image)
    _check_fractions(margin, 0.0)
    crop = _cut(image, square_box_around_mask(_check_mask(mask, image.shape[:2]), margin))
    if size is None:
        return np.ascontiguousarray(crop)
    tensor = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float()
    return _resize(tensor, size)[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def feathered_weight(region: np.ndarray, feather_pixels: float) -> np.ndarray:
    """1 on ``region``, a smooth (smoothstep) fall to 0 over ``feather_pixels`` outside it, exactly 0 beyond."""
    if feather_pixels <= 0:
        return region.astype(np.float32)
    distance = distance_transform_edt(~region)
    ramp = np.clip(1.0 - distance / feather_pixels, 0.0, 1.0)
    return (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)


@torch.no_grad()
def _repair(
    generator: CycleGANGenerator, image, mask, margin: float, feather: float
) -> tuple[np.ndarray, np.ndarray, Box]:
    image = _check_image(image)
    region = _check_mask(mask, image.shape[:2])
    _check_fractions(margin, feather)
    height, width = image.shape[:2]
    box = square_box_around_mask(region, margin)
    x0, y0, x1, y1 = box
    side = x1 - x0

    param = next(generator.parameters())
    crop = torch.from_numpy(np.ascontiguousarray(_cut(image, box))).to(param.device)
    crop = crop.permute(2, 0, 1)[None].to(torch.float32) / 127.5 - 1.0
    was_training = generator.training
    generator.eval()
    try:
        translated = generator(_resize(crop, generator.config.image_size).to(param.dtype)).image
    finally:
        generator.train(was_training)
    repaired = (_resize(translated.float(), side)[0].permute(1, 2, 0).clamp(-1, 1) + 1.0) * 127.5
    repaired = repaired.cpu().numpy()

    # The part of the box inside the photo; the blend weight is computed there only (it is 0 everywhere else,
    # because the feathered band, at most `margin` wide, lies inside the box).
    top, bottom, left, right = max(0, y0), min(height, y1), max(0, x0), min(width, x1)
    weight = np.zeros((height, width), np.float32)
    feather_pixels = feather * _region_size(region)[4]
    weight[top:bottom, left:right] = feathered_weight(region[top:bottom, left:right], feather_pixels)

    output = image.copy()
    window = weight[top:bottom, left:right, None]
    original = image[top:bottom, left:right]
    generated = repaired[top - y0 : bottom - y0, left - x0 : right - x0]
    blended = np.clip(original * (1.0 - window) + generated * window + 0.5, 0, 255).astype(np.uint8)
    output[top:bottom, left:right] = np.where(window > 0, blended, original)
    return output, weight, box


def repair_face(
    generator: CycleGANGenerator,
    image,
    mask,
    margin: float = DEFAULT_MARGIN,
    feather: float = DEFAULT_FEATHER,
) -> np.ndarray:
    """Repair a pasted face swap with a swap -> real CycleGAN generator (see the module docstring).

    Args:
        generator: the trained ``G: pasted swaps -> real faces`` (``FaceRepairPipeline.repair``).
        image: (H, W, 3) RGB uint8 photo with the swapped face pasted in (or a PIL image).
        mask: (H, W) region of the pasted face: bool, or float / int with values above 0.5 inside.
        margin: context around the face in the generator's crop, as a fraction of the face's larger side.
        feather: width of the blend's fall-off outside the mask, same unit; at most ``margin``.

    Returns:
        (H, W, 3) RGB uint8: the photo with the face region (and a feathered band around it) replaced by the
        generator's output. Pixels further than ``feather`` from the mask are the input's, unchanged.

    Raises:
        ValueError: the image is not (H, W, 3) uint8, the mask does not match it or is empty.
    """
    return _repair(generator, image, mask, margin, feather)[0]


class FaceRepairPipeline(FaceHubPipeline):
    """CycleGAN face-swap repair bundle: ``repair`` (pasted swap -> real face) and optional ``real_to_swap``.

    ``pipe(image, mask)`` returns :class:`FaceRepairPipelineOutput` (``.images``; see :func:`repair_face`). Saved by
    the CycleGAN trainer (:mod:`facehub.trainers.cyclegan`) with ``save_pretrained``; ``FaceSwapPipeline`` uses its
    ``repair`` generator.
    """

    model_cpu_offload_seq = "repair"
    _optional_components = ["real_to_swap"]

    def __init__(self, repair: CycleGANGenerator, real_to_swap: CycleGANGenerator | None = None):
        super().__init__()
        self.register_modules(repair=repair, real_to_swap=real_to_swap)

    def __call__(
        self,
        image,
        mask,
        margin: float = DEFAULT_MARGIN,
        feather: float = DEFAULT_FEATHER,
        *,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> FaceRepairPipelineOutput:
        """Repair pasted faces (see :func:`repair_face`).

        Args:
            image: one photo with a pasted face (RGB uint8 array, PIL image or path) or a list of them.
            mask: the pasted region of each photo ((H, W) bool or float, above 0.5 inside); one mask, or a list with
                one per image.
            margin, feather: as in :func:`repair_face`.
            output_type: ``"pil"`` (default) or ``"np"`` for the ``images`` field.
            return_dict: ``False`` returns ``output.to_tuple()`` (``images`` first).
        """
        check_output_type(output_type)
        photos, batched = as_image_list(image)
        masks = list(mask) if isinstance(mask, (list, tuple)) else [mask]
        masks = broadcast(masks, len(photos), "mask")
        results = []
        for photo, region in zip(photos, masks, strict=True):
            repaired, weight, box = _repair(self.repair, photo, region, margin, feather)
            results.append({"image": repaired, "blend_weight": weight, "box": box})
        images = convert_images([result.pop("image") for result in results], output_type)
        output = FaceRepairPipelineOutput(images=images, **collate(results, batched))
        return output if return_dict else output.to_tuple()
