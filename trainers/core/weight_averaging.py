"""``facehub average-weights``: one model whose weights are the mean of several runs' (a uniform *model soup*).

Wortsman et al., "Model soups: averaging weights of multiple fine-tuned models improves accuracy without increasing
inference time" (ICML 2022): runs fine-tuned from the same weights with other seeds (data order, augmentation draws)
end in one basin of the loss, and the mean of their weights is often better than each, at the cost of one model.
Runs trained from different initialisations do not share a basin, and their mean is no model at all: average only
runs that started from the same weights. :func:`average_model_folders` warns when the runs' recorded ``init_from``
differ; it cannot refuse them, since two names can hold the same weights (a folder and the id it was published as)
and one name other weights over time (an id republished).

Works on exported folders (``save_pretrained``: a pipeline bundle with ``model_index.json`` or a single model with
``config.json``), file by file: every ``*.safetensors`` file must exist in every folder with the same tensor names,
shapes and dtypes, and each component's ``config.json`` must agree (keys starting with ``_`` aside; a key one folder
does not write counts as the default its class loads it with, when ``model_index.json`` names a facehub class: an
export made before a setting existed is the same model as one that writes the setting's default). Floating-point
tensors (weights, normalisation statistics) are averaged in float64 and stored in their own dtype; other tensors (a
batch-norm layer's batch counter) are taken from the first folder. Everything else (configs, ``model_index.json``,
``training_config.yaml``) is copied from the first folder; its model card is not, since it describes one run:
``facehub hub push`` writes a new one, and ``averaged_from.json`` records the sources and their weights.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np

#: What :func:`average_model_folders` writes beside the weights: the folders averaged and their weights.
PROVENANCE_FILE = "averaged_from.json"


class WeightAveragingError(ValueError):
    """Folders that cannot be averaged (not exported models, different architectures or weight files)."""


def _init_from(folder: Path) -> str | None:
    """The ``init_from`` a folder's ``training_config.yaml`` records (``None``: no record)."""
    import yaml

    path = folder / "training_config.yaml"
    if not path.is_file():
        return None
    value = (yaml.safe_load(path.read_text()) or {}).get("init_from")
    return None if value is None else str(value)


def _class_defaults(folder: Path, config_name: str) -> dict:
    """The ``__init__`` defaults of the class whose ``config_name`` (``component/config.json``) this bundle's
    ``model_index.json`` names, for a facehub class; ``{}`` when there is none to find (a single network's folder, a
    class outside facehub, one that no longer exists)."""
    import importlib
    import inspect

    parts = Path(config_name).parts
    index = folder / "model_index.json"
    if len(parts) != 2 or not index.is_file():
        return {}
    entry = json.loads(index.read_text()).get(parts[0])
    if not (isinstance(entry, list) and len(entry) == 2 and str(entry[0]).startswith("facehub.")):
        return {}
    try:
        cls = getattr(importlib.import_module(str(entry[0])), str(entry[1]))
        parameters = inspect.signature(cls.__init__).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return {}
    return {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}


