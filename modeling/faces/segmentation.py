"""Person segmentation: which pixels of a photo show a person (face, hair, neck, body) and which the background.

MediaPipe's selfie segmentation (the general 256 x 256 model, shipped inside the mediapipe 0.10.14 wheel, run
through ``mp.solutions`` like :mod:`.detection`): a per-pixel probability that the pixel belongs to a person. The
whole-head rotation uses it to tell hair from the background around it (:mod:`facehub.modeling.geometry.head_rotation`,
*the person's outline*): the background stays where it is while the head turns in front of it.

The network sees a 256 px image whatever the photo's size, so a photo is first reduced to :attr:`PersonSegmenter.
max_side` pixels on its longer side and the probabilities are brought back to its own size by linear interpolation.
"""

from __future__ import annotations

import numpy as np

from facehub.modeling.faces.detection import _process
from facehub.modeling.faces.image_io import ImageSource, load_image


class PersonSegmenter:
    """Photo -> (H, W) float32 probability in [0, 1] that each pixel shows a person; the graph is created on first use.

    Args:
        max_side: photos longer than this are segmented at this size (the network's own input is 256 px).

    Not thread-safe (MediaPipe graphs keep state): use one segmenter per thread.
    """

    def __init__(self, max_side: int = 512):
        if max_side < 16:
            raise ValueError(f"max_side must be at least 16 pixels, got {max_side}.")
        self.max_side = int(max_side)
        self._graph = None

    @property
    def graph(self):
        if self._graph is None:
            import mediapipe as mp

            self._graph = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        return self._graph

    def __call__(self, image: ImageSource) -> np.ndarray:
        """The person probability of every pixel of ``image`` (RGB uint8 array, PIL image, path or bytes)."""
        import cv2

        image = np.ascontiguousarray(load_image(image)[..., :3])
        h, w = image.shape[:2]
        factor = min(1.0, self.max_side / max(h, w))
        small = image
        if factor < 1.0:
            size = (max(int(round(w * factor)), 1), max(int(round(h * factor)), 1))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        mask = _process(self.graph, small).segmentation_mask
        mask = np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)
        if mask.shape != (h, w):
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        return mask

    def close(self) -> None:
        """Free MediaPipe's graph (re-created on the next call)."""
        if self._graph is not None:
            self._graph.close()
            self._graph = None
