"""The face crop PRN-Dense reads, and the conversion between image positions and the network's crop units.

One definition for training data and inference (the trainer must crop with these functions too):

- **The crop** (:func:`face_crop_transform`) is PRNet's (Feng et al., ECCV 2018, ``api.process`` with landmarks):
  an axis-aligned square centred on the box of the 68 landmarks, of side ``1.6 x`` the mean of the box's width and
  height, scaled to ``crop_size`` pixels. No rotation: the network sees the face's roll and predicts it, as PRNet
  does; a crop that depends only on the landmark box stays stable at large yaw, where a roll estimated from
  landmarks is not. Seed 003 (section 3.1.1) trains on crops shifted and rotated at random: ``offset``, ``scale``
  and ``rotation`` apply such a perturbation around the same crop (PRNet: offsets up to 0.1 of the box size,
  scale factors 0.9-1.1).
- **Large rolls** (:func:`upright_crop_transform`): the network was trained on crops whose roll stays within the
  photos' own and a +-15 degree jitter, so a face rolled by 30-90 degrees gives garbage. At inference a face whose
  roll (from :class:`~facehub.modeling.faces.FaceAnalyzer`'s head pose, which is stable at large rolls) exceeds
  :data:`UPRIGHT_ROLL_THRESHOLD` is cropped upright instead: the same PRNet square, measured on the landmarks turned
  upright about their box centre, with the turn composed into the affine. Everything mapped back through the affine's
  inverse (positions, the mesh, the pose) is then in the photo's own frame, roll included.
- **The warp** (:func:`crop_face_image`): ``cv2.warpAffine`` with facehub's pixel convention (origin at the top-left
  corner of the top-left pixel, so pixel centres at half-integers, in the image and in the crop) and area-averaged
  pre-reduction when the crop shrinks the face by more than 2x, as :func:`facehub.modeling.faces.align_face` does.
- **Crop units** (:func:`image_positions_to_crop_units`, :func:`crop_units_to_image_positions`): the network's output
  is the position map in crop pixels divided by the crop size, ``(x / S, y / S, z / S)``. ``x, y`` go through the
  (2, 3) image-to-crop affine; ``z`` (towards the camera, same units as x and y, the dataset's origin) is multiplied
  by the affine's scale ``sqrt(|det A|)``, as ``facehub prepare`` scales z into its crops.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from facehub.modeling.faces.alignment import invert_affine, warp_affine
from facehub.modeling.faces.profile_detection import FaceBox

#: PRNet's crop side as a multiple of the 68-landmark box's mean side (``old_size * 1.6`` in its ``api.process``).
PRNET_CROP_SCALE = 1.6

#: Faces rolled by more than this many degrees are cropped upright (:func:`upright_crop_transform`). Training crops
#: are jittered by up to 15 degrees on top of the photos' own roll, so up to here the network has seen such faces.
UPRIGHT_ROLL_THRESHOLD = 20.0


class PosedLandmarks(NamedTuple):
    """68 landmarks (photo pixels) and a head pose (yaw, pitch, roll degrees) of a first reading: what a second crop is
    cut around, like a Face, and turned upright by its roll (:func:`upright_crop_transform`)."""

    landmarks68: np.ndarray
    pose: tuple[float, float, float]


def _landmarks_of(face_or_landmarks68) -> np.ndarray:
    """The points whose box a crop is cut around: a Face's or given 68 landmarks, or the two corners of the landmark
    box a :class:`~facehub.modeling.faces.profile_detection.FaceBox` implies."""
    if isinstance(face_or_landmarks68, FaceBox):
        return face_or_landmarks68.landmark_box().reshape(2, 2)
    points = getattr(face_or_landmarks68, "landmarks68", face_or_landmarks68)
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] != 68 or points.shape[1] < 2:
        raise ValueError(
            f"Expected a Face or (68, 2) / (68, 3) iBUG landmarks, got an array of shape {points.shape}."
        )
    points = points[:, :2]
    if not np.isfinite(points).all():
        raise ValueError("The landmarks contain NaN or infinite coordinates.")
    return points


def face_crop_transform(
    face_or_landmarks68,
    crop_size: int,
    *,
    scale: float = PRNET_CROP_SCALE,
    offset: tuple[float, float] = (0.0, 0.0),
    rotation: float = 0.0,
) -> np.ndarray:
    """(2, 3) affine taking image pixels to the pixels of the ``crop_size`` x ``crop_size`` face crop.

    Args:
        face_or_landmarks68: a :class:`~facehub.modeling.faces.Face` or its (68, 2) / (68, 3) landmarks, in the
            image's pixels (iBUG order), or a :class:`~facehub.modeling.faces.profile_detection.FaceBox` (its implied
            landmark box).
        crop_size: S, the crop's side in pixels (the model's ``sample_size``).
        scale: crop side / mean side of the landmarks' box (PRNet: 1.6).
        offset: shift of the crop centre, in units of the box's mean side (augmentation; 0 at inference).
        rotation: degrees the face turns clockwise on screen in the crop (augmentation; 0 at inference).

    Returns:
        ``A`` with ``crop_xy = A[:, :2] @ image_xy + A[:, 2]`` (``cv2.warpAffine``'s matrix for corner-origin
        pixels; use :func:`crop_face_image` to warp).
    """
    points = _landmarks_of(face_or_landmarks68)
    low, high = points.min(axis=0), points.max(axis=0)
    box_size = float((high - low).sum() / 2.0)
    if not box_size > 0 or scale <= 0 or crop_size <= 0:
        raise ValueError(
            f"Cannot crop: the landmarks' box has mean side {box_size:g} px, scale={scale:g}, crop_size={crop_size}; "
            "all must be positive."
        )
    centre = (low + high) / 2.0 + box_size * np.asarray(offset, dtype=np.float64)
    zoom = crop_size / (scale * box_size)
    angle = math.radians(rotation)
    linear = zoom * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    translation = np.array([crop_size / 2.0, crop_size / 2.0]) - linear @ centre
    return np.hstack([linear, translation[:, None]])


def upright_crop_transform(
    face_or_landmarks68, crop_size: int, roll: float | None = None, *, threshold: float = UPRIGHT_ROLL_THRESHOLD,
    scale: float = PRNET_CROP_SCALE,
) -> np.ndarray:
    """The inference crop: :func:`face_crop_transform`, turned upright when the face is rolled by more than
    ``threshold`` degrees.

    Args:
        face_or_landmarks68: a :class:`~facehub.modeling.faces.Face` or its (68, 2) / (68, 3) landmarks.
        crop_size: the crop's side in pixels.
        roll: the face's roll in degrees (house convention: > 0 tilts clockwise on screen); ``None`` takes it from
            ``face.pose`` for a Face and means 0 (no turn) for bare landmarks.
        threshold: rolls up to this many degrees are left to the network (the crop is PRNet's unrotated square).
        scale: crop side / mean side of the landmarks' box (:func:`face_crop_transform`).

    Returns:
        (2, 3) image -> crop affine. For a large roll ``r``, the landmarks are turned by ``-r`` about their box centre,
        PRNet's square is measured on them, and the turn is composed in, so the face is upright in the crop.
    """
    if roll is None:
        pose = getattr(face_or_landmarks68, "pose", None)
        roll = float(pose[2]) if pose is not None else 0.0
    roll = float(roll)
    if not math.isfinite(roll) or abs(roll) <= threshold:
        return face_crop_transform(face_or_landmarks68, crop_size, scale=scale)
    points = _landmarks_of(face_or_landmarks68)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2.0
    angle = math.radians(-roll)  # clockwise on screen by -roll undoes the tilt
    turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    upright = (points - centre) @ turn.T + centre
    crop = face_crop_transform(upright, crop_size, scale=scale)
    linear = crop[:, :2] @ turn
    translation = crop[:, :2] @ (centre - turn @ centre) + crop[:, 2]
    return np.hstack([linear, translation[:, None]])


#: The largest crop shift accepted (:func:`shifted_crop_offsets`; a quarter of the crop's side): beyond it a shifted
#: crop cuts the face off.
MAX_CROP_SHIFT = 0.25


def check_crop_shift(crop_shift, name: str = "crop_shift") -> float:
    """``crop_shift`` as a float, or a ValueError naming the setting (``name``) and saying what is accepted."""
    if isinstance(crop_shift, bool | str) or not 0.0 <= float(crop_shift) <= MAX_CROP_SHIFT:
        raise ValueError(f"Got {crop_shift!r} for `{name}`; use a fraction of the crop's side in "
                         f"[0, {MAX_CROP_SHIFT}] (0 reads the centred crop alone).")
    return float(crop_shift)


def shifted_crop_offsets(crop_shift: float) -> list[tuple[float, float]]:
    """(dx, dy) offsets, fractions of the crop's side, of the crops a face is read from: the centred one, then the
    four shifted along the diagonals by ``crop_shift`` (none when it is 0)."""
    d = float(crop_shift) / math.sqrt(2.0)
    return [(0.0, 0.0)] if d == 0.0 else [(0.0, 0.0), (d, d), (d, -d), (-d, d), (-d, -d)]


def shift_crop(image_to_crop: np.ndarray, offset: tuple[float, float], size: int) -> np.ndarray:
    """(2, 3) the image -> crop affine ``image_to_crop`` with the crop moved by ``offset`` (dx, dy fractions of its
    side ``size``): the photo's content moves by ``-offset`` within it."""
    matrix = np.array(image_to_crop, dtype=np.float64)
    matrix[:, 2] -= np.asarray(offset, np.float64) * size
    return matrix


def affine_scale(image_to_crop: np.ndarray) -> float:
    """The similarity's scale ``sqrt(|det A|)`` (crop pixels per image pixel), which also scales z."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(image_to_crop, dtype=np.float64)[:, :2]))))


def crop_face_image(image: np.ndarray, image_to_crop: np.ndarray, crop_size: int, border_value: int = 0) -> np.ndarray:
    """(crop_size, crop_size, 3) uint8 crop of an (H, W, 3) RGB uint8 ``image`` under the (2, 3) affine.

    Pixels outside the photo get ``border_value`` (PRNet pads with black too).
    """
    return warp_affine(image, image_to_crop, crop_size, border_value)


def image_positions_to_crop_units(positions: np.ndarray, image_to_crop: np.ndarray, crop_size: int) -> np.ndarray:
    """(..., 3) positions in image pixels (x, y, z towards the camera) -> the network's crop units
    ``(x_crop / S, y_crop / S, z * scale / S)``; e.g. a dataset's UV position map -> the training target."""
    positions = np.asarray(positions, dtype=np.float64)
    matrix = np.asarray(image_to_crop, dtype=np.float64)
    out = np.empty(positions.shape, dtype=np.float64)
    out[..., :2] = positions[..., :2] @ matrix[:, :2].T + matrix[:, 2]
    out[..., 2] = positions[..., 2] * affine_scale(matrix)
    return out / float(crop_size)


def crop_units_to_image_positions(crop_units: np.ndarray, image_to_crop: np.ndarray, crop_size: int) -> np.ndarray:
    """Inverse of :func:`image_positions_to_crop_units`: (..., 3) network output -> image pixels (x, y, z)."""
    crop = np.asarray(crop_units, dtype=np.float64) * float(crop_size)
    matrix = np.asarray(image_to_crop, dtype=np.float64)
    inverse = invert_affine(matrix)
    out = np.empty(crop.shape, dtype=np.float64)
    out[..., :2] = crop[..., :2] @ inverse[:, :2].T + inverse[:, 2]
    out[..., 2] = crop[..., 2] / affine_scale(matrix)
    return out
