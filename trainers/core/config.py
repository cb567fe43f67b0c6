"""Training configuration: one typed dataclass per method, named presets, a YAML file and ``key=value`` overrides.

A method's config is a subclass of :class:`TrainingConfig` (the method's ``config_class``): the shared fields below,
plus three typed sections of its own, ``model`` (a :class:`ModelSection`: the model preset and overrides of the
network's fields), ``data`` and ``losses``. Each config class has named presets (:attr:`TrainingConfig.presets`:
``paper``, ``cpu-small``, ...), each a nested mapping of fields over the class defaults.

A config is built in layers, each over the one before (:func:`load_config`):

1. the config class's defaults;
2. the named preset (``--preset NAME`` on the command line, else ``preset: NAME`` in the YAML file);
3. the YAML file (``--config FILE``);
4. ``key=value`` overrides, with dotted keys for the sections (``losses.gan_weight=0.01``,
   ``model.hidden_sizes=[64,64]``, ``learning_rate=3e-4``); values are parsed as YAML, so numbers, lists and
   booleans keep their types.

Every key is checked against the method's dataclasses: an unknown key or a value of the wrong type anywhere
(top level, ``model.``, ``data.``, ``losses.``) is one :class:`ConfigError` naming the dotted key, the expected type
and the close matches; values then pass each dataclass's ``__post_init__`` checks, which name the offending value.

Fields shared by every method (``TrainingConfig``):
    method: the registered method this config trains (``depthnet``, ...).
    preset: the named preset the config was built on (``null``: the class defaults).
    output_dir: where checkpoints (``checkpoints/checkpoint-<step>``), logs, ``metrics.jsonl`` and the exported
        HF-format model (``export/``) go.
    seed: seeds weights, data order and every RNG; two runs with the same seed and process count are identical.
    max_steps: optimiser steps to train for.
    train_batch_size: samples per process per micro-batch.
    gradient_accumulation_steps: micro-batches per optimiser step; ``null`` (default) takes the launcher's
        ``--gradient_accumulation_steps`` (1 when it gives none).
    mixed_precision: ``"no"``, ``"fp16"`` or ``"bf16"``; ``null`` (default) takes the launcher's
        ``--mixed_precision`` (or ``accelerate config``'s).
    learning_rate: the optimisers' base learning rate.
    adam_beta1: Adam's beta1.
    adam_beta2: Adam's beta2.
    weight_decay: AdamW's weight decay.
    max_grad_norm: clip gradients to this norm before each step; ``null`` does not clip.
    lr_scheduler: a ``diffusers.optimization`` schedule: ``constant``, ``constant_with_warmup``, ``linear``,
        ``cosine``, ``cosine_with_restarts`` or ``polynomial``.
    lr_warmup_steps: warm-up steps of ``lr_scheduler``.
    checkpointing_steps: save the full training state every N optimiser steps (also at the end and on SIGTERM).
    checkpoints_total_limit: keep at most this many checkpoints (oldest removed first); ``null`` keeps all.
    export_steps: export the HF-format model every N steps (``0``: only at the end).
    logging_steps: log losses to TensorBoard and ``metrics.jsonl`` every N steps.
    report_to: ``tensorboard`` or ``none``.
    dataloader_num_workers: worker processes per dataloader.
    resume: ``true`` continues from the newest complete checkpoint in ``output_dir`` (or a checkpoint path).
    push_to_hub: push ``export/`` to the Hub at the end.
    hub_model_id: the Hub repo id (``org/name``) to push to.
    hub_token: the Hub token (never written into logs, checkpoints or ``config.yaml``).
    hub_private: create the Hub repo private.
    init_from: a trained checkpoint (embedded id, Hub id or exported folder) whose weights start the networks it
        holds, for fine-tuning (:mod:`facehub.trainers.core.initial_weights`); ``null`` starts from scratch.
    model: the method's network: ``model.preset`` plus overrides of the network's fields.
    data: the method's data source and augmentation.
    losses: the method's loss terms and their weights.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import textwrap
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

MIXED_PRECISION = ("no", "fp16", "bf16")
#: The per-step schedules of ``diffusers.optimization.get_scheduler`` the loop applies (facehub.trainers.core.schedules).
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
SECTIONS = ("model", "data", "losses")


class ConfigError(ValueError):
    """A config that cannot train: an unknown key, a value of the wrong type or out of range, an unknown preset.

    The message is one line that names the dotted key and says what would be accepted.
    """


# --------------------------------------------------------------------------------------------------------------------
# Sections


@dataclass
class ConfigSection:
    """Base of a method's ``model``, ``data`` and ``losses`` sections: a dataclass whose fields are the section's keys.

    Sections also read like mappings (``section["key"]``, ``section.get("key")``, ``dict(section)``) for code that
    treats them as the plain dicts they used to be; new code uses attributes.
    """

    def keys(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self)]

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self):
        return iter(self.keys())

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.keys() else default

    def to_dict(self) -> dict[str, Any]:
        return {key: _plain(getattr(self, key)) for key in self.keys()}


@dataclass
class ModelSection(ConfigSection):
    """The ``model`` section: a model preset name plus overrides of the network config's fields.

    Subclasses set :attr:`model_presets` (a name -> settings table that lives with the model, e.g.
    ``DEPTHNET_PRESETS``) and declare one field per network setting, typed ``T | None`` with default ``None``
    (= the preset's value). :meth:`settings` is what builds the network.
    """

    #: The model presets this section selects from (``DEPTHNET_PRESETS``, ...).
    model_presets: ClassVar[dict[str, dict[str, Any]]] = {}

    preset: str = ""

    def __post_init__(self):
        if self.model_presets and self.preset not in self.model_presets:
            hint = _did_you_mean(self.preset, list(self.model_presets), quote=False)
            raise ConfigError(f"Got {self.preset!r} for `model.preset`; known model presets: "
                              f"{', '.join(self.model_presets)}" + (hint or "."))

    def validate(self, check, settings: dict[str, Any], other_keys: dict[str, str] | None = None) -> None:
        """Run the network's own validation ``check(**settings)``; the keys its message names get their section's
        prefix (``model.`` for this section's, ``other_keys`` maps the rest: ``{"history_size": "losses"}``)."""
        try:
            check(**settings)
        except ValueError as err:
            message = str(err)
            prefixes = {**(other_keys or {}), **{key: "model" for key in self.keys()}}
            for key, section in prefixes.items():
                message = message.replace(f"`{key}`", f"`{section}.{key}`")
            if "`model." in message:
                message = f"{message.rstrip('.')} (over the model preset {self.preset!r})."
            raise ConfigError(message) from None

    def overrides(self) -> dict[str, Any]:
        """The network fields set over the preset (those not ``None``)."""
        values = {key: getattr(self, key) for key in self.keys() if key != "preset"}
        return {key: value for key, value in values.items() if value is not None}

    def settings(self) -> dict[str, Any]:
        """The preset's settings with :meth:`overrides` applied."""
        return {**self.model_presets.get(self.preset, {}), **self.overrides()}

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        return {key: value for key, value in data.items() if key == "preset" or value is not None}


def _plain(value: Any) -> Any:
    """Tuples -> lists and sections -> dicts, recursively (what YAML and JSON can hold)."""
    if isinstance(value, ConfigSection):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------------------------------
# The shared config


@dataclass
class TrainingConfig:
    """The fields every method shares (listed in this module's docstring); methods subclass it.

    A subclass sets ``method``'s default to its name, types ``model``, ``data`` and ``losses`` with its own
    sections, may change other defaults, and lists its named presets in :attr:`presets`.
    """

    #: name -> nested mapping of fields over the class defaults (``{"cpu-small": {"max_steps": 600, ...}}``).
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    method: str
    preset: str | None = None
    output_dir: str = "runs/facehub"
    seed: int = 0
    max_steps: int = 1000
    train_batch_size: int = 32
    gradient_accumulation_steps: int | None = None
    mixed_precision: Literal["no", "fp16", "bf16"] | None = None
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
    report_to: Literal["tensorboard", "none"] = "tensorboard"
    dataloader_num_workers: int = 0
    resume: bool | str = False
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_token: str | None = None
    hub_private: bool = False
    init_from: str | None = None
    model: ConfigSection = field(default_factory=ConfigSection)
    data: ConfigSection = field(default_factory=ConfigSection)
    losses: ConfigSection = field(default_factory=ConfigSection)

    def __post_init__(self):
        positive = ("max_steps", "train_batch_size", "gradient_accumulation_steps", "checkpointing_steps",
                    "logging_steps")
        for name in positive:
            value = getattr(self, name)
            if value is not None and int(value) <= 0:
                raise ConfigError(f"Got {value} for `{name}`; it must be a positive integer.")
        if self.mixed_precision is not None and self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"Got {self.mixed_precision!r} for `mixed_precision`; expected one of {MIXED_PRECISION} "
                              "or null (the launcher's choice).")
        if self.learning_rate <= 0:
            raise ConfigError(f"Got {self.learning_rate} for `learning_rate`; it must be positive.")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"Got {getattr(self, name)} for `{name}`; expected a value in [0, 1).")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ConfigError(f"Got {self.max_grad_norm} for `max_grad_norm`; it must be positive (or null: no "
                              "clipping).")
        for name in ("lr_warmup_steps", "dataloader_num_workers", "weight_decay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"Got {getattr(self, name)} for `{name}`; it must be 0 or more.")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise ConfigError(f"Got {self.checkpoints_total_limit} for `checkpoints_total_limit`; use null or >= 1.")
        if self.export_steps < 0:
            raise ConfigError(f"Got {self.export_steps} for `export_steps`; use 0 (end only) or a positive interval.")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ConfigError(f"Got {self.lr_scheduler!r} for `lr_scheduler`; expected one of "
                              f"{', '.join(LR_SCHEDULERS)}" + (_did_you_mean(self.lr_scheduler, list(LR_SCHEDULERS),
                                                                             quote=False) or "."))
        if self.report_to not in ("tensorboard", "none"):
            raise ConfigError(f"Got {self.report_to!r} for `report_to`; expected 'tensorboard' or 'none'.")
        if self.push_to_hub and not self.hub_model_id:
            raise ConfigError("`push_to_hub` is true but `hub_model_id` is not set; give the Hub repo id (org/name).")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts) that :func:`load_config` reads back into the same config; no ``hub_token``."""
        data = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        data.pop("hub_token")  # never written into logs or checkpoints
        return data


# --------------------------------------------------------------------------------------------------------------------
# Types: checking and naming


def _type_name(annotation: Any) -> str:
    """``float``, ``int | None``, ``list[int]``, ``'no' | 'fp16' | 'bf16'``... for messages and ``--help``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return "any"
    if annotation is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin in (list, tuple) and args:
        inner = _type_name(args[0])
        fixed = origin is tuple and len(args) > 1 and args[-1] is not Ellipsis
        return f"list[{inner}] of {len(args)}" if fixed else f"list[{inner}]"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, ConfigSection):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


