"""CycleGAN configuration: the networks and objective of the adversarial face-swap repair, and its named presets.

DepthNets (Moniz, Beckham et al., NeurIPS 2018, "Adversarial Image-to-Image Transformation" and section 3.3) paste a
warped face onto the target photo and then train a CycleGAN (Zhu et al., ICCV 2017) between the domain of pasted
swaps and the domain of real faces, so the pasted face is made to match the hair, skin and background around it.
The architecture and objective below are CycleGAN's (its section 4 and appendix 7.2); the preset ``paper`` is exactly
its 256 px setting.

:class:`CycleGANConfig` fields (every network field is an ``__init__`` argument of the model it belongs to and is
saved in that model's ``config.json``):

Networks

- ``image_size``: side of the square crops the generators are trained and run on (pixels). Recorded in the
  generator's config so that :func:`facehub.modeling.cyclegan.repair_face` resizes crops to it. Must be divisible by
  ``2 ** num_downsamplings``.
- ``channels``: image channels (3, RGB).
- ``generator_channels``: ``ngf``, filters of the generator's first 7x7 convolution (``c7s1-64`` in appendix 7.2);
  each down-sampling doubles it.
- ``num_downsamplings``: stride-2 convolutions before the residual blocks and fractionally strided ones after them
  (2 in CycleGAN: ``d128, d256`` ... ``u128, u64``).
- ``num_residual_blocks``: residual blocks at the bottleneck (``R256``): 9 for 256 px images, 6 for 128 px
  (appendix 7.2).
- ``discriminator_channels``: ``ndf``, filters of the PatchGAN's first layer (``C64``).
- ``discriminator_layers``: stride-2 4x4 convolutions of the PatchGAN. 3 gives CycleGAN's ``C64-C128-C256-C512``
  discriminator whose outputs each see a 70x70 patch; 2 sees 34x34, 4 sees 142x142.
- ``norm``: ``"instance"`` (CycleGAN, following Ulyanov et al.), ``"batch"`` or ``"none"``. The PatchGAN never
  normalises its first layer.
- ``padding``: how the generator's convolutions pad: ``"reflect"`` (CycleGAN, fewer border artefacts),
  ``"replicate"`` or ``"zero"``.
- ``dropout``: dropout probability inside each residual block (0 in CycleGAN).

Objective (used by the trainer, :mod:`facehub.trainers.cyclegan`)

- ``cycle_loss_weight``: lambda of eq. 3, the weight of the cycle-consistency loss (eq. 2); 10 in CycleGAN.
- ``identity_loss_fraction``: weight of the identity-mapping loss (section 5.2) as a fraction of
  ``cycle_loss_weight``: 0.5 gives CycleGAN's 0.5 lambda. It keeps colours (and here, the untouched background) the
  same when an image already belongs to the output domain; 0 switches it off.
- ``history_size``: number of earlier generated images each discriminator is also trained on (the image history
  buffer of Shrivastava et al., section 4 of CycleGAN: 50); 0 trains the discriminators on the newest fakes only.
- ``lr_decay_start_fraction``: the learning rate stays constant for this fraction of ``max_steps`` and then decays
  linearly to zero (CycleGAN: 100 epochs constant, 100 decaying, i.e. 0.5); 1 disables the decay.

Presets (:data:`CYCLEGAN_PRESETS`, built with :func:`cyclegan_config`):

- ``paper``: CycleGAN at 256 px: ResNet generator with 9 residual blocks, ngf = 64, 70x70 PatchGAN with ndf = 64,
  instance norm, reflection padding, lambda = 10, identity 0.5 lambda, history of 50. 11.378M generator and 2.765M
  discriminator parameters.
- ``paper-128``: CycleGAN's 128 px variant (6 residual blocks, 7.838M generator parameters), same PatchGAN.
- ``cpu-small``: trains on two CPU cores: 64 px crops, ngf = ndf = 32, 4 residual blocks and a PatchGAN of 2 layers
  whose 34x34 patches cover about half the crop, as the 70x70 patches do at 128 px. 1.375M generator and 0.168M
  discriminator parameters; 0.42 G multiply-adds per generator pass against 49.6 G for ``paper`` (120x fewer). A
  full training step (six generator and four discriminator passes with their backward passes) takes about 0.25 s
  per image on one CPU core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facehub.modeling.modeling_utils import MAX_IMAGE_SIDE, MAX_REPEATS, check_at_most, preset_settings

NORMS = ("instance", "batch", "none")
PADDINGS = ("reflect", "replicate", "zero")

CYCLEGAN_PRESETS: dict[str, dict[str, Any]] = {
    # Zhu et al. 2017, appendix 7.2 and section 4, for 256x256 images.
    "paper": dict(
        image_size=256,
        generator_channels=64,
        num_downsamplings=2,
        num_residual_blocks=9,
        discriminator_channels=64,
        discriminator_layers=3,
        norm="instance",
        padding="reflect",
    ),
    # The same at 128x128: "6 residual blocks for 128x128 training images".
    "paper-128": dict(
        image_size=128,
        generator_channels=64,
        num_downsamplings=2,
        num_residual_blocks=6,
        discriminator_channels=64,
        discriminator_layers=3,
        norm="instance",
        padding="reflect",
    ),
    # What trains on two CPU cores (see the module docstring).
    "cpu-small": dict(
        image_size=64,
        generator_channels=32,
        num_downsamplings=2,
        num_residual_blocks=4,
        discriminator_channels=32,
        discriminator_layers=2,
        norm="instance",
        padding="reflect",
    ),
}


def validate_generator_config(
    channels: int,
    base_channels: int,
    num_downsamplings: int,
    num_residual_blocks: int,
    norm: str,
    padding: str,
    dropout: float,
    image_size: int,
) -> None:
    """Raise ``ValueError`` naming the offending generator field and value."""
    for name, value in (("channels", channels), ("base_channels", base_channels), ("image_size", image_size)):
        if int(value) <= 0:
            raise ValueError(f"Got {value} for `{name}`; it must be a positive integer.")
    if num_downsamplings < 0:
        raise ValueError(f"Got {num_downsamplings} for `num_downsamplings`; it must be 0 or more.")
    if num_residual_blocks < 0:
        raise ValueError(f"Got {num_residual_blocks} for `num_residual_blocks`; it must be 0 or more.")
    check_at_most("image_size", image_size, MAX_IMAGE_SIDE, "pixels")
    check_at_most("num_downsamplings", num_downsamplings, 12, "halvings")
    check_at_most("num_residual_blocks", num_residual_blocks, MAX_REPEATS, "blocks")
    if norm not in NORMS:
        raise ValueError(f"Got {norm!r} for `norm`; expected one of {NORMS}.")
    if padding not in PADDINGS:
        raise ValueError(f"Got {padding!r} for `padding`; expected one of {PADDINGS}.")
    if not 0 <= dropout < 1:
        raise ValueError(f"Got {dropout} for `dropout`; expected a probability in [0, 1).")
    stride = 2**num_downsamplings
    if image_size % stride:
        raise ValueError(
            f"Got {image_size} for `image_size`; it must be divisible by 2 ** num_downsamplings = {stride} so the "
            "generator's output has the size of its input."
        )


def validate_discriminator_config(channels: int, base_channels: int, num_layers: int, norm: str) -> None:
    """Raise ``ValueError`` naming the offending discriminator field and value."""
    for name, value in (("channels", channels), ("base_channels", base_channels), ("num_layers", num_layers)):
        if int(value) <= 0:
            raise ValueError(f"Got {value} for `{name}`; it must be a positive integer.")
    check_at_most("num_layers", num_layers, 12, "layers")
    if norm not in NORMS:
        raise ValueError(f"Got {norm!r} for `norm`; expected one of {NORMS}.")


@dataclass
class CycleGANConfig:
    """Networks and objective of one CycleGAN (fields: see the module docstring)."""

    image_size: int = 256
    channels: int = 3
    generator_channels: int = 64
    num_downsamplings: int = 2
    num_residual_blocks: int = 9
    discriminator_channels: int = 64
    discriminator_layers: int = 3
    norm: str = "instance"
    padding: str = "reflect"
    dropout: float = 0.0
    cycle_loss_weight: float = 10.0
    identity_loss_fraction: float = 0.5
    history_size: int = 50
    lr_decay_start_fraction: float = 0.5

    def __post_init__(self):
        validate_generator_config(**self.generator_kwargs())
        validate_discriminator_config(**self.discriminator_kwargs())
        if self.cycle_loss_weight < 0:
            raise ValueError(f"Got {self.cycle_loss_weight} for `cycle_loss_weight`; it must be 0 or more.")
        if self.identity_loss_fraction < 0:
            raise ValueError(f"Got {self.identity_loss_fraction} for `identity_loss_fraction`; it must be 0 or more.")
        if int(self.history_size) != self.history_size or self.history_size < 0:
            raise ValueError(f"Got {self.history_size} for `history_size`; it must be an integer, 0 or more.")
        if not 0 <= self.lr_decay_start_fraction <= 1:
            raise ValueError(
                f"Got {self.lr_decay_start_fraction} for `lr_decay_start_fraction`; expected a fraction of "
                "max_steps in [0, 1] (1: no decay)."
            )

    def generator_kwargs(self) -> dict[str, Any]:
        """``CycleGANGenerator(**kwargs)`` for either generator (both directions share the architecture)."""
        return dict(
            channels=self.channels,
            base_channels=self.generator_channels,
            num_downsamplings=self.num_downsamplings,
            num_residual_blocks=self.num_residual_blocks,
            norm=self.norm,
            padding=self.padding,
            dropout=self.dropout,
            image_size=self.image_size,
        )

    def discriminator_kwargs(self) -> dict[str, Any]:
        """``PatchDiscriminator(**kwargs)`` for either discriminator."""
        return dict(
            channels=self.channels,
            base_channels=self.discriminator_channels,
            num_layers=self.discriminator_layers,
            norm=self.norm,
        )


def cyclegan_config(preset: str = "paper", **overrides: Any) -> CycleGANConfig:
    """The named preset with ``overrides`` applied (any :class:`CycleGANConfig` field), validated."""
    return CycleGANConfig(**preset_settings(CYCLEGAN_PRESETS, preset, overrides, CycleGANConfig, "CycleGAN"))
