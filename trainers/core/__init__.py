"""The shared Accelerate training loop, its configuration and the method interface."""

from facehub.trainers.core.config import ConfigError, TrainingConfig, load_config
from facehub.trainers.core.loop import StepContext, list_checkpoints, train
from facehub.trainers.core.method import TrainingMethod, UnknownMethodError, get_method, known_methods

__all__ = [
    "ConfigError",
    "StepContext",
    "TrainingConfig",
    "TrainingMethod",
    "UnknownMethodError",
    "get_method",
    "known_methods",
    "list_checkpoints",
    "load_config",
    "train",
]
