"""Which way a projected triangle faces: signed areas, fold-overs between two placements, front faces.

A triangle's signed area in the image changes sign when the triangle is seen from its other side. Comparing it
before and after a mesh moves finds the triangles that folded over (a warp's or a re-rendering's surface seen from
behind); comparing it with the mesh's majority finds the triangles that face the camera.
"""

from __future__ import annotations

import numpy as np


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(F,) signed areas of ``triangles`` over (P, >= 2) ``points`` (positive for counter-clockwise in x-right,
    y-down pixels seen as a right-handed plane)."""
    a, b, c = (np.asarray(points, np.float64)[np.asarray(triangles)[:, k], :2] for k in range(3))
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1]))


def folded_triangles(source: np.ndarray, moved: np.ndarray, triangles: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """(F,) bool: the triangles whose orientation flips between the ``source`` and the ``moved`` (P, >= 2) points, a
    fold-over (the mesh is seen from behind there). Triangles degenerate in the source (area below ``tolerance``
    times the largest) never count."""
    before, after = signed_areas(source, triangles), signed_areas(moved, triangles)
    scale = max(float(np.abs(before).max(initial=0.0)), 1e-12)
    return (np.abs(before) > tolerance * scale) & (before * after < 0.0)


def front_facing(vertices: np.ndarray, triangles: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """(F,) bool: triangles whose projected winding matches the majority's in ``reference`` (default ``vertices``:
    a face mesh is mostly front-facing), i.e. that face the camera."""
    reference_areas = signed_areas(vertices if reference is None else reference, triangles)
    front = 1.0 if (reference_areas > 0).sum() >= (reference_areas < 0).sum() else -1.0
    return signed_areas(vertices, triangles) * front > 0
