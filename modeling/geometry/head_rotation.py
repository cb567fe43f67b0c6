"""Turn a whole head in a photo: the reconstructed face plus a layered-depth proxy of the rest of the head, rendered
with a z-buffer.

A face mesh alone turns only the face: pasted over an unchanged head it leaves a doubled outline, and hair, ears and
neck stay where they were. This module follows the two ideas of the anchors the rotation issue names:

- **Face profiling** (Zhu et al., "Face Alignment Across Large Poses: A 3D Solution", CVPR 2016, sec. 5): the whole
  region around the face becomes one mesh whose vertices carry estimated depths, so hair, ears and the nearby
  background move with the face; the region's outer ring stays fixed, so the result joins the photo without a seam
  (where the head meets the photo's edge, the grid and its fixed ring go on past the edge, :func:`_head_grid_box`,
  and what the turn brings into view from there is the photo's edge blurred with the distance from it,
  :func:`_extend_past_edges`).
  Here the mesh is a regular grid over the head's box with three depth layers: the face (the reconstruction's own
  surface), the rest of the head (an ellipsoid proxy, :class:`HeadProxy`, placed by the similarity that takes the
  morphable model's mean shape onto the reconstruction and joined to the face surface without a step), and the
  background (the head centre's depth). The rotation fades from the full angle on the head to none over a band
  around it (:attr:`HeadProxy.band`), each vertex turned about the head's pivot by its fraction of the angle.
  Across the band the depth goes from the head's outline to the centre's (*the band's depth*, below).
- **Rendering the complete face** (Zhou et al., "Rotate-and-Render", CVPR 2020): the dense face mesh, textured with
  the texture completed by left-right symmetry, is drawn over the grid (*the face over the head*, below).
  Parts of the face the photo does not show (the far cheek of a turned face) come from their mirror texels, and
  surfaces that turn away are hidden by the z-buffer instead of folding over the visible ones. Parts it shows well
  are drawn from the photo itself, at the point each came from (:data:`PHOTO_VISIBILITY`), so the face keeps the
  photo's resolution however large it is; the two blend over the texels seen at a grazing angle.

**The face's rim.** The face mesh ends where MediaPipe's face oval does, in front of the ears, and the depth it
gives that edge is a network's guess from one view. It is too shallow: turned, the far cheek stays too wide and the
face reads less turned than its geometry. The rim is set back along the viewing ray (:func:`set_back_rim`,
:attr:`HeadProxy.rim_depth`), smoothly from part of the way out, so every point keeps the colour it has in the photo;
the rest of the head then joins the deeper edge.

**The band's depth.** What lies just outside the head's outline (an ear, the hair beside the face, background) starts
at the depth of the outline itself: the depths along the outline, spread smoothly outwards (:func:`_outline_depth`).
A smooth average of the whole inside would not do: its middle (nose, cheeks) is far shallower than the set-back rim,
so the ear beside the rim would stand in front of it, and a turn that brings that side towards the camera would slide
the rim over the ear. The grid between them folds and is culled, and the face covers the ear and hair, leaving
background beside the cheek. Starting at the outline, the side of the head turns with the face and stretches.

**The person's outline.** The ellipsoid is an average head: around a head with short hair, and in the band beside any
head, the grid covers background, which then turned with the head, a swirl of the backdrop over the crown. Given a
person mask (:class:`~facehub.modeling.faces.segmentation.PersonSegmenter`, MediaPipe's selfie segmentation), grid
points on the background stay where they are, behind everything. The triangles joining them to the person stretch
from the turned hair to the still backdrop behind the head. Drawn however far they stretch, they smeared streaks of
hair and backdrop beside a head turned 45 degrees or more; all left out, they left holes along the top of the head
that the head proxy filled with the forehead's mirrored skin (notches in the hair). So one is drawn while its area
grows at most :data:`TORN_STRETCH` times, and torn beyond: what it would have covered shows the background the head
uncovered, the photo's with the person inpainted out of it (:func:`_background_plate`), as does any hole the turned
person does not cover. The head proxy's colours are taken from the photo only where it shows the person (the head is
the ellipsoid cut to the person's outline, and its unseen side the mirror of that). Without a mask everything inside
the head's outline turns, as before.

**The face over the head.** The face mesh is drawn as a layer over the grid: its own z-buffer decides which of its
parts are seen, but the head proxy never hides it. The proxy's depths are a guess, and where they are wrong they
would cover the face: beyond the far cheek of a turned face the photo shows background, which the ellipsoid carries
as the side of the head and, turned back towards the camera, swings in front of the cheek the face mesh reveals
(the face was torn in two there, half of it the background's colour). Its edge fades into what lies around it over
a few millimetres (:attr:`HeadProxy.feather`).

The z-buffer is :func:`~facehub.modeling.geometry.zbuffer.rasterize_zbuffer` (tens of milliseconds for ~70k
triangles at 512 px). Grid triangles wholly inside the face are left out (the face mesh draws the face), and every
triangle whose winding flipped is culled: it would show a surface from behind, a fold-over. A pixel that no drawn
triangle covers (background uncovered behind the head, the side of the head the photo never saw) takes the colour of
the head proxy's point seen there, from the photo or, where the photo did not see it, from its mirror point across the
head's mid-plane (the symmetric completion carried over to hair and ears); what is left is inpainted. Stretched grid
triangles are drawn stretched, unless :attr:`HeadProxy.max_stretch` says how far a triangle may grow before its
pixels are filled like the uncovered ones (filled a triangle here and another there, they show as scattered patches
of mirrored hair). :class:`HeadRotation` reports how much was filled and culled.

**Large photos.** Drawing costs time in proportion to the region's pixels, and a close-up in a phone photo makes that
region tens of megapixels. A region longer than :attr:`HeadProxy.max_render_side` is drawn in the photo resized to that
size. Every drawn pixel there knows the point of the photo it shows and how much of its colour came from the photo at
that point (the grid and the face's seen part: all of it; the completed texture and inpainted holes: none). At the
photo's size each pixel is the resized drawing plus, in that proportion, the photo's fine detail at its point: the
full-size photo there less the resized photo there (a two-band blend along the warp, as in Laplacian-pyramid
blending). So faces keep their resolution, and only the edges where one surface hides another are placed at the
drawing's resolution.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from facehub.modeling.geometry.orientation import folded_triangles, front_facing, signed_areas
from facehub.modeling.geometry.procrustes import Similarity, umeyama
from facehub.modeling.geometry.rotations import rotation_matrix
from facehub.modeling.geometry.zbuffer import interpolate, rasterize_zbuffer


@dataclass(frozen=True)
class HeadProxy:
    """The head around the face, in the morphable model's mean-shape frame (x right, y down, z towards the camera;
    one unit is a millimetre: the mean shape's outer eye corners are 90 apart, the adult average).

    Sizes are adult averages (head breadth about 155 mm, length about 195 mm, vertex about 115 mm above the eyes).

    Attributes:
        centre: the cranium ellipsoid's centre.
        radii: its semi-axes along x, y, z.
        pivot: the point the head turns about (near the top of the spine, behind the ears).
        band: width of the ring around the head over which the rotation fades to none, in units of ``radii[0]``.
        margin: the rendered region is the head's box grown by this many ``radii[0]`` on every side (at least the
            band).
        grid_points: grid points along the longer side of the rendered region (the step is at least 1 pixel).
        max_stretch: grid triangles whose area grows more than this factor are filled like uncovered pixels (the
            head proxy's colours, else inpainting) instead of drawn stretched; ``None`` draws every one (module
            docstring). The default was chosen with ``facehub eval rotation`` on development photos, with the
            band's depth starting at the head's outline.
        rim_depth: how far (mm) the face mesh's outer edge is set back along the viewing ray (module docstring,
            *the face's rim*); 0 keeps the reconstruction's depth. The default was chosen with ``facehub eval
            rotation`` on development photos: the measured yaw nearest the request for the least loss of identity.
        rim_start: where the setting back begins, as a fraction of the way from the face's centre to its edge; it
            grows with the square of the distance past this point.
        feather: the drawn face fades into what lies around it over this many millimetres inside its outline (an
            anti-aliased silhouette instead of a cut-out edge); 0 draws a hard edge.
        max_render_side: the longest side, in pixels, at which the region is drawn; a larger region (a large face in a
            large photo) is drawn at this size and brought back to the photo's own with the photo's fine detail (module
            docstring, *large photos*). ``None`` draws every region at its own size.
    """

    centre: tuple[float, float, float] = (0.0, -46.0, -85.0)
    radii: tuple[float, float, float] = (86.0, 104.0, 100.0)
    pivot: tuple[float, float, float] = (0.0, -25.0, -35.0)
    band: float = 0.6
    margin: float = 0.75
    grid_points: int = 160
    max_stretch: float | None = None
    rim_depth: float = 20.0
    rim_start: float = 0.55
    feather: float = 3.0
    max_render_side: int | None = 1024


@dataclass
class HeadRotation:
    """What :func:`rotate_head` returns.

    Attributes:
        image: (H, W, 3) uint8 the photo with the head turned.
        rotation: (3, 3) the rotation applied to the head (target pose times the inverse of the current pose).
        current_pose, target_pose: (yaw, pitch, roll) degrees before and after (house convention).
        region: (x0, y0, x1, y1) pixels re-rendered; everything outside is the photo unchanged.
        face_mask: (H, W) bool pixels where the face mesh is seen on the result.
        filled_fraction: share of the region's pixels that no drawn surface covered well (uncovered, culled, or
            stretched past :attr:`HeadProxy.max_stretch` when it is set): they show the head proxy's colour of that
            point, from the photo or from its mirror point (``mirrored_fraction`` of the region), the background the
            head uncovered (``uncovered_fraction``), or are inpainted.
        mirrored_fraction: share of the region filled from the head proxy's colours.
        uncovered_fraction: share of the region filled with the background the head uncovered (with a person mask:
            module docstring, *the person's outline*).
        culled_fraction: share of the region's pixels that a surface seen from behind (a triangle whose winding
            flipped: a fold-over) would have covered. Such triangles are culled, never drawn, so no fold-over shows;
            their pixels are filled like the other holes.
        timings: seconds per stage (``proxy``, ``raster``, ``shade``; ``full_size`` for a region drawn at
            :attr:`HeadProxy.max_render_side` and brought back to the photo's size).
    """

    image: np.ndarray
    rotation: np.ndarray
    current_pose: tuple[float, float, float]
    target_pose: tuple[float, float, float]
    region: tuple[int, int, int, int]
    face_mask: np.ndarray
    filled_fraction: float
    culled_fraction: float
    mirrored_fraction: float = 0.0
    uncovered_fraction: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def head_similarity(vertices: np.ndarray, reference: np.ndarray | None = None) -> Similarity:
    """The similarity taking the morphable model's mean shape (``reference``, mm) onto a (468, 3) mesh in pixels."""
    if reference is None:
        from facehub.modeling.geometry.morphable import MorphableFaceModel

        reference = MorphableFaceModel.default().mean_shape.numpy()
    vertices = np.asarray(vertices, dtype=np.float64)
    return umeyama(np.asarray(reference, np.float64), vertices[: len(reference)])


def rotate_points(points: np.ndarray, pivot: np.ndarray, rotation: np.ndarray,
                  fraction: np.ndarray | float = 1.0) -> np.ndarray:
    """Turn (N, 3) ``points`` about ``pivot`` by ``fraction`` (scalar or (N,), in [0, 1]) of ``rotation``'s angle
    about its axis (Rodrigues' formula with a per-point angle)."""
    points = np.asarray(points, dtype=np.float64)
    cos_total = np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos_total))
    if angle < 1e-9:
        return points.copy()
    axis = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]])
    norm = np.linalg.norm(axis)
    if norm < 1e-9:  # a half turn: the axis is the eigenvector of eigenvalue 1
        values, vectors = np.linalg.eigh((rotation + rotation.T) / 2.0)
        axis = vectors[:, np.argmax(values)]
    else:
        axis = axis / norm
    theta = angle * np.broadcast_to(np.asarray(fraction, dtype=np.float64), (len(points),))
    v = points - pivot
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    return pivot + v * cos + np.cross(axis, v) * sin + axis * (v @ axis)[:, None] * (1.0 - cos)


