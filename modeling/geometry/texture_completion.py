"""Completing a face's UV texture by left-right symmetry: the hidden half takes the visible half's colours.

A face seen from the side shows one cheek; a texture sampled from that photo is right on the visible half and wrong
(background, hair, the other cheek's silhouette) on the hidden half. Faces are close to symmetric, so each hidden
texel can borrow the colour of its mirror texel, where that one was seen (as Rotate-and-Render and StyleFaceUV do
for the unseen side). Three steps, on any mesh of facehub's topology (a PRN-Dense reconstruction, a fitted
morphable model):

1. **Per-texel visibility** (:func:`texel_visibility`): a texel is seen when its surface faces the camera and nothing
   of the mesh lies in front of it. The weight is the cosine between the normal and the view direction, ramped to 0
   at grazing angles (texels seen edge-on are smeared in the photo), times 0 where the z-buffer holds a nearer
   triangle.
2. **Mirror texels** (:func:`uv_mirror_coordinates`): the texel inside triangle ``(a, b, c)`` at barycentric ``w``
   mirrors to the point with the same ``w`` in the triangle ``(m[a], m[b], m[c])``, where ``m`` is the mesh's
   left-right vertex map (:func:`~facehub.modeling.geometry.topology.mirror_vertex_map`).
3. **Blending** (:func:`complete_texture`): ``T' = v T + (1 - v) g * T(mirror)`` where the mirror texel was seen,
   with ``g`` a per-channel gain matching the mirrored colours to the visible ones where both sides were seen; then
   the texels not clearly seen are re-solved by Poisson blending (Perez et al. 2003): they keep the mirrored
   texture's gradients and take the brightness of the seen texels around them. The two cheeks are lit
   differently, and a plain copy of the brighter one leaves a seam (on renders with a side light, a step about four
   times the face's own texel-to-texel variation; about twice after blending: tests/test_texture_completion.py).
   Texels seen from neither side are inpainted from their neighbours.

Optionally (``occluders="mirror"``, what a face swap asks for) a fourth step comes before the blending: **texels that
show something in front of the face** (a lock of hair across a cheek, a hand, the background where the mesh's rim
overshoots the face) count as unseen where their mirror texel shows skin (:func:`occluded_texels`), so they too take
the mirror's colours. What the photo shows in front of a face is not its texture: a swap would paint it onto the
target's cheek. Occluders are told from skin by colour, as Deng et al. (CVPR-W 2019) weight their robust photometric
loss by a skin-colour classifier; the skin colour here is the face's own (robust statistics of its seen texels), so
no skin tone is assumed. Only a texel whose mirror looks like skin is replaced: features that are
symmetric (eyes, brows, lips, a beard, glasses) look unlike skin on both sides and stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facehub.modeling.geometry.topology import FaceTopology, mirror_vertex_map, triangle_normals
from facehub.modeling.geometry.uv_maps import mesh_to_uv_position_map, rasterize_uv

#: Texels whose normal makes a cosine below this with the view direction count as unseen; the weight then ramps
#: linearly to 1 at :data:`FULL_VISIBILITY_COSINE` (about 17 and 60 degrees from edge-on).
GRAZING_COSINE = 0.1
FULL_VISIBILITY_COSINE = 0.35

#: Which texel of the completed texture came from where (:attr:`TextureCompletion.source`).
OUTSIDE, OWN, MIRRORED, INPAINTED = 0, 1, 2, 3

#: What :func:`complete_texture` does with texels that show an occluder in front of the face: ``"keep"`` them as seen
#: (a rotation shows the hair that hangs over a cheek where it hangs), or replace them by their ``"mirror"`` texels
#: where those show skin (a swap draws the source's face, not its hair).
OCCLUDER_CHOICES = ("keep", "mirror")


def check_occluders(occluders: str) -> None:
    """Raise ``ValueError`` unless ``occluders`` is one of :data:`OCCLUDER_CHOICES`."""
    if occluders not in OCCLUDER_CHOICES:
        raise ValueError(f"Got {occluders!r} for `occluders`; use one of {', '.join(map(repr, OCCLUDER_CHOICES))}.")

#: A texel counts as an occluder from this robust colour distance to the face's skin (:func:`skin_colour_distance`),
#: fully from the second; its mirror texel counts as skin up to the third, not at all from the fourth. Chosen on the
#: synthetic faces of tests/test_texture_completion.py (a dark lock over one cheek must go, nothing of a clean face
#: lit from either side may) and by eye on swaps of development photos from ../shared/data. Colours are compared as
#: the photo shows them: under a strong side light a lock on the shadowed cheek is as dark as the shadow and is
#: kept (a shading model fitted to the normals was tried: it took large locks for light and flagged the dark eyes
#: of blurred faces).
OCCLUDER_DISTANCE = (3.5, 5.0)
SKIN_DISTANCE = (2.0, 3.0)

#: Weight of lightness against the two chroma axes in :func:`skin_colour_distance`: a cheek in shadow is darker but
#: of the same hue, hair or a background usually differs in hue and saturation too.
LIGHTNESS_WEIGHT = 0.5

#: Smallest spread of the skin's colour the distance divides by, per CIELAB channel in OpenCV's 8-bit units (the
#: texture of an evenly lit, smooth face would otherwise make every small variation an outlier).
MIN_SKIN_SPREAD = (10.0, 2.5, 2.5)

#: Occluded regions narrower than this fraction of the texture's side are ignored (a mole, a specular glint).
MIN_OCCLUDER_WIDTH = 1.0 / 32

#: An occluded region is kept as it is when more texels of occluder colour that cannot be replaced (their mirror is
#: no skin) lie within twice :data:`OCCLUDER_GROWTH` of it than this share of its own size (:func:`occluded_texels`).
MAX_UNREPLACEABLE_SHARE = 0.5

#: How far (fraction of the texture's side) an occluded region grows into the texels next to it that are not
#: clearly skin (:func:`occluded_texels`).
OCCLUDER_GROWTH = 1.0 / 32


@dataclass(frozen=True)
class TextureCompletion:
    """A UV texture completed by symmetry.

    Attributes:
        texture: (S, S, 3) uint8 completed texture (the input outside the face's UV footprint).
        visibility: (S, S) float32 in [0, 1], how well each texel was seen in the photo (0 outside the footprint).
        mirrored_visibility: (S, S) float32, the visibility of each texel's mirror texel.
        source: (S, S) uint8 where each texel's colour mostly came from: :data:`OUTSIDE`, :data:`OWN`,
            :data:`MIRRORED` or :data:`INPAINTED`.
        gain: (3,) the per-channel gain applied to mirrored colours.
        occluded: (S, S) float32 in [0, 1], how surely each texel showed an occluder that was replaced by its mirror
            (``occluders="mirror"``; all 0 with ``"keep"``). ``visibility`` is the geometric visibility times
            ``1 - occluded``.
    """

    texture: np.ndarray
    visibility: np.ndarray
    mirrored_visibility: np.ndarray
    source: np.ndarray
    gain: np.ndarray
    occluded: np.ndarray | None = None

    @property
    def hidden_fraction(self) -> float:
        """Share of the face's texels that were not seen in the photo (visibility below 0.5)."""
        inside = self.source != OUTSIDE
        return float((self.visibility[inside] < 0.5).mean()) if inside.any() else 0.0


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) unit vertex normals, the area-weighted sum of the adjacent triangles' normals (fronts as wound)."""
    face_normals = triangle_normals(vertices, triangles)
    normals = np.zeros((len(vertices), 3))
    for corner in range(3):
        np.add.at(normals, np.asarray(triangles)[:, corner], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


#: :func:`texel_visibility` draws its z-buffer with at least this many pixels per texel across the face, and no more
#: than the photo's own.
ZBUFFER_PIXELS_PER_TEXEL = 4.0


def texel_visibility(
    vertices: np.ndarray,
    size: int,
    topology: FaceTopology | None = None,
    image_shape: tuple[int, int] | None = None,
    depth_tolerance: float = 0.02,
) -> np.ndarray:
    """(size, size) float32 visibility in [0, 1] of each texel of a mesh seen by an orthographic camera along -z.

    Args:
        vertices: (V, 3) mesh in image pixels (x right, y down, z towards the camera), the topology's winding
            facing the camera.
        size: side of the UV texture.
        image_shape: (H, W) of the photo: texels that fall outside it are unseen (``None``: no bound).
        depth_tolerance: how far behind the z-buffer a texel may lie and still count as seen, as a fraction of the
            face's width (absorbs interpolation differences between the UV map and the z-buffer).
    """
    from facehub.modeling.geometry.zbuffer import rasterize_box

    topology = topology or FaceTopology.default()
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(topology.triangles)
    raster = rasterize_uv(topology.uvs, triangles, size)
    inside = raster.face_index >= 0
    positions = mesh_to_uv_position_map(vertices, size=size, topology=topology, fill_band=0).astype(np.float64)
    normals = mesh_to_uv_position_map(vertex_normals(vertices, triangles), size=size, topology=topology, fill_band=0)
    cosine = normals[..., 2] / np.maximum(np.linalg.norm(normals, axis=-1), 1e-12)
    weight = np.clip((cosine - GRAZING_COSINE) / (FULL_VISIBILITY_COSINE - GRAZING_COSINE), 0.0, 1.0)

    # The z-buffer is drawn in pixels of the photo, or of a quarter texel where the face is larger than that (a
    # large face in a large photo): finer pixels would cost time and change no texel's reading.
    scale = min(1.0, ZBUFFER_PIXELS_PER_TEXEL * size / max(float(np.ptp(vertices[:, :2], axis=0).max()), 1.0))
    drawn = vertices * [scale, scale, 1.0]
    x0, y0 = (int(a) - 1 for a in np.floor(drawn[:, :2].min(axis=0)))
    x1, y1 = (int(a) + 2 for a in np.ceil(drawn[:, :2].max(axis=0)))
    face_index, barycentric = rasterize_box(drawn, triangles, (x0, y0, x1, y1))
    zbuffer = np.where(face_index >= 0, (vertices[triangles[np.maximum(face_index, 0)], 2] * barycentric).sum(-1),
                       -np.inf)
    # The z-buffer value at each texel's pixel (nearest pixel centre).
    cols = np.clip(np.floor(positions[..., 0] * scale).astype(int) - x0, 0, zbuffer.shape[1] - 1)
    rows = np.clip(np.floor(positions[..., 1] * scale).astype(int) - y0, 0, zbuffer.shape[0] - 1)
    tolerance = depth_tolerance * float(np.ptp(vertices[:, 0]) or 1.0)
    unoccluded = positions[..., 2] >= zbuffer[rows, cols] - tolerance
    if image_shape is not None:
        height, width = image_shape
        unoccluded &= (positions[..., 0] >= 0) & (positions[..., 0] < width)
        unoccluded &= (positions[..., 1] >= 0) & (positions[..., 1] < height)
    return np.where(inside & unoccluded, weight, 0.0).astype(np.float32)


def uv_mirror_coordinates(size: int, topology: FaceTopology | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Where each texel's left-right mirror lies in the texture.

    Returns:
        (size, size, 2) float32 continuous pixel coordinates ``(col, row)`` of each texel's mirror (pixel centres
        at integers), and the (size, size) bool mask of texels on the face's UV footprint.
    """
    topology = topology or FaceTopology.default()
    raster = rasterize_uv(topology.uvs, topology.triangles, size)
    inside = raster.face_index >= 0
    mirrored_corners = mirror_vertex_map()[np.asarray(topology.triangles)][np.maximum(raster.face_index, 0)]
    uv = (np.asarray(topology.uvs, np.float64)[mirrored_corners] * raster.barycentric[..., None]).sum(axis=-2)
    return (uv * size - 0.5).astype(np.float32), inside


def _sample(image: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` (H, W[, C]) at (..., 2) continuous ``(col, row)`` pixel coordinates."""
    import cv2

    return cv2.remap(np.ascontiguousarray(image, dtype=np.float32), coordinates[..., 0], coordinates[..., 1],
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def skin_colour_distance(texture: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(S, S) float32 robust distance of each texel's colour from the face's skin colour.

    The skin colour is estimated from the texels with ``weight`` above 0.5 (the seen ones): the per-channel median
    and spread (1.4826 x the median absolute deviation, at least :data:`MIN_SKIN_SPREAD`) of their CIELAB colours,
    then again over those within 2.5 of it, so that a large occluder does not widen the skin's spread. The distance
    is ``sqrt((w dL / sL)^2 + (da / sa)^2 + (db / sb)^2)`` with ``w`` = :data:`LIGHTNESS_WEIGHT`. Zero everywhere
    when fewer than 64 texels were seen.
    """
    import cv2

    lab = cv2.cvtColor(np.ascontiguousarray(texture, dtype=np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    seen = lab[np.asarray(weight) > 0.5]
    if len(seen) < 64:
        return np.zeros(lab.shape[:2], np.float32)
    channel_weight = np.array([LIGHTNESS_WEIGHT, 1.0, 1.0], np.float32)
    floor = np.asarray(MIN_SKIN_SPREAD, np.float32)

    def skin(colours):
        centre = np.median(colours, axis=0)
        return centre, np.maximum(1.4826 * np.median(np.abs(colours - centre), axis=0), floor)

    def distance(colours, centre, spread):
        return np.sqrt(((channel_weight * (colours - centre) / spread) ** 2).sum(axis=-1))

    centre, spread = skin(seen)
    close = distance(seen, centre, spread) < 2.5
    if close.sum() >= 64:
        centre, spread = skin(seen[close])
    return distance(lab, centre, spread).astype(np.float32)


def occluded_texels(distance: np.ndarray, visibility: np.ndarray, mirror: np.ndarray, inside: np.ndarray
                    ) -> np.ndarray:
    """(S, S) float32 in [0, 1]: how surely each seen texel shows an occluder whose mirror texel shows skin.

    A texel is an occluder by its :func:`skin_colour_distance` ``distance`` (ramped over :data:`OCCLUDER_DISTANCE`),
    its mirror is skin by the same distance (ramped down over :data:`SKIN_DISTANCE`) and must have been seen; the
    product is kept only in regions at least :data:`MIN_OCCLUDER_WIDTH` of the texture wide (a morphological
    opening), so a mole or a glint stays; texels that are not clearly skin (:data:`SKIN_DISTANCE`) and connected to
    such a region within :data:`OCCLUDER_GROWTH` count as far as they are not skin, the occluder's paler parts and
    soft edge.

    Args:
        distance, visibility: (S, S); mirror, inside: :func:`uv_mirror_coordinates`.
    """
    import cv2

    size = distance.shape[0]
    seen = np.asarray(visibility, np.float32) * inside
    low, high = OCCLUDER_DISTANCE
    occluder = np.clip((distance - low) / (high - low), 0.0, 1.0)
    skin, not_skin = SKIN_DISTANCE
    mirror_skin = np.clip((not_skin - _sample(distance, mirror)) / (not_skin - skin), 0.0, 1.0)
    mirror_seen = np.clip(2.0 * _sample(seen, mirror) - 1.0, 0.0, 1.0)
    weight = occluder * mirror_skin * mirror_seen * (seen > 0.0)
    width = max(3, int(round(MIN_OCCLUDER_WIDTH * size)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width))
    wide = cv2.morphologyEx((weight > 0.5).astype(np.uint8), cv2.MORPH_OPEN, kernel)
    weight = np.where(cv2.dilate(wide, kernel) > 0, weight, 0.0).astype(np.float32)
    # An occluder's paler parts and soft edge (red or fair hair, stray hairs, the photo's blur) lie between its
    # colour and the skin's: the texels not clearly skin that are connected to a kept region, within
    # :data:`OCCLUDER_GROWTH` of it, count too, as far as they are not skin (hysteresis, as Canny's edges grow from
    # strong into weak ones), so that no patchwork of replaced and kept texels is left.
    unlike_skin = np.clip((distance - skin) / (not_skin - skin), 0.0, 1.0)
    weak = (unlike_skin * mirror_skin * mirror_seen * (seen > 0.0) * inside).astype(np.float32)
    grown = (weight > 0.5).astype(np.uint8)
    allowed = ((weak > 0.0) | (weight > 0.0)).astype(np.uint8)
    step = np.ones((3, 3), np.uint8)
    growth = max(1, int(round(OCCLUDER_GROWTH * size)))
    for _ in range(growth):
        grown = cv2.dilate(grown, step) & allowed
    weight = (np.maximum(weight, np.where(grown > 0, weak, 0.0)) * inside).astype(np.float32)
    # An occluder that goes on into texels whose mirror is no skin either (hair down both sides of the face, past
    # the rim) cannot be replaced whole: replacing only part of it leaves ragged fragments of it in the skin, worse
    # than keeping it. A region is kept as it is when more such texels lie within twice OCCLUDER_GROWTH of it than
    # :data:`MAX_UNREPLACEABLE_SHARE` of its own.
    stuck = ((distance > not_skin) & (seen > 0.5) & inside & (mirror_skin * mirror_seen < 0.5)).astype(np.uint8)
    count, labels = cv2.connectedComponents((weight > 0.5).astype(np.uint8), connectivity=8)
    around = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * growth + 1, 4 * growth + 1))
    replaced = np.zeros(weight.shape, np.uint8)
    for label in range(1, count):
        region = (labels == label).astype(np.uint8)
        if int((cv2.dilate(region, around) & stuck).sum()) <= MAX_UNREPLACEABLE_SHARE * int(region.sum()):
            replaced |= cv2.dilate(region, step)  # with its soft edge, the texels next to it below 0.5
    return np.where(replaced > 0, weight, 0.0).astype(np.float32)


def complete_texture(
    texture: np.ndarray,
    visibility: np.ndarray,
    topology: FaceTopology | None = None,
    match_colours: bool = True,
    occluders: str = "keep",
) -> TextureCompletion:
    """Fill the unseen texels of a UV ``texture`` from their mirror texels (module docstring, step 3).

    Args:
        texture: (S, S, 3) uint8 UV texture sampled from a photo.
        visibility: (S, S) per-texel visibility in [0, 1] (:func:`texel_visibility`).
        match_colours: scale mirrored colours per channel so that, where both a texel and its mirror were seen,
            they agree on average, and Poisson-blend the mirrored region into the seen texels (removes most of the
            seam a differently lit cheek leaves; ``False`` copies the mirror texels as they are).
        occluders: ``"keep"`` (default) or ``"mirror"``: replace the texels that show an occluder in front of the
            face by their mirror texels where those show skin (:func:`occluded_texels`; module docstring).
    """
    import cv2

    check_occluders(occluders)
    texture = np.asarray(texture)
    size = texture.shape[0]
    if texture.shape[:2] != (size, size) or visibility.shape != (size, size):
        raise ValueError(f"Got a texture of shape {texture.shape} and visibility of shape {visibility.shape}; "
                         "expected (S, S, 3) and (S, S) of the same S.")
    mirror, inside = uv_mirror_coordinates(size, topology)
    own = np.clip(np.asarray(visibility, np.float32), 0.0, 1.0) * inside
    occluded, anchors = np.zeros_like(own), inside
    if occluders == "mirror":
        distance = skin_colour_distance(texture, own)
        occluded = occluded_texels(distance, own, mirror, inside)
        own = own * (1.0 - occluded)
        # Seen texels unlike skin that stay as they are next to a replaced occluder (hair along both sides of the
        # rim, whose mirror is no skin either) give the Poisson step below no colour to take: it would spread their
        # darkness into the skin that replaced the occluder.
        near = cv2.dilate((occluded > 0.0).astype(np.uint8), np.ones((5, 5), np.uint8), iterations=max(1, size // 128))
        anchors = inside & ~((distance > OCCLUDER_DISTANCE[0]) & (own >= 0.5) & (near > 0))
    colours = texture.astype(np.float32)
    mirrored = _sample(colours, mirror)
    mirrored_visibility = _sample(own, mirror) * inside

    gain = np.ones(3, np.float32)
    both = (own > 0.5) & (mirrored_visibility > 0.5)
    if match_colours and both.sum() >= 16:
        gain = np.clip(colours[both].mean(axis=0) / np.maximum(mirrored[both].mean(axis=0), 1.0), 0.5, 2.0)
    mirrored = mirrored * gain

    borrowed = (1.0 - own) * mirrored_visibility
    blended = (own[..., None] * colours + borrowed[..., None] * mirrored) / np.maximum(own + borrowed, 1e-6)[..., None]
    seen = own + borrowed
    # Texels seen from neither side: inpaint from the completed neighbours (the footprint's outside stays as given).
    unseen = inside & (seen < 0.5)
    result = np.where(inside[..., None], blended, colours)
    if unseen.any():
        filled = cv2.inpaint(np.clip(result, 0, 255).astype(np.uint8), unseen.astype(np.uint8), 3, cv2.INPAINT_TELEA)
        weight = np.clip(seen / 0.5, 0.0, 1.0)[..., None]
        result = np.where(unseen[..., None], weight * result + (1.0 - weight) * filled, result)

    source = np.full((size, size), OUTSIDE, np.uint8)
    source[inside] = OWN
    source[inside & (own < 0.5) & (borrowed >= 0.5 * (1.0 - own))] = MIRRORED
    source[unseen] = INPAINTED
    texture_out = np.clip(result + 0.5, 0, 255).astype(np.uint8)
    if match_colours:
        # Re-solve everything not clearly seen (the mirrored texels and the grazing ones next to them) from the
        # blend's gradients, anchored on the well-seen texels around it.
        region = inside & (own < 0.9) & (mirrored_visibility > 0.5)
        texture_out = _poisson_paste(texture_out, np.clip(mirrored + 0.5, 0, 255).astype(np.uint8), region & anchors,
                                     anchors)
    return TextureCompletion(
        texture=texture_out,
        visibility=own.astype(np.float32),
        mirrored_visibility=mirrored_visibility.astype(np.float32),
        source=source,
        gain=gain,
        occluded=occluded,
    )


def _poisson_paste(base: np.ndarray, layer: np.ndarray, region: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Paste ``layer`` over ``base`` inside ``region`` keeping the layer's gradients and the base's colours where the
    region meets the rest of the ``footprint`` (Poisson image editing, Perez et al. 2003, eq. 7-8): the mirrored
    cheek keeps its detail but takes the brightness of the visible texels it meets, so no seam is left. Where the
    region meets the footprint's edge nothing is imposed (a Neumann boundary: only neighbours on the face count).

    Solves, for each texel ``p`` of the region, ``sum_q (f_p - f_q) = sum_q (g_p - g_q)`` over the 4-neighbours ``q``
    on the footprint, with ``f_q = base_q`` for neighbours outside the region (a sparse linear system).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    region = region & footprint
    count = int(region.sum())
    if count == 0:
        return base
    index = np.full(region.shape, -1, np.int64)
    index[region] = np.arange(count)
    rows, cols = np.nonzero(region)
    g = layer.astype(np.float64)
    f0 = base.astype(np.float64)
    diagonal = np.zeros(count)
    rhs = np.zeros((count, g.shape[-1]))
    entries_i, entries_j = [], []
    height, width = region.shape
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nr, nc = rows + dr, cols + dc
        valid = (nr >= 0) & (nr < height) & (nc >= 0) & (nc < width)
        nr, nc = np.where(valid, nr, 0), np.where(valid, nc, 0)
        on_face = valid & footprint[nr, nc]
        diagonal += on_face
        rhs += np.where(on_face[:, None], g[rows, cols] - g[nr, nc], 0.0)
        inner = on_face & region[nr, nc]
        entries_i.append(np.nonzero(inner)[0])
        entries_j.append(index[nr[inner], nc[inner]])
        outer = on_face & ~region[nr, nc]
        rhs[outer] += f0[nr[outer], nc[outer]]
    anchored = diagonal > 0
    diagonal = np.where(anchored, diagonal, 1.0)  # an isolated texel keeps the layer's colour
    i = np.concatenate([np.arange(count), *entries_i])
    j = np.concatenate([np.arange(count), *entries_j])
    values = np.concatenate([diagonal, -np.ones(sum(len(e) for e in entries_i))])
    matrix = coo_matrix((values, (i, j)), shape=(count, count)).tocsc()
    rhs[~anchored] = g[rows[~anchored], cols[~anchored]]
    # Components of the region that touch no texel outside it are only fixed up to a constant: tie each texel
    # weakly to the layer (a tiny screening term) so the system is always solvable.
    matrix = matrix + 1e-4 * coo_matrix((np.ones(count), (np.arange(count), np.arange(count))), shape=(count, count))
    rhs = rhs + 1e-4 * g[rows, cols]
    solution = spsolve(matrix.tocsc(), rhs)
    out = base.astype(np.float64).copy()
    out[rows, cols] = solution.reshape(count, -1)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def complete_texture_from_mesh(
    texture: np.ndarray,
    vertices: np.ndarray,
    topology: FaceTopology | None = None,
    image_shape: tuple[int, int] | None = None,
    match_colours: bool = True,
    occluders: str = "keep",
) -> TextureCompletion:
    """:func:`texel_visibility` of the mesh ``vertices`` (photo pixels), then :func:`complete_texture`."""
    visibility = texel_visibility(vertices, texture.shape[0], topology, image_shape=image_shape)
    return complete_texture(texture, visibility, topology, match_colours=match_colours, occluders=occluders)
