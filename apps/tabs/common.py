"""What the capability tabs share.

- :func:`photo_upload`: the photo input of every tab. Gradio's own image input opens (and for some modes decodes)
  the upload before the app sees it, so unreadable files came back as "Could not preprocess" errors carrying the
  server's temporary paths, and Gradio decoded up to 178 megapixels. This input hands the app the uploaded *file*;
  :func:`read_upload` reads it with facehub's reader (:func:`facehub.modeling.faces.image_io.load_image`) and its
  pixel limit, so the demo does exactly what the Python API does with the same file.
- Method pickers from the registry (:mod:`facehub.methods`): :func:`method_choices`, :func:`model_choices`,
  :func:`load_method_pipeline`.
- Example photos (:func:`example_photos`), user-facing errors and the warning a tab shows instead of a traceback.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from facehub.apps.registry import MODEL_REFUSED, DemoContext, ModelNotAllowedError

logger = logging.getLogger(__name__)

COMPUTE = "facehub-compute"
"""Concurrency group of the events that run a network (rotate, frontalize, swap, reconstruct): together they run at
most the queue's default concurrency limit at a time, so the CPU (or GPU) is not split among more jobs than that."""

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
"""Public-domain example photos shipped inside the package (copies of tests/data/photos; see its README.md)."""


class UserFacingError(Exception):
    """A problem the user can fix (a photo without a usable face, an unknown model); its message is shown as is."""


# ---- photos in ------------------------------------------------------------------------------------------------


def uploaded_file(payload) -> str | bytes | None:
    """The value a :func:`photo_upload` hands the app: the uploaded file's path, or the bytes of an image sent
    inline as a ``data:`` URL (Gradio's ``ImageData`` in, nothing decoded)."""
    if payload is None:
        return None
    url = getattr(payload, "url", None) or ""
    if url.startswith("data:"):
        try:
            return base64.b64decode(url.split(",", 1)[1], validate=False)
        except (IndexError, ValueError):
            return b""
    return payload.path


def photo_upload(label: str, **kwargs: Any) -> gr.Image:
    """A ``gr.Image`` input whose value is the uploaded file itself (:func:`uploaded_file`), never opened or decoded
    by Gradio; read it with :func:`read_upload`. In the browser and in ``gradio_client`` it is a plain image input.

    (The instance's ``preprocess`` is replaced rather than subclassing ``gr.Image``: Gradio writes a ``.pyi`` stub
    beside the module of every component subclass.)
    """
    kwargs.setdefault("sources", ["upload", "clipboard"])
    image = gr.Image(label=label, type="filepath", image_mode=None, **kwargs)
    image.preprocess = uploaded_file
    return image


def _temp_roots() -> list[str]:
    roots = {tempfile.gettempdir(), os.environ.get("GRADIO_TEMP_DIR", "")}
    return sorted((r.rstrip("/") for r in roots if r and r != "/"), key=len, reverse=True)


def scrub_paths(message: str, uploads: dict[str, str] | None = None) -> str:
    """``message`` with upload paths replaced by what they are (``{path: "the uploaded photo"}``) and any other
    server temporary path replaced by ``<file>``."""
    for path, name in (uploads or {}).items():
        message = message.replace(f"Image '{path}'", name[:1].upper() + name[1:]).replace(f"'{path}'", name)
        message = message.replace(path, name)
    for root in _temp_roots():
        message = re.sub(re.escape(root) + r"/[^\s'\"),;]*", "<file>", message)
    return message


def read_upload(upload: str | bytes | None, what: str = "photo") -> np.ndarray | None:
    """The uploaded image as RGB uint8, read by facehub's reader with its default pixel limit (``None`` for none).

    Unreadable files (empty, not an image, truncated, too many pixels) raise :class:`UserFacingError` with the
    reader's own message, the server path replaced by "the uploaded <what>". Animated images give their first frame,
    16-bit and grey images are rescaled to RGB: what ``load_image`` does with the same file.
    """
    from facehub.modeling.faces.image_io import FaceHubImageError, load_image

    if upload is None:
        return None
    if isinstance(upload, np.ndarray):  # called from Python with an array
        source: Any = upload
    elif isinstance(upload, (bytes, bytearray)):
        source = bytes(upload)
    else:
        source = Path(upload)
    try:
        return load_image(source)
    except FaceHubImageError as err:
        names = {} if not isinstance(source, Path) else {str(source): f"the uploaded {what}"}
        raise UserFacingError(scrub_paths(str(err), names)) from None


def example_photos(*names: str) -> list[str]:
    """Paths of the named example photos that exist: the package's copies in ``apps/examples``, else the source
    tree's ``tests/data/photos``; names found in neither are left out."""
    source_tree = Path(__file__).resolve().parents[2] / "tests" / "data" / "photos"
    found = []
    for name in names:
        for folder in (EXAMPLES_DIR, source_tree):
            if (folder / name).is_file():
                found.append(str(folder / name))
                break
    return found


# ---- methods and models ---------------------------------------------------------------------------------------


def method_choices(capability: str) -> list[tuple[str, str]]:
    """``(title, name)`` of every registered method with ``capability``: the choices of a method picker."""
    from facehub import methods

    return [(methods.get(name).title, name) for name in methods.available(capability)]


def starting_method(capability: str, preferred: str | None = None) -> str | None:
    """The method a picker for ``capability`` starts on: ``preferred`` when it is registered with that capability,
    else the first registered one (``None``: none is)."""
    from facehub import methods

    available = methods.available(capability)
    return preferred if preferred in available else (available[0] if available else None)