def set_back_rim(points: np.ndarray, similarity: Similarity, proxy: HeadProxy) -> np.ndarray:
    """(N, 3) face points in pixels with the face's rim set back along the viewing ray (module docstring).

    Where a point lies, as a fraction ``r`` of the way from the centre of the mean shape's outline to its edge
    (an ellipse fitted to the mean shape's extent in its own frame), its depth falls by
    ``rim_depth * ((r - rim_start) / (1 - rim_start))**2`` millimetres (converted to pixels by the similarity's
    scale); x and y are unchanged, so every point keeps the photo's colour it had.
    """
    points = np.asarray(points, dtype=np.float64)
    if proxy.rim_depth <= 0.0:
        return points
    half_width, half_height, centre = _outline_ellipse()
    local = similarity.inverse().apply(points)
    r = np.hypot((local[:, 0] - centre[0]) / half_width, (local[:, 1] - centre[1]) / half_height)
    fall = np.clip((r - proxy.rim_start) / (1.0 - proxy.rim_start), 0.0, None) ** 2
    moved = points.copy()
    moved[:, 2] -= proxy.rim_depth * similarity.scale * fall
    return moved


class ScaledReconstruction:
    """A reconstruction as seen in its photo resized by ``factor``: what :func:`rotate_head` reads of it (the
    468-vertex mesh, the pose, the dense mesh, the completed texture's visibility) with every pixel position and depth
    scaled; the UV textures are the original's, which no resizing of the photo changes."""

    def __init__(self, reconstruction, factor: float):
        self.reconstruction, self.factor = reconstruction, float(factor)
        self.vertices = np.asarray(reconstruction.vertices, dtype=np.float64) * self.factor
        self.pose = reconstruction.pose

    def dense_mesh(self, **kwargs):
        dense = self.reconstruction.dense_mesh(**kwargs)
        vertices = np.asarray(dense.vertices)
        return replace(dense, vertices=(vertices * self.factor).astype(vertices.dtype))

    def texture_completion_at(self, size: int | None = None, occluders: str = "keep"):
        return self.reconstruction.texture_completion_at(size, occluders)


