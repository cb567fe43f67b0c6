"""Inference-time batch normalisation as one per-channel affine map, folded into the convolution before it.

At inference a batch-normalisation layer uses its running statistics (Ioffe & Szegedy 2015, Algorithm 2, step 11):

    y = gamma * (x - mu) / sqrt(sigma^2 + eps) + beta = scale * x + shift,
    scale = gamma / sqrt(sigma^2 + eps),  shift = beta - mu * scale,

so it is an affine map per channel. After a convolution ``W * x + b`` it folds into the convolution's weights,
``(scale W) * x + (scale b + shift)``, which saves one pass over the activations; before one (a pre-activation
network's BN-ReLU-conv) the ReLU sits between them, but ``scale * x + shift`` then ReLU in place is one fused
multiply-add and one in-place pass instead of batch norm's own kernel and a fresh tensor for the ReLU. The networks
call these only in eval mode (:func:`uses_running_statistics`): the state dict, training and ``save_pretrained`` see
the layers as they are, and folding again on every forward pass keeps the result right after the weights change
(fine-tuning, ``load_state_dict``), for the price of scaling the weights, which is small beside the activations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def uses_running_statistics(norm: nn.Module) -> bool:
    """Whether ``norm`` is a batch norm that normalises with its running statistics now (eval mode, statistics
    tracked), the only case in which it is the fixed affine map of the module docstring."""
    return (isinstance(norm, nn.modules.batchnorm._BatchNorm) and not norm.training
            and norm.running_mean is not None and norm.running_var is not None)


def batch_norm_affine(norm: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)``, each (C,), with ``norm(x) == scale * x + shift`` per channel at inference (module
    docstring). A norm without learnt affine parameters has ``gamma = 1`` and ``beta = 0``.

    Raises:
        ValueError: ``norm`` normalises with batch statistics now (training mode, or no running statistics).
    """
    if not uses_running_statistics(norm):
        raise ValueError(f"{type(norm).__name__} folds into an affine map only in eval mode with running statistics; "
                         "call model.eval() first.")
    scale = torch.rsqrt(norm.running_var + norm.eps)
    shift = -norm.running_mean * scale
    if norm.weight is not None:
        scale = scale * norm.weight
        shift = shift * norm.weight + norm.bias
    return scale, shift


def normalize_relu(norm: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """``relu(norm(features))`` of (B, C, H, W) features; at inference (:func:`uses_running_statistics`) one
    multiply-add and an in-place ReLU (module docstring), in training ``norm`` itself. The result is a new tensor;
    ``features`` is left as it is."""
    if not uses_running_statistics(norm):
        return F.relu(norm(features), inplace=True)
    scale, shift = batch_norm_affine(norm)
    return torch.addcmul(shift.view(1, -1, 1, 1), features, scale.view(1, -1, 1, 1)).relu_()


def convolve_normalize(convolution: nn.Conv2d | nn.ConvTranspose2d, norm: nn.Module,
                       features: torch.Tensor) -> torch.Tensor:
    """``norm(convolution(features))``; at inference one convolution with the norm folded in
    (:func:`fold_into_convolution`), otherwise (training, or a ``norm`` that is not a batch norm such as
    ``nn.Identity``) the two modules one after the other."""
    if not uses_running_statistics(norm):
        return norm(convolution(features))
    if convolution.padding_mode != "zeros":  # a transposed convolution takes no other
        raise ValueError("convolve_normalize folds only zero-padded convolutions.")
    weight, bias = fold_into_convolution(convolution, norm)
    if isinstance(convolution, nn.ConvTranspose2d):
        return F.conv_transpose2d(features, weight, bias, convolution.stride, convolution.padding,
                                  convolution.output_padding, convolution.groups, convolution.dilation)
    return F.conv2d(features, weight, bias, convolution.stride, convolution.padding, convolution.dilation,
                    convolution.groups)


def fold_into_convolution(convolution: nn.Conv2d | nn.ConvTranspose2d,
                          norm: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight, bias)`` of one convolution equal to ``norm(convolution(x))`` at inference: each output channel's
    filter times its ``scale``, and its bias ``scale * b + shift`` (module docstring). A ``Conv2d`` keeps its output
    channels in the weight's first dimension, an ungrouped ``ConvTranspose2d`` in its second.

    Raises:
        ValueError: ``norm`` is not at its inference map (:func:`batch_norm_affine`), or a grouped transposed
            convolution (its output channels are split over the first two dimensions).
    """
    scale, shift = batch_norm_affine(norm)
    weight = convolution.weight
    if isinstance(convolution, nn.ConvTranspose2d):
        if convolution.groups != 1:
            raise ValueError("fold_into_convolution folds only ungrouped transposed convolutions.")
        weight = weight * scale.view(1, -1, 1, 1)
    else:
        weight = weight * scale.view(-1, 1, 1, 1)
    bias = shift if convolution.bias is None else convolution.bias * scale + shift
    return weight, bias
