"""The "Compare" tab: one photo (two for swap) through every registered rotation, reconstruction and swap method,
side by side, with the same measured figures for each (:mod:`facehub.apps.comparison`).

Methods appear here by registering a capability in their ``MethodSpec``; nothing in the demo is edited. Each runs on
its embedded default checkpoint.

Public event (callable with ``gradio_client``):

- ``/compare``: photo, optional second photo (the swap's target), yaw -> a gallery of results (caption: capability,
  method and the figure measured on the result) and a Markdown table of the figures (achieved pose and identity
  distance for rotation, landmark agreement with the face analyzer for reconstruction, distances to source and target
  for swap, time).
"""

from __future__ import annotations

import html
import logging

import gradio as gr

from facehub.apps.registry import DemoContext, register_tab
from facehub.apps.tabs.common import (
    COMPUTE,
    UserFacingError,
    example_photos,
    load_method_pipeline,
    photo_upload,
    read_upload,
    unexpected_status,
    warning_status,
)

logger = logging.getLogger(__name__)

EXAMPLES = ("obama.jpg", "astronaut.png", "biden.jpg")


def run_comparison(ctx: DemoContext, photo, second=None, yaw: float = 30.0, progress=None):
    """The ``/compare`` event: (gallery items, Markdown table); failures become a status message."""
    from facehub import methods
    from facehub.apps.comparison import compare
    from facehub.modeling.faces.image_io import FaceHubImageError

    progress = progress or (lambda *args, **kwargs: None)
    try:
        if photo is None:
            raise UserFacingError("Upload a photo with a face first.")
        image = read_upload(photo, "photo")
        target = read_upload(second, "second photo")

        def load(name, capability):
            return load_method_pipeline(ctx, name, capability, methods.get(name).default_model)

        result = compare(image, target, yaw=float(yaw), load=load,
                         progress=lambda fraction, text: progress(fraction, desc=text))
    except (UserFacingError, FaceHubImageError, ValueError) as err:
        return [], warning_status(str(err))
    except Exception as err:  # a bug must not show a traceback to the user; the log keeps it
        logger.exception("Comparison failed")
        return [], unexpected_status(err)
    note = "" if second is not None else "\n\nAdd a second photo to compare the swap methods too."
    return result.gallery(), html.escape(result.table(), quote=False) + note


@register_tab("Compare", order=40)
def build(ctx: DemoContext):
    """A photo, an optional second photo, a yaw slider; a gallery and a table of figures."""
    gr.Markdown("Every registered method on the same photo, with the same measurements: rotation (the pose measured "
                "on the result, identity distance to the input), 3D reconstruction (landmark agreement with the face "
                "analyzer) and, with a second photo as the target, swap (identity distance to source and target, "
                "and the 2D baseline).")
    with gr.Row():
        with gr.Column():
            photo = photo_upload(label="Photo", elem_id="facehub-compare-photo", height=300)
            gr.Examples(examples=[[p] for p in example_photos(*EXAMPLES)], inputs=[photo], label="Example photos",
                        elem_id="facehub-compare-examples")
            second = photo_upload(label="Second photo (swap target, optional)", elem_id="facehub-compare-second",
                                  height=200)
            yaw = gr.Slider(-60, 60, value=30, step=1, label="Rotation: yaw (degrees; > 0 turns towards the image's "
                            "right)")
            button = gr.Button("Compare", variant="primary", elem_id="facehub-compare-button")
        with gr.Column():
            gallery = gr.Gallery(label="Results", columns=3, height=420, elem_id="facehub-compare-gallery")
            table = gr.Markdown("Upload a photo (or click an example), then Compare.", elem_id="facehub-compare-table")

    def on_compare(photo, second, yaw, progress=gr.Progress()):  # noqa: B008
        return run_comparison(ctx, photo, second, yaw, progress)

    button.click(on_compare, inputs=[photo, second, yaw], outputs=[gallery, table], api_name="compare",
                 concurrency_id=COMPUTE)
    return None
