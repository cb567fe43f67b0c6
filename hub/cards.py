"""Model cards: the ``README.md`` that travels with every exported facehub model.

A card is YAML front matter (read by the Hub and by mirrors such as olah) followed by a Markdown body:

- front matter: ``library_name: facehub``, ``tags`` (``facehub``, ``diffusers``, ``face``, the method name, the
  pipeline tag), ``pipeline_tag``, ``license``, optional ``base_model`` and ``datasets``, and a ``model-index`` with
  the metrics of the last evaluation when the folder holds an ``eval_results.json``;
- body: a title, the one-line description (the line :func:`facehub.hub.list_embedded` shows), what the model is and
  which paper it implements, how to load it, the exact training command when it is known, and a metrics table.

``eval_results.json`` is what an evaluation run leaves in the model folder::

    {"task": "face-alignment", "dataset": "aflw2000-3d", "metrics": {"nme": 3.59}}

(optional keys: ``dataset_name`` for a readable dataset name, ``split``; a list of such objects is accepted too).
"""

from __future__ import annotations

import json
import os
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from facehub import methods

CARD_NAME = "README.md"
EVAL_RESULTS_NAME = "eval_results.json"
PIPELINE_INDEX_NAME = "model_index.json"
CONFIG_NAME = "config.json"
LIBRARY_NAME = "facehub"
DEFAULT_LICENSE = "apache-2.0"


class NotAModelFolderError(ValueError):
    """A folder that should hold an exported model does not (missing, or no ``model_index.json`` / ``config.json``)."""


@dataclass(frozen=True)
class ModelFolderInfo:
    """What an exported model folder holds.

    Attributes:
        class_name: ``_class_name`` of ``model_index.json`` (a pipeline) or ``config.json`` (a single network).
        is_pipeline: ``True`` for a pipeline bundle (one subfolder per component).
        components: for a pipeline, component name -> class name (``{"depth_net": "DepthNetModel"}``).
        method: the method folder the classes come from (``depthnet``), when it can be told.
        component_methods: for a pipeline, component name -> the method folder its class comes from (a bundle may
            carry another method's network: StyleFaceUV on a DiscoFaceGAN backbone holds its ``FactorVAEs``).
    """

    class_name: str
    is_pipeline: bool
    components: dict[str, str]
    method: str | None
    component_methods: dict[str, str | None] = field(default_factory=dict)


def check_model_folder(folder: str | os.PathLike) -> Path:
    """Return ``folder`` as a resolved path if it holds a saved model, else raise :class:`NotAModelFolderError`."""
    path = Path(folder).expanduser()
    if not path.exists():
        raise NotAModelFolderError(
            f"{path} does not exist. Pass the folder written by save_pretrained (the export step of training)."
        )
    if not path.is_dir():
        raise NotAModelFolderError(f"{path} is a file, not a model folder. Pass the folder that holds it.")
    if not (path / PIPELINE_INDEX_NAME).is_file() and not (path / CONFIG_NAME).is_file():
        raise NotAModelFolderError(
            f"{path} holds neither {PIPELINE_INDEX_NAME} nor {CONFIG_NAME}, so it is not a saved facehub model. "
            "Pass the folder written by save_pretrained (a pipeline's folder, or a network's folder)."
        )
    return path.resolve()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise NotAModelFolderError(f"{path} is not valid JSON ({err}); re-export the model.") from err
    if not isinstance(data, dict):
        raise NotAModelFolderError(f"{path} holds a {type(data).__name__}, not a JSON object; re-export the model.")
    return data


