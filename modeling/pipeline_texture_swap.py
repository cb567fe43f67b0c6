"""Face swap by texture transfer, for any method that reconstructs a face in 3D (PRN-Dense, the morphable-model fit).

Steps, for a source photo (whose face is used) and a target photo (whose head, pose, expression, light and
background are kept):

1. **Reconstruction** of both faces (the method's own ``reconstruct_faces``).
2. **Geometry**: the mesh the source's face is drawn on, in the target's pixels: the target's own dense mesh, or, for
   a method that separates shape from pose and expression (the morphable-model fit), the source's shape at the
   target's pose and expression (:meth:`TextureSwapMixin.swap_geometry`).
3. **Texture**: the source's UV texture completed by symmetry (the parts its photo hid are there too), with what
   the photo shows in front of the face (a lock of hair across a cheek) replaced by the mirror texels where those
   show skin (:attr:`TextureSwapMixin.swap_occluders`,
   :func:`~facehub.modeling.geometry.texture_completion.occluded_texels`), drawn on that mesh with a z-buffer and the
   triangles that face away culled
   (:func:`~facehub.modeling.geometry.texture_swap.render_uv_texture`).
4. **Mask**: the drawn pixels inside the hull of the geometry's 68 landmarks with the brows lifted
   (:func:`~facehub.modeling.geometry.texture_swap.swap_outline`), shrunk by 2% of the face size and feathered over
   4% (:func:`~facehub.modeling.faces.compositing.hull_mask`, as the DepthNet swap's mask); the
   target's glasses and fringe inside it are replaced, so none of their fragments stay inside the face.
5. **Blend**: Reinhard colour transfer to the target's skin inside the mask, then Poisson blending
   (:mod:`facehub.modeling.faces.compositing`), as the DepthNet swap does.

Steps 3-5 work in the box of the drawn face grown by the mask's blur and a margin (:func:`~facehub.modeling.geometry.
texture_swap.swap_box`): the result is the same as over the whole photo, and a large photo costs what its face does.

``measure=True`` finds the face on the result and reports its identity distances (dlib's 128-D descriptor, same
person below 0.6) to the source and the target faces.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from facehub.modeling.faces.analyzer import Face
from facehub.modeling.pipeline_utils import (
    MIN_INTEROCULAR_PIXELS,
    ImagePipelineOutput,
    SourceTarget,
    measure_swap,
    select_face,
    swap_each,
)


@dataclass
class TextureSwapPipelineOutput(ImagePipelineOutput):
    """What a :class:`TextureSwapMixin` pipeline returns.

    Attributes:
        images: the target photos with the source face (PIL, or (H, W, 3) uint8 arrays with ``output_type="np"``).
        rendered: (H, W, 3) uint8 the source texture drawn on the geometry (black where nothing was drawn).
        warped: (H, W, 3) uint8 the drawn face pasted on the target with the feathered mask, before colour transfer
            and blending (the same stage as the DepthNet swap's ``warped``).
        mask: (H, W) float32 in [0, 1], the feathered region that was replaced.
        faces: :class:`~facehub.modeling.pipeline_utils.SourceTarget` of the faces used.
        num_faces: :class:`~facehub.modeling.pipeline_utils.SourceTarget` of the faces found in each photo.
        reconstructions: :class:`~facehub.modeling.pipeline_utils.SourceTarget` of the two reconstructions.
        timings: seconds per stage (``analysis``, ``reconstruction``, ``render``, ``blend``, ``measure``).
        output_face: the face found on the result where the target's was (``measure=True``).
        distance_to_source, distance_to_target: its identity distances (``measure=True``; below 0.6 = same person).
        landmark_error: :func:`~facehub.modeling.geometry.landmark_metrics.nme` of ``output_face``'s landmarks
            against the target face's (``measure=True``).
        repaired: always ``False`` (no repair network is applied to a texture swap).

    For one swap every field but ``images`` holds one value; for lists, one value per swap.
    """

    rendered: np.ndarray | list[np.ndarray] | None = None
    warped: np.ndarray | list[np.ndarray] | None = None
    mask: np.ndarray | list[np.ndarray] | None = None
    faces: SourceTarget | list[SourceTarget] | None = None
    num_faces: SourceTarget | list[SourceTarget] | None = None
    reconstructions: SourceTarget | list[SourceTarget] | None = None
    timings: dict[str, float] | list[dict[str, float]] = field(default_factory=dict)
    output_face: Face | list[Face | None] | None = None
    distance_to_source: float | list[float | None] | None = None
    distance_to_target: float | list[float | None] | None = None
    landmark_error: float | list[float | None] | None = None
    repaired: bool | list[bool] = False


class TextureSwapMixin:
    """The swap contract by texture transfer (module docstring) for a pipeline with ``find_faces``, ``embed`` and
    ``reconstruct_faces(photo, faces, compute_depth=False, **swap_reconstruction_settings)``:
    ``pipe(source, target, target_face_index=0)`` -> :class:`TextureSwapPipelineOutput` with ``.images``."""

    swap_reconstruction_settings: dict = {}
    swap_output_class = TextureSwapPipelineOutput
    #: What becomes of hair or anything else the source photo shows in front of its face: ``"mirror"`` replaces it by
    #: the mirror texels where those show skin, ``"keep"`` draws it on the target as it is (step 3).
    swap_occluders: str = "mirror"

    def swap_geometry(self, target_photo: np.ndarray, source, target):
        """The reconstruction whose dense mesh the source's texture is drawn on: the target's own (override to put
        the source's shape at the target's pose)."""
        return target

    def __call__(self, source_image, target_image, *, source_face_index: int = 0, target_face_index: int = 0,
                 color_transfer: bool = True, min_interocular: float = MIN_INTEROCULAR_PIXELS, measure: bool = False,
                 output_type: str = "pil", return_dict: bool = True):
        """Put the source photo's face on the target photo's (module docstring).

        Args:
            source_image, target_image: RGB uint8 arrays, PIL images or paths; or lists (pair by pair, or one image
                on either side).
            source_face_index, target_face_index: which face of each photo (0 = the largest).
            color_transfer: match the drawn face's colours to the target's skin before blending.
            min_interocular: smallest accepted distance between a face's eye centres, pixels.
            measure: report the result's identity distances to the source and the target.
            output_type: ``"pil"`` (default) or ``"np"``; return_dict: ``False`` returns a tuple.

        Raises:
            FaceSelectionError: no face, no face at the index, or a face too small, naming the photo.
        """
        def swap_one(source, target):
            return self._swap_one(source, target, source_face_index, target_face_index, color_transfer,
                                  min_interocular, measure)

        return swap_each(swap_one, self.swap_output_class, source_image, target_image, output_type, return_dict)

    def _swap_one(self, source, target, source_face_index, target_face_index, color_transfer, min_interocular,
                  measure) -> dict:
        from facehub.modeling.faces.compositing import (
            FACE_MASK_FEATHER,
            FACE_MASK_INSET,
            alpha_blend,
            face_size,
            hull_mask,
            seamless_blend,
            transfer_color,
        )
        from facehub.modeling.geometry.texture_swap import render_uv_texture, swap_box, swap_outline

        timings: dict[str, float] = {}
        start = time.perf_counter()
        source_faces, target_faces = self.find_faces(source), self.find_faces(target)
        source_face = select_face(source_faces, "source photo", source_face_index, min_interocular)
        target_face = select_face(target_faces, "target photo", target_face_index, min_interocular)
        timings["analysis"] = time.perf_counter() - start

        start = time.perf_counter()
        settings = self.swap_reconstruction_settings
        source_rec = self.reconstruct_faces(source, [source_face], compute_depth=False, **settings)[0]
        target_rec = self.reconstruct_faces(target, [target_face], compute_depth=False, **settings)[0]
        geometry = self.swap_geometry(target, source_rec, target_rec)
        texture = source_rec.dense_mesh(openings="closed", subdivision=1, texture="completed",
                                        occluders=self.swap_occluders).texture
        mesh = geometry.dense_mesh(openings="closed", subdivision=1, texture="photo")
        timings["reconstruction"] = time.perf_counter() - start

        # Every step below works in the box of the drawn face: nothing outside it changes (module docstring).
        start = time.perf_counter()
        landmarks = np.asarray(geometry.mesh_landmarks68)[:, :2]  # the outline drawn on the photo
        size = face_size(landmarks)
        vertices, outline = np.asarray(mesh.vertices, np.float64), swap_outline(landmarks)
        x0, y0, x1, y1 = swap_box(np.vstack([vertices[:, :2], outline]), size, target.shape[:2])
        box = np.s_[y0:y1, x0:x1]
        crop = np.ascontiguousarray(target[box])
        drawn, covered = render_uv_texture(crop.shape[:2], vertices - [x0, y0, 0.0], mesh.triangles, mesh.uvs,
                                           texture)
        crop_mask = hull_mask(outline - [x0, y0], crop.shape[:2], inset=FACE_MASK_INSET * size,
                              feather=FACE_MASK_FEATHER * size) * covered
        timings["render"] = time.perf_counter() - start

        start = time.perf_counter()
        image, rendered, warped = target.copy(), np.zeros_like(target), target.copy()
        mask = np.zeros(target.shape[:2], dtype=np.float32)
        rendered[box], mask[box], warped[box] = drawn, crop_mask, alpha_blend(drawn, crop, crop_mask)
        hard = crop_mask > 0.5
        if hard.any():
            face = transfer_color(drawn, crop, hard) if color_transfer else drawn
            image[box] = seamless_blend(face, crop, hard)
        timings["blend"] = time.perf_counter() - start

        measurements = {"output_face": None, "distance_to_source": None, "distance_to_target": None,
                        "landmark_error": None}
        if measure:
            start = time.perf_counter()
            measurements.update(measure_swap(self, image, source, target, source_face, target_face))
            timings["measure"] = time.perf_counter() - start
        return {
            "image": image,
            "rendered": rendered,
            "warped": warped,
            "mask": mask,
            "faces": SourceTarget(source_face, target_face),
            "num_faces": SourceTarget(len(source_faces), len(target_faces)),
            "reconstructions": SourceTarget(source_rec, target_rec),
            "timings": timings,
            "repaired": False,
            **measurements,
        }
