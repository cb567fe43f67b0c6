"""The "Models" tab: browse the embedded default checkpoints, read their model cards and configs, load one.

Public events (callable with ``gradio_client``):

- ``/list_models``: re-scan the embedded defaults; returns the picker's value and a table (model, class, description).
- ``/model_info``: a model id (embedded id, local folder or Hub id) -> summary, model card (Markdown), config (JSON).
- ``/load_model``: a model id -> status message and parameter count; errors come back as a clear message.
"""

from __future__ import annotations

import html
import importlib
import json
import logging
from pathlib import Path
from typing import Any

import gradio as gr

from facehub.apps.registry import DemoContext, register_tab

logger = logging.getLogger(__name__)

CLASS_MODULES: list[str] = [
    "facehub.modeling.depthnet",
    "facehub.modeling.cyclegan",
    "facehub.modeling.prn_dense",
]
"""Packages whose exported pipeline and model classes the tab can load (a new method adds its package here)."""

CATALOG_HEADERS = ["Model", "Class", "Description"]


def _defaults_dir() -> Path:
    # Read at call time: tests (and tools) may point the resolver somewhere else.
    from facehub.hub.resolver import EMBEDDED_DEFAULTS_DIR

    return EMBEDDED_DEFAULTS_DIR


def _user_error(message: str) -> gr.Error:
    """A ``gr.Error`` shown to the user as plain text (no HTML, no server-side traceback)."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def known_classes() -> dict[str, type]:
    """Pipeline and model classes exported by :data:`CLASS_MODULES`, by class name."""
    from diffusers import DiffusionPipeline, ModelMixin

    classes: dict[str, type] = {}
    for module_name in CLASS_MODULES:
        try:
            module = importlib.import_module(module_name)
        except Exception:
            logger.exception("Model package %s failed to import; its classes cannot be loaded.", module_name)
            continue
        for name in getattr(module, "__all__", dir(module)):
            obj = getattr(module, name, None)
            if isinstance(obj, type) and issubclass(obj, (DiffusionPipeline, ModelMixin)):
                classes[obj.__name__] = obj
    return classes


def read_config(folder: Path) -> dict[str, Any]:
    """The folder's ``model_index.json`` (pipeline) or ``config.json`` (model), plus each component's config.

    Keys are file paths relative to ``folder``; unreadable JSON is reported in place of its contents.
    """

    def load(path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            return f"unreadable: {err}"

    configs: dict[str, Any] = {}
    index = folder / "model_index.json"
    if index.is_file():
        configs["model_index.json"] = load(index)
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            if (sub / "config.json").is_file():
                configs[f"{sub.name}/config.json"] = load(sub / "config.json")
    elif (folder / "config.json").is_file():
        configs["config.json"] = load(folder / "config.json")
    return configs


def class_name_of(configs: dict[str, Any]) -> str | None:
    """``_class_name`` of the top-level config from :func:`read_config`, if any."""
    for name in ("model_index.json", "config.json"):
        if isinstance(configs.get(name), dict):
            return configs[name].get("_class_name")
    return None


def read_card(folder: Path) -> str | None:
    """The model card (``README.md``) without its YAML metadata header, or ``None`` when there is none."""
    card = folder / "README.md"
    if not card.is_file():
        return None
    text = card.read_text(errors="replace")
    if text.startswith("---"):
        parts = text.split("\n---", 1)
        if len(parts) == 2:
            text = parts[1].split("\n", 1)[1] if "\n" in parts[1] else ""
    return text.strip()


def _resolve(model_id: str | None) -> tuple[str, Path]:
    from facehub.hub.resolver import ModelNotFoundError, resolve

    model_id = (model_id or "").strip()
    if not model_id:
        raise _user_error("No model selected: pick one from the list, or type an embedded id, a folder or a Hub id.")
    try:
        return model_id, resolve(model_id)
    except ModelNotFoundError as err:
        raise _user_error(str(err)) from None


def list_models() -> tuple[dict, list[list[str]]]:
    """Scan the embedded defaults again: the picker's new choices and the catalog table (model, class, description)."""
    from facehub.hub.resolver import list_embedded

    models = list_embedded()
    choices = [m.model_id for m in models]
    rows = [[m.model_id, m.class_name or "unknown", m.description] for m in models]
    return gr.update(choices=choices), rows


def empty_message() -> str:
    """What the tab says when there are no embedded default checkpoints."""
    return (
        f"No embedded default checkpoints were found (looked in `{_defaults_dir()}`). Type a local model folder or "
        "a Hub id (`org/name`) in the box above instead, or add a checkpoint saved with `save_pretrained` under "
        "`<org>/<name>/` in that folder."
    )


