"""Perceptual feature networks: frozen image networks whose intermediate features a reconstruction loss compares
(Deep Feature Consistent VAE, Hou et al. 2017, as seed 000's eq. 1 uses it).

Seed 000 compares VGG16's ``conv1_1``, ``conv2_1`` and ``conv3_1`` outputs. ImageNet VGG16 weights cannot be
downloaded here, so the feature network is pluggable (:func:`feature_network`):

- ``"dlib-resnet"`` (default, :class:`DlibResNetFeatures`): the first layers of dlib's face-recognition ResNet, whose
  weights ship with ``face_recognition_models`` (read by :mod:`facehub.modeling.faces.dlib_resnet`). A face network,
  so its early features are tuned to faces, closer to the paper's intent (identity-preserving reconstructions) than
  ImageNet's. Three taps at the same depths as VGG's: the stem convolution (``conv1_1``'s role, about 1/2 resolution, 32
  channels), the first residual block (1/4, 32) and the first down-sampling block (1/8, 64).
- ``"vgg16"`` (:class:`VGG16Features`): VGG16's convolutions up to ``conv3_1``, loaded from a safetensors file the
  user gives (the ``state_dict`` of torchvision's ``vgg16``, keys ``features.N.weight`` / ``.bias``; other keys are
  ignored). Tapped after the ReLU of ``conv1_1``, ``conv2_1`` and ``conv3_1``, on ImageNet-normalised input.

Both take images in [-1, 1] (NCHW RGB) and return a list of feature maps; they are frozen (no gradient to their
weights, eval mode) but differentiable with respect to the image.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_NETWORKS = ("dlib-resnet", "vgg16")
#: ImageNet mean and std of torchvision's VGG16 (on [0, 1] RGB).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: torchvision ``vgg16().features`` indices: conv1_1, conv1_2, (pool), conv2_1, conv2_2, (pool), conv3_1.
VGG16_CONVS = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256)}
VGG16_TAPS = (0, 5, 10)


class DlibResNetFeatures(nn.Module):
    """The stem and the first four residual blocks of dlib's face ResNet, tapped at three depths (module
    docstring)."""

    name = "dlib-resnet"

    def __init__(self, network=None):
        super().__init__()
        if network is None:
            from facehub.modeling.faces.identity import _shared_network, face_recognition_models_dir

            path = face_recognition_models_dir() / "dlib_face_recognition_resnet_model_v1.dat"
            stat = path.stat()
            network = _shared_network(str(path), stat.st_size, stat.st_mtime_ns)
        self.register_buffer("mean_rgb", network.mean_rgb.detach().clone().contiguous())
        self.stem = _frozen_copy(network.stem)
        self.blocks = nn.ModuleList(_frozen_copy(block) for block in network.blocks[:4])
        self.eval().requires_grad_(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = ((image + 1.0) * 127.5 - self.mean_rgb) / 256.0  # dlib's input scaling, on 0..255 pixels
        stem = F.relu(self.stem(x))
        x = F.max_pool2d(stem, 3, 2)
        first = self.blocks[0](x)
        x = first
        for block in self.blocks[1:]:
            x = block(x)
        return [stem, first, x]


class VGG16Features(nn.Module):
    """torchvision's VGG16 convolutions up to ``conv3_1`` (same module indices, so its ``state_dict`` loads),
    tapped after the ReLUs of ``conv1_1``, ``conv2_1`` and ``conv3_1``."""

    name = "vgg16"

    def __init__(self, weights: str | Path):
        super().__init__()
        from safetensors.torch import load_file

        layers: list[nn.Module] = []
        for index in range(max(VGG16_CONVS) + 1):
            if index in VGG16_CONVS:
                layers.append(nn.Conv2d(*VGG16_CONVS[index], 3, 1, 1))
            elif index in (4, 9):
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.ReLU())
        self.features = nn.Sequential(*layers, nn.ReLU())
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"VGG16 weights {path} do not exist; give a safetensors file of torchvision's "
                                    "vgg16 state_dict (keys features.N.weight / features.N.bias).")
        state = load_file(str(path))
        wanted = {f"features.{i}.{kind}" for i in VGG16_CONVS for kind in ("weight", "bias")}
        missing = sorted(wanted - set(state))
        if missing:
            raise ValueError(f"{path} is not a torchvision VGG16 state_dict: it lacks {missing[:4]}.")
        for key in sorted(wanted):
            expected = self.state_dict()[key].shape
            if tuple(state[key].shape) != tuple(expected):
                raise ValueError(f"{path}: {key} has shape {tuple(state[key].shape)}, VGG16's is {tuple(expected)}.")
        self.load_state_dict({k: state[k] for k in wanted}, strict=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = ((image + 1.0) / 2.0 - self.mean) / self.std
        taps = []
        for index, layer in enumerate(self.features[: max(VGG16_TAPS) + 1]):
            x = layer(x)
            if index in VGG16_TAPS:
                taps.append(F.relu(x))
        return taps


def _frozen_copy(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module).float().to(memory_format=torch.contiguous_format).requires_grad_(False)


def feature_network(name: str = "dlib-resnet", weights: str | Path | None = None) -> nn.Module:
    """The frozen feature network ``name`` (:data:`FEATURE_NETWORKS`); ``vgg16`` needs ``weights``."""
    if name == "dlib-resnet":
        return DlibResNetFeatures()
    if name == "vgg16":
        if weights is None:
            raise ValueError("The vgg16 feature network needs its weights: set `losses.feature_weights` to a "
                             "safetensors file of torchvision's vgg16 state_dict.")
        return VGG16Features(weights)
    raise ValueError(f"Got {name!r} for the feature network; expected one of {FEATURE_NETWORKS}.")


def feature_reconstruction_loss(features: nn.Module, real: torch.Tensor, generated: torch.Tensor,
                                reduction: str = "sum") -> torch.Tensor:
    """Seed 000 eq. 1: ``sum_n ||Phi_n(x) - Phi_n(G(z_x, y_x))||^2``, the squared L2 norm of each tap's difference
    summed over its elements and over the taps, averaged over the batch. ``reduction="mean"`` averages over each
    tap's elements and over the taps instead (a perceptual distance of order 1 whatever the image size, as seed 004's
    eq. 4 weighs it). The real image's features carry no gradient."""
    if reduction not in ("sum", "mean"):
        raise ValueError(f"Got {reduction!r} for `reduction`; expected 'sum' or 'mean'.")
    with torch.no_grad():
        targets = features(real)
    total = generated.new_zeros(())
    outputs = features(generated)
    for target, output in zip(targets, outputs, strict=True):
        squared = (output.float() - target.float()).pow(2).flatten(1)
        total = total + (squared.sum(1).mean() if reduction == "sum" else squared.mean() / len(outputs))
    return total