@lru_cache(maxsize=1)
def _outline_ellipse() -> tuple[float, float, tuple[float, float]]:
    """Half width, half height and centre (x, y) of the morphable model's mean shape, in its frame (mm)."""
    from facehub.modeling.geometry.morphable import MorphableFaceModel

    mean = MorphableFaceModel.default().mean_shape.numpy().astype(np.float64)
    low, high = mean[:, :2].min(axis=0), mean[:, :2].max(axis=0)
    centre = (low + high) / 2.0
    return float(high[0] - low[0]) / 2.0, float(high[1] - low[1]) / 2.0, (float(centre[0]), float(centre[1]))


def _ellipsoid_front(xy: np.ndarray, similarity: Similarity, centre, radii) -> tuple[np.ndarray, np.ndarray]:
    """z (pixels) of the nearest point of the posed ellipsoid on the viewing ray through each (N, 2) pixel, and
    whether the ray meets it."""
    centre_px = similarity.apply(np.asarray(centre, np.float64)[None])[0]
    inverse = similarity.rotation.T / similarity.scale  # pixel offsets -> model units
    a = (np.column_stack([xy - centre_px[:2], np.full(len(xy), -centre_px[2])])) @ inverse.T
    b = inverse[:, 2]
    d = 1.0 / np.square(np.asarray(radii, np.float64))
    qa, qb, qc = (b * b * d).sum(), (a * b * d).sum(axis=1), (a * a * d).sum(axis=1) - 1.0
    disc = qb * qb - qa * qc
    hit = disc >= 0.0
    t = (-qb + np.sqrt(np.maximum(disc, 0.0))) / qa
    return t, hit


def _gaussian_kernel_size(sigma: float) -> int:
    """Side of the Gaussian kernel :func:`_smooth_fill` blurs with (three sigmas each way)."""
    return int(2 * round(3 * sigma) + 1)


def _smooth_fill(values: np.ndarray, known: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution: ``values`` (H, W) or (H, W, C) known where ``known`` (H, W) spread smoothly over the
    grid; also the (H, W) weight."""
    import cv2

    k = _gaussian_kernel_size(sigma)
    weight = cv2.GaussianBlur(known.astype(np.float64), (k, k), sigma, borderType=cv2.BORDER_REPLICATE)
    channels = (...,) if values.ndim == known.ndim else (..., None)
    total = cv2.GaussianBlur(np.where(known[channels], values, 0.0), (k, k), sigma, borderType=cv2.BORDER_REPLICATE)
    return total / np.maximum(weight, 1e-9)[channels], weight


def _outline_depth(z: np.ndarray, inside: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) the depths ``z`` of the outline of ``inside`` (its pixels with a neighbour outside, 8-connected) spread
    smoothly over the grid: where the band around the head starts (module docstring, *the band's depth*)."""
    import cv2

    outline = inside & ~cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8),
                                  borderType=cv2.BORDER_REPLICATE).astype(bool)
    return _smooth_fill(z, outline, sigma)[0]


def rotate_head(
    image: np.ndarray,
    reconstruction,
    yaw: float,
    pitch: float,
    roll: float | None = None,
    *,
    current_pose: tuple[float, float, float] | None = None,
    proxy: HeadProxy | None = None,
    person_mask: np.ndarray | None = None,
) -> HeadRotation:
    """Re-render the head of ``image`` at pose ``(yaw, pitch, roll)`` (degrees, house convention; ``roll=None``
    keeps the current roll). See the module docstring.

    Args:
        image: (H, W, 3) uint8 RGB photo.
        reconstruction: a :class:`~facehub.modeling.prn_dense.FaceReconstruction` of a face in ``image`` (PRN-Dense
            or a morphable-model fit): its 468-vertex mesh places the head, its dense mesh with the completed
            texture is the face drawn at the new pose.
        current_pose: the face's pose now; default the reconstruction's own (``reconstruction.pose``).
        proxy: the head's proportions and the renderer's settings (:class:`HeadProxy`).
        person_mask: (H, W) probability that each pixel of ``image`` shows a person
            (:class:`~facehub.modeling.faces.segmentation.PersonSegmenter`): the background it marks stays where it
            is (module docstring, *the person's outline*). ``None`` turns everything inside the head's outline.
    """
    import cv2

    proxy = proxy or HeadProxy()
    image = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
    if person_mask is not None:
        person_mask = np.asarray(person_mask, dtype=np.float32)
        if person_mask.shape != image.shape[:2]:
            raise ValueError(f"The person mask is {person_mask.shape}, the photo {image.shape[:2]}: give one "
                             "probability per pixel of the photo.")
    current = tuple(float(a) for a in (current_pose if current_pose is not None else reconstruction.pose))
    target = (float(yaw), float(pitch), current[2] if roll is None else float(roll))
    vertices = np.asarray(reconstruction.vertices, dtype=np.float64)
    x0, y0, x1, y1 = _head_region(image.shape[:2], vertices, head_similarity(vertices), proxy)
    side = max(x1 - x0, y1 - y0)
    if proxy.max_render_side is None or side <= proxy.max_render_side:
        return _draw_head(image, reconstruction, current, target, proxy, person_mask=person_mask).result
    # Large photos (module docstring): drawn in the photo resized so that the region's longer side fits.
    h, w = image.shape[:2]
    factor = proxy.max_render_side / side
    size = (max(int(round(w * factor)), 1), max(int(round(h * factor)), 1))
    small_image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_mask = None if person_mask is None else cv2.resize(person_mask, size, interpolation=cv2.INTER_AREA)
    drawn = _draw_head(small_image, ScaledReconstruction(reconstruction, size[0] / w), current, target, proxy,
                       with_sources=True, person_mask=small_mask)
    return _at_photo_size(image, small_image, drawn)