def _method_of_module(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == ["facehub", "modeling"] and parts[2] not in {"geometry", "faces"}:
        return parts[2]
    return None


def _method_defining(class_name: str) -> str | None:
    """The registered method whose pipelines or networks include ``class_name``; failing that, the
    ``facehub.modeling`` package whose source defines it (read, not imported)."""
    spec = methods.method_of_class(class_name)
    if spec is not None:
        return spec.name
    try:
        import facehub.modeling as modeling
    except ImportError:  # pragma: no cover - the hub package is installed with the rest
        return None
    pattern = re.compile(rf"^class {re.escape(class_name)}\b", re.MULTILINE)
    for package in pkgutil.iter_modules(modeling.__path__):
        if not package.ispkg or package.name in {"geometry", "faces"}:
            continue
        for root in modeling.__path__:
            for source in sorted((Path(root) / package.name).glob("*.py")):
                if pattern.search(source.read_text(encoding="utf-8", errors="replace")):
                    return package.name
    return None


def describe_model_folder(folder: str | os.PathLike) -> ModelFolderInfo:
    """Read class name, components and method of an exported model folder (no model code is imported)."""
    path = check_model_folder(folder)
    if (path / PIPELINE_INDEX_NAME).is_file():
        index = _read_json(path / PIPELINE_INDEX_NAME)
        components: dict[str, str] = {}
        component_methods: dict[str, str | None] = {}
        for name, spec in index.items():
            if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or spec[1] is None:
                continue
            components[name] = str(spec[1])
            component_methods[name] = _method_of_module(str(spec[0] or ""))
        class_name = index.get("_class_name")
        if not class_name:
            raise NotAModelFolderError(f"{path / PIPELINE_INDEX_NAME} has no _class_name; re-export the pipeline.")
        method = _method_defining(str(class_name)) or next((m for m in component_methods.values() if m), None)
        return ModelFolderInfo(str(class_name), True, components, method, component_methods)
    config = _read_json(path / CONFIG_NAME)
    class_name = config.get("_class_name")
    if not class_name:
        raise NotAModelFolderError(
            f"{path / CONFIG_NAME} has no _class_name, so it was not written by a facehub model's save_pretrained."
        )
    return ModelFolderInfo(str(class_name), False, {}, _method_defining(str(class_name)))


def load_eval_results(folder: str | os.PathLike) -> list[EvalResult]:
    """Read ``eval_results.json`` of ``folder`` into ``EvalResult`` rows (``[]`` when there is none).

    Raises:
        ValueError: naming the file and the missing or malformed key.
    """
    path = Path(folder) / EVAL_RESULTS_NAME
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}). Re-run the evaluation or delete the file.") from err
    entries = data if isinstance(data, list) else [data]
    results = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: expected an object with task, dataset and metrics, got {entry!r}.")
        missing = [key for key in ("task", "dataset", "metrics") if key not in entry]
        if missing:
            raise ValueError(
                f"{path} lacks {', '.join(repr(k) for k in missing)}; expected "
                '{"task": ..., "dataset": ..., "metrics": {"name": value}}.'
            )
        metrics = entry["metrics"]
        if not isinstance(metrics, dict) or not metrics:
            raise ValueError(f"{path}: 'metrics' must be a non-empty object of name -> value, got {metrics!r}.")
        for metric, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(f"{path}: metric {metric!r} has value {value!r}; expected a number or a string.")
            results.append(
                EvalResult(
                    task_type=str(entry["task"]),
                    dataset_type=str(entry["dataset"]),
                    dataset_name=str(entry.get("dataset_name", entry["dataset"])),
                    dataset_split=entry.get("split"),
                    metric_type=str(metric),
                    metric_name=str(metric),
                    metric_value=value,
                )
            )
    return results


def _format_value(value: Any) -> str:
    return format(value, ".6g") if isinstance(value, float) else str(value)


def _as_list(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))


def _registered(method: str | None) -> methods.MethodSpec | None:
    """The registry's entry of ``method`` (title, paper, summary, pipeline tag and tags for the card), if any."""
    if not method:
        return None
    try:
        return methods.get(method)
    except methods.UnknownMethodError:
        return None


