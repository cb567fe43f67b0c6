"""The oracle of StyleFaceUV's training (seed 004): the synthetic world playing the 2D generator.

StyleFaceUV learns from a trained StyleGAN2: stylecodes ``w``, the images they draw, and the coefficients a
regressor reads from those images. :class:`OracleStyleGenerator` stands in for all three with exact answers: a
fixed random map from a stylecode to the morphable model's coefficients, and the morphable model's own render of
them. So F_3D can be checked against exact coefficients instead of a regressor's readings, the yaw direction
against the true one, and the symmetric view against the exact mirror.

The map (a seeded random orthonormal basis ``Q`` of W):

- yaw ``= max_yaw * tanh(w . q_0)`` and pitch ``= max_pitch * tanh(w . q_1)`` (roll 0): moving ``w`` along ``q_0``
  turns the face and changes nothing else, so ``q_0`` is the true yaw direction (:attr:`yaw_direction`), and
  ``w - 2 (w . q_0) q_0`` draws the same face at the mirrored yaw (:meth:`symmetric`);
- identity, expression and lighting: ``tanh`` of fixed random linear maps of the rest of ``w`` (its components
  along ``q_2 ...``), scaled to the spread of real faces' coefficients (identity 0.7, expression 0.5, the first
  lighting band 0.2 around the synthetic world's ambient light).

**Withheld detail** (``detail=True``): what a StyleGAN2 face has and the morphable model cannot express, so that
the UV maps have something to recover and it can be measured. Each face gets a diffuse map (the morphable model's
albedo plus a smooth colour pattern, up to ``texture_detail``) and a displacement map (smooth bumps up to
``detail_mm`` millimetres along the normals), both mixtures of 8 fixed smooth random fields with weights from the
rest of ``w``; its images are :class:`~facehub.modeling.stylefaceuv.DetailedFaceRenderer` renders of them, and
:meth:`OracleStyleGenerator.detail_maps` gives the exact maps.
"""

from __future__ import annotations

import math

import torch

from facehub.modeling.disco_facegan.configuration_disco_facegan import FACTORS

#: The synthetic world's ambient light as a first-band SH coefficient (its ambient 0.925 over Y_00's 0.886).
AMBIENT = 0.925 / 0.886227


