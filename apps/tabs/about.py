"""The "About" tab: facehub and library versions, the compute device, and the checkpoints loaded so far.

Public event: ``/loaded_models`` returns the loaded-checkpoint list as Markdown (also refreshed when the tab opens).
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version

import gradio as gr

from facehub.apps.registry import DemoContext, TabRefresh, register_tab

NO_CHECKPOINTS = "No checkpoints loaded yet: load one in the **Models** tab."


def _version(distribution: str) -> str:
    try:
        return dist_version(distribution)
    except PackageNotFoundError:
        return "not installed"


def device_description(device: str) -> str:
    """``"CPU"``, or ``"CUDA (<GPU name>)"`` when ``device`` is a CUDA device."""
    if not device.startswith("cuda"):
        return "CPU"
    import torch

    return f"CUDA ({torch.cuda.get_device_name(torch.device(device))})"


def versions_markdown(ctx: DemoContext) -> str:
    """A Markdown table of the facehub, Python, torch, diffusers and gradio versions and the device."""
    from facehub.apps.cli import version

    rows = [
        ("facehub", version()),
        ("Python", platform.python_version()),
        ("torch", _version("torch")),
        ("diffusers", _version("diffusers")),
        ("gradio", _version("gradio")),
        ("Device", device_description(ctx.device)),
    ]
    lines = ["| Component | Version |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    return "\n".join(lines)


def loaded_markdown(ctx: DemoContext) -> str:
    """The checkpoints ``ctx`` holds, as a Markdown table (or a hint when there are none)."""
    loaded = ctx.loaded()
    if not loaded:
        return NO_CHECKPOINTS
    lines = ["| Model | Class | Parameters | Device | Load time |", "|---|---|---:|---|---:|"]
    for item in loaded:
        lines.append(
            f"| {item.model_id} | `{item.class_name}` | {item.num_parameters:,} | {item.device} | "
            f"{item.load_seconds:.2f} s |"
        )
    return "\n".join(lines)


@register_tab("About", order=100)
def build(ctx: DemoContext) -> TabRefresh:
    """Versions, device and the (refreshable) list of loaded checkpoints."""
    gr.Markdown("### Versions")
    gr.Markdown(versions_markdown(ctx))
    gr.Markdown("### Loaded checkpoints")
    loaded = gr.Markdown(loaded_markdown(ctx))
    with gr.Row():
        refresh = gr.Button("Refresh", size="sm", scale=0)

    def current() -> str:
        return loaded_markdown(ctx)

    refresh.click(current, outputs=loaded, api_name="loaded_models")
    return TabRefresh(fn=current, outputs=[loaded])
