"""The canonical frontal face used for head pose, and the left/right vertex permutation of MediaPipe's mesh.

``data/canonical_face.safetensors`` holds

- ``vertices``: (478, 3) float32, the mean MediaPipe face mesh (468 vertices + 10 iris points) of the frontal test
  photos in tests/data/photos and their mirror images, looking straight at the camera: x right, y down, z towards
  the camera (the house convention), centred on the mean of the 468 mesh vertices, eye-centre distance 1.
  "Straight" means: mirror-symmetric about the plane x = 0 (so left/right pairs are level and the eye line is
  horizontal: yaw = roll = 0), and the forehead top (vertex 10) and the chin (vertex 152) at the same depth
  (pitch = 0: the forehead-chin line lies in the image plane).
- ``mirror``: (478,) int64, the vertex that each vertex becomes when the face is mirrored left/right.

It is rebuilt from the photos by ``python -m facehub.modeling.faces.build_canonical``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

CANONICAL_FACE_PATH = Path(__file__).parent / "data" / "canonical_face.safetensors"

#: Mesh vertices defining the canonical frame (MediaPipe numbering).
FOREHEAD_VERTEX = 10
CHIN_VERTEX = 152
RIGHT_EYE_VERTICES = (33, 133)  # subject's right eye, outer and inner corners
LEFT_EYE_VERTICES = (263, 362)  # subject's left eye, outer and inner corners


@lru_cache(maxsize=1)
def _load() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    if not CANONICAL_FACE_PATH.exists():
        raise FileNotFoundError(
            f"The canonical face {CANONICAL_FACE_PATH} is missing from the installation; rebuild it with "
            "`python -m facehub.modeling.faces.build_canonical` (needs the repository's tests/data/photos)."
        )
    return load_file(str(CANONICAL_FACE_PATH))


def canonical_face() -> np.ndarray:
    """(478, 3) float64 canonical frontal face (see the module docstring for its frame)."""
    return _load()["vertices"].astype(np.float64)


def mirror_permutation() -> np.ndarray:
    """(478,) index array: ``mirrored_points = reflect(points)[mirror_permutation()]``."""
    return _load()["mirror"].astype(np.int64)


def mirror_landmarks(points: np.ndarray, width: float) -> np.ndarray:
    """Dense landmarks found on an image mirrored left/right -> the same face's landmarks on the original image.

    The x coordinate is reflected (``x -> width - x``) and the vertices are renumbered so that, e.g., the subject's
    right eye corner is again vertex 33.
    """
    reflected = np.array(points, dtype=np.float64, copy=True)
    reflected[:, 0] = width - reflected[:, 0]
    return reflected[mirror_permutation()[: len(reflected)]]
