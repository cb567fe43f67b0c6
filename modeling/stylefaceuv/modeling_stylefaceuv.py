"""StyleFaceUV's stylecode-to-coefficient networks (seed 004, Sec. 3.2): F_3D and F_yaw.

**F_3D** (Sec. 3.2.1), :class:`StyleToCoefficients`: ``lambda = F_3D(w)``, the morphable-model coefficients of the
face StyleGAN2 draws from stylecode ``w``. "F_3D(w) comprises two fully-connected multi-layer perceptrons, both
containing three hidden layers with 9 * 512, 6 * 512, 3 * 512 hidden units ... The first MLP uses Tanh ... the
second uses ELU with alpha = 1.0. Concatenating the mapping results of these two parts forms the full 3DMM
coefficients." The hidden widths here are ``(9, 6, 3)`` times the stylecode width (512 in the paper). The paper
does not say which coefficients each MLP gives; here the Tanh MLP gives the face itself (identity shape and albedo,
expression) and the ELU MLP the scene (SH lighting, pose), with facehub's coefficient layout, the factors of
:data:`facehub.modeling.disco_facegan.FACTORS` (identity 49, expression 14, lighting 27, pose 3 in radians).
Both read and write coefficients standardised by the statistics of the pairs it was fitted on (buffers
``coefficient_mean`` / ``coefficient_std``), so the L1 loss of the paper weighs every coefficient on one scale.

**F_yaw** (Sec. 3.2.2, eq. 2), :class:`YawStepMapper`: ``s_yaw = F_yaw(w, a)``, the step along the yaw direction
``d`` that turns the face of ``w`` to yaw ``a``: ``w' = w + F_yaw(w, a) * d``. The paper gives no architecture;
here an MLP (two hidden ELU layers of the stylecode's width) reads ``w`` and ``a`` (radians).
:func:`facehub.modeling.stylefaceuv.yaw_direction.linear_svm_direction` finds ``d``.
"""

from __future__ import annotations

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks the base class up in this module)
from diffusers.configuration_utils import register_to_config
from torch import nn

from facehub.modeling.disco_facegan.configuration_disco_facegan import FACTORS
from facehub.modeling.modeling_utils import FaceHubModel

#: Which MLP of F_3D gives which factors (see the module docstring).
FACE_FACTORS = ("identity", "expression")
SCENE_FACTORS = ("lighting", "pose")
#: Sec. 3.2.1: hidden widths, in units of the stylecode width.
PAPER_HIDDEN_MULTIPLIERS = (9, 6, 3)


