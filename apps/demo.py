"""The facehub Gradio demo hub: one Blocks app with a tab per registered capability.

``build_demo()`` assembles the app from :mod:`facehub.apps.registry`; ``launch()`` serves it (what ``facehub demo``
runs). Every public event has a stable ``api_name`` (see the tab modules), so ``gradio_client`` can drive the demo.
"""

from __future__ import annotations

import html
import logging

import gradio as gr

from facehub.apps.registry import DemoContext, TabSpec, registered_tabs

logger = logging.getLogger(__name__)

TITLE = "facehub"
INTRO = "# facehub\nFace rotation, 3D reconstruction, face swap and controllable generation, from HF-style checkpoints."


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
        tab.select(refresh.fn, outputs=list(refresh.outputs), api_visibility="private")


def build_demo(ctx: DemoContext | None = None) -> gr.Blocks:
    """The demo app: a ``gr.Tab`` per registered tab, in ``order``, sharing one :class:`DemoContext`."""
    ctx = ctx if ctx is not None else DemoContext()
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            for spec in registered_tabs():
                _build_tab(spec, ctx)
    return demo


def launch(
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    *,
    ctx: DemoContext | None = None,
    block: bool = True,
) -> gr.Blocks:
    """Build the demo and serve it on ``host:port`` (queue on, errors shown to the user).

    Args:
        host: interface to bind; ``"0.0.0.0"`` serves other machines too.
        port: TCP port.
        share: also open a public Gradio share link (needs network).
        ctx: the context to build with (a fresh one by default).
        block: wait until the server stops (Ctrl-C); with ``False`` return at once with the server running in a
            thread; stop it with ``demo.close()``.

    Returns:
        The running ``gr.Blocks`` (its ``local_url`` says where it is served).
    """
    demo = build_demo(ctx)
    demo.queue()
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        show_error=True,
        prevent_thread_lock=not block,
        quiet=not block,
    )
    return demo
