"""DepthNet's image warper: move a photo's face with keypoint depths and a 3D-to-2D affine (section 2.1, step 5).

Moniz, Beckham et al., "Unsupervised Depth Estimation, 3D Face Rotation and Replacement" (NeurIPS 2018). DepthNet
infers a depth ``z_p`` for every source keypoint and a 3D-to-2D affine ``m`` (eq. 1, solved by eq. 3) with
``[x_n, y_n] = m @ [x_s, y_s, z_p, 1]``. Step 5 warps the source image to the target geometry with these: the
paper passes "source image, keypoints augmented with depth, and the affine matrix" to an OpenGL pipeline and
projects orthographically (the transformed z is dropped). Here that pipeline is PyTorch3D's rasteriser
(:meth:`facehub.modeling.geometry.render.FaceRenderer.rasterize` with an :class:`OrthographicCamera` in pixels):

1. **Mesh** (:func:`build_warp_mesh`). A 2D Delaunay triangulation of the source keypoints plus boundary points,
   so that the skin and hair around the keypoints move with the face:

   - a *ring* around the keypoints: their convex hull resampled to evenly spaced points, scaled about the keypoint
     centroid by ``ring_scale``. Ring depths are extrapolated from the keypoints along each ray from the centroid,
     ``z_ring = z_h + f (k - 1) (z_h - z_c)``, with ``z_h`` the depth interpolated on the hull, ``z_c`` the mean
     keypoint depth, ``k`` the ring scale and ``f`` the fall-off: ``f = 1`` continues the centroid-to-hull slope
     linearly, ``f = 0`` (the default) carries the hull's depth outwards. A face's hull (its jaw line) is close to
     the head's silhouette, beyond which the surface does not keep receding at the same slope; with ``f = 1`` the
     far side of a head turned by 30 degrees folds under itself and tears, with ``f = 0`` it compresses cleanly;
   - optionally an *anchor frame*: points on a box around the source and the moved ring that do not move at all.
     The band between ring and frame stretches smoothly, so the rest of the photo stays in place (face rotation).
     Without anchors (face swap) only the region inside the ring is drawn.

2. **3D transform** (:func:`transform_mesh`). ``m`` only gives the image-plane rows. To let the rasteriser resolve
   occlusions (a nose hiding a cheek once the head turns) the (2, 4) affine is completed to (3, 4) by
   :func:`complete_affine`: the third linear row is the cross product of the first two, scaled to their mean norm,
   with zero translation. For a scaled rotation ``s R`` (its first two rows) this returns ``s R`` exactly, a proper
   rotation; for a general affine it is the scaled-orthographic completion whose z axis is orthogonal to the image
   rows. The new z only orders surfaces; image positions are ``m``'s, exactly as in eq. 1. Anchors keep their
   source pixel and are put behind every moving vertex.

3. **Projection and z-buffer** (:func:`~facehub.modeling.geometry.zbuffer.rasterize_zbuffer`). Orthographic,
   ``(u, v) = (x', y')`` pixels; only the box the mesh covers is rasterised.

4. **Texture** (:func:`_render`). UVs are the vertices' source pixel positions and the texture is the source photo:
   every output pixel samples the photo bilinearly where its surface point came from.

Depth sign: the keypoint loss (eq. 1) cannot tell ``z`` from ``-z`` (flipping the depths and the third column of
``m`` gives the same registration), but the z-buffer can. :func:`orient_depths_towards_camera` picks the sign that
puts the keypoints that must be in front (a face's nose tip) before those behind (its jaw line), the house
convention (z grows towards the camera).

Cost: ~170 triangles (~200 with anchors); the time grows with the pixels the face covers
(``benchmarks/bench_rotation_swap.py`` times the warp on a 512 px photo).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facehub.modeling.geometry.orientation import folded_triangles, signed_areas  # noqa: F401  (re-exported)
from facehub.modeling.geometry.zbuffer import interpolate, rasterize_zbuffer

#: iBUG 68 keypoints in front of / behind the rest for a face seen from the front: the nose tip and the jaw line.
FACE_FRONT_KEYPOINTS = (30,)
FACE_BACK_KEYPOINTS = tuple(range(17))


def complete_affine(affine: np.ndarray) -> np.ndarray:
    """(2, 4) 3D-to-2D affine ``m`` (eq. 1) -> (3, 4) 3D affine whose first two rows are ``m``.

    The third linear row is ``r1 x r2`` rescaled to ``(|r1| + |r2|) / 2``; its translation is 0. For the first two
    rows of a scaled rotation ``s R`` this gives ``s R`` (det > 0): the completion of a similarity is a similarity.
    Raises ``ValueError`` when the rows are (nearly) parallel: ``m`` then squashes the face onto a line and no
    surface orientation exists.
    """
    m = np.asarray(affine, dtype=np.float64)
    if m.shape != (2, 4) or not np.isfinite(m).all():
        raise ValueError(f"Expected a finite (2, 4) 3D-to-2D affine, got shape {m.shape}.")
    r1, r2 = m[0, :3], m[1, :3]
    normal = np.cross(r1, r2)
    norm = float(np.linalg.norm(normal))
    mean_norm = 0.5 * (np.linalg.norm(r1) + np.linalg.norm(r2))
    if norm <= 1e-9 * max(mean_norm**2, 1e-300):
        raise ValueError(f"The affine's rows are parallel (|r1 x r2| = {norm:.3g}); it maps the face onto a line.")
    third = np.append(normal * (mean_norm / norm), 0.0)
    return np.vstack([m, third])


def orient_depths_towards_camera(
    depths: np.ndarray,
    affine: np.ndarray,
    front: tuple[int, ...] = FACE_FRONT_KEYPOINTS,
    back: tuple[int, ...] = FACE_BACK_KEYPOINTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Resolve the depth sign the registration leaves free: flip ``z_p`` and ``m``'s z column if needed so that
    the ``front`` keypoints are nearer the camera (larger z) than the ``back`` ones on average.

    ``m @ [x, y, z, 1]`` is unchanged by the flip, so the registered keypoints are exactly the same.
    """
    depths = np.asarray(depths, dtype=np.float64)
    affine = np.asarray(affine, dtype=np.float64)
    if depths[list(front)].mean() >= depths[list(back)].mean():
        return depths, affine
    flipped = affine.copy()
    flipped[:, 2] *= -1.0
    return -depths, flipped


