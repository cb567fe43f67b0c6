"""The shared Accelerate training loop, its configuration and the method interface."""

from facehub.trainers.core.checkpointing import CheckpointError
from facehub.trainers.core.config import ConfigError, TrainingConfig, load_config
from facehub.trainers.core.gan import ExponentialMovingAverage, frozen_call, gradient_penalty, r1_penalty
from facehub.trainers.core.loop import StepContext, list_checkpoints, train
from facehub.trainers.core.method import TrainingMethod, UnknownMethodError, get_method, known_methods

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ExponentialMovingAverage",
    "StepContext",
    "TrainingConfig",
    "TrainingMethod",
    "UnknownMethodError",
    "frozen_call",
    "get_method",
    "gradient_penalty",
    "known_methods",
    "list_checkpoints",
    "load_config",
    "r1_penalty",
    "train",
]
