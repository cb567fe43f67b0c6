"""``FaceAnalyzer``: image -> faces with box, 68 and dense 3D landmarks, head pose and identity embedding.

The front end every facehub method shares::

    from facehub.modeling.faces import FaceAnalyzer

    analyzer = FaceAnalyzer()
    faces = analyzer("photo.jpg")      # list[Face], largest first; [] when there is no face
    crop = analyzer.align("photo.jpg", faces[0], size=256)

What runs, per image (models from the installed mediapipe and face_recognition_models wheels, no network):

1. MediaPipe face detection + face mesh (:mod:`.detection`): 478 dense 3D landmarks per face, with fallbacks for
   large poses where the detector misses.
2. The 68 iBUG landmarks as fixed combinations of mesh vertices (:mod:`facehub.modeling.geometry.landmarks68`).
3. Head pose by fitting the canonical frontal face to the dense landmarks (:mod:`.pose`), its yaw read
   through a calibration past 45 degrees (:mod:`.yaw_calibration`).
4. dlib's 128-D identity descriptor on a chip aligned from those landmarks (:mod:`.identity`), its ResNet run in
   PyTorch from dlib's own weights file (:mod:`.dlib_resnet`; equal to dlib's output to 1e-6, 15x faster here);
   neither dlib's detector nor its shape predictor runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from facehub.modeling.faces.alignment import AlignedFace, align_face
from facehub.modeling.faces.detection import MediaPipeFaceMesh, landmarks_box
from facehub.modeling.faces.identity import DlibFaceDescriptor
from facehub.modeling.faces.image_io import DEFAULT_MAX_PIXELS, ImageSource, load_image
from facehub.modeling.faces.pose import HeadPose, estimate_head_pose
from facehub.modeling.faces.yaw_calibration import calibrated_yaw
from facehub.modeling.geometry.landmarks68 import landmarks68_from_mesh


@dataclass
class Face:
    """One face found in an image. Pixels are in the analysed image, origin at its top-left corner.

    Attributes:
        bbox: (x0, y0, x1, y1) tight box of the face mesh (forehead to chin, ear to ear); not clipped, so it
            extends past the image border for a face cut off by it.
        landmarks68: (68, 2) float, iBUG 300-W order (jaw 1-17, brows, nose, eyes, lips; "right" = subject's right).
        dense_landmarks: (478, 3) float, MediaPipe's face mesh: 468 vertices then 10 iris points; x, y pixels,
            z depth in pixels growing towards the camera (relative: about 0 at the centre of the head).
            Geometry uses the first 468.
        pose: (yaw, pitch, roll) degrees, convention in :mod:`facehub.modeling.geometry.rotations`
            (yaw > 0 turns towards the image's right, pitch > 0 looks up, roll > 0 clockwise). The yaw is read
            through :func:`~facehub.modeling.faces.yaw_calibration.calibrated_yaw`: past 45 degrees MediaPipe's mesh
            turns less than the head, and the calibration, measured on AFLW's hand-labelled training crops, undoes
            that on average.
        embedding: (128,) dlib identity descriptor (same person when the distance is below 0.6), or ``None`` when
            the analyzer was created with ``compute_embedding=False``.
        head_pose: the full :class:`HeadPose`, with the similarity from the canonical face to ``dense_landmarks``
            and the angles of that fit (its yaw not calibrated).
    """

    bbox: tuple[float, float, float, float]
    landmarks68: np.ndarray
    dense_landmarks: np.ndarray
    pose: tuple[float, float, float]
    embedding: np.ndarray | None
    head_pose: HeadPose = field(repr=False)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return max(x1 - x0, 0.0) * max(y1 - y0, 0.0)

    def translated(self, offset) -> Face:
        """The same face measured in an image where the analysed one sits at ``offset`` (x, y) pixels (a crop's
        corner in the photo it was cut from): every position moves, angles and the descriptor stay."""
        dx, dy = (float(v) for v in offset)
        dense = np.asarray(self.dense_landmarks, np.float64).copy()
        dense[:, :2] += (dx, dy)
        transform = self.head_pose.transform
        translation = np.asarray(transform.translation, np.float64).copy()
        translation[:2] += (dx, dy)
        x0, y0, x1, y1 = self.bbox
        return replace(self, bbox=(x0 + dx, y0 + dy, x1 + dx, y1 + dy),
                       landmarks68=np.asarray(self.landmarks68, np.float64) + (dx, dy), dense_landmarks=dense,
                       head_pose=replace(self.head_pose, transform=replace(transform, translation=translation)))


class FaceAnalyzer:
    """Finds faces and measures them; MediaPipe and dlib models are created on first use and reused.

    Args:
        max_num_faces: most faces returned per image (the largest are kept).
        min_detection_confidence: MediaPipe's detection threshold.
        compute_embedding: compute dlib's identity descriptor (about a third of the time per face).
        max_pixels: images with more pixels are refused (:class:`ImageTooLargeError`) before decoding.

    Not thread-safe (MediaPipe graphs keep state): use one analyzer per thread.
    """

    def __init__(
        self,
        max_num_faces: int = 8,
        min_detection_confidence: float = 0.5,
        compute_embedding: bool = True,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ):
        self.mesh = MediaPipeFaceMesh(max_num_faces=max_num_faces, min_detection_confidence=min_detection_confidence)
        self.descriptor = DlibFaceDescriptor() if compute_embedding else None
        self.max_pixels = max_pixels

    def load(self, image: ImageSource) -> np.ndarray:
        """Any supported source -> RGB uint8 array (see :func:`load_image`)."""
        return load_image(image, max_pixels=self.max_pixels)

    def face_from_dense(self, image: np.ndarray, dense_landmarks: np.ndarray) -> Face:
        """Measure one face given its (478, 3) dense landmarks in ``image``."""
        landmarks68 = landmarks68_from_mesh(dense_landmarks[:, :2])
        head_pose = estimate_head_pose(dense_landmarks)
        embedding = self.descriptor(image, landmarks68) if self.descriptor is not None else None
        return Face(
            bbox=tuple(float(v) for v in landmarks_box(dense_landmarks[:468])),
            landmarks68=landmarks68,
            dense_landmarks=dense_landmarks,
            pose=(calibrated_yaw(head_pose.yaw), head_pose.pitch, head_pose.roll),
            embedding=embedding,
            head_pose=head_pose,
        )

    def __call__(self, image: ImageSource) -> list[Face]:
        """Faces in ``image`` (RGB uint8 array, PIL image, path or bytes), largest first; ``[]`` if there are none."""
        image = self.load(image)
        meshes = sorted(self.mesh(image), key=lambda points: -float(np.prod(np.ptp(points[:468, :2], axis=0))))
        return [self.face_from_dense(image, points) for points in meshes]

    def analyze_batch(self, images) -> list[list[Face]]:
        """:meth:`__call__` on each image of an iterable; one list of faces per image."""
        return [self(image) for image in images]

    def align(self, image: ImageSource, face: Face, size: int = 128, padding: float = 0.0) -> AlignedFace:
        """Similarity-aligned ``size`` x ``size`` crop of ``face`` (ArcFace-like template, see :mod:`.alignment`),
        with the affine image -> crop, its inverse and the landmarks in crop pixels."""
        return align_face(self.load(image), face.landmarks68, size=size, padding=padding)

    def close(self) -> None:
        """Free MediaPipe's graphs (re-created on the next call)."""
        self.mesh.close()
