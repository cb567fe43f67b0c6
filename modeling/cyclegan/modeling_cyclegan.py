"""CycleGAN networks (Zhu et al., ICCV 2017, appendix 7.2): the ResNet generator and the PatchGAN discriminator.

DepthNets (Moniz, Beckham et al. 2018, section 3.3) use CycleGAN to repair pasted face swaps; these are its two
networks, as diffusers models (``save_pretrained`` / ``from_pretrained``, safetensors).

Generator (Johnson et al.'s image-transformation network, as CycleGAN uses it), for ``ngf = 64`` and 9 blocks:
``c7s1-64, d128, d256, R256 x 9, u128, u64, c7s1-3``: a 7x7 convolution, two stride-2 3x3 convolutions, residual
blocks of two 3x3 convolutions, two fractionally strided (stride 1/2) 3x3 convolutions and a 7x7 convolution to RGB
with tanh. Every convolution but the last is followed by normalisation (instance norm) and ReLU; padding is by
reflection. Images in and out are float in [-1, 1], NCHW.

Discriminator (the 70x70 PatchGAN of pix2pix, as CycleGAN uses it): ``C64-C128-C256-C512`` then a 1-channel
convolution, 4x4 kernels, LeakyReLU 0.2, no normalisation on ``C64``; stride 2 for the first three layers and 1 for
the last two. Each output score judges one overlapping 70x70 patch of the input (:attr:`PatchDiscriminator.
receptive_field`). The scores are trained with CycleGAN's least-squares objective (section 4), so they are not
logits: 1 means "real", 0 "generated".

Weights start from N(0, 0.02) with zero biases, as in CycleGAN's code. Convolutions carry a bias unless followed by
batch norm (whose shift replaces it); instance norm has no affine parameters. With these choices the 256 px paper
generator has 11,378,179 parameters and the PatchGAN 2,764,737, the counts of the reference implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks the base class up in this module)
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from facehub.modeling.cyclegan.configuration_cyclegan import (
    validate_discriminator_config,
    validate_generator_config,
)
from facehub.modeling.modeling_utils import FaceHubModel

INIT_STD = 0.02  # N(0, 0.02) initialisation of CycleGAN / pix2pix
LEAKY_SLOPE = 0.2


@dataclass
class CycleGANGeneratorOutput(BaseOutput):
    """What :class:`CycleGANGenerator` returns.

    Attributes:
        image: (B, C, H, W) translated images, float in [-1, 1] (``G(x)`` or ``F(y)`` in eq. 1-3 of CycleGAN).
    """

    image: torch.Tensor


@dataclass
class PatchDiscriminatorOutput(BaseOutput):
    """What :class:`PatchDiscriminator` returns.

    Attributes:
        patch_scores: (B, 1, h, w) one realness score per overlapping input patch of ``receptive_field`` pixels
            (``D_Y(y)`` in eq. 1); trained towards 1 for real and 0 for generated images (least squares).
    """

    patch_scores: torch.Tensor


def patchgan_receptive_field(num_layers: int) -> int:
    """Input patch side seen by one PatchGAN score: 4x4 kernels, ``num_layers`` stride-2 layers and two of stride 1
    (70 for 3 layers, the "70x70 PatchGAN")."""
    field = 1
    for stride in reversed([2] * num_layers + [1, 1]):
        field = field * stride + 4 - stride
    return field


def _norm_layer(norm: str, num_channels: int) -> nn.Module:
    if norm == "instance":
        return nn.InstanceNorm2d(num_channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(num_channels)
    return nn.Identity()


def _padded_conv(in_channels: int, out_channels: int, kernel_size: int, padding: str, bias: bool) -> list[nn.Module]:
    """A stride-1 'same' convolution whose border is padded by ``padding`` (reflection in CycleGAN)."""
    pad = kernel_size // 2
    if padding == "zero":
        return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=pad, bias=bias)]
    pad_layer = nn.ReflectionPad2d(pad) if padding == "reflect" else nn.ReplicationPad2d(pad)
    return [pad_layer, nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)]


def _initialise(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, INIT_STD)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, INIT_STD)
            nn.init.zeros_(layer.bias)


class ResidualBlock(nn.Module):
    """``R<k>`` of appendix 7.2: two 3x3 convolutions with the same number of filters, added to the input."""

    def __init__(self, channels: int, norm: str, padding: str, dropout: float):
        super().__init__()
        bias = norm != "batch"
        layers = [*_padded_conv(channels, channels, 3, padding, bias), _norm_layer(norm, channels), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [*_padded_conv(channels, channels, 3, padding, bias), _norm_layer(norm, channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.body(features)


class CycleGANGenerator(FaceHubModel):
    """CycleGAN's ResNet generator ``G: X -> Y`` (or ``F: Y -> X``): an image-to-image network that keeps the size.

    Args:
        channels: image channels in and out (3).
        base_channels: ``ngf``, filters of the first convolution (64 in CycleGAN).
        num_downsamplings: stride-2 convolutions on the way down and fractionally strided ones on the way up (2).
        num_residual_blocks: residual blocks at the bottleneck (9 at 256 px, 6 at 128 px).
        norm: ``"instance"``, ``"batch"`` or ``"none"``.
        padding: ``"reflect"``, ``"replicate"`` or ``"zero"``.
        dropout: dropout inside the residual blocks (0 in CycleGAN).
        image_size: the square crop size the generator was trained on; the network itself accepts any size
            divisible by ``2 ** num_downsamplings``, and :func:`~facehub.modeling.cyclegan.repair_face` resizes to
            this one.
    """

    @register_to_config
    def __init__(
        self,
        channels: int = 3,
        base_channels: int = 64,
        num_downsamplings: int = 2,
        num_residual_blocks: int = 9,
        norm: str = "instance",
        padding: str = "reflect",
        dropout: float = 0.0,
        image_size: int = 256,
    ):
        super().__init__()
        validate_generator_config(
            channels, base_channels, num_downsamplings, num_residual_blocks, norm, padding, dropout, image_size
        )
        bias = norm != "batch"
        layers: list[nn.Module] = [  # c7s1-ngf
            *_padded_conv(channels, base_channels, 7, padding, bias),
            _norm_layer(norm, base_channels),
            nn.ReLU(True),
        ]
        width = base_channels
        for _ in range(num_downsamplings):  # d<2 width>
            layers += [
                nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=bias),
                _norm_layer(norm, 2 * width),
                nn.ReLU(True),
            ]
            width *= 2
        layers += [ResidualBlock(width, norm, padding, dropout) for _ in range(num_residual_blocks)]
        for _ in range(num_downsamplings):  # u<width / 2>
            layers += [
                nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                _norm_layer(norm, width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [*_padded_conv(width, channels, 7, padding, bias=True), nn.Tanh()]  # c7s1-3
        self.layers = nn.Sequential(*layers)
        _initialise(self)

    def forward(self, image: torch.Tensor, return_dict: bool = True) -> CycleGANGeneratorOutput | tuple:
        """Translate (B, C, H, W) images in [-1, 1]; H and W must be divisible by ``2 ** num_downsamplings``."""
        c = self.config
        stride = 2**c.num_downsamplings
        if image.dim() != 4 or image.shape[1] != c.channels or image.shape[2] % stride or image.shape[3] % stride:
            raise ValueError(
                f"CycleGANGenerator expects (B, {c.channels}, H, W) images with H and W divisible by {stride}, "
                f"got shape {tuple(image.shape)}."
            )
        translated = self.layers(image.to(self.layers[-2].weight.dtype))
        if not return_dict:
            return (translated,)
        return CycleGANGeneratorOutput(image=translated)


class PatchDiscriminator(FaceHubModel):
    """The PatchGAN discriminator ``D_Y`` (or ``D_X``): scores every overlapping patch of an image as real or not.

    Args:
        channels: image channels (3).
        base_channels: ``ndf``, filters of the first layer (64 in CycleGAN).
        num_layers: stride-2 layers; 3 gives the 70x70 PatchGAN ``C64-C128-C256-C512``.
        norm: normalisation after every convolution but the first and the last.
    """

    @register_to_config
    def __init__(self, channels: int = 3, base_channels: int = 64, num_layers: int = 3, norm: str = "instance"):
        super().__init__()
        validate_discriminator_config(channels, base_channels, num_layers, norm)
        bias = norm != "batch"
        layers: list[nn.Module] = [
            nn.Conv2d(channels, base_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(LEAKY_SLOPE, True),
        ]
        width = base_channels
        # C128, C256 (stride 2) then C512 (stride 1); filters double each layer, up to 8 ndf.
        for index in range(1, num_layers + 1):
            out_width = base_channels * min(2**index, 8)
            stride = 2 if index < num_layers else 1
            layers += [
                nn.Conv2d(width, out_width, 4, stride=stride, padding=1, bias=bias),
                _norm_layer(norm, out_width),
                nn.LeakyReLU(LEAKY_SLOPE, True),
            ]
            width = out_width
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.layers = nn.Sequential(*layers)
        _initialise(self)

    @property
    def receptive_field(self) -> int:
        """Side in input pixels of the patch each output score sees (70 for ``num_layers=3``)."""
        field = 1
        for layer in reversed([m for m in self.layers if isinstance(m, nn.Conv2d)]):
            field = field * layer.stride[0] + layer.kernel_size[0] - layer.stride[0]
        return field

    def forward(self, image: torch.Tensor, return_dict: bool = True) -> PatchDiscriminatorOutput | tuple:
        """Score (B, C, H, W) images in [-1, 1]; returns (B, 1, h, w) patch scores."""
        c = self.config
        if image.dim() != 4 or image.shape[1] != c.channels:
            raise ValueError(f"PatchDiscriminator expects (B, {c.channels}, H, W) images, got {tuple(image.shape)}.")
        scores = self.layers(image.to(self.layers[0].weight.dtype))
        if not return_dict:
            return (scores,)
        return PatchDiscriminatorOutput(patch_scores=scores)
