"""The facehub Gradio demo hub: one Blocks app with a tab per registered capability.

``build_demo()`` assembles the app from :mod:`facehub.apps.registry` (the capability tabs, which list the methods of
:mod:`facehub.methods`, and the tabs methods declare); ``launch()`` serves it (what ``facehub demo`` runs). Every
public event has a stable ``api_name`` (see the tab modules), so ``gradio_client`` can drive the demo.

Limits, all explicit: at most :data:`CONCURRENCY_LIMIT` events of one kind run at once (the CPU is shared; more
threads only slow each one down) and at most :data:`QUEUE_SIZE` wait, beyond which a client is told the queue is
full; an upload above :data:`MAX_FILE_SIZE` is refused by Gradio before it reaches facehub; Gradio's cache of uploads
and results is swept every :data:`CACHE_SWEEP` seconds of files older than that. The models the demo may load, how
many it keeps and its temporary folders are :class:`~facehub.apps.registry.DemoContext`'s.
"""

from __future__ import annotations

import html
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import gradio as gr

from facehub.apps.registry import MODELS_DIR_ENV, DemoContext, TabSpec, registered_tabs

logger = logging.getLogger(__name__)

TITLE = "facehub"
CONCURRENCY_LIMIT = 2
"""Events of one kind (one ``api_name``) that run at the same time; the others wait in the queue."""
QUEUE_SIZE = 64
"""Events that may wait in the queue; one more is refused with Gradio's "queue is full" message."""
MAX_FILE_SIZE = "25mb"
"""Largest upload Gradio accepts (facehub's reader then refuses images above its pixel limit)."""
CACHE_SWEEP = 3600
"""Gradio's cache (uploads, results) is swept this often (seconds) of files older than this."""
INTRO = (
    "# facehub\nFace rotation, 3D reconstruction, face swap and controllable face generation from HF-style "
    "checkpoints. Every tab has example photos or seeds to start from, and every result says what was measured on it."
)


def _build_tab(spec: TabSpec, ctx: DemoContext) -> None:
    with gr.Tab(spec.name, id=spec.name.lower().replace(" ", "-")) as tab:
        try:
            refresh = spec.build(ctx)
        except Exception as err:
            logger.exception("Demo tab %r (%s) failed to build", spec.name, spec.source)
            gr.Markdown(
                f"**This tab failed to build** ({html.escape(type(err).__name__)}: {html.escape(str(err))}). "
                "The server log has the details; the other tabs work."
            )
            return
    if refresh is not None:
        tab.select(refresh.fn, inputs=list(refresh.inputs), outputs=list(refresh.outputs), api_visibility="private")


def build_demo(ctx: DemoContext | None = None) -> gr.Blocks:
    """The demo app: a ``gr.Tab`` per registered tab, in ``order``, sharing one :class:`DemoContext`."""
    ctx = ctx if ctx is not None else DemoContext()
    with gr.Blocks(title=TITLE, delete_cache=(CACHE_SWEEP, CACHE_SWEEP)) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            for spec in registered_tabs():
                _build_tab(spec, ctx)
    return demo


def _exit_on_sigterm() -> None:
    """Let SIGTERM (``kill``, ``docker stop``, systemd) end the process like Ctrl-C does, so the exit handlers run
    and the demo's temporary folder is removed; a handler someone else installed is left alone."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def configure_queue(demo: gr.Blocks) -> gr.Blocks:
    """Turn on the queue with the demo's explicit limits (:data:`CONCURRENCY_LIMIT`, :data:`QUEUE_SIZE`)."""
    return demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)


def launch(
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    *,
    ctx: DemoContext | None = None,
    models_dir: str | Path | None = None,
    allow_any_model: bool = False,
    block: bool = True,
) -> gr.Blocks:
    """Build the demo and serve it on ``host:port`` (queue limits on, errors shown to the user as messages).

    Args:
        host: interface to bind; ``"0.0.0.0"`` serves other machines too.
        port: TCP port.
        share: also open a public Gradio share link (needs network).
        ctx: the context to build with (a fresh one by default, made with the next two arguments).
        models_dir: the allow-listed folder of saved models the demo offers besides the embedded defaults
            (default: ``$FACEHUB_MODELS_DIR``).
        allow_any_model: also accept any local folder or Hub id typed in a model box; only for a demo that only
            trusted users can reach.
        block: wait until the server stops (Ctrl-C); with ``False`` return at once with the server running in a
            thread; stop it with ``demo.close()``.

    Returns:
        The running ``gr.Blocks`` (its ``local_url`` says where it is served).
    """
    if ctx is None:
        source = "--models-dir"
        if models_dir is None and os.environ.get(MODELS_DIR_ENV, "").strip():
            models_dir, source = os.environ[MODELS_DIR_ENV].strip(), MODELS_DIR_ENV
        if models_dir is not None and not Path(models_dir).expanduser().is_dir():
            raise FileNotFoundError(f"The models folder {models_dir} ({source}) does not exist; pass an existing folder.")
        ctx = DemoContext(models_dir=None if models_dir is None else Path(models_dir).expanduser(),
                          allow_any_model=allow_any_model)
    demo = configure_queue(build_demo(ctx))
    if block:
        _exit_on_sigterm()
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        show_error=True,
        max_file_size=MAX_FILE_SIZE,
        prevent_thread_lock=not block,
        quiet=not block,
    )
    return demo
