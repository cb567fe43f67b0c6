"""The HF-style base classes every facehub network and pipeline derives from.

``FaceHubModel`` is a diffusers ``ModelMixin`` + ``ConfigMixin``: ``save_pretrained`` writes ``config.json`` and
``diffusion_pytorch_model.safetensors``; ``from_pretrained`` accepts an embedded default id (``"facehub/depthnet"``),
a local folder or a Hub id (see :func:`facehub.hub.resolve`). Before diffusers touches the files we check that the
folder was saved by the class being loaded and that its safetensors file is whole, so a wrong or damaged checkpoint
fails with a message naming the file and the expected class instead of a shape mismatch deep inside torch.

``FaceHubModel.from_pretrained`` also:

- loads a network out of a pipeline bundle: given the bundle's root (``model_index.json``, no ``config.json``) it
  takes the one component saved as its class, and otherwise names the ``subfolder=`` to pass;
- checks the weights against the model the config describes before any tensor is read: missing, unexpected or
  wrongly shaped keys (weights of another model under this class's config) raise :class:`CheckpointError` listing
  them, where diffusers would hand back a model whose parameters are empty placeholders; a config that cannot be
  built, or describes more than :data:`MAX_PARAMETERS` parameters, is refused the same way.

``FaceHubPipeline`` does the same for ``DiffusionPipeline`` bundles (``model_index.json`` plus one subfolder per
network). Both pass the Hub options (``revision``, ``token``, ``cache_dir``, ``local_files_only``,
``force_download``, ``prefer_hub``) to :func:`facehub.hub.resolve`, whose docstring says which copy of a name wins.
Weights are only ever read from safetensors: nothing here unpickles a file.
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

_HUB_KWARGS = ("revision", "token", "cache_dir", "local_files_only", "force_download", "prefer_hub")

#: Largest config.json / model_index.json read (bytes): real ones are under 2 KB.
MAX_CONFIG_BYTES = 1_000_000
#: Largest network a config may describe (parameters): 2 billion, 8 GB in float32, far above any facehub model.
MAX_PARAMETERS = 2_000_000_000


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


#: Largest image side (pixels) a network config may ask for: far above any face crop, small enough to allocate.
MAX_IMAGE_SIDE = 4096
#: Most repeated layers or blocks a config may ask for: each is a Python object built one by one, so a corrupt
#: count (1e9 blocks) would hang before any size check could run.
MAX_REPEATS = 256


def check_at_most(name: str, value, limit: int, unit: str) -> None:
    """``ValueError`` naming the field when a config value exceeds what facehub builds (see :data:`MAX_IMAGE_SIDE`,
    :data:`MAX_REPEATS`); the message follows the configs' own ``Got ... for `field``` form."""
    if float(value) > limit:
        raise ValueError(f"Got {value} for `{name}`; at most {limit} {unit}.")


class CheckpointError(ValueError):
    """A checkpoint folder cannot be loaded by the requested class (wrong class, missing or damaged files)."""


def _read_json(path: Path, expected_class: str) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(
            f"{path} does not exist: {path.parent} is not a saved {expected_class} "
            f"(expected {path.name} written by {expected_class}.save_pretrained)."
        )
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise CheckpointError(
            f"{path} is {size:,} bytes, more than any config facehub writes (at most {MAX_CONFIG_BYTES:,}); it cannot "
            f"be loaded as {expected_class}."
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


def _component_subfolder(folder: Path, class_name: str) -> str:
    """The subfolder of the bundle at ``folder`` whose component was saved as ``class_name``; a
    :class:`CheckpointError` naming the candidates when there is none or more than one."""
    index = _read_json(folder / PIPELINE_INDEX_NAME, class_name)
    components = {
        name: spec[1]
        for name, spec in index.items()
        if not name.startswith("_") and isinstance(spec, list) and len(spec) == 2 and spec[1] is not None
    }
    matches = sorted(name for name, saved in components.items() if saved == class_name)
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(f"{name!r} ({saved})" for name, saved in sorted(components.items())) or "none"
    if matches:
        raise CheckpointError(
            f"{folder} is a {index.get('_class_name', 'pipeline')} bundle with {len(matches)} {class_name} components "
            f"({', '.join(map(repr, matches))}); pass subfolder= one of them, e.g. "
            f"{class_name}.from_pretrained(..., subfolder={matches[0]!r})."
        )
    raise CheckpointError(
        f"{folder} is a {index.get('_class_name', 'pipeline')} bundle without a {class_name} component (its "
        f"components: {listing}); pass subfolder= the one you want with the class that saved it, or a folder saved by "
        f"{class_name}.save_pretrained."
    )


def _weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    with safe_open(str(path), framework="pt") as handle:
        return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}