def average_model_folders(folders: list, out, weights: list[float] | None = None, overwrite: bool = False) -> Path:
    """Write to ``out`` the model whose every floating-point tensor is the weighted mean of the ``folders``' (module
    docstring); ``weights`` default to equal ones and are normalised to sum to 1. Returns ``out``.

    Raises:
        WeightAveragingError: fewer than two folders, a folder that is not an exported model, or different files,
            configs, tensor names, shapes or dtypes.
        FileExistsError: ``out`` exists and is not empty (unless ``overwrite``).
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    from facehub.trainers.core.initial_weights import _differences

    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise WeightAveragingError(f"Got {len(folders)} folder(s); averaging needs at least two runs' exports.")
    for folder in folders:
        if not ((folder / "model_index.json").is_file() or (folder / "config.json").is_file()):
            raise WeightAveragingError(f"{folder} is not an exported model (no model_index.json or config.json); "
                                       "give folders written by save_pretrained, e.g. a run's export/.")
    weights = [1.0] * len(folders) if weights is None else [float(w) for w in weights]
    if len(weights) != len(folders) or not all(np.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise WeightAveragingError(f"Got weights {weights} for {len(folders)} folders; give one weight >= 0 per "
                                   "folder, not all 0.")
    weights = [w / sum(weights) for w in weights]
    starts = [_init_from(folder) for folder in folders]
    if len(set(starts)) > 1:
        warnings.warn(f"The runs record different init_from ({', '.join(map(str, starts))}): the mean of runs that "
                      "started from different weights is no model. Go on only if these name the same weights.",
                      stacklevel=2)

    def files(folder: Path, pattern: str) -> list[str]:
        return sorted(str(p.relative_to(folder)) for p in folder.rglob(pattern))

    first = folders[0]
    tensor_files, config_files = files(first, "*.safetensors"), files(first, "config.json")
    if not tensor_files:
        raise WeightAveragingError(f"{first} holds no .safetensors weights to average.")
    for folder in folders[1:]:
        if files(folder, "*.safetensors") != tensor_files:
            raise WeightAveragingError(f"{folder} holds other weight files than {first}: "
                                       f"{files(folder, '*.safetensors')} against {tensor_files}.")
        for name in config_files:
            if not (folder / name).is_file():
                raise WeightAveragingError(f"{folder} has no {name}: the models are not the same architecture.")
            defaults = _class_defaults(first, name)  # a key a folder does not write is its class's default
            differences = _differences({**defaults, **json.loads((first / name).read_text())},
                                       {**defaults, **json.loads((folder / name).read_text())})
            if differences:
                raise WeightAveragingError(f"{folder / name} differs from {first / name}: the models are not the same "
                                           f"architecture ({'; '.join(differences)}).")
    # Every tensor's name, shape and dtype, checked before anything is written (a refusal loses nothing).
    for name in tensor_files:
        layouts = []
        for folder in folders:
            with safe_open(str(folder / name), framework="pt") as handle:
                layouts.append({key: (tuple(handle.get_slice(key).get_shape()), handle.get_slice(key).get_dtype())
                                for key in handle.keys()})
        for folder, layout in zip(folders[1:], layouts[1:], strict=True):
            if layout.keys() != layouts[0].keys():
                raise WeightAveragingError(f"{folder / name} has other tensors than {first / name}.")
            differing = sorted(key for key in layout if layout[key] != layouts[0][key])
            if differing:
                key = differing[0]
                raise WeightAveragingError(f"Tensor {key!r} of {name} has other shapes or dtypes across the folders: "
                                           f"{layouts[0][key]} in {first}, {layout[key]} in {folder}.")

    out = Path(out)
    if any(out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents for folder in folders):
        raise WeightAveragingError(f"{out} is one of the folders averaged or inside one; write the average elsewhere.")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} exists and is not empty; choose another folder or pass overwrite.")
        shutil.rmtree(out)
    shutil.copytree(first, out, ignore=shutil.ignore_patterns("*.safetensors", "README.md", PROVENANCE_FILE),
                    dirs_exist_ok=True)
    for name in tensor_files:
        handles = [safe_open(str(folder / name), framework="pt") for folder in folders]
        averaged = {}
        for key in sorted(handles[0].keys()):
            tensors = [handle.get_tensor(key) for handle in handles]
            if tensors[0].is_floating_point():
                mean = sum(w * t.double() for w, t in zip(weights, tensors, strict=True))
                averaged[key] = mean.to(tensors[0].dtype).contiguous()
            else:
                averaged[key] = tensors[0].contiguous()
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        save_file(averaged, str(out / name), metadata={"format": "pt"})
    (out / PROVENANCE_FILE).write_text(json.dumps({
        "method": "uniform model soup (Wortsman et al., ICML 2022): the weighted mean of every floating-point tensor",
        "sources": [str(folder) for folder in folders],
        "weights": weights,
        "init_from": starts,
    }, indent=2) + "\n")
    return out
