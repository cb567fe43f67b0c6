"""What every facehub pipeline shares at its boundary: image inputs, image outputs and poses, as in diffusers.

- **Inputs.** Every pipeline ``__call__`` takes one image or a list of images. An image is an RGB uint8 array, a
  PIL image, a path or encoded bytes (:func:`facehub.modeling.faces.load_image` reads it); a list (or tuple, or an
  (N, H, W, 3) array) is a batch. :func:`as_image_list` does that once for every pipeline.
- **Outputs.** Pipelines return :class:`~diffusers.utils.BaseOutput` dataclasses. Image outputs carry ``.images``,
  always a list with one entry per input image: PIL images by default, (H, W, 3) RGB uint8 arrays with
  ``output_type="np"`` (a list rather than one stacked array, since photos of a batch may differ in size).
  :func:`convert_images` does the conversion. Other per-image fields hold one value for a single input image and a
  list of values, one per image, for a list input (:func:`collate`).
- **Poses.** :class:`Pose` is a (yaw, pitch, roll) named tuple in degrees, in the house convention of
  :mod:`facehub.modeling.geometry.rotations` (yaw > 0 turns the face towards the image's right, pitch > 0 looks up,
  roll > 0 tilts clockwise). Every rotation method reports ``requested_pose`` and ``achieved_pose`` with it
  (:class:`RotationPipelineOutput`), and raises :class:`UnreachablePoseError` for a pose it cannot reach.
- **Face selection.** :func:`select_face` picks the face a pipeline works on (largest first) and raises the
  :class:`FaceSelectionError` family, which names the photo, when there is none or it is too small.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from diffusers.utils import BaseOutput
from PIL import Image

from facehub.modeling.faces.image_io import FaceHubImageError, load_image
from facehub.modeling.geometry.landmark_metrics import eye_centre_distance

if TYPE_CHECKING:
    from facehub.modeling.faces.analyzer import Face

#: The values of ``output_type`` every image pipeline accepts.
OUTPUT_TYPES = ("pil", "np")

#: Faces whose eye centres are closer than this (pixels) are refused. Below ~20 px the landmarks' 1-2 px jitter is
#: 5-10% of the face's scale, which the 3D affine and the hull mask carry straight into the output, and the identity
#: descriptor's 150 px chip (eyes ~50 px apart) would be upsampled about 2.5x. MediaPipe still finds such faces (down to ~6 px).
MIN_INTEROCULAR_PIXELS = 20.0


class FaceSelectionError(FaceHubImageError):
    """The photo has no usable face for this pipeline (none found, too small, or no face at ``face_index``)."""


class NoFaceFoundError(FaceSelectionError):
    """No face was detected in the photo."""


class FaceTooSmallError(FaceSelectionError):
    """The selected face is smaller than the pipeline's minimum (eye centres closer than ``min_interocular``)."""


def select_face(
    faces: list, photo: str, face_index: int = 0, min_interocular: float = MIN_INTEROCULAR_PIXELS
):
    """The ``face_index``-th face (largest first) of a photo, checked for size.

    Args:
        faces: what :class:`~facehub.modeling.faces.FaceAnalyzer` returned for the photo.
        photo: how to name the photo in messages ("source photo", "target photo", ...).

    Raises:
        NoFaceFoundError, FaceSelectionError (``face_index`` out of range), FaceTooSmallError.
    """
    if not faces:
        raise NoFaceFoundError(
            f"No face was found in the {photo}. Use a photo where one face is clearly visible (roughly frontal to "
            "profile, not covered, at least about 50 pixels wide)."
        )
    if not 0 <= face_index < len(faces):
        raise FaceSelectionError(
            f"The {photo} has {len(faces)} face(s) (numbered 0 to {len(faces) - 1}, largest first); "
            f"face_index={face_index} does not exist."
        )
    face = faces[face_index]
    distance = float(eye_centre_distance(face.landmarks68))
    if distance < min_interocular:
        raise FaceTooSmallError(
            f"The face in the {photo} is too small: its eyes are {distance:.1f} pixels apart, the minimum is "
            f"{min_interocular:g}. Use a larger or closer-cropped photo (or lower min_interocular)."
        )
    return face


