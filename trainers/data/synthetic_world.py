"""The synthetic face world: morphable-model faces rendered with exact ground truth, deterministic by seed.

Identity ``i`` draws its shape and albedo coefficients from ``(seed, i)``; view ``j`` of it draws pose,
expression, spherical-harmonics lighting, framing and a background from ``(seed, i, j)``. Every view is rendered
by :class:`facehub.modeling.geometry.FaceRenderer` (orthographic camera, the projection of DepthNets eq. 1 and of
PRNet's position maps) from :meth:`facehub.modeling.geometry.MorphableFaceModel.default`, and comes with what a
photo never has: 68 landmarks in 2D and 3D, the dense mesh, a depth image, the pose, the UV position map, the model
coefficients and the identity. Rows follow :func:`facehub.trainers.data.schema.synthetic_features`, the schema of
``facehub prepare`` plus those extra columns, so a trainer reads photos and synthetic faces alike.

All coordinates are pixels of the rendered image (x right, y down, z towards the camera, measured from the face's
deepest vertex, so the depth image is positive on the face and 0 elsewhere). ``pose`` is the head pose (yaw, pitch,
roll) in degrees, in the frame the FaceAnalyzer reads poses in: the model's rotation ``R`` gives the head pose
:meth:`~facehub.modeling.geometry.MorphableFaceModel.head_pose` (``R`` times the model's rest pose), and
:meth:`~facehub.modeling.geometry.MorphableFaceModel.rotation_for_head_pose` reads ``R`` back from a row.

Synthetic world v2:

- :meth:`SyntheticFaceWorld.render_face` renders one identity at a chosen pose, expression, lighting, size and
  framing with everything else (backdrop included) fixed, and returns the exact geometry of the render (mesh in
  pixels, z-buffered triangle per pixel); :meth:`SyntheticFaceWorld.flow` gives the exact 2D flow between two such
  renders and where it is valid.
- Config switches (all off by default; off, a row is byte-for-byte what it was before v2) add what the morphable
  prior cannot explain (:mod:`facehub.trainers.data.synthetic_variation`): fine UV detail, glasses, hair, a
  background plane, a deformation outside the model's span, and a prior with fewer identity modes than the shapes
  use (:meth:`SyntheticFaceWorld.prior_model`). Rows then also carry ``segmentation`` (background, face, hair,
  glasses), ``scene_depth``, ``prior_modes``, ``withheld_offsets``, ``has_glasses`` and ``has_hair``
  (:func:`facehub.trainers.data.synthetic_variation.v2_features`). ``depth`` stays the face surface's own depth,
  also where glasses or hair cover it; ``scene_depth`` is the z of whatever is visible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import torch

from facehub.modeling.geometry.rotations import rotation_matrix


@dataclass
class SyntheticWorldConfig:
    """How many faces, at what size, under which ranges of pose and appearance.

    Fields:
        num_identities, views_per_identity: the world holds ``num_identities * views_per_identity`` rows.
        image_size: side of the rendered images in pixels; uv_size: side of the UV position maps.
        seed: everything is a pure function of it.
        max_yaw, max_pitch, max_roll: the model's rotation angles are uniform in [-max, max] degrees (a row's
            ``pose`` is the head pose they give, a few degrees of pitch away: module docstring).
        identity_scale, expression_scale, albedo_scale: standard deviations of the model coefficients (the model's
            bases are scaled so 1.0 is its own spread).
        face_width: face width as a fraction of the image (with +-10% jitter); shift: framing jitter, fraction.

    Synthetic world v2 (:mod:`facehub.trainers.data.synthetic_variation`), all off by default so rows stay as
    they were:
        fine_detail: amplitude of a per-identity high-frequency UV albedo pattern (e.g. 0.15; 0 = off).
        fine_relief: amplitude, as a fraction of the face width, of a per-identity high-frequency height field that
            bump-maps the shading (e.g. 0.003; 0 = off).
        glasses, hair: share of identities wearing glasses / having a hair layer (0 = none, 1 = all).
        background_plane: a textured, tilted background plane with depth instead of the flat backdrop.
        withheld_scale: RMS, as a fraction of the mean face's width, of a per-identity deformation outside the
            model's span (e.g. 0.02; 0 = off).
        prior_modes: how many leading identity modes the prior of a fitting may use (:meth:`SyntheticFaceWorld.prior_model`);
            shapes are still drawn from all of them. 0 = all.
    """

    num_identities: int = 8
    views_per_identity: int = 4
    image_size: int = 128
    uv_size: int = 64
    seed: int = 0
    max_yaw: float = 60.0
    max_pitch: float = 25.0
    max_roll: float = 15.0
    identity_scale: float = 1.0
    expression_scale: float = 0.6
    albedo_scale: float = 0.8
    face_width: float = 0.55
    shift: float = 0.05
    fine_detail: float = 0.0
    fine_relief: float = 0.0
    glasses: float = 0.0
    hair: float = 0.0
    background_plane: bool = False
    withheld_scale: float = 0.0
    prior_modes: int = 0

    def __post_init__(self):
        for name in ("num_identities", "views_per_identity", "image_size", "uv_size"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"Got {getattr(self, name)} for `{name}`; it must be a positive integer.")
        if not 0 < self.face_width <= 1:
            raise ValueError(f"Got {self.face_width} for `face_width`; expected a fraction in (0, 1].")
        for name in ("glasses", "hair"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"Got {getattr(self, name)} for `{name}`; expected a probability in [0, 1] "
                                 "(the share of identities that have it; 0 turns it off).")
        for name in ("fine_detail", "fine_relief", "withheld_scale", "prior_modes"):
            if getattr(self, name) < 0:
                raise ValueError(f"Got {getattr(self, name)} for `{name}`; it must be >= 0 (0 turns it off).")

    @property
    def variation(self) -> bool:
        """True when any v2 option is on; rows then carry the v2 columns (:func:`.synthetic_variation.v2_features`)."""
        return bool(self.fine_detail or self.fine_relief or self.glasses or self.hair or self.background_plane or self.withheld_scale
                    or self.prior_modes)


class SyntheticFaceWorld:
    """Rows of the synthetic world by index (``identity * views_per_identity + view``); see the module docstring."""

    def __init__(self, config: SyntheticWorldConfig | None = None, model=None):
        self.config = config or SyntheticWorldConfig()
        self._model = model

    @cached_property
    def model(self):
        from facehub.modeling.geometry.morphable import MorphableFaceModel

        return self._model if self._model is not None else MorphableFaceModel.default()

    @cached_property
    def renderer(self):
        from facehub.modeling.geometry.render import FaceRenderer

        return FaceRenderer(self.config.image_size)

    @cached_property
    def _mean_width(self) -> float:
        x = self.model.mean_shape[:, 0]
        return float(x.max() - x.min())

    def __len__(self) -> int:
        return self.config.num_identities * self.config.views_per_identity

    def identity_coefficients(self, identity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(shape, albedo) coefficients of one identity, each (1, K)."""
        c, m = self.config, self.model
        rng = np.random.default_rng([c.seed, identity])
        shape = rng.normal(scale=c.identity_scale, size=(1, m.num_identity))
        albedo = rng.normal(scale=c.albedo_scale, size=(1, m.num_albedo))
        return torch.from_numpy(shape).float(), torch.from_numpy(albedo).float()

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        identity, view = divmod(index, self.config.views_per_identity)
        return self.render(identity, view)

    @torch.no_grad()
    def render(self, identity: int, view: int) -> dict:
        """One row (schema: :func:`~facehub.trainers.data.schema.synthetic_features`, plus the v2 columns of
        :func:`~facehub.trainers.data.synthetic_variation.v2_features` when a v2 option is on)."""
        from facehub.modeling.geometry.morphable import SH_DC

        c, m, size = self.config, self.model, self.config.image_size
        rng = np.random.default_rng([c.seed, identity, view, 1])
        rotation = rng.uniform(-1, 1, size=3) * [c.max_yaw, c.max_pitch, c.max_roll]
        expression = torch.from_numpy(rng.normal(scale=c.expression_scale, size=(1, m.num_expression))).float()
        scale = c.face_width * size * rng.uniform(0.9, 1.1) / self._mean_width
        centre = size / 2 + rng.uniform(-c.shift, c.shift, size=2) * size
        lighting = np.zeros((3, 9))
        lighting[:, 0] = rng.uniform(0.75, 1.1) * rng.uniform(0.9, 1.1, size=3) / SH_DC  # ambient, tinted
        lighting[:, 1:4] = rng.normal(scale=0.25, size=3)  # one white directional light (first SH band)
        lighting[:, 4:] = rng.normal(scale=0.05, size=(3, 5))
        backdrop = background(rng, size)
        row, _ = self._render_scene(identity, rotation, expression, scale, centre, lighting, backdrop, size,
                                    source=f"synthetic:seed={c.seed}:identity={identity}:view={view}",
                                    plane_rng=np.random.default_rng([c.seed, identity, view, 2]))
        return row

    @torch.no_grad()
    def render_face(self, identity: int, pose=(0.0, 0.0, 0.0), expression=None, lighting=None,
                    image_size: int | None = None, scale: float | None = None, center=None,
                    background_key: int = 0) -> dict:
        """Render ``identity`` at a chosen pose, expression and lighting with everything else fixed.

        Args:
            pose: (yaw, pitch, roll) degrees, the head pose (module docstring). expression: (K_exp,) coefficients;
                None = neutral (zeros).
            lighting: (3, 9) or (27,) SH coefficients; None = ambient light of irradiance 1 (the image is the
                albedo).
            image_size: side in pixels (default: the config's). scale: pixels per model unit (default: the face
                spans ``face_width`` of the image). center: (x, y) pixel where the face's centroid lands (default:
                the image centre).
            background_key: picks the backdrop (and background plane) among those of this identity; the same key
                gives the same backdrop at any pose.

        Returns:
            The row fields of :meth:`render` (``source`` names identity, pose and key), the v2 columns, and the
            exact ground truth for :meth:`flow`: ``vertices`` (V, 3) float64 mesh in pixels, ``face_index`` (H, W)
            triangle of the face mesh z-buffered at each pixel centre (-1 off the face, whatever occludes it),
            ``segmentation`` (H, W) uint8 (:data:`~facehub.trainers.data.synthetic_variation.SEGMENT_LABELS`),
            ``scene_depth``, ``scale`` and ``center``. Same arguments, same pixels.
        """
        from facehub.modeling.geometry.morphable import SH_DC

        c, m = self.config, self.model
        size = int(image_size or c.image_size)
        expression = torch.zeros(1, m.num_expression) if expression is None else \
            torch.as_tensor(np.asarray(expression, np.float32)).reshape(1, m.num_expression)
        if lighting is None:
            lighting = np.zeros((3, 9))
            lighting[:, 0] = 1.0 / SH_DC
        lighting = np.asarray(lighting, np.float64).reshape(3, 9)
        scale = c.face_width * size / self._mean_width if scale is None else float(scale)
        centre = np.array([size / 2, size / 2] if center is None else center, np.float64)
        rng = np.random.default_rng([c.seed, identity, 3, background_key])
        backdrop = background(rng, size)
        pose = np.asarray(pose, np.float64)
        row, extras = self._render_scene(
            identity, np.asarray(m.rotation_for_head_pose(pose)), expression, scale, centre, lighting, backdrop, size,
            source=f"synthetic:seed={c.seed}:identity={identity}:pose={tuple(float(a) for a in pose)}:"
                   f"background={background_key}",
            plane_rng=np.random.default_rng([c.seed, identity, 3, background_key, 2]), extras=True)
        return {**row, **extras}

    def _layers(self, identity: int, vertices: np.ndarray) -> list:
        """The identity's non-face layers (:class:`~.synthetic_variation.LayerMesh`, model frame) for these vertices."""
        from facehub.trainers.data import synthetic_variation as sv

        c, layers = self.config, []
        if c.hair and sv.variation_rng(c.seed, identity, sv._HAIR).uniform() < c.hair:
            style = sv.hair_style(sv.variation_rng(c.seed, identity, sv._HAIR + 10))
            layers.append((sv.HAIR, sv.hair_mesh(vertices, style)))
        if c.glasses and sv.variation_rng(c.seed, identity, sv._GLASSES).uniform() < c.glasses:
            style = sv.glasses_style(sv.variation_rng(c.seed, identity, sv._GLASSES + 10))
            landmarks = self.model.landmark_weights.double().numpy() @ vertices
            layers.append((sv.GLASSES, sv.glasses_mesh(vertices, landmarks, style)))
        return layers

    def withheld_offsets(self, identity: int) -> np.ndarray:
        """(V, 3) float64 deformation of ``identity`` outside the model's span, model units (zeros when
        ``withheld_scale`` is 0); see :func:`~.synthetic_variation.withheld_deformation`."""
        from facehub.trainers.data import synthetic_variation as sv

        c = self.config
        if not c.withheld_scale:
            return np.zeros(tuple(self.model.mean_shape.shape))
        return sv.withheld_deformation(sv.variation_rng(c.seed, identity, sv._WITHHELD), self.model,
                                       c.withheld_scale * self._mean_width, span=self._span)

    @cached_property
    def _span(self) -> np.ndarray:
        from facehub.trainers.data.synthetic_variation import model_span

        return model_span(self.model)

    def prior_model(self):
        """The morphable model a fitting may use: the world's model with only its first ``prior_modes`` identity
        modes (all of them when ``prior_modes`` is 0). Shapes are drawn from every mode, so the rest is withheld."""
        from facehub.modeling.geometry.morphable import MorphableFaceModel

        m, k = self.model, self.config.prior_modes or self.model.num_identity
        return MorphableFaceModel(m.mean_shape, m.id_basis[:k], m.exp_basis, m.albedo_mean, m.albedo_basis,
                                  m.triangles, m.uvs, m.landmark_weights, m.albedo_space, m.unit, m.expression_names)

    def albedo_texture(self, identity: int, albedo_coefficients: torch.Tensor | None = None) -> torch.Tensor:
        """(1, 3, T, T) UV albedo of ``identity``: the model's ``T_mean + B_tex delta``, times the identity's fine
        detail pattern when ``fine_detail`` is on (:func:`~.synthetic_variation.fine_detail_pattern`), in [0, 1]."""
        from facehub.trainers.data import synthetic_variation as sv

        c = self.config
        if albedo_coefficients is None:
            albedo_coefficients = self.identity_coefficients(identity)[1]
        albedo = self.model.albedo(albedo_coefficients)
        if c.fine_detail:
            pattern = sv.fine_detail_pattern(sv.variation_rng(c.seed, identity, sv._DETAIL), albedo.shape[-1],
                                             c.fine_detail)
            albedo = (albedo * torch.from_numpy(pattern).float()[None]).clamp(0.0, 1.0)
        return albedo

    def _renderer(self, size: int):
        if size == self.config.image_size:
            return self.renderer
        from facehub.modeling.geometry.render import FaceRenderer

        return FaceRenderer(size)

    def _render_scene(self, identity, rotation_angles, expression, scale, centre, lighting, backdrop, size, *, source,
                      plane_rng, extras=False):
        from facehub.modeling.geometry.render import OrthographicCamera
        from facehub.modeling.geometry.uv_maps import mesh_to_uv_position_map
        from facehub.trainers.data import synthetic_variation as sv

        c, m = self.config, self.model
        shape_coefficients, albedo_coefficients = self.identity_coefficients(identity)
        vertices = m.shape(shape_coefficients, expression)[0].double()
        withheld = self.withheld_offsets(identity) if c.withheld_scale else None
        if withheld is not None:
            vertices = vertices + torch.from_numpy(withheld)
        model_vertices = vertices  # model frame, before centring: the layers are built on it
        mean = vertices.mean(dim=0)
        vertices = vertices - mean
        rotation = torch.from_numpy(rotation_matrix(*rotation_angles))
        pixels = scale * vertices @ rotation.T  # z towards the camera, pixels, centred on the face
        pixels[:, :2] += torch.from_numpy(centre)
        z_shift = pixels[:, 2].min()
        pixels[:, 2] -= z_shift  # z from the deepest vertex: >= 0 on the face, so depth 0 means "no face"

        albedo = self.albedo_texture(identity, albedo_coefficients)
        renderer = self._renderer(size)
        camera = OrthographicCamera(1.0, (0.0, 0.0))
        sh = torch.from_numpy(lighting)[None].float()
        if c.fine_relief:
            relief = sv.relief_pattern(sv.variation_rng(c.seed, identity, sv._RELIEF), c.fine_relief * scale
                                       * self._mean_width)
            output = sv.shade_with_relief(renderer, pixels[None].float(), m.triangles, m.uvs, albedo, sh,
                                          torch.from_numpy(backdrop)[None].float(), relief)
        else:
            output = renderer(
                pixels[None].float(),
                m.triangles,
                camera,
                uvs=m.uvs,
                albedo_texture=albedo,
                sh_coeffs=sh,
                background=torch.from_numpy(backdrop)[None].float(),
            )
        image = output.image[0].permute(1, 2, 0).clamp(0, 1).numpy()
        face = output.mask[0, 0].numpy() > 0
        label = np.where(face, sv.FACE, sv.BACKGROUND).astype(np.uint8)
        scene_z = np.where(face, output.depth[0, 0].numpy(), 0.0)
        has = {sv.HAIR: False, sv.GLASSES: False}
        if c.variation:
            layers = self._layers(identity, model_vertices.numpy())
            if c.background_plane:
                far = float(pixels[:, 2].min())
                for _, layer in layers:
                    layer_z = (scale * (torch.from_numpy(layer.vertices) - mean) @ rotation.T)[:, 2] - z_shift
                    far = min(far, float(layer_z.min()))
                colour, plane_z = sv.background_plane(plane_rng, backdrop, far)
                image = np.where(face[..., None], image, colour.transpose(1, 2, 0))
                scene_z = np.where(face, scene_z, plane_z)
            else:
                scene_z = np.where(face, scene_z, -np.inf)
            if layers:  # every layer in one z-buffered render; lit layers are shaded per vertex beforehand
                from facehub.modeling.geometry.morphable import sh_shading, vertex_normals

                points, faces, colours, kinds, count = [], [], [], [], 0
                for kind, layer in layers:
                    placed = scale * (torch.from_numpy(layer.vertices) - mean) @ rotation.T
                    placed[:, :2] += torch.from_numpy(centre)
                    placed[:, 2] -= z_shift
                    colour = torch.from_numpy(layer.colors).float()
                    if layer.lit:
                        normals = vertex_normals(placed[None].float(), torch.from_numpy(layer.triangles))
                        colour = colour * sh_shading(normals, sh)[0]
                    points.append(placed.float())
                    faces.append(torch.from_numpy(layer.triangles) + count)
                    colours.append(colour)
                    kinds.append(np.full(len(layer.triangles), kind, np.uint8))
                    count += len(layer.vertices)
                    has[kind] = True
                out = renderer(torch.cat(points)[None], torch.cat(faces), camera,
                               vertex_colors=torch.cat(colours)[None])
                z = out.depth[0, 0].numpy()
                wins = (out.mask[0, 0].numpy() > 0) & (z > scene_z)
                image = np.where(wins[..., None], out.image[0].permute(1, 2, 0).clamp(0, 1).numpy(), image)
                scene_z = np.where(wins, z, scene_z)
                label[wins] = np.concatenate(kinds)[out.face_index[0].numpy()[wins]]
            scene_z = np.where(np.isfinite(scene_z), scene_z, 0.0)
        image = (image * 255 + 0.5).astype(np.uint8)
        dense = pixels.float().numpy()
        landmarks3d = m.landmarks68(pixels[None].float())[0].numpy()
        row = {
            "image": image,
            "landmarks68": landmarks3d[:, :2].copy(),
            "dense_landmarks": dense,
            "pose": [float(a) for a in m.head_pose(rotation_angles)],
            "embedding": [0.0] * 128,
            "identity": identity,
            "identity_name": f"synthetic-{identity:05d}",
            "attributes": [],
            "uv_position_map": mesh_to_uv_position_map(dense, size=c.uv_size).astype(np.float16),
            "crop_to_image": np.array([[1, 0, 0], [0, 1, 0]], np.float32),
            "source": source,
            "landmarks68_3d": landmarks3d,
            "depth": (output.depth[0, 0] * output.mask[0, 0]).numpy().astype(np.float16),
            "shape_coefficients": shape_coefficients[0].tolist(),
            "expression_coefficients": expression[0].tolist(),
            "albedo_coefficients": albedo_coefficients[0].tolist(),
            "lighting": lighting.ravel().tolist(),
        }
        if c.variation:
            row.update({
                "segmentation": label,
                "scene_depth": scene_z.astype(np.float16),
                "prior_modes": int(c.prior_modes or m.num_identity),
                "withheld_offsets": (np.zeros(tuple(m.mean_shape.shape)) if withheld is None else withheld
                                     ).astype(np.float32),
                "has_glasses": has[sv.GLASSES],
                "has_hair": has[sv.HAIR],
            })
        if not extras:
            return row, {}
        return row, {"vertices": pixels.numpy(), "face_index": output.face_index[0].numpy(), "segmentation": label,
                     "scene_depth": scene_z.astype(np.float32), "scale": float(scale), "center": centre.tolist()}

    def flow(self, a: dict, b: dict) -> tuple[np.ndarray, np.ndarray]:
        """Exact 2D flow from render ``a`` to render ``b`` of the same identity (two :meth:`render_face` results).

        For each pixel of ``a`` where the face is visible (``segmentation`` is face), the surface point seen at the
        pixel centre ``p`` is ``sum_k w_k V^a_{t_k}``: ``t`` the z-buffered triangle (``face_index``), ``w`` the
        barycentrics of ``p`` in its projected corners. The same point in ``b`` is ``q = sum_k w_k V^b_{t_k}`` (same
        topology, same weights). The flow is ``q_xy - p``. It is valid where ``q`` lies inside ``b``'s image and is
        visible there: its triangle faces ``b``'s camera, no triangle of ``b``'s face mesh covers ``q_xy`` in front
        of ``q`` (an exact point-in-triangle and depth test against every triangle), and neither glasses nor hair
        cover ``q``'s pixel in ``b``. Otherwise the point is hidden in ``b``.

        Returns:
            (H, W, 2) float32 flow in pixels (0 where invalid) and (H, W) bool validity.
        """
        from facehub.trainers.data.synthetic_variation import FACE, GLASSES, HAIR

        triangles = self.model.triangles.numpy()
        va, vb = np.asarray(a["vertices"], np.float64), np.asarray(b["vertices"], np.float64)
        fa = np.asarray(a["face_index"])
        h, w = fa.shape
        rows, cols = np.nonzero((fa >= 0) & (np.asarray(a["segmentation"]) == FACE))
        p = np.stack([cols + 0.5, rows + 0.5], axis=1)
        corners = triangles[fa[rows, cols]]
        weights = _barycentric_2d(p, va[corners][..., :2])
        q = np.einsum("nk,nkd->nd", weights, vb[corners])
        sb = np.asarray(b["segmentation"])
        hb, wb = sb.shape
        qi = np.floor(q[:, :2]).astype(np.int64)
        ok = (qi[:, 0] >= 0) & (qi[:, 0] < wb) & (qi[:, 1] >= 0) & (qi[:, 1] < hb)
        ok[ok] = ~np.isin(sb[qi[ok, 1], qi[ok, 0]], (GLASSES, HAIR))
        tb = vb[corners]
        facing = (tb[:, 1, 0] - tb[:, 0, 0]) * (tb[:, 2, 1] - tb[:, 0, 1]) \
            - (tb[:, 1, 1] - tb[:, 0, 1]) * (tb[:, 2, 0] - tb[:, 0, 0])
        ok &= facing > 0
        ok[ok] = ~_covered_in_front(q[ok], vb, triangles)
        flow = np.zeros((h, w, 2), np.float32)
        valid = np.zeros((h, w), bool)
        flow[rows[ok], cols[ok]] = (q[ok, :2] - p[ok]).astype(np.float32)
        valid[rows[ok], cols[ok]] = True
        return flow, valid

    def to_dataset(self):
        """The whole world as a ``datasets.Dataset`` (rendered once, cached by ``datasets``' fingerprint)."""
        import datasets

        from facehub.trainers.data.schema import synthetic_features

        c = self.config
        features = synthetic_features(c.uv_size, c.image_size)
        if c.variation:
            from facehub.trainers.data.synthetic_variation import v2_features

            features = v2_features(c.uv_size, c.image_size, int(self.model.mean_shape.shape[0]))
        return datasets.Dataset.from_generator(_rows, gen_kwargs={"config": asdict(c)}, features=features,
                                               fingerprint=rendering_fingerprint(c))


