"""Drawing one face's UV texture on another face's mesh: the rendering step of face swap by texture transfer.

Every facehub reconstruction shares one UV layout (:class:`~facehub.modeling.geometry.topology.FaceTopology`), so a
texel means the same point of the face on any two faces: the source's texture (completed by symmetry, so the parts
its photo hid are there too) can be drawn on the target's mesh, in the target's photo, at the target's pose and
expression. :func:`render_uv_texture` z-buffers the mesh (:func:`~facehub.modeling.geometry.zbuffer.
rasterize_zbuffer`), culls the triangles that face away (so no surface is seen from behind) and samples the texture
bilinearly; :func:`swap_outline` outlines the part of the face a swap replaces, and :func:`swap_box` the part of the
photo it can change.
"""

from __future__ import annotations

import numpy as np

from facehub.modeling.geometry.orientation import front_facing
from facehub.modeling.geometry.zbuffer import interpolate, rasterize_zbuffer


def render_uv_texture(shape: tuple[int, int], vertices: np.ndarray, triangles: np.ndarray, uvs: np.ndarray,
                      texture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw a UV-textured mesh in an image of ``shape`` (H, W).

    Args:
        vertices: (V, 3) in the image's pixels (x right, y down, z towards the camera).
        triangles: (F, 3); uvs: (V, 2) in [0, 1] (``v`` down); texture: (T, T, 3) uint8.

    Returns:
        (H, W, 3) uint8 colours (0 off the mesh) and (H, W) bool coverage, drawn from the front-facing triangles
        only.
    """
    import cv2

    h, w = int(shape[0]), int(shape[1])
    vertices = np.asarray(vertices, np.float64)
    triangles = np.asarray(triangles, np.int64)
    drawn = triangles[front_facing(vertices, triangles)]
    index, weights = rasterize_zbuffer(vertices[:, :2], vertices[:, 2], drawn, (h, w))
    covered = index >= 0
    uv = interpolate(np.asarray(uvs, np.float64), drawn, index, weights)
    size = texture.shape[0]
    colours = cv2.remap(np.ascontiguousarray(texture), (uv[..., 0] * size - 0.5).astype(np.float32),
                        (uv[..., 1] * size - 0.5).astype(np.float32), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
    return np.where(covered[..., None], colours, 0).astype(np.uint8), covered


def swap_outline(landmarks68: np.ndarray, brow_lift: float = 0.25) -> np.ndarray:
    """(68, 2) the outline of the part of a face a swap replaces: its 68 landmarks (iBUG order) with the eyebrows
    lifted by ``brow_lift`` times their distance to the nose tip, so that the hull of the points
    (:func:`~facehub.modeling.faces.compositing.hull_mask`) takes the forehead's lower part without reaching the
    hairline."""
    points = np.asarray(landmarks68, np.float64)[:, :2].copy()
    brows = np.arange(17, 27)
    points[brows] += (points[brows] - points[30]) * brow_lift
    return points


def swap_box(points: np.ndarray, face_size: float, shape: tuple[int, int],
             margin: float = 0.1) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixels of an image of ``shape`` (H, W) that a swap drawing ``points`` (N, 2: the mesh and the
    mask's outline) can change: their box grown by ``margin`` times ``face_size`` and 4 pixels, beyond the reach of
    the face mask's feathering blur (4 sigma, 5% of the face size) and of the Poisson solve's border, clipped to the
    image."""
    h, w = int(shape[0]), int(shape[1])
    points = np.asarray(points, np.float64)[:, :2]
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        return 0, 0, w, h
    grow = margin * face_size + 4.0
    low, high = points.min(axis=0) - grow, points.max(axis=0) + grow
    x0, y0 = (max(int(np.floor(v)), 0) for v in low)
    x1, y1 = min(int(np.ceil(high[0])), w), min(int(np.ceil(high[1])), h)
    if x1 <= x0 or y1 <= y0:
        return 0, 0, w, h
    return x0, y0, x1, y1
