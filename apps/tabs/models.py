"""The "Models" tab: browse the models the demo offers, read their model cards and configs, load one.

The demo offers the embedded defaults and the saved models of its allow-listed models folder
(:class:`~facehub.apps.registry.DemoContext`); any other id (a missing path, a system file, the project's own folder,
an over-long string) is refused with the one sentence :data:`~facehub.apps.registry.MODEL_REFUSED`, which says
nothing about the server's files. The classes it can load are those the method registry (:mod:`facehub.methods`)
names: every method's pipelines and networks.

Public events (callable with ``gradio_client``):

- ``/list_models``: re-scan the offered models; returns the picker's update and a table (model, class, description).
- ``/model_info``: a model id -> summary, model card (Markdown), config (JSON).
- ``/load_model``: a model id -> status message and parameter count; errors come back as a clear message.
"""

from __future__ import annotations

import functools
import html
import json
import logging
from pathlib import Path
from typing import Any

import gradio as gr

from facehub.apps.registry import DemoContext, ModelNotAllowedError, TabRefresh, register_tab

logger = logging.getLogger(__name__)

CATALOG_HEADERS = ["Model", "Class", "Description"]


def _user_error(message: str) -> gr.Error:
    """A ``gr.Error`` shown to the user as plain text (no HTML, no server-side traceback)."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def _quiet_failures(fn):
    """Run ``fn``; an error it did not phrase for the user (``gr.Error``) is logged and shown as one line that names
    no server file (the demo runs with ``show_error=True``, which would show any exception's text)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:
            logger.exception("%s failed", fn.__name__)
            raise _user_error(f"Unexpected {type(err).__name__}; the server log has the details.") from None

    return wrapper


def known_classes() -> dict[str, type]:
    """Pipeline and network classes of every registered method (``MethodSpec.capabilities`` and ``.models``), by
    class name; a class that fails to import is logged and left out."""
    from facehub import methods

    classes: dict[str, type] = {}
    for spec in methods.all_methods():
        for target in dict.fromkeys([*spec.capabilities.values(), *spec.models.values()]):
            try:
                cls = methods.import_object(target)
            except Exception:
                logger.exception("Class %s of method %s failed to import; the demo cannot load it.", target, spec.name)
                continue
            classes[cls.__name__] = cls
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


def _resolve(ctx: DemoContext, model_id: str | None) -> tuple[str, Path]:
    """``(id, folder)`` of an offered model; anything else is a ``gr.Error`` with the registry's one refusal."""
    try:
        return ctx.resolve(model_id)
    except ModelNotAllowedError as err:
        raise _user_error(str(err)) from None
    except (OSError, ValueError) as err:  # allow_any_model: the resolver's own message
        raise _user_error(str(err)) from None


def catalog_rows(ctx: DemoContext) -> list[list[str]]:
    """The catalog table: one row (model, class, description) per offered model."""
    return [[m.model_id, m.class_name or "unknown", m.description or ("models folder" if not m.embedded else "")]
            for m in ctx.offered_models()]


def list_models(ctx: DemoContext) -> tuple[dict, list[list[str]]]:
    """Scan the offered models again: the picker's new choices and the catalog table (model, class, description)."""
    rows = catalog_rows(ctx)
    return gr.update(choices=[row[0] for row in rows]), rows


def empty_message() -> str:
    """What the tab says when the demo offers no model at all."""
    return (
        "No embedded default checkpoints were found, and no models folder is set. Start the demo with "
        "`facehub demo --models-dir DIR` (or set FACEHUB_MODELS_DIR), where DIR holds folders written by "
        "`save_pretrained`."
    )


def model_info(ctx: DemoContext, model_id: str | None) -> tuple[str, str, dict[str, Any]]:
    """Summary, model card and config of ``model_id``; placeholders when nothing is selected."""
    if not isinstance(model_id, str) or not model_id.strip():
        hint = "Pick a model to see its card and config." if ctx.offered_models() else empty_message()
        return hint, "", {}
    model_id, folder = _resolve(ctx, model_id)
    configs = read_config(folder)
    class_name = class_name_of(configs)
    embedded = any(m.embedded and m.path.resolve() == folder.resolve() for m in ctx.offered_models())
    where = "embedded default" if embedded else "models folder"
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

    model_id, folder = _resolve(ctx, model_id)
    configs = read_config(folder)
    if not configs:
        raise _user_error(f"{model_id} holds neither model_index.json nor config.json: it is not a saved model.")
    class_name = class_name_of(configs)
    classes = known_classes()
    cls = classes.get(class_name or "")
    if cls is None:
        raise _user_error(
            f"{model_id} was saved by class {class_name or '(none named in its config)'}, which this demo cannot "
            f"load. Known classes: {', '.join(sorted(classes)) or 'none'}."
        )
    try:
        _, record, loaded_now = ctx.load_checkpoint(model_id, cls)
    except ModelNotAllowedError as err:
        raise _user_error(str(err)) from None
    except (CheckpointError, OSError, ValueError) as err:
        message = str(err).replace(str(folder), model_id)
        raise _user_error(f"Could not load {model_id} as {cls.__name__}: {message}") from None
    except Exception as err:
        logger.exception("Loading %s as %s failed", model_id, cls.__name__)
        raise _user_error(
            f"Could not load {model_id} as {cls.__name__}: unexpected {type(err).__name__}. "
            "The server log has the details."
        ) from None
    verb = f"Loaded in {record.load_seconds:.2f} s" if loaded_now else "Already loaded"
    status = f"{verb}: **{model_id}** as `{cls.__name__}`, {record.num_parameters:,} parameters on {record.device}."
    return status, record.num_parameters


@register_tab("Models", order=90)
def build(ctx: DemoContext) -> TabRefresh:
    """Model picker, model card, config and a Load button; opening the tab re-scans the offered models."""
    rows = catalog_rows(ctx)
    first = rows[0][0] if rows else None
    try:
        summary, card, config = model_info(ctx, first)
    except gr.Error as err:  # a damaged embedded default must not stop the demo from starting
        summary, card, config = err.message, "", {}
    with gr.Row():
        with gr.Column(scale=2):
            picker = gr.Dropdown(
                choices=[row[0] for row in rows],
                value=first,
                label="Model",
                info="An embedded default, or a model saved in the demo's models folder.",
                allow_custom_value=True,
                elem_id="facehub-model-picker",
            )
            with gr.Row():
                load_button = gr.Button("Load", variant="primary")
                refresh_button = gr.Button("Refresh list")
            status = gr.Markdown("Nothing loaded yet." if rows else empty_message())
            parameters = gr.Number(label="Parameters", precision=0, interactive=False, visible=False)  # for the API
            with gr.Accordion("All offered models", open=False):
                catalog = gr.Dataframe(
                    value=rows,
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
    picker.change(_quiet_failures(lambda model_id: model_info(ctx, model_id)), inputs=picker, outputs=info_outputs,
                  api_name="model_info")
    refresh_button.click(_quiet_failures(lambda: list_models(ctx)), outputs=[picker, catalog], api_name="list_models")
    load_button.click(
        lambda model_id: load_model(ctx, model_id),
        inputs=picker,
        outputs=[status, parameters],
        api_name="load_model",
    )
    return TabRefresh(fn=lambda: list_models(ctx), outputs=[picker, catalog])
