"""Reader of the AFLW2000-3D benchmark layout (Zhu et al., "Face Alignment Across Large Poses: A 3D Solution",
CVPR 2016), the test set of seed 003's Table 2 (68-point NME by yaw bin) and Table 3 (dense reconstruction).

The layout: one folder of ``imageNNNNN.jpg`` photos, each next to ``imageNNNNN.mat`` (MATLAB v5) holding

- ``pt3d_68``: (3, 68) the 68 iBUG landmarks of the fitted 3D face, projected into the image: rows x, y (pixels,
  y down) and z (same scale; grows towards the camera). The contour points lie on the 3D face, not on its
  silhouette, which is what "3D" face alignment is scored against;
- ``Pose_Para``: (1, 7) pitch, yaw, roll in radians, then the translation (tx, ty, tz) and the scale of the fit;
- further fitting parameters (``Shape_Para``, ``Exp_Para``, ``pt2d``, ``roi``...) that the evaluation does not need.

:func:`read_aflw2000_sample` returns the photo, the landmarks in facehub's pixel convention and the pose in
degrees; :func:`find_aflw2000_samples` lists the ``.mat`` files of a folder that have their photo. The files are
read with ``scipy.io.loadmat`` (a MATLAB array reader; nothing is unpickled).

Pixel convention. facehub puts the origin at the top-left corner of the top-left pixel, so pixel centres sit at
half-integers (:mod:`facehub.modeling.geometry`). 3DDFA's MATLAB fitting code, which wrote ``pt3d_68``, works in
MATLAB's 1-based pixel coordinates (the first pixel's centre is at 1; it flips y as ``height + 1 - y``), so the
default ``pixel_origin="matlab"`` subtracts 0.5 from x and y. ``"zero_based"`` (centres at integers, OpenCV's
convention) adds 0.5, and ``"corner"`` keeps the values. On a 200-pixel face half a pixel is 0.25% NME, so the
choice shows in the second decimal of Table 2.

Pose. ``AFLW2000Sample.pose`` gives the angles as the file stores them, in degrees; Table 2's yaw bins use its
``|yaw|``. Those angles are Euler angles of another composition than facehub's, so they cannot be compared with a
facehub pose angle by angle. 3DDFA's MATLAB ``RotationMatrix(pitch, yaw, roll)`` (re-implemented in face3d as
``angle2matrix_3ddfa``) is ``R = Rx(-pitch) @ Ry(-yaw) @ Rz(-roll)``, i.e. ``(Rz(roll) @ Ry(yaw) @ Rx(pitch)).T``,
applied to a model whose y axis points up: roll turns the head first, in its own frame, then yaw, then pitch.
facehub composes ``Rz(roll) @ Rx(pitch) @ Ry(yaw)`` in a y-down frame: yaw first, roll last, in the image plane.
For small angles the two differ only in the sign of yaw; on the benchmark's faces turned past 60 degrees the stored
pitch and roll differ from facehub's reading of the same rotation by 24 and 17 degrees (medians over the half in
../shared/data), and facehub's reading is the one a Procrustes fit of the stored 3D landmarks agrees with.
:func:`facehub_pose` converts through the rotation matrix; ``AFLW2000Sample.facehub_pose`` is the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
PIXEL_ORIGIN_SHIFT = {"matlab": -0.5, "zero_based": 0.5, "corner": 0.0}


class AFLW2000FormatError(ValueError):
    """A ``.mat`` file that is not an AFLW2000-3D annotation (a field is missing or has the wrong shape)."""


@dataclass
class AFLW2000Sample:
    """One annotated photo.

    Attributes:
        image: (H, W, 3) RGB uint8 photo.
        landmarks68: (68, 3) float64: x, y in facehub pixels (origin at the top-left pixel's corner), z as stored.
        pose: (yaw, pitch, roll) in degrees, as stored in ``Pose_Para`` (3DDFA's signs).
        translation: (3,) the fit's translation; scale: its scale (``Pose_Para[3:6]``, ``Pose_Para[6]``).
        source: the ``.mat`` file the annotation came from.
    """

    image: np.ndarray
    landmarks68: np.ndarray
    pose: tuple[float, float, float]
    translation: np.ndarray
    scale: float
    source: str

    @property
    def yaw(self) -> float:
        return self.pose[0]

    @property
    def facehub_pose(self) -> tuple[float, float, float]:
        """The same head rotation as facehub's (yaw, pitch, roll) in degrees (:func:`facehub_pose`)."""
        yaw, pitch, roll = self.pose
        return facehub_pose(pitch, yaw, roll)


def image_for_annotation(mat_path: Path) -> Path | None:
    """The photo next to an annotation (same stem, any of :data:`IMAGE_SUFFIXES`), or ``None``."""
    for suffix in IMAGE_SUFFIXES:
        for candidate in (mat_path.with_suffix(suffix), mat_path.with_suffix(suffix.upper())):
            if candidate.is_file():
                return candidate
    return None


def read_aflw2000_annotation(mat_path: str | Path, pixel_origin: str = "matlab") -> dict[str, np.ndarray]:
    """``landmarks68`` (68, 3), ``pose_degrees`` (yaw, pitch, roll), ``translation`` (3,), ``scale`` from a ``.mat``."""
    from scipy.io import loadmat

    if pixel_origin not in PIXEL_ORIGIN_SHIFT:
        raise ValueError(f"Got {pixel_origin!r} for `pixel_origin`; expected one of {sorted(PIXEL_ORIGIN_SHIFT)}.")
    mat_path = Path(mat_path)
    try:
        content = loadmat(str(mat_path))
    except (ValueError, OSError, TypeError) as err:
        raise AFLW2000FormatError(f"{mat_path} is not a readable MATLAB .mat file ({err}).") from err
    for key in ("pt3d_68", "Pose_Para"):
        if key not in content:
            raise AFLW2000FormatError(
                f"{mat_path} has no `{key}`: it is not an AFLW2000-3D annotation (found: "
                f"{sorted(k for k in content if not k.startswith('__'))})."
            )
    points = np.asarray(content["pt3d_68"], dtype=np.float64)
    if points.shape == (68, 3):
        points = points.T
    if points.shape != (3, 68):
        raise AFLW2000FormatError(f"{mat_path}: `pt3d_68` has shape {points.shape}; expected (3, 68).")
    pose = np.asarray(content["Pose_Para"], dtype=np.float64).ravel()
    if pose.size != 7:
        raise AFLW2000FormatError(f"{mat_path}: `Pose_Para` has {pose.size} values; expected 7 (pitch, yaw, roll, "
                                  "tx, ty, tz, scale).")
    landmarks = points.T.copy()
    landmarks[:, :2] += PIXEL_ORIGIN_SHIFT[pixel_origin]
    pitch, yaw, roll = np.rad2deg(pose[:3])
    return {"landmarks68": landmarks, "pose_degrees": np.array([yaw, pitch, roll]), "translation": pose[3:6].copy(),
            "scale": np.float64(pose[6])}


def facehub_pose(pitch: float, yaw: float, roll: float) -> tuple[float, float, float]:
    """facehub's (yaw, pitch, roll) in degrees of the rotation that ``Pose_Para``'s (pitch, yaw, roll) in degrees
    describe (see the module docstring).

    The stored rotation, ``(Rz(roll) @ Ry(yaw) @ Rx(pitch)).T`` in a y-up frame (each factor facehub's one-axis
    :func:`~facehub.modeling.geometry.rotations.rotation_matrix`, composed in 3DDFA's order), is carried into
    facehub's y-down frame by conjugation with ``diag(1, -1, 1)`` and read back with
    :func:`~facehub.modeling.geometry.rotations.euler_from_rotation_matrix`.
    """
    from facehub.modeling.geometry.rotations import euler_from_rotation_matrix, rotation_matrix

    stored = (rotation_matrix(0.0, 0.0, roll) @ rotation_matrix(yaw, 0.0, 0.0) @ rotation_matrix(0.0, pitch, 0.0)).T
    flip_y = np.diag([1.0, -1.0, 1.0])
    return euler_from_rotation_matrix(flip_y @ stored @ flip_y)


def read_aflw2000_sample(path: str | Path, pixel_origin: str = "matlab") -> AFLW2000Sample:
    """Read one AFLW2000-3D sample from its ``.mat`` file or its photo (the other is found by the shared stem)."""
    from facehub.modeling.faces.image_io import load_image

    path = Path(path)
    mat_path = path if path.suffix.lower() == ".mat" else path.with_suffix(".mat")
    if not mat_path.is_file():
        raise FileNotFoundError(f"{mat_path} does not exist: an AFLW2000-3D sample is a photo and a .mat of the same "
                                "name.")
    image_path = path if path.suffix.lower() in IMAGE_SUFFIXES else image_for_annotation(mat_path)
    if image_path is None or not image_path.is_file():
        raise FileNotFoundError(f"No photo ({', '.join(IMAGE_SUFFIXES)}) next to {mat_path}.")
    annotation = read_aflw2000_annotation(mat_path, pixel_origin)
    yaw, pitch, roll = (float(a) for a in annotation["pose_degrees"])
    return AFLW2000Sample(
        image=load_image(str(image_path)),
        landmarks68=annotation["landmarks68"],
        pose=(yaw, pitch, roll),
        translation=annotation["translation"],
        scale=float(annotation["scale"]),
        source=str(mat_path),
    )


def find_aflw2000_samples(folder: str | Path) -> list[Path]:
    """The ``.mat`` files directly in ``folder`` that have a photo of the same name, sorted by name."""
    folder = Path(folder)
    return [path for path in sorted(folder.glob("*.mat")) if image_for_annotation(path) is not None]


def is_aflw2000_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds at least one ``.mat`` annotation with its photo."""
    folder = Path(folder)
    return folder.is_dir() and any(image_for_annotation(path) is not None for path in folder.glob("*.mat"))
