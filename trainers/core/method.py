"""What a method plugs into the shared loop.

A method is a :class:`TrainingMethod` subclass, declared in the method registry (:mod:`facehub.methods`, the
``training`` entry of its ``MethodSpec``). It names its config dataclass (:attr:`TrainingMethod.config_class`, a
:class:`~facehub.trainers.core.config.TrainingConfig` subclass with typed ``model``, ``data`` and ``losses``
sections and named presets), builds its networks, optimisers and dataset, computes losses in
:meth:`TrainingMethod.training_step` (calling ``ctx.optimize`` for each optimiser it steps, which is how a GAN
alternates its discriminator and generator) and exports its inference bundle. The loop in
:mod:`facehub.trainers.core.loop` owns everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch.utils.data import Dataset

from facehub.methods import UnknownMethodError
from facehub.trainers.core.config import TrainingConfig

if TYPE_CHECKING:
    from facehub.trainers.core.loop import StepContext

__all__ = ["TrainingMethod", "UnknownMethodError", "get_method", "known_methods"]


def known_methods() -> list[str]:
    """Names of the registered methods that ``facehub train`` can train."""
    from facehub import methods

    return methods.trainable()


def get_method(name: str) -> type[TrainingMethod]:
    """The training recipe of method ``name`` (``methods.get(name).training_class()``); an unknown name raises
    :class:`~facehub.methods.UnknownMethodError` listing the known ones."""
    from facehub import methods

    return methods.get(name).training_class()


class TrainingMethod:
    """Base class of a method's training recipe. Subclasses set ``name`` and override the hooks."""

    name: str = ""
    #: The method's config dataclass: a :class:`TrainingConfig` subclass with its sections, defaults and presets.
    config_class: ClassVar[type[TrainingConfig]] = TrainingConfig

    def __init__(self, config: TrainingConfig):
        self.config = config

    def build_models(self) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    def build_optimizers(self, models: dict[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        """Default: one Adam over every model's parameters, named ``"main"``."""
        c = self.config
        params = [p for m in models.values() for p in m.parameters() if p.requires_grad]
        return {
            "main": torch.optim.AdamW(
                params, lr=c.learning_rate, betas=(c.adam_beta1, c.adam_beta2), weight_decay=c.weight_decay
            )
        }

    def build_dataset(self) -> Dataset:
        raise NotImplementedError

    def collate(self) -> Callable | None:
        return None

    def training_step(self, batch: Any, ctx: StepContext) -> dict[str, float]:
        """Compute losses, call ``ctx.optimize(name, loss)`` per optimiser, return scalars to log."""
        raise NotImplementedError

    #: Write a sample grid (:meth:`sample_images`) every N optimiser steps and at the end; 0 writes none.
    sample_steps: int = 0

    def learning_rate_schedules(self) -> dict[str, Callable[[int], float]]:
        """Per optimiser name, a factor on its base rate at optimiser step ``k`` (0-based), applied on top of the
        config's ``lr_scheduler`` (:mod:`facehub.trainers.core.schedules`). Default: none."""
        return {}

    def ema_decays(self) -> dict[str, float]:
        """Networks to keep an exponential moving average of, with its decay (``{"generator": 0.999}``): the loop
        updates it after each optimiser step, checkpoints it and exports it in place of the network. Default: none."""
        return {}

    def sample_images(self, models: dict[str, torch.nn.Module], batch: Any) -> dict[str, torch.Tensor] | None:
        """Rows of a sample grid (row name -> (N, C, H, W) in [-1, 1]) from the unwrapped ``models`` (EMA copies
        where there are) in eval mode, without gradients, on the step's ``batch``. Default: no samples."""
        return None

    def export(self, models: dict[str, torch.nn.Module], folder: Path) -> None:
        """Write the HF-format inference bundle (``save_pretrained``) of the unwrapped ``models`` into ``folder``."""
        raise NotImplementedError

    def model_card(self) -> dict[str, Any]:
        """Keyword arguments for :func:`facehub.hub.cards.write_model_card` (description, tags, datasets...)."""
        return {"description": f"A {self.name} model trained with facehub."}
