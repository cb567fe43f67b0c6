"""The synthetic face world: morphable-model faces rendered with exact ground truth, deterministic by seed.

Identity ``i`` draws its shape and albedo coefficients from ``(seed, i)``; view ``j`` of it draws pose,
expression, spherical-harmonics lighting, framing and a background from ``(seed, i, j)``. Every view is rendered
by :class:`facehub.modeling.geometry.FaceRenderer` (orthographic camera, the projection of DepthNets eq. 1 and of
PRNet's position maps) from :meth:`facehub.modeling.geometry.MorphableFaceModel.default`, and comes with what a
photo never has: 68 landmarks in 2D and 3D, the dense mesh, a depth image, the pose, the UV position map, the model
coefficients and the identity. Rows follow :func:`facehub.trainers.data.schema.synthetic_features`, the schema of
``facehub prepare`` plus those extra columns, so a trainer reads photos and synthetic faces alike.

All coordinates are pixels of the rendered image (x right, y down, z towards the camera, measured from the face's
deepest vertex, so the depth image is positive on the face and 0 elsewhere); pose is (yaw, pitch, roll) in degrees, the rotation applied to the model's frontal mean face.
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
        max_yaw, max_pitch, max_roll: poses are uniform in [-max, max] degrees.
        identity_scale, expression_scale, albedo_scale: standard deviations of the model coefficients (the model's
            bases are scaled so 1.0 is its own spread).
        face_width: face width as a fraction of the image (with +-10% jitter); shift: framing jitter, fraction.
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

    def __post_init__(self):
        for name in ("num_identities", "views_per_identity", "image_size", "uv_size"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"Got {getattr(self, name)} for `{name}`; it must be a positive integer.")
        if not 0 < self.face_width <= 1:
            raise ValueError(f"Got {self.face_width} for `face_width`; expected a fraction in (0, 1].")


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
        """One row (schema: :func:`~facehub.trainers.data.schema.synthetic_features`)."""
        from facehub.modeling.geometry.morphable import SH_DC
        from facehub.modeling.geometry.render import OrthographicCamera
        from facehub.modeling.geometry.uv_maps import mesh_to_uv_position_map

        c, m, size = self.config, self.model, self.config.image_size
        shape_coefficients, albedo_coefficients = self.identity_coefficients(identity)
        rng = np.random.default_rng([c.seed, identity, view, 1])
        pose = rng.uniform(-1, 1, size=3) * [c.max_yaw, c.max_pitch, c.max_roll]
        expression = torch.from_numpy(rng.normal(scale=c.expression_scale, size=(1, m.num_expression))).float()

        vertices = m.shape(shape_coefficients, expression)[0].double()
        vertices = vertices - vertices.mean(dim=0)
        scale = c.face_width * size * rng.uniform(0.9, 1.1) / self._mean_width
        centre = size / 2 + rng.uniform(-c.shift, c.shift, size=2) * size
        rotation = torch.from_numpy(rotation_matrix(*pose))
        pixels = scale * vertices @ rotation.T  # z towards the camera, pixels, centred on the face
        pixels[:, :2] += torch.from_numpy(centre)
        pixels[:, 2] -= pixels[:, 2].min()  # z from the deepest vertex: >= 0 on the face, so depth 0 means "no face"

        lighting = np.zeros((3, 9))
        lighting[:, 0] = rng.uniform(0.75, 1.1) * rng.uniform(0.9, 1.1, size=3) / SH_DC  # ambient, tinted
        lighting[:, 1:4] = rng.normal(scale=0.25, size=3)  # one white directional light (first SH band)
        lighting[:, 4:] = rng.normal(scale=0.05, size=(3, 5))
        output = self.renderer(
            pixels[None].float(),
            m.triangles,
            OrthographicCamera(1.0, (0.0, 0.0)),
            uvs=m.uvs,
            albedo_texture=m.albedo(albedo_coefficients),
            sh_coeffs=torch.from_numpy(lighting)[None].float(),
            background=torch.from_numpy(background(rng, size))[None].float(),
        )
        image = (output.image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        dense = pixels.float().numpy()
        landmarks3d = m.landmarks68(pixels[None].float())[0].numpy()
        return {
            "image": image,
            "landmarks68": landmarks3d[:, :2].copy(),
            "dense_landmarks": dense,
            "pose": [float(a) for a in pose],
            "embedding": [0.0] * 128,
            "identity": identity,
            "identity_name": f"synthetic-{identity:05d}",
            "attributes": [],
            "uv_position_map": mesh_to_uv_position_map(dense, size=c.uv_size).astype(np.float16),
            "crop_to_image": np.array([[1, 0, 0], [0, 1, 0]], np.float32),
            "source": f"synthetic:seed={c.seed}:identity={identity}:view={view}",
            "landmarks68_3d": landmarks3d,
            "depth": (output.depth[0, 0] * output.mask[0, 0]).numpy().astype(np.float16),
            "shape_coefficients": shape_coefficients[0].tolist(),
            "expression_coefficients": expression[0].tolist(),
            "albedo_coefficients": albedo_coefficients[0].tolist(),
            "lighting": lighting.ravel().tolist(),
        }

    def to_dataset(self):
        """The whole world as a ``datasets.Dataset`` (rendered once, cached by ``datasets``' fingerprint)."""
        import datasets

        from facehub.trainers.data.schema import synthetic_features

        c = self.config
        return datasets.Dataset.from_generator(
            _rows,
            gen_kwargs={"config": asdict(c)},
            features=synthetic_features(c.uv_size, c.image_size),
        )


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
