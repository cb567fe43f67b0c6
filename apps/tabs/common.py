"""What the capability tabs share: user-facing errors, the model picker's choices, loading a checkpoint for a tab,
and the warning a tab shows instead of a traceback."""

from __future__ import annotations

import html

import gradio as gr

from facehub.apps.registry import DemoContext


class UserFacingError(Exception):
    """A problem the user can fix (a photo without a usable face, an unknown model); its message is shown as is."""


def model_choices(class_names: tuple[str, ...]) -> list[str]:
    """Embedded default ids whose saved class is one of ``class_names``."""
    from facehub.hub.resolver import list_embedded

    return [m.model_id for m in list_embedded() if m.class_name in class_names]


def default_model(choices: list[str], preferred: str) -> str | None:
    """``preferred`` when it is embedded, else the first compatible embedded model, else None."""
    if preferred in choices:
        return preferred
    return choices[0] if choices else None


def load_pipeline(ctx: DemoContext, model_id: str | None, cls: type):
    """``ctx.load(model_id, cls)`` with every failure turned into a :class:`UserFacingError`."""
    from facehub.hub.resolver import ModelNotFoundError
    from facehub.modeling.modeling_utils import CheckpointError

    model_id = (model_id or "").strip()
    if not model_id:
        raise UserFacingError("No model selected: pick one, or type an embedded id, a local folder or a Hub id.")
    try:
        return ctx.load(model_id, cls)
    except (ModelNotFoundError, CheckpointError, OSError, ValueError) as err:
        raise UserFacingError(f"Could not load {model_id} as {cls.__name__}: {err}") from None


def warning_status(message: str) -> str:
    """Show ``message`` as a toast and return it as the status Markdown (escaped: it may quote user input)."""
    gr.Warning(html.escape(message, quote=False))
    return f"**Could not do it:** {html.escape(message, quote=False)}"


def face_count_note(count: int, photo: str) -> str:
    """A sentence for photos with more than one face."""
    return f" The {photo} has {count} faces; the largest was used." if count > 1 else ""