class SourceTarget(NamedTuple):
    """A pair of values for the source and the target photo of a swap."""

    source: object
    target: object


class UnreachablePoseError(ValueError):
    """The requested pose is beyond what the rotation method can show from one photo (the message has the numbers).

    Attributes:
        reachable_pose: the furthest :class:`Pose` on the way from the face's pose to the requested one that the
            method was found to reach (DepthNet: the furthest warp that does not fold); ``None`` where it did not
            search.
    """

    def __init__(self, message: str, reachable_pose: Pose | None = None):
        super().__init__(message)
        self.reachable_pose = reachable_pose


class Pose(NamedTuple):
    """A head pose in degrees, house convention (:mod:`facehub.modeling.geometry.rotations`).

    Attributes:
        yaw: turn about the vertical axis; > 0 turns the face towards the image's right.
        pitch: turn about the horizontal axis; > 0 looks up.
        roll: tilt in the image plane; > 0 tilts clockwise.
    """

    yaw: float
    pitch: float
    roll: float

    @classmethod
    def of(cls, angles) -> Pose:
        """A :class:`Pose` of plain floats from any (yaw, pitch, roll) sequence."""
        yaw, pitch, roll = (float(a) for a in angles)
        return cls(yaw, pitch, roll)

    def __str__(self) -> str:
        return f"yaw {self.yaw:+.1f}, pitch {self.pitch:+.1f}, roll {self.roll:+.1f}"


def check_pose_angles(yaw: float, pitch: float | None, roll: float | None) -> None:
    """Raise :class:`UnreachablePoseError` unless every given angle is a finite number of degrees (``None`` for
    pitch or roll: the face's own, nothing to check)."""
    for name, value in (("yaw", yaw), ("pitch", 0.0 if pitch is None else pitch),
                        ("roll", 0.0 if roll is None else roll)):
        try:
            finite = math.isfinite(float(value))
        except (TypeError, ValueError):
            finite = False
        if not finite:
            raise UnreachablePoseError(f"{name} must be a finite number of degrees, got {value!r}.")


def is_image_batch(images) -> bool:
    """Whether ``images`` is a batch: a list or tuple, or an (N, H, W, C) array."""
    return isinstance(images, (list, tuple)) or (isinstance(images, np.ndarray) and images.ndim == 4)


def as_image_list(images, name: str = "image") -> tuple[list[np.ndarray], bool]:
    """Read one image or a batch of images as RGB uint8 arrays.

    Args:
        images: an RGB uint8 array, PIL image, path or bytes; or a list / tuple of them; or an (N, H, W, C) array.
        name: the argument's name, for messages.

    Returns:
        ``(arrays, batched)``: the (H, W, 3) uint8 arrays, and whether the input was a batch (so that the output
        fields can be lists too).

    Raises:
        ValueError: an empty batch. ``ImageReadError`` / ``ImageTooLargeError`` for an image that cannot be read;
        for a batch the message names the position.
    """
    if not is_image_batch(images):
        return [load_image(images)], False
    if len(images) == 0:
        raise ValueError(f"`{name}` is an empty list; pass one image or a list of at least one image.")
    arrays = []
    for index, item in enumerate(images):
        if is_image_batch(item) and not (isinstance(item, np.ndarray) and item.ndim == 3):
            raise ValueError(f"`{name}[{index}]` is itself a list; pass a flat list of images.")
        try:
            arrays.append(load_image(item))
        except (ValueError, TypeError) as err:
            raise type(err)(f"{name}[{index}]: {err}") from err
    return arrays, True


