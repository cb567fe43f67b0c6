"""The "Reconstruct 3D" tab: one photo -> the textured 3D face mesh, viewable and downloadable, with any registered
method that has the ``reconstruction`` capability (today PRN-Dense, paper 003).

Public event (callable with ``gradio_client``):

- ``/reconstruct``: photo, model id, method name, whether to close the eyes and mouth -> the dense mesh as GLB
  (shown in ``gr.Model3D``: the whole UV position map as a mesh, textured with the texture completed by symmetry;
  :meth:`~facehub.modeling.prn_dense.FaceReconstruction.dense_mesh`), the photo with the 68 landmarks drawn, the depth
  image, a status message (what was measured: faces found, mesh size, pose, how much of the texture was hidden), the
  downloads (GLB, PLY with vertex colours, and a zip of OBJ + MTL + texture, all of the dense mesh), the completed UV
  texture and the per-texel visibility map (how well the photo showed each texel; the rest came from its mirror), and
  the morphable-model coefficients for methods that produce them (face fitting: :func:`coefficients_summary`).

Photos are uploaded as files and read by facehub's reader. Unreadable photos, photos without a face and models the
demo does not offer give a status message and a ``gr.Warning``, never a traceback. With several faces the largest is
reconstructed and the status says how many there were. The exports go to a per-request folder of the demo's
bounded temporary folder (``DemoContext.temp_folder``), removed when the process exits.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

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

CAPABILITY = "reconstruction"
#: The method the tab starts on when it is registered, otherwise the first registered one: the morphable-model fit,
#: which places the 68 landmarks and reads the pose closer to the truth than PRN-Dense in every yaw bin of AFLW2000-3D
#: (`facehub eval face_fitting` prints both rows) and fills the coefficients panel. PRN-Dense, one network
#: pass and several times faster (the reconstruction stage of `benchmarks/bench_rotation_swap.py`), is one click
#: away. The Rotate and Swap tabs start on the fit too.
DEFAULT_METHOD = "face_fitting"
EXAMPLES = ("obama.jpg", "biden.jpg", "astronaut.png")


def draw_landmarks(image: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
    """The photo with the 68 landmarks as green dots (radius grows with the face) and the jaw line."""
    import cv2

    canvas = np.ascontiguousarray(image.copy())
    points = np.asarray(landmarks68)[:, :2]
    radius = max(1, round(0.008 * float(np.ptp(points[:, 0]) + np.ptp(points[:, 1]))))
    cv2.polylines(canvas, [np.round(points[:17]).astype(np.int32)], False, (255, 255, 0), max(1, radius // 2),
                  cv2.LINE_AA)
    for x, y in points:
        cv2.circle(canvas, (round(float(x)), round(float(y))), radius, (0, 255, 0), -1, cv2.LINE_AA)
    return canvas


def depth_picture(depth: np.ndarray) -> np.ndarray:
    """A depth image (0 off the face, larger = nearer) as an RGB picture: near bright, far dark, background black."""
    import matplotlib

    depth = np.asarray(depth, dtype=np.float64)
    face = depth > 0
    picture = np.zeros((*depth.shape, 3), np.uint8)
    if face.any():
        low, high = np.percentile(depth[face], [1, 99])
        scaled = np.clip((depth - low) / max(high - low, 1e-6), 0, 1)
        coloured = (matplotlib.colormaps["magma"](scaled)[..., :3] * 255).astype(np.uint8)
        picture[face] = coloured[face]
    return picture


def visibility_picture(completion, scale: int = 1) -> np.ndarray:
    """A texture completion's per-texel visibility as an RGB picture (viridis: yellow seen, purple hidden; black off
    the face's UV footprint), enlarged ``scale`` times without smoothing."""
    import matplotlib

    from facehub.modeling.geometry.texture_completion import OUTSIDE

    picture = (matplotlib.colormaps["viridis"](np.clip(completion.visibility, 0, 1))[..., :3] * 255).astype(np.uint8)
    picture[completion.source == OUTSIDE] = 0
    return np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)


