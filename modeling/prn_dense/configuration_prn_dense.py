"""PRN-Dense configuration: the fields of :class:`~facehub.modeling.prn_dense.PRNDenseModel` and its named presets.

Seed 003 ("DenseNet encoder-decoder for face alignment and 3D reconstruction", Computer Systems & Applications 2021)
replaces PRNet's residual encoder (Feng et al., ECCV 2018) by a DenseNet (Huang et al., CVPR 2017) and keeps PRNet's
transposed-convolution decoder and UV position-map output. Its Table 1 lists every encoder stage for a 256x256x3
crop:

=====================  ===============  =========================================
stage                  output           layers
=====================  ===============  =========================================
Conv1                  256 x 256 x 16   3x3 conv
Dense Block (1)        256 x 256 x 96   {1x1 conv, 3x3 conv} x 3
Transition Layer (1)   256 x 256 x 48   1x1 conv
                       128 x 128 x 48   2x2 average pool, stride 2
Dense Block (2)        128 x 128 x 200  {1x1 conv, 3x3 conv} x 3
Transition Layer (2)   64 x 64 x 104    (1x1 conv to 104, then pool)
Dense Block (3)        64 x 64 x 256
Transition Layer (3)   32 x 32 x 160
Dense Block (4)        32 x 32 x 328
Transition Layer (4)   16 x 16 x 232
Dense Block (5)        16 x 16 x 528
Transition Layer (5)   8 x 8 x 336      (the table prints "16 x 16 x 528" for its 1x1 conv, a typo: average
                                        pooling keeps the channels, and block 6 can only grow from 336 to 512)
Dense Block (6)        8 x 8 x 512
=====================  ===============  =========================================

Section 2.1: each dense block is BN, a 1x1 conv and a 3x3 conv, three times, every layer reading the concatenation
of all earlier feature maps (eq. 2); a transition is BN, a 1x1 conv and 2x2 average pooling. The widths of Table 1
do not come from one growth rate (block 1 grows by 80 = 3 x 26.7), so the ``paper`` preset lists them per block and
each block's growth is split over its layers as evenly as possible (80 -> 27, 27, 26).

Section 2.2: the decoder is five modules of three transposed convolutions (Figure 4 and eq. 3): 3x3 stride 1
padding 1 (size kept), 4x4 stride 2 padding 1 (size doubled), 3x3 stride 1 padding 1; five modules take 8x8x512
to 256x256x3. The paper gives no decoder widths; we use PRNet's widths at the same resolutions (256 at 16x16,
halving to 16 at 256x256).

Fields (every field but ``growth_rate``, ``compression`` and ``num_blocks`` is a ``PRNDenseModel.__init__`` argument,
saved in its ``config.json``):

- ``sample_size``: S, side of the square face crop the network reads (pixels) and of the UV position map it writes
  (the decoder undoes the encoder's ``2 ** len(transition_out_channels)`` down-sampling). Table 1: 256.
- ``in_channels``: image channels (3, RGB). ``out_channels``: position channels (3: x, y, z).
- ``stem_channels``: output channels of Conv1, the 3x3 convolution before the first dense block (16).
- ``block_out_channels``: channels after each dense block (the input concatenated with every layer's output).
  Table 1: (96, 200, 256, 328, 528, 512). Each must exceed the block's input.
- ``transition_out_channels``: channels after each transition's 1x1 conv, one fewer than the blocks.
  Table 1: (48, 104, 160, 232, 336).
- ``layers_per_block``: {1x1, 3x3} layers per dense block (3).
- ``bottleneck_factor``: a dense layer's 1x1 conv outputs ``bottleneck_factor`` x its growth channels (the paper
  does not say; DenseNet-B uses 4).
- ``decoder_channels``: output channels of each decoder module's 4x4 up-sampling convolution, one per transition
  (the module's first 3x3 keeps its input width, its last 3x3 keeps this width; the last module's last 3x3 writes
  ``out_channels``).
- ``output_activation``: ``"sigmoid"`` (PRNet ends in a sigmoid) or ``"linear"``.
- ``output_range``: (low, high), in units of S: with ``"sigmoid"`` the output is
  ``low + (high - low) * sigmoid(a)``. PRNet scales its sigmoid to (0, 1.1 S) after shifting z so that the deepest
  vertex is at 0; facehub keeps the dataset's z, which is negative behind the head's centre for photos (about
  -0.35 S at the ears), hence (-0.5, 1.5), symmetric about the crop centre 0.5. Ignored by ``"linear"``.
- ``growth_rate``, ``compression``, ``num_blocks`` (:class:`PRNDenseConfig` only): when ``growth_rate`` is set, the
  widths of ``num_blocks`` blocks (6) and their transitions are derived DenseNet-BC style instead of listed: each
  block adds ``layers_per_block * growth_rate`` channels and each transition keeps ``floor(compression * channels)``.
  The model's ``config.json`` stores the derived widths.

Presets (:data:`PRN_DENSE_PRESETS`, built with :func:`prn_dense_config` or ``PRNDenseModel.from_preset(name)``):

- ``paper``: Table 1 at 256x256, the decoder above, sigmoid output: 10.44M parameters (encoder 3.72M, decoder
  6.72M), 16.9 G multiply-adds per crop. PRNet's network has 13.35M parameters (encoder 3.59M, decoder 9.77M;
  counted from its published TensorFlow graph in tests/test_prn_dense_model.py) and about 4.1 G multiply-adds, so the
  paper's claim of fewer parameters holds, but Table 1's full-resolution dense blocks (256x256x96 and 128x128x200:
  11.5 G of the 16.9 G) cost about 4x PRNet's compute. ``bottleneck_factor`` 2 or 1 gives 8.75M / 7.90M
  parameters and 10.0 G / 6.5 G multiply-adds. The paper's own figures (PRN "9.43 x 10^5" parameters, its network
  "1.76 x 10^5" fewer) match neither network's count.
- ``fast``: the same 256x256 topology at about half of Table 1's widths with a 2x bottleneck: 2.19M parameters,
  2.3 G multiply-adds (about 4x less than ``paper``).
- ``cpu-small``: 128x128 crops (a 4x4x121 bottleneck), DenseNet-BC widths from growth rate 12 and compression 0.75,
  a narrow decoder: 0.62M parameters, 0.61 G multiply-adds; trains on two CPU cores (``sample_size=64`` for still
  smaller runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facehub.modeling.modeling_utils import MAX_IMAGE_SIDE, MAX_REPEATS, check_at_most, preset_settings

OUTPUT_ACTIVATIONS = ("sigmoid", "linear")

#: Table 1 of seed 003, read as described in the module docstring.
PAPER_BLOCK_OUT_CHANNELS = (96, 200, 256, 328, 528, 512)
PAPER_TRANSITION_OUT_CHANNELS = (48, 104, 160, 232, 336)
#: PRNet's decoder widths at 16, 32, 64, 128 and 256 pixels.
PAPER_DECODER_CHANNELS = (256, 128, 64, 32, 16)

PRN_DENSE_PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(
        sample_size=256,
        stem_channels=16,
        block_out_channels=PAPER_BLOCK_OUT_CHANNELS,
        transition_out_channels=PAPER_TRANSITION_OUT_CHANNELS,
        layers_per_block=3,
        bottleneck_factor=4,
        decoder_channels=PAPER_DECODER_CHANNELS,
    ),
    "fast": dict(
        sample_size=256,
        stem_channels=16,
        block_out_channels=(48, 100, 128, 164, 264, 256),
        transition_out_channels=(24, 52, 80, 116, 168),
        layers_per_block=3,
        bottleneck_factor=2,
        decoder_channels=(128, 64, 32, 16, 16),
    ),
    "cpu-small": dict(
        sample_size=128,
        stem_channels=16,
        growth_rate=12,
        compression=0.75,
        layers_per_block=3,
        bottleneck_factor=4,
        decoder_channels=(64, 32, 32, 16, 16),
    ),
}


def split_growth(total: int, layers: int) -> tuple[int, ...]:
    """Channels each of ``layers`` dense layers adds so that they add ``total``, as evenly as possible, larger first
    (80 over 3 layers -> (27, 27, 26))."""
    base, extra = divmod(int(total), int(layers))
    return tuple(base + (1 if i < extra else 0) for i in range(layers))


def densenet_widths(
    stem_channels: int, growth_rate: int, num_blocks: int, layers_per_block: int, compression: float
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(block_out_channels, transition_out_channels) of a DenseNet-BC encoder with one growth rate."""
    blocks, transitions = [], []
    channels = int(stem_channels)
    for index in range(num_blocks):
        channels += layers_per_block * growth_rate
        blocks.append(channels)
        if index < num_blocks - 1:
            channels = max(1, int(compression * channels))
            transitions.append(channels)
    return tuple(blocks), tuple(transitions)


