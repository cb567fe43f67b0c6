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

Two backends compute the descriptor of that chip. ``"torch"`` (the default) runs dlib's network read from dlib's own
``.dat`` file and ported to PyTorch (:mod:`.dlib_resnet`): the same numbers as dlib (float32 rounding apart, about
3e-7 per component on the test photos) in a fraction of the time, because the ``dlib-bin`` wheel is built without
BLAS. ``"dlib"`` calls ``dlib.face_recognition_model_v1.compute_face_descriptor``, the reference.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from facehub.modeling.faces.dlib_resnet import (
    CHIP_SIZE,
    DESCRIPTOR_SIZE,
    DlibResNetDescriptorNet,
    face_chip,
    load_descriptor_net,
)

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


@lru_cache(maxsize=4)
def _shared_network(path: str, size: int, mtime_ns: int) -> DlibResNetDescriptorNet:
    """One PyTorch network per model file (and version of it), shared by every descriptor: inference only, so
    sharing it between analyzers and threads is safe."""
    return load_descriptor_net(path)


class DlibFaceDescriptor:
    """dlib's 128-D identity descriptor; the model is loaded lazily, once.

    Args:
        num_jitters: 1 (or 0, as dlib reads it) describes the chip as it is. Above 1, the chip is re-sampled this many
            times with dlib's own random jitter (``dlib.jitter_image``: small rotation, scale and shift, and a
            mirror image half the time) and the descriptors are averaged. The ``"torch"`` backend jitters with
            ``dlib.jitter_image``, the same transform ``compute_face_descriptor`` applies, but from its own random
            state: jittered descriptors agree with dlib's in distribution, not number for number, and differ from
            call to call in both backends.
        backend: ``"torch"`` (default): dlib's network in PyTorch (:class:`DlibResNetDescriptorNet`, weights read
            from dlib's ``.dat`` and cached as safetensors, see :mod:`.dlib_resnet`); ``"dlib"``: dlib's own
            ``compute_face_descriptor`` (about 85 ms a face on two cores), kept as the reference.
    """

    MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
    BACKENDS = ("torch", "dlib")

    def __init__(self, num_jitters: int = 1, backend: str = "torch"):
        if isinstance(num_jitters, bool) or not isinstance(num_jitters, int | np.integer) or num_jitters < 0:
            raise ValueError(f"num_jitters must be a non-negative integer, got {num_jitters!r}.")
        if backend not in self.BACKENDS:
            raise ValueError(f"backend must be one of {self.BACKENDS}, got {backend!r}.")
        self.num_jitters = int(num_jitters)
        self.backend = backend
        self._model = None

    @property
    def model_path(self) -> Path:
        path = face_recognition_models_dir() / self.MODEL_FILE
        if not path.exists():
            raise FileNotFoundError(f"dlib's identity model {path} is missing; reinstall face_recognition_models.")
        return path

    @property
    def model(self):
        """dlib's own ``face_recognition_model_v1`` (the ``"dlib"`` backend, and the reference for the other)."""
        if self._model is None:
            import dlib

            self._model = dlib.face_recognition_model_v1(str(self.model_path))
        return self._model

    @property
    def network(self) -> DlibResNetDescriptorNet:
        """dlib's network in PyTorch (the ``"torch"`` backend), shared by the descriptors of one model file."""
        path = self.model_path
        stat = path.stat()
        return _shared_network(str(path), stat.st_size, stat.st_mtime_ns)

    @staticmethod
    def shape_from_landmarks(landmarks68: np.ndarray):
        """(68, 2) iBUG landmarks -> ``dlib.full_object_detection`` with dlib's 5-point layout."""
        import dlib

        points = np.asarray(landmarks68, dtype=np.float64)
        if points.shape != (68, 2) or not np.isfinite(points).all():
            raise ValueError(f"landmarks68 must be a finite (68, 2) array, got shape {points.shape}.")
        five = np.rint(points[list(DLIB_5_POINT_FROM_IBUG)]).astype(int)
        x0, y0 = np.floor(points.min(axis=0)).astype(int)
        x1, y1 = np.ceil(points.max(axis=0)).astype(int)
        return dlib.full_object_detection(
            dlib.rectangle(int(x0), int(y0), int(x1), int(y1)), [dlib.point(int(x), int(y)) for x, y in five]
        )

    @staticmethod
    def _check_image(image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) RGB uint8 image, got {image.dtype} {image.shape}.")
        return np.ascontiguousarray(image)

    def chip(self, image: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
        """The face's (150, 150, 3) RGB uint8 chip, aligned as dlib aligns it for the descriptor."""
        return face_chip(self._check_image(image), self.shape_from_landmarks(landmarks68))

    def describe_chips(self, chips: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) or (150, 150, 3) RGB uint8 chips (from :meth:`chip`) -> (N, 128) float64 descriptors."""
        chips = np.asarray(chips)
        batch = chips[None] if chips.ndim == 3 else chips
        if batch.ndim != 4 or batch.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or batch.dtype != np.uint8:
            raise ValueError(
                f"expected RGB uint8 chips of shape (N, {CHIP_SIZE}, {CHIP_SIZE}, 3), got {chips.dtype} {chips.shape}."
            )
        if self.backend == "dlib":
            return np.array(
                [self.model.compute_face_descriptor(np.ascontiguousarray(c), self.num_jitters) for c in batch],
                dtype=np.float64,
            ).reshape(len(batch), DESCRIPTOR_SIZE)
        if self.num_jitters <= 1:
            return self.network.describe(batch)
        import dlib

        descriptors = []
        for chip in batch:
            jittered = np.stack(dlib.jitter_image(np.ascontiguousarray(chip), self.num_jitters))
            descriptors.append(self.network.describe(jittered).mean(axis=0))
        return np.stack(descriptors)

    def __call__(self, image: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
        """(H, W, 3) RGB uint8 image and a face's (68, 2) landmarks -> (128,) float64 descriptor."""
        image = self._check_image(image)
        shape = self.shape_from_landmarks(landmarks68)
        if self.backend == "dlib":
            return np.asarray(self.model.compute_face_descriptor(image, shape, self.num_jitters), dtype=np.float64)
        return self.describe_chips(face_chip(image, shape))[0]


def face_distance(a, b) -> float | np.ndarray:
    """Euclidean distance between identity descriptors (or :class:`Face` objects); broadcasts over leading axes."""
    a = np.asarray(getattr(a, "embedding", a), dtype=np.float64)
    b = np.asarray(getattr(b, "embedding", b), dtype=np.float64)
    distance = np.linalg.norm(a - b, axis=-1)
    return float(distance) if np.ndim(distance) == 0 else distance


def same_person(a, b, threshold: float = SAME_PERSON_THRESHOLD) -> bool:
    """Whether two faces (or descriptors) show the same person: descriptor distance below ``threshold``."""
    return bool(face_distance(a, b) < threshold)
