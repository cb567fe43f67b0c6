"""The "Generate" tab: draw faces of people who do not exist with any registered method that has the ``generation``
capability (``methods.available("generation")``; a new generator appears here by declaring the capability).

Every generation pipeline takes ``num_images``, a ``generator`` (the seed) and ``truncation_psi``. A pipeline with
controllable factors (``sample_factors``, DiscoFaceGAN) also gets one seed per factor and the pose in degrees: keep
the identity seed and change the expression seed to see the same person smile differently, or move the yaw slider
to turn them.

A pipeline that can embed real faces (``embed`` / ``edit``, DiscoFaceGAN's Sec. 5.2) also edits an uploaded photo:
the face is embedded, then given the expression or lighting of a seed, or turned, and pasted back. A pipeline whose
faces are 3D (``out.faces``, StyleFaceUV) shows one of them turned to a yaw and pitch, with its expression or
lighting from another seed, in a 3D view, with its GLB to download.

Public events (callable with ``gradio_client``): ``/generate``: method, model id, number of faces, seed, truncation,
expression seed, lighting seed, set-pose flag, yaw, pitch -> a gallery of faces and a status message;
``/edit_photo``: method, model id, photo, expression seed, lighting seed, set-pose flag, yaw, pitch -> a gallery
(the aligned face, its embedding, the edited face, the edited photo) and a status message; ``/face_3d``: method, model
id, seed, truncation, which face (1-based), yaw, pitch, expression seed, lighting seed -> the generated image and the
render side by side, the GLB (3D view and download) and a status message.
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
    load_method_pipeline,
    method_choices,
    model_choices,
    model_picker_update,
    photo_upload,
    read_upload,
    unexpected_status,
    warning_status,
)

logger = logging.getLogger(__name__)

CAPABILITY = "generation"
MAX_FACES = 8
MAX_SEED = 2**31 - 1


def _seed(value, name: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        seed = int(float(value))
    except (TypeError, ValueError):
        raise UserFacingError(f"The {name} must be a whole number.") from None
    if not 0 <= seed <= MAX_SEED:
        raise UserFacingError(f"The {name} must be between 0 and {MAX_SEED}.")
    return seed


def _generator(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


def _seeded_factors(draw, expression_seed, lighting_seed,
                    wording: str = "{Key} from seed {seed}.") -> tuple[dict, list[str]]:
    """The expression and lighting of the seeds given, each taken from ``draw(generator)`` (the factors drawn with
    that seed), and a status line for each."""
    factors, lines = {}, []
    for key, value in (("expression", expression_seed), ("lighting", lighting_seed)):
        own = _seed(value, f"{key} seed")
        if own is not None:
            factors[key] = draw(_generator(own))[key]
            lines.append(wording.format(Key=key.capitalize(), seed=own))
    return factors, lines


def run_generation(ctx: DemoContext, method: str | None, model_id: str | None, count, seed, truncation,
                   expression_seed=None, lighting_seed=None, set_pose: bool = False, yaw=0.0, pitch=0.0,
                   progress=None) -> tuple[list[np.ndarray], str]:
    """Draw ``count`` faces; every failure becomes a status message (and a toast)."""
    progress = progress or (lambda *args, **kwargs: None)
    try:
        count = int(count)
        if not 1 <= count <= MAX_FACES:
            raise UserFacingError(f"Ask for 1 to {MAX_FACES} faces.")
        seed = _seed(seed, "seed") or 0
        psi = float(truncation)
        if not 0.0 <= psi <= 1.0:
            raise UserFacingError("Truncation must be between 0 and 1.")
        progress(0.1, desc="Loading the model")
        pipe = load_method_pipeline(ctx, method or "", CAPABILITY, model_id)
        progress(0.4, desc="Generating")
        options = {"truncation_psi": psi, "output_type": "np"}
        lines = [f"{count} face(s), seed {seed}, truncation {psi:g}."]
        if hasattr(pipe, "sample_factors"):
            factors = pipe.sample_factors(count, generator=_generator(seed))
            seeded, seeded_lines = _seeded_factors(lambda g: pipe.sample_factors(count, generator=g),
                                                   expression_seed, lighting_seed)
            factors.update(seeded)
            lines += seeded_lines
            if set_pose:
                options.update(yaw=float(yaw), pitch=float(pitch))
            out = pipe(factors=factors, **options)
            poses = "; ".join(f"({p[0]:+.0f}, {p[1]:+.0f})" for p in out.factors["pose"].tolist())
            lines.append(f"Pose asked for, yaw and pitch in degrees: {poses}.")
        else:
            out = pipe(num_images=count, generator=_generator(seed), **options)
        progress(1.0, desc="Done")
    except (UserFacingError, ValueError) as err:
        return [], warning_status(str(err))
    except Exception as err:  # a bug must not show a traceback to the user; the log keeps it
        logger.exception("Face generation failed")
        return [], unexpected_status(err)
    return list(out.images), html.escape(" ".join(lines), quote=False)


def run_photo_edit(ctx: DemoContext, method: str | None, model_id: str | None, photo, expression_seed=None,
                   lighting_seed=None, set_pose: bool = False, yaw=0.0, pitch=0.0,
                   progress=None) -> tuple[list[np.ndarray], str]:
    """Embed the largest face of ``photo`` and change the factors asked for (a seed's expression or lighting, the
    pose); every failure becomes a status message (and a toast)."""
    from facehub.modeling.faces.image_io import FaceHubImageError
    from facehub.modeling.pipeline_utils import UnreachablePoseError

    progress = progress or (lambda *args, **kwargs: None)
    try:
        if photo is None:
            raise UserFacingError("Upload a photo with a face first.")
        image = read_upload(photo, "photo")
        progress(0.1, desc="Loading the model")
        pipe = load_method_pipeline(ctx, method or "", CAPABILITY, model_id)
        if not hasattr(pipe, "embed"):
            raise UserFacingError("This method cannot embed a photo; choose DiscoFaceGAN.")
        changes, lines = _seeded_factors(lambda g: pipe.sample_factors(1, generator=g), expression_seed,
                                         lighting_seed)
        if set_pose:
            changes.update(yaw=float(yaw), pitch=float(pitch))
            lines.append(f"Turned to yaw {float(yaw):+.0f}, pitch {float(pitch):+.0f} (asked).")
        progress(0.3, desc="Embedding the face")
        embedded = pipe.embed(image)
        progress(0.8, desc="Editing")
        out = pipe.edit(embedded, output_type="np", **changes)
        progress(1.0, desc="Done")
    except (UserFacingError, FaceHubImageError, UnreachablePoseError, ValueError) as err:
        return [], warning_status(str(err))
    except Exception as err:  # a bug must not show a traceback to the user; the log keeps it
        logger.exception("Photo editing failed")
        return [], unexpected_status(err)
    measured = embedded.face.pose
    lines.insert(0, f"Embedded the largest face (measured yaw {measured[0]:+.0f}, pitch {measured[1]:+.0f}); "
                    "shown: the aligned face, the generator's embedding of it, the edit, the photo with the edit.")
    if not changes:
        lines.append("Nothing changed: set a seed or the pose to edit.")
    pictures = [embedded.embedded.crop, embedded.embedded.reconstruction, out.crops, out.images[0]]
    return pictures, html.escape(" ".join(lines), quote=False)


def run_face_3d(ctx: DemoContext, method: str | None, model_id: str | None, seed, truncation, which=1, yaw=0.0,
                pitch=0.0, expression_seed=None, lighting_seed=None,
                progress=None) -> tuple[np.ndarray | None, str | None, str]:
    """Draw the faces of ``seed`` and show face ``which`` (1-based) in 3D: the generated image beside the face's
    render at ``yaw`` / ``pitch`` (with the expression or lighting of another seed's face), and its GLB."""
    progress = progress or (lambda *args, **kwargs: None)
    try:
        seed = _seed(seed, "seed") or 0
        which = int(which)
        if not 1 <= which <= MAX_FACES:
            raise UserFacingError(f"Pick a face from 1 to {MAX_FACES}.")
        psi = float(truncation)
        progress(0.1, desc="Loading the model")
        pipe = load_method_pipeline(ctx, method or "", CAPABILITY, model_id)
        out = pipe(num_images=which, generator=_generator(seed), truncation_psi=psi, output_type="np")
        if not getattr(out, "faces", None):
            raise UserFacingError("This method draws images only; choose StyleFaceUV for 3D faces.")
        face = out.faces[which - 1]
        changes, lines = _seeded_factors(lambda g: pipe(num_images=1, generator=g, output_type="np").faces[0]
                                         .coefficients, expression_seed, lighting_seed, "{Key} of seed {seed}'s face.")
        progress(0.6, desc="Rendering")
        render = np.asarray(face.render(yaw=float(yaw), pitch=float(pitch), output_type="np", **changes))
        image = out.images[which - 1]
        if render.shape != image.shape:
            from PIL import Image

            render = np.asarray(Image.fromarray(render).resize(image.shape[1::-1]))
        glb = face.export(ctx.temp_folder("face-3d-") / "face.glb")
        progress(1.0, desc="Done")
    except (UserFacingError, ValueError) as err:
        return None, None, warning_status(str(err))
    except Exception as err:  # a bug must not show a traceback to the user; the log keeps it
        logger.exception("3D face failed")
        return None, None, unexpected_status(err)
    lines.insert(0, f"Face {which} of seed {seed}: the generated image, then its 3D face rendered at yaw "
                    f"{float(yaw):+.0f}, pitch {float(pitch):+.0f} (a {face.renderer.num_vertices}-vertex mesh with "
                    "its diffuse and displacement maps).")
    return np.concatenate([image, render], axis=1), str(glb), html.escape(" ".join(lines), quote=False)


@register_tab("Generate", order=35)
def build(ctx: DemoContext) -> TabRefresh:
    """Method and model pickers, count, seeds, truncation, pose; a gallery of the faces."""
    from facehub import methods

    choices = method_choices(CAPABILITY)
    first = next((name for _, name in choices if methods.get(name).default_model), choices[0][1] if choices else None)
    models = model_choices(ctx, first, CAPABILITY) if first else []
    gr.Markdown("Generate faces of people who do not exist. With a controllable method, keep the seed and change "
                "only the expression or lighting seed, or set the pose, to change one factor of the same faces.")
    with gr.Row():
        with gr.Column():
            method = gr.Radio(choices=choices, value=first, label="Method")
            model = gr.Dropdown(choices=models,
                                value=default_model(models, methods.get(first).default_model if first else None),
                                label="Model", allow_custom_value=True,
                                info="An embedded default or a model in the demo's models folder.")
            count = gr.Slider(1, MAX_FACES, value=4, step=1, label="Faces")
            seed = gr.Number(value=0, precision=0, label="Seed (identity, and every factor without its own seed)")
            truncation = gr.Slider(0.0, 1.0, value=0.8, step=0.05,
                                   label="Truncation (lower: more typical faces, less variety)")
            with gr.Accordion("Factors (DiscoFaceGAN)", open=False):
                expression_seed = gr.Number(value=None, precision=0, label="Expression seed (empty: the seed)")
                lighting_seed = gr.Number(value=None, precision=0, label="Lighting seed (empty: the seed)")
                set_pose = gr.Checkbox(value=False, label="Set the pose")
                yaw = gr.Slider(-45, 45, value=0, step=1, label="Yaw (degrees; > 0 turns towards the image's right)")
                pitch = gr.Slider(-30, 30, value=0, step=1, label="Pitch (degrees; > 0 looks up)")
            button = gr.Button("Generate", variant="primary", elem_id="facehub-generate-button")
        with gr.Column():
            gallery = gr.Gallery(label="Faces", columns=4, elem_id="facehub-generate-gallery")
            status = gr.Markdown("Choose a method and press Generate.", elem_id="facehub-generate-status")

    def on_generate(method, model, count, seed, truncation, expression_seed, lighting_seed, set_pose, yaw, pitch,
                    progress=gr.Progress()):  # noqa: B008
        return run_generation(ctx, method, model, count, seed, truncation, expression_seed, lighting_seed, set_pose,
                              yaw, pitch, progress)

    with gr.Accordion("Edit a photo (DiscoFaceGAN: embed a real face, then change its factors)", open=False):
        with gr.Row():
            with gr.Column():
                photo = photo_upload(label="Photo", elem_id="facehub-generate-photo")
                edit_button = gr.Button("Embed and edit", elem_id="facehub-edit-photo-button")
                gr.Markdown("Uses the method and model above, and the factor seeds and pose of the Factors panel.")
            with gr.Column():
                edited = gr.Gallery(label="Aligned face, embedding, edit, edited photo", columns=4,
                                    elem_id="facehub-edit-photo-gallery")
                edit_status = gr.Markdown("Upload a photo and press Embed and edit.",
                                          elem_id="facehub-edit-photo-status")

    def on_edit(method, model, photo, expression_seed, lighting_seed, set_pose, yaw, pitch,
                progress=gr.Progress()):  # noqa: B008
        return run_photo_edit(ctx, method, model, photo, expression_seed, lighting_seed, set_pose, yaw, pitch,
                              progress)

    with gr.Accordion("3D face (StyleFaceUV: turn a generated face, change its expression and light, download it)",
                      open=False):
        with gr.Row():
            with gr.Column():
                which = gr.Slider(1, MAX_FACES, value=1, step=1, label="Which face of the seed")
                face_yaw = gr.Slider(-60, 60, value=30, step=1, label="Yaw of the 3D face (degrees)")
                face_pitch = gr.Slider(-30, 30, value=0, step=1, label="Pitch of the 3D face (degrees)")
                face_button = gr.Button("Show in 3D", elem_id="facehub-face-3d-button")
                gr.Markdown("Uses the method, model, seed and truncation above, and the expression and lighting seeds "
                            "of the Factors panel.")
            with gr.Column():
                side_by_side = gr.Image(label="Generated image | 3D face render", elem_id="facehub-face-3d-image")
                view = gr.Model3D(label="3D face (drag to turn; the GLB to download)", clear_color=(0.1, 0.1, 0.1, 1.0))
                face_status = gr.Markdown("Choose StyleFaceUV and press Show in 3D.", elem_id="facehub-face-3d-status")

    def on_face_3d(method, model, seed, truncation, which, yaw, pitch, expression_seed, lighting_seed,
                   progress=gr.Progress()):  # noqa: B008
        return run_face_3d(ctx, method, model, seed, truncation, which, yaw, pitch, expression_seed, lighting_seed,
                           progress)

    face_button.click(on_face_3d, inputs=[method, model, seed, truncation, which, face_yaw, face_pitch,
                                          expression_seed, lighting_seed],
                      outputs=[side_by_side, view, face_status], api_name="face_3d", concurrency_id=COMPUTE)
    edit_button.click(on_edit, inputs=[method, model, photo, expression_seed, lighting_seed, set_pose, yaw, pitch],
                      outputs=[edited, edit_status], api_name="edit_photo", concurrency_id=COMPUTE)
    method.change(lambda name: model_picker_update(ctx, CAPABILITY, name), inputs=method, outputs=model,
                  api_visibility="private")
    button.click(on_generate, inputs=[method, model, count, seed, truncation, expression_seed, lighting_seed,
                                      set_pose, yaw, pitch],
                 outputs=[gallery, status], api_name="generate", concurrency_id=COMPUTE)
    return TabRefresh(fn=lambda name, current: model_picker_update(ctx, CAPABILITY, name, current),
                      inputs=[method, model], outputs=[model])
