"""StyleGAN2 configuration (Karras et al., CVPR 2020): network sizes and their named presets.

:class:`StyleGAN2Config` fields (each is an ``__init__`` argument of the generator and/or discriminator and is saved
in their ``config.json``):

- ``resolution``: side of the square images, a power of two >= 8 (1024 for FFHQ config F).
- ``latent_dim``: width of ``z``, of ``w`` and of the styles (512).
- ``mapping_layers``: fully connected layers of the mapping network ``z -> w`` (8).
- ``channels``: feature widths at 4, 8, ..., ``resolution`` px, one per resolution, shared by generator and
  discriminator. :func:`stylegan2_channels` gives the paper's table (512 up to 32 px, then halving; config F doubles
  the widths of the last levels with ``channel_multiplier=2``).
- ``mapping_lr_multiplier``: learning-rate multiplier of the mapping network (0.01 in the original).
- ``blur_taps``: the resampling filter's 1D taps (``[1, 3, 3, 1]``).
- ``mbstd_group_size`` / ``mbstd_features``: the discriminator's minibatch standard deviation layer (4 and 1).

Presets (:data:`STYLEGAN2_PRESETS`, built with :func:`stylegan2_config`):

- ``paper``: config F at 1024 px: latent 512, 8 mapping layers, channel multiplier 2.
- ``ffhq-256``: the same networks at 256 px (the size most face-editing work uses).
- ``cpu-small``: what trains on two CPU cores: 64 px, latent 128, 4 mapping layers, widths 128/128/128/64/32.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from facehub.modeling.modeling_utils import MAX_IMAGE_SIDE, MAX_REPEATS, check_at_most, preset_settings


def stylegan2_channels(resolution: int, channel_multiplier: int = 2, max_channels: int = 512) -> tuple[int, ...]:
    """The paper's widths at 4, 8, ..., ``resolution`` px: ``max_channels`` up to 32 px, then
    ``channel_multiplier * (256, 128, 64, 32, 16)`` at 64 ... 1024 px (capped at ``max_channels``)."""
    widths = []
    for level in range(2, int(math.log2(resolution)) + 1):
        size = 2**level
        width = max_channels if size <= 32 else min(max_channels, channel_multiplier * 16384 // size)
        widths.append(width)
    return tuple(widths)


STYLEGAN2_PRESETS: dict[str, dict[str, Any]] = {
    # Config F of Karras et al. 2020 (Table 1), FFHQ 1024 px.
    "paper": dict(resolution=1024, latent_dim=512, mapping_layers=8, channels=stylegan2_channels(1024)),
    "ffhq-256": dict(resolution=256, latent_dim=512, mapping_layers=8, channels=stylegan2_channels(256)),
    # Trains on two CPU cores (the project's default checkpoint).
    "cpu-small": dict(resolution=64, latent_dim=128, mapping_layers=4, channels=(128, 128, 128, 64, 32)),
}


def validate_stylegan2_config(resolution: int, latent_dim: int, mapping_layers: int, channels,
                              mapping_lr_multiplier: float, blur_taps) -> None:
    """Raise ``ValueError`` naming the offending field and value."""
    resolution = int(resolution)
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"Got {resolution} for `resolution`; it must be a power of two, at least 8.")
    check_at_most("resolution", resolution, MAX_IMAGE_SIDE, "pixels")
    if int(latent_dim) <= 0:
        raise ValueError(f"Got {latent_dim} for `latent_dim`; it must be a positive integer.")
    check_at_most("latent_dim", latent_dim, 65536, "values")
    if int(mapping_layers) < 1:
        raise ValueError(f"Got {mapping_layers} for `mapping_layers`; at least 1.")
    check_at_most("mapping_layers", mapping_layers, MAX_REPEATS, "layers")
    levels = int(math.log2(resolution)) - 1
    channels = tuple(channels)
    if len(channels) != levels or any(int(c) <= 0 for c in channels):
        raise ValueError(f"Got {channels} for `channels`; expected {levels} positive widths, one for each of 4, 8, ..., "
                         f"{resolution} px (stylegan2_channels({resolution}) gives the paper's).")
    for width in channels:
        check_at_most("channels", width, 65536, "channels")
    if not mapping_lr_multiplier > 0:
        raise ValueError(f"Got {mapping_lr_multiplier} for `mapping_lr_multiplier`; it must be positive (0.01).")
    if len(tuple(blur_taps)) < 2:
        raise ValueError(f"Got {tuple(blur_taps)} for `blur_taps`; expected at least two taps ((1, 3, 3, 1)).")


@dataclass
class StyleGAN2Config:
    """The generator and discriminator of StyleGAN2; see the module docstring for every field."""

    resolution: int = 64
    latent_dim: int = 128
    mapping_layers: int = 4
    channels: tuple[int, ...] = field(default=(128, 128, 128, 64, 32))
    mapping_lr_multiplier: float = 0.01
    blur_taps: tuple[float, ...] = (1, 3, 3, 1)
    mbstd_group_size: int = 4
    mbstd_features: int = 1

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        self.blur_taps = tuple(self.blur_taps)
        validate_stylegan2_config(self.resolution, self.latent_dim, self.mapping_layers, self.channels,
                                  self.mapping_lr_multiplier, self.blur_taps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def generator_kwargs(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("resolution", "latent_dim", "mapping_layers", "channels",
                                                        "mapping_lr_multiplier", "blur_taps")}

    def discriminator_kwargs(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("resolution", "channels", "blur_taps", "mbstd_group_size",
                                                        "mbstd_features")}


def stylegan2_config(preset: str = "cpu-small", **overrides: Any) -> StyleGAN2Config:
    """The named preset (:data:`STYLEGAN2_PRESETS`) with ``overrides``; unknown presets or fields, and invalid
    values, raise ``ValueError`` naming them."""
    return StyleGAN2Config(**preset_settings(STYLEGAN2_PRESETS, preset, overrides, StyleGAN2Config, "stylegan2"))
