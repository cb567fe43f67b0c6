"""Training configuration: one YAML file per run, overridable from the command line.

Every field below may appear at the top level of the YAML file; ``model`` and ``data`` hold the method's own
settings (a model preset name plus overrides, and the data source). Command-line overrides are ``key=value`` pairs
with dotted keys for nested fields (``model.hidden_sizes=[64,64]``, ``learning_rate=3e-4``); values are parsed as
YAML, so numbers, lists and booleans keep their types.

Fields:
    method: the registered method this config trains (``depthnet``, ...).
    output_dir: where checkpoints (``checkpoints/checkpoint-<step>``), logs, ``metrics.jsonl`` and the exported
        HF-format model (``export/``) go.
    seed: seeds weights, data order and every RNG; two runs with the same seed and process count are identical.
    max_steps: optimiser steps to train for.
    train_batch_size: samples per process per micro-batch.
    gradient_accumulation_steps: micro-batches per optimiser step.
    mixed_precision: ``"no"``, ``"fp16"`` or ``"bf16"`` (passed to ``Accelerator``).
    learning_rate, adam_beta1, adam_beta2, weight_decay, max_grad_norm: optimiser settings (methods may read more).
    lr_scheduler: any ``diffusers.optimization`` schedule name (``constant``, ``cosine``, ``linear``, ...), with
        ``lr_warmup_steps``.
    checkpointing_steps: save the full training state every N optimiser steps (also at the end and on SIGTERM).
    checkpoints_total_limit: keep at most this many checkpoints (oldest removed first); ``null`` keeps all.
    export_steps: export the HF-format model every N steps (``0``: only at the end).
    logging_steps: log losses to TensorBoard and ``metrics.jsonl`` every N steps.
    report_to: ``tensorboard`` or ``none``.
    dataloader_num_workers: worker processes per dataloader.
    resume: ``true`` continues from the newest complete checkpoint in ``output_dir`` (or a checkpoint path).
    push_to_hub, hub_model_id, hub_token, hub_private: push ``export/`` to the Hub at the end.
    model, data, losses: the method's own settings: a model preset name plus overrides, the data source, and the
        loss terms with their weights (e.g. ``losses.gan_weight`` for DepthNet+GAN); each method documents its keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass
class TrainingConfig:
    method: str
    output_dir: str = "runs/facehub"
    seed: int = 0
    max_steps: int = 1000
    train_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"
    learning_rate: float = 1e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = 3
    export_steps: int = 0
    logging_steps: int = 10
    report_to: str = "tensorboard"
    dataloader_num_workers: int = 0
    resume: bool | str = False
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_token: str | None = None
    hub_private: bool = False
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    losses: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        positive = ("max_steps", "train_batch_size", "gradient_accumulation_steps", "checkpointing_steps",
                    "logging_steps")
        for name in positive:
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"Got {getattr(self, name)} for `{name}`; it must be a positive integer.")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"Got {self.mixed_precision!r} for `mixed_precision`; expected one of {MIXED_PRECISION}.")
        if self.learning_rate <= 0:
            raise ValueError(f"Got {self.learning_rate} for `learning_rate`; it must be positive.")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise ValueError(f"Got {self.checkpoints_total_limit} for `checkpoints_total_limit`; use null or >= 1.")
        if self.export_steps < 0:
            raise ValueError(f"Got {self.export_steps} for `export_steps`; use 0 (end only) or a positive interval.")
        if self.report_to not in ("tensorboard", "none"):
            raise ValueError(f"Got {self.report_to!r} for `report_to`; expected 'tensorboard' or 'none'.")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("`push_to_hub` is true but `hub_model_id` is not set; give the Hub repo id (org/name).")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("hub_token")  # never written into logs or checkpoints
        return data


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1,2]"]`` -> ``{"a": {"b": 1}, "c": [1, 2]}``."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"Override {pair!r} is not of the form key=value (dotted keys for nested fields).")
        node = result
        *parents, leaf = key.strip().split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = yaml.safe_load(raw)
    return result


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``update`` wins."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> TrainingConfig:
    """Build a :class:`TrainingConfig` from method ``defaults``, then a YAML file, then overrides."""
    data: dict[str, Any] = dict(defaults or {})
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Config file {path} does not exist.")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a YAML mapping of config fields, got {type(loaded).__name__}.")
        data = merge(data, loaded)
    if overrides:
        data = merge(data, parse_overrides(overrides) if isinstance(overrides, list) else overrides)
    known = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"Unknown config field(s) {unknown}; known fields: {sorted(known)}.")
    if "method" not in data:
        raise ValueError("The config does not name its `method`.")
    return TrainingConfig(**{key: _coerce(key, value) for key, value in data.items()})


_NUMERIC = {"int": int, "float": float}


def _coerce(name: str, value: Any) -> Any:
    """Numbers written as YAML strings (PyYAML reads ``3e-4`` as a string) become the field's number type."""
    kind = str(TrainingConfig.__dataclass_fields__[name].type).split(" | ")[0]
    if kind in _NUMERIC and isinstance(value, str):
        try:
            return _NUMERIC[kind](float(value)) if kind == "int" and float(value).is_integer() else _NUMERIC[kind](value)
        except ValueError as err:
            raise ValueError(f"Got {value!r} for `{name}`; expected a number.") from err
    return value
