"""StyleFaceUV's first two training stages (seed 004, Sec. 3.2), as functions of (stylecode, coefficient) pairs.

- :func:`fit_style_to_coefficients` (Sec. 3.2.1): F_3D by the L1 distance between predicted and fitted
  coefficients (standardised, so every coefficient weighs alike), Adam with the learning rate decayed by cosine to a
  thousandth of its start (the paper decays 1e-3 to a small value over 22 epochs of batch 16).
- :func:`estimate_yaw_direction` (Sec. 3.2.2): the yaw of many stylecodes read by F_3D, then the linear SVM on the
  top and bottom 2%.
- :func:`fit_yaw_step` (eq. 2): F_yaw, taught by F_3D itself: a stylecode moved by a known step ``s`` along ``d``
  has the yaw ``a`` that F_3D reads from it, and F_yaw learns to give ``s`` back from ``(w, a)`` (L1 in units of
  the largest step).

The pairs come from a trained StyleGAN2 (stylecodes, and the face-fitting regressor's reading of their images) or,
in oracle mode, from :class:`~facehub.trainers.data.stylefaceuv_oracle.OracleStyleGenerator` with exact
coefficients.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from facehub.modeling.stylefaceuv import (
    PAPER_FRACTION,
    PAPER_HIDDEN_MULTIPLIERS,
    StyleToCoefficients,
    YawDirection,
    YawStepMapper,
    linear_svm_direction,
)


def _cosine_lr(optimizer: torch.optim.Optimizer, start: float, step: int, steps: int, floor: float = 1e-3) -> None:
    scale = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * step / max(1, steps)))
    for group in optimizer.param_groups:
        group["lr"] = start * scale


def fit_style_to_coefficients(styles: torch.Tensor, lam: dict[str, torch.Tensor], steps: int = 2000,
                              batch_size: int = 64, learning_rate: float = 1e-3,
                              hidden_multipliers=PAPER_HIDDEN_MULTIPLIERS, seed: int = 0,
                              progress: bool = True) -> tuple[StyleToCoefficients, float]:
    """F_3D fitted to (N, style_dim) stylecodes and their coefficients; returns the model and its last batch L1."""
    torch.manual_seed(seed)
    model = StyleToCoefficients(style_dim=int(styles.shape[1]),
                                factor_dims={f: int(v.shape[1]) for f, v in lam.items()},
                                hidden_multipliers=list(hidden_multipliers))
    model.set_normalisation(lam)
    targets = model.standardise(lam).detach()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    loss = torch.zeros(())
    for step in tqdm(range(int(steps)), desc="F_3D", disable=not progress, leave=False):
        _cosine_lr(optimizer, learning_rate, step, steps)
        chosen = torch.randint(0, len(styles), (batch_size,), generator=generator)
        loss = (model.standardised(styles[chosen]) - targets[chosen]).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval(), float(loss.detach())


@torch.no_grad()
def estimate_yaw_direction(f3d: StyleToCoefficients, styles: torch.Tensor,
                           fraction: float = PAPER_FRACTION) -> YawDirection:
    """The SVM yaw direction of ``styles`` (the paper samples 200,000) with yaws read by F_3D."""
    yaw = torch.cat([f3d(chunk)["pose"][:, 0] for chunk in styles.split(4096)])
    return linear_svm_direction(styles, yaw, fraction)


def fit_yaw_step(f3d: StyleToCoefficients, direction: torch.Tensor, styles: torch.Tensor, max_step: float,
                 steps: int = 1000, batch_size: int = 128, learning_rate: float = 1e-3, num_hidden_layers: int = 2,
                 seed: int = 0, progress: bool = True) -> tuple[YawStepMapper, float]:
    """F_yaw for the yaw ``direction``, with steps drawn in [-max_step, max_step] (module docstring)."""
    torch.manual_seed(seed)
    model = YawStepMapper(style_dim=int(styles.shape[1]), num_hidden_layers=num_hidden_layers)
    model.direction.copy_(direction / direction.norm())
    model.step_scale.fill_(float(max_step))
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    f3d.requires_grad_(False)
    loss = torch.zeros(())
    for step in tqdm(range(int(steps)), desc="F_yaw", disable=not progress, leave=False):
        _cosine_lr(optimizer, learning_rate, step, steps)
        chosen = torch.randint(0, len(styles), (batch_size,), generator=generator)
        w = styles[chosen]
        shift = (2.0 * torch.rand(batch_size, generator=generator) - 1.0) * max_step
        with torch.no_grad():
            reached = f3d(w + shift[:, None] * model.direction)["pose"][:, 0]
        loss = ((model(w, reached) - shift) / max_step).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval(), float(loss.detach())


#: Sec. 4.1: lambda_mv, the symmetric view's weight in eq. 8-9.
PAPER_LAMBDA_MV = 0.75


def uv_reconstruction_loss(renderer, uv_generator, styles: torch.Tensor, lam: dict[str, torch.Tensor],
                           target: torch.Tensor, symmetric_styles: torch.Tensor,
                           symmetric_lam: dict[str, torch.Tensor], symmetric_target: torch.Tensor,
                           lambda_mv: float = PAPER_LAMBDA_MV, overlap_weight: float | None = None,
                           max_displacement: float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 5 on both views, combined as eq. 8: ``L(original) + lambda_mv * L(symmetric)``, each view rendered with
    the UV maps the generator draws from its own stylecode, weighted by :func:`~facehub.modeling.stylefaceuv.
    rendering.symmetric_view_weights`. Returns the loss and its parts."""
    from facehub.modeling.stylefaceuv.rendering import (
        MAX_DISPLACEMENT,
        OVERLAP_WEIGHT,
        photometric_loss,
        symmetric_view_weights,
        uv_maps,
    )

    both = uv_generator(torch.cat([styles, symmetric_styles]), input_is_w=True, noise_mode="const").images
    diffuse, displacement = uv_maps(both, MAX_DISPLACEMENT if max_displacement is None else max_displacement)
    count = len(styles)
    original = renderer.render(lam, diffuse[:count], displacement[:count])
    mirrored = renderer.render(symmetric_lam, diffuse[count:], displacement[count:])
    weights, symmetric_weights = symmetric_view_weights(
        original, mirrored, diffuse.shape[-1], OVERLAP_WEIGHT if overlap_weight is None else overlap_weight)
    first = photometric_loss(original.image, target, weights)
    second = photometric_loss(mirrored.image, symmetric_target, symmetric_weights)
    loss = first + lambda_mv * second
    return loss, {"photometric": float(first.detach()), "photometric_symmetric": float(second.detach())}
