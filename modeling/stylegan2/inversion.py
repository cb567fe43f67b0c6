"""Embedding an image into a StyleGAN2 by optimisation (Abdal et al., "Image2StyleGAN", ICCV 2019): the styles that
make the generator reproduce an aligned crop. DiscoFaceGAN's photo editing (seed 002, Sec. 5.2) and StyleFaceUV's
rotation of a photo (seed 004, whose F_3D, F_yaw and UV generator read a stylecode) both start here.

Adam minimises the mean squared pixel error on the crop plus ``identity_weight`` times ``1 - cos`` of an identity
network's descriptors of the two crops (dlib's, for the callers here), from a given start, for ``steps`` steps. The
noise maps stay the generator's stored ones, so the result is a pure function of the styles. ``space="w+"`` gives
every layer its own style (closest reconstruction); ``space="w"`` keeps one stylecode for all layers (what a model
that reads a single ``w`` needs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facehub.modeling.stylegan2.modeling_stylegan2 import StyleGAN2Generator
from facehub.modeling.stylegan2.pipeline_stylegan2 import tensor_to_uint8

EMBED_STEPS = 60
EMBED_LEARNING_RATE = 0.02
IDENTITY_WEIGHT = 0.1
#: Side the crops are resized to for dlib's descriptor during the embedding (its own chips are 150 px; 112 costs
#: half as much and the embedding only needs the direction of the descriptor to hold).
IDENTITY_CHIP = 112


@dataclass
class Inversion:
    """Styles found for a crop: ``styles`` ((1, latent_dim) for ``"w"``, (1, num_ws, latent_dim) for ``"w+"``),
    ``reconstruction`` (the generator's RGB uint8 crop of them) and the final ``loss``."""

    styles: torch.Tensor
    reconstruction: np.ndarray
    loss: float


def dlib_identity_net():
    """dlib's face-recognition ResNet (differentiable, in torch), the identity term's network; one instance is shared
    by every descriptor of the model file."""
    from facehub.modeling.faces.identity import DlibFaceDescriptor

    return DlibFaceDescriptor().network


def identity_chips(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as 0-255 chips of :data:`IDENTITY_CHIP` px, the identity network's input."""
    return F.interpolate((images.clamp(-1, 1) + 1.0) * 127.5, size=(IDENTITY_CHIP, IDENTITY_CHIP), mode="bilinear",
                         align_corners=False)


def invert(generator: StyleGAN2Generator, crop: np.ndarray, start: torch.Tensor, space: str = "w+",
           steps: int = EMBED_STEPS, learning_rate: float = EMBED_LEARNING_RATE,
           identity_weight: float = IDENTITY_WEIGHT, identity_net=None) -> Inversion:
    """Optimise styles from ``start`` ((1, latent_dim)) to reproduce ``crop`` (RGB uint8 at the generator's
    resolution); see the module docstring."""
    if space not in ("w", "w+"):
        raise ValueError(f"Got {space!r} for `space`; expected 'w' or 'w+'.")
    size = int(generator.config.resolution)
    if crop.shape[:2] != (size, size):
        raise ValueError(f"The crop is {crop.shape[1]}x{crop.shape[0]} px; this generator draws {size}x{size}.")
    target = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    start = start.detach().reshape(1, -1)
    styles = (start if space == "w" else start[:, None].expand(-1, generator.num_ws, -1)).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([styles], lr=learning_rate)
    noise = generator.noise_maps(1, "const")

    def draw() -> torch.Tensor:
        w_plus = styles[:, None].expand(-1, generator.num_ws, -1) if space == "w" else styles
        return generator.synthesize(w_plus, noise)

    target_identity = None
    if identity_net is not None and identity_weight > 0:
        with torch.no_grad():
            target_identity = identity_net(identity_chips(target))
    loss = torch.zeros(())
    for _ in range(int(steps)):
        image = draw()
        loss = F.mse_loss(image, target)
        if target_identity is not None:
            similarity = F.cosine_similarity(identity_net(identity_chips(image)), target_identity)
            loss = loss + identity_weight * (1 - similarity).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        reconstruction = tensor_to_uint8(draw())[0]
    return Inversion(styles.detach(), reconstruction, float(loss.detach()))