def export_downloads(reconstruction, folder: Path, openings: str = "closed") -> tuple[Path, Path, Path]:
    """GLB, PLY and a zip of the OBJ with its MTL and texture of the dense mesh, written under ``folder``."""
    glb, ply = folder / "face.glb", folder / "face.ply"
    reconstruction.export(glb, dense=True, openings=openings)
    reconstruction.export(ply, dense=True, openings=openings)
    obj_dir = folder / "obj"
    obj_dir.mkdir()
    reconstruction.export(obj_dir / "face.obj", dense=True, openings=openings)
    archive = folder / "face_obj.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(obj_dir.iterdir()):
            bundle.write(path, path.name)
    return glb, ply, archive


def coefficients_summary(reconstruction, head: int = 10) -> dict:
    """What the coefficients panel shows: a fit's head pose (the FaceAnalyzer's frame, as every method reports it)
    and its model rotation, scale, translation, lighting and the first ``head`` values of each coefficient group (with
    its length), rounded; a note for methods without coefficients."""
    coefficients = getattr(reconstruction, "coefficients", None)
    if coefficients is None:
        return {"note": "This method regresses a mesh, not morphable-model coefficients; pick face fitting for them."}

    def values(array, digits: int = 3) -> list:
        return np.round(np.asarray(array, np.float64), digits).tolist()

    summary = {"head pose (yaw, pitch, roll), degrees": values(reconstruction.pose, 1),
               "model rotation (yaw, pitch, roll), degrees": values(coefficients.rotation, 1),
               "scale (pixels per model unit)": round(float(coefficients.scale), 4),
               "translation (x, y, z), pixels": values(coefficients.translation, 1)}
    for name in ("identity", "expression", "albedo"):
        group = np.asarray(getattr(coefficients, name), np.float64).reshape(-1)
        summary[f"{name} ({len(group)} values, first {min(head, len(group))})"] = values(group[:head])
    summary["lighting (SH, 3 colours x 9)"] = values(np.asarray(coefficients.lighting).reshape(3, -1))
    return summary


def default_method() -> str | None:
    """:data:`DEFAULT_METHOD` when it is registered for reconstruction, else the first method that is (``None``: none
    is)."""
    return starting_method(CAPABILITY, DEFAULT_METHOD)


def reconstruct(ctx: DemoContext, photo, model_id: str | None, method: str | None = None, progress=None,
                close_openings: bool = True):
    """The ``/reconstruct`` event; see the module docstring for its outputs. ``photo`` is an upload (file path or
    bytes); ``method`` defaults to :func:`default_method`; ``close_openings``: the dense mesh's eyes and mouth are
    filled (else left open)."""
    from facehub.modeling.faces.image_io import FaceHubImageError

    progress = progress or (lambda *args, **kwargs: None)
    empty = (None, None, None, None, None, None)
    try:
        if photo is None:
            raise UserFacingError("Upload a photo with a face first.")
        progress(0.05, desc="Reading the photo")
        image = read_upload(photo, "photo")
        progress(0.15, desc="Loading the model")
        pipe = load_method_pipeline(ctx, method or default_method() or "", CAPABILITY, model_id)
        progress(0.3, desc="Reconstructing")
        reconstructions = pipe(image).reconstructions
        if not reconstructions:
            raise UserFacingError("No face was found in the photo. Try a photo where the face is clearly visible.")
        face = reconstructions[0]
        progress(0.6, desc="Completing the texture by symmetry")
        openings = "closed" if close_openings else "open"
        dense = face.dense_mesh(openings=openings)
        completion = face.texture_completion_at(len(dense.texture))  # the one the dense mesh is textured with
        progress(0.7, desc="Exporting GLB, PLY and OBJ")
        glb, ply, obj_zip = export_downloads(face, ctx.temp_folder("reconstruct-"), openings)
        landmarks, depth = draw_landmarks(image, face.landmarks68), depth_picture(face.depth)
        texture, visibility = completion.texture, visibility_picture(completion)
        progress(1.0, desc="Done")
    except (UserFacingError, FaceHubImageError, ValueError) as err:
        return None, None, None, warning_status(str(err)), *empty
    except Exception as err:  # a bug must not show a traceback to the user; the log keeps it
        logger.exception("3D reconstruction failed")
        return None, None, None, unexpected_status(err), *empty
    status = (
        f"**Reconstructed** a dense mesh of {len(dense.vertices):,} vertices and {len(dense.triangles):,} triangles, "
        f"eyes and mouth {'closed' if close_openings else 'left open'} (landmarks and pose come from its "
        f"{len(face.vertices)}-vertex mesh). Pose measured on the mesh: {pose_text(face.pose)} degrees. "
        f"{completion.hidden_fraction:.0%} of the texture was hidden in the photo and completed by symmetry."
        f"{face_count_note(len(reconstructions), 'photo')}"
    )
    return (str(glb), landmarks, depth, status, str(glb), str(ply), str(obj_zip), texture, visibility,
            coefficients_summary(face))


