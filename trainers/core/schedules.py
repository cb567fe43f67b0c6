"""Per-optimiser learning-rate schedules applied by the loop.

Every optimiser's rate at optimiser step ``k`` (0-based, the ``k``-th update) is

    ``base_rate * config_schedule(k) * method_schedule(k)``

where ``base_rate`` is the rate the method built the optimiser with, ``config_schedule`` the config's
``lr_scheduler`` (any LambdaLR schedule of ``diffusers.optimization``, with ``lr_warmup_steps`` and ``max_steps``)
and ``method_schedule`` the factor a method may give that optimiser
(:meth:`~facehub.trainers.core.TrainingMethod.learning_rate_schedules`, e.g. CycleGAN's linear decay over the
second half, PRN-Dense's steps). The loop writes the rate into the optimiser's ``param_groups`` before each step,
so the rate it logs (``lr/<optimiser>``, read back from ``param_groups``) is the rate applied. Schedules are pure
functions of the step: resuming needs no scheduler state.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Schedule = Callable[[int], float]


def config_schedule(name: str, warmup_steps: int, max_steps: int, base_rate: float = 1.0) -> Schedule:
    """The factor of ``diffusers.optimization.get_scheduler(name)`` at each optimiser step."""
    from diffusers.optimization import get_scheduler

    probe = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_rate)
    try:
        scheduler = get_scheduler(name, optimizer=probe, num_warmup_steps=warmup_steps,
                                  num_training_steps=max_steps)
    except ValueError as error:
        raise ValueError(f"Got {name!r} for `lr_scheduler`: {error}") from None
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if not lambdas:
        raise ValueError(f"Got {name!r} for `lr_scheduler`; it is not a per-step schedule: use constant, "
                         "constant_with_warmup, linear, cosine, cosine_with_restarts or polynomial.")
    return lambdas[0]


class OptimizerSchedule:
    """Sets one optimiser's rates for a step: ``initial_lr * factor(step)`` in every parameter group."""

    def __init__(self, optimizer: torch.optim.Optimizer, factors: list[Schedule]):
        self.optimizer, self.factors = optimizer, factors
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])

    def factor(self, step: int) -> float:
        value = 1.0
        for schedule in self.factors:
            value *= float(schedule(step))
        return value

    def apply(self, step: int) -> list[float]:
        factor = self.factor(step)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        return self.get_last_lr()

    def get_last_lr(self) -> list[float]:
        """The rates in the optimiser now (the applied ones)."""
        return [group["lr"] for group in self.optimizer.param_groups]


def build_schedules(
    optimizers: dict[str, torch.optim.Optimizer],
    config,
    method_schedules: dict[str, Schedule] | None = None,
) -> dict[str, OptimizerSchedule]:
    """One :class:`OptimizerSchedule` per optimiser (see the module docstring)."""
    method_schedules = dict(method_schedules or {})
    unknown = sorted(set(method_schedules) - set(optimizers))
    if unknown:
        raise ValueError(f"Learning-rate schedules given for {unknown}, which are not optimisers of this method "
                         f"({sorted(optimizers)}).")
    schedules = {}
    for name, optimizer in optimizers.items():
        base = optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"])
        factors = [config_schedule(config.lr_scheduler, config.lr_warmup_steps, config.max_steps, base)]
        if name in method_schedules:
            factors.append(method_schedules[name])
        schedules[name] = OptimizerSchedule(optimizer, factors)
    return schedules
