"""The conditional depth discriminator of DepthNet+GAN (Moniz, Beckham et al. 2018, section 3.2, Table 2).

"A conditional discriminator that is conditioned on 2D keypoints and discriminates GT from estimated depth values."
The keypoint registration loss of section 2.3 cannot see a change of the depths ``z -> a z + b x + c y + d``: the
solved affine (eq. 3) absorbs it. That blind spot is why the unsupervised DepthNet's depths correlate only weakly with
the truth (DepthCorr 0.41 in Table 2). The discriminator closes it: depths only pass as real if they have the
shape real faces have for those 2D keypoints.

Both inputs are made invariant to what the registration cannot fix anyway: the 2D keypoints are centred and scaled
to unit RMS radius (:func:`~facehub.modeling.depthnet.modeling_depthnet.normalize_keypoints`), the depths are
centred on their mean and divided by the same scale. What remains for the discriminator is the depth shape and its
relation to the 2D layout (and so to the head pose).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks the base class up in this module)
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from facehub.modeling.depthnet.modeling_depthnet import normalize_keypoints
from facehub.modeling.modeling_utils import FaceHubModel


@dataclass
class DepthDiscriminatorOutput(BaseOutput):
    """logits: (B,) real-vs-estimated logits (positive: looks like ground-truth depth)."""

    logits: torch.Tensor


def normalize_depths(keypoints: torch.Tensor, depths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, 2) keypoints and (B, N) depths -> normalised keypoints and depths centred and divided by the keypoints'
    RMS radius (the same unit for x, y and z)."""
    normalized, _, scale = normalize_keypoints(keypoints)
    centred = depths - depths.mean(dim=-1, keepdim=True)
    return normalized, centred / scale[..., 0]


class DepthDiscriminatorModel(FaceHubModel):
    """MLP over (normalised 2D keypoints, normalised depths) -> one logit per face.

    Fields: ``num_keypoints`` (N), ``hidden_sizes`` (widths of the dense layers), ``negative_slope`` (LeakyReLU).
    No batch normalisation: real and estimated depths arrive in separate batches, and batch statistics would let
    the discriminator tell them apart by the batch instead of the face.
    """

    @register_to_config
    def __init__(self, num_keypoints: int = 68, hidden_sizes: tuple[int, ...] = (256, 256), negative_slope: float = 0.2):
        super().__init__()
        if num_keypoints < 4:
            raise ValueError(f"Got {num_keypoints} for `num_keypoints`; expected at least 4.")
        if len(hidden_sizes) == 0 or any(int(h) <= 0 for h in hidden_sizes):
            raise ValueError(f"Got {list(hidden_sizes)} for `hidden_sizes`; expected one or more positive widths.")
        layers: list[nn.Module] = []
        width = 3 * num_keypoints
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(negative_slope)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, keypoints: torch.Tensor, depths: torch.Tensor, return_dict: bool = True):
        """``keypoints`` (B, N, 2) pixels, ``depths`` (B, N) in the same pixel units (z towards the camera)."""
        n = self.config.num_keypoints
        if keypoints.shape[-2:] != (n, 2) or depths.shape[-1:] != (n,) or depths.shape[0] != keypoints.shape[0]:
            raise ValueError(
                f"Expected (B, {n}, 2) keypoints and (B, {n}) depths, got {tuple(keypoints.shape)} and "
                f"{tuple(depths.shape)}."
            )
        dtype = self.layers[0].weight.dtype
        normalized, centred = normalize_depths(keypoints.to(dtype), depths.to(dtype))
        logits = self.layers(torch.cat([normalized.flatten(1), centred], dim=1))[:, 0]
        if not return_dict:
            return (logits,)
        return DepthDiscriminatorOutput(logits=logits)
