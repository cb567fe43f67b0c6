"""Variation of the synthetic face world that the morphable prior cannot explain (synthetic world v2).

A generator trained against renders of the morphable model alone could be matched by its own 3D renders; these
layers put into the world what the linear model (``S = S_mean + B_id alpha + B_exp beta``, ``T = T_mean + B_tex
delta``; seed 002 eq. 1) has no coefficient for. Each is a pure function of ``(seed, identity)`` (or of the view for
the background), drawn from its own random stream so that switching one on changes nothing else:

- **Fine UV detail** (:func:`fine_detail_pattern`): a per-identity high-frequency multiplicative albedo pattern
  (oriented sinusoids at 10-40 cycles across the UV map plus small dark spots), above the frequencies of the
  albedo basis; and, separately, a fine relief (:func:`relief_pattern`, :func:`shade_with_relief`): a
  high-frequency height field over UV that bump-maps the shading normals, so it shows under directional light only.
- **Withheld identity** (:func:`withheld_deformation`): a smooth per-vertex deformation orthogonal to the model's
  whole span (identity and expression modes, the mean shape, i.e. scale, and the six rigid motions), so neither
  coefficients nor pose can absorb it; and ``prior_modes``, how many leading identity modes a fitting may use
  while shapes are still drawn from all of them (:meth:`~facehub.trainers.data.synthetic_world.SyntheticFaceWorld.prior_model`).
- **Glasses** (:func:`glasses_mesh`): a 3D frame with tinted opaque lenses in front of the eyes, a bridge over the
  nose and temples going back towards the ears, z-buffered with the face, so it hides the eyes where it should.
- **Hair** (:func:`hair_mesh`): a cap over the top of the head whose fringe covers the upper forehead, in front of
  the forehead surface, with strand-like colour variation.
- **Background plane** (:func:`background_plane`): a textured, slightly tilted plane behind everything, with depth.

Meshes are built in the model's frame (units of the model, house frame: x right, y down, z towards the camera) from
the view's own vertices, then placed by the same similarity transform as the face. :data:`SEGMENT_LABELS` names the
values of a row's ``segmentation``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Values of a v2 row's ``segmentation`` image, in order: 0 background, 1 face, 2 hair, 3 glasses.
SEGMENT_LABELS = ("background", "face", "hair", "glasses")
BACKGROUND, FACE, HAIR, GLASSES = range(4)

# sub-streams of ``numpy.random.default_rng([seed, identity, VARIATION_STREAM, component])``
VARIATION_STREAM = 2
_DETAIL, _GLASSES, _HAIR, _WITHHELD, _RELIEF = range(5)


def variation_rng(seed: int, identity: int, component: int) -> np.random.Generator:
    """The random stream of one variation component of one identity (independent of every other stream)."""
    return np.random.default_rng([seed, identity, VARIATION_STREAM, component])


# ------------------------------------------------------------------------------------------------ fine UV detail
def fine_detail_pattern(rng: np.random.Generator, size: int, amplitude: float) -> np.ndarray:
    """(3, size, size) multiplicative albedo factor ``1 + amplitude * p``, ``p`` a zero-mean pattern in [-1, 1].

    ``p`` mixes six oriented sinusoids of 10-40 cycles per map side (skin-pore / fabric-like texture) with a few
    dozen small dark spots (freckles), tinted slightly per channel.
    """
    v, u = (np.mgrid[0:size, 0:size] + 0.5) / size
    waves = np.zeros((size, size))
    for _ in range(6):
        frequency, angle, phase = rng.uniform(10, 40), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        waves += np.cos(2 * np.pi * frequency * (np.cos(angle) * u + np.sin(angle) * v) + phase)
    waves /= np.sqrt(6.0)  # unit-ish spread: each cosine has variance 1/2
    spots = np.zeros((size, size))
    centres_u, centres_v, radii = rng.uniform(0.15, 0.85, 40), rng.uniform(0.2, 0.85, 40), rng.uniform(0.004, 0.012, 40)
    for cu, cv, radius in zip(centres_u, centres_v, radii, strict=True):
        spots += np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2 * radius**2))
    pattern = 0.6 * waves - 0.8 * np.clip(spots, 0, 1)
    pattern = np.clip(pattern - pattern.mean(), -1, 1)
    tint = rng.uniform(0.8, 1.2, size=(3, 1, 1))
    return 1.0 + amplitude * tint * pattern[None]


@dataclass
class ReliefPattern:
    """A per-identity height field over UV: ``h(u, v) = amplitude * sum_i cos(2 pi f_i (d_i . (u, v)) + phi_i) /
    sqrt(n)``, with its exact gradient (fine wrinkles and pores, 15-45 cycles per map side)."""

    frequency: np.ndarray
    direction: np.ndarray
    phase: np.ndarray
    amplitude: float

    def height(self, uv):
        """(...) heights at (..., 2) UV points (torch)."""
        import torch

        f = torch.as_tensor(self.frequency, dtype=uv.dtype)
        argument = 2 * np.pi * f * (uv @ torch.as_tensor(self.direction, dtype=uv.dtype).T) \
            + torch.as_tensor(self.phase, dtype=uv.dtype)
        return torch.cos(argument).sum(-1) * self.amplitude / np.sqrt(len(self.frequency))

    def gradient(self, uv):
        """(..., 2) ``(dh/du, dh/dv)`` at (..., 2) UV points (a torch tensor in, a torch tensor out)."""
        import torch

        f = torch.as_tensor(self.frequency, dtype=uv.dtype)
        d = torch.as_tensor(self.direction, dtype=uv.dtype)
        phase = torch.as_tensor(self.phase, dtype=uv.dtype)
        argument = 2 * np.pi * f * (uv @ d.T) + phase  # (..., n)
        slope = -torch.sin(argument) * (2 * np.pi * f) * self.amplitude / np.sqrt(len(self.frequency))
        return slope @ d


def relief_pattern(rng: np.random.Generator, amplitude: float, count: int = 8) -> ReliefPattern:
    angle = rng.uniform(0, np.pi, count)
    return ReliefPattern(rng.uniform(15, 45, count), np.stack([np.cos(angle), np.sin(angle)], 1),
                         rng.uniform(0, 2 * np.pi, count), amplitude)


def shade_with_relief(renderer, vertices, triangles, uvs, albedo, sh, background, relief: ReliefPattern):
    """Render like :class:`~facehub.modeling.geometry.FaceRenderer` (orthographic, UV albedo, SH lighting) with the
    normals bump-mapped by ``relief`` (Blinn, "Simulation of Wrinkled Surfaces", SIGGRAPH 1978, eq. 4):
    ``N' = N + (F_u (N x P_v) - F_v (N x P_u)) / |N|`` with ``N = P_u x P_v``, ``P_u, P_v`` the triangle's
    surface derivatives with respect to UV and ``F`` the height (pixels). The geometry (mask, depth, triangle per
    pixel) is the unperturbed mesh's; only shading changes, and under ambient light alone nothing does.

    Returns a :class:`~facehub.modeling.geometry.render.RenderOutput`.
    """
    import torch
    import torch.nn.functional as F

    from facehub.modeling.geometry.morphable import sh_shading, vertex_normals
    from facehub.modeling.geometry.render import OrthographicCamera, RenderOutput

    face_index, bary = renderer.rasterize(vertices, triangles, OrthographicCamera(1.0, (0.0, 0.0)))
    mask = (face_index >= 0).unsqueeze(1).to(vertices.dtype)
    attributes = torch.cat([vertices[..., 2:3], vertex_normals(vertices, triangles), uvs.expand(1, -1, -1)], dim=-1)
    per_pixel = renderer.interpolate(attributes, triangles, face_index, bary)
    normal = F.normalize(per_pixel[..., 1:4], dim=-1, eps=1e-12)
    uv = per_pixel[..., 4:6]
    # per-triangle P_u, P_v: [e1 e2] = [P_u P_v] [duv1 duv2] for the edges e = v_k - v_0, duv = uv_k - uv_0
    corners, uv_corners = vertices[0][triangles], uvs[triangles]
    edges = torch.stack([corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]], dim=2)  # (F, 3, 2)
    duv = torch.stack([uv_corners[:, 1] - uv_corners[:, 0], uv_corners[:, 2] - uv_corners[:, 0]], dim=1)  # (F, 2, 2)
    det = duv[:, 0, 0] * duv[:, 1, 1] - duv[:, 0, 1] * duv[:, 1, 0]
    det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
    inverse = torch.stack([torch.stack([duv[:, 1, 1], -duv[:, 0, 1]], -1),
                           torch.stack([-duv[:, 1, 0], duv[:, 0, 0]], -1)], 1) / det[:, None, None]
    tangents = edges @ inverse  # (F, 3, 2): columns P_u, P_v
    t = tangents[face_index[0].clamp(min=0)]  # (H, W, 3, 2)
    p_u, p_v = t[..., 0], t[..., 1]
    n_raw = torch.cross(p_u, p_v, dim=-1)
    length = n_raw.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    n_raw = n_raw / length * torch.sign((n_raw * normal[0]).sum(-1, keepdim=True) + 1e-12)
    slope = relief.gradient(uv[0].double()).float()  # (H, W, 2)
    offset = slope[..., :1] * torch.cross(n_raw, p_v, dim=-1) - slope[..., 1:] * torch.cross(n_raw, p_u, dim=-1)
    bumped = F.normalize(normal[0] + offset / length, dim=-1, eps=1e-12)[None]
    colour = F.grid_sample(albedo, uv * 2.0 - 1.0, mode="bilinear", padding_mode="border", align_corners=False)
    colour = colour * sh_shading(bumped, sh).permute(0, 3, 1, 2)
    image = mask * colour + (1.0 - mask) * background
    depth = per_pixel[..., 0].unsqueeze(1)
    return RenderOutput(image=image, mask=mask, depth=depth * mask, face_index=face_index)


# ----------------------------------------------------------------------------------------- withheld identity
def model_span(model) -> np.ndarray:
    """(3V, K) orthonormal basis of everything a fit of ``model`` can explain: its identity and expression modes,
    its mean shape (a global scale) and the six rigid motions about the mean (3 translations, 3 rotations)."""
    mean = model.mean_shape.double().numpy()
    n = len(mean)
    columns = [model.id_basis.double().numpy().reshape(-1, 3 * n), model.exp_basis.double().numpy().reshape(-1, 3 * n),
               mean.reshape(1, -1)]
    for axis in range(3):
        translation = np.zeros((n, 3))
        translation[:, axis] = 1.0
        generator = np.zeros(3)
        generator[axis] = 1.0
        columns += [translation.reshape(1, -1), np.cross(generator, mean).reshape(1, -1)]
    basis, _ = np.linalg.qr(np.concatenate(columns).T)
    return basis


def withheld_deformation(rng: np.random.Generator, model, rms: float, span: np.ndarray | None = None) -> np.ndarray:
    """(V, 3) smooth deformation outside the model's span (:func:`model_span`), root-mean-square ``rms`` (model
    units) per vertex.

    Eight Gaussian bumps (width 15-30% of the face width) with random 3D directions, minus their least-squares
    projection onto the span, so ``span.T @ d.ravel() == 0`` to rounding: no coefficient, scale or pose explains it.
    """
    mean = model.mean_shape.double().numpy()
    width = np.ptp(mean[:, 0])
    field = np.zeros_like(mean)
    for _ in range(8):
        centre = mean[rng.integers(len(mean))]
        sigma = rng.uniform(0.15, 0.3) * width
        weight = np.exp(-np.sum((mean - centre) ** 2, axis=1) / (2 * sigma**2))
        field += weight[:, None] * rng.normal(size=3)[None]
    span = model_span(model) if span is None else span
    flat = field.ravel()
    flat = flat - span @ (span.T @ flat)
    flat *= rms / max(np.sqrt(np.mean(np.sum(flat.reshape(-1, 3) ** 2, axis=1))), 1e-12)
    return flat.reshape(-1, 3)


# --------------------------------------------------------------------------------------------------- layers
@dataclass
class LayerMesh:
    """A non-face layer: (N, 3) vertices in the model frame, (F, 3) triangles wound towards +z where it faces the
    camera, (N, 3) vertex colours in [0, 1], and whether it is lit by the scene's SH lighting."""

    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray
    lit: bool


