"""Identity embeddings: dlib's 128-D face descriptor, fed with landmarks we already have.

The descriptor is dlib's ResNet face recognition model ``dlib_face_recognition_resnet_model_v1`` (King, dlib 19.6,
99.38% on LFW; shipped by the ``face_recognition_models`` package). Two photos show the same person when the
Euclidean distance between their descriptors is below 0.6 (the threshold the model was trained for).

dlib aligns a 150x150 chip from a ``dlib.full_object_detection``; it is built here from the face's own 68 iBUG
landmarks mapped onto dlib's 5-point order (no dlib detector or shape predictor runs):

====  =========================================  ==============
dlib  point                                      iBUG (0-based)
====  =========================================  ==============
0     subject's left eye, outer corner           45
1     subject's left eye, inner corner           42
2     subject's right eye, outer corner          36
3     subject's right eye, inner corner          39
4     base of the nose (subnasale)               33
====  =========================================  ==============
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

#: iBUG 68 indices of dlib's 5-point shape model, in dlib's order (table in the module docstring).
DLIB_5_POINT_FROM_IBUG = (45, 42, 36, 39, 33)
SAME_PERSON_THRESHOLD = 0.6


def face_recognition_models_dir() -> Path:
    """Folder of the ``face_recognition_models`` package's model files, found without importing the package
    (its ``__init__`` needs ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "The face_recognition_models package is not installed; install it with "
            "`pip install face_recognition_models==0.3.0` (it ships dlib's identity model)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibFaceDescriptor:
    """dlib's 128-D identity descriptor, loaded lazily once.

    Args:
        num_jitters: dlib re-samples the chip this many times with small jitters and averages (1 = fastest).
    """

    MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"

    def __init__(self, num_jitters: int = 1):
        self.num_jitters = num_jitters
        self._model = None

    @property
    def model(self):
        if self._model is None:
            import dlib

            path = face_recognition_models_dir() / self.MODEL_FILE
            if not path.exists():
                raise FileNotFoundError(f"dlib's identity model {path} is missing; reinstall face_recognition_models.")
            self._model = dlib.face_recognition_model_v1(str(path))
        return self._model

    @staticmethod
    def shape_from_landmarks(landmarks68: np.ndarray):
        """(68, 2) iBUG landmarks -> ``dlib.full_object_detection`` with dlib's 5-point layout."""
        import dlib

        points = np.asarray(landmarks68, dtype=np.float64)
        five = np.rint(points[list(DLIB_5_POINT_FROM_IBUG)]).astype(int)
        x0, y0 = np.floor(points.min(axis=0)).astype(int)
        x1, y1 = np.ceil(points.max(axis=0)).astype(int)
        return dlib.full_object_detection(
            dlib.rectangle(int(x0), int(y0), int(x1), int(y1)), [dlib.point(int(x), int(y)) for x, y in five]
        )

    def __call__(self, image: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
        """(H, W, 3) RGB uint8 image and a face's (68, 2) landmarks -> (128,) float64 descriptor."""
        shape = self.shape_from_landmarks(landmarks68)
        return np.asarray(self.model.compute_face_descriptor(image, shape, self.num_jitters), dtype=np.float64)


def face_distance(a, b) -> float | np.ndarray:
    """Euclidean distance between identity descriptors (or :class:`Face` objects); broadcasts over leading axes."""
    a = np.asarray(getattr(a, "embedding", a), dtype=np.float64)
    b = np.asarray(getattr(b, "embedding", b), dtype=np.float64)
    distance = np.linalg.norm(a - b, axis=-1)
    return float(distance) if np.ndim(distance) == 0 else distance


def same_person(a, b, threshold: float = SAME_PERSON_THRESHOLD) -> bool:
    """Whether two faces (or descriptors) show the same person: descriptor distance below ``threshold``."""
    return bool(face_distance(a, b) < threshold)
