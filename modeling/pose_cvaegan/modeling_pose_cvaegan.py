"""The networks of the pose-conditioned CVAE-GAN (Morikawa & Saito, "Deep Face Rotation with Ordinary Dataset",
seed 000, section 3.1 and Table 1): encoder E, generator G, predictor P, the code discriminator D1 of Adversarial
Variational Bayes and the image discriminator D2. The sixth network of the paper, the fixed VGG16 of the
reconstruction loss (eq. 1), is a training-time feature network (:mod:`facehub.trainers.losses.perceptual`).

Table 1, read for the ``paper`` preset (96 px, widths 32/64/128/256):

- E: the image with one extra noise channel (AVB's implicit posterior: ``z_x = E(x, eps)``), Conv1 3x3 stride 1 ->
  96x96x32, Res Block2-4 (stride 2) -> 12x12x256, FC1 256, FC2 -> the latent (128).
- G: latent + pose code (128 + 3), FC1 256, FC2 12x12x256, three residual blocks of stride 1/2 -> 96x96x32, Conv4
  3x3 -> 96x96x3 (tanh, since images are in [-1, 1], section 4.2).
- P: Conv1, Res Block2-4, global average pooling (256), FC -> 3 pose values + 40 attribute logits. ReLU.
- D1: the image trunk of P (Conv1, Res Block2-4, GAP -> 256) beside three FC layers on the latent (256 each); the
  score is the inner product of the two 256-d vectors (one logit).
- D2: the trunk, GAP, FC -> 1 logit.

The residual block (Table 1, bottom): ``Conv1A`` 1x1/n is the shortcut; ``Conv1B`` 3x3/n, batch norm, activation,
``Conv2B`` 1x1/1 is the main path; the block returns their sum (no activation after the sum, as listed).

Choices the paper leaves open, made here and noted:

- **Conv1 has stride 1.** The text says E, G, P and D2 start with a stride-2 convolution, but Table 1 lists
  Conv1 as 3x3/1 with a 96x96 output; the table is followed.
- **Stride 1/2** (G's blocks, "3x3/1/2") is a 2x nearest-neighbour upsampling followed by the block's convolutions
  at stride 1 (on both paths), which avoids the checkerboard of transposed convolutions.
- **Inception modules** (section 3.1: the inner convolutions of E, G and P) replace each residual block's Conv1B with
  four branches of a quarter of the width each, concatenated: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (a 5x5 field, as
  Inception v3 factorises it); 3x3 average pooling -> 1x1. The block's stride (or upsampling) is applied by every
  branch's last layer. The layout is ours; the paper names only the module (Szegedy et al. 2015).
- **Batch norm** follows Conv1 of E, G and P, and sits inside every residual block (Table 1) of all five networks.
  D1 and D2 also have spectral norm on every convolution and linear layer (section 3.1).
- **Initialisation**: every convolution and linear weight from N(0, 0.02), biases 0 (section 4.2); batch-norm
  scales start at 1 (N(0, 0.02) scales would silence every layer).
- **Activations**: LeakyReLU (slope ``leaky_slope``) in E, G, D1, D2 and ReLU in P, after Conv1, inside each
  block and after the last block; FC layers are followed by the activation except the last.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks the base class up in this module)
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from facehub.modeling.modeling_utils import FaceHubModel
from facehub.modeling.pose_cvaegan.configuration_pose_cvaegan import (
    NUM_RESIDUAL_BLOCKS,
    check_inception_widths,
    validate_network_config,
)

INIT_STD = 0.02  # section 4.2: every weight from N(0, 0.02)


def _activation(kind: str, slope: float) -> nn.Module:
    return nn.ReLU() if kind == "relu" else nn.LeakyReLU(slope)


def _spectral(module: nn.Module, enabled: bool) -> nn.Module:
    return spectral_norm(module) if enabled else module


class InceptionConv(nn.Module):
    """The Inception module that stands in for a residual block's 3x3 convolution in E, G and P (see the module
    docstring for the layout): four branches of ``out_channels / 4`` channels, concatenated."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        width = out_channels // 4
        self.branch1 = nn.Conv2d(in_channels, width, 1, stride)
        self.branch3 = nn.Sequential(nn.Conv2d(in_channels, width, 1), nn.Conv2d(width, width, 3, stride, 1))
        self.branch5 = nn.Sequential(nn.Conv2d(in_channels, width, 1), nn.Conv2d(width, width, 3, 1, 1),
                                     nn.Conv2d(width, width, 3, stride, 1))
        self.branch_pool = nn.Sequential(nn.AvgPool2d(3, stride, 1, count_include_pad=False),
                                         nn.Conv2d(in_channels, width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


class ResidualBlock(nn.Module):
    """Table 1's residual block: ``Conv1A(x) + Conv2B(act(BN(Conv1B(x))))``.

    Args:
        resample: ``"down"`` (stride 2), ``"up"`` (stride 1/2: 2x nearest upsampling first) or ``"none"``.
        inception: Conv1B is an :class:`InceptionConv` (E, G, P) instead of a 3x3 convolution.
        spectral: spectral norm on the convolutions (D1, D2).
    """

    def __init__(self, in_channels: int, out_channels: int, resample: str, activation: str, slope: float,
                 inception: bool = False, spectral: bool = False):
        super().__init__()
        if resample not in ("down", "up", "none"):
            raise ValueError(f"Got {resample!r} for `resample`; expected down, up or none.")
        self.upsample = resample == "up"
        stride = 2 if resample == "down" else 1
        self.shortcut = _spectral(nn.Conv2d(in_channels, out_channels, 1, stride), spectral)  # Conv1A
        self.conv1 = (InceptionConv(in_channels, out_channels, stride) if inception
                      else _spectral(nn.Conv2d(in_channels, out_channels, 3, stride, 1), spectral))  # Conv1B
        self.norm = nn.BatchNorm2d(out_channels)
        self.activation = _activation(activation, slope)
        self.conv2 = _spectral(nn.Conv2d(out_channels, out_channels, 1), spectral)  # Conv2B

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.shortcut(x) + self.conv2(self.activation(self.norm(self.conv1(x))))


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) weights and zero biases for convolutions and linear layers (section 4.2); batch norm (1, 0).
    Spectral-normalised layers are initialised through their original weight."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            weight = layer.parametrizations.weight.original if hasattr(layer, "parametrizations") else layer.weight
            nn.init.normal_(weight, 0.0, INIT_STD)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


class ImageTrunk(nn.Module):
    """Conv1 (3x3 stride 1) and Res Block2-4 (stride 2): (B, C_in, S, S) -> (B, channels[-1], S/8, S/8), activated.
    Shared layout of E, P, D1 and D2 (Table 1)."""

    def __init__(self, in_channels: int, channels, activation: str, slope: float, inception: bool, spectral: bool,
                 conv1_norm: bool):
        super().__init__()
        channels = tuple(channels)
        layers: list[nn.Module] = [_spectral(nn.Conv2d(in_channels, channels[0], 3, 1, 1), spectral)]
        if conv1_norm:
            layers.append(nn.BatchNorm2d(channels[0]))
        layers.append(_activation(activation, slope))
        self.conv1 = nn.Sequential(*layers)
        self.blocks = nn.ModuleList(
            ResidualBlock(channels[i], channels[i + 1], "down", activation, slope, inception, spectral)
            for i in range(NUM_RESIDUAL_BLOCKS)
        )
        self.activation = _activation(activation, slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for block in self.blocks:
            x = block(x)
        return self.activation(x)


# --------------------------------------------------------------------------------------------------------------------
# Outputs


@dataclass
class PoseEncoderOutput(BaseOutput):
    """Attributes: latent: (B, latent_size), ``z_x = E(x, eps)``, a sample of AVB's implicit posterior."""

    latent: torch.Tensor


@dataclass
class PoseGeneratorOutput(BaseOutput):
    """Attributes: image: (B, 3, S, S) in [-1, 1], ``G(z, y^p)``."""

    image: torch.Tensor


@dataclass
class PosePredictorOutput(BaseOutput):
    """Attributes: pose: (B, num_pose) pose code (1 = ``pose_unit_degrees``), ``P_pose(x)``; attribute_logits:
    (B, num_attributes) logits of ``P_attr(x)`` (sigmoid gives the probabilities of eq. 6 and 8)."""

    pose: torch.Tensor
    attribute_logits: torch.Tensor


@dataclass
class DiscriminatorOutput(BaseOutput):
    """Attributes: logits: (B,) realness logits (sigmoid gives ``D1`` / ``D2`` of eq. 2-5)."""

    logits: torch.Tensor


# --------------------------------------------------------------------------------------------------------------------
# The networks


class PoseEncoder(FaceHubModel):
    """E (Table 1, "Encoder"): (image, noise) -> latent ``z_x``. ``forward(image, noise=None, generator=None)``;
    without ``noise`` one N(0, 1) channel is drawn (from ``generator`` when given)."""

    @register_to_config
    def __init__(self, image_size: int = 64, latent_size: int = 64, channels=(16, 32, 64, 128), hidden_size: int = 128,
                 inception: bool = True, leaky_slope: float = 0.2, noise_channels: int = 1):
        super().__init__()
        validate_network_config(image_size, latent_size, 3, 0, channels, hidden_size, 45.0, leaky_slope)
        check_inception_widths(channels, inception)
        channels = tuple(channels)
        self.trunk = ImageTrunk(3 + noise_channels, channels, "leaky", leaky_slope, inception, False, True)
        cells = channels[-1] * (image_size // 2**NUM_RESIDUAL_BLOCKS) ** 2
        self.fc1 = nn.Linear(cells, hidden_size)
        self.activation = nn.LeakyReLU(leaky_slope)
        self.fc2 = nn.Linear(hidden_size, latent_size)
        init_weights(self)

    def forward(self, image: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                return_dict: bool = True):
        if noise is None:
            shape = (image.shape[0], self.config.noise_channels, *image.shape[-2:])
            noise = torch.randn(shape, generator=generator, dtype=image.dtype).to(image.device)
        features = self.trunk(torch.cat([image, noise.to(image)], dim=1))
        latent = self.fc2(self.activation(self.fc1(features.flatten(1))))
        return PoseEncoderOutput(latent) if return_dict else (latent,)


class PoseGenerator(FaceHubModel):
    """G (Table 1, "Generator"): (latent ``z``, pose code ``y^p``) -> image. ``forward(latent, pose)`` with the pose
    code in [-1, 1] (1 = ``pose_unit_degrees``); :meth:`pose_code` converts degrees."""

    @register_to_config
    def __init__(self, image_size: int = 64, latent_size: int = 64, num_pose: int = 3, channels=(16, 32, 64, 128),
                 hidden_size: int = 128, inception: bool = True, leaky_slope: float = 0.2,
                 pose_unit_degrees: float = 45.0):
        super().__init__()
        validate_network_config(image_size, latent_size, num_pose, 0, channels, hidden_size, pose_unit_degrees,
                                leaky_slope)
        check_inception_widths(tuple(reversed(tuple(channels))), inception)
        channels = tuple(channels)
        self.base_size = image_size // 2**NUM_RESIDUAL_BLOCKS
        self.fc1 = nn.Linear(latent_size + num_pose, hidden_size)
        self.fc2 = nn.Linear(hidden_size, channels[-1] * self.base_size**2)
        self.fc2_norm = nn.BatchNorm2d(channels[-1])
        self.activation = nn.LeakyReLU(leaky_slope)
        reversed_channels = tuple(reversed(channels))
        self.blocks = nn.ModuleList(
            ResidualBlock(reversed_channels[i], reversed_channels[i + 1], "up", "leaky", leaky_slope, inception)
            for i in range(NUM_RESIDUAL_BLOCKS)
        )
        self.conv_out = nn.Conv2d(channels[0], 3, 3, 1, 1)  # Conv4
        init_weights(self)

    def pose_code(self, angles_degrees: torch.Tensor) -> torch.Tensor:
        """(..., num_pose) angles in degrees -> the pose code ``y^p`` (section 4.2: 1 = 45 degrees), clipped to
        [-1, 1]."""
        return (torch.as_tensor(angles_degrees, dtype=torch.float32) / self.config.pose_unit_degrees).clamp(-1, 1)

    def forward(self, latent: torch.Tensor, pose: torch.Tensor, return_dict: bool = True):
        x = self.activation(self.fc1(torch.cat([latent, pose.to(latent)], dim=1)))
        x = self.fc2(x).view(x.shape[0], -1, self.base_size, self.base_size)
        x = self.activation(self.fc2_norm(x))
        for block in self.blocks:
            x = block(x)
        image = torch.tanh(self.conv_out(self.activation(x)))
        return PoseGeneratorOutput(image) if return_dict else (image,)


class PosePredictor(FaceHubModel):
    """P (Table 1, "Predictor"): image -> pose code and attribute logits (eq. 6). ReLU, global average pooling."""

    @register_to_config
    def __init__(self, image_size: int = 64, num_pose: int = 3, num_attributes: int = 40, channels=(16, 32, 64, 128),
                 inception: bool = True, pose_unit_degrees: float = 45.0):
        super().__init__()
        validate_network_config(image_size, 1, num_pose, num_attributes, channels, 1, pose_unit_degrees, 0.0)
        check_inception_widths(channels, inception)
        self.trunk = ImageTrunk(3, channels, "relu", 0.0, inception, False, True)
        self.fc = nn.Linear(tuple(channels)[-1], num_pose + num_attributes)
        init_weights(self)

    def forward(self, image: torch.Tensor, return_dict: bool = True):
        out = self.fc(self.trunk(image).mean(dim=(2, 3)))  # GAP, FC
        pose, attributes = out[:, : self.config.num_pose], out[:, self.config.num_pose:]
        return PosePredictorOutput(pose, attributes) if return_dict else (pose, attributes)


class CodeDiscriminator(FaceHubModel):
    """D1 (Table 1, "Discriminator1"), AVB's discriminator ``T(x, z)``: does latent ``z`` come from the prior or from
    E's encoding of image ``x``? The image trunk (GAP, 256) and three FC layers on ``z`` (256 each) meet in an inner
    product: one logit per pair (eq. 2, 4). Spectral norm on every layer."""

    @register_to_config
    def __init__(self, image_size: int = 64, latent_size: int = 64, channels=(16, 32, 64, 128), hidden_size: int = 128,
                 leaky_slope: float = 0.2):
        super().__init__()
        validate_network_config(image_size, latent_size, 3, 0, channels, hidden_size, 45.0, leaky_slope)
        channels = tuple(channels)
        self.trunk = ImageTrunk(3, channels, "leaky", leaky_slope, False, True, False)
        self.image_fc = spectral_norm(nn.Linear(channels[-1], hidden_size))
        self.latent_fc = nn.Sequential(
            spectral_norm(nn.Linear(latent_size, hidden_size)), nn.LeakyReLU(leaky_slope),  # FC1
            spectral_norm(nn.Linear(hidden_size, hidden_size)), nn.LeakyReLU(leaky_slope),  # FC2
            spectral_norm(nn.Linear(hidden_size, hidden_size)),  # FC3
        )
        init_weights(self)

    def forward(self, image: torch.Tensor, latent: torch.Tensor, return_dict: bool = True):
        image_features = self.image_fc(self.trunk(image).mean(dim=(2, 3)))
        logits = (image_features * self.latent_fc(latent.to(image_features))).sum(dim=1)  # inner product
        return DiscriminatorOutput(logits) if return_dict else (logits,)


class ImageDiscriminator(FaceHubModel):
    """D2 (Table 1, "Discrimator2"): real photo or G's image? The trunk, GAP and one FC to a logit (eq. 3, 5).
    Spectral norm on every layer."""

    @register_to_config
    def __init__(self, image_size: int = 64, channels=(16, 32, 64, 128), leaky_slope: float = 0.2):
        super().__init__()
        validate_network_config(image_size, 1, 3, 0, channels, 1, 45.0, leaky_slope)
        self.trunk = ImageTrunk(3, channels, "leaky", leaky_slope, False, True, False)
        self.fc = spectral_norm(nn.Linear(tuple(channels)[-1], 1))
        init_weights(self)

    def forward(self, image: torch.Tensor, return_dict: bool = True):
        logits = self.fc(self.trunk(image).mean(dim=(2, 3))).squeeze(1)
        return DiscriminatorOutput(logits) if return_dict else (logits,)
