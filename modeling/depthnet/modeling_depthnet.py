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


class DepthNetModel(FaceHubModel):
    """Infers the depths of source keypoints from source and target keypoints.

    Input: source keypoints ``x_s`` and target keypoints ``x_t``, each (B, N, 2) in pixels. Both are normalised
    (centred, unit RMS radius), concatenated and passed through densely connected layers; the output layer has N
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
    ):
        super().__init__()
        validate_depthnet_config(num_keypoints, formulation, hidden_sizes, norm, negative_slope)
        layers: list[nn.Module] = []
        width = 4 * num_keypoints
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
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        if self.predicts_affine:
            with torch.no_grad():  # start the predicted affine near x' = x, y' = y
                self.head.weight[num_keypoints:].mul_(0.01)
                self.head.bias[num_keypoints:] = torch.tensor([1.0, 0, 0, 0, 0, 1.0, 0, 0])

    def forward(
        self, source_keypoints: torch.Tensor, target_keypoints: torch.Tensor, return_dict: bool = True
    ) -> DepthNetOutput | tuple:
        n = self.config.num_keypoints
        if source_keypoints.shape[-2:] != (n, 2) or target_keypoints.shape[-2:] != (n, 2):
            raise ValueError(
                f"DepthNetModel expects (B, {n}, 2) source and target keypoints, got "
                f"{tuple(source_keypoints.shape)} and {tuple(target_keypoints.shape)}."
            )
        dtype = self.head.weight.dtype
        source, source_centre, source_scale = normalize_keypoints(source_keypoints.to(dtype))
        target, target_centre, target_scale = normalize_keypoints(target_keypoints.to(dtype))
        features = self.hidden(torch.cat([source.flatten(1), target.flatten(1)], dim=1))
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