def model_info(model_id: str | None) -> tuple[str, str, dict[str, Any]]:
    """Summary, model card and config of ``model_id``; placeholders when nothing is selected."""
    if not (model_id or "").strip():
        from facehub.hub.resolver import list_embedded

        hint = "Pick a model to see its card and config." if list_embedded() else empty_message()
        return hint, "", {}
    model_id, folder = _resolve(model_id)
    configs = read_config(folder)
    class_name = class_name_of(configs)
    embedded = folder.resolve().is_relative_to(_defaults_dir().resolve())
    where = "embedded default" if embedded else f"`{folder}`"
    loadable = class_name in known_classes() if class_name else False
    note = "" if loadable else " (this demo cannot load this class)"
    summary = f"### {model_id}\nClass `{class_name or 'unknown'}`{note} · {where}"
    card = read_card(folder)
    if card is None:
        card = f"*{model_id} has no model card (README.md).*"
    return summary, card, configs


def load_model(ctx: DemoContext, model_id: str | None) -> tuple[str, int]:
    """Load ``model_id`` with the class its config names; return a status line and the parameter count."""
    from facehub.modeling.modeling_utils import CheckpointError

    model_id, folder = _resolve(model_id)
    configs = read_config(folder)
    if not configs:
        raise _user_error(
            f"{model_id} ({folder}) holds neither model_index.json nor config.json: it is not a saved model. "
            "Pass the folder written by save_pretrained."
        )
    class_name = class_name_of(configs)
    classes = known_classes()
    cls = classes.get(class_name or "")
    if cls is None:
        raise _user_error(
            f"{model_id} was saved by class {class_name or '(none named in its config)'}, which this demo cannot "
            f"load. Known classes: {', '.join(sorted(classes)) or 'none'}."
        )
    was_loaded = ctx.is_loaded(model_id, cls)
    try:
        ctx.load(model_id, cls)
    except (CheckpointError, OSError, ValueError) as err:
        raise _user_error(f"Could not load {model_id} as {cls.__name__}: {err}") from None
    except Exception as err:
        logger.exception("Loading %s as %s failed", model_id, cls.__name__)
        raise _user_error(
            f"Could not load {model_id} as {cls.__name__}: unexpected {type(err).__name__}: {err}. "
            "The server log has the details."
        ) from None
    record = ctx.checkpoint(model_id, cls)
    verb = "Already loaded" if was_loaded else f"Loaded in {record.load_seconds:.2f} s"
    status = f"{verb}: **{model_id}** as `{cls.__name__}`, {record.num_parameters:,} parameters on {record.device}."
    return status, record.num_parameters


@register_tab("Models", order=90)
def build(ctx: DemoContext) -> None:
    """Model picker, model card, config and a Load button."""
    from facehub.hub.resolver import list_embedded

    models = list_embedded()
    first = models[0].model_id if models else None
    try:
        summary, card, config = model_info(first)
    except gr.Error as err:  # a damaged embedded default must not stop the demo from starting
        summary, card, config = err.message, "", {}
    with gr.Row():
        with gr.Column(scale=2):
            picker = gr.Dropdown(
                choices=[m.model_id for m in models],
                value=first,
                label="Model",
                info="An embedded default, or type a local folder or a Hub id (org/name).",
                allow_custom_value=True,
                elem_id="facehub-model-picker",
            )
            with gr.Row():
                load_button = gr.Button("Load", variant="primary")
                refresh_button = gr.Button("Refresh list")
            status = gr.Markdown("Nothing loaded yet." if models else empty_message())
            parameters = gr.Number(label="Parameters", precision=0, interactive=False, visible=False)  # for the API
            with gr.Accordion("All embedded models", open=False):
                catalog = gr.Dataframe(
                    value=[[m.model_id, m.class_name or "unknown", m.description] for m in models],
                    headers=CATALOG_HEADERS,
                    type="array",
                    interactive=False,
                    wrap=True,
                )
        with gr.Column(scale=3):
            summary_md = gr.Markdown(summary)
            with gr.Accordion("Model card", open=True):
                card_md = gr.Markdown(card)
            with gr.Accordion("Config", open=False):
                config_json = gr.JSON(config)

    info_outputs = [summary_md, card_md, config_json]
    picker.change(model_info, inputs=picker, outputs=info_outputs, api_name="model_info")
    refresh_button.click(list_models, outputs=[picker, catalog], api_name="list_models")
    load_button.click(
        lambda model_id: load_model(ctx, model_id),
        inputs=picker,
        outputs=[status, parameters],
        api_name="load_model",
    )
