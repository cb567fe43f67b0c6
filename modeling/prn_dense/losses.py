"""The PRN-Dense training loss: 1 - SSIM weighted by PRNet's face mask (seed 003, eq. 4-9), or PRNet's weighted MSE.

SSIM (seed 003 eq. 4-8, after Wang et al. 2004, its reference [15]) compares two images through luminance, contrast
and structure, ``SSIM = l^alpha c^beta s^gamma`` (eq. 4), with

- ``l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)`` (eq. 5),
- ``c = (2 sigma_x sigma_y + C2) / (sigma_x^2 + sigma_y^2 + C2)`` (eq. 6),
- ``s = (sigma_xy + C3) / (sigma_x sigma_y + C3)`` (eq. 7),

where ``mu`` is the mean of the N values, ``sigma`` their standard deviation with the ``1 / (N - 1)`` normalisation
and ``sigma_xy`` their covariance, also over ``N - 1``. With ``alpha = beta = gamma = 1`` and ``C3 = C2 / 2`` this is
eq. 8, ``SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))``, and
the paper trains with ``C1 = 0.026`` and ``C2 = 0.058``.

Eq. 9 multiplies SSIM by the per-pixel weight matrix ``W`` (``Loss = 1 - SSIM(y_hat, y) . W``), so SSIM is taken
per pixel, over a local window (Wang et al.'s SSIM map), and :func:`prn_loss` averages the map with the weights:
``Loss = 1 - sum(W SSIM) / sum(W)`` over pixels and the three position channels (each channel has its own map).
Dividing by ``sum(W)`` makes the loss 0 for a perfect prediction whatever the mask's scale (16 : 4 : 3 : 0 is a
ratio). The paper gives no window; we use a uniform 7 x 7 window (``window_size``), which with the ``N - 1``
normalisation is exactly ``skimage.metrics.structural_similarity``'s default computation of these formulas.
Borders are padded by reflection; PRNet's mask is 0 there.

The weight mask is PRNet's (Feng et al., ECCV 2018, section 3.3; seed 003 Fig. 5): 16 on the 68 landmarks, 4 on the
eyes, nose and mouth, 3 on the rest of the face, 0 outside, :func:`facehub.modeling.geometry.topology.prnet_weight_mask`
in facehub's UV layout. A pixel of weight 0 still enters the SSIM of weighted pixels less than ``window_size // 2``
away, so only the mask's interior far from the face is truly ignored.

Two properties worth knowing when training:

- position maps in crop units are smooth: on a real face their variances in a 7 x 7 window have medians of 7e-5
  (256 px maps) to 3e-4 (128 px), far below ``C2 = 0.058``. The contrast-structure factor then stays close to 1 and
  the loss is driven by the luminance term, ``1 - l = (mu_x - mu_y)^2 / (mu_x^2 + mu_y^2 + C1)``: a squared error of
  the local means, scaled down where positions are far from the crop origin;
- the SSIM of a face pixel near the footprint's edge sees target values up to ``window_size // 2`` pixels outside
  it. Make targets with ``mesh_to_uv_position_map(..., fill_band >= window_size // 2)`` (the linear extension of
  the mesh) so those are not the zeros of an unfilled map.

``kind="mse"`` is PRNet's loss instead: the W-weighted mean of the squared errors, ``sum(W (y_hat - y)^2) / sum(W)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: Seed 003, section 2.3: "C1 = 0.026, C2 = 0.058" (with C3 = C2 / 2).
PAPER_SSIM_C1 = 0.026
PAPER_SSIM_C2 = 0.058
#: Side of the uniform SSIM window (the paper does not give one; 7 is skimage's default for these formulas).
DEFAULT_SSIM_WINDOW = 7
LOSS_KINDS = ("ssim", "mse")


def ssim_map(
    predicted: torch.Tensor,
    target: torch.Tensor,
    c1: float = PAPER_SSIM_C1,
    c2: float = PAPER_SSIM_C2,
    window_size: int = DEFAULT_SSIM_WINDOW,
) -> torch.Tensor:
    """Per-pixel, per-channel SSIM (eq. 8) of two (B, C, H, W) maps over a uniform ``window_size`` window.

    Means over the window's N pixels, variances and covariance over N - 1 (the paper's formulas). Returns
    (B, C, H, W); borders use reflection padding. Differentiable with respect to both inputs.
    """
    if predicted.shape != target.shape or predicted.dim() != 4:
        raise ValueError(
            f"ssim_map expects two (B, C, H, W) tensors of one shape, got {tuple(predicted.shape)} and "
            f"{tuple(target.shape)}."
        )
    if window_size < 2 or window_size % 2 == 0:
        raise ValueError(f"Got {window_size} for `window_size`; it must be an odd integer of at least 3.")
    if min(predicted.shape[-2:]) <= window_size // 2:
        raise ValueError(
            f"Maps of {tuple(predicted.shape[-2:])} pixels are too small for a {window_size} x {window_size} window."
        )
    x, y = predicted, target.to(predicted.dtype)
    n = window_size * window_size
    pad = window_size // 2

    def local_mean(values: torch.Tensor) -> torch.Tensor:
        padded = F.pad(values, (pad, pad, pad, pad), mode="reflect")
        return F.avg_pool2d(padded, window_size, stride=1)

    mu_x, mu_y = local_mean(x), local_mean(y)
    # Second moments of values centred on a per-map constant: the same (co)variances, less float cancellation.
    shift = 0.5 * (x + y).mean(dim=(-2, -1), keepdim=True).detach()
    xc, yc = x - shift, y - shift
    mx, my = mu_x - shift, mu_y - shift
    unbiased = n / (n - 1.0)
    var_x = (local_mean(xc * xc) - mx * mx) * unbiased
    var_y = (local_mean(yc * yc) - my * my) * unbiased
    cov_xy = (local_mean(xc * yc) - mx * my) * unbiased
    numerator = (2.0 * mu_x * mu_y + c1) * (2.0 * cov_xy + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return numerator / denominator


def _weights_like(weight_mask, reference: torch.Tensor) -> torch.Tensor:
    """(H, W), (B, H, W) or (B, 1, H, W) weights (array or tensor) -> a tensor broadcastable to ``reference``."""
    weights = torch.as_tensor(np.asarray(weight_mask) if not isinstance(weight_mask, torch.Tensor) else weight_mask)
    weights = weights.to(device=reference.device, dtype=reference.dtype)
    if weights.dim() == 2:
        weights = weights[None, None]
    elif weights.dim() == 3:
        weights = weights[:, None]
    if weights.dim() != 4 or weights.shape[-2:] != reference.shape[-2:] or weights.shape[1] not in (1, reference.shape[1]):
        raise ValueError(
            f"`weight_mask` of shape {tuple(weights.shape)} does not match position maps of shape "
            f"{tuple(reference.shape)}; pass (H, W), (B, H, W) or (B, 1, H, W) weights, e.g. "
            f"prnet_weight_mask({reference.shape[-1]})."
        )
    if bool((weights < 0).any()):
        raise ValueError("`weight_mask` has negative weights; PRNet's weights are 16, 4, 3 and 0.")
    return weights


def prn_loss(
    predicted: torch.Tensor,
    target: torch.Tensor,
    weight_mask,
    kind: str = "ssim",
    *,
    c1: float = PAPER_SSIM_C1,
    c2: float = PAPER_SSIM_C2,
    window_size: int = DEFAULT_SSIM_WINDOW,
) -> torch.Tensor:
    """Scalar loss between (B, 3, S, S) predicted and target UV position maps (module docstring).

    Args:
        weight_mask: (S, S), (B, S, S) or (B, 1, S, S) non-negative weights (numpy or torch), usually
            ``prnet_weight_mask(S)``.
        kind: ``"ssim"``, seed 003's ``1 - sum(W SSIM) / sum(W)`` (eq. 9); or ``"mse"``, PRNet's
            ``sum(W (y_hat - y)^2) / sum(W)``.
        c1, c2, window_size: the SSIM constants (paper: 0.026, 0.058) and window side (``"ssim"`` only).
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f"Got {kind!r} for `kind`; expected one of {LOSS_KINDS}.")
    if predicted.shape != target.shape or predicted.dim() != 4:
        raise ValueError(
            f"prn_loss expects (B, 3, S, S) predicted and target maps of one shape, got {tuple(predicted.shape)} "
            f"and {tuple(target.shape)}."
        )
    weights = _weights_like(weight_mask, predicted).expand_as(predicted)
    total = weights.sum()
    if float(total) <= 0:
        raise ValueError("`weight_mask` is zero everywhere; nothing would be learnt.")
    if kind == "mse":
        return (weights * (predicted - target.to(predicted.dtype)).square()).sum() / total
    similarity = ssim_map(predicted, target, c1=c1, c2=c2, window_size=window_size)
    return 1.0 - (weights * similarity).sum() / total