class _Mismatch(Exception):
    pass


def _check(value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation`` (numbers written as strings become numbers, lists become tuples where the type
    says so); :class:`_Mismatch` when it is not one."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if annotation is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arm in args:
            if arm is type(None):
                continue
            try:
                return _check(value, arm)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if value in args:
            return value
        raise _Mismatch
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if annotation is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):  # PyYAML reads 1e3 as a string
            try:
                number = float(value)
            except ValueError:
                raise _Mismatch from None
            if number.is_integer():
                return int(number)
        raise _Mismatch
    if annotation is float:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if origin is tuple and len(args) > 1 and args[-1] is not Ellipsis:  # fixed length: tuple[float, float]
            if len(value) != len(args):
                raise _Mismatch
            return tuple(_check(v, arm) for v, arm in zip(value, args, strict=True))
        items = [_check(v, args[0]) for v in value] if args else list(value)
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if isinstance(value, dict):
            return dict(value)
        raise _Mismatch
    if isinstance(value, annotation):
        return value
    raise _Mismatch


def _did_you_mean(key: str, candidates: list[str], quote: bool = True) -> str:
    """``"; did you mean `x`?"`` for the candidates closest to ``key`` (the same leaf in another section first)."""
    section, _, leaf = key.rpartition(".")
    same_leaf = [c for c in candidates if c.rpartition(".")[2] == leaf and c != key]
    same_section = [c for c in candidates if c.rpartition(".")[0] == section]
    prefixed = [c for c in same_section if c.startswith(key) and c != key]
    close = (same_leaf or difflib.get_close_matches(key, same_section, n=2, cutoff=0.75) or prefixed[:2]
             or difflib.get_close_matches(key, candidates, n=2, cutoff=0.75))
    if not close:
        return ""
    names = " or ".join(f"`{c}`" if quote else repr(c) for c in close)
    return f"; did you mean {names}?"


