"""The "Rotate" tab: turn the face in a photo to a yaw and pitch, to the pose of a face in another photo, or to the
front, with any registered method that has the ``rotation`` capability.

The method picker lists ``methods.available("rotation")`` (labelled with each method's title) and runs
``methods.load(name, "rotation", model=...)``: a new rotation method appears here by declaring the capability in
its ``MethodSpec``, with nothing to edit in the demo. Every rotation pipeline honours one call,
``pipe(image, yaw=..., pitch=..., roll=...)``, and reports the pose it asked for (``requested_pose``) and the pose
measured on its result (``achieved_pose``, ``None`` when no face is found again); the status shows both, and never
shows the requested pose as if it had been measured.

Public events (callable with ``gradio_client``):

- ``/rotate``: photo, method name, model id, yaw, pitch, optional target photo -> rotated photo and a status message.
- ``/frontalize``: photo, method name, model id -> the face turned to yaw = pitch = roll = 0 and a status message.

Angles are degrees in the house convention (yaw > 0 turns the face towards the image's right, pitch > 0 looks up).
Photos are uploaded as files and read by facehub's reader; unreadable photos, photos without a usable face,
unreachable poses and models the demo does not offer give a status message and a ``gr.Warning``.
"""

from __future__ import annotations

import html
import logging

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
    pose_text,
    read_upload,
    starting_method,
    unexpected_status,
    warning_status,
)

logger = logging.getLogger(__name__)

CAPABILITY = "rotation"
#: The method the picker starts on: the whole-head 3D rotation of the morphable-model fit, which ``facehub eval
#: rotation`` measures as the nearest to the requested pose, with no refused requests and no fold-overs (the
#: closing notes of the rotation issue give the figures). Any other registered method is one click away.
DEFAULT_METHOD = "face_fitting"
EXAMPLES = ("obama.jpg", "obama2.jpg", "astronaut.png")
PICTURE_HEIGHT = 400  # pixels: the photo and the result side by side, with the sliders and the status in view


def rotation_pipeline(ctx: DemoContext, method: str, model_id: str):
    """The method's rotation pipeline on ``model_id``, from the demo's cache."""
    return load_method_pipeline(ctx, method, CAPABILITY, model_id)


#: Degrees (yaw or pitch) by which a result may miss the request before the status says so in bold.
SHORT_OF_REQUEST = 10.0


def rotation_status(out, target_given: bool) -> str:
    """What was asked, what was measured on the result, and, where the two differ by more than
    :data:`SHORT_OF_REQUEST` degrees, that the method missed it (the measured pose is never called the requested
    one)."""
    requested, achieved = out.requested_pose, out.achieved_pose
    source = getattr(out, "source_pose", None)
    if source is None and getattr(out, "face", None) is not None:
        source = out.face.pose
    asked = "the target photo's face" if target_given else "the requested pose"
    lines = [f"Turned the face{'' if source is None else f' from ({pose_text(source)})'} towards {asked} "
             f"({pose_text(requested)})."]
    if achieved is None:
        lines.append("Measured on the result: no face was found again, so the pose reached is unknown.")
    else:
        errors = np.abs(np.subtract(achieved, requested)[:2])
        lines.append(f"Measured on the result: {pose_text(achieved)} (off by {errors[0]:.1f} degrees in yaw, "
                     f"{errors[1]:.1f} in pitch).")
        if errors.max() > SHORT_OF_REQUEST:
            lines.append(f"**The result misses the request by more than {SHORT_OF_REQUEST:.0f} degrees**: this "
                         "method does not reach this pose on this face (its model card says how far it turns; the "
                         "Compare tab runs every method on the same photo).")
    rendered = getattr(out, "rendered_pose", None)
    if rendered is not None and abs(rendered.yaw - requested.yaw) + abs(rendered.pitch - requested.pitch) > 0.5:
        lines.append(f"To reach it, the reconstructed head was turned to ({pose_text(rendered)}): a re-rendered face "
                     "reads as less turned than its geometry.")
    count = getattr(out, "num_faces", None)
    note = face_count_note(count, "photo") if isinstance(count, int) else ""
    return " ".join(lines) + note


def run_rotation(ctx: DemoContext, method: str | None, model_id: str | None, photo, pose: dict, target=None,
                 progress=None) -> tuple[np.ndarray | None, str]:
    """Rotate the uploaded ``photo`` with ``method``; every failure becomes a status message (and a toast).

    ``pose`` holds ``yaw``, ``pitch`` and optionally ``roll`` (absent: keep the face's roll); ``target`` (an upload)
    replaces them by the pose of its face.
    """
    from facehub.modeling.faces.image_io import FaceHubImageError

    progress = progress or (lambda *args, **kwargs: None)
    try:
        if photo is None:
            raise UserFacingError("Upload a photo with a face first.")
        progress(0.05, desc="Reading the photo")
        image = read_upload(photo, "photo")
        target_image = read_upload(target, "target pose photo")
        progress(0.15, desc="Loading the model")
        pipe = rotation_pipeline(ctx, method or "", model_id)
        progress(0.3, desc="Rotating and measuring the result")
        out = pipe(image, **pose, target_image=target_image, output_type="np")
        result = out.images[0]
        status = rotation_status(out, target_image is not None)
        progress(1.0, desc="Done")
    except (UserFacingError, FaceHubImageError, ValueError) as err:
        return None, warning_status(str(err))
    except Exception as err:  # a bug must not show a traceback to the user; the log keeps it
        logger.exception("Face rotation failed")
        return None, unexpected_status(err)
    return result, html.escape(status, quote=False)


