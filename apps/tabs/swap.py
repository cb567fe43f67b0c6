"""The "Swap" tab: put the face of a source photo onto the head of a target photo, with any registered method that
has the ``swap`` capability (DepthNets' keypoint warp, section 3.3, and the texture transfer of PRN-Dense and the
morphable-model fit), and optionally a repair network (a method with the
``repair`` capability: the CycleGAN of ``facehub train cyclegan``).

Public event (callable with ``gradio_client``):

- ``/swap``: source photo, target photo, model id, optional repair model id, method name -> the swapped photo (the
  target's size), the warp before repair, a status message (faces used, identity distances, timings) and the
  measurements as JSON (``distance_to_source``, ``distance_to_target``, ``landmark_error``, ``num_faces``,
  ``repaired``, ``timings``).

Photos are uploaded as files and read by facehub's reader. Photos the pipeline cannot use (unreadable, no face, a
face too small) and models the demo does not offer give a status message and a ``gr.Warning``, never a traceback;
with several faces the largest is used and the status says how many there were.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import gradio as gr
import numpy as np

from facehub.apps.registry import DemoContext, TabRefresh, register_tab
from facehub.apps.tabs.common import (
    COMPUTE,
    UserFacingError,
    default_model,
    example_photos,
    face_count_note,
    load_method_pipeline,
    method_choices,
    model_choices,
    model_picker_update,
    photo_upload,
    read_upload,
    starting_method,
    unexpected_status,
    warning_status,
)

logger = logging.getLogger(__name__)

CAPABILITY = "swap"
REPAIR = "repair"
NO_REPAIR = "None: colour transfer and Poisson blend"
EXAMPLES = (("obama.jpg", "biden.jpg"), ("biden.jpg", "obama2.jpg"), ("astronaut.png", "obama.jpg"))
#: The method the tab starts on when it is registered, otherwise the first registered one: the morphable-model fit's
#: texture transfer, whose swaps `facehub eval swap` measures nearest the source's identity (below the 2D baseline's
#: distance, and nearer the source than the target in every pair of the test photos, where DepthNets' keypoint swap,
#: the paper's method, is one click away and farther from the source). The Rotate and Reconstruct tabs start on the
#: fit too.
DEFAULT_METHOD = "face_fitting"


def default_method() -> str | None:
    """:data:`DEFAULT_METHOD` when it is registered for swap, else the first method that is (``None``: none is)."""
    return starting_method(CAPABILITY, DEFAULT_METHOD)


class RepairedPipelines:
    """Swap pipelines combined with a repair network, built once per (swap model, repair model) and bounded: they
    share the networks of the demo's model cache, and the oldest combination is dropped beyond ``size``."""

    def __init__(self, size: int = 2):
        self.size = size
        self._pipelines: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, pipe, repair_network):
        key = (id(pipe), id(repair_network))
        with self._lock:
            if key not in self._pipelines:
                components = {name: c for name, c in pipe.components.items() if name != REPAIR}
                self._pipelines[key] = (pipe, repair_network, type(pipe)(**components, repair=repair_network))
                while len(self._pipelines) > self.size:
                    self._pipelines.popitem(last=False)
            self._pipelines.move_to_end(key)
            return self._pipelines[key][2]

    def __len__(self) -> int:
        return len(self._pipelines)


def repair_choices(ctx: DemoContext) -> list[tuple[str, str]]:
    """The repair picker: "none", then the offered models of every method with the ``repair`` capability."""
    from facehub import methods

    ids = [model for name in methods.available(REPAIR) for model in model_choices(ctx, name, REPAIR)]
    return [(NO_REPAIR, ""), *((model, model) for model in dict.fromkeys(ids))]


def swap_pipeline(ctx: DemoContext, method: str, model_id: str | None, repair_id: str | None = None,
                  combined: RepairedPipelines | None = None):
    """The swap pipeline of ``method`` on ``model_id``, with the network of the repair model ``repair_id`` when given.

    Both come from the context's cache; their combination shares those networks and is kept in ``combined`` (the
    tab's own bounded store) so that it is built once per pair.
    """
    from facehub import methods

    pipe = load_method_pipeline(ctx, method, CAPABILITY, model_id)
    repair_id = (repair_id or "").strip()
    if not repair_id:
        return pipe
    repair_methods = methods.available(REPAIR)
    if not repair_methods:
        raise UserFacingError("No repair method is registered; leave the repair box empty.")
    owner = next((m for m in repair_methods if repair_id in model_choices(ctx, m, REPAIR)), repair_methods[0])
    repair = load_method_pipeline(ctx, owner, REPAIR, repair_id)
    network = getattr(repair, REPAIR, None)
    if network is None or REPAIR not in getattr(pipe, "components", {}):
        raise UserFacingError(f"{methods.get(method).title} cannot use a repair network; leave the box empty.")
    return (combined if combined is not None else RepairedPipelines()).get(pipe, network)