@dataclass
class GlassesStyle:
    """Per-identity glasses: frame and lens colours, lens size relative to the inter-ocular distance, lens aspect."""

    frame_color: np.ndarray
    lens_color: np.ndarray
    lens_radius: float
    aspect: float


def glasses_style(rng: np.random.Generator) -> GlassesStyle:
    frame = rng.choice([[0.05, 0.05, 0.05], [0.35, 0.2, 0.1], [0.7, 0.7, 0.72], [0.5, 0.05, 0.05]])
    lens = rng.uniform(0.05, 0.3) * rng.uniform(0.7, 1.3, size=3)
    return GlassesStyle(np.asarray(frame, float), np.clip(lens, 0, 1), rng.uniform(0.38, 0.44), rng.uniform(0.62, 0.8))


def _ellipse(centre, rx, ry, z, count):
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return np.stack([centre[0] + rx * np.cos(angles), centre[1] + ry * np.sin(angles), np.full(count, z)], axis=1)


def glasses_mesh(vertices: np.ndarray, landmarks: np.ndarray, style: GlassesStyle, segments: int = 32) -> LayerMesh:
    """Glasses for one face: ``vertices`` (V, 3) and ``landmarks`` (68, 3) in the model frame.

    Each lens is a filled ellipse centred on its eye (iBUG 37-42 and 43-48), in the plane just in front of the face
    surface under it (5% of the inter-ocular distance ahead of the nearest vertex inside the lens); a rim 8% of the
    radius wide surrounds it; the bridge passes in front of the nose; the temples run 1.6 inter-ocular distances
    back from the lenses' outer edges.
    """
    right, left = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
    iod = float(np.linalg.norm(left[:2] - right[:2]))
    rx = style.lens_radius * iod
    ry = style.aspect * rx
    rim = 0.08 * rx
    gap = 0.05 * iod
    parts_v, parts_t, parts_c = [], [], []

    def add(points, triangles, color):
        parts_t.append(np.asarray(triangles) + sum(len(p) for p in parts_v))
        parts_v.append(np.asarray(points, float))
        parts_c.append(np.tile(color, (len(points), 1)))

    lens_z = []
    for eye in (right, left):
        inside = ((vertices[:, 0] - eye[0]) / (rx + rim)) ** 2 + ((vertices[:, 1] - eye[1]) / (ry + rim)) ** 2 <= 1
        z = float(vertices[inside, 2].max() if inside.any() else eye[2]) + gap
        lens_z.append(z)
        fan = np.concatenate([[[eye[0], eye[1], z]], _ellipse(eye, rx, ry, z, segments)])
        k = np.arange(segments)
        add(fan, np.stack([np.zeros(segments, int), 1 + k, 1 + (k + 1) % segments], axis=1), style.lens_color)
        ring = np.concatenate([_ellipse(eye, rx, ry, z + 0.01 * iod, segments),
                               _ellipse(eye, rx + rim, ry + rim, z + 0.01 * iod, segments)])
        quads = [(i, (i + 1) % segments, segments + i) for i in k] + \
                [((i + 1) % segments, segments + (i + 1) % segments, segments + i) for i in k]
        add(ring, quads, style.frame_color)
    # bridge: from the top inner rim of one lens to the other, in front of the nose
    y = 0.5 * (right[1] + left[1]) - 0.3 * ry
    near = (np.abs(vertices[:, 0]) < 0.25 * iod) & (np.abs(vertices[:, 1] - y) < 0.15 * iod)
    z_bridge = max(float(vertices[near, 2].max()) if near.any() else max(lens_z), max(lens_z)) + gap
    xs = [right[0] + rx, 0.5 * (right[0] + left[0]), left[0] - rx]
    zs = [lens_z[0] + 0.01 * iod, z_bridge, lens_z[1] + 0.01 * iod]
    top = [[x, y - rim, z] for x, z in zip(xs, zs, strict=True)]
    bottom = [[x, y + rim, z] for x, z in zip(xs, zs, strict=True)]
    add(top + bottom, [(0, 1, 3), (1, 4, 3), (1, 2, 4), (2, 5, 4)], style.frame_color)
    # temples: ribbons in the y-z plane from each lens's outer edge back towards the ear
    for eye, z, side in ((right, lens_z[0], -1.0), (left, lens_z[1], 1.0)):
        x0 = eye[0] + side * (rx + rim)
        x1 = x0 + side * 0.1 * iod
        y0 = eye[1] - 0.2 * ry
        points = [[x0, y0 - rim, z], [x0, y0 + rim, z], [x1, y0 + 0.1 * iod - rim, z - 1.6 * iod],
                  [x1, y0 + 0.1 * iod + rim, z - 1.6 * iod]]
        add(points, [(0, 1, 2), (1, 3, 2)], style.frame_color)
    return LayerMesh(np.concatenate(parts_v), np.concatenate(parts_t).astype(np.int64), np.concatenate(parts_c), False)


