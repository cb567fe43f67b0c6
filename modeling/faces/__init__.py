"""Face analysis: detection, 68-point and dense 3D landmarks, head pose, identity embedding, aligned crops, and
person segmentation.

Models load offline from the installed ``mediapipe`` (0.10.14) and ``face_recognition_models`` wheels.
"""

from facehub.modeling.faces.alignment import AlignedFace, align_face
from facehub.modeling.faces.analyzer import Face, FaceAnalyzer
from facehub.modeling.faces.identity import face_distance, same_person
from facehub.modeling.faces.image_io import (
    DEFAULT_MAX_PIXELS,
    FaceHubImageError,
    ImageReadError,
    ImageTooLargeError,
    load_image,
)
from facehub.modeling.faces.pose import HeadPose, estimate_head_pose
from facehub.modeling.faces.segmentation import PersonSegmenter

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "AlignedFace",
    "Face",
    "FaceAnalyzer",
    "FaceHubImageError",
    "HeadPose",
    "ImageReadError",
    "ImageTooLargeError",
    "PersonSegmenter",
    "align_face",
    "estimate_head_pose",
    "face_distance",
    "load_image",
    "same_person",
]