def swap_faces(
    ctx: DemoContext,
    source,
    target,
    model_id: str | None,
    repair_id: str | None = None,
    combined: RepairedPipelines | None = None,
    method: str | None = None,
    progress=None,
) -> tuple[np.ndarray | None, np.ndarray | None, str, dict[str, Any]]:
    """The ``/swap`` event: returns the swapped photo, the warp before repair, a status message and measurements.

    ``source`` and ``target`` are uploads (file paths or bytes), read by facehub's reader; ``method`` defaults to
    :func:`default_method`.
    """
    from facehub.modeling.faces.image_io import FaceHubImageError

    progress = progress or (lambda *args, **kwargs: None)
    try:
        if source is None or target is None:
            raise UserFacingError("Upload both photos: the source (whose face is used) and the target.")
        progress(0.05, desc="Reading the photos")
        source_image = read_upload(source, "source photo")
        target_image = read_upload(target, "target photo")
        progress(0.15, desc="Loading the model")
        pipe = swap_pipeline(ctx, method or default_method() or "", model_id, repair_id, combined)
        progress(0.3, desc="Swapping and measuring the result")
        out = pipe(source_image, target_image, measure=True, output_type="np")
        swapped, status = out.images[0], swap_status(out)
        progress(1.0, desc="Done")
    except (UserFacingError, FaceHubImageError, ValueError) as err:
        return None, None, warning_status(str(err)), {}
    except Exception as err:  # a bug must not show a traceback to the user; the log keeps it
        logger.exception("Face swap failed")
        return None, None, unexpected_status(err), {}
    measurements = {
        "distance_to_source": out.distance_to_source,
        "distance_to_target": out.distance_to_target,
        "landmark_error": out.landmark_error,
        "num_faces": {"source": out.num_faces.source, "target": out.num_faces.target},
        "repaired": out.repaired,
        "timings": {name: round(seconds, 4) for name, seconds in out.timings.items()},
    }
    return swapped, out.warped, status, measurements


def swap_status(out) -> str:
    """Markdown summary of a swap output: faces used, what was measured on the result (and, where the result is
    no closer to the source's identity than to the target's, that it failed to carry the source), time per stage."""
    lines = [
        "**Swapped.**"
        + face_count_note(out.num_faces.source, "source photo")
        + face_count_note(out.num_faces.target, "target photo")
    ]
    if out.distance_to_source is None:
        lines.append("No face was found again on the result, so identity distances were not measured.")
    else:
        lines.append(
            f"Measured on the result: identity distance to the source face **{out.distance_to_source:.3f}**, to "
            f"the target face **{out.distance_to_target:.3f}** (dlib descriptor; below 0.6 = same person); landmark "
            f"error against the target's keypoints {100 * out.landmark_error:.1f}% of the face size."
        )
        if out.distance_to_source >= out.distance_to_target:
            lines.append("**The result is closer to the target person than to the source**: the source's identity "
                         "did not carry over. Another method may do better (the Compare tab runs every method on "
                         "the two photos).")
    stages = ", ".join(f"{name} {1000 * seconds:.0f} ms" for name, seconds in out.timings.items())
    lines.append(f"Time: {stages}." + ("" if out.repaired else " No repair network: colour transfer + Poisson blend."))
    return "\n\n".join(lines)


@register_tab("Swap", order=30)
def build(ctx: DemoContext) -> TabRefresh:
    """Source and target photos, method and model pickers, the result, the warp before repair and the distances."""
    from facehub import methods

    choices = method_choices(CAPABILITY)
    first = default_method()
    models = model_choices(ctx, first, CAPABILITY) if first else []
    combined = RepairedPipelines()
    gr.Markdown(
        "Put the **source** photo's face on the **target** photo's head: the morphable-model fit or PRN-Dense draw the "
        "source's texture, completed by symmetry, on the target's face in its pose and light; DepthNets (the paper's "
        "method) turn the source face to the target's pose by keypoint depths and a 3D affine. Either way the face is "
        "colour-matched and blended. The result says how close it is to each identity, as measured by a face "
        "descriptor."
    )
    with gr.Row():
        source = photo_upload(label="Source face")
        target = photo_upload(label="Target photo")
    gr.Examples(examples=[list(example_photos(*pair)) for pair in EXAMPLES if len(example_photos(*pair)) == 2],
                inputs=[source, target], label="Example pairs (source, target)")
    with gr.Row():
        method = gr.Radio(choices=choices, value=first, label="Method", scale=1)
        model = gr.Dropdown(
            choices=models,
            value=default_model(models, methods.get(first).default_model if first else None),
            label="Model",
            info="A checkpoint of the method: an embedded default or a model in the demo's models folder.",
            allow_custom_value=True,
            scale=2,
        )
        repair = gr.Dropdown(
            choices=repair_choices(ctx),
            value="",
            label="Repair network (optional)",
            info="A CycleGAN repair from `facehub train cyclegan`, saved in the demo's models folder.",
            allow_custom_value=True,
            scale=2,
        )
        run = gr.Button("Swap", variant="primary", scale=1)
    with gr.Row():
        swapped = gr.Image(label="Swapped", type="numpy", format="png", interactive=False)
        warped = gr.Image(label="Warp before repair", type="numpy", format="png", interactive=False)
    status = gr.Markdown("Upload a source and a target photo (or click an example pair).")
    with gr.Accordion("Measurements", open=False):
        measurements = gr.JSON(label="Measurements")

    def method_changed(name: str):
        return model_picker_update(ctx, CAPABILITY, name)

    # A gr.Progress() default is how Gradio hands an event its progress bar.
    def on_swap(source, target, model, repair, method, progress=gr.Progress()):  # noqa: B008
        return swap_faces(ctx, source, target, model, repair, combined, method, progress)

    method.change(method_changed, inputs=method, outputs=model, api_visibility="private")
    run.click(
        on_swap,
        inputs=[source, target, model, repair, method],
        outputs=[swapped, warped, status, measurements],
        api_name="swap",
        concurrency_id=COMPUTE,
    )

    def refresh(name: str, current: str):
        return model_picker_update(ctx, CAPABILITY, name, current), gr.update(choices=repair_choices(ctx))

    return TabRefresh(fn=refresh, inputs=[method, model], outputs=[model, repair])