@dataclass
class HairStyle:
    """Per-identity hair: base colour, fringe depth below the top of the face and side drop (fractions of the face
    height), strand frequency and phases."""

    color: np.ndarray
    fringe: float
    side_drop: float
    strands: float
    phases: np.ndarray


def hair_style(rng: np.random.Generator) -> HairStyle:
    palette = np.array([[0.06, 0.05, 0.05], [0.2, 0.12, 0.07], [0.4, 0.25, 0.12], [0.5, 0.2, 0.1],
                        [0.75, 0.6, 0.35], [0.6, 0.6, 0.6]])
    color = palette[rng.integers(len(palette))] * rng.uniform(0.85, 1.15, size=3)
    return HairStyle(np.clip(color, 0, 1), rng.uniform(0.06, 0.16), rng.uniform(0.15, 0.35), rng.uniform(25, 60),
                     rng.uniform(0, 2 * np.pi, size=3))


def hair_mesh(vertices: np.ndarray, style: HairStyle, rows: int = 16, columns: int = 32) -> LayerMesh:
    """A hair cap over the face ``vertices`` (V, 3), model frame.

    A ``rows`` x ``columns`` height field over x in the face's width (+10%) and y from 40% of the face height above
    its top down to a hairline ``fringe`` below the top (lower at the sides by ``side_drop``). Its z follows an
    ellipsoidal dome, moved forward until it lies 2% of the face width in front of every face vertex it covers, so
    the fringe hides the upper forehead and z-buffering tells hair from face.
    """
    x, y, z = vertices.T
    width, height = float(np.ptp(x)), float(np.ptp(y))
    half = 0.55 * width
    top = float(y.min())
    gx = np.linspace(-half, half, columns)
    t = np.linspace(0.0, 1.0, rows)[:, None]
    bottom = top + style.fringe * height + style.side_drop * height * (gx / half) ** 4
    gy = (top - 0.4 * height) + t * (bottom[None] - (top - 0.4 * height))
    gx = np.broadcast_to(gx[None], gy.shape)
    centre_y, ax, ay, az = top + 0.45 * height, 1.15 * half, 0.8 * height, 0.5 * width
    dome = az * np.sqrt(np.clip(1 - (gx / ax) ** 2 - ((gy - centre_y) / ay) ** 2, 0.0, None))

    def dome_at(px, py):
        return az * np.sqrt(np.clip(1 - (px / ax) ** 2 - ((py - centre_y) / ay) ** 2, 0.0, None))

    covered = (np.abs(x) <= half) & (y <= top + style.fringe * height + style.side_drop * height * (x / half) ** 4)
    lift = float(np.max(z[covered] - dome_at(x[covered], y[covered]))) if covered.any() else float(z.max())
    gz = dome + lift + 0.02 * width
    points = np.stack([gx, gy, gz], axis=-1).reshape(-1, 3)
    i, j = np.mgrid[0 : rows - 1, 0 : columns - 1]
    a = (i * columns + j).ravel()
    triangles = np.concatenate([np.stack([a, a + 1, a + columns], 1), np.stack([a + 1, a + columns + 1, a + columns], 1)])
    strand = 1 + 0.25 * np.sin(style.strands * 2 * np.pi * (gx / width) + style.phases[0]) \
        * np.cos(0.37 * style.strands * 2 * np.pi * (gx / width) + style.phases[1])
    colors = np.clip(style.color[None] * strand.reshape(-1, 1), 0, 1)
    return LayerMesh(points, triangles.astype(np.int64), colors, True)


