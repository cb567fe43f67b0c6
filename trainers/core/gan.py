"""What adversarial methods share in the loop: the generator step through a frozen discriminator, generator EMA,
and the R1 and WGAN-GP gradient penalties.

- :func:`frozen_call` evaluates a discriminator with every parameter detached and every buffer copied, so the
  generator's loss sends gradients to its input only: the discriminator's gradients stay empty, its running
  statistics (batch norm) do not move, and its DDP wrapper sees no extra forward or backward pass (the call goes to
  the unwrapped module). ``ctx.frozen(name, ...)`` in a training step is the same call on ``ctx.models[name]``.
- :class:`ExponentialMovingAverage` keeps an exponential moving average of a network's weights (the generator
  average of Karras et al. 2018, section 5 / StyleGAN's ``G_ema``); the loop updates it after every optimiser
  step, saves it in every checkpoint and exports it in place of the raw network.
- :func:`r1_penalty` (Mescheder et al. 2018, eq. 9) and :func:`gradient_penalty` (Gulrajani et al. 2017, eq. 3)
  are the usual regularisers of a discriminator's gradient.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import torch


def frozen_call(accelerator, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
    """``module(*args, **kwargs)`` with the parameters detached and the buffers copied (see the module docstring).

    ``module`` may be the prepared (DDP- or autocast-wrapped) network; it is unwrapped first. Runs under the
    accelerator's autocast, as the prepared network's own forward does.
    """
    plain = accelerator.unwrap_model(module) if accelerator is not None else module
    tensors = {name: parameter.detach() for name, parameter in plain.named_parameters()}
    tensors.update({name: buffer.detach().clone() for name, buffer in plain.named_buffers()})
    context = accelerator.autocast() if accelerator is not None else contextlib.nullcontext()
    with context:
        return torch.func.functional_call(plain, tensors, args, kwargs)


class ExponentialMovingAverage:
    """An exponential moving average of a network's weights: after each optimiser step,
    ``theta_ema <- decay * theta_ema + (1 - decay) * theta`` for every floating-point parameter; buffers (batch-norm
    statistics, counters) are copied as they are.

    ``average`` is a frozen copy of the network in eval mode (same class, so ``save_pretrained`` works on it);
    :meth:`state_dict` is its weights, which the loop writes into checkpoints as safetensors.
    """

    def __init__(self, network: torch.nn.Module, decay: float):
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"Got {decay} for the EMA decay; it must be in [0, 1) (e.g. 0.999).")
        self.decay = float(decay)
        self.average = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: torch.nn.Module) -> None:
        averaged = dict(self.average.named_parameters())
        for name, parameter in network.named_parameters():
            target = averaged[name]
            if target.dtype.is_floating_point:
                target.lerp_(parameter.detach().to(target.dtype), 1.0 - self.decay)
            else:
                target.copy_(parameter.detach())
        averaged_buffers = dict(self.average.named_buffers())
        for name, buffer in network.named_buffers():
            averaged_buffers[name].copy_(buffer.detach())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.average.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.average.load_state_dict(state)


def half_life_decay(config, half_life_images: float) -> float:
    """The EMA decay per optimiser step that halves an old weight's share every ``half_life_images`` images, counting
    every process's micro-batches (StyleGAN's ``ema_kimg``): ``0.5 ** (images per step / half_life)``; 0 (no
    averaging: the average is the network itself) for a half-life of 0."""
    from accelerate import PartialState

    if half_life_images <= 0:
        return 0.0
    images = config.train_batch_size * PartialState().num_processes * (config.gradient_accumulation_steps or 1)
    return 0.5 ** (images / half_life_images)


def r1_penalty(scores: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018, eq. 9 without the ``gamma / 2``): the batch mean of ``||grad_x D(x)||^2`` on real
    samples. ``inputs`` must require grad and ``scores = D(inputs)`` (any shape: the scores are summed per sample).
    The graph is kept, so the penalty can be back-propagated into the discriminator."""
    (gradient,) = torch.autograd.grad(scores.sum(), inputs, create_graph=True)
    return gradient.pow(2).flatten(1).sum(1).mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017, eq. 3 without ``lambda``): ``E[(||grad D(x_hat)||_2 - 1)^2]`` at
    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U[0, 1]`` per sample (drawn from ``generator`` when
    given). ``critic`` maps a batch to scores; the graph is kept for the critic's backward pass."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, generator=generator, dtype=real.dtype).to(real.device)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (gradient,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (gradient.flatten(1).norm(dim=1) - 1).pow(2).mean()
