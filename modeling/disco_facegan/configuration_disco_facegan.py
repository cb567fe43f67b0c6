"""DiscoFaceGAN configuration (Deng et al., "Disentangled and Controllable Face Image Generation via 3D
Imitative-Contrastive Learning", CVPR 2020, seed 002): the factors, their VAEs, and the StyleGAN2 they drive.

The latent of the paper (Sec. 3): five independent factors. Four are the morphable model's coefficients
``lambda = [alpha, beta, gamma, theta]`` (eq. 1), each produced from a normal ``z_i`` by the decoder of a VAE trained
on the coefficients the face-fitting regressor reads from the training photos; the fifth is plain noise ``z_5``
for what the model does not describe (background, hair, eyewear). In facehub's morphable model:

======================  ==================================================  =========  ====================
factor                  coefficients                                         lambda     z (cpu-small/paper)
======================  ==================================================  =========  ====================
``identity`` alpha      identity shape (40) and albedo (9)                    49         40 / 128
``expression`` beta     expression (14)                                       14         10 / 32
``lighting`` gamma      SH lighting, 3 colours x 9                            27         16 / 16
``pose`` theta          yaw, pitch, roll (radians inside, degrees in APIs)    3          3 / 3
``noise``               --                                                    --         32 / 32
======================  ==================================================  =========  ====================

(The paper's model has lambda widths 160, 64, 27, 3 and z widths 128, 32, 16, 3; Supplement I.) Each VAE has three
hidden layers in its encoder and in its decoder, of width 512, 256, 128 and 32 for identity, expression, lighting
and pose (Supplement I), ReLU. The generator reads the four lambda, each standardised by the statistics of the data
its VAE was fitted on, and the noise: ``49 + 14 + 27 + 3 + 32 = 125`` values, with no pixel norm on the input
(Sec. 4).

:class:`DiscoFaceGANConfig` fields:

- ``stylegan2_preset``: the generator's network (:data:`facehub.modeling.stylegan2.STYLEGAN2_PRESETS`);
- ``latent_dims`` / ``hidden_dims``: per factor, the VAE's z width and hidden width (table above);
- ``noise_dim``: width of ``z_5``.

Presets (:data:`DISCO_FACEGAN_PRESETS`): ``paper`` (256 px networks, the paper's z widths) and ``cpu-small`` (the
64 px StyleGAN2 of two CPU cores).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from facehub.modeling.modeling_utils import preset_settings

#: The four factors with a morphable-model meaning, in the order the generator reads them, then the noise.
FACTORS = ("identity", "expression", "lighting", "pose")
#: Every key of a factors dict.
FACTOR_KEYS = (*FACTORS, "noise")

#: Supplement I: hidden widths of the four VAEs.
PAPER_HIDDEN_DIMS = {"identity": 512, "expression": 256, "lighting": 128, "pose": 32}

DISCO_FACEGAN_PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(stylegan2_preset="ffhq-256", latent_dims={"identity": 128, "expression": 32, "lighting": 16,
                                                            "pose": 3},
                  hidden_dims=PAPER_HIDDEN_DIMS, noise_dim=32),
    "cpu-small": dict(stylegan2_preset="cpu-small", latent_dims={"identity": 40, "expression": 10, "lighting": 16,
                                                                 "pose": 3},
                      hidden_dims=PAPER_HIDDEN_DIMS, noise_dim=32),
}


def factor_dims(num_identity: int = 40, num_albedo: int = 9, num_expression: int = 14) -> dict[str, int]:
    """Widths of the four lambda factors for a morphable model with these coefficient counts."""
    return {"identity": num_identity + num_albedo, "expression": num_expression, "lighting": 27, "pose": 3}


def _check_per_factor(name: str, values: dict[str, int]) -> dict[str, int]:
    if set(values) != set(FACTORS):
        raise ValueError(f"Got {sorted(values)} for `{name}`; expected one value for each of {list(FACTORS)}.")
    checked = {key: int(values[key]) for key in FACTORS}
    for key, value in checked.items():
        if not 0 < value <= 65536:
            raise ValueError(f"Got {value} for `{name}.{key}`; expected a positive width.")
    return checked


@dataclass
class DiscoFaceGANConfig:
    """The DiscoFaceGAN networks; see the module docstring for every field."""

    stylegan2_preset: str = "cpu-small"
    latent_dims: dict[str, int] = field(default_factory=lambda: dict(DISCO_FACEGAN_PRESETS["cpu-small"]["latent_dims"]))
    hidden_dims: dict[str, int] = field(default_factory=lambda: dict(PAPER_HIDDEN_DIMS))
    noise_dim: int = 32

    def __post_init__(self):
        from facehub.modeling.stylegan2 import STYLEGAN2_PRESETS

        if self.stylegan2_preset not in STYLEGAN2_PRESETS:
            raise ValueError(f"Got {self.stylegan2_preset!r} for `stylegan2_preset`; known: {sorted(STYLEGAN2_PRESETS)}.")
        self.latent_dims = _check_per_factor("latent_dims", self.latent_dims)
        self.hidden_dims = _check_per_factor("hidden_dims", self.hidden_dims)
        if not 0 <= int(self.noise_dim) <= 65536:
            raise ValueError(f"Got {self.noise_dim} for `noise_dim`; expected 0 or a positive width.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def generator_input_dim(self, dims: dict[str, int] | None = None) -> int:
        """Width of the generator's input: the four lambda widths plus the noise."""
        return sum((dims or factor_dims()).values()) + int(self.noise_dim)


def disco_facegan_config(preset: str = "cpu-small", **overrides: Any) -> DiscoFaceGANConfig:
    """The named preset (:data:`DISCO_FACEGAN_PRESETS`) with ``overrides``; unknown presets or fields, and invalid
    values, raise ``ValueError`` naming them."""
    return DiscoFaceGANConfig(**preset_settings(DISCO_FACEGAN_PRESETS, preset, overrides, DiscoFaceGANConfig,
                                                "disco_facegan"))