def render_model_card(
    folder: str | os.PathLike,
    *,
    repo_id: str,
    method: str | None,
    class_name: str | None = None,
    description: str | None = None,
    training_command: str | None = None,
    base_model: str | list[str] | None = None,
    datasets: str | list[str] | None = None,
    tags: list[str] | None = None,
    license: str = DEFAULT_LICENSE,
    pipeline_tag: str | None = None,
) -> ModelCard:
    """Build the :class:`huggingface_hub.ModelCard` for ``folder`` without writing it (see :func:`write_model_card`)."""
    info = describe_model_folder(folder)
    class_name = class_name or info.class_name
    method = method or info.method
    method_info = _registered(method)
    pipeline_tag = pipeline_tag or (method_info.pipeline_tag if method_info else None)
    eval_results = load_eval_results(folder)

    card_tags = _unique(
        [
            LIBRARY_NAME,
            "diffusers",
            "face",
            method or "",
            pipeline_tag or "",
            *(method_info.tags if method_info else ()),
            *_as_list(tags),
        ]
    )
    data = ModelCardData(
        library_name=LIBRARY_NAME,
        license=license,
        tags=card_tags,
        pipeline_tag=pipeline_tag,
        base_model=base_model or None,
        datasets=_as_list(datasets) or None,
        model_name=repo_id if eval_results else None,
        eval_results=eval_results or None,
    )

    what = f"a {'pipeline' if info.is_pipeline else 'network'} (`{class_name}`) of facehub"
    if method_info:
        default_description = f"{method_info.title} for facehub: {method_info.summary}"
    else:
        default_description = f"A {class_name} checkpoint for facehub."
    description = " ".join((description or "").split()) or default_description

    lines = [f"# {repo_id}", "", description, "", "## Model", ""]
    if method_info:
        summary = "" if description == default_description else f" The model {method_info.summary}"
        lines += [
            f"This is {what}, the face-geometry toolkit, implementing **{method_info.title}**: "
            f"{method_info.paper}.{summary}"
        ]
    else:
        lines += [f"This is {what}, the face-geometry toolkit."]
    if info.components:
        lines += ["", "| component | class |", "| --- | --- |"]
        lines += [f"| `{name}` | `{cls}` |" for name, cls in info.components.items()]
    if base_model:
        lines += ["", f"Fine-tuned from: {', '.join(f'`{m}`' for m in _as_list(base_model))}."]
    lines += [
        "",
        "Weights are stored as safetensors; facehub never unpickles a checkpoint.",
        "",
        "## How to load",
        "",
        "```python",
        f"from facehub.modeling.{method} import {class_name}" if method else "# import the class from facehub.modeling",
        "",
        f'{"pipe" if info.is_pipeline else "model"} = {class_name}.from_pretrained("{repo_id}")',
        "```",
    ]
    if info.components:
        # a component of the method's own package when there is one (a bundle may carry another method's network)
        name = next((n for n, m in info.component_methods.items() if m == method), next(iter(info.components)))
        cls, package = info.components[name], info.component_methods.get(name) or method
        lines += [
            "",
            "One component on its own:",
            "",
            "```python",
            f"from facehub.modeling.{package} import {cls}" if package else f"# import {cls} from facehub.modeling",
            "",
            f'{name} = {cls}.from_pretrained("{repo_id}", subfolder="{name}")',
            "```",
        ]
    lines += [
        "",
        "The id resolves through `facehub.hub.resolve`: the Hub (or the endpoint in `HF_ENDPOINT`), its cache, or a "
        "local copy made with `facehub hub pull " + repo_id + " DIR`.",
        "",
        "## Training",
        "",
    ]
    if training_command:
        lines += ["This checkpoint was trained with:", "", "```bash", training_command.strip(), "```"]
    else:
        lines += ["The training command of this checkpoint was not recorded."]
    lines += ["", "## Evaluation", ""]
    if eval_results:
        lines += ["| task | dataset | metric | value |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {r.task_type} | {r.dataset_name}{f' ({r.dataset_split})' if r.dataset_split else ''} | "
            f"{r.metric_type} | {_format_value(r.metric_value)} |"
            for r in eval_results
        ]
    else:
        lines += ["No evaluation results were recorded with this checkpoint."]
    body = "\n".join(lines) + "\n"
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def write_model_card(folder: str | os.PathLike, **options: Any) -> Path:
    """Write ``README.md`` (the model card) into an exported model folder and return its path.

    Takes the keyword arguments of :func:`render_model_card`:

    Args:
        folder: the folder written by ``save_pretrained`` (``model_index.json`` or ``config.json`` at its top).
        repo_id: the Hub id the card is written for (``"org/name"``); used in the title and the loading snippet.
        method: the method folder name (``"depthnet"``, ...); ``None`` reads it from the folder when it can.
        class_name: the class that loads the folder; ``None`` reads ``_class_name`` from the folder.
        description: one line on what this checkpoint is; ``None`` writes one from the method.
        training_command: the exact command that trained the checkpoint, shown verbatim.
        base_model, datasets: Hub ids for the card metadata.
        tags: extra tags (``facehub``, ``diffusers``, ``face``, the method and the pipeline tag are always there).
        license: the card's license id.
        pipeline_tag: the Hub task; ``None`` takes the method's.

    An existing ``README.md`` is replaced. Metrics come from ``eval_results.json`` in ``folder`` when it exists.
    """
    card = render_model_card(folder, **options)
    path = Path(folder) / CARD_NAME
    card.save(path)
    return path
