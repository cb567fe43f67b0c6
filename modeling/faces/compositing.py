"""Putting a rendered or warped face into a photo: face masks, colour transfer and blending.

Generic steps any face-replacement method needs once it has produced a face on the target's geometry (DepthNet's
swap pastes "the rotated face ... onto the background of the target image", Moniz, Beckham et al. 2018, section
3.3, with the face region "determined by the convex hull spanned by the keypoints"):

- :func:`hull_mask`: the convex hull of keypoints as a mask, optionally shrunk and feathered (a soft edge);
- :func:`transfer_color`: Reinhard et al.'s colour transfer ("Color Transfer between Images", IEEE CG&A 2001):
  match the per-channel mean and standard deviation of the face to the target's, in CIE L*a*b* (decorrelated
  enough that channels can be matched independently), measured inside a mask;
- :func:`seamless_blend`: Poisson image editing (Perez et al., SIGGRAPH 2003) via ``cv2.seamlessClone``: the
  pasted region keeps its own gradients and takes its boundary values from the target, so shading and skin tone
  continue across the seam;
- :func:`alpha_blend`: a plain weighted paste with a (feathered) mask;
- :func:`similarity_swap`: the 2D baseline of face swap (a similarity warp of the source onto the target's
  landmarks, then the steps above), the row every swap method is compared with in ``facehub eval swap``;
- :func:`paste_aligned_crop`: a face generated in the aligned crop
  (:func:`facehub.modeling.faces.alignment.aligned_crop`) pasted back through the crop's inverse with a feathered
  ellipse (the pose CVAE-GAN's and DiscoFaceGAN's rotations).

Images are (H, W, 3) RGB uint8 arrays in and out; masks are (H, W) arrays, bool or float in [0, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from facehub.modeling.faces.alignment import AlignedFace

#: A blurred step rises from 0.05 to 0.95 over +-1.645 sigma.
FEATHER_WIDTH_IN_SIGMAS = 3.29


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"`{name}` must be an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}.")
    return image


def _check_mask(mask: np.ndarray, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"`{name}` must be {shape} like the image, got {mask.shape}.")
    return mask.astype(np.float32)


#: Face-mask inset and feather width as fractions of the face size (:func:`face_size`): the hull is shrunk by 2% and
#: its edge softened over 4% about that, so the soft edge lies 0-4% inside the hull and nothing from beyond the face's
#: outline (hair, background) is pasted; colour transfer and Poisson blending use the mask's half-way line, 2% inside
#: the hull. Every swap's face mask uses them.
FACE_MASK_INSET = 0.02
FACE_MASK_FEATHER = 0.04


def face_size(keypoints: np.ndarray) -> float:
    """Square root of the area of the keypoints' bounding box, pixels."""
    width, height = np.ptp(np.asarray(keypoints, dtype=np.float64)[:, :2], axis=0)
    return float(np.sqrt(width * height))


def hull_mask(points: np.ndarray, shape: tuple[int, int], inset: float = 0.0, feather: float = 0.0) -> np.ndarray:
    """Mask of the convex hull of ``points`` (N, 2 pixels) on an image of ``shape`` (H, W); float32 in [0, 1].

    Pixels whose centre lies inside the hull are 1 (OpenCV's polygon fill: pixels cut by the edge may be included,
    so the hard mask can be up to one pixel larger all round).

    Args:
        inset: shrink the hull by this many pixels (erosion) first; with ``inset >= feather / 2`` the soft edge stays
            inside the hull.
        feather: width in pixels over which the edge goes from 0.05 to 0.95, centred on the (inset) hull's edge:
            a Gaussian blur with sigma ``feather / 3.3``; 0 keeps the edge hard.
    """
    height, width = shape
    # OpenCV puts pixel centres at integers, the house convention at half-integers; 4 fractional bits (shift=4).
    hull = cv2.convexHull(np.round((np.asarray(points, dtype=np.float64)[:, :2] - 0.5) * 16).astype(np.int32))
    radius = int(round(inset)) if inset >= 0.5 else 0
    sigma = feather / FEATHER_WIDTH_IN_SIGMAS
    # Only the hull's box, grown past the reach of the erosion and of the blur's kernel (4 sigma for float images),
    # can be non-zero: the steps run there, which gives the same values as over the whole image (zeros beyond the box
    # either way) at the cost of the face, not of the photo.
    reach = radius + (int(np.ceil(4 * sigma)) + 1 if feather > 0 else 0) + 2
    corners = hull.reshape(-1, 2) // 16  # whole pixels
    low, high = corners.min(axis=0) - reach, corners.max(axis=0) + reach + 1
    x0, y0 = max(int(low[0]), 0), max(int(low[1]), 0)
    x1, y1 = min(int(high[0]), width), min(int(high[1]), height)
    soft = np.zeros((height, width), dtype=np.float32)
    if x1 <= x0 or y1 <= y0:  # the hull lies outside the image
        return soft
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull - np.array([16 * x0, 16 * y0], dtype=np.int32), 255, lineType=cv2.LINE_8, shift=4)
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.erode(mask, kernel)
    box = mask.astype(np.float32) / 255.0
    if feather > 0:  # the blur's float sums may overshoot 1 by an ulp: clipped, so the mask stays in [0, 1]
        box = np.clip(cv2.GaussianBlur(box, (0, 0), sigmaX=sigma), 0.0, 1.0)
    soft[y0:y1, x0:x1] = box
    return soft


