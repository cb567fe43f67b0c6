"""DepthNet keypoint network (Moniz, Beckham et al., NeurIPS 2018, section 2, Figure 1 case B)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks the base class up in this module)
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from facehub.modeling.depthnet.configuration_depthnet import validate_depthnet_config
from facehub.modeling.modeling_utils import FaceHubModel


@dataclass
class DepthNetOutput(BaseOutput):
    """What :class:`DepthNetModel` returns.

    Attributes:
        depths: (B, N) inferred source keypoint depths ``z_p`` (eq. 1), in source pixels. Depths are learnt without
            depth labels, so they are a proxy defined up to the scale the affine absorbs (section 2.3).
        affine: (B, 2, 4) predicted 3D-to-2D affine ``m`` in pixels (``formulation="explicit_affine"`` only).
    """

    depths: torch.Tensor
    affine: torch.Tensor | None = None


def normalize_keypoints(keypoints: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre (B, N, 2) keypoints on their mean and divide by their RMS radius.

    Makes the network independent of image size and face position. Returns ``(normalised, centre, scale)`` with
    centre (B, 1, 2) and scale (B, 1, 1).
    """
    centre = keypoints.mean(dim=-2, keepdim=True)
    offsets = keypoints - centre
    scale = offsets.pow(2).sum(-1).mean(-1).sqrt()[..., None, None].clamp_min(eps)
    return offsets / scale, centre, scale


class SiameseImageEncoder(nn.Module):
    """The image branch of case A (Figure 1, blue): valid 3x3 convolutions and 2x2 max-pooling ("C, P"), applied
    with the same weights to the source and the target crop; the last feature map is flattened."""

    def __init__(self, image_size: int, channels: tuple[int, ...], negative_slope: float):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels, size = 3, image_size
        for out_channels in channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, 3),  # valid convolution
                nn.BatchNorm2d(out_channels),
                nn.LeakyReLU(negative_slope),
                nn.MaxPool2d(2),
            ]
            in_channels, size = out_channels, (size - 2) // 2
        self.layers = nn.Sequential(*layers)
        self.image_size = image_size
        self.num_features = in_channels * size * size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-3:] != (3, self.image_size, self.image_size):
            raise ValueError(
                f"Expected (B, 3, {self.image_size}, {self.image_size}) crops, got {tuple(images.shape)}."
            )
        return self.layers(images).flatten(1)


class DepthNetModel(FaceHubModel):
    """Infers the depths of source keypoints from source and target keypoints.

    Input: source keypoints ``x_s`` and target keypoints ``x_t``, each (B, N, 2) in pixels. Both are normalised
    (centred, unit RMS radius), concatenated (case A: with the Siamese CNN features of the source and target crops,
    ``image_size`` set) and passed through densely connected layers; the output layer has N
    units (depths ``z_p``) for the pseudo-inverse formulation of section 2.3, or N + 8 (depths and the affine
    ``m = {m1, m2, m3, tx, m4, m5, m6, ty}``) for section 2.1.
    """

    @register_to_config
    def __init__(
        self,
        num_keypoints: int = 68,
        formulation: str = "pseudo_inverse",
        hidden_sizes: tuple[int, ...] = (256, 256, 256, 256),
        norm: str = "batch",
        negative_slope: float = 0.2,
        image_size: int | None = None,
        image_channels: tuple[int, ...] = (32, 64, 128),
    ):
        super().__init__()
        validate_depthnet_config(
            num_keypoints, formulation, hidden_sizes, norm, negative_slope, image_size, image_channels
        )
        # Case A: a Siamese CNN (shared weights) over the source and target crops, concatenated with the keypoints.
        self.image_encoder = (
            SiameseImageEncoder(image_size, tuple(image_channels), negative_slope) if image_size else None
        )
        width = 4 * num_keypoints + (2 * self.image_encoder.num_features if self.image_encoder else 0)
        layers: list[nn.Module] = []
        for hidden in hidden_sizes:
            layers.append(nn.Linear(width, hidden))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(nn.LeakyReLU(negative_slope))
            width = hidden
        self.hidden = nn.Sequential(*layers)
        self.predicts_affine = formulation == "explicit_affine"
        self.head = nn.Linear(width, num_keypoints + (8 if self.predicts_affine else 0))
        # Glorot initialisation, as in the paper. Depths must not start exactly flat: all-zero depths are a
        # stationary point of the section 2.3 loss (the solved m3 is 0 there, so d loss / d z_p vanishes).
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        if self.predicts_affine:
            with torch.no_grad():  # start the predicted affine near x' = x, y' = y
                self.head.weight[num_keypoints:].mul_(0.01)
                self.head.bias[num_keypoints:] = torch.tensor([1.0, 0, 0, 0, 0, 1.0, 0, 0])

    @property
    def uses_images(self) -> bool:
        """Case A (source and target crops feed the network) rather than case B (keypoints only)."""
        return self.image_encoder is not None

    def forward(
        self,
        source_keypoints: torch.Tensor,
        target_keypoints: torch.Tensor,
        source_images: torch.Tensor | None = None,
        target_images: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> DepthNetOutput | tuple:
        """Depths of the (B, N, 2) source keypoints given the target keypoints, both in pixels.

        Case A models also take ``source_images`` and ``target_images``: (B, 3, S, S) face crops in [-1, 1],
        ``S = config.image_size`` (any crop: the keypoints are not read off them).
        """
        n = self.config.num_keypoints
        if source_keypoints.shape[-2:] != (n, 2) or target_keypoints.shape[-2:] != (n, 2):
            raise ValueError(
                f"DepthNetModel expects (B, {n}, 2) source and target keypoints, got "
                f"{tuple(source_keypoints.shape)} and {tuple(target_keypoints.shape)}."
            )
        dtype = self.head.weight.dtype
        source, source_centre, source_scale = normalize_keypoints(source_keypoints.to(dtype))
        target, target_centre, target_scale = normalize_keypoints(target_keypoints.to(dtype))
        inputs = [source.flatten(1), target.flatten(1)]
        if self.image_encoder is not None:
            if source_images is None or target_images is None:
                raise ValueError(
                    f"This DepthNet is case A (image_size={self.config.image_size}): pass source_images and "
                    "target_images, (B, 3, S, S) crops in [-1, 1]."
                )
            inputs += [self.image_encoder(source_images.to(dtype)), self.image_encoder(target_images.to(dtype))]
        features = self.hidden(torch.cat(inputs, dim=1))
        out = self.head(features)
        depths = out[:, :n] * source_scale[..., 0]
        affine = None
        if self.predicts_affine:
            # m was predicted between the normalised frames; express it between pixel frames:
            # x_t = c_t + s_t (M p_n + t), p_n = (p - (c_s, 0)) / s_s.
            m = out[:, n:].reshape(-1, 2, 4)
            ratio = (target_scale / source_scale)[..., 0, None]  # (B, 1, 1)
            linear = ratio * m[..., :3]
            centre3 = torch.cat([source_centre, torch.zeros_like(source_centre[..., :1])], dim=-1)  # (B, 1, 3)
            translation = (
                target_centre.transpose(-1, -2)
                + target_scale * m[..., 3:]
                - linear @ centre3.transpose(-1, -2)
            )
            affine = torch.cat([linear, translation], dim=-1)
        if not return_dict:
            return (depths, affine)
        return DepthNetOutput(depths=depths, affine=affine)
