"""Batch norm at inference as an affine map, folded into convolutions: the same values as the layers run one by one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from facehub.modeling.batch_norm_folding import (
    batch_norm_affine,
    convolve_normalize,
    fold_into_convolution,
    normalize_relu,
    uses_running_statistics,
)


def trained_norm(channels: int, seed: int, affine: bool = True) -> nn.BatchNorm2d:
    """A batch norm in eval mode with running statistics and affine parameters far from their initial values, so
    that a fold on the wrong axis or with the wrong sign shows."""
    generator = torch.Generator().manual_seed(seed)
    norm = nn.BatchNorm2d(channels, affine=affine, eps=1e-3)
    norm.running_mean.copy_(torch.randn(channels, generator=generator))
    norm.running_var.copy_(torch.rand(channels, generator=generator) * 3 + 0.2)
    if affine:
        norm.weight.data.copy_(torch.randn(channels, generator=generator))
        norm.bias.data.copy_(torch.randn(channels, generator=generator))
    return norm.eval()


@pytest.mark.parametrize("affine", [True, False])
def test_the_affine_map_is_the_norm_at_inference(affine):
    norm = trained_norm(6, seed=1, affine=affine)
    features = torch.randn(2, 6, 5, 7, generator=torch.Generator().manual_seed(2))
    original = features.clone()
    scale, shift = batch_norm_affine(norm)
    expected = norm(features)
    torch.testing.assert_close(features * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1), expected)
    torch.testing.assert_close(normalize_relu(norm, features), torch.relu(expected))
    # normalize_relu writes a new tensor: its in-place ReLU leaves the input's negative values as they were.
    assert (features < 0).any() and torch.equal(features, original)


@pytest.mark.parametrize("make", [
    lambda: nn.Conv2d(6, 5, 3, padding=1, bias=False),
    lambda: nn.Conv2d(6, 5, 3, stride=2, padding=1, dilation=1, bias=True),
    lambda: nn.Conv2d(6, 4, 1, groups=2, bias=False),
    lambda: nn.ConvTranspose2d(6, 5, 4, stride=2, padding=1, bias=False),
    lambda: nn.ConvTranspose2d(6, 5, 3, stride=1, padding=1, bias=True),
], ids=["conv3x3", "conv-strided-bias", "conv-grouped", "transposed-4x4-stride2", "transposed-bias"])
def test_a_norm_folded_into_the_convolution_before_it_gives_the_same_output(make):
    torch.manual_seed(3)
    convolution = make()
    norm = trained_norm(convolution.out_channels, seed=4)
    features = torch.randn(2, 6, 9, 8).contiguous(memory_format=torch.channels_last)
    expected = norm(convolution(features))
    torch.testing.assert_close(convolve_normalize(convolution, norm, features), expected, rtol=1e-5, atol=1e-5)
    weight, bias = fold_into_convolution(convolution, norm)
    assert weight.shape == convolution.weight.shape and bias.shape == (convolution.out_channels,)


def test_in_training_the_layers_run_as_they_are_and_update_their_statistics():
    torch.manual_seed(5)
    convolution, norm = nn.Conv2d(3, 4, 3, padding=1), trained_norm(4, seed=6).train()
    features = torch.randn(4, 3, 6, 6)
    before = norm.running_mean.clone()
    reference = nn.BatchNorm2d(4, eps=1e-3).train()
    reference.load_state_dict(norm.state_dict())
    expected = reference(convolution(features))
    torch.testing.assert_close(convolve_normalize(convolution, norm, features), expected)
    assert not torch.allclose(norm.running_mean, before)  # batch statistics, as a training step uses
    assert not uses_running_statistics(norm)
    with pytest.raises(ValueError, match="eval mode"):
        batch_norm_affine(norm)
    # A norm that is not a batch norm (the last layer's nn.Identity) is applied as it is.
    torch.testing.assert_close(convolve_normalize(convolution, nn.Identity(), features), convolution(features))


def test_gradients_flow_through_the_fold_as_through_the_layers():
    torch.manual_seed(7)
    convolution, norm = nn.ConvTranspose2d(3, 4, 4, stride=2, padding=1), trained_norm(4, seed=8)
    features = torch.randn(2, 3, 5, 5)
    convolve_normalize(convolution, norm, features).square().sum().backward()
    folded = (convolution.weight.grad.clone(), norm.weight.grad.clone())
    convolution.zero_grad(), norm.zero_grad()
    norm(convolution(features)).square().sum().backward()
    torch.testing.assert_close(folded[0], convolution.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(folded[1], norm.weight.grad, rtol=1e-4, atol=1e-5)