def broadcast(values: list, count: int, name: str) -> list:
    """``values`` (one per item, or a single one for all) stretched to ``count`` items; a clear error otherwise."""
    if len(values) == count:
        return values
    if len(values) == 1:
        return values * count
    raise ValueError(f"`{name}` has {len(values)} images but there are {count} inputs; pass one or {count}.")


def check_output_type(output_type: str) -> str:
    """``output_type`` if it is one of :data:`OUTPUT_TYPES`, else a ``ValueError`` saying which exist."""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"Got {output_type!r} for `output_type`; use one of {', '.join(map(repr, OUTPUT_TYPES))}.")
    return output_type


def convert_images(arrays: Sequence[np.ndarray], output_type: str = "pil") -> list:
    """(H, W, 3) RGB uint8 arrays -> a list of PIL images (``"pil"``) or of the arrays themselves (``"np"``)."""
    check_output_type(output_type)
    arrays = [np.ascontiguousarray(a, dtype=np.uint8) for a in arrays]
    if output_type == "pil":
        return [Image.fromarray(a) for a in arrays]
    return arrays


def collate(results: Sequence[dict[str, Any]], batched: bool) -> dict[str, Any]:
    """Per-image result dicts -> output fields: each field's value for a single image, a list of them for a batch."""
    keys = results[0].keys()
    if batched:
        return {key: [result[key] for result in results] for key in keys}
    return dict(results[0])


def rotate_each(
    rotate_one: Callable[[np.ndarray, np.ndarray | None], dict[str, Any]],
    output_class: type,
    image,
    target_image=None,
    output_type: str = "pil",
    return_dict: bool = True,
):
    """The batch half of every rotation pipeline's ``__call__``: read ``image`` (one or a list) and ``target_image``
    (none, one for all, or one each), run ``rotate_one(photo, target_photo) -> dict`` (an ``"image"`` array plus the
    output's other fields) on each, and assemble ``output_class`` as :func:`collate` says."""
    check_output_type(output_type)
    photos, batched = as_image_list(image)
    targets: list = [None] * len(photos)
    if target_image is not None:
        targets = broadcast(as_image_list(target_image, "target_image")[0], len(photos), "target_image")
    results = [rotate_one(photo, target) for photo, target in zip(photos, targets, strict=True)]
    images = convert_images([result.pop("image") for result in results], output_type)
    output = output_class(images=images, **collate(results, batched))
    return output if return_dict else output.to_tuple()


def swap_each(
    swap_one: Callable[[np.ndarray, np.ndarray], dict[str, Any]],
    output_class: type,
    source_image,
    target_image,
    output_type: str = "pil",
    return_dict: bool = True,
):
    """The batch half of every swap pipeline's ``__call__``: read ``source_image`` and ``target_image`` (one each, two
    lists of the same length swapped pair by pair, or one image on either side for all), run
    ``swap_one(source, target) -> dict`` (an ``"image"`` array plus the output's other fields) on each pair, and
    assemble ``output_class`` as :func:`collate` says."""
    check_output_type(output_type)
    sources, sources_batched = as_image_list(source_image, "source_image")
    targets, targets_batched = as_image_list(target_image, "target_image")
    if len(sources) != len(targets) and 1 not in (len(sources), len(targets)):
        raise ValueError(
            f"`source_image` has {len(sources)} images and `target_image` has {len(targets)}; pass lists of the "
            "same length (swapped pair by pair), or one image on either side."
        )
    count = max(len(sources), len(targets))
    sources, targets = broadcast(sources, count, "source_image"), broadcast(targets, count, "target_image")
    results = [swap_one(source, target) for source, target in zip(sources, targets, strict=True)]
    images = convert_images([result.pop("image") for result in results], output_type)
    output = output_class(images=images, **collate(results, sources_batched or targets_batched))
    return output if return_dict else output.to_tuple()


def _first_image_as_array(output) -> np.ndarray:
    images = output.images
    first = images[0] if isinstance(images, (list, tuple)) else images
    if isinstance(first, Image.Image):
        return np.array(first.convert("RGB"))  # a writable copy, as the old attribute was
    return np.asarray(first)


