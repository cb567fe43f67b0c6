"""Aligned face crops: a 2D similarity taking five landmarks onto a fixed template, and its inverse.

The template is the 5-point layout of ArcFace's 112x112 crops (Deng et al., "ArcFace", CVPR 2019; insightface's
``arcface_dst``: the two eye centres, the nose tip and the two mouth corners), scaled to the requested size. The
similarity is the least-squares (Umeyama) fit of the face's points onto it, so the crop keeps the face's aspect.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facehub.modeling.geometry.procrustes import umeyama

#: ArcFace template on a 112x112 crop: subject's right eye, left eye, nose tip, right / left mouth corner.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)


def five_points_from_landmarks68(landmarks68: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG landmarks -> (5, 2) eye centres, nose tip and mouth corners, in the template's order."""
    points = np.asarray(landmarks68, dtype=np.float64)[:, :2]
    return np.stack([points[36:42].mean(axis=0), points[42:48].mean(axis=0), points[30], points[48], points[54]])


def template_points(size: int, padding: float = 0.0) -> np.ndarray:
    """The ArcFace template on a ``size`` x ``size`` crop; ``padding`` > 0 shrinks it about the centre to show
    more context (0.25 adds a quarter of the face on each side)."""
    centre = np.array([56.0, 56.0])
    return ((ARCFACE_TEMPLATE_112 - centre) / (1.0 + 2.0 * padding) + centre) * (size / 112.0)


@dataclass
class AlignedFace:
    """An aligned crop.

    Attributes:
        image: (size, size, 3) RGB uint8 crop.
        matrix: (2, 3) affine from image pixels to crop pixels (``cv2.warpAffine`` convention).
        inverse: (2, 3) affine from crop pixels back to image pixels.
        landmarks68: (68, 2) the face's landmarks in crop pixels.
    """

    image: np.ndarray
    matrix: np.ndarray
    inverse: np.ndarray
    landmarks68: np.ndarray


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (N, 2) points."""
    points = np.asarray(points, dtype=np.float64)[:, :2]
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine."""
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, -(linear @ matrix[:, 2])[:, None]])


def warp_affine(image: np.ndarray, matrix: np.ndarray, size: int, border_value: int = 0) -> np.ndarray:
    """(size, size, C) crop of ``image`` under the (2, 3) affine ``matrix`` (image -> crop, house coordinates).

    The origin is the top-left corner of the top-left pixel, so pixel centres sit at half-integers, in the image and
    in the crop alike. Where the affine shrinks by more than 2x, the image is first reduced by an integer factor with
    area averaging (after edge-padding to whole multiples of the factor, so reduced pixel i covers exactly original
    pixels factor * i ... factor * (i + 1) - 1), so the crop does not alias. Pixels outside the image get
    ``border_value``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    source, linear, offset = np.ascontiguousarray(image), matrix[:, :2], matrix[:, 2]
    zoom = float(np.sqrt(abs(np.linalg.det(linear))))
    if zoom < 0.5:
        factor = int(np.floor(1.0 / zoom))
        height, width = source.shape[:2]
        padded = cv2.copyMakeBorder(source, 0, (-height) % factor, 0, (-width) % factor, cv2.BORDER_REPLICATE)
        source = cv2.resize(padded, (padded.shape[1] // factor, padded.shape[0] // factor),
                            interpolation=cv2.INTER_AREA)
        linear = linear * factor  # corner-origin coordinates of the reduced image are the original's / factor
    # OpenCV puts pixel centres at integers: shift by half a pixel on both sides.
    warp = np.hstack([linear, (offset + linear @ np.array([0.5, 0.5]) - 0.5)[:, None]])
    return cv2.warpAffine(
        source,
        warp,
        (int(size), int(size)),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(border_value,) * 3,
    )


def align_face(
    image: np.ndarray, landmarks68: np.ndarray, size: int = 128, padding: float = 0.0, border_value: int = 0
) -> AlignedFace:
    """Similarity-aligned ``size`` x ``size`` crop of the face with the given landmarks.

    Coordinates follow the house convention (:mod:`facehub.modeling.geometry`): the origin is the top-left corner of
    the top-left pixel, so pixel centres sit at half-integers, in the image and in the crop alike. Where the crop
    shrinks the face by more than 2x, the image is first reduced by an integer factor with area averaging, so the
    crop does not alias.
    """
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}.")
    landmarks68 = np.asarray(landmarks68, dtype=np.float64)[:, :2]
    similarity = umeyama(five_points_from_landmarks68(landmarks68), template_points(size, padding))
    matrix = np.hstack([similarity.scale * similarity.rotation, similarity.translation[:, None]])
    crop = warp_affine(image, matrix, size, border_value)
    return AlignedFace(crop, matrix, invert_affine(matrix), apply_affine(matrix, landmarks68))


def aligned_crop(image: np.ndarray, landmarks68: np.ndarray, size: int) -> AlignedFace:
    """The FaceAnalyzer's aligned crop of a face (its template, no padding) at ``size`` px, the crop E reads in
    training and here: aligned at twice the size, then area-averaged down, so a small crop does not alias. The
    returned ``matrix`` / ``inverse`` map the photo to this ``size`` crop and back."""
    large = align_face(image, landmarks68, size=2 * size)
    crop = cv2.resize(large.image, (size, size), interpolation=cv2.INTER_AREA)
    matrix = large.matrix / 2.0  # the crop's pixel corners are those of the large crop halved
    return AlignedFace(crop, matrix, invert_affine(matrix), apply_affine(matrix, landmarks68))