def _mlp(in_features: int, widths: tuple[int, ...], out_features: int, activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_features
    for hidden in widths:
        layers += [nn.Linear(width, hidden), activation()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class StyleToCoefficients(FaceHubModel):
    """F_3D: stylecode (N, style_dim) -> morphable-model coefficients (module docstring).

    Args:
        style_dim: width of the stylecode ``w`` (the StyleGAN2's latent width).
        factor_dims: coefficient width per factor (default: facehub's, identity 49, expression 14, lighting 27,
            pose 3).
        hidden_multipliers: hidden widths of both MLPs in units of ``style_dim`` ((9, 6, 3) in the paper).
    """

    @register_to_config
    def __init__(self, style_dim: int = 512, factor_dims: dict[str, int] | None = None,
                 hidden_multipliers: tuple[int, ...] | list[int] = PAPER_HIDDEN_MULTIPLIERS):
        super().__init__()
        from facehub.modeling.disco_facegan.configuration_disco_facegan import factor_dims as default_factor_dims

        dims = dict(factor_dims or default_factor_dims())
        if set(dims) != set(FACTORS) or any(int(v) <= 0 for v in dims.values()):
            raise ValueError(f"Got {dims} for `factor_dims`; expected a positive width for each of {list(FACTORS)}.")
        if int(style_dim) <= 0 or not hidden_multipliers or any(int(m) <= 0 for m in hidden_multipliers):
            raise ValueError(f"Got style_dim={style_dim}, hidden_multipliers={hidden_multipliers}; expected positive "
                             "values (the paper: 512 and (9, 6, 3)).")
        self.factor_dims = {f: int(dims[f]) for f in FACTORS}
        widths = tuple(int(m) * int(style_dim) for m in hidden_multipliers)
        face_width = sum(self.factor_dims[f] for f in FACE_FACTORS)
        scene_width = sum(self.factor_dims[f] for f in SCENE_FACTORS)
        self.face = _mlp(int(style_dim), widths, face_width, nn.Tanh)
        self.scene = _mlp(int(style_dim), widths, scene_width, nn.ELU)
        total = sum(self.factor_dims.values())
        self.register_buffer("coefficient_mean", torch.zeros(total))
        self.register_buffer("coefficient_std", torch.ones(total))

    @property
    def order(self) -> tuple[str, ...]:
        """The factors in the order of the flat coefficient vector (the face MLP's, then the scene MLP's)."""
        return (*FACE_FACTORS, *SCENE_FACTORS)

    def flatten(self, lam: dict[str, torch.Tensor]) -> torch.Tensor:
        """(N, total) coefficients of a factor dict, in :attr:`order`."""
        return torch.cat([lam[f].reshape(len(lam[f]), -1) for f in self.order], dim=1)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """The factor dict of (N, total) coefficients in :attr:`order`."""
        parts = flat.split([self.factor_dims[f] for f in self.order], dim=1)
        return dict(zip(self.order, parts, strict=True))

    @torch.no_grad()
    def set_normalisation(self, lam: dict[str, torch.Tensor]) -> None:
        """Standardise with the mean and standard deviation of these coefficients (the training pairs')."""
        flat = self.flatten(lam).double()
        self.coefficient_mean.copy_(flat.mean(0).to(self.coefficient_mean))
        self.coefficient_std.copy_(flat.std(0).clamp(min=1e-6).to(self.coefficient_std))

    def standardised(self, styles: torch.Tensor) -> torch.Tensor:
        """(N, total) standardised coefficients of (N, style_dim) stylecodes: what the L1 loss compares."""
        return torch.cat([self.face(styles), self.scene(styles)], dim=1)

    def standardise(self, lam: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self.flatten(lam) - self.coefficient_mean) / self.coefficient_std

    def forward(self, styles: torch.Tensor) -> dict[str, torch.Tensor]:
        """The coefficients (factor dict; pose in radians) of (N, style_dim) stylecodes."""
        return self.unflatten(self.standardised(styles) * self.coefficient_std + self.coefficient_mean)


class YawStepMapper(FaceHubModel):
    """F_yaw: (stylecode, target yaw in radians) -> the step along the yaw direction (eq. 2; module docstring).

    Args:
        style_dim: width of the stylecode.
        num_hidden_layers: hidden ELU layers of width ``style_dim``.
    """

    @register_to_config
    def __init__(self, style_dim: int = 512, num_hidden_layers: int = 2):
        super().__init__()
        if int(style_dim) <= 0 or not 1 <= int(num_hidden_layers) <= 8:
            raise ValueError(f"Got style_dim={style_dim}, num_hidden_layers={num_hidden_layers}; expected a positive "
                             "width and 1 to 8 layers.")
        self.net = _mlp(int(style_dim) + 2, (int(style_dim),) * int(num_hidden_layers), 1, nn.ELU)
        self.register_buffer("direction", torch.zeros(int(style_dim)))
        self.register_buffer("step_scale", torch.ones(()))

    def forward(self, styles: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
        """(N,) steps ``s`` for (N, style_dim) stylecodes and (N,) target yaws (radians)."""
        yaw = torch.as_tensor(yaw, dtype=styles.dtype, device=styles.device).reshape(-1).expand(len(styles))
        features = torch.cat([styles, torch.sin(yaw)[:, None], torch.cos(yaw)[:, None]], dim=1)
        return self.net(features)[:, 0] * self.step_scale

    def turn(self, styles: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
        """Eq. 2: ``w' = w + F_yaw(w, a) * d``, the stylecodes of the same faces at yaw ``a`` (radians)."""
        return styles + self(styles, yaw)[:, None] * self.direction
