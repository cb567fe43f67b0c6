"""Face boxes where MediaPipe finds no face: dlib's MMOD CNN detector, and the box a method crops around.

MediaPipe's detector and mesh stop finding faces turned beyond about 60 degrees (on AFLW2000-3D they miss 6% of
the faces, nearly all at |yaw| > 60). dlib's max-margin object detector (King, "Max-Margin Object Detection", 2015;
``mmod_human_face_detector.dat`` from the ``face_recognition_models`` wheel) still finds most of them, at about half
a second an image here, so it runs only as a fallback. It gives a box, not landmarks: a method that can start from a
box (PRN-Dense, the coefficient regressor) crops around it, predicts the landmarks, and crops again around those.

:class:`FaceBox` is that box, and :meth:`FaceBox.landmark_box` the box of the 68 landmarks it implies: a square
of ``LANDMARK_BOX_SIDE`` box sides, centred ``LANDMARK_BOX_SHIFT`` box sides below the box's centre. Both are medians
over the 323 photos of ../shared/data's unlabelled and identity splits where MediaPipe and this detector each found
exactly one face (near-frontal nearly all; interquartile ranges 0.05 and 0.12), measured against the 68 landmarks'
box. PRNet's constants for dlib's HOG boxes (Feng et al. 2018, ``api.py``: 0.14 and 1.58 / 1.6 = 0.99) are close.
A method crops around that box, then again around the landmarks it predicts, so the residual offset of a turned face
costs one pass, not accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The 68 landmarks' box relative to the detector's box, in box sides (module docstring): centre shift down, side.
LANDMARK_BOX_SHIFT = 0.18
LANDMARK_BOX_SIDE = 0.95


@dataclass(frozen=True)
class FaceBox:
    """A face found by a box detector only (no landmarks).

    Attributes:
        bbox: (x0, y0, x1, y1) pixels of the detector's box.
        score: the detector's confidence.
    """

    bbox: tuple[float, float, float, float]
    score: float = 1.0

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return max(x1 - x0, 0.0) * max(y1 - y0, 0.0)

    def landmark_box(self) -> np.ndarray:
        """(x0, y0, x1, y1) of the square the face's 68 landmarks are expected to span (module docstring)."""
        x0, y0, x1, y1 = (float(v) for v in self.bbox)
        side = ((x1 - x0) + (y1 - y0)) / 2.0
        centre = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0 + LANDMARK_BOX_SHIFT * side])
        half = LANDMARK_BOX_SIDE * side / 2.0
        return np.concatenate([centre - half, centre + half])


class DlibCNNFaceDetector:
    """dlib's MMOD CNN face detector, loaded on first use from the ``face_recognition_models`` wheel.

    Args:
        max_side: images with a longer side are scaled down to it first (the detector's cost grows with the pixels:
            about half a second at 320 px here). It finds faces from about 80 px at that scale, so a face filling a
            quarter of the photo's side or more; smaller ones are MediaPipe's to find.
        upsample: dlib's upsampling passes (each finds faces half as large, at 4x the cost).
        min_score: boxes with a lower confidence are dropped.
    """

    def __init__(self, max_side: int = 320, upsample: int = 0, min_score: float = 0.0):
        if max_side < 64:
            raise ValueError(f"max_side must be at least 64 pixels, got {max_side}.")
        self.max_side, self.upsample, self.min_score = int(max_side), int(upsample), float(min_score)
        self._detector = None

    @property
    def detector(self):
        if self._detector is None:
            import dlib

            from facehub.modeling.faces.identity import face_recognition_models_dir

            path = face_recognition_models_dir() / "mmod_human_face_detector.dat"
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing; reinstall face_recognition_models==0.3.0.")
            self._detector = dlib.cnn_face_detection_model_v1(str(path))
        return self._detector

    def __call__(self, image: np.ndarray) -> list[FaceBox]:
        """(H, W, 3) RGB uint8 -> face boxes in its pixels, best first."""
        import cv2

        height, width = image.shape[:2]
        factor = min(1.0, self.max_side / max(height, width))
        small = image if factor == 1.0 else cv2.resize(
            image, (max(1, round(width * factor)), max(1, round(height * factor))), interpolation=cv2.INTER_AREA)
        boxes = []
        for found in self.detector(np.ascontiguousarray(small), self.upsample):
            if found.confidence < self.min_score:
                continue
            rect = found.rect
            box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], np.float64) / factor
            boxes.append(FaceBox(tuple(float(v) for v in box), float(found.confidence)))
        return sorted(boxes, key=lambda box: -box.score)
