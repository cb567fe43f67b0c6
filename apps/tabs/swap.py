"""The "Swap" tab: put the face of a source photo onto the head of a target photo (DepthNet, section 3.3).

Public event (callable with ``gradio_client``):

- ``/swap``: source photo, target photo, model id, optional repair checkpoint id (a ``FaceRepairPipeline`` trained
  with ``facehub train cyclegan``) -> the swapped photo (the target's size), the warp before repair, a status message (faces used, identity distances, timings) and the measurements as JSON
  (``distance_to_source``, ``distance_to_target``, ``landmark_error``, ``num_faces``, ``timings``).

Photos the pipeline cannot use (no face, a face too small, an unknown model) give a status message and a
``gr.Warning``, never a traceback; with several faces the largest is used and the status says how many there were.

The helpers it shares with the other tabs live in :mod:`facehub.apps.tabs.common`.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr
import numpy as np

from facehub.apps.registry import DemoContext, register_tab
from facehub.apps.tabs.common import (
    UserFacingError,
    default_model,
    face_count_note,
    load_pipeline,
    model_choices,
    warning_status,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "facehub/depthnet"


def swap_pipeline(ctx: DemoContext, model_id: str | None, repair_id: str | None = None,
                  combined: dict[tuple[str, str], Any] | None = None):
    """The swap pipeline of ``model_id``, with the generator of the repair checkpoint ``repair_id`` when given.

    Both checkpoints come from the context's cache; their combination shares those networks and is kept in
    ``combined`` (the tab's own dict, keyed by (model, repair)) so it is built once per pair.
    """
    from facehub.modeling.depthnet.pipeline_face_swap import FaceSwapPipeline

    pipe = load_pipeline(ctx, model_id, FaceSwapPipeline)
    repair_id = (repair_id or "").strip()
    if not repair_id:
        return pipe
    from facehub.modeling.cyclegan import FaceRepairPipeline

    combined = {} if combined is None else combined
    key = (str(model_id).strip(), repair_id)
    if key not in combined:
        repair = load_pipeline(ctx, repair_id, FaceRepairPipeline).repair
        combined[key] = FaceSwapPipeline(depth_net=pipe.depth_net, repair=repair)
    return combined[key]


def swap_faces(
    ctx: DemoContext,
    source: np.ndarray | None,
    target: np.ndarray | None,
    model_id: str | None,
    repair_id: str | None = None,
    combined: dict[tuple[str, str], Any] | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None, str, dict[str, Any]]:
    """The ``/swap`` event: returns the swapped photo, the warp before repair, a status message and measurements."""
    from facehub.modeling.faces.image_io import FaceHubImageError

    try:
        if source is None or target is None:
            raise UserFacingError("Upload both photos: the source (whose face is used) and the target.")
        pipe = swap_pipeline(ctx, model_id, repair_id, combined)
        out = pipe(source, target, measure=True)
    except (UserFacingError, FaceHubImageError) as err:
        return None, None, warning_status(str(err)), {}
    except Exception as err:  # a bug must not show a traceback to the user; the log keeps it
        logger.exception("Face swap failed")
        return None, None, warning_status(f"Unexpected {type(err).__name__}: {err}. The server log has details."), {}
    measurements = {
        "distance_to_source": out.distance_to_source,
        "distance_to_target": out.distance_to_target,
        "landmark_error": out.landmark_error,
        "num_faces": {"source": out.num_faces.source, "target": out.num_faces.target},
        "repaired": out.repaired,
        "timings": {name: round(seconds, 4) for name, seconds in out.timings.items()},
    }
    return out.image, out.warped, swap_status(out), measurements


def swap_status(out) -> str:
    """Markdown summary of a :class:`~facehub.modeling.depthnet.pipeline_face_swap.FaceSwapOutput`."""
    lines = [
        "**Swapped.**"
        + face_count_note(out.num_faces.source, "source photo")
        + face_count_note(out.num_faces.target, "target photo")
    ]
    if out.distance_to_source is None:
        lines.append("No face was found again on the result, so identity distances are not available.")
    else:
        lines.append(
            f"Identity distance of the result to the source face: **{out.distance_to_source:.3f}**, to the target "
            f"face: **{out.distance_to_target:.3f}** (dlib descriptor; below 0.6 = same person). Landmark error "
            f"against the target's keypoints: {100 * out.landmark_error:.1f}% of the face size."
        )
    stages = ", ".join(f"{name} {1000 * seconds:.0f} ms" for name, seconds in out.timings.items())
    lines.append(f"Time: {stages}." + ("" if out.repaired else " No repair network: colour transfer + Poisson blend."))
    return "\n\n".join(lines)


@register_tab("Swap", order=30)
def build(ctx: DemoContext) -> None:
    """Source and target photos, a model picker, the result, the warp before repair and the distances."""
    from facehub.modeling.depthnet.pipeline_face_rotation import DEPTHNET_BUNDLE_CLASSES

    choices = model_choices(DEPTHNET_BUNDLE_CLASSES)
    combined: dict[tuple[str, str], Any] = {}  # (model, repair) -> swap pipeline with that repair, for this demo
    gr.Markdown(
        "Put the **source** photo's face on the **target** photo's head (DepthNet: keypoint depths and a 3D affine "
        "turn the source face to the target's pose, then it is pasted and blended)."
    )
    with gr.Row():
        source = gr.Image(label="Source face", type="numpy", image_mode="RGB", sources=["upload", "clipboard"])
        target = gr.Image(label="Target photo", type="numpy", image_mode="RGB", sources=["upload", "clipboard"])
    with gr.Row():
        model = gr.Dropdown(
            choices=choices,
            value=default_model(choices, DEFAULT_MODEL_ID),
            label="Model",
            info="A DepthNet checkpoint: an embedded default, a local folder or a Hub id.",
            allow_custom_value=True,
            scale=3,
        )
        repair = gr.Textbox(
            value="",
            label="Repair checkpoint (optional)",
            info="A CycleGAN repair (FaceRepairPipeline from `facehub train cyclegan`): a local folder or Hub id.",
            scale=2,
        )
        run = gr.Button("Swap", variant="primary", scale=1)
    with gr.Row():
        swapped = gr.Image(label="Swapped", type="numpy", format="png", interactive=False)
        warped = gr.Image(label="Warp before repair", type="numpy", format="png", interactive=False)
    status = gr.Markdown("Upload a source and a target photo.")
    with gr.Accordion("Measurements", open=False):
        measurements = gr.JSON(label="Measurements")
    run.click(
        lambda s, t, m, r: swap_faces(ctx, s, t, m, r, combined),
        inputs=[source, target, model, repair],
        outputs=[swapped, warped, status, measurements],
        api_name="swap",
    )