def _positive_ints(name: str, values) -> None:
    if len(values) == 0 or any(int(v) != v or int(v) <= 0 for v in values):
        raise ValueError(f"Got {list(values)} for `{name}`; expected one or more positive integers.")


def validate_prn_dense_config(
    sample_size: int,
    in_channels: int,
    out_channels: int,
    stem_channels: int,
    block_out_channels: tuple[int, ...] | list[int],
    transition_out_channels: tuple[int, ...] | list[int],
    layers_per_block: int,
    bottleneck_factor: int,
    decoder_channels: tuple[int, ...] | list[int],
    output_activation: str,
    output_range: tuple[float, float] | list[float],
) -> None:
    """Raise ``ValueError`` naming the offending field and value."""
    for name, value in (
        ("sample_size", sample_size),
        ("in_channels", in_channels),
        ("out_channels", out_channels),
        ("stem_channels", stem_channels),
        ("layers_per_block", layers_per_block),
        ("bottleneck_factor", bottleneck_factor),
    ):
        if int(value) != value or int(value) <= 0:
            raise ValueError(f"Got {value} for `{name}`; it must be a positive integer.")
    check_at_most("sample_size", sample_size, MAX_IMAGE_SIDE, "pixels")
    check_at_most("layers_per_block", layers_per_block, MAX_REPEATS, "layers")
    check_at_most("len(block_out_channels)", len(block_out_channels), 12, "dense blocks (one halving each)")
    _positive_ints("block_out_channels", block_out_channels)
    if len(transition_out_channels) != len(block_out_channels) - 1 or any(
        int(v) != v or int(v) <= 0 for v in transition_out_channels
    ):
        raise ValueError(
            f"Got {list(transition_out_channels)} for `transition_out_channels`; expected "
            f"{len(block_out_channels) - 1} positive integers, one between each pair of the "
            f"{len(block_out_channels)} dense blocks."
        )
    block_inputs = (stem_channels, *transition_out_channels)
    for index, (block_in, block_out) in enumerate(zip(block_inputs, block_out_channels, strict=True)):
        if block_out - block_in < layers_per_block:
            raise ValueError(
                f"Got {block_out} for `block_out_channels[{index}]`: dense block {index + 1} reads {block_in} "
                f"channels and each of its {layers_per_block} layers must add at least one."
            )
    if len(decoder_channels) != len(transition_out_channels) or any(
        int(v) != v or int(v) <= 0 for v in decoder_channels
    ):
        raise ValueError(
            f"Got {list(decoder_channels)} for `decoder_channels`; expected {len(transition_out_channels)} positive "
            "integers, one up-sampling module per transition, so the UV map has the crop's size."
        )
    stride = 2 ** len(transition_out_channels)
    if sample_size % stride:
        raise ValueError(
            f"Got {sample_size} for `sample_size`; it must be divisible by 2 ** {len(transition_out_channels)} = "
            f"{stride} (one 2x2 pooling per transition)."
        )
    if output_activation not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"Got {output_activation!r} for `output_activation`; expected one of {OUTPUT_ACTIVATIONS}.")
    if len(output_range) != 2 or not float(output_range[0]) < float(output_range[1]):
        raise ValueError(f"Got {list(output_range)} for `output_range`; expected (low, high) with low < high.")