def config_keys(config_class: type[TrainingConfig]) -> list[str]:
    """Every dotted key of ``config_class`` (top-level fields, then ``model.``, ``data.``, ``losses.`` keys)."""
    keys = []
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        section = hints[f.name]
        if isinstance(section, type) and issubclass(section, ConfigSection):
            keys += [f"{f.name}.{sub.name}" for sub in dataclasses.fields(section)]
        else:
            keys.append(f.name)
    return keys


def _build(cls: type, values: dict[str, Any], prefix: str, method: str, all_keys: list[str]):
    """``cls(**values)`` after checking every key and type; sections recurse."""
    if not isinstance(values, dict):
        where = f"`{prefix.rstrip('.')}`" if prefix else "The config"
        raise ConfigError(f"{where} for method {method} must be a mapping of keys, got {values!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"Unknown config key `{dotted}` for method {method}" + (
                _did_you_mean(dotted, all_keys) or f"; `facehub train {method} --help` lists every key."))
        annotation = hints[key]
        if isinstance(annotation, type) and issubclass(annotation, ConfigSection):
            kwargs[key] = value if isinstance(value, annotation) else _build(
                annotation, {} if value is None else value, f"{dotted}.", method, all_keys)
            continue
        try:
            kwargs[key] = _check(value, annotation)
        except _Mismatch:
            raise ConfigError(f"Config key `{dotted}` for method {method} expects {_type_name(annotation)}, got "
                              f"{value!r} ({type(value).__name__}).") from None
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:  # a section's own check, or the network config's
        raise ConfigError(str(err)) from None