def _listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_weights_match_config(cls: type, folder: Path, config: dict[str, Any]) -> None:
    """Build ``cls`` from ``config`` without memory (on the meta device) and compare its state dict with the
    safetensors header of ``folder``: :class:`CheckpointError` listing missing, unexpected and wrongly shaped keys,
    or saying why the config cannot be built (an invalid or absurdly large one)."""
    import torch

    config_path = folder / CONFIG_NAME
    try:
        with torch.device("meta"):
            model = cls.from_config(config)
    except (ValueError, TypeError, RuntimeError, OverflowError, MemoryError, NotImplementedError) as err:
        raise CheckpointError(
            f"{config_path} describes a {cls.__name__} that cannot be built ({type(err).__name__}: {err}). Fix the "
            f"config or re-export the model with {cls.__name__}.save_pretrained."
        ) from err
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_PARAMETERS:
        raise CheckpointError(
            f"{config_path} describes a {cls.__name__} with {count:,} parameters, more than the {MAX_PARAMETERS:,} "
            "facehub loads; the config is corrupt or not meant for this class."
        )
    weights_path = folder / WEIGHTS_NAME
    found = _weight_shapes(weights_path)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(key for key in set(expected) & set(found) if expected[key] != found[key])
    if not (missing or unexpected or wrong):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if wrong:
        shapes = [f"{key} {list(found[key])} in the file, {list(expected[key])} in the model" for key in wrong]
        problems.append(f"{len(wrong)} key(s) of the wrong shape: {_listing(shapes)}")
    raise CheckpointError(
        f"{weights_path} does not hold the weights of the {cls.__name__} that {config_path.name} describes: "
        f"{'; '.join(problems)}. The weights belong to another model; re-export the folder with "
        f"{cls.__name__}.save_pretrained."
    )


class FaceHubModel(ModelMixin, ConfigMixin):
    """Base for every facehub network: a diffusers model whose loading is checked before it happens.

    ``from_pretrained`` accepts a folder saved by this class, a pipeline bundle holding exactly one component of this
    class (or any bundle with ``subfolder=``), an embedded id or a Hub id; see the module docstring for the checks.

    diffusers' pipeline loader finds a component's loading method by looking ``ModelMixin`` up in the module named
    in ``model_index.json``, so every ``modeling_<method>.py`` also imports ``ModelMixin`` by name.
    """

    config_name = CONFIG_NAME

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        hub_kwargs = {k: kwargs.pop(k) for k in _HUB_KWARGS if k in kwargs}
        subfolder = kwargs.pop("subfolder", None) or ""
        root = resolve(pretrained_model_name_or_path, **hub_kwargs)
        if not subfolder and not (root / CONFIG_NAME).is_file() and (root / PIPELINE_INDEX_NAME).is_file():
            subfolder = _component_subfolder(root, cls.__name__)
        folder = root / subfolder
        config = check_class(folder / CONFIG_NAME, cls.__name__)
        check_safetensors(folder / WEIGHTS_NAME, cls.__name__)
        check_weights_match_config(cls, folder, config)
        kwargs.pop("use_safetensors", None)
        model = super().from_pretrained(str(folder), use_safetensors=True, **kwargs)
        _align_tensors(model)
        return model


def _align_tensors(model) -> None:
    """Give every parameter and buffer its own 64-byte-aligned storage.

    diffusers hands back tensors that are views into the safetensors file's bytes, at the offsets the header gives,
    so most are not 64-byte aligned. CPU matrix kernels take other code paths on unaligned data and round
    differently: a loaded model then computes about 1e-7 (relative) away from the model that was saved. A copy in
    fresh storage makes the loaded model compute exactly what the saved one did.
    """
    import torch

    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.device.type == "cpu" and tensor.numel() and tensor.data_ptr() % 64:
                tensor.data = tensor.data.clone()


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