@dataclass
class PRNDenseConfig:
    """A PRN-Dense network (fields: see the module docstring)."""

    sample_size: int = 256
    in_channels: int = 3
    out_channels: int = 3
    stem_channels: int = 16
    block_out_channels: tuple[int, ...] | None = PAPER_BLOCK_OUT_CHANNELS
    transition_out_channels: tuple[int, ...] | None = PAPER_TRANSITION_OUT_CHANNELS
    layers_per_block: int = 3
    bottleneck_factor: int = 4
    decoder_channels: tuple[int, ...] = PAPER_DECODER_CHANNELS
    output_activation: str = "sigmoid"
    output_range: tuple[float, float] = (-0.5, 1.5)
    growth_rate: int | None = None
    compression: float = 0.5
    num_blocks: int = 6

    def __post_init__(self):
        if self.growth_rate is not None:
            if int(self.growth_rate) != self.growth_rate or self.growth_rate <= 0:
                raise ValueError(f"Got {self.growth_rate} for `growth_rate`; it must be a positive integer or None.")
            if not 0 < self.compression <= 1:
                raise ValueError(f"Got {self.compression} for `compression`; expected a fraction in (0, 1].")
            if int(self.num_blocks) != self.num_blocks or self.num_blocks <= 0:
                raise ValueError(f"Got {self.num_blocks} for `num_blocks`; it must be a positive integer.")
            self.block_out_channels, self.transition_out_channels = densenet_widths(
                self.stem_channels, self.growth_rate, self.num_blocks, self.layers_per_block, self.compression
            )
        elif self.block_out_channels is None or self.transition_out_channels is None:
            raise ValueError(
                "Got None for `block_out_channels` or `transition_out_channels`; list both, or set `growth_rate`."
            )
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)
        self.transition_out_channels = tuple(int(c) for c in self.transition_out_channels)
        self.decoder_channels = tuple(int(c) for c in self.decoder_channels)
        self.output_range = tuple(float(v) for v in self.output_range)
        validate_prn_dense_config(**self.model_kwargs())

    def model_kwargs(self) -> dict[str, Any]:
        """``PRNDenseModel(**kwargs)``: the resolved architecture (explicit widths)."""
        return dict(
            sample_size=self.sample_size,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            stem_channels=self.stem_channels,
            block_out_channels=self.block_out_channels,
            transition_out_channels=self.transition_out_channels,
            layers_per_block=self.layers_per_block,
            bottleneck_factor=self.bottleneck_factor,
            decoder_channels=self.decoder_channels,
            output_activation=self.output_activation,
            output_range=self.output_range,
        )


def prn_dense_config(preset: str = "paper", **overrides: Any) -> PRNDenseConfig:
    """The named preset with ``overrides`` applied (any :class:`PRNDenseConfig` field), validated.

    Setting ``growth_rate`` over a preset that lists its widths derives them instead; listing
    ``block_out_channels`` over a growth-rate preset uses the list (``growth_rate`` is dropped).
    """
    settings = preset_settings(PRN_DENSE_PRESETS, preset, overrides, PRNDenseConfig, "PRN-Dense")
    if "block_out_channels" in overrides and "growth_rate" not in overrides:
        settings["growth_rate"] = None
    return PRNDenseConfig(**settings)