def build_checked(cls: type, values: dict[str, Any], prefix: str, method: str):
    """``cls(**values)`` for any dataclass nested in a config (a section's mapping-valued key, e.g. the synthetic
    world's settings), with the same checks and messages as the config's own keys; ``prefix`` is its dotted key
    with a trailing dot (``"data.synthetic."``)."""
    names = [f.name for f in dataclasses.fields(cls)]
    try:
        return _build(cls, values, prefix, method, [f"{prefix}{name}" for name in names])
    except ConfigError as err:  # the class's own checks name its fields without the prefix
        message = str(err)
        for name in names:
            message = message.replace(f"`{name}`", f"`{prefix}{name}`")
        raise ConfigError(message) from None


# --------------------------------------------------------------------------------------------------------------------
# Loading


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1,2]"]`` -> ``{"a": {"b": 1}, "c": [1, 2]}``."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key):
            raise ConfigError(f"Override {pair!r} is not of the form key=value (dotted keys for the sections, "
                              "e.g. losses.gan_weight=0.01).")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"Override {pair!r}: {raw!r} is not a YAML value (quote strings with spaces or "
                              "brackets).") from None
        node = result
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Override {pair!r} sets a key inside `{parent}`, which is not a section.")
        node[leaf] = value
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


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file (:class:`ConfigError` / ``FileNotFoundError`` with the path otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Config file {path} does not exist; give a YAML file (see trainers/configs/).")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {getattr(err, 'problem', err)}.") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a YAML mapping of config keys, got {type(loaded).__name__}.")
    return loaded


def config_class_for(method: str) -> type[TrainingConfig]:
    """The config dataclass of a registered method (``methods.get(name).training_class().config_class``)."""
    from facehub.trainers.core.method import get_method

    return get_method(method).config_class


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
    *,
    method: str | None = None,
    preset: str | None = None,
    config_class: type[TrainingConfig] | None = None,
) -> TrainingConfig:
    """Build and validate a method's config: class defaults, then ``preset``, ``defaults``, the YAML file at
    ``path``, then ``overrides`` (``["k=v", ...]`` or a nested dict).

    ``method`` names the method when neither the file nor the overrides do (and must agree with them when they do);
    ``preset`` wins over a ``preset:`` key in the file or the overrides. ``config_class`` skips the registry lookup.
    Raises :class:`ConfigError` (a ``ValueError``) for anything the config classes reject.
    """
    layers: list[dict[str, Any]] = [dict(defaults or {})]
    if path is not None:
        layers.append(read_yaml(path))
    if overrides:
        layers.append(parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides))
    data: dict[str, Any] = {}
    for layer in layers:
        data = merge(data, layer)
    named = data.get("method")
    if method is not None and named is not None and named != method:
        raise ConfigError(f"The config trains {named!r} but the command asked for {method!r}; fix `method:` in "
                          f"{path or 'the overrides'} or train {named}.")
    name = method or named
    if config_class is None:
        if not name:
            raise ConfigError("The config does not name its `method`; add `method: NAME` or give the method on the "
                              "command line (facehub train NAME).")
        config_class = config_class_for(name)
    name = name or config_class.__dataclass_fields__["method"].default
    preset = preset or data.get("preset")
    if preset is not None:
        if not isinstance(preset, str) or preset not in config_class.presets:
            known = ", ".join(config_class.presets) or "none"
            raise ConfigError(f"Unknown preset {preset!r} for method {name}; known presets: {known}"
                              + (_did_you_mean(str(preset), list(config_class.presets), quote=False) or "."))
        data = merge(config_class.presets[preset], data)
    data.update({"method": name, "preset": preset})
    return _build(config_class, data, "", name, config_keys(config_class) + list(SECTIONS))


