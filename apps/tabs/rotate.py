"""The "Rotate" tab: turn the face in a photo to a yaw and pitch, to the pose of a face in another photo, or to
the front.

Methods come from :data:`ROTATION_METHODS`, a registry of :class:`RotationMethod`: the tab's method picker lists
its keys, so a new method (e.g. a 3D reconstruction that re-renders the face) adds one entry and nothing else.

Public events (callable with ``gradio_client``):

- ``/rotate``: photo, method, model id, yaw, pitch, optional target photo -> rotated photo and a status message.
- ``/frontalize``: photo, method, model id -> frontalized photo (yaw = pitch = roll = 0) and a status message.

Angles are degrees in the house convention (yaw > 0 turns the face towards the image's right, pitch > 0 looks up).
Photos without a usable face, unreachable poses and unknown models give a status message and a ``gr.Warning``.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass

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

DEPTHNET_MODEL_ID = "facehub/depthnet"


@dataclass(frozen=True)
class RotationRequest:
    """What the user asked for. ``roll=None`` keeps the face's roll; ``target_image`` (if any) replaces the angles."""

    image: np.ndarray
    yaw: float
    pitch: float
    roll: float | None = None
    target_image: np.ndarray | None = None


@dataclass(frozen=True)
class RotationResult:
    """A rotated photo (RGB uint8) and a Markdown line saying what was done."""

    image: np.ndarray
    message: str


@dataclass(frozen=True)
class RotationMethod:
    """One entry of the method picker.

    Attributes:
        rotate: ``rotate(ctx, model_id, request) -> RotationResult``; raises ``FaceHubImageError`` or ``ValueError``
            with a user-facing message for photos or poses it cannot handle.
        model_classes: saved pipeline classes whose embedded checkpoints the model picker offers for this method.
        default_model: the checkpoint the picker starts with.
        description: one sentence shown under the picker.
    """

    rotate: Callable[[DemoContext, str, RotationRequest], RotationResult]
    model_classes: tuple[str, ...]
    default_model: str
    description: str


def _pose_text(pose) -> str:
    yaw, pitch, roll = pose
    return f"yaw {yaw:+.1f}, pitch {pitch:+.1f}, roll {roll:+.1f}"


def rotate_with_depthnet(ctx: DemoContext, model_id: str, request: RotationRequest) -> RotationResult:
    """DepthNet: target keypoints from a rotated 3D template (or the target photo), keypoint depths, 3D affine, warp."""
    from facehub.modeling.depthnet.pipeline_face_rotation import FaceRotationPipeline

    pipe = load_pipeline(ctx, model_id, FaceRotationPipeline)
    out = pipe(request.image, request.yaw, request.pitch, request.roll, target_image=request.target_image, measure=True)
    target = "the target photo's face" if request.target_image is not None else "the requested pose"
    measured = "not found again" if out.measured_pose is None else _pose_text(out.measured_pose)
    message = (
        f"Turned from ({_pose_text(out.face.pose)}) to {target} ({_pose_text(out.requested_pose)}); "
        f"measured on the result: {measured}.{face_count_note(out.num_faces, 'photo')}"
    )
    return RotationResult(out.image, message)


def _depthnet_method() -> RotationMethod:
    from facehub.modeling.depthnet.pipeline_face_rotation import DEPTHNET_BUNDLE_CLASSES

    return RotationMethod(
        rotate=rotate_with_depthnet,
        model_classes=DEPTHNET_BUNDLE_CLASSES,
        default_model=DEPTHNET_MODEL_ID,
        description="Warps the photo with keypoint depths and a 3D affine (DepthNet); only the visible half of the "
        "face can be shown.",
    )


def rotate_with_reconstruction(ctx: DemoContext, model_id: str, request: RotationRequest) -> RotationResult:
    """PRN-Dense: reconstruct the face's dense mesh, turn it and re-render it textured with the photo (the
    face-profiling warp of :func:`facehub.modeling.geometry.profiling.rotate_face`)."""
    from facehub.modeling.geometry.profiling import rotate_face
    from facehub.modeling.prn_dense import FaceReconstructionPipeline

    pipe = load_pipeline(ctx, model_id, FaceReconstructionPipeline)
    faces = pipe(request.image)
    if not faces:
        raise UserFacingError("No face was found in the photo.")
    face = faces[0]
    yaw, pitch, roll = request.yaw, request.pitch, request.roll
    if request.target_image is not None:
        targets = pipe(request.target_image)
        if not targets:
            raise UserFacingError("No face was found in the target pose photo.")
        yaw, pitch, roll = targets[0].pose
    if abs(yaw) > 90 or abs(pitch) > 90:
        raise ValueError(f"Cannot turn a face to yaw {yaw:.0f}, pitch {pitch:.0f}: both must be within +-90 degrees.")
    image = rotate_face(request.image, face.vertices, yaw, pitch, roll)
    again = pipe(image)
    measured = _pose_text(again[0].pose) if again else "not found again"
    requested = _pose_text((yaw, pitch, face.pose[2] if roll is None else roll))
    message = (
        f"Turned from ({_pose_text(face.pose)}) to ({requested}); measured on the result: {measured}."
        f"{face_count_note(len(faces), 'photo')}"
    )
    return RotationResult(image, message)