class DeprecatedImageMixin:
    """The pre-``.images`` attribute of image outputs, kept for old callers: ``out.image`` is ``out.images[0]`` as an
    (H, W, 3) RGB uint8 array, with a ``FutureWarning``."""

    @property
    def image(self) -> np.ndarray:
        warnings.warn(
            f"`{type(self).__name__}.image` is deprecated and will be removed; use `.images[0]` (a PIL image, or an "
            "RGB uint8 array with output_type='np').",
            FutureWarning,
            stacklevel=2,
        )
        return _first_image_as_array(self)


@dataclass
class ImagePipelineOutput(DeprecatedImageMixin, BaseOutput):
    """Output of a pipeline that makes images.

    Attributes:
        images: one per input image: PIL images, or (H, W, 3) RGB uint8 arrays with ``output_type="np"``.
    """

    images: list


@dataclass
class RotationPipelineOutput(ImagePipelineOutput):
    """The output every face rotation method returns (DepthNet's warp, PRN-Dense's mesh rotation, ...).

    Attributes:
        images: the photos with the face turned, one per input image (see :class:`ImagePipelineOutput`).
        requested_pose: the :class:`Pose` the face was turned to (a target photo's face pose when one was given).
        achieved_pose: the :class:`Pose` measured on the result by the
            :class:`~facehub.modeling.faces.FaceAnalyzer` (the face nearest the source face's box); ``None`` when no
            face is found on the result or measuring was turned off.

    For one input image the pose fields are one :class:`Pose` (or ``None``); for a list input they are lists with
    one entry per image. Method-specific fields follow the same rule.
    """

    requested_pose: Pose | list[Pose]
    achieved_pose: Pose | list[Pose | None] | None

    @property
    def measured_pose(self):
        """Deprecated name of :attr:`achieved_pose`."""
        warnings.warn(
            f"`{type(self).__name__}.measured_pose` is deprecated; use `.achieved_pose`.", FutureWarning, stacklevel=2
        )
        return self.achieved_pose


@dataclass
class GeneratedCropRotationOutput(RotationPipelineOutput):
    """:class:`RotationPipelineOutput` of a method that draws the turned face as an aligned crop and pastes it back
    (the pose CVAE-GAN, DiscoFaceGAN, StyleFaceUV).

    Attributes:
        crops: the generated aligned crop that was pasted (RGB uint8, the generator's size).
        reconstructions: the generator's own crop of the face before turning (how much of the face it keeps).
        face: the :class:`~facehub.modeling.faces.Face` that was turned; target_face: the target photo's face, when
            one was given; output_face: the face found again on the result (``None`` when none is found or
            ``measure=False``).
        num_faces: faces found in the photo. timings: seconds per stage (each method names its stages).
    """

    crops: np.ndarray | list[np.ndarray] | None = None
    reconstructions: np.ndarray | list[np.ndarray] | None = None
    face: Any = None
    target_face: Any = None
    output_face: Any = None
    num_faces: int | list[int] = 0
    timings: dict[str, float] | list[dict[str, float]] = field(default_factory=dict)


def face_nearest(faces: list, box) -> Any:
    """The face whose box centre is nearest the centre of ``box`` (x0, y0, x1, y1); ``None`` for no faces."""
    if not faces:
        return None
    centre = np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])

    def distance(face) -> float:
        x0, y0, x1, y1 = face.bbox
        return float(np.linalg.norm(np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0]) - centre))

    return min(faces, key=distance)


#: Where the analyzer finds no face at the expected place in a whole result, :func:`measure_pose` looks again in a
#: square this many times the expected face box's longer side, centred on it (about a portrait's framing).
MEASURE_CROP_FACTOR = 3.0


