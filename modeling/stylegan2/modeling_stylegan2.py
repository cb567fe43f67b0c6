"""StyleGAN2's generator and discriminator (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN",
CVPR 2020; config F: skip generator, residual discriminator), as facehub models.

:class:`StyleGAN2Generator`

- mapping network ``f: z -> w``: pixel norm, then ``mapping_layers`` equalised fully connected layers with the 0.01
  learning-rate multiplier and the scaled leaky ReLU. ``input_dim`` (default ``latent_dim``) lets ``z`` be wider or
  narrower than ``w``, and ``normalize_input=False`` drops the pixel norm: DiscoFaceGAN feeds its interpretable
  factors straight in (seed 002, Sec. 4: "remove the normalization operation for input latent variable layer");
- synthesis network: a learned 4x4 constant, then per resolution a modulated 3x3 convolution that upsamples and one
  that does not (eq. 1-3: modulation, demodulation), each followed by scaled per-pixel noise, a bias and the leaky
  ReLU; a modulated 1x1 ``ToRGB`` per resolution adds into an upsampled running image (the skip architecture);
  ``image_channels`` (default 3) sets that image's channels (StyleFaceUV's UV generator writes 4: diffuse RGB and
  displacement);
- ``num_ws = 2 * log2(resolution) - 2`` style inputs: the first convolution reads ``w[0]``, the first ToRGB ``w[1]``,
  and the block at each next resolution ``w[i]``, ``w[i + 1]`` (its two convolutions) and ``w[i + 2]`` (its ToRGB);
- inputs: ``z`` (mapped), ``w`` (one latent for every layer) or ``W+`` (one per layer); truncation
  ``w' = w_avg + psi (w - w_avg)``; style mixing (a second latent from ``mixing_index`` on); noise drawn afresh,
  fixed (the stored ``noise_const_*`` maps), absent, or given explicitly.
- ``w_avg`` is a buffer: the running mean of ``w`` during training (EMA, as the original tracks it), or the mean
  over many mapped draws for a converted checkpoint.

:class:`StyleGAN2Discriminator`: ``FromRGB`` at full resolution, residual blocks that halve the size (two 3x3
convolutions, the second blurred and strided, plus a blurred strided 1x1 skip, summed and divided by sqrt(2)), the
minibatch standard deviation layer, a 3x3 convolution, and two fully connected layers to one score per image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks the base class up in this module)
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from facehub.modeling.modeling_utils import FaceHubModel
from facehub.modeling.stylegan2.configuration_stylegan2 import validate_stylegan2_config
from facehub.modeling.stylegan2.layers import (
    EqualizedConv2d,
    EqualizedLinear,
    StyledConv,
    ToRGB,
    pixel_norm,
)

NOISE_MODES = ("random", "const", "none")


@dataclass
class StyleGAN2GeneratorOutput(BaseOutput):
    """What :class:`StyleGAN2Generator` returns.

    Attributes:
        images: (N, 3, H, W) float, about [-1, 1] (not clamped).
        w_plus: (N, num_ws, latent_dim) the style input every layer read, after truncation and mixing.
    """

    images: torch.Tensor
    w_plus: torch.Tensor


@dataclass
class StyleGAN2DiscriminatorOutput(BaseOutput):
    """What :class:`StyleGAN2Discriminator` returns: ``scores`` (N, 1), the realness logits."""

    scores: torch.Tensor


class StyleGAN2Generator(FaceHubModel):
    """Mapping and synthesis networks of StyleGAN2 (see the module docstring); arguments as in
    :class:`~facehub.modeling.stylegan2.StyleGAN2Config`."""

    @register_to_config
    def __init__(self, resolution: int = 64, latent_dim: int = 128, mapping_layers: int = 4,
                 channels: Sequence[int] = (128, 128, 128, 64, 32), mapping_lr_multiplier: float = 0.01,
                 blur_taps: Sequence[float] = (1, 3, 3, 1), input_dim: int | None = None,
                 normalize_input: bool = True, image_channels: int = 3):
        super().__init__()
        validate_stylegan2_config(resolution, latent_dim, mapping_layers, channels, mapping_lr_multiplier, blur_taps)
        if input_dim is not None and not 0 < int(input_dim) <= 65536:
            raise ValueError(f"Got {input_dim} for `input_dim`; expected a positive width (or None: latent_dim).")
        if not 1 <= int(image_channels) <= 64:
            raise ValueError(f"Got {image_channels} for `image_channels`; expected 1 to 64 (3 for RGB).")
        self.image_channels = int(image_channels)
        channels, blur_taps = [int(c) for c in channels], tuple(float(t) for t in blur_taps)
        levels = int(math.log2(resolution))
        self.latent_dim = latent_dim
        self.input_dim = int(input_dim or latent_dim)
        self.normalize_input = bool(normalize_input)
        self.num_ws = 2 * levels - 2
        self.num_noise = 2 * levels - 3

        self.mapping = nn.ModuleList(
            EqualizedLinear(self.input_dim if index == 0 else latent_dim, latent_dim,
                            lr_multiplier=mapping_lr_multiplier, activate=True)
            for index in range(mapping_layers)
        )
        self.const = nn.Parameter(torch.randn(1, channels[0], 4, 4))
        convs = [StyledConv(channels[0], channels[0], latent_dim, blur_taps=blur_taps)]
        to_rgbs = [ToRGB(channels[0], latent_dim, upsample_skip=False, blur_taps=blur_taps,
                         image_channels=self.image_channels)]
        for previous, width in zip(channels[:-1], channels[1:], strict=True):
            convs.append(StyledConv(previous, width, latent_dim, upsample=True, blur_taps=blur_taps))
            convs.append(StyledConv(width, width, latent_dim, blur_taps=blur_taps))
            to_rgbs.append(ToRGB(width, latent_dim, upsample_skip=True, blur_taps=blur_taps,
                                 image_channels=self.image_channels))
        self.convs = nn.ModuleList(convs)
        self.to_rgbs = nn.ModuleList(to_rgbs)
        for index in range(self.num_noise):
            side = 2 ** ((index + 5) // 2)
            self.register_buffer(f"noise_const_{index}", torch.randn(1, 1, side, side))
        self.register_buffer("w_avg", torch.zeros(latent_dim))

    # -- mapping ---------------------------------------------------------------------------------------------------

    def map(self, z: torch.Tensor) -> torch.Tensor:
        """``w = f(z)``: (N, input_dim) -> (N, latent_dim) (pixel norm first unless ``normalize_input`` is off)."""
        w = pixel_norm(z) if self.normalize_input else z
        for layer in self.mapping:
            w = layer(w)
        return w

    @torch.no_grad()
    def mean_w(self, num_samples: int = 10_000, generator: torch.Generator | None = None,
               batch_size: int = 4096) -> torch.Tensor:
        """The mean of ``f(z)`` over ``num_samples`` draws of ``z ~ N(0, I)`` (the truncation centre)."""
        total = torch.zeros(self.latent_dim, dtype=torch.float64)
        done = 0
        while done < num_samples:
            count = min(batch_size, num_samples - done)
            z = torch.randn(count, self.input_dim, generator=generator).to(self.const.device, self.const.dtype)
            total += self.map(z).double().sum(dim=0).cpu()
            done += count
        return (total / num_samples).float().to(self.const.device)

    @torch.no_grad()
    def update_w_avg(self, w: torch.Tensor, beta: float = 0.995) -> None:
        """Move the ``w_avg`` buffer towards the batch mean of ``w`` (``beta`` is the original's 0.995)."""
        self.w_avg.copy_(torch.lerp(w.detach().mean(dim=0).to(self.w_avg.dtype), self.w_avg, beta))

    def w_plus(self, latents: torch.Tensor, *, input_is_w: bool = False, truncation_psi: float = 1.0,
               truncation_latent: torch.Tensor | None = None, mixing_latents: torch.Tensor | None = None,
               mixing_index: int | None = None) -> torch.Tensor:
        """The (N, num_ws, latent_dim) styles for ``latents``: see :meth:`forward` for the arguments."""
        sources = [latents] if mixing_latents is None else [latents, mixing_latents]
        styles = []
        for source in sources:
            if source.ndim == 3 and not input_is_w:
                raise ValueError("A (N, num_ws, latent_dim) W+ input needs `input_is_w=True`; z is (N, latent_dim).")
            width = self.latent_dim if input_is_w else self.input_dim
            if source.shape[-1] != width or source.ndim not in (2, 3):
                raise ValueError(f"Got latents of shape {tuple(source.shape)}; expected z (N, {self.input_dim}), or "
                                 f"w (N, {self.latent_dim}) / W+ (N, {self.num_ws}, {self.latent_dim}) with "
                                 "`input_is_w=True`.")
            if source.ndim == 3 and source.shape[1] != self.num_ws:
                raise ValueError(f"Got a W+ input with {source.shape[1]} styles; this generator reads {self.num_ws}.")
            styles.append(source if input_is_w else self.map(source))
        if truncation_psi != 1:
            centre = self.w_avg if truncation_latent is None else truncation_latent.reshape(-1, self.latent_dim)
            styles = [centre + truncation_psi * (style - centre) if style.ndim == 2 else
                      centre[:, None] + truncation_psi * (style - centre[:, None]) for style in styles]
        expanded = [style if style.ndim == 3 else style[:, None].expand(-1, self.num_ws, -1) for style in styles]
        if len(expanded) == 1:
            return expanded[0]
        if mixing_index is None or not 1 <= int(mixing_index) < self.num_ws:
            raise ValueError(f"Got {mixing_index} for `mixing_index`; style mixing needs an index in [1, "
                             f"{self.num_ws - 1}] (styles before it come from `latents`, the rest from "
                             "`mixing_latents`).")
        return torch.cat([expanded[0][:, :mixing_index], expanded[1][:, mixing_index:]], dim=1)

    # -- synthesis -------------------------------------------------------------------------------------------------

    def noise_maps(self, batch_size: int, noise_mode: str = "random",
                   generator: torch.Generator | None = None) -> list[torch.Tensor | None]:
        """One noise map (or None) per noise input: fresh N(0, 1) draws, the stored constants, or none."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"Got {noise_mode!r} for `noise_mode`; expected one of {NOISE_MODES}.")
        if noise_mode == "none":
            return [None] * self.num_noise
        constants = [getattr(self, f"noise_const_{i}") for i in range(self.num_noise)]
        if noise_mode == "const":
            return constants
        device, dtype = self.const.device, self.const.dtype
        return [torch.randn(batch_size, 1, *c.shape[2:], generator=generator, device=generator.device
                            if generator is not None else device).to(device, dtype) for c in constants]

    def synthesize(self, w_plus: torch.Tensor, noise: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """The synthesis network: (N, num_ws, latent_dim) styles and ``num_noise`` noise maps -> (N, 3, H, W)."""
        if len(noise) != self.num_noise:
            raise ValueError(f"Got {len(noise)} noise maps; this generator has {self.num_noise} noise inputs.")
        x = self.const.expand(w_plus.shape[0], -1, -1, -1)
        x = self.convs[0](x, w_plus[:, 0], noise[0])
        image = self.to_rgbs[0](x, w_plus[:, 1], None)
        for level, to_rgb in enumerate(self.to_rgbs[1:]):
            index = 2 * level + 1
            x = self.convs[index](x, w_plus[:, index], noise[index])
            x = self.convs[index + 1](x, w_plus[:, index + 1], noise[index + 1])
            image = to_rgb(x, w_plus[:, index + 2], image)
        return image

    def forward(self, latents: torch.Tensor, *, input_is_w: bool = False, truncation_psi: float = 1.0,
                truncation_latent: torch.Tensor | None = None, mixing_latents: torch.Tensor | None = None,
                mixing_index: int | None = None, noise_mode: str = "random",
                noise: Sequence[torch.Tensor | None] | None = None, generator: torch.Generator | None = None,
                return_dict: bool = True):
        """Images for ``latents``.

        Args:
            latents: ``z`` (N, latent_dim); with ``input_is_w=True``, ``w`` (N, latent_dim) or ``W+``
                (N, num_ws, latent_dim).
            truncation_psi: ``w' = w_avg + psi (w - w_avg)`` (1: none); ``truncation_latent`` replaces ``w_avg``.
            mixing_latents, mixing_index: style mixing: styles ``mixing_index`` onwards come from ``mixing_latents``
                (same kind of input as ``latents``).
            noise_mode: ``"random"`` (drawn with ``generator``), ``"const"`` (the stored maps) or ``"none"``;
                ``noise`` (one (N or 1, 1, s, s) map per noise input) overrides it.
        """
        w_plus = self.w_plus(latents, input_is_w=input_is_w, truncation_psi=truncation_psi,
                             truncation_latent=truncation_latent, mixing_latents=mixing_latents,
                             mixing_index=mixing_index)
        if noise is None:
            noise = self.noise_maps(w_plus.shape[0], noise_mode, generator)
        images = self.synthesize(w_plus, noise)
        if not return_dict:
            return images, w_plus
        return StyleGAN2GeneratorOutput(images=images, w_plus=w_plus)


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3x3 convolutions (the second downsampling) and a 1x1 downsampling skip, over sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int, blur_taps: Sequence[float]):
        super().__init__()
        self.conv1 = EqualizedConv2d(in_channels, in_channels, 3, blur_taps=blur_taps)
        self.conv2 = EqualizedConv2d(in_channels, out_channels, 3, downsample=True, blur_taps=blur_taps)
        self.skip = EqualizedConv2d(in_channels, out_channels, 1, bias=False, activate=False, downsample=True,
                                    blur_taps=blur_taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


def minibatch_stddev(x: torch.Tensor, group_size: int, num_features: int) -> torch.Tensor:
    """Append the minibatch standard deviation maps (Karras et al. 2018, Sec. 3): the standard deviation of each
    feature over groups of ``group_size`` images, averaged over channels and pixels, one map per ``num_features``
    channel group. The batch must be divisible by the group size (``min(group_size, N)``)."""
    batch, channels, height, width = x.shape
    group = min(group_size, batch)
    if batch % group:
        raise ValueError(f"The minibatch standard deviation groups {group} images; got a batch of {batch}. Use a "
                         f"batch size divisible by {group}.")
    y = x.reshape(group, -1, num_features, channels // num_features, height, width)
    y = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8)
    y = y.mean(dim=(2, 3, 4), keepdim=True).squeeze(2)                  # (N / group, num_features, 1, 1)
    y = y.repeat(group, 1, height, width)
    return torch.cat([x, y], dim=1)


class StyleGAN2Discriminator(FaceHubModel):
    """The residual discriminator of StyleGAN2 (see the module docstring); arguments as in
    :class:`~facehub.modeling.stylegan2.StyleGAN2Config`."""

    @register_to_config
    def __init__(self, resolution: int = 64, channels: Sequence[int] = (128, 128, 128, 64, 32),
                 blur_taps: Sequence[float] = (1, 3, 3, 1), mbstd_group_size: int = 4, mbstd_features: int = 1):
        super().__init__()
        validate_stylegan2_config(resolution, 1, 1, channels, 1.0, blur_taps)
        if int(mbstd_group_size) < 1 or int(mbstd_features) < 1 or int(channels[0]) % int(mbstd_features):
            raise ValueError(f"Got mbstd_group_size={mbstd_group_size}, mbstd_features={mbstd_features}; both must be "
                             f"positive and the 4 px width {channels[0]} divisible by mbstd_features.")
        channels, blur_taps = [int(c) for c in channels], tuple(float(t) for t in blur_taps)
        self.mbstd_group_size, self.mbstd_features = int(mbstd_group_size), int(mbstd_features)
        self.from_rgb = EqualizedConv2d(3, channels[-1], 1, bias=True)
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(channels[level], channels[level - 1], blur_taps)
            for level in range(len(channels) - 1, 0, -1)
        )
        self.final_conv = EqualizedConv2d(channels[0] + self.mbstd_features, channels[0], 3)
        self.final_dense = EqualizedLinear(channels[0] * 16, channels[0], activate=True)
        self.output = EqualizedLinear(channels[0], 1)

    def forward(self, images: torch.Tensor, return_dict: bool = True):
        """Realness logits of (N, 3, H, W) images in [-1, 1]."""
        x = self.from_rgb(images)
        for block in self.blocks:
            x = block(x)
        x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_features)
        x = self.final_conv(x)
        scores = self.output(self.final_dense(x.flatten(1)))
        if not return_dict:
            return (scores,)
        return StyleGAN2DiscriminatorOutput(scores=scores)