def _reconstruction_method() -> RotationMethod:
    return RotationMethod(
        rotate=rotate_with_reconstruction,
        model_classes=("FaceReconstructionPipeline",),
        default_model="facehub/prn-dense",
        description="Reconstructs the dense 3D face (PRN-Dense), turns it and re-renders it with the photo's "
        "texture; the face region moves, hair and background stay.",
    )


#: The methods of the picker, by label.
ROTATION_METHODS: dict[str, RotationMethod] = {
    "DepthNet (keypoints)": _depthnet_method(),
    "3D reconstruction (PRN-Dense)": _reconstruction_method(),
}


def run_rotation(
    ctx: DemoContext, method_name: str | None, model_id: str | None, request_args: dict
) -> tuple[np.ndarray | None, str]:
    """Run a method on the tab's inputs; every failure becomes a status message (and a warning toast)."""
    from facehub.modeling.faces.image_io import FaceHubImageError

    try:
        method = ROTATION_METHODS.get(method_name or "")
        if method is None:
            raise UserFacingError(f"Unknown method {method_name!r}; choose one of: {', '.join(ROTATION_METHODS)}.")
        if request_args.get("image") is None:
            raise UserFacingError("Upload a photo with a face first.")
        result = method.rotate(ctx, (model_id or "").strip(), RotationRequest(**request_args))
    except (UserFacingError, FaceHubImageError, ValueError) as err:
        return None, warning_status(str(err))
    except Exception as err:  # a bug must not show a traceback to the user; the log keeps it
        logger.exception("Face rotation failed")
        return None, warning_status(f"Unexpected {type(err).__name__}: {err}. The server log has details.")
    return result.image, html.escape(result.message, quote=False)


def rotate(ctx, image, method_name, model_id, yaw, pitch, target_image) -> tuple[np.ndarray | None, str]:
    """The ``/rotate`` event (``roll`` kept; ``target_image`` replaces the sliders when given)."""
    request = {"image": image, "yaw": float(yaw), "pitch": float(pitch), "target_image": target_image}
    return run_rotation(ctx, method_name, model_id, request)


def frontalize(ctx, image, method_name, model_id) -> tuple[np.ndarray | None, str]:
    """The ``/frontalize`` event: yaw = pitch = roll = 0."""
    return run_rotation(ctx, method_name, model_id, {"image": image, "yaw": 0.0, "pitch": 0.0, "roll": 0.0})


@register_tab("Rotate", order=20)
def build(ctx: DemoContext) -> None:
    """A photo, method and model pickers, yaw / pitch sliders or a target photo, Rotate and Frontalize buttons."""
    first_name, first = next(iter(ROTATION_METHODS.items()))
    choices = model_choices(first.model_classes)
    gr.Markdown("Turn the face in a photo to a pose, to the pose of the face in another photo, or to the front.")
    with gr.Row():
        with gr.Column():
            image = gr.Image(label="Photo", type="numpy", image_mode="RGB", sources=["upload", "clipboard"])
            method = gr.Radio(choices=list(ROTATION_METHODS), value=first_name, label="Method")
            description = gr.Markdown(first.description)
            model = gr.Dropdown(
                choices=choices,
                value=default_model(choices, first.default_model),
                label="Model",
                info="A checkpoint for the method: an embedded default, a local folder or a Hub id.",
                allow_custom_value=True,
            )
            yaw = gr.Slider(-80, 80, value=25, step=1, label="Yaw (degrees; > 0 turns towards the image's right)")
            pitch = gr.Slider(-60, 60, value=0, step=1, label="Pitch (degrees; > 0 looks up)")
            with gr.Accordion("Or copy the pose of a face in another photo", open=False):
                target = gr.Image(label="Target pose photo", type="numpy", image_mode="RGB")
            with gr.Row():
                rotate_button = gr.Button("Rotate", variant="primary")
                frontalize_button = gr.Button("Frontalize")
        with gr.Column():
            result = gr.Image(label="Result", type="numpy", format="png", interactive=False)
            status = gr.Markdown("Upload a photo, then Rotate or Frontalize.")

    def method_changed(name: str):
        chosen = ROTATION_METHODS.get(name, first)
        options = model_choices(chosen.model_classes)
        return chosen.description, gr.update(choices=options, value=default_model(options, chosen.default_model))

    method.change(method_changed, inputs=method, outputs=[description, model], api_visibility="private")
    rotate_button.click(
        lambda *args: rotate(ctx, *args),
        inputs=[image, method, model, yaw, pitch, target],
        outputs=[result, status],
        api_name="rotate",
    )
    frontalize_button.click(
        lambda *args: frontalize(ctx, *args),
        inputs=[image, method, model],
        outputs=[result, status],
        api_name="frontalize",
    )