def transfer_color(source: np.ndarray, target: np.ndarray, mask: np.ndarray, max_gain: float = 2.0) -> np.ndarray:
    """Reinhard colour transfer: recolour ``source`` so that, inside ``mask``, its L*a*b* mean and standard
    deviation per channel match ``target``'s inside the same mask.

    Args:
        source, target: (H, W, 3) RGB uint8 of the same size (e.g. the warped face and the target photo).
        mask: (H, W) weights (bool or [0, 1]) of the pixels whose statistics are compared.
        max_gain: the per-channel std ratio is clipped to ``[1 / max_gain, max_gain]`` so a flat region (a tiny or
            over-exposed face) cannot blow the contrast up.

    Returns:
        The whole recoloured source, RGB uint8 (composite it with the mask yourself).
    """
    source = _check_image(source, "source")
    target = _check_image(target, "target")
    if source.shape != target.shape:
        raise ValueError(f"source and target must have the same size, got {source.shape} and {target.shape}.")
    weights = _check_mask(mask, source.shape[:2])
    if weights.sum() < 1.0:
        return source.copy()
    source_lab = cv2.cvtColor(source.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    target_lab = cv2.cvtColor(target.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    source_mean, source_std = _weighted_mean_std(source_lab, weights)
    target_mean, target_std = _weighted_mean_std(target_lab, weights)
    gain = np.clip(target_std / np.maximum(source_std, 1e-3), 1.0 / max_gain, max_gain)
    recoloured = (source_lab - source_mean) * gain + target_mean
    rgb = cv2.cvtColor(recoloured.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _weighted_mean_std(image: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = weights[..., None] / weights.sum()
    mean = (image * w).sum(axis=(0, 1))
    std = np.sqrt(((image - mean) ** 2 * w).sum(axis=(0, 1)))
    return mean, std


def alpha_blend(foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``alpha * foreground + (1 - alpha) * background`` per pixel, RGB uint8."""
    foreground = _check_image(foreground, "foreground")
    background = _check_image(background, "background")
    weights = np.clip(_check_mask(alpha, background.shape[:2], "alpha"), 0.0, 1.0)[..., None]
    mixed = weights * foreground.astype(np.float32) + (1.0 - weights) * background.astype(np.float32)
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def seamless_blend(
    foreground: np.ndarray, background: np.ndarray, mask: np.ndarray, mode: int = cv2.NORMAL_CLONE
) -> np.ndarray:
    """Poisson-blend the masked part of ``foreground`` into ``background`` in place (no shift); RGB uint8.

    ``foreground`` and ``background`` have the same size and the region stays where it is. ``mask`` is binarised
    at 0.5 and only pixels inside it change (``cv2.seamlessClone`` also nudges a few pixels next to the region by a
    level or two; those keep the background's values). It refuses a region touching the image border, so both
    images are padded by reflection first and the result is cropped back.

    Args:
        mode: ``cv2.NORMAL_CLONE`` (the foreground's gradients) or ``cv2.MIXED_CLONE`` (the stronger of the two).
    """
    foreground = _check_image(foreground, "foreground")
    background = _check_image(background, "background")
    if foreground.shape != background.shape:
        raise ValueError(f"foreground and background differ in size: {foreground.shape} vs {background.shape}.")
    binary = (_check_mask(mask, background.shape[:2]) > 0.5).astype(np.uint8) * 255
    if not binary.any():
        return background.copy()
    pad = 2
    fg = cv2.copyMakeBorder(foreground, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    bg = cv2.copyMakeBorder(background, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    region = cv2.copyMakeBorder(binary, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    x, y, w, h = cv2.boundingRect(region)
    centre = (x + w // 2, y + h // 2)  # seamlessClone puts the box's top-left at centre - size // 2: no shift
    # OpenCV's Poisson solver works on BGR; the channels are independent, so RGB in gives RGB out.
    blended = cv2.seamlessClone(fg, bg, region, centre, mode)[pad:-pad, pad:-pad]
    return np.where(binary[..., None] > 0, blended, background)


def similarity_swap(source: np.ndarray, source_landmarks: np.ndarray, target: np.ndarray,
                    target_landmarks: np.ndarray, color_transfer: bool = True) -> np.ndarray:
    """The 2D baseline of face swap: the source photo warped onto the target by the least-squares 2D similarity
    (rotation, uniform scale, shift; Umeyama) of its 68 landmarks onto the target's, pasted inside the hull of the
    target's landmarks (2% inset, as the DepthNet swap's mask), colour-matched and Poisson-blended. No depth, no
    pose change: a turned source stays turned. Returns the target-sized RGB uint8 result."""
    from facehub.modeling.geometry.procrustes import umeyama

    source, target = _check_image(source, "source"), _check_image(target, "target")
    src = np.asarray(source_landmarks, np.float64)[:, :2]
    dst = np.asarray(target_landmarks, np.float64)[:, :2]
    transform = umeyama(src, dst)
    matrix = np.hstack([transform.scale * transform.rotation, transform.translation[:, None]])
    # House pixel centres sit at half-integers, OpenCV's at integers: the same shift on both sides.
    matrix[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5
    height, width = target.shape[:2]
    warped = cv2.warpAffine(source, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    size = float(np.sqrt(np.prod(np.ptp(dst, axis=0))))
    inside = hull_mask(dst, (height, width), inset=0.02 * size) > 0.5
    face = transfer_color(warped, target, inside) if color_transfer else warped
    return seamless_blend(face, target, inside)


# ---- generated aligned crops back into the photo ------------------------------------------------------------

#: The pasted region in crop units: an ellipse centred at (0.5, 0.55) with radii (0.44, 0.48), feathered over 0.1.
PASTE_CENTRE = (0.5, 0.55)
PASTE_RADII = (0.44, 0.48)
PASTE_FEATHER = 0.1


def paste_mask(size: int) -> np.ndarray:
    """(size, size) float32 alpha of the pasted region in the crop (see :data:`PASTE_CENTRE`)."""
    ys, xs = (np.mgrid[0:size, 0:size] + 0.5) / size
    radius = np.sqrt(((xs - PASTE_CENTRE[0]) / PASTE_RADII[0]) ** 2 + ((ys - PASTE_CENTRE[1]) / PASTE_RADII[1]) ** 2)
    inner = 1.0 - PASTE_FEATHER / min(PASTE_RADII)
    return np.clip((1.0 - radius) / (1.0 - inner), 0.0, 1.0).astype(np.float32)


def paste_aligned_crop(photo: np.ndarray, crop: np.ndarray, aligned: AlignedFace) -> np.ndarray:
    """A generated aligned ``crop`` (RGB uint8, any size) back in ``photo`` through ``aligned``'s inverse:
    colour-matched to the photo under the :func:`paste_mask` ellipse and blended with its feathered alpha.

    Only the box the crop covers in the photo is touched: the picture is that of the same steps over the whole photo
    (to within a level where OpenCV's fixed-point warp rounds the other way), at the cost of the face, not the photo."""
    side = crop.shape[0]
    corners = np.array([[0.0, 0.0], [side, 0.0], [0.0, side], [side, side]])
    footprint = corners @ np.asarray(aligned.inverse)[:, :2].T + np.asarray(aligned.inverse)[:, 2]
    height, width = photo.shape[:2]
    x0, y0 = (max(int(np.floor(v)) - 2, 0) for v in footprint.min(axis=0))
    x1, y1 = min(int(np.ceil(footprint[:, 0].max())) + 2, width), min(int(np.ceil(footprint[:, 1].max())) + 2, height)
    if x1 <= x0 or y1 <= y0:  # the crop lies outside the photo
        return photo.copy()
    inverse = np.asarray(aligned.inverse, np.float64) - [[0.0, 0.0, x0], [0.0, 0.0, y0]]
    box = photo[y0:y1, x0:x1]
    alpha = crop_to_photo(paste_mask(side), inverse, box.shape[:2])
    pasted = crop_to_photo(crop, inverse, box.shape[:2])
    out = photo.copy()
    out[y0:y1, x0:x1] = alpha_blend(transfer_color(pasted, box, alpha > 0.5), box, alpha)
    return out


def crop_to_photo(crop: np.ndarray, inverse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Warp a crop (H_c, W_c[, C]) into photo pixels of ``shape`` (H, W) with the crop -> photo affine ``inverse``
    (house coordinates: pixel centres at half-integers); outside the crop is 0."""
    warp = np.hstack([inverse[:, :2], (inverse[:, 2] + inverse[:, :2] @ np.array([0.5, 0.5]) - 0.5)[:, None]])
    return cv2.warpAffine(crop, warp, (int(shape[1]), int(shape[0])), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