# --------------------------------------------------------------------------------------------------------------------
# Help


def field_docs(cls: type) -> dict[str, str]:
    """``name -> description`` from the indented ``name: description`` lines of ``cls``'s docstring (and, for a
    :class:`TrainingConfig`, this module's), continuation lines joined."""
    import inspect
    import sys

    texts = [inspect.cleandoc(cls.__doc__ or "")]
    if isinstance(cls, type) and issubclass(cls, TrainingConfig):
        texts.append(inspect.cleandoc(sys.modules[__name__].__doc__ or ""))
    docs: dict[str, str] = {}
    for text in texts:
        current: str | None = None
        for line in text.splitlines():
            entry = re.match(r"^ {4}(\w+): (.*)$", line)
            if entry and entry.group(1) not in docs:
                current = entry.group(1)
                docs[current] = entry.group(2).strip()
            elif current and re.match(r"^ {8}\S", line):
                docs[current] += " " + line.strip()
            else:
                current = None
    return docs


def describe_config(config_class: type[TrainingConfig]) -> str:
    """Every key of ``config_class`` with its type, default and description, then the presets (``--help``)."""
    hints = typing.get_type_hints(config_class)
    shared = field_docs(TrainingConfig)
    rows: list[tuple[str, str, str, str]] = []
    own = field_docs(config_class)
    for f in dataclasses.fields(config_class):
        annotation = hints[f.name]
        if isinstance(annotation, type) and issubclass(annotation, ConfigSection):
            section_docs = field_docs(annotation)
            section_hints = typing.get_type_hints(annotation)
            default_section = annotation()
            for sub in dataclasses.fields(annotation):
                default = getattr(default_section, sub.name)
                shown = "(preset)" if isinstance(default_section, ModelSection) and sub.name != "preset" else default
                rows.append((f"{f.name}.{sub.name}", _type_name(section_hints[sub.name]), _show(shown),
                             section_docs.get(sub.name, "")))
            continue
        if f.name == "method":
            continue
        default = f.default if f.default is not dataclasses.MISSING else "-"
        rows.append((f.name, _type_name(annotation), _show(default), own.get(f.name) or shared.get(f.name, "")))
    width = max(len(r[0]) for r in rows)
    type_width = min(28, max(len(r[1]) for r in rows))
    lines = [f"config keys of {config_class.__dataclass_fields__['method'].default} (key=value on the command line, "
             "or in the YAML file; type, default):"]
    for key, kind, default, doc in rows:
        line = f"  {key:<{width}}  {kind:<{type_width}}  {default}"
        lines.append(line)
        if doc:
            lines += textwrap.wrap(doc, width=118, initial_indent=" " * (width + 6), subsequent_indent=" " * (width + 6))
    if config_class.presets:
        lines.append("")
        lines.append("presets (--preset NAME, or `preset: NAME` in the YAML file), where they differ from the defaults:")
        name = config_class.__dataclass_fields__["method"].default
        defaults = _flatten(load_config(config_class=config_class, method=name).to_dict())
        for preset, settings in config_class.presets.items():
            changed = {k: v for k, v in _flatten(settings).items() if _plain(v) != defaults.get(k)}
            flat = ", ".join(f"{k}={_show(v)}" for k, v in changed.items())
            lines += textwrap.wrap(f"{preset}: {flat}", width=118, initial_indent="  ", subsequent_indent="      ")
    return "\n".join(lines)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in SECTIONS:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)