def model_choices(ctx: DemoContext, method: str, capability: str) -> list[str]:
    """Ids of the offered models (``ctx.offered_models()``) that ``method``'s pipeline for ``capability`` loads:
    saved by that class or by one in its ``loads_bundles_of``. The method's default comes first, then the other
    embedded defaults, then the models folder's, each sorted."""
    from facehub import methods

    spec = methods.get(method)
    try:
        cls = spec.pipeline_class(capability)
        accepted = {cls.__name__, *getattr(cls, "loads_bundles_of", ())}

        def fits(class_name: str) -> bool:
            return class_name in accepted
    except Exception:  # the pipeline does not import: fall back on the classes the method's spec names
        logger.exception("The %s pipeline of %s failed to import.", capability, method)

        def fits(class_name: str) -> bool:
            owner = methods.method_of_class(class_name)
            return owner is not None and owner.name == spec.name

    ids = [model.model_id for model in ctx.offered_models() if model.class_name and fits(model.class_name)]
    return sorted(ids, key=lambda model_id: model_id != spec.default_model)  # then embedded, then the folder's


def default_model(choices: list[str], preferred: str | None) -> str | None:
    """``preferred`` when it is offered, else the first choice, else None."""
    if preferred in choices:
        return preferred
    return choices[0] if choices else None


def model_picker_update(ctx: DemoContext, capability: str, method: str | None, current: str | None = None) -> dict:
    """A ``gr.update`` of a tab's model picker for ``method``: the offered models it loads now (the models folder
    may have changed), keeping ``current`` when it is still offered, else the method's default."""
    from facehub import methods

    if method not in methods.available(capability):
        return gr.update(choices=[], value=None)
    options = model_choices(ctx, method, capability)
    keep = current if current in options else methods.get(method).default_model
    return gr.update(choices=options, value=default_model(options, keep))


def _load(ctx: DemoContext, model_id: str | None, cls: type, loader: Callable[[Path], Any] | None = None):
    from facehub.hub.resolver import ModelNotFoundError
    from facehub.modeling.modeling_utils import CheckpointError

    try:
        shown, folder = ctx.resolve(model_id)
    except ModelNotAllowedError as err:
        raise UserFacingError(str(err)) from None
    except (ModelNotFoundError, OSError, ValueError) as err:  # allow_any_model: the resolver's own message
        raise UserFacingError(f"Could not load {model_id} as {cls.__name__}: {err}") from None
    try:
        return ctx.load(model_id, cls, loader=loader)
    except ModelNotAllowedError as err:
        raise UserFacingError(str(err)) from None
    except (ModelNotFoundError, CheckpointError, OSError, ValueError) as err:
        message = str(err).replace(str(folder), shown)
        raise UserFacingError(f"Could not load {shown} as {cls.__name__}: {message}") from None


def load_pipeline(ctx: DemoContext, model_id: str | None, cls: type):
    """``ctx.load(model_id, cls)`` with every failure turned into a :class:`UserFacingError` (ids the demo does not
    offer get :data:`~facehub.apps.registry.MODEL_REFUSED`)."""
    return _load(ctx, model_id, cls)


def load_method_pipeline(ctx: DemoContext, method: str, capability: str, model_id: str | None):
    """``methods.load(method, capability, model=...)`` on the offered model ``model_id``, through ``ctx``'s cache."""
    from facehub import methods

    method = (method or "").strip() if isinstance(method, str) else ""
    titles = {methods.get(name).title.casefold(): name for name in methods.names()}
    try:
        spec = methods.get(titles.get(method.casefold(), method))  # a name, or a title as the picker shows it
    except methods.UnknownMethodError as err:
        raise UserFacingError(str(err)) from None
    if not spec.supports(capability):
        others = ", ".join(methods.available(capability)) or "none"
        raise UserFacingError(f"{spec.title} has no {capability} capability; choose one of: {others}.")
    cls = spec.pipeline_class(capability)
    return _load(ctx, model_id, cls, loader=lambda folder: methods.load(spec.name, capability, model=str(folder)))


# ---- messages -------------------------------------------------------------------------------------------------


def pose_text(pose: Sequence[float]) -> str:
    """``"yaw +20.0, pitch -3.1, roll +0.4"`` (degrees)."""
    yaw, pitch, roll = (float(a) for a in pose)
    return f"yaw {yaw:+.1f}, pitch {pitch:+.1f}, roll {roll:+.1f}"


def warning_status(message: str) -> str:
    """Show ``message`` as a toast and return it as the status Markdown (escaped: it may quote user input; server
    temporary paths are scrubbed)."""
    message = html.escape(scrub_paths(message), quote=False)
    gr.Warning(message)
    return f"**Could not do it:** {message}"


def unexpected_status(err: Exception) -> str:
    """The status for a bug: its type only (its text may name server files); the log keeps the traceback."""
    return warning_status(f"Unexpected {type(err).__name__}; the server log has the details.")


def face_count_note(count: int, photo: str) -> str:
    """A sentence for photos with more than one face."""
    return f" The {photo} has {count} faces; the largest was used." if count > 1 else ""


__all__ = [
    "COMPUTE",
    "EXAMPLES_DIR",
    "MODEL_REFUSED",
    "UserFacingError",
    "default_model",
    "example_photos",
    "face_count_note",
    "load_method_pipeline",
    "load_pipeline",
    "method_choices",
    "model_choices",
    "model_picker_update",
    "photo_upload",
    "pose_text",
    "read_upload",
    "scrub_paths",
    "unexpected_status",
    "uploaded_file",
    "warning_status",
]
