"""The HF-style base classes every facehub network and pipeline derives from.

``FaceHubModel`` is a diffusers ``ModelMixin`` + ``ConfigMixin``: ``save_pretrained`` writes ``config.json`` and
``diffusion_pytorch_model.safetensors``; ``from_pretrained`` accepts an embedded default id (``"facehub/depthnet"``),
a local folder or a Hub id (see :func:`facehub.hub.resolve`). Before diffusers touches the files we check that the
folder was saved by the class being loaded and that its safetensors file is whole, so a wrong or damaged checkpoint
fails with a message naming the file and the expected class instead of a shape mismatch deep inside torch.

``FaceHubPipeline`` does the same for ``DiffusionPipeline`` bundles (``model_index.json`` plus one subfolder per
network). Weights are only ever read from safetensors: nothing here unpickles a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from diffusers import DiffusionPipeline, ModelMixin
from diffusers.configuration_utils import ConfigMixin
from safetensors import SafetensorError, safe_open

from facehub.hub.resolver import resolve

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
CONFIG_NAME = "config.json"
PIPELINE_INDEX_NAME = "model_index.json"

_HUB_KWARGS = ("revision", "token")


def preset_settings(presets: dict[str, dict[str, Any]], preset: str, overrides: dict[str, Any], config_class: type,
                    label: str) -> dict[str, Any]:
    """The settings of the named ``preset`` with ``overrides`` applied, for the dataclass ``config_class``.

    Raises ``ValueError`` naming an unknown preset (with the known ones) or override fields ``config_class`` lacks
    (``label`` names the method in that message).
    """
    import dataclasses

    if preset not in presets:
        raise ValueError(f"Got {preset!r} for `preset`; known presets: {sorted(presets)}.")
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"Unknown {label} setting(s) {unknown}; known settings: {sorted(known)}.")
    return {**presets[preset], **overrides}


class CheckpointError(ValueError):
    """A checkpoint folder cannot be loaded by the requested class (wrong class, missing or damaged files)."""


def _read_json(path: Path, expected_class: str) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(
            f"{path} does not exist: {path.parent} is not a saved {expected_class} "
            f"(expected {path.name} written by {expected_class}.save_pretrained)."
        )
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); it cannot be loaded as {expected_class}.") from err


def check_class(path: Path, expected_class: str, also_accepted: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read ``config.json`` / ``model_index.json`` and make sure ``_class_name`` is ``expected_class`` (or one of
    ``also_accepted``: pipelines of one bundle that share their components)."""
    config = _read_json(path, expected_class)
    saved = config.get("_class_name")
    if saved != expected_class and saved not in also_accepted:
        raise CheckpointError(
            f"{path} was saved by {saved or 'an unknown class'}, not {expected_class}. Load it with "
            f"{saved}.from_pretrained, or pass a checkpoint made for {expected_class}."
        )
    return config


def check_safetensors(path: Path, expected_class: str) -> None:
    """Open the safetensors header and every tensor slice, so truncation or corruption fails here, clearly."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the {expected_class} checkpoint has no weights file.")
    size = path.stat().st_size
    try:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                handle.get_slice(key).get_shape()
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} ({size} bytes) is not a readable safetensors file ({err}); it may be truncated or corrupt. "
            f"Re-download or re-export the {expected_class} checkpoint."
        ) from err


class FaceHubModel(ModelMixin, ConfigMixin):
    """Base for every facehub network: a diffusers model whose loading is checked before it happens.

    diffusers' pipeline loader finds a component's loading method by looking ``ModelMixin`` up in the module named
    in ``model_index.json``, so every ``modeling_<method>.py`` also imports ``ModelMixin`` by name.
    """

    config_name = CONFIG_NAME

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        hub_kwargs = {k: kwargs.pop(k) for k in _HUB_KWARGS if k in kwargs}
        subfolder = kwargs.pop("subfolder", None) or ""
        folder = resolve(pretrained_model_name_or_path, **hub_kwargs) / subfolder
        check_class(folder / CONFIG_NAME, cls.__name__)
        check_safetensors(folder / WEIGHTS_NAME, cls.__name__)
        kwargs.pop("use_safetensors", None)
        return super().from_pretrained(str(folder), use_safetensors=True, **kwargs)


class FaceHubPipeline(DiffusionPipeline):
    """Base for every facehub pipeline: ``from_pretrained`` resolves embedded ids and checks ``model_index.json``.

    One checkpoint bundle can serve several pipelines (``facehub/depthnet`` is loaded by the keypoint registration,
    rotation, frontalization and swap pipelines): a subclass lists the pipeline classes whose saved bundles it also
    loads in ``loads_bundles_of``; components it does not use are ignored, optional ones it lacks stay ``None``.
    """

    loads_bundles_of: tuple[str, ...] = ()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        hub_kwargs = {k: kwargs.pop(k) for k in _HUB_KWARGS if k in kwargs}
        folder = resolve(pretrained_model_name_or_path, **hub_kwargs)
        index = check_class(folder / PIPELINE_INDEX_NAME, cls.__name__, cls.loads_bundles_of)
        for name, spec in index.items():
            if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
                continue
            if not (folder / name).is_dir():
                raise CheckpointError(
                    f"{folder / PIPELINE_INDEX_NAME} lists component {name!r} but {folder / name} is missing."
                )
        kwargs.pop("use_safetensors", None)
        return super().from_pretrained(str(folder), use_safetensors=True, **kwargs)