@register_tab("Reconstruct 3D", order=25)
def build(ctx: DemoContext) -> TabRefresh:
    """A photo, method and model pickers -> a 3D view, the landmarks, the depth image, the pose and the downloads."""
    from facehub import methods

    choices = method_choices(CAPABILITY)
    first = default_method()
    models = model_choices(ctx, first, CAPABILITY) if first else []
    gr.Markdown(
        "Reconstruct the face in a photo in 3D: the morphable-model fit (identity, expression, albedo, lighting and "
        "pose fitted to the photo) or PRN-Dense (a UV position map regressed from the photo in one pass). Either gives "
        "a dense mesh, its 68 landmarks and its pose; the side the photo hides is textured from the side it shows. "
        "Both put the jaw of the landmarks on the head's 3D jaw line, as 3D benchmarks (AFLW2000-3D) label it: on a "
        "turned face it runs inside the cheek's outline on the near side and behind the cheek on the far side. "
        "Drag the 3D view to turn it; download the mesh as GLB, PLY or OBJ."
    )
    with gr.Row():
        with gr.Column():
            photo = photo_upload(label="Photo")
            gr.Examples(examples=[[p] for p in example_photos(*EXAMPLES)], inputs=[photo], label="Example photos")
            method = gr.Radio(choices=choices, value=first, label="Method")
            model = gr.Dropdown(
                choices=models,
                value=default_model(models, methods.get(first).default_model if first else None),
                label="Model",
                info="A checkpoint of the method: an embedded default or a model in the demo's models folder.",
                allow_custom_value=True,
            )
            close_openings = gr.Checkbox(value=True, label="Close the eyes and mouth",
                                         info="Fill them with mesh (else they stay open holes).")
            run = gr.Button("Reconstruct", variant="primary")
            status = gr.Markdown("Upload a photo (or click an example), then Reconstruct.")
        with gr.Column():
            view = gr.Model3D(label="3D face (drag to turn)", clear_color=(0.1, 0.1, 0.1, 1.0))
    with gr.Row():
        landmarks = gr.Image(label="68 landmarks", type="numpy", format="png", interactive=False)
        depth = gr.Image(label="Depth (bright = near)", type="numpy", format="png", interactive=False)
    with gr.Row():
        texture = gr.Image(label="UV texture, completed by symmetry", type="numpy", format="png", interactive=False)
        visibility = gr.Image(label="Texel visibility in the photo (yellow = seen, purple = hidden, filled from the "
                              "mirror side)", type="numpy", format="png", interactive=False)
    coefficients = gr.JSON(label="Morphable-model coefficients (face fitting)")
    with gr.Row():
        glb = gr.File(label="GLB")
        ply = gr.File(label="PLY (vertex colours)")
        obj = gr.File(label="OBJ + MTL + texture (zip)")

    def method_changed(name: str):
        return model_picker_update(ctx, CAPABILITY, name)

    # A gr.Progress() default is how Gradio hands an event its progress bar.
    def on_reconstruct(photo, model, method, close_openings=True, progress=gr.Progress()):  # noqa: B008
        return reconstruct(ctx, photo, model, method, progress, close_openings=close_openings)

    method.change(method_changed, inputs=method, outputs=model, api_visibility="private")
    run.click(
        on_reconstruct,
        inputs=[photo, model, method, close_openings],
        outputs=[view, landmarks, depth, status, glb, ply, obj, texture, visibility, coefficients],
        api_name="reconstruct",
        concurrency_id=COMPUTE,
    )
    return TabRefresh(fn=lambda name, current: model_picker_update(ctx, CAPABILITY, name, current),
                      inputs=[method, model], outputs=[model])
