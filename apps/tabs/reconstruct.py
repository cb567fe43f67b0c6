"""The "Reconstruct 3D" tab: one photo -> the textured 3D face mesh (PRN-Dense, paper 003), viewable and downloadable.

Public event (callable with ``gradio_client``):

- ``/reconstruct``: photo, model id -> the mesh as GLB (shown in ``gr.Model3D``), the photo with the 68 landmarks
  drawn, the depth image, a status message (faces found, pose), and the downloads (GLB, PLY with vertex colours, and
  a zip of OBJ + MTL + texture).

Photos without a face, unreadable uploads and unknown models give a status message and a ``gr.Warning``, never a
traceback. With several faces the largest is reconstructed and the status says how many there were.
"""

from __future__ import annotations

import logging
import tempfile
import zipfile
from pathlib import Path

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

DEFAULT_MODEL_ID = "facehub/prn-dense"
MODEL_CLASSES = ("FaceReconstructionPipeline",)


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


def export_downloads(reconstruction, folder: Path) -> tuple[Path, Path, Path]:
    """GLB, PLY and a zip of the OBJ with its MTL and texture, written under ``folder``."""
    glb, ply = folder / "face.glb", folder / "face.ply"
    reconstruction.export(glb)
    reconstruction.export(ply)
    obj_dir = folder / "obj"
    obj_dir.mkdir()
    reconstruction.export(obj_dir / "face.obj")
    archive = folder / "face_obj.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(obj_dir.iterdir()):
            bundle.write(path, path.name)
    return glb, ply, archive


def reconstruct(ctx: DemoContext, image: np.ndarray | None, model_id: str | None):
    """The ``/reconstruct`` event; see the module docstring for its outputs."""
    from facehub.modeling.faces.image_io import FaceHubImageError
    from facehub.modeling.prn_dense import FaceReconstructionPipeline

    empty = (None, None, None)
    try:
        if image is None:
            raise UserFacingError("Upload a photo with a face first.")
        pipe = load_pipeline(ctx, model_id, FaceReconstructionPipeline)
        reconstructions = pipe(image)
        if not reconstructions:
            raise UserFacingError("No face was found in the photo. Try a photo where the face is clearly visible.")
        face = reconstructions[0]
        folder = Path(tempfile.mkdtemp(prefix="facehub-reconstruct-"))
        glb, ply, obj_zip = export_downloads(face, folder)
    except (UserFacingError, FaceHubImageError, ValueError) as err:
        return None, None, None, warning_status(str(err)), *empty
    except Exception as err:  # a bug must not show a traceback to the user; the log keeps it
        logger.exception("3D reconstruction failed")
        message = f"Unexpected {type(err).__name__}: {err}. The server log has details."
        return None, None, None, warning_status(message), *empty
    yaw, pitch, roll = face.pose
    status = (
        f"**Reconstructed** {len(face.vertices)} vertices, {len(face.triangles)} triangles. Pose: yaw {yaw:+.1f}, "
        f"pitch {pitch:+.1f}, roll {roll:+.1f} degrees.{face_count_note(len(reconstructions), 'photo')}"
    )
    return (str(glb), draw_landmarks(image, face.landmarks68), depth_picture(face.depth), status, str(glb), str(ply),
            str(obj_zip))


@register_tab("Reconstruct 3D", order=25)
def build(ctx: DemoContext) -> None:
    """A photo and a model picker -> a 3D view, the landmarks, the depth image, the pose and the downloads."""
    choices = model_choices(MODEL_CLASSES)
    gr.Markdown(
        "Reconstruct the face in a photo in 3D (PRN-Dense: a UV position map regressed from the photo gives a dense "
        "mesh, its 68 landmarks and its pose). Drag the 3D view to turn it; download the mesh as GLB, PLY or OBJ."
    )
    with gr.Row():
        with gr.Column():
            image = gr.Image(label="Photo", type="numpy", image_mode="RGB", sources=["upload", "clipboard"])
            model = gr.Dropdown(
                choices=choices,
                value=default_model(choices, DEFAULT_MODEL_ID),
                label="Model",
                info="A PRN-Dense checkpoint: an embedded default, a local folder or a Hub id.",
                allow_custom_value=True,
            )
            run = gr.Button("Reconstruct", variant="primary")
            status = gr.Markdown("Upload a photo, then Reconstruct.")
        with gr.Column():
            view = gr.Model3D(label="3D face (drag to turn)", clear_color=(0.1, 0.1, 0.1, 1.0))
    with gr.Row():
        landmarks = gr.Image(label="68 landmarks", type="numpy", interactive=False)
        depth = gr.Image(label="Depth (bright = near)", type="numpy", interactive=False)
    with gr.Row():
        glb = gr.File(label="GLB")
        ply = gr.File(label="PLY (vertex colours)")
        obj = gr.File(label="OBJ + MTL + texture (zip)")
    run.click(
        lambda i, m: reconstruct(ctx, i, m),
        inputs=[image, model],
        outputs=[view, landmarks, depth, status, glb, ply, obj],
        api_name="reconstruct",
    )
