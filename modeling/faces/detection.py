"""Face detection and dense 3D landmarks with MediaPipe's legacy solutions (models ship inside the mediapipe wheel).

Two MediaPipe graphs are used (mediapipe 0.10.14, ``mp.solutions``):

- ``face_detection`` (BlazeFace, full-range model): boxes, found even for small faces in large photos.
- ``face_mesh`` (Kartynnik et al., "Real-time Facial Surface Geometry from Monocular Video on Mobile GPUs", 2019;
  ``refine_landmarks=True`` adds the attention-mesh iris points): 478 points, the 468 face-mesh vertices followed by
  10 iris points (468-472 around the subject's right iris, 473-477 around the left one, the centre first).

MediaPipe returns x and y normalised by the image width and height and a relative depth z in the units of x
(normalised by the width), negative towards the camera. :func:`mesh_to_pixels` converts to pixels with z growing
towards the camera (the house convention, :mod:`facehub.modeling.geometry`): ``(x * W, y * H, -z * W)``.

Large poses: the mesh runs on a square crop around each detected box; where the detector finds nothing (profile
views, faces filling the frame) the mesh runs on the whole image, then on the image with a border added, then on its
mirror image, whose landmarks are mirrored back with the vertex permutation of :mod:`.canonical`.

MediaPipe graphs keep state and are not thread-safe: use one :class:`MediaPipeFaceMesh` per thread.
"""

from __future__ import annotations

import warnings

import numpy as np

# mediapipe 0.10.14 calls a protobuf API that protobuf 4 deprecates, once per graph run; the warning is not ours to fix.
_PROTOBUF_WARNING = r"SymbolDatabase\.GetPrototype\(\) is deprecated"


def _process(graph, image: np.ndarray):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PROTOBUF_WARNING, category=UserWarning)
        return graph.process(image)


NUM_DENSE_LANDMARKS = 478  # 468 face-mesh vertices + 10 iris points


def mesh_to_pixels(landmarks, width: int, height: int) -> np.ndarray:
    """MediaPipe ``NormalizedLandmarkList`` -> (478, 3) float pixels, z growing towards the camera."""
    points = np.array([(p.x, p.y, p.z) for p in landmarks.landmark], dtype=np.float64)
    return points * np.array([width, height, -width], dtype=np.float64)


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def landmarks_box(points: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) tight box of the x, y of (N, >=2) points."""
    return np.concatenate([points[:, :2].min(axis=0), points[:, :2].max(axis=0)])


class MediaPipeFaceMesh:
    """Faces -> dense 3D landmarks, created lazily once and reused.

    Args:
        max_num_faces: most faces returned per image.
        min_detection_confidence: score threshold of the detector and of the mesh's own face check.
        crop_scale: side of the square crop given to the mesh, as a multiple of the detected box's larger side.
    """

    def __init__(self, max_num_faces: int = 8, min_detection_confidence: float = 0.5, crop_scale: float = 2.0):
        if max_num_faces < 1:
            raise ValueError(f"max_num_faces must be at least 1, got {max_num_faces}.")
        self.max_num_faces = max_num_faces
        self.min_detection_confidence = min_detection_confidence
        self.crop_scale = crop_scale
        self._detector = None
        self._mesh_single = None
        self._mesh_multi = None

    # -- lazily created MediaPipe graphs -------------------------------------------------------------------------

    @property
    def detector(self):
        if self._detector is None:
            import mediapipe as mp

            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.min_detection_confidence
            )
        return self._detector

    def _mesh(self, multi: bool):
        import mediapipe as mp

        if multi and self._mesh_multi is None:
            self._mesh_multi = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=self.max_num_faces,
                refine_landmarks=True,
                min_detection_confidence=self.min_detection_confidence,
            )
        if not multi and self._mesh_single is None:
            self._mesh_single = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=self.min_detection_confidence,
            )
        return self._mesh_multi if multi else self._mesh_single

    def close(self) -> None:
        """Free the MediaPipe graphs (they are re-created on the next call)."""
        for graph in (self._detector, self._mesh_single, self._mesh_multi):
            if graph is not None:
                graph.close()
        self._detector = self._mesh_single = self._mesh_multi = None

    # -- steps ---------------------------------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """BlazeFace boxes ``(x0, y0, x1, y1)`` in pixels with their scores, best first."""
        height, width = image.shape[:2]
        result = _process(self.detector, image)
        boxes = []
        for detection in result.detections or []:
            rel = detection.location_data.relative_bounding_box
            box = np.array(
                [rel.xmin * width, rel.ymin * height, (rel.xmin + rel.width) * width, (rel.ymin + rel.height) * height]
            )
            boxes.append((box, float(detection.score[0])))
        return sorted(boxes, key=lambda item: -item[1])

    def mesh(self, image: np.ndarray, multi: bool = True) -> list[np.ndarray]:
        """Dense landmarks of the faces the mesh graph finds by itself in ``image`` (its own short-range check)."""
        height, width = image.shape[:2]
        result = _process(self._mesh(multi), np.ascontiguousarray(image))
        return [mesh_to_pixels(landmarks, width, height) for landmarks in result.multi_face_landmarks or []]

    def mesh_in_box(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """Dense landmarks of the face in ``box``, from a square crop around it (zero-padded at the borders)."""
        height, width = image.shape[:2]
        center = (box[:2] + box[2:]) / 2
        side = max(int(round(self.crop_scale * max(box[2] - box[0], box[3] - box[1]))), 32)
        x0, y0 = int(round(center[0] - side / 2)), int(round(center[1] - side / 2))
        crop = np.zeros((side, side, 3), dtype=np.uint8)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
        if sx1 <= sx0 or sy1 <= sy0:
            return None
        crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
        meshes = self.mesh(crop, multi=False)
        if not meshes:
            return None
        return meshes[0] + np.array([x0, y0, 0.0])

    # -- the whole cascade ---------------------------------------------------------------------------------------

    def __call__(self, image: np.ndarray) -> list[np.ndarray]:
        """(H, W, 3) RGB uint8 -> list of (478, 3) dense landmarks in pixels (unsorted, at most ``max_num_faces``)."""
        meshes: list[np.ndarray] = []
        for box, _score in self.detect(image):
            if len(meshes) >= self.max_num_faces:
                break
            points = self.mesh_in_box(image, box)
            if points is None:
                continue
            found = landmarks_box(points)
            if all(_box_iou(found, landmarks_box(other)) < 0.5 for other in meshes):
                meshes.append(points)
        if meshes:
            return meshes
        # Fallbacks for what the detector misses: the mesh's own detector on the image, with a border, mirrored.
        meshes = self.mesh(image)
        if not meshes:
            height, width = image.shape[:2]
            pad = max(height, width) // 4
            padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
            meshes = [points - np.array([pad, pad, 0.0]) for points in self.mesh(padded)]
        if not meshes:
            from facehub.modeling.faces.canonical import mirror_landmarks

            width = image.shape[1]
            meshes = [mirror_landmarks(points, width) for points in self.mesh(np.ascontiguousarray(image[:, ::-1]))]
        return meshes[: self.max_num_faces]