def resample_closed_polygon(polygon: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` points evenly spaced by arc length along a closed polygon (P, 2).

    Returns the points, and for each the index of its edge's first corner and its fraction along that edge (to
    interpolate per-corner values the same way).
    """
    corners = np.asarray(polygon, dtype=np.float64)
    edges = np.roll(corners, -1, axis=0) - corners
    lengths = np.linalg.norm(edges, axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    stations = np.arange(count) * (cumulative[-1] / count)
    edge = np.clip(np.searchsorted(cumulative, stations, side="right") - 1, 0, len(corners) - 1)
    fraction = (stations - cumulative[edge]) / np.maximum(lengths[edge], 1e-12)
    return corners[edge] + fraction[:, None] * edges[edge], edge, fraction


def keypoint_ring(
    keypoints: np.ndarray, depths: np.ndarray, scale: float = 1.4, count: int = 24, depth_falloff: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """A ring of ``count`` points around the keypoints and their extrapolated depths (module docstring, step 1).

    Args:
        keypoints: (N, 2) source pixels; depths: (N,) their ``z_p``.
        scale: ring size relative to the keypoints' convex hull, about the keypoint centroid (> 1).
        depth_falloff: ``f`` in ``z_ring = z_h + f (scale - 1) (z_h - z_c)``; 1 = linear extrapolation through the
            centroid, 0 = the hull's depth carried outwards.
    """
    from scipy.spatial import ConvexHull

    keypoints = np.asarray(keypoints, dtype=np.float64)
    depths = np.asarray(depths, dtype=np.float64)
    hull = ConvexHull(keypoints).vertices  # counter-clockwise indices
    points, edge, fraction = resample_closed_polygon(keypoints[hull], count)
    hull_depths = depths[hull]
    on_hull = hull_depths[edge] + fraction * (np.roll(hull_depths, -1)[edge] - hull_depths[edge])
    centre, centre_depth = keypoints.mean(axis=0), depths.mean()
    return centre + scale * (points - centre), on_hull + depth_falloff * (scale - 1) * (on_hull - centre_depth)


def anchor_frame(points: np.ndarray, margin: float, per_side: int = 3) -> np.ndarray:
    """Points on the box around ``points`` grown by ``margin`` pixels: 4 corners and ``per_side`` per edge."""
    (x0, y0), (x1, y1) = points.min(axis=0) - margin, points.max(axis=0) + margin
    steps = np.linspace(0.0, 1.0, per_side + 2)[:-1]  # each edge from its first corner, exclusive of its last
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    frame = [a + t * (b - a) for a, b in zip(corners, np.roll(corners, -1, axis=0), strict=True) for t in steps]
    return np.asarray(frame)


@dataclass(frozen=True)
class WarpRing:
    """The ring of boundary points around the keypoints (module docstring, step 1).

    Attributes:
        scale: ring size relative to the keypoints' convex hull, about the keypoint centroid (> 1).
        points: number of ring points.
        depth_falloff: ``f`` in ``z_ring = z_h + f (scale - 1) (z_h - z_c)``.
    """

    scale: float = 1.4
    points: int = 24
    depth_falloff: float = 0.0


@dataclass
class WarpMesh:
    """The warp's triangle mesh in source pixels.

    Attributes:
        points: (V, 2) source pixel positions (the texture coordinates); keypoints first, then the ring, then anchors.
        depths: (V,) depth of each point (``z_p`` for keypoints, extrapolated for the ring, NaN for anchors).
        triangles: (T, 3) int64 Delaunay triangles over ``points``.
        moving: (V,) bool, False for anchors (they keep their source pixel).
        num_keypoints: N, the number of keypoints at the start of ``points``.
    """

    points: np.ndarray
    depths: np.ndarray
    triangles: np.ndarray
    moving: np.ndarray
    num_keypoints: int


def _check_keypoints(keypoints: np.ndarray, depths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    depths = np.asarray(depths, dtype=np.float64)
    if keypoints.ndim != 2 or keypoints.shape[1] != 2 or depths.shape != keypoints.shape[:1]:
        raise ValueError(f"Expected (N, 2) keypoints and (N,) depths, got {keypoints.shape} and {depths.shape}.")
    if len(keypoints) < 3 or not (np.isfinite(keypoints).all() and np.isfinite(depths).all()):
        raise ValueError("Expected at least 3 finite keypoints with finite depths.")
    return keypoints, depths


def build_warp_mesh(
    keypoints: np.ndarray, depths: np.ndarray, ring: WarpRing = WarpRing(), anchors: np.ndarray | None = None
) -> WarpMesh:
    """Delaunay mesh over the keypoints, their ring (:func:`keypoint_ring`) and optional fixed ``anchors`` (A, 2)."""
    from scipy.spatial import Delaunay

    keypoints, depths = _check_keypoints(keypoints, depths)
    ring_xy, ring_depths = keypoint_ring(keypoints, depths, ring.scale, ring.points, ring.depth_falloff)
    anchors = np.zeros((0, 2)) if anchors is None else np.asarray(anchors, dtype=np.float64)
    points = np.concatenate([keypoints, ring_xy, anchors])
    all_depths = np.concatenate([depths, ring_depths, np.full(len(anchors), np.nan)])
    moving = np.arange(len(points)) < len(keypoints) + len(ring_xy)
    triangles = Delaunay(points).simplices.astype(np.int64)
    return WarpMesh(points, all_depths, triangles, moving, len(keypoints))


def transform_points(points: np.ndarray, depths: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(P, 2) points with (P,) depths -> (P, 3) through the completed affine (:func:`complete_affine`)."""
    homogeneous = np.column_stack([points, depths, np.ones(len(points))])
    return homogeneous @ complete_affine(affine).T


def transform_mesh(mesh: WarpMesh, affine: np.ndarray) -> np.ndarray:
    """(V, 3) output positions: moving points through :func:`transform_points`, anchors kept at their source pixel
    and put behind every moving point (by the moved face's extent, so z-buffer ties cannot happen)."""
    moving = mesh.moving
    out = np.zeros((len(mesh.points), 3))
    out[moving] = transform_points(mesh.points[moving], mesh.depths[moving], affine)
    if (~moving).any():
        span = np.ptp(out[moving, :2], axis=0).max()
        out[~moving, :2] = mesh.points[~moving]
        out[~moving, 2] = out[moving, 2].min() - max(span, 1.0)
    return out


@dataclass
class WarpedImage:
    """What :func:`warp_image` returns.

    Attributes:
        image: (H, W, 3) RGB uint8, the warped source over the background.
        mask: (H, W) bool, pixels drawn from the moving part of the mesh (keypoints and ring; not the anchor band).
        keypoints: (N, 2) where the source keypoints land (``m @ [x_s, y_s, z_p, 1]``, eq. 1).
        box: (x0, y0, x1, y1) integer pixel box that was rasterised; outside it the output is the background.
        folded_mask: (H, W) bool, pixels drawn from a moving triangle whose orientation flipped (:func:`folded_triangles`):
            the face folded over itself there, and what shows is a shard of the wrong side.
    """

    image: np.ndarray
    mask: np.ndarray
    keypoints: np.ndarray
    box: tuple[int, int, int, int]
    folded_mask: np.ndarray | None = None

    @property
    def folded_fraction(self) -> float:
        """Share of the moving part's pixels (:attr:`mask`) that show a folded triangle; 0 without fold-overs."""
        if self.folded_mask is None or not self.mask.any():
            return 0.0
        return float(self.folded_mask.sum()) / float(self.mask.sum())


def _render_box(points: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Integer pixel box holding ``points`` (P, >= 2), clipped to a ``height`` x ``width`` image."""
    x0, y0 = (int(v) for v in np.floor(points[:, :2].min(axis=0)))
    x1, y1 = (int(v) for v in np.ceil(points[:, :2].max(axis=0)))
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def warp_image(
    image: np.ndarray,
    keypoints: np.ndarray,
    depths: np.ndarray,
    affine: np.ndarray,
    *,
    output_size: tuple[int, int] | None = None,
    background: np.ndarray | None = None,
    anchored: bool = False,
    anchor_margin: float = 0.25,
    ring: WarpRing = WarpRing(),
) -> WarpedImage:
    """Warp ``image`` so its keypoints move to ``m @ [x_s, y_s, z_p, 1]`` (section 2.1 step 5; module docstring).

    Args:
        image: (H, W, 3) RGB uint8 source photo.
        keypoints: (N, 2) source keypoints ``x_s, y_s`` in pixels; depths: (N,) their ``z_p`` (oriented towards the
            camera, see :func:`orient_depths_towards_camera`).
        affine: (2, 4) 3D-to-2D affine ``m`` of eq. 1.
        output_size: (height, width) of the output; default the source's.
        background: (height, width, 3) RGB uint8 drawn where the mesh is not; default the source image when the
            sizes agree, else black.
        anchored: add a fixed frame around the face, ``anchor_margin`` times the face's extent beyond both the
            source and the moved ring, so the photo around the face stays in place (rotating a face in its photo).
        ring: the boundary ring (:class:`WarpRing`).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"Expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}.")
    src_h, src_w = image.shape[:2]
    height, width = output_size if output_size is not None else (src_h, src_w)
    if background is None:
        background = image if (height, width) == (src_h, src_w) else np.zeros((height, width, 3), np.uint8)
    background = np.asarray(background)
    if background.shape != (height, width, 3):
        raise ValueError(f"background must be ({height}, {width}, 3), got {background.shape}.")

    anchors = None
    if anchored:
        keypoints, depths = _check_keypoints(keypoints, depths)
        ring_xy, ring_depths = keypoint_ring(keypoints, depths, ring.scale, ring.points, ring.depth_falloff)
        moved = transform_points(ring_xy, ring_depths, affine)[:, :2]
        extent = np.concatenate([ring_xy, moved])
        anchors = anchor_frame(extent, anchor_margin * np.ptp(extent, axis=0).max())
    mesh = build_warp_mesh(keypoints, depths, ring, anchors)
    vertices = transform_mesh(mesh, affine)
    x0, y0, x1, y1 = _render_box(vertices, height, width)
    output = np.array(background, dtype=np.uint8, copy=True)
    mask = np.zeros((height, width), dtype=bool)
    folded = np.zeros((height, width), dtype=bool)
    if x1 > x0 and y1 > y0:
        crop, crop_mask, crop_folded = _render(image, mesh, vertices, background[y0:y1, x0:x1], (x0, y0, x1, y1))
        output[y0:y1, x0:x1] = crop
        mask[y0:y1, x0:x1] = crop_mask
        folded[y0:y1, x0:x1] = crop_folded
    return WarpedImage(output, mask, vertices[: mesh.num_keypoints, :2].copy(), (x0, y0, x1, y1), folded)


def _render(
    image: np.ndarray, mesh: WarpMesh, vertices: np.ndarray, background: np.ndarray, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the image-textured mesh over ``background`` (the output crop ``box``); returns the crop, the mask
    of pixels drawn from the moving part of the mesh, and the mask of those drawn from a folded triangle.

    Texture lookup: each pixel's source position is the barycentric mix of its triangle's source pixels (the UVs),
    sampled bilinearly with ``cv2.remap`` (pixel centres at half-integers, edges clamped). This equals the
    renderer's UV interpolation + ``grid_sample`` on the image texture, in uint8 and without a float copy of the
    photo; with the identity transform it returns the source pixels exactly.
    """
    import cv2

    # The warp mesh has a few hundred triangles, some as large as the face: the z-buffer tests those on their rows'
    # spans, so they cost their area (PyTorch3D's tiles draw the same pixels, a few times slower).
    x0, y0, x1, y1 = box
    vertices = np.asarray(vertices, dtype=np.float64)
    face_index, barycentric = rasterize_zbuffer(vertices[:, :2] - [x0, y0], vertices[:, 2], mesh.triangles,
                                                (y1 - y0, x1 - x0))
    covered = face_index >= 0
    source_xy = interpolate(mesh.points, mesh.triangles, face_index, barycentric) - 0.5  # cv2's pixel indices
    sampled = cv2.remap(
        image,
        source_xy[..., 0],
        source_xy[..., 1],
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    rendered = np.where(covered[..., None], sampled, background)
    moving_triangle = mesh.moving[mesh.triangles].any(axis=1)
    folded = folded_triangles(mesh.points, vertices, mesh.triangles) & moving_triangle
    seen = np.clip(face_index, 0, None)
    moving_pixels = covered & mesh.moving[mesh.triangles].all(axis=1)[seen]
    return rendered, moving_pixels, covered & folded[seen]
