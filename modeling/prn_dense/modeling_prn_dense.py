"""PRN-Dense: a DenseNet encoder and a transposed-convolution decoder regressing a UV position map (seed 003).

The network (seed 003, section 2, Table 1 and Figure 4; widths and presets in
:mod:`~facehub.modeling.prn_dense.configuration_prn_dense`):

- encoder (section 2.1): Conv1 (3x3 conv, 16 channels), then six dense blocks separated by five transitions. A dense
  layer is DenseNet-B's pre-activation bottleneck, BN-ReLU-1x1 conv-BN-ReLU-3x3 conv, reading the concatenation of
  the block input and every earlier layer's output (eq. 2, ``x_l = H_l([x_0, ..., x_{l-1}])``); a block outputs that
  whole concatenation. A transition is BN-ReLU-1x1 conv-2x2 average pool (the paper lists BN, 1x1 conv and pool;
  the ReLU is DenseNet's). A final BN-ReLU (DenseNet's) closes the encoder: 256x256x3 -> 8x8x512.
- decoder (section 2.2): five modules of three transposed convolutions, 3x3 stride 1 padding 1, 4x4 stride 2
  padding 1, 3x3 stride 1 padding 1 (eq. 3: ``o = s (i - 1) + k - 2p`` keeps the size, doubles it, keeps it), each
  followed by BN and ReLU as in PRNet, except the very last, which writes the three position channels and goes
  through the output activation (PRNet: a sigmoid).

The output convention every facehub consumer relies on (trainer, pipeline, evaluation): channel 0 is ``x / S``,
channel 1 ``y / S`` and channel 2 ``z / S``, where ``(x, y)`` are pixels of the S x S input crop (x right, y down,
origin at the crop's top-left corner) and ``z`` is the depth in the same crop pixels, growing towards the camera,
with the dataset's origin (photos: MediaPipe's, about 0 at the head's centre; the synthetic face world: 0 at the
deepest vertex; nothing downstream reads the origin). :func:`facehub.modeling.prn_dense.image_positions_to_crop_units`
makes such targets from image positions; the pipeline maps predictions back with
:func:`~facehub.modeling.prn_dense.crop_units_to_image_positions`. The UV layout is facehub's
(:mod:`facehub.modeling.geometry.topology`; pixel ``(row, col)`` holds the surface point with ``v = (row + 0.5) / S``
and ``u = (col + 0.5) / S``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks the base class up in this module)
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from facehub.modeling.batch_norm_folding import convolve_normalize, normalize_relu
from facehub.modeling.modeling_utils import FaceHubModel
from facehub.modeling.prn_dense.configuration_prn_dense import (
    PAPER_BLOCK_OUT_CHANNELS,
    PAPER_DECODER_CHANNELS,
    PAPER_TRANSITION_OUT_CHANNELS,
    prn_dense_config,
    split_growth,
    validate_prn_dense_config,
)


@dataclass
class PRNDenseOutput(BaseOutput):
    """What :class:`PRNDenseModel` returns.

    Attributes:
        uv_position_map: (B, 3, S, S) the UV position map ``Pos(u, v) = (x, y, z)`` (seed 003 eq. 10) in units of the
            crop size S: ``(x / S, y / S, z / S)`` in the crop's pixel frame (module docstring).
    """

    uv_position_map: torch.Tensor


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (``bottleneck`` channels)-BN-ReLU-3x3 conv (``growth`` channels): one ``H_l`` of eq. 2."""

    def __init__(self, in_channels: int, bottleneck: int, growth: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, bottleneck, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bottleneck)
        self.conv2 = nn.Conv2d(bottleneck, growth, kernel_size=3, padding=1, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # In eval mode norm2 folds into conv1 (modeling/batch_norm_folding.py); the same function in training.
        hidden = convolve_normalize(self.conv1, self.norm2, normalize_relu(self.norm1, features))
        return self.conv2(hidden.relu_())


class DenseBlock(nn.Module):
    """``len(growths)`` dense layers; each reads the concatenation of the block input and all earlier outputs, and
    the block returns the concatenation of all of them (``in_channels + sum(growths)`` channels)."""

    def __init__(self, in_channels: int, growths: tuple[int, ...], bottleneck_factor: int):
        super().__init__()
        layers, channels = [], in_channels
        for growth in growths:
            layers.append(DenseLayer(channels, bottleneck_factor * growth, growth))
            channels += growth
        self.layers = nn.ModuleList(layers)
        self.out_channels = channels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            features = torch.cat([features, layer(features)], dim=1)
        return features


class TransitionLayer(nn.Module):
    """BN-ReLU-1x1 conv-2x2 average pooling (stride 2) between dense blocks (Table 1, "Transition Layer")."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(normalize_relu(self.norm, features)))


class DecoderModule(nn.Module):
    """Figure 4: transposed convs 3x3/1 (``in_channels``), 4x4/2 (``out_channels``, size doubled), 3x3/1, each with
    BN + ReLU; with ``final_channels`` the last 3x3 writes those channels with a bias and no BN or ReLU."""

    def __init__(self, in_channels: int, out_channels: int, final_channels: int | None = None):
        super().__init__()
        last = final_channels or out_channels
        self.refine_in = nn.ConvTranspose2d(in_channels, in_channels, 3, stride=1, padding=1, bias=False)
        self.norm_in = nn.BatchNorm2d(in_channels)
        self.upsample = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)
        self.norm_up = nn.BatchNorm2d(out_channels)
        self.refine_out = nn.ConvTranspose2d(out_channels, last, 3, stride=1, padding=1, bias=final_channels is not None)
        self.norm_out = nn.BatchNorm2d(last) if final_channels is None else nn.Identity()
        self.is_final = final_channels is not None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # In eval mode each BN folds into the transposed convolution before it (modeling/batch_norm_folding.py).
        features = convolve_normalize(self.refine_in, self.norm_in, features).relu_()
        features = convolve_normalize(self.upsample, self.norm_up, features).relu_()
        features = convolve_normalize(self.refine_out, self.norm_out, features)
        return features if self.is_final else features.relu_()


class PRNDenseModel(FaceHubModel):
    """Face crop -> UV position map (seed 003, Table 1 and section 2.2; see the module docstring).

    ``PRNDenseModel.from_preset("paper")`` builds a named preset; every ``__init__`` argument is described in
    :mod:`~facehub.modeling.prn_dense.configuration_prn_dense`. Activations run channels-last whatever the input's
    memory format. In eval mode the forward pass folds each batch norm into the convolution before it, or runs it with
    its ReLU as one multiply-add (:mod:`facehub.modeling.batch_norm_folding`): the same map, faster, and the weights
    are untouched. For repeated CPU inference ``model.compile(options={"freezing": True})`` (torch's inductor; tens of
    seconds to compile once) goes further; ``benchmarks/bench_prn_dense.py`` prints both.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int = 256,
        in_channels: int = 3,
        out_channels: int = 3,
        stem_channels: int = 16,
        block_out_channels: tuple[int, ...] = PAPER_BLOCK_OUT_CHANNELS,
        transition_out_channels: tuple[int, ...] = PAPER_TRANSITION_OUT_CHANNELS,
        layers_per_block: int = 3,
        bottleneck_factor: int = 4,
        decoder_channels: tuple[int, ...] = PAPER_DECODER_CHANNELS,
        output_activation: str = "sigmoid",
        output_range: tuple[float, float] = (-0.5, 1.5),
    ):
        super().__init__()
        validate_prn_dense_config(
            sample_size, in_channels, out_channels, stem_channels, block_out_channels, transition_out_channels,
            layers_per_block, bottleneck_factor, decoder_channels, output_activation, output_range,
        )
        self.stem = nn.Conv2d(in_channels, stem_channels, kernel_size=3, padding=1, bias=False)
        blocks, transitions = [], []
        channels = stem_channels
        for index, block_out in enumerate(block_out_channels):
            block = DenseBlock(channels, split_growth(block_out - channels, layers_per_block), bottleneck_factor)
            blocks.append(block)
            channels = block.out_channels
            if index < len(transition_out_channels):
                transitions.append(TransitionLayer(channels, transition_out_channels[index]))
                channels = transition_out_channels[index]
        self.dense_blocks = nn.ModuleList(blocks)
        self.transitions = nn.ModuleList(transitions)
        self.encoder_norm = nn.BatchNorm2d(channels)
        modules = []
        for index, width in enumerate(decoder_channels):
            final = out_channels if index == len(decoder_channels) - 1 else None
            modules.append(DecoderModule(channels, width, final))
            channels = width
        self.decoder = nn.ModuleList(modules)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Start every prediction near the crop centre (0.5, 0.5) and small depths: a small output layer, and a bias
        # that puts the activation's output at 0.5 (sigmoid: the centre of ``output_range``).
        head = self.decoder[-1].refine_out
        nn.init.normal_(head.weight, std=1e-3)
        nn.init.constant_(head.bias, 0.0 if self.config.output_activation == "sigmoid" else 0.5)

    @classmethod
    def from_preset(cls, preset: str = "paper", **overrides) -> PRNDenseModel:
        """A new, randomly initialised model of the named preset (``paper``, ``fast``, ``cpu-small``) with
        ``overrides`` (any :class:`~facehub.modeling.prn_dense.PRNDenseConfig` field)."""
        return cls(**prn_dense_config(preset, **overrides).model_kwargs())

    @property
    def uv_size(self) -> int:
        """Side of the UV position map the model writes (equal to ``sample_size``)."""
        return int(self.config.sample_size)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) crops -> (B, C, S / 32, S / 32) features (Table 1: 8x8x512 for the paper)."""
        features = self.stem(images)
        for index, block in enumerate(self.dense_blocks):
            features = block(features)
            if index < len(self.transitions):
                features = self.transitions[index](features)
        return normalize_relu(self.encoder_norm, features)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Encoder features -> (B, 3, S, S) UV position map in units of S (after the output activation)."""
        for module in self.decoder:
            features = module(features)
        if self.config.output_activation == "sigmoid":
            low, high = self.config.output_range
            return low + (high - low) * torch.sigmoid(features)
        return features

    def forward(self, images: torch.Tensor, return_dict: bool = True) -> PRNDenseOutput | tuple[torch.Tensor]:
        """Predict the UV position map of (B, 3, S, S) face crops, float in [-1, 1] (see
        :func:`~facehub.modeling.prn_dense.face_crop_transform` for how crops are made)."""
        size = self.config.sample_size
        if images.dim() != 4 or images.shape[1] != self.config.in_channels or images.shape[-2:] != (size, size):
            raise ValueError(
                f"PRNDenseModel expects (B, {self.config.in_channels}, {size}, {size}) crops in [-1, 1], got "
                f"{tuple(images.shape)}; crop faces with face_crop_transform(face, {size})."
            )
        # Channels-last activations: oneDNN's convolutions run about 1.3x faster on them for these narrow layers
        # (bench_prn_dense.py), and the weights' own memory format does not matter once the input is channels-last.
        images = images.to(self.stem.weight.dtype).contiguous(memory_format=torch.channels_last)
        uv_position_map = self.decode(self.encode(images))
        if not return_dict:
            return (uv_position_map,)
        return PRNDenseOutput(uv_position_map=uv_position_map)
