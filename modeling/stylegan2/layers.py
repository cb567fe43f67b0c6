"""StyleGAN2's building blocks (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020),
in plain PyTorch so that they run anywhere torch does, with no compiled extension.

- Equalised learning rate (ProGAN, Sec. 4.1 of Karras et al. 2018): weights are stored as N(0, 1) / ``lr_multiplier``
  draws and scaled by ``lr_multiplier / sqrt(fan_in)`` at every call, biases are scaled by ``lr_multiplier``. The
  stored tensors therefore have the same meaning as in the original code and in the common PyTorch port, which is
  what lets :mod:`facehub.modeling.stylegan2.convert` copy them without rescaling.
- :func:`upfirdn2d`: upsample by zero insertion, pad, apply a FIR filter, downsample; the resampling filter of
  StyleGAN2 (binomial ``[1, 3, 3, 1]``, normalised, times ``up**2`` when upsampling).
- :class:`ModulatedConv2d`: eq. 1-3 of the paper: the convolution weight is scaled per input channel by the style
  (``w'_ijk = s_i * w_ijk``) and, for demodulation, each output map is divided by
  ``sqrt(sum_{i,k} w'_ijk^2 + eps)``. Implemented unfused: the input is scaled by the style, one convolution with the
  shared weight runs over the whole batch, and the demodulation factors come from a matrix product
  ``s^2 @ (sum_k w^2)^T``. It gives the same result as the grouped convolution with one weight per sample (what the
  original does by default; kept as ``ModulatedConv2d.forward_grouped``) up to float rounding, and its backward pass
  needs no per-sample weight gradients. ``facehub bench stylegan2`` measures both forms on the machine at hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: StyleGAN2's leaky ReLU: slope 0.2 and a gain of sqrt(2) that keeps the activations' variance (the original's
#: ``bias_act`` 'lrelu' defaults).
LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2.0)
#: Added under the square root of the demodulation and of the pixel norm (the original's epsilon).
EPSILON = 1e-8


def resampling_kernel(taps: Sequence[float], gain: float = 1.0) -> torch.Tensor:
    """The separable 2D FIR filter of ``taps`` (outer product), normalised to sum to ``gain``."""
    kernel = torch.as_tensor(list(taps), dtype=torch.float32)
    if kernel.ndim != 1 or kernel.numel() < 1:
        raise ValueError(f"Got {list(taps)} for the resampling filter taps; expected a non-empty list of numbers.")
    kernel = kernel[None, :] * kernel[:, None]
    return kernel / kernel.sum() * gain


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample ``x`` (N, C, H, W) by inserting ``up - 1`` zeros after every pixel, pad ``pad`` = (before, after) on
    both axes (negative values crop), convolve every channel with ``kernel`` (a true convolution: the kernel is
    flipped, as in the original), and keep every ``down``-th pixel."""
    batch, channels, height, width = x.shape
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(batch, channels, height * up, width * up)
    before, after = pad
    x = F.pad(x, (max(before, 0), max(after, 0), max(before, 0), max(after, 0)))
    if before < 0 or after < 0:
        x = x[:, :, max(-before, 0): x.shape[2] - max(-after, 0), max(-before, 0): x.shape[3] - max(-after, 0)]
    weight = torch.flip(kernel, (0, 1)).to(x.dtype)[None, None].expand(channels, 1, *kernel.shape)
    x = F.conv2d(x, weight, groups=channels)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def bias_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``sqrt(2) * leaky_relu(x + bias, 0.2)``, the bias broadcast over the channel axis (dim 1)."""
    if bias is not None:
        x = x + bias.reshape(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, LEAKY_SLOPE) * LEAKY_GAIN


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """Normalise each row of ``x`` to unit root mean square (the mapping network's input normalisation)."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + EPSILON)


class EqualizedLinear(nn.Module):
    """A fully connected layer with equalised learning rate; ``activate`` applies the bias with the scaled leaky ReLU.

    ``lr_multiplier`` (0.01 for the mapping network in the original) slows the layer's effective learning rate.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_multiplier: float = 1.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.lr_multiplier = lr_multiplier
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_multiplier if self.bias is not None else None
        if self.activate:
            return bias_leaky_relu(F.linear(x, self.weight * self.weight_gain), bias)
        return F.linear(x, self.weight * self.weight_gain, bias)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_multiplier={self.lr_multiplier}"


class EqualizedConv2d(nn.Module):
    """A convolution with equalised learning rate, optionally preceded by the FIR filter and a stride-2 step
    (``downsample``, the discriminator's resampling), and followed by the bias + scaled leaky ReLU (``activate``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activate: bool = True, downsample: bool = False, blur_taps: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.activate = activate
        self.downsample = downsample
        if downsample:
            # Blur so that the stride-2 convolution that follows sees a low-passed signal: pad (p + 1) // 2, p // 2
            # with p = (taps - 2) + (kernel - 1), which keeps the output at exactly half the input size.
            excess = (len(blur_taps) - 2) + (kernel_size - 1)
            self.blur_pad = ((excess + 1) // 2, excess // 2)
            self.register_buffer("blur_kernel", resampling_kernel(blur_taps), persistent=False)
            self.padding = 0
        else:
            self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample:
            x = upfirdn2d(x, self.blur_kernel, pad=self.blur_pad)
        x = F.conv2d(x, self.weight * self.weight_gain, stride=2 if self.downsample else 1, padding=self.padding)
        if self.activate:
            return bias_leaky_relu(x, self.bias)
        if self.bias is not None:
            x = x + self.bias.reshape(1, -1, 1, 1)
        return x


class ModulatedConv2d(nn.Module):
    """Eq. 1-3 of StyleGAN2: a convolution whose weights are modulated by a per-sample style and (optionally)
    demodulated; ``upsample`` makes it a transposed stride-2 convolution followed by the FIR filter.

    ``affine`` maps the intermediate latent ``w`` to the style ``s`` (one scale per input channel; its bias starts
    at 1 so that a fresh layer starts unmodulated).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, latent_dim: int,
                 demodulate: bool = True, upsample: bool = False, blur_taps: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.affine = EqualizedLinear(latent_dim, in_channels, bias_init=1.0)
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.demodulate = demodulate
        self.upsample = upsample
        self.padding = kernel_size // 2
        if upsample:
            # The transposed convolution yields 2H + k - 2 pixels; the filter (gain 4 for the inserted zeros) with
            # pad (p + 1) // 2 + 1, p // 2 + 1, p = (taps - 2) - (k - 1), brings it back to exactly 2H.
            excess = (len(blur_taps) - 2) - (kernel_size - 1)
            self.blur_pad = ((excess + 1) // 2 + 1, excess // 2 + 1)
            self.register_buffer("blur_kernel", resampling_kernel(blur_taps, gain=4.0), persistent=False)

    #: ``True`` runs :meth:`forward_grouped` instead (the paper's per-sample form: slower on a CPU, kept as the
    #: reference that tests and ``facehub bench stylegan2`` compare the unfused form against).
    grouped: bool = False

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.grouped:
            return self.forward_grouped(x, w)
        styles = self.affine(w)                                                   # s_i, (N, in)
        weight = self.weight * self.weight_gain
        x = x * styles.reshape(*styles.shape, 1, 1)
        if self.upsample:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
            x = upfirdn2d(x, self.blur_kernel, pad=self.blur_pad)
        else:
            x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # sigma_j = sqrt(sum_{i,k} (s_i w_ijk)^2 + eps) (eq. 3) = sqrt(s^2 @ (sum_k w_ijk^2)^T + eps)
            weight_energy = weight.square().sum(dim=(2, 3))                       # (out, in)
            demodulation = torch.rsqrt(styles.square() @ weight_energy.t() + EPSILON)
            x = x * demodulation.reshape(*demodulation.shape, 1, 1)
        return x

    def forward_grouped(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Eq. 1-3 as the paper writes them: one weight per sample, ``w'_ijk = s_i w_ijk`` (eq. 1), divided by
        ``sigma_j`` (eq. 2-3), applied as a grouped convolution over the batch."""
        batch, channels, height, width = x.shape
        styles = self.affine(w)
        weight = self.weight[None] * self.weight_gain * styles[:, None, :, None, None]      # (N, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + EPSILON)
        out_channels, kernel = weight.shape[1], weight.shape[-1]
        x = x.reshape(1, batch * channels, height, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * channels, out_channels, kernel, kernel)
            x = F.conv_transpose2d(x, weight, stride=2, groups=batch)
            x = upfirdn2d(x, self.blur_kernel, pad=self.blur_pad)
        else:
            x = F.conv2d(x, weight.reshape(batch * out_channels, channels, kernel, kernel), padding=self.padding,
                         groups=batch)
        return x.reshape(batch, out_channels, *x.shape[2:])


class StyledConv(nn.Module):
    """Modulated convolution, per-pixel noise scaled by a learned strength, bias and scaled leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, latent_dim: int, upsample: bool = False,
                 blur_taps: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, latent_dim, upsample=upsample, blur_taps=blur_taps)
        self.noise_strength = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        x = self.conv(x, w)
        if noise is not None:
            x = x + self.noise_strength * noise
        return bias_leaky_relu(x, self.bias)


class ToRGB(nn.Module):
    """A modulated 1x1 convolution to RGB without demodulation, plus the running image of the skip architecture
    (Fig. 7b of the paper) upsampled by the FIR filter."""

    def __init__(self, in_channels: int, latent_dim: int, upsample_skip: bool,
                 blur_taps: Sequence[float] = (1, 3, 3, 1), image_channels: int = 3):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, image_channels, 1, latent_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(image_channels))
        self.upsample_skip = upsample_skip
        if upsample_skip:
            excess = len(blur_taps) - 2
            self.skip_pad = ((excess + 1) // 2 + 1, excess // 2)
            self.register_buffer("blur_kernel", resampling_kernel(blur_taps, gain=4.0), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        image = self.conv(x, w) + self.bias.reshape(1, -1, 1, 1)
        if skip is not None:
            if self.upsample_skip:
                skip = upfirdn2d(skip, self.blur_kernel, up=2, pad=self.skip_pad)
            image = image + skip
        return image