class OracleStyleGenerator:
    """Stylecode -> exact coefficients and their render (module docstring).

    Args:
        style_dim: width of the stylecodes (at least 4).
        image_size: side of the rendered images.
        max_yaw, max_pitch: the largest yaw and pitch (degrees) the map reaches.
        seed: the map's seed.
    """

    def __init__(self, style_dim: int = 32, image_size: int = 64, max_yaw: float = 45.0, max_pitch: float = 10.0,
                 seed: int = 0, detail: bool = False, detail_mm: float = 2.0, texture_detail: float = 0.15,
                 map_size: int = 32, mesh_resolution: int = 96):
        from facehub.modeling.disco_facegan.rendering import FactorRenderer

        if style_dim < 4:
            raise ValueError(f"Got style_dim={style_dim}; the oracle needs at least 4.")
        generator = torch.Generator().manual_seed(seed)
        basis, _ = torch.linalg.qr(torch.randn(style_dim, style_dim, generator=generator, dtype=torch.float64))
        self.basis = basis.float()
        self.style_dim, self.image_size = style_dim, image_size
        self.max_yaw, self.max_pitch = math.radians(max_yaw), math.radians(max_pitch)
        self.renderer = FactorRenderer(image_size)
        self.dims = {"identity": 49, "expression": 14, "lighting": 9}
        rest = style_dim - 2
        self.maps = {name: torch.randn(rest, width, generator=generator) / math.sqrt(rest)
                     for name, width in self.dims.items()}
        self.scales = {"identity": 0.7, "expression": 0.5, "lighting": 0.2}
        self.detail, self.detail_mm, self.texture_detail = bool(detail), float(detail_mm), float(texture_detail)
        self.map_size = int(map_size)
        self.detailed = None
        if self.detail:
            from facehub.modeling.stylefaceuv.rendering import DetailedFaceRenderer

            self.detailed = DetailedFaceRenderer(image_size, mesh_resolution, self.renderer.face_model)
            fields = torch.randn(8, 4, map_size // 4, map_size // 4, generator=generator)
            fields = torch.nn.functional.interpolate(fields, size=(map_size, map_size), mode="bicubic",
                                                     align_corners=False)
            self.fields = fields / fields.flatten(1).abs().amax(dim=1).view(-1, 1, 1, 1)
            self.detail_map = torch.randn(rest, 8, generator=generator) / math.sqrt(rest)

    @property
    def yaw_direction(self) -> torch.Tensor:
        """(style_dim,) the true yaw direction (unit; moving along it raises the yaw)."""
        return self.basis[:, 0]

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(count, style_dim) stylecodes from the standard normal."""
        return torch.randn(count, self.style_dim, generator=generator)

    def coefficients(self, styles: torch.Tensor) -> dict[str, torch.Tensor]:
        """The exact coefficients (factor dict, pose in radians) of (N, style_dim) stylecodes."""
        coordinates = styles @ self.basis
        rest = coordinates[:, 2:]
        lam = {name: self.scales[name] * torch.tanh(rest @ self.maps[name]) for name in self.dims}
        lighting = torch.zeros(len(styles), 27)
        lighting[:, 0::9] = AMBIENT
        lighting[:, 1:9] = lam["lighting"][:, 1:9]  # red's first bands vary; green and blue follow red's
        lighting[:, 10:18] = lam["lighting"][:, 1:9]
        lighting[:, 19:27] = lam["lighting"][:, 1:9]
        pose = torch.stack([self.max_yaw * torch.tanh(coordinates[:, 0]), self.max_pitch * torch.tanh(coordinates[:, 1]),
                            torch.zeros(len(styles))], dim=1)
        out = {"identity": lam["identity"], "expression": lam["expression"], "lighting": lighting, "pose": pose}
        return {f: out[f] for f in FACTORS}

    def detail_maps(self, styles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact diffuse (N, 3, T, T) in [0, 1] and displacement (N, 1, T, T, mm) maps of ``detail=True``."""
        if not self.detail:
            raise ValueError("This oracle has no withheld detail; build it with detail=True.")
        lam = self.coefficients(styles)
        albedo = self.renderer.face_model.albedo(lam["identity"][:, self.renderer.num_identity:])
        albedo = torch.nn.functional.interpolate(albedo, size=(self.map_size, self.map_size), mode="area")
        weights = torch.tanh((styles @ self.basis)[:, 2:] @ self.detail_map) / 2.0  # (N, 8)
        mixed = torch.einsum("nk,kchw->nchw", weights, self.fields)
        diffuse = (albedo + self.texture_detail * mixed[:, :3]).clamp(0.0, 1.0)
        return diffuse, self.detail_mm * mixed[:, 3:].clamp(-1.0, 1.0)

    def symmetric(self, styles: torch.Tensor) -> torch.Tensor:
        """The stylecodes of the same faces at the mirrored yaw: ``w - 2 (w . d) d``."""
        d = self.yaw_direction
        return styles - 2.0 * (styles @ d)[:, None] * d

    @torch.no_grad()
    def images(self, styles: torch.Tensor, yaw: float | None = None) -> torch.Tensor:
        """(N, 3, S, S) renders in [-1, 1] of the faces of ``styles`` (the 2D generator's images); ``yaw``
        (degrees): the same faces re-rendered at that yaw (the exact turned view)."""
        lam = self.coefficients(styles)
        if yaw is not None:
            lam["pose"][:, 0] = math.radians(float(yaw))
        if self.detail:
            return self.detailed.render(lam, *self.detail_maps(styles)).image
        return self.renderer.render(lam).image