def rotate(ctx, photo, method, model_id, yaw, pitch, target=None, progress=None):
    """The ``/rotate`` event (the face's roll is kept; a target photo replaces the sliders)."""
    try:
        pose = {"yaw": float(yaw), "pitch": float(pitch)}
    except (TypeError, ValueError):
        return None, warning_status("Yaw and pitch must be numbers of degrees.")
    return run_rotation(ctx, method, model_id, photo, pose, target, progress)


def frontalize(ctx, photo, method, model_id, progress=None):
    """The ``/frontalize`` event: yaw = pitch = roll = 0."""
    return run_rotation(ctx, method, model_id, photo, {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}, None, progress)


@register_tab("Rotate", order=20)
def build(ctx: DemoContext) -> TabRefresh:
    """A photo, method and model pickers, yaw / pitch sliders or a target photo, Rotate and Frontalize buttons."""
    from facehub import methods

    choices = method_choices(CAPABILITY)
    first = starting_method(CAPABILITY, DEFAULT_METHOD)
    models = model_choices(ctx, first, CAPABILITY) if first else []
    gr.Markdown("Turn the face in a photo to a pose, to the pose of the face in another photo, or to the front. "
                "The result says which pose was measured on it.")
    with gr.Row():
        with gr.Column():
            photo = photo_upload(label="Photo", elem_id="facehub-rotate-photo", height=PICTURE_HEIGHT)
            gr.Examples(examples=[[p] for p in example_photos(*EXAMPLES)], inputs=[photo], label="Example photos",
                        elem_id="facehub-rotate-examples")
            method = gr.Radio(choices=choices, value=first, label="Method")
            description = gr.Markdown(_describe(first))
            model = gr.Dropdown(
                choices=models,
                value=default_model(models, methods.get(first).default_model if first else None),
                label="Model",
                info="A checkpoint of the method: an embedded default or a model in the demo's models folder.",
                allow_custom_value=True,
            )
            yaw = gr.Slider(-80, 80, value=25, step=1, label="Yaw (degrees; > 0 turns towards the image's right)")
            pitch = gr.Slider(-60, 60, value=0, step=1, label="Pitch (degrees; > 0 looks up)")
            with gr.Accordion("Or copy the pose of a face in another photo", open=False):
                target = photo_upload(label="Target pose photo")
            with gr.Row():
                rotate_button = gr.Button("Rotate", variant="primary", elem_id="facehub-rotate-button")
                frontalize_button = gr.Button("Frontalize")
        with gr.Column():
            result = gr.Image(label="Result", type="numpy", format="png", interactive=False,
                              elem_id="facehub-rotate-result", height=PICTURE_HEIGHT)
            status = gr.Markdown("Upload a photo (or click an example), then Rotate or Frontalize.",
                                 elem_id="facehub-rotate-status")

    def method_changed(name: str):
        return _describe(name), model_picker_update(ctx, CAPABILITY, name)

    # A gr.Progress() default is how Gradio hands an event its progress bar.
    def on_rotate(photo, method, model, yaw, pitch, target, progress=gr.Progress()):  # noqa: B008
        return rotate(ctx, photo, method, model, yaw, pitch, target, progress)

    def on_frontalize(photo, method, model, progress=gr.Progress()):  # noqa: B008
        return frontalize(ctx, photo, method, model, progress)

    method.change(method_changed, inputs=method, outputs=[description, model], api_visibility="private")
    rotate_button.click(on_rotate, inputs=[photo, method, model, yaw, pitch, target], outputs=[result, status],
                        api_name="rotate", concurrency_id=COMPUTE)
    frontalize_button.click(on_frontalize, inputs=[photo, method, model], outputs=[result, status],
                            api_name="frontalize", concurrency_id=COMPUTE)
    return TabRefresh(fn=lambda name, current: model_picker_update(ctx, CAPABILITY, name, current),
                      inputs=[method, model], outputs=[model])


def _describe(name: str | None) -> str:
    """The picker's note on a method: its title, summary and paper."""
    from facehub import methods

    if not name or name not in methods.names():
        return "No rotation method is registered." if not name else ""
    spec = methods.get(name)
    return f"**{spec.title}** {spec.summary}\n\n*{spec.paper}*"
