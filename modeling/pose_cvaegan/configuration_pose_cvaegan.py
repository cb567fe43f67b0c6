"""Pose-conditioned CVAE-GAN configuration (Morikawa & Saito, "Deep Face Rotation with Ordinary Dataset", seed 000):
the six networks' sizes and their named presets.

:class:`PoseCVAEGANConfig` fields (each network field is an ``__init__`` argument of the networks that use it and is
saved in their ``config.json``):

- ``image_size``: side of the square face crops E reads and G writes (96 in the paper). Divisible by 8: three
  stride-2 residual blocks take it to ``image_size / 8`` (12 x 12 in Table 1).
- ``latent_size``: width of the latent code ``z`` (128).
- ``num_pose``: the pose code ``y^p``: yaw, pitch, roll (3).
- ``num_attributes``: binary attributes P predicts beside the pose (CelebA's 40 in the paper; 0 for none).
- ``channels``: widths of Conv1 and the three residual blocks of E, P, D1 and D2 (32, 64, 128, 256 in Table 1);
  G runs through them in reverse.
- ``hidden_size``: width of E's FC1, G's FC1 and D1's three latent FC layers (256).
- ``pose_unit_degrees``: the angle a pose value of 1 stands for (45 degrees, section 4.2).
- ``inception``: replace the 3x3 convolution of each residual block of E, G and P with an Inception module
  (section 3.1); ``False`` keeps Table 1's plain 3x3 convolution.
- ``leaky_slope``: the LeakyReLU slope of E, G, D1 and D2 (P uses ReLU). The paper does not give it; 0.2 as in
  DCGAN.

Presets (:data:`POSE_CVAEGAN_PRESETS`, built with :func:`pose_cvaegan_config`):

- ``paper``: Table 1 exactly: 96 px, latent 128, pose 3, 40 attributes, widths 32/64/128/256, FC 256.
- ``cpu-small``: what trains on two CPU cores: 64 px, latent 64, widths 16/32/64/128, FC 128, 40 attributes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from facehub.modeling.modeling_utils import MAX_IMAGE_SIDE, check_at_most, preset_settings

POSE_CVAEGAN_PRESETS: dict[str, dict[str, Any]] = {
    # Seed 000, Table 1 and sections 3.1 and 4.2.
    "paper": dict(image_size=96, latent_size=128, num_pose=3, num_attributes=40, channels=(32, 64, 128, 256),
                  hidden_size=256, pose_unit_degrees=45.0, inception=True, leaky_slope=0.2),
    # Trains on two CPU cores (the default checkpoint's preset).
    "cpu-small": dict(image_size=64, latent_size=64, num_pose=3, num_attributes=40, channels=(16, 32, 64, 128),
                      hidden_size=128, pose_unit_degrees=45.0, inception=True, leaky_slope=0.2),
}

#: Residual blocks between Conv1 and the FC layers (Table 1: Res Block2-4, each halving the size).
NUM_RESIDUAL_BLOCKS = 3


def validate_network_config(image_size: int, latent_size: int, num_pose: int, num_attributes: int, channels,
                            hidden_size: int, pose_unit_degrees: float, leaky_slope: float) -> None:
    """Raise ``ValueError`` naming the offending field and value."""
    for name, value in (("image_size", image_size), ("latent_size", latent_size), ("num_pose", num_pose),
                        ("hidden_size", hidden_size)):
        if int(value) <= 0:
            raise ValueError(f"Got {value} for `{name}`; it must be a positive integer.")
    check_at_most("image_size", image_size, MAX_IMAGE_SIDE, "pixels")
    check_at_most("latent_size", latent_size, 65536, "values")
    check_at_most("hidden_size", hidden_size, 65536, "units")
    if int(num_attributes) < 0:
        raise ValueError(f"Got {num_attributes} for `num_attributes`; it must be 0 or more.")
    stride = 2**NUM_RESIDUAL_BLOCKS
    if image_size % stride:
        raise ValueError(f"Got {image_size} for `image_size`; it must be divisible by {stride} (three stride-2 "
                         "residual blocks, Table 1).")
    channels = tuple(channels)
    if len(channels) != NUM_RESIDUAL_BLOCKS + 1 or any(int(c) <= 0 for c in channels):
        raise ValueError(f"Got {channels} for `channels`; expected {NUM_RESIDUAL_BLOCKS + 1} positive widths (Conv1 "
                         "and the three residual blocks, e.g. (32, 64, 128, 256)).")
    for width in channels:
        check_at_most("channels", width, 65536, "channels")
    if not pose_unit_degrees > 0:
        raise ValueError(f"Got {pose_unit_degrees} for `pose_unit_degrees`; it must be positive (45 in the paper).")
    if not 0 <= leaky_slope < 1:
        raise ValueError(f"Got {leaky_slope} for `leaky_slope`; expected a slope in [0, 1).")


def check_inception_widths(channels, inception: bool) -> None:
    """The Inception module splits each residual block's width over four branches."""
    if inception and any(int(c) % 4 for c in tuple(channels)[1:]):
        raise ValueError(f"Got {tuple(channels)} for `channels` with `inception`; the residual blocks' widths must be "
                         "divisible by 4 (the Inception module's four branches).")


@dataclass
class PoseCVAEGANConfig:
    """The networks of the pose-conditioned CVAE-GAN; see the module docstring for every field."""

    image_size: int = 64
    latent_size: int = 64
    num_pose: int = 3
    num_attributes: int = 40
    channels: tuple[int, ...] = field(default=(16, 32, 64, 128))
    hidden_size: int = 128
    pose_unit_degrees: float = 45.0
    inception: bool = True
    leaky_slope: float = 0.2

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        validate_network_config(self.image_size, self.latent_size, self.num_pose, self.num_attributes, self.channels,
                                self.hidden_size, self.pose_unit_degrees, self.leaky_slope)
        check_inception_widths(self.channels, self.inception)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def encoder_kwargs(self) -> dict[str, Any]:
        return self._kwargs("image_size", "latent_size", "channels", "hidden_size", "inception", "leaky_slope")

    def generator_kwargs(self) -> dict[str, Any]:
        return self._kwargs("image_size", "latent_size", "num_pose", "channels", "hidden_size", "inception",
                            "leaky_slope", "pose_unit_degrees")

    def predictor_kwargs(self) -> dict[str, Any]:
        return self._kwargs("image_size", "num_pose", "num_attributes", "channels", "inception", "pose_unit_degrees")

    def code_discriminator_kwargs(self) -> dict[str, Any]:
        return self._kwargs("image_size", "latent_size", "channels", "hidden_size", "leaky_slope")

    def image_discriminator_kwargs(self) -> dict[str, Any]:
        return self._kwargs("image_size", "channels", "leaky_slope")

    def _kwargs(self, *names: str) -> dict[str, Any]:
        return {name: getattr(self, name) for name in names}


def pose_cvaegan_config(preset: str = "cpu-small", **overrides: Any) -> PoseCVAEGANConfig:
    """The named preset (:data:`POSE_CVAEGAN_PRESETS`) with ``overrides``; unknown presets or fields, and invalid
    values, raise ``ValueError`` naming them."""
    settings = preset_settings(POSE_CVAEGAN_PRESETS, preset, overrides, PoseCVAEGANConfig, "pose_cvaegan")
    return PoseCVAEGANConfig(**settings)