def rendering_fingerprint(config: SyntheticWorldConfig) -> str:
    """A digest of everything a rendered world depends on: its config, and the source and data files of the packages
    that render it (:mod:`facehub.modeling.geometry`, with the morphable model's file, and
    :mod:`facehub.trainers.data`).

    ``datasets`` caches a generated dataset by its generator function and arguments only, so without this a world
    rendered by an older version of the renderer or the model would be returned from the cache after an upgrade.
    """
    import hashlib
    import json
    from pathlib import Path

    from facehub.modeling import geometry
    from facehub.trainers import data

    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True, default=str).encode())
    for package in (geometry, data):
        folder = Path(package.__file__).parent
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix in (".py", ".safetensors", ".json", ".npz", ".npy"):
                digest.update(path.relative_to(folder).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def _rows(config: dict):
    world = SyntheticFaceWorld(SyntheticWorldConfig(**config))
    for index in range(len(world)):
        yield world[index]


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(3, size, size) background in [0, 1]: a random colour gradient plus smooth low-frequency noise."""
    ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    a, b = rng.uniform(0.1, 0.9, size=(2, 3, 1, 1))
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xs + np.sin(angle) * ys
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    coarse = rng.uniform(-0.15, 0.15, size=(3, 5, 5))
    smooth = torch.nn.functional.interpolate(torch.from_numpy(coarse)[None], size=(size, size), mode="bicubic",
                                             align_corners=True)[0].numpy()
    return np.clip(a + (b - a) * ramp[None] + smooth, 0.0, 1.0)


def _barycentric_2d(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(N, 3) barycentric weights of (N, 2) ``points`` in (N, 3, 2) triangles (outside a triangle: the linear
    extension, some weights negative)."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    w1 = (v2[:, 0] * v1[:, 1] - v2[:, 1] * v1[:, 0]) / det
    w2 = (v0[:, 0] * v2[:, 1] - v0[:, 1] * v2[:, 0]) / det
    return np.stack([1.0 - w1 - w2, w1, w2], axis=1)


def _covered_in_front(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray, tolerance: float = 1e-3,
                      chunk: int = 1024) -> np.ndarray:
    """(N,) bool: some triangle of the mesh covers the point's (x, y) with its surface more than ``tolerance``
    pixels nearer the camera (larger z) than the point."""
    corners = vertices[triangles]  # (F, 3, 3)
    low, high = corners[..., :2].min(axis=1), corners[..., :2].max(axis=1)
    a, b, c = corners[:, 0, :2], corners[:, 1, :2], corners[:, 2, :2]
    v0, v1 = b - a, c - a
    det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    usable = np.abs(det) > 1e-12
    det = np.where(usable, det, 1.0)
    out = np.zeros(len(points), bool)
    for start in range(0, len(points), chunk):
        pt = points[start:start + chunk]
        v2 = pt[:, None, :2] - a[None]  # (n, F, 2)
        w1 = (v2[..., 0] * v1[None, :, 1] - v2[..., 1] * v1[None, :, 0]) / det
        w2 = (v0[None, :, 0] * v2[..., 1] - v0[None, :, 1] * v2[..., 0]) / det
        w0 = 1.0 - w1 - w2
        inside = usable & (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        inside &= ((pt[:, None, :2] >= low[None] - 1e-9) & (pt[:, None, :2] <= high[None] + 1e-9)).all(axis=-1)
        z = w0 * corners[None, :, 0, 2] + w1 * corners[None, :, 1, 2] + w2 * corners[None, :, 2, 2]
        out[start:start + chunk] = (inside & (z > pt[:, None, 2] + tolerance)).any(axis=1)
    return out