def _head_region(shape: tuple[int, int], vertices: np.ndarray, similarity: Similarity,
                 proxy: HeadProxy) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixels re-rendered: the head's box (ellipsoid corners and the face), grown by the margin and
    clipped to the photo of ``shape`` (H, W)."""
    return _inside_photo(_head_grid_box(shape, vertices, similarity, proxy), shape)


def _inside_photo(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` (x0, y0, x1, y1) clipped to the photo of ``shape`` (H, W)."""
    x0, y0, x1, y1 = box
    return max(x0, 0), max(y0, 0), min(x1, shape[1]), min(y1, shape[0])


def _head_grid_box(shape: tuple[int, int], vertices: np.ndarray, similarity: Similarity,
                   proxy: HeadProxy) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixels the proxy's grid spans: the head's box grown by the margin, reaching past an edge of
    the photo of ``shape`` (H, W) by at most that margin.

    The grid's border stays where it is, so that the region joins the photo without a seam. Where the head meets an
    edge of the photo there is nothing to join: a border pinned on the edge would hold the hair there in place while
    the head turns beside it, a strip of it left along the edge. So the grid goes on past the edge and the rotation
    fades out beyond it. Its points there show the photo's edge blurred with the distance from it
    (:func:`_extend_past_edges`): the photo's reflection would bring a mirror image of the face in beside it, a second
    eye or ear."""
    h, w = shape
    signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
    corners = similarity.apply(np.asarray(proxy.centre) + signs * np.asarray(proxy.radii))
    box_points = np.vstack([corners[:, :2], vertices[:, :2]])
    grow = max(proxy.margin, proxy.band) * proxy.radii[0] * similarity.scale
    low, high = box_points.min(axis=0) - grow, box_points.max(axis=0) + grow
    centre = (low + high) / 2.0
    if not (np.isfinite(centre).all() and 0 <= centre[0] < w and 0 <= centre[1] < h):
        raise ValueError("The reconstructed face lies outside the photo: nothing to turn.")
    half = np.maximum((high - low) / 2.0, 8.0)  # a collapsed reconstruction still gets a region to draw
    x0, y0 = np.floor(np.maximum(centre - half, -grow)).astype(int)
    x1, y1 = np.ceil(np.minimum(centre + half, np.array([w, h]) + grow)).astype(int)
    return int(x0), int(y0), int(x1), int(y1)


#: Past the photo's edge, a point at distance ``d`` pixels shows the edge blurred by a Gaussian whose sigma is about
#: ``EDGE_BLUR * d`` (between half and twice that: the blurs are an octave apart, :func:`_extend_past_edges`).
EDGE_BLUR = 1.0


def _extend_past_edges(image: np.ndarray, pad: tuple[int, int, int, int]) -> np.ndarray:
    """``image`` (H, W, 3 uint8) grown by ``pad`` = (left, top, right, bottom) pixels, for the head's grid where it
    goes on past the photo's edge (:func:`_head_grid_box`).

    Nothing of what lies past the edge is known. Each pixel there takes the edge's colours (the photo repeated
    outwards) blurred by a Gaussian whose sigma grows with its distance ``d`` from the photo (:data:`EDGE_BLUR`): near
    the edge it continues the photo, further out it is the local average of the edge. The photo repeated as it is
    draws a streak from every edge pixel, which the turn brings into view beside the head; blurred, the guess is
    nearer what an uncut photo shows there (``tests/test_head_rotation.py``, photos cut beside the face).

    The blurs are an octave apart (sigma 2, 4, 8, ... pixels, each computed at a resolution reduced to keep its
    kernel small); a pixel takes each one whose sigma is at most ``EDGE_BLUR * d`` fully, and the next one in part.
    Pixels of the photo keep their values."""
    import cv2

    h, w = image.shape[:2]
    left, top, right, bottom = (max(int(p), 0) for p in pad)
    repeated = cv2.copyMakeBorder(np.ascontiguousarray(image), top, bottom, left, right, cv2.BORDER_REPLICATE)
    photo = np.zeros(repeated.shape[:2], np.uint8)
    photo[top:top + h, left:left + w] = 1
    spread = EDGE_BLUR * cv2.distanceTransform(1 - photo, cv2.DIST_L2, 5)
    if spread.max() <= 1.0:
        return repeated
    full = (repeated.shape[1], repeated.shape[0])
    values = repeated.astype(np.float32)
    sigma = 2.0
    while sigma < 2.0 * spread.max():
        share = np.clip(2.0 * spread / sigma - 1.0, 0.0, 1.0)[..., None]
        factor = max(1, int(sigma // 4))
        small = cv2.resize(repeated, (max(full[0] // factor, 1), max(full[1] // factor, 1)),
                           interpolation=cv2.INTER_AREA)
        blurred = cv2.resize(cv2.GaussianBlur(small.astype(np.float32), (0, 0), sigma / factor), full,
                             interpolation=cv2.INTER_LINEAR)
        values += share * (blurred - values)
        sigma *= 2.0
    out = np.clip(values + 0.5, 0, 255).astype(np.uint8)
    out[top:top + h, left:left + w] = image
    return out


def _inside_weight(positions: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(...) 1 for (..., 2) pixel positions inside a photo of ``shape`` (H, W), falling to 0 one pixel past its edge."""
    h, w = shape
    outside = np.maximum(np.maximum(-positions[..., 0], positions[..., 0] - w),
                         np.maximum(-positions[..., 1], positions[..., 1] - h))
    return np.clip(1.0 - outside, 0.0, 1.0)


@dataclass
class _DrawnHead:
    """:func:`_draw_head`'s result and, when asked, where each region pixel's colour came from: ``sources`` (H, W, 2)
    the photo position it shows (pixel centres at half-integers) and ``photo_weight`` (H, W) the share of its colour
    drawn from the photo there (module docstring, *large photos*)."""

    result: HeadRotation
    sources: np.ndarray | None = None
    photo_weight: np.ndarray | None = None