# ------------------------------------------------------------------------------------------ background plane
def background_plane(rng: np.random.Generator, base: np.ndarray, far: float) -> tuple[np.ndarray, np.ndarray]:
    """A textured background plane behind the scene.

    Args:
        base: (3, H, W) colour of the old backdrop (:func:`~facehub.trainers.data.synthetic_world.background`).
        far: z (pixels, house frame) that the plane must stay behind.

    Returns:
        (3, H, W) colour in [0, 1]: ``base`` times a tiled pattern (stripes or checks of 6-20 px period, +-25%);
        (H, W) z of the plane at each pixel centre: ``far - 0.3 H`` plus a tilt of at most 0.1 per pixel, always
        below ``far``.
    """
    _, h, w = base.shape
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    period, angle = rng.uniform(6, 20), rng.uniform(0, np.pi)
    along = (np.cos(angle) * xs + np.sin(angle) * ys) / period
    if rng.uniform() < 0.5:
        pattern = np.sign(np.sin(2 * np.pi * along))
    else:
        across = (-np.sin(angle) * xs + np.cos(angle) * ys) / period
        pattern = np.sign(np.sin(2 * np.pi * along) * np.sin(2 * np.pi * across))
    color = np.clip(base * (1 + 0.25 * pattern[None]), 0, 1)
    tilt = rng.uniform(-0.1, 0.1, size=2)
    z = far - 0.3 * h + tilt[0] * (xs - w / 2) + tilt[1] * (ys - h / 2)
    return color, np.minimum(z, far - 1.0)


def v2_features(uv_size: int, image_size: int, num_vertices: int = 468):
    """:func:`~facehub.trainers.data.schema.synthetic_features` plus the v2 columns: ``segmentation`` (H, W) uint8
    (:data:`SEGMENT_LABELS`), ``scene_depth`` (H, W) float16 (z of the visible layer, in the frame of ``depth``;
    the background plane lies behind every other layer; without a plane the background is 0, tell it by
    ``segmentation``), ``prior_modes``,
    ``withheld_offsets`` (V, 3) model units, ``has_glasses``, ``has_hair``."""
    from datasets import Array2D, Value

    from facehub.trainers.data.schema import synthetic_features

    features = synthetic_features(uv_size, image_size)
    features.update({
        "segmentation": Array2D(shape=(image_size, image_size), dtype="uint8"),
        "scene_depth": Array2D(shape=(image_size, image_size), dtype="float16"),
        "prior_modes": Value("int64"),
        "withheld_offsets": Array2D(shape=(num_vertices, 3), dtype="float32"),
        "has_glasses": Value("bool"),
        "has_hair": Value("bool"),
    })
    return features
