"""The yaw direction in StyleGAN2's W space (seed 004, Sec. 3.2.2), found as InterFaceGAN finds attribute directions.

"We randomly sample 200K stylecodes. Then, we estimate their yaw angles using F_3D. We pick the stylecodes with the
highest 2% yaw angles as one class, and the stylecodes with the lowest 2% yaw angles as the other class ... using
linear Support Vector Machine ... we obtain d for yaw angles by taking the normal to the decision hyperplane."

:func:`linear_svm_direction` does exactly this with a linear SVM solved here in its primal form (the squared hinge
loss of LIBLINEAR's default, Fan et al. 2008):

``min_{v, b}  1/2 |v|^2 + C * sum_i max(0, 1 - y_i (v . x_i + b))^2``

by full-batch L-BFGS, on the stylecodes centred and scaled by their spread (so ``C`` means the same for any W);
``d`` is ``v`` mapped back to W and normalised, signed so that moving along it raises the yaw.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: Sec. 3.2.2: the top and bottom 2% of yaw form the two classes.
PAPER_FRACTION = 0.02


@dataclass
class YawDirection:
    """The result of :func:`linear_svm_direction`.

    Attributes:
        direction: (style_dim,) unit normal of the separating hyperplane in W, pointing to larger yaw.
        accuracy: fraction of the two classes the hyperplane separates correctly.
        margin_yaw: (low, high) the yaw thresholds of the two classes (radians).
        count: stylecodes per class.
    """

    direction: torch.Tensor
    accuracy: float
    margin_yaw: tuple[float, float]
    count: int


def linear_svm_direction(styles: torch.Tensor, yaw: torch.Tensor, fraction: float = PAPER_FRACTION,
                         c: float = 1.0, max_iterations: int = 200) -> YawDirection:
    """The yaw direction of (N, style_dim) stylecodes whose yaws (N,) were estimated (module docstring)."""
    styles = styles.detach().double()
    yaw = yaw.detach().double().reshape(-1)
    if styles.ndim != 2 or len(styles) != len(yaw):
        raise ValueError(f"Got stylecodes {tuple(styles.shape)} and yaws {tuple(yaw.shape)}; expected (N, D) and (N,).")
    if not 0.0 < fraction <= 0.5:
        raise ValueError(f"Got {fraction} for `fraction`; expected (0, 0.5] (the paper: 0.02).")
    count = int(len(yaw) * fraction)
    if count < 2:
        raise ValueError(f"{len(yaw)} stylecodes give {count} per class at fraction {fraction}; sample more "
                         "(the paper samples 200,000).")
    order = torch.argsort(yaw)
    low, high = order[:count], order[-count:]
    x = torch.cat([styles[low], styles[high]])
    y = torch.cat([-torch.ones(count, dtype=x.dtype), torch.ones(count, dtype=x.dtype)])
    centre, scale = x.mean(0), x.std(0).clamp(min=1e-12)
    x = (x - centre) / scale
    weights = torch.zeros(x.shape[1], dtype=x.dtype, requires_grad=True)
    bias = torch.zeros((), dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=int(max_iterations), line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)

    def objective():
        optimizer.zero_grad()
        hinge = (1.0 - y * (x @ weights + bias)).clamp(min=0.0)
        loss = 0.5 * weights.square().sum() + c * hinge.square().sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    with torch.no_grad():
        accuracy = float(((x @ weights + bias).sign() == y).double().mean())
        # the hyperplane v.(x - centre)/scale + b = 0 has normal v / scale in W
        direction = weights / scale
        direction = direction / direction.norm().clamp(min=1e-12)
    return YawDirection(direction.float(), accuracy, (float(yaw[low].max()), float(yaw[high].min())), count)
