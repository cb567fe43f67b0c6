"""What a method plugs into the shared loop, and the registry of methods.

A method is a :class:`TrainingMethod` subclass registered under its name. It builds its networks, optimisers
and dataset, computes losses in :meth:`TrainingMethod.training_step` (calling ``ctx.optimize`` for each optimiser
it steps, which is how a GAN alternates its discriminator and generator) and exports its inference bundle. The
loop in :mod:`facehub.trainers.core.loop` owns everything else.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from facehub.trainers.core.config import TrainingConfig
    from facehub.trainers.core.loop import StepContext

# name -> "module:Class", imported on demand so that `facehub train --help` stays fast.
_METHODS: dict[str, str] = {
    "cyclegan": "facehub.trainers.cyclegan:CycleGANRepairTraining",
    "depthnet": "facehub.trainers.depthnet:DepthNetTraining",
    "prn_dense": "facehub.trainers.prn_dense:PRNDenseTraining",
}


class UnknownMethodError(ValueError):
    pass


def known_methods() -> list[str]:
    return sorted(_METHODS)


def register_method(name: str, target: str) -> None:
    """Register ``"module:Class"`` under ``name`` (for methods living outside facehub)."""
    _METHODS[name] = target


def get_method(name: str) -> type[TrainingMethod]:
    if name not in _METHODS:
        raise UnknownMethodError(f"Unknown method {name!r}. Known methods: {', '.join(known_methods())}.")
    module_name, _, class_name = _METHODS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


class TrainingMethod:
    """Base class of a method's training recipe. Subclasses set ``name`` and override the hooks."""

    name: str = ""
    #: settings the method adds to :class:`TrainingConfig` defaults (learning rate, model preset, ...)
    default_config: dict[str, Any] = {}

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

    def export(self, models: dict[str, torch.nn.Module], folder: Path) -> None:
        """Write the HF-format inference bundle (``save_pretrained``) of the unwrapped ``models`` into ``folder``."""
        raise NotImplementedError

    def model_card(self) -> dict[str, Any]:
        """Keyword arguments for :func:`facehub.hub.cards.write_model_card` (description, tags, datasets...)."""
        return {"description": f"A {self.name} model trained with facehub."}