def _at(face, box) -> bool:
    """Whether ``face``'s box centre lies inside ``box`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = face.bbox
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def measure_pose(analyzer_call, image: np.ndarray, near_box) -> tuple[Any, Pose | None]:
    """The face of ``image`` nearest the centre of ``near_box`` (x0, y0, x1, y1), found with ``analyzer_call``
    (image -> list of faces), and its :class:`Pose`; ``(None, None)`` when there is no face.

    When no face is found with its centre inside ``near_box``, the analyzer looks again in a square of
    :data:`MEASURE_CROP_FACTOR` times the box's longer side around it, and a face found there is returned in the whole
    image's pixels (:meth:`~facehub.modeling.faces.Face.translated`). MediaPipe's detector reads the whole image at
    its own small input size, so it misses a face turned to a profile in a full-length photo that it finds in a
    portrait's framing; angles do not depend on where the face sits in the image it is measured in.
    """
    face = face_nearest(analyzer_call(image), near_box)
    if face is None or not _at(face, near_box):
        x0, y0, x1, y1 = (float(v) for v in near_box)
        half = 0.5 * MEASURE_CROP_FACTOR * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        left, top = max(int(round(cx - half)), 0), max(int(round(cy - half)), 0)
        right, bottom = min(int(round(cx + half)), image.shape[1]), min(int(round(cy + half)), image.shape[0])
        if right - left >= 16 and bottom - top >= 16 and (right - left, bottom - top) != image.shape[1::-1]:
            found = face_nearest(analyzer_call(np.ascontiguousarray(image[top:bottom, left:right])),
                                 (x0 - left, y0 - top, x1 - left, y1 - top))
            if found is not None:
                face = found.translated((left, top))
    return (None, None) if face is None else (face, Pose.of(face.pose))


def measure_swap(pipe, image: np.ndarray, source: np.ndarray, target: np.ndarray, source_face, target_face) -> dict:
    """What every swap pipeline reports with ``measure=True``: ``output_face`` (the face of the result ``image``
    nearest the target face, found with ``pipe.find_faces``), its identity distances to the source and the target
    face (``pipe.embed``, dlib's descriptor) and the NME of its landmarks against the target's; ``{}`` when the result
    shows no face."""
    from facehub.modeling.faces.identity import face_distance
    from facehub.modeling.geometry.landmark_metrics import nme

    output_face = face_nearest(pipe.find_faces(image), target_face.bbox)
    if output_face is None:
        return {}
    descriptor = pipe.embed(image, output_face)
    return {
        "output_face": output_face,
        "distance_to_source": float(face_distance(descriptor, pipe.embed(source, source_face))),
        "distance_to_target": float(face_distance(descriptor, pipe.embed(target, target_face))),
        "landmark_error": float(nme(output_face.landmarks68, target_face.landmarks68)),
    }


class RotationPipelineMixin:
    """The rotation contract, written once for every rotation method (DepthNet's warp, PRN-Dense's mesh, ...).

    ``pipe(image, yaw=, pitch=, roll=None, target_image=None)`` -> :attr:`output_class` with ``.images``,
    ``.requested_pose`` and ``.achieved_pose`` (measured on the result). A pipeline mixes this in before
    :class:`~facehub.modeling.modeling_utils.FaceHubPipeline`, sets :attr:`max_yaw`, :attr:`max_pitch`,
    :attr:`unreachable_reason`, :attr:`output_class` and :attr:`default_min_interocular`, and implements
    :meth:`_rotate_one` for one photo.
    """

    #: Largest |yaw| / |pitch| (degrees) of a reachable target pose.
    max_yaw: float = 90.0
    max_pitch: float = 90.0
    #: Why poses beyond those limits cannot be reached (completes "... cannot be reached: <reason>, so ...").
    unreachable_reason: str = "the face would look away from the camera"
    #: The output dataclass (a :class:`RotationPipelineOutput` subclass).
    output_class: type = RotationPipelineOutput
    #: Faces with eye centres closer than this (pixels) are refused unless the call says otherwise.
    default_min_interocular: float = MIN_INTEROCULAR_PIXELS
    #: Keyword options of this method's call beyond the contract's, passed on to :meth:`_rotate_one`.
    rotation_options: tuple[str, ...] = ()

    def check_reachable(self, yaw: float, pitch: float | None, roll: float | None) -> None:
        """Raise :class:`UnreachablePoseError` for a non-finite angle or one beyond ``max_yaw`` / ``max_pitch``
        (``pitch=None``, the face's own, is not checked)."""
        check_pose_angles(yaw, pitch, roll)
        for name, value, limit in (("yaw", yaw, self.max_yaw), ("pitch", pitch, self.max_pitch)):
            if value is not None and abs(value) > limit:
                raise UnreachablePoseError(
                    f"{name}={value:g} degrees cannot be reached: {self.unreachable_reason}, so |{name}| must be at "
                    f"most {limit:g} degrees."
                )

    def requested_pose(self, face, target_face, yaw: float, pitch: float | None, roll: float | None) -> Pose:
        """The pose to turn ``face`` to: ``target_face``'s, checked with :meth:`check_reachable`, or else the asked
        angles (checked by the call) with the face's own pitch and roll where they are ``None``."""
        if target_face is not None:
            pose = Pose.of(target_face.pose)
            self.check_reachable(pose.yaw, pose.pitch, pose.roll)
            return pose
        own = Pose.of(face.pose)
        return Pose.of((yaw, own.pitch if pitch is None else pitch, own.roll if roll is None else roll))

    def __call__(
        self,
        image,
        yaw: float = 0.0,
        pitch: float | None = None,
        roll: float | None = None,
        *,
        target_image=None,
        face_index: int = 0,
        target_face_index: int = 0,
        min_interocular: float | None = None,
        measure: bool = True,
        output_type: str = "pil",
        return_dict: bool = True,
        **method_options,
    ):
        """Turn the ``face_index``-th face (largest first) of ``image`` to a pose.

        Args:
            image: one image (RGB uint8 array, PIL image or path) or a list of them.
            yaw, pitch, roll: target pose in degrees (house convention); ``pitch=None`` (the default) and
                ``roll=None`` keep the face's own: ``pipe(photo, yaw=30.0)`` turns the head and does not nod it
                (many portraits read 5-20 degrees of downward pitch; levelling them changes the face more than the
                turn does). ``pipe(photo, yaw=0.0, pitch=0.0, roll=0.0)`` frontalizes. Ignored when
                ``target_image`` is given.
            target_image: a photo whose face's pose to copy instead; for a list ``image``, one photo for all or a
                list of the same length.
            face_index, target_face_index: which face of each photo (0 = the largest).
            min_interocular: smallest accepted distance between the eye centres, pixels (``None``: the method's
                :attr:`default_min_interocular`).
            measure: find the face again on the result and report its pose (``achieved_pose``, ``output_face``).
            output_type: ``"pil"`` (default) or ``"np"`` for the ``images`` field.
            return_dict: ``False`` returns ``output.to_tuple()`` (``images`` first), as diffusers pipelines do.
            method_options: settings of this method only (:attr:`rotation_options`), passed on to
                :meth:`_rotate_one`.

        Returns:
            :attr:`output_class`; its pose and other fields are single values for one image, lists for a list.

        Raises:
            UnreachablePoseError: a non-finite angle, a pose beyond ``max_yaw`` / ``max_pitch``, or one the method
                cannot reach from this photo.
            FaceSelectionError: no face, no face at ``face_index``, or a face too small, in either photo.
        """
        unknown = sorted(set(method_options) - set(self.rotation_options))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown option(s) {', '.join(unknown)}; its own options: "
                            f"{', '.join(self.rotation_options) or 'none'}.")
        check_output_type(output_type)
        if target_image is None:
            self.check_reachable(yaw, pitch, roll)
        interocular = self.default_min_interocular if min_interocular is None else min_interocular

        def rotate_one(photo, target):
            return self._rotate_one(photo, yaw, pitch, roll, target, face_index, target_face_index, interocular,
                                    measure, **method_options)

        return rotate_each(rotate_one, self.output_class, image, target_image, output_type, return_dict)

    def select_faces(self, photo, target_photo, face_index: int, target_face_index: int,
                     min_interocular: float) -> tuple[list, Any, Any]:
        """All faces of ``photo``, the one to turn, and the face of ``target_photo`` whose pose to copy (``None``
        without a target photo); :class:`FaceSelectionError` names the photo that has none."""
        faces = self.find_faces(photo)
        face = select_face(faces, "photo", face_index, min_interocular)
        target_face = None
        if target_photo is not None:
            target_face = select_face(self.find_faces(target_photo), "target photo", target_face_index, min_interocular)
        return faces, face, target_face

    def _rotate_one(self, photo, yaw, pitch, roll, target_photo, face_index, target_face_index, min_interocular,
                    measure) -> dict[str, Any]:
        """One photo: a dict with the rotated ``"image"`` (RGB uint8) and the output's other fields."""
        raise NotImplementedError


_LOCK_CREATION = threading.Lock()


class FacePipelineMixin:
    """Face analysis shared by the image pipelines: a lazily created analyzer without the identity descriptor
    (geometry only), a descriptor for measurements, and a lock (MediaPipe graphs are not thread-safe)."""

    _face_analyzer = None
    _descriptor = None
    _analysis_lock = None
    _box_detector = None

    @property
    def face_analyzer(self):
        """The :class:`~facehub.modeling.faces.FaceAnalyzer` used to find faces (created on first use)."""
        if self._face_analyzer is None:
            from facehub.modeling.faces.analyzer import FaceAnalyzer

            self._face_analyzer = FaceAnalyzer(compute_embedding=False)
        return self._face_analyzer

    @property
    def identity_descriptor(self):
        """dlib's 128-D identity descriptor (:class:`~facehub.modeling.faces.identity.DlibFaceDescriptor`)."""
        if self._descriptor is None:
            from facehub.modeling.faces.identity import DlibFaceDescriptor

            self._descriptor = DlibFaceDescriptor()
        return self._descriptor

    @property
    def analysis_lock(self) -> threading.Lock:
        """Held while the analyzer or the descriptor runs (one per pipeline)."""
        with _LOCK_CREATION:
            if self._analysis_lock is None:
                self._analysis_lock = threading.Lock()
        return self._analysis_lock

    def find_faces(self, image: np.ndarray, max_faces: int | None = None) -> list[Face]:
        """The faces of ``image``, largest first (the first ``max_faces`` when given)."""
        with self.analysis_lock:
            faces = self.face_analyzer(image)
        return faces if max_faces is None else faces[: max(0, int(max_faces))]

    @property
    def box_detector(self):
        """The fallback box detector (:class:`~facehub.modeling.faces.profile_detection.DlibCNNFaceDetector`, created
        on first use) for faces the analyzer misses."""
        if self._box_detector is None:
            from facehub.modeling.faces.profile_detection import DlibCNNFaceDetector

            self._box_detector = DlibCNNFaceDetector()
        return self._box_detector

    def find_faces_or_boxes(self, image: np.ndarray, max_faces: int | None = None) -> list:
        """:meth:`find_faces`, and where the analyzer finds no face at all, the fallback detector's
        :class:`~facehub.modeling.faces.profile_detection.FaceBox` es (faces turned beyond MediaPipe's reach), best
        first: for pipelines that can reconstruct a face from its box alone."""
        faces = self.find_faces(image, max_faces)
        if faces:
            return faces
        with self.analysis_lock:
            boxes = self.box_detector(image)
        return boxes if max_faces is None else boxes[: max(0, int(max_faces))]

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The identity descriptor of ``face`` in ``image``."""
        with self.analysis_lock:
            return self.identity_descriptor(image, face.landmarks68)