def _draw_head(image: np.ndarray, reconstruction, current: tuple[float, float, float],
               target: tuple[float, float, float], proxy: HeadProxy, with_sources: bool = False,
               person_mask: np.ndarray | None = None) -> _DrawnHead:
    """:func:`rotate_head` at the photo's own size."""
    import cv2

    h, w = image.shape[:2]
    timings: dict[str, float] = {}
    start = time.perf_counter()
    vertices = np.asarray(reconstruction.vertices, dtype=np.float64)
    similarity = head_similarity(vertices)
    delta = rotation_matrix(*target) @ rotation_matrix(*current).T
    scale = similarity.scale
    pivot = similarity.apply(np.asarray(proxy.pivot, np.float64)[None])[0]
    gx0, gy0, gx1, gy1 = grid_box = _head_grid_box((h, w), vertices, similarity, proxy)
    x0, y0, x1, y1 = _inside_photo(grid_box, (h, w))  # the region drawn (_head_region)
    step = max(1.0, max(x1 - x0, y1 - y0) / proxy.grid_points)
    nx, ny = int(np.ceil((gx1 - gx0) / step)) + 1, int(np.ceil((gy1 - gy0) / step)) + 1
    gx = np.minimum(gx0 + np.arange(nx) * step, gx1)
    gy = np.minimum(gy0 + np.arange(ny) * step, gy1)
    grid_x, grid_y = np.meshgrid(gx, gy)
    grid_xy = np.column_stack([grid_x.ravel(), grid_y.ravel()])

    # Layer 1, the face: the dense mesh's z at the grid points (rasterised on the grid itself).
    dense = reconstruction.dense_mesh(openings="closed", subdivision=1, texture="completed")
    dense_vertices = set_back_rim(np.asarray(dense.vertices, dtype=np.float64), similarity, proxy)
    on_grid = (dense_vertices[:, :2] - [gx0, gy0]) / step + 0.5
    index, bary = rasterize_zbuffer(on_grid, dense_vertices[:, 2], dense.triangles, (ny, nx))
    face = index >= 0
    face_z = interpolate(dense_vertices[:, 2:3], dense.triangles, index, bary)[..., 0].astype(np.float64)

    # Layer 2, the rest of the head: the ellipsoid's front, joined to the face surface without a step.
    head_z, head = _ellipsoid_front(grid_xy, similarity, proxy.centre, proxy.radii)
    head_z, head = head_z.reshape(ny, nx), head.reshape(ny, nx)
    face_width = proxy.radii[0] * scale / step  # grid units
    # Where the ellipsoid bulges in front of the face's edge (jaw, temples) it is pulled back to meet the face; where
    # the face stands in front of it (nose and cheek of a turned face) the step stays: an occluding contour.
    offset, weight = _smooth_fill(face_z - np.where(head, head_z, face_z), face, sigma=max(0.25 * face_width, 1.0))
    offset = np.minimum(offset, 0.0)
    reach = np.clip(weight / 0.25, 0.0, 1.0)
    centre_z = similarity.apply(np.asarray(proxy.centre, np.float64)[None])[0, 2]
    z = np.where(head, head_z + offset * reach, centre_z)
    z = np.where(face, face_z, z)
    inside = face | head

    # Layer 3, the background: the head centre's depth; the rotation fades to none across the band.
    outside_distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5) * step
    band = max(proxy.band * proxy.radii[0] * scale, 1e-9)
    # (Clipped before dividing: with no head on the grid the distance transform is about 1e38 everywhere.)
    fraction = np.where(inside, 1.0, 0.5 * (1.0 + np.cos(np.pi * np.clip(outside_distance, 0.0, band) / band)))
    edge_z = _outline_depth(z, inside, sigma=max(0.2 * face_width, 1.0))
    z = np.where(inside, z, fraction * edge_z + (1.0 - fraction) * centre_z)
    # The person's outline: grid points the segmentation marks as background stay where they are, behind the head.
    background = np.zeros((ny, nx), dtype=bool)
    if person_mask is not None:
        person = cv2.remap(np.asarray(person_mask, dtype=np.float32), (grid_x - 0.5).astype(np.float32),
                           (grid_y - 0.5).astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # Eroded by a grid step: the hair's fringe, below the threshold but not the backdrop's colour, would stay
        # behind as a faint outline of the head where it was.
        background = cv2.erode(((person < PERSON_THRESHOLD) & ~face).astype(np.uint8), np.ones((3, 3), np.uint8),
                               borderType=cv2.BORDER_REPLICATE).astype(bool)
        fraction = np.where(background, 0.0, fraction)
        z = np.where(background, centre_z - 2.0 * proxy.radii[2] * scale, z)
    fraction[[0, -1], :] = 0.0  # the grid's border stays where it is (_head_grid_box)
    fraction[:, [0, -1]] = 0.0

    grid_points = np.column_stack([grid_xy, z.ravel()])
    moved_grid = rotate_points(grid_points, pivot, delta, fraction.ravel())
    moved_face = rotate_points(dense_vertices, pivot, delta)
    timings["proxy"] = time.perf_counter() - start

    # One z-buffer over both meshes.
    start = time.perf_counter()
    ids = np.arange(ny * nx).reshape(ny, nx)
    quad = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, :-1].ravel(), ids[1:, 1:].ravel()
    grid_triangles = np.concatenate([np.stack([quad[0], quad[2], quad[1]], 1), np.stack([quad[1], quad[2], quad[3]], 1)])
    # The face mesh alone draws the face: grid triangles wholly inside it would be chords across the nose and eye
    # sockets that pass in front of the surface once turned.
    inner = cv2.erode(face.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool).ravel()
    grid_triangles = grid_triangles[~inner[grid_triangles].all(axis=1)]
    # Triangles joining the person to the still background stretch behind the turned head (module docstring, *the
    # person's outline*); the person's own triangles say where the turned person is.
    on_background = background.ravel()[grid_triangles]
    person_triangles = grid_triangles[~on_background.any(axis=1)]
    joining = on_background.any(axis=1) & ~on_background.all(axis=1)
    before = signed_areas(grid_points, grid_triangles)
    after = signed_areas(moved_grid, grid_triangles)
    if proxy.max_stretch is None:
        stretched = np.zeros(len(grid_triangles), dtype=bool)
    else:
        stretched = np.abs(after) > proxy.max_stretch * np.maximum(np.abs(before), 1e-9)
    # Back-face culling: a triangle whose winding flipped is seen from behind (a fold-over); it is not drawn, and
    # what it covered is filled like an uncovered pixel.
    flipped = folded_triangles(grid_points, moved_grid, grid_triangles)
    face_triangles = np.asarray(dense.triangles)
    face_front = front_facing(moved_face, face_triangles, reference=dense_vertices)
    # A joining triangle stretched past TORN_STRETCH is torn: the background it would smear over is uncovered.
    torn = joining & (flipped | (np.abs(after) > TORN_STRETCH * np.maximum(np.abs(before), 1e-9)))
    drawn_grid = grid_triangles[~flipped & ~torn]
    stretched = stretched[~flipped & ~torn]
    # The face mesh is a layer over the grid: lifted above every grid depth, it keeps its own order (its z-buffer
    # hides what of the face turns behind the nose or cheek) but is never hidden by the head proxy (module docstring).
    lift = max(moved_grid[:, 2].max() - moved_face[:, 2].min() + 1.0, 0.0)
    points = np.vstack([moved_grid, moved_face + [0.0, 0.0, lift]])
    triangles = np.vstack([drawn_grid, face_triangles[face_front] + len(moved_grid)])
    rw, rh = x1 - x0, y1 - y0
    seen, weights = rasterize_zbuffer(points[:, :2] - [x0, y0], points[:, 2], triangles, (rh, rw))
    num_grid = len(drawn_grid)
    culled = _coverage(moved_grid[:, :2] - [x0, y0], grid_triangles[flipped & ~joining], (rh, rw))
    torn_cover = _coverage(moved_grid[:, :2] - [x0, y0], grid_triangles[torn], (rh, rw)) if torn.any() else None
    face_outline = _coverage(moved_face[:, :2] - [x0, y0], face_triangles, (rh, rw))
    face_in_photo = _coverage(dense_vertices[:, :2] - [x0, y0], face_triangles, (rh, rw))
    timings["raster"] = time.perf_counter() - start

    start = time.perf_counter()
    on_face = seen >= num_grid
    on_grid_tri = (seen >= 0) & ~on_face
    # Where each drawn pixel was in the photo: a grid point's own position, a face point's position before the turn.
    source = interpolate(np.vstack([grid_points[:, :2], dense_vertices[:, :2]]), triangles, seen, weights)
    uv = interpolate(np.vstack([np.zeros((len(moved_grid), 2)), dense.uvs]), triangles, seen, weights)
    # Positions past the photo's edge read its edge blurred with the distance (_extend_past_edges): the region grown
    # to the grid's box.
    pad = (x0 - gx0, y0 - gy0, gx1 - x1, gy1 - y1)
    if any(pad):
        readable, origin = _extend_past_edges(image[y0:y1, x0:x1], pad), (gx0, gy0)
    else:
        readable, origin = image, (0, 0)
    from_photo = cv2.remap(readable, (source[..., 0] - 0.5 - origin[0]).astype(np.float32),
                           (source[..., 1] - 0.5 - origin[1]).astype(np.float32), cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    texture = np.ascontiguousarray(dense.texture)
    size = texture.shape[0]
    texel_x, texel_y = (uv[..., 0] * size - 0.5).astype(np.float32), (uv[..., 1] * size - 0.5).astype(np.float32)
    from_texture = cv2.remap(texture, texel_x, texel_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # The face's seen texels are the photo resampled into UV space at the texture's resolution; drawn from the photo
    # itself they keep its full resolution. The texture (completed by symmetry) draws what the photo did not see.
    visibility = np.ascontiguousarray(reconstruction.texture_completion_at(size).visibility, dtype=np.float32)
    seen_weight = cv2.remap(visibility, texel_x, texel_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    from_photo_weight = np.clip((seen_weight - PHOTO_VISIBILITY[0]) / (PHOTO_VISIBILITY[1] - PHOTO_VISIBILITY[0]),
                                0.0, 1.0)[..., None]
    face_colour = from_photo_weight * from_photo + (1.0 - from_photo_weight) * from_texture
    region = np.where(on_face[..., None], np.clip(face_colour + 0.5, 0, 255).astype(np.uint8), from_photo)
    grid_of = np.where(on_grid_tri, seen, 0)
    holes = (seen < 0) | (on_grid_tri & stretched[grid_of])
    folded = culled & ~on_face
    mirrored = np.zeros_like(holes)
    # Past the photo's edge there is no fine detail to add back at the photo's size (_at_photo_size): it would be the
    # edge's own, repeated in streaks.
    photo_weight = np.where(on_face, from_photo_weight[..., 0], 1.0) * ~holes * _inside_weight(source, (h, w)) \
        if with_sources else None
    uncovered = np.zeros_like(holes)
    if holes.any():
        # Holes inside the face's outline (its culled back faces) are inpainted from the face around them. With a
        # person mask, holes under torn triangles and outside the turned person show the background the head
        # uncovered: the photo's, with the person taken out of it (_background_plate). The others show the head proxy.
        if background.any():
            moved_person = _coverage(moved_grid[:, :2] - [x0, y0], person_triangles, (rh, rw)) | face_outline
            moved_person = cv2.morphologyEx(moved_person.astype(np.uint8), cv2.MORPH_CLOSE,
                                            np.ones((5, 5), np.uint8)).astype(bool)
            uncovered = holes & ~face_outline & (~moved_person if torn_cover is None else torn_cover | ~moved_person)
            plate = _background_plate(image[y0:y1, x0:x1], np.asarray(person_mask)[y0:y1, x0:x1]) \
                if uncovered.any() else None
            if plate is None:
                uncovered[:] = False
            else:
                region = np.where(uncovered[..., None], plate, region)
        region, mirrored, mirrored_from = _head_texture_fill(region, holes & ~face_outline & ~uncovered, image,
                                                             similarity, delta, pivot, proxy, (x0, y0), face_in_photo,
                                                             person_mask)
        if with_sources and mirrored.any():
            source[mirrored] = mirrored_from
            photo_weight[mirrored] = 1.0
        rest = holes & ~mirrored & ~uncovered
        if rest.any():
            region = cv2.inpaint(np.ascontiguousarray(region), rest.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
    if proxy.feather > 0.0 and on_face.any():
        if with_sources:  # the photo's share fades with the colours: one more channel through the same blend
            weight_channel = np.clip(photo_weight * 255.0 + 0.5, 0, 255).astype(np.uint8)[..., None]
            feathered = _feather_edge(np.concatenate([region, weight_channel], axis=-1), on_face, proxy.feather * scale)
            region, photo_weight = feathered[..., :3], feathered[..., 3] / 255.0
        else:
            region = _feather_edge(region, on_face, proxy.feather * scale)
    out = image.copy()
    out[y0:y1, x0:x1] = region
    face_mask = np.zeros((h, w), dtype=bool)
    face_mask[y0:y1, x0:x1] = on_face
    timings["shade"] = time.perf_counter() - start
    area = float(rw * rh)
    result = HeadRotation(
        image=out, rotation=delta, current_pose=current, target_pose=target, region=(x0, y0, x1, y1),
        face_mask=face_mask, filled_fraction=float(holes.sum()) / area, culled_fraction=float(folded.sum()) / area,
        mirrored_fraction=float(mirrored.sum()) / area, uncovered_fraction=float(uncovered.sum()) / area,
        timings=timings,
    )
    if not with_sources:
        return _DrawnHead(result)
    return _DrawnHead(result, source.astype(np.float32), photo_weight.astype(np.float32))


def _upsample(values: np.ndarray, grid: tuple[np.ndarray, np.ndarray], nearest: bool = False) -> np.ndarray:
    """``values`` read at the (fractional) pixel positions ``grid`` = (x, y), bilinearly or at the nearest pixel."""
    import cv2

    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.remap(values, grid[0], grid[1], interpolation, borderMode=cv2.BORDER_REPLICATE)


#: Rows of the full-size region composed at a time by :func:`_at_photo_size` (bounds its memory on huge photos).
_COMPOSE_ROWS = 512


def _at_photo_size(image: np.ndarray, small_image: np.ndarray, drawn: _DrawnHead) -> HeadRotation:
    """The head drawn in ``small_image`` (``image`` resized) brought to ``image``'s size: the drawing upsampled, plus
    the photo's fine detail at each pixel's source, in the share its colour took from the photo (module docstring,
    *large photos*)."""
    import cv2

    start = time.perf_counter()
    small = drawn.result
    h, w = image.shape[:2]
    fx, fy = small_image.shape[1] / w, small_image.shape[0] / h
    sx0, sy0, sx1, sy1 = small.region
    x0, y0 = int(np.floor(sx0 / fx)), int(np.floor(sy0 / fy))
    x1, y1 = min(int(np.ceil(sx1 / fx)), w), min(int(np.ceil(sy1 / fy)), h)
    drawing = np.ascontiguousarray(small.image[sy0:sy1, sx0:sx1])
    on_face = np.ascontiguousarray(small.face_mask[sy0:sy1, sx0:sx1]).astype(np.uint8)
    # Where each full-size pixel centre falls in the small region's pixel grid (cv2.remap's convention: centres at
    # whole numbers).
    map_x = ((np.arange(x0, x1) + 0.5) * fx - 0.5 - sx0).astype(np.float32)
    out, face_mask = image.copy(), np.zeros((h, w), dtype=bool)
    for top in range(y0, y1, _COMPOSE_ROWS):
        rows = np.arange(top, min(top + _COMPOSE_ROWS, y1))
        grid = np.meshgrid(map_x, ((rows + 0.5) * fy - 0.5 - sy0).astype(np.float32))
        sources = _upsample(drawn.sources, grid)  # small-photo positions
        weight = _upsample(drawn.photo_weight, grid)[..., None]
        fine = cv2.remap(image, sources[..., 0] / fx - 0.5, sources[..., 1] / fy - 0.5, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        coarse = cv2.remap(small_image, sources[..., 0] - 0.5, sources[..., 1] - 0.5, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        colour = _upsample(drawing, grid).astype(np.float32) + weight * (fine.astype(np.float32)
                                                                        - coarse.astype(np.float32))
        out[rows[0]:rows[-1] + 1, x0:x1] = np.clip(colour + 0.5, 0, 255).astype(np.uint8)
        face_mask[rows[0]:rows[-1] + 1, x0:x1] = _upsample(on_face, grid, nearest=True).astype(bool)
    timings = dict(small.timings, full_size=time.perf_counter() - start)
    return replace(small, image=out, region=(x0, y0, x1, y1), face_mask=face_mask, timings=timings)


#: Texel visibility (:func:`~facehub.modeling.geometry.texture_completion.texel_visibility`) from which a face pixel
#: starts to be drawn from the photo rather than from the completed texture, and from which it is drawn from the photo
#: alone. Above 0.9 the completed texture is the photo's own colour (its Poisson re-solve covers only the texels below).
PHOTO_VISIBILITY = (0.5, 0.9)

#: An ellipsoid point counts as seen in the photo when its normal's cosine with the view direction is above this.
SEEN_COSINE = 0.2

#: A pixel whose person probability (:class:`~facehub.modeling.faces.segmentation.PersonSegmenter`) is below this is
#: background: it stays where it is while the head turns.
PERSON_THRESHOLD = 0.5

#: A triangle joining the person to the still background whose area grows more than this factor is torn
#: (module docstring, *the person's outline*).
TORN_STRETCH = 2.0

#: A region with less background than this share has none to fill the uncovered background from (a close-up): its
#: holes are filled as without a person mask.
MIN_BACKGROUND_SHARE = 0.02


def _head_texture_fill(region: np.ndarray, holes: np.ndarray, image: np.ndarray, similarity: Similarity,
                       rotation: np.ndarray, pivot: np.ndarray, proxy: HeadProxy, origin,
                       face_in_photo: np.ndarray,
                       person_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill ``holes`` (region pixels) that show the turned head ellipsoid with the photo's colour of that point of
    the head, or of its mirror point across the head's mid-plane when the photo did not see it (the symmetric
    completion of the face, carried over to hair and ears). Points whose colour would come from the face in the photo
    (``face_in_photo``, region pixels) are left to inpainting: the ellipsoid passes through the face, and its colours
    there belong to the face mesh, not to the head; so are points the ``person_mask`` marks as background (the
    ellipsoid is larger than a head with short hair). Returns the region, the pixels filled and (N, 2) the photo
    positions their colours came from, in the order of ``np.nonzero(filled)``."""

    rows, cols = np.nonzero(holes)
    xy = np.column_stack([cols + origin[0] + 0.5, rows + origin[1] + 0.5])
    # The turned ellipsoid: model -> photo pixels -> turned about the pivot.
    turned = Similarity(similarity.scale, rotation @ similarity.rotation,
                        rotation @ (similarity.translation - pivot) + pivot)
    z, hit = _ellipsoid_front(xy, turned, proxy.centre, proxy.radii)
    filled = np.zeros_like(holes)
    if not hit.any():
        return region, filled, np.zeros((0, 2))
    surface = turned.inverse().apply(np.column_stack([xy[hit], z[hit]]))  # model frame, the head at rest
    radii = np.square(np.asarray(proxy.radii, np.float64))
    centre = np.asarray(proxy.centre, np.float64)

    def seen(points: np.ndarray) -> np.ndarray:
        normals = (points - centre) / radii @ similarity.rotation.T
        return normals[:, 2] / np.maximum(np.linalg.norm(normals, axis=1), 1e-12) > SEEN_COSINE

    mirror = surface * np.array([-1.0, 1.0, 1.0])
    own, other = seen(surface), seen(mirror)
    source = np.where(own[:, None], surface, mirror)
    usable = own | other
    pixels = similarity.apply(source)[:, :2]
    h, w = image.shape[:2]
    usable &= (pixels[:, 0] >= 0) & (pixels[:, 0] < w) & (pixels[:, 1] >= 0) & (pixels[:, 1] < h)
    local = np.floor(pixels - np.asarray(origin, np.float64)).astype(int)
    in_region = ((local[:, 0] >= 0) & (local[:, 0] < face_in_photo.shape[1]) & (local[:, 1] >= 0)
                 & (local[:, 1] < face_in_photo.shape[0]))
    on_face = np.zeros(len(pixels), dtype=bool)
    on_face[in_region] = face_in_photo[local[in_region, 1], local[in_region, 0]]
    usable &= ~on_face
    if person_mask is not None and usable.any():
        usable[usable] = _bilinear_values(np.asarray(person_mask, np.float32), pixels[usable]) >= PERSON_THRESHOLD
    if not usable.any():
        return region, filled, np.zeros((0, 2))
    colours = _bilinear(image, pixels[usable])
    index = np.flatnonzero(hit)[usable]
    region = region.copy()
    region[rows[index], cols[index]] = colours
    filled[rows[index], cols[index]] = True
    return region, filled, pixels[usable]


def _feather_edge(region: np.ndarray, layer: np.ndarray, width: float) -> np.ndarray:
    """``region`` with the pixels of ``layer`` (H, W bool, a layer drawn over the rest) faded into what lies around
    it over ``width`` pixels inside its edge: the colours just outside, spread inwards by normalised convolution,
    show through in proportion to the nearness of the edge (an anti-aliased silhouette instead of a cut-out)."""
    import cv2

    inside = cv2.distanceTransform(layer.astype(np.uint8), cv2.DIST_L2, 5)
    alpha = np.clip(inside / max(width, 1e-6), 0.0, 1.0)
    edge = layer & (alpha < 1.0)
    if not edge.any() or layer.all():
        return region
    # The spread colours are needed on the edge only: blur the edge's box grown by the kernel's reach (what lies
    # beyond it cannot reach the edge, so the values there are those of the whole region's blur).
    sigma = max(width, 1.0)
    reach = _gaussian_kernel_size(sigma)
    rows, cols = np.nonzero(edge)
    r0, r1 = max(rows.min() - reach, 0), min(rows.max() + reach + 1, region.shape[0])
    c0, c1 = max(cols.min() - reach, 0), min(cols.max() + reach + 1, region.shape[1])
    box = np.s_[r0:r1, c0:c1]
    around, weight = _smooth_fill(region[box].astype(np.float64), ~layer[box], sigma=sigma)
    blend = np.where(weight > 1e-3, alpha[box], 1.0)[..., None]
    mixed = blend * region[box].astype(np.float64) + (1.0 - blend) * around
    out = region.copy()
    out[box][edge[box]] = np.clip(mixed[edge[box]] + 0.5, 0, 255).astype(np.uint8)
    return out


def _bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 colours of ``image`` at (N, 2) pixel positions (pixel centres at half-integers), clamped."""
    return np.clip(_bilinear_float(image, xy) + 0.5, 0, 255).astype(np.uint8)


def _bilinear_float(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(N, C) float32 values of an (H, W, C) ``image`` at (N, 2) pixel positions (pixel centres at half-integers),
    clamped to its edge."""
    h, w = image.shape[:2]
    x = np.clip(xy[:, 0] - 0.5, 0, w - 1)
    y = np.clip(xy[:, 1] - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    img = np.asarray(image, dtype=np.float32)  # no copy of a float32 mask
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _bilinear_values(values: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(N,) values of a (H, W) float array at (N, 2) pixel positions (pixel centres at half-integers), clamped."""
    return _bilinear_float(np.asarray(values, np.float32)[..., None], xy)[:, 0]


#: The last few background plates, by a digest of the region and mask they were made from (:func:`_background_plate`).
_PLATES: OrderedDict[bytes, np.ndarray | None] = OrderedDict()
_PLATES_LOCK = threading.Lock()
_PLATES_KEPT = 4


def _background_plate(region: np.ndarray, person: np.ndarray, side: int = 160) -> np.ndarray | None:
    """``region`` (H, W, 3 uint8) with the person (``person`` >= :data:`PERSON_THRESHOLD`, grown by a few pixels)
    inpainted from the background around it: what a turned head uncovers. The inpainting runs at ``side`` pixels
    on the longer side and is brought back to the region's size: the plate shows only in strips beside the head, and
    the inpainting's cost grows with the area it fills. ``None`` when the region has almost no background to take
    from.

    The pose feedback renders one photo several times over the same region and mask, which give the same plate: the
    last :data:`_PLATES_KEPT` plates are kept (read-only) by a digest of the region's and the mask's bytes, which
    costs far less than the inpainting."""
    import hashlib

    region, person = np.ascontiguousarray(region), np.ascontiguousarray(person)
    digest = hashlib.blake2b(region, digest_size=16)
    digest.update(person)
    digest.update(repr((region.shape, person.shape, person.dtype.str, side)).encode())
    key = digest.digest()
    with _PLATES_LOCK:
        if key in _PLATES:
            _PLATES.move_to_end(key)
            return _PLATES[key]
    plate = _inpainted_plate(region, person, side)
    if plate is not None:
        plate.setflags(write=False)
    with _PLATES_LOCK:
        _PLATES[key] = plate
        while len(_PLATES) > _PLATES_KEPT:
            _PLATES.popitem(last=False)
    return plate


def _inpainted_plate(region: np.ndarray, person: np.ndarray, side: int) -> np.ndarray | None:
    """:func:`_background_plate` computed."""
    import cv2

    h, w = region.shape[:2]
    ours = person >= PERSON_THRESHOLD
    if h == 0 or w == 0 or (~ours).mean() < MIN_BACKGROUND_SHARE:
        return None
    factor = min(1.0, side / max(h, w))
    size = (max(int(round(w * factor)), 1), max(int(round(h * factor)), 1))
    small = cv2.resize(np.ascontiguousarray(region), size, interpolation=cv2.INTER_AREA)
    small_person = cv2.resize(ours.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    small_person = cv2.dilate(small_person, np.ones((5, 5), np.uint8))
    filled = cv2.inpaint(small, small_person * 255, 5, cv2.INPAINT_TELEA)
    return cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)


def _coverage(points: np.ndarray, triangles: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool pixels covered by any of ``triangles`` (no depth test)."""
    if len(triangles) == 0:
        return np.zeros(size, dtype=bool)
    index, _ = rasterize_zbuffer(points, np.zeros(len(points)), triangles, size)
    return index >= 0
