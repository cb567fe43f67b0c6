"""Face swap by texture transfer, for any method that reconstructs a face in 3D (PRN-Dense, the morphable-model fit).

Steps, for a source photo (whose face is used) and a target photo (whose head, pose, expression, light and
background are kept):

1. **Reconstruction** of both faces (the method's own ``reconstruct_faces``).
2. **Geometry**: the mesh the source's face is drawn on, in the target's pixels: the target's own dense mesh, or, for
   a method that separates shape from pose and expression (the morphable-model fit), the source's shape at the
   target's pose and expression (:meth:`TextureSwapMixin.swap_geometry`).
3. **Texture**: the source's UV texture completed by symmetry (the parts its photo hid are there too), drawn on that
   mesh with a z-buffer and the triangles that face away culled
   (:func:`~facehub.modeling.geometry.texture_swap.render_uv_texture`).
4. **Mask**: the drawn pixels inside the hull of the geometry's 68 landmarks with the brows lifted
   (:func:`~facehub.modeling.geometry.texture_swap.swap_region`), shrunk by 2% of the face size and feathered; the
   target's glasses and fringe inside it are replaced, so none of their fragments stay inside the face.
5. **Blend**: Reinhard colour transfer to the target's skin inside the mask, then Poisson blending
   (:mod:`facehub.modeling.faces.compositing`), as the DepthNet swap does.

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
    as_image_list,
    broadcast,
    check_output_type,
    collate,
    convert_images,
    select_face,
)

#: Mask inset and feather as fractions of the face size (the square root of its landmark box's area).
MASK_INSET = 0.02
MASK_FEATHER = 0.04


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
        check_output_type(output_type)
        sources, sources_batched = as_image_list(source_image, "source_image")
        targets, targets_batched = as_image_list(target_image, "target_image")
        if len(sources) != len(targets) and 1 not in (len(sources), len(targets)):
            raise ValueError(
                f"`source_image` has {len(sources)} images and `target_image` has {len(targets)}; pass lists of the "
                "same length (swapped pair by pair), or one image on either side."
            )
        count = max(len(sources), len(targets))
        sources, targets = broadcast(sources, count, "source_image"), broadcast(targets, count, "target_image")
        results = [self._swap_one(source, target, source_face_index, target_face_index, color_transfer,
                                  min_interocular, measure)
                   for source, target in zip(sources, targets, strict=True)]
        images = convert_images([result.pop("image") for result in results], output_type)
        output = self.swap_output_class(images=images, **collate(results, sources_batched or targets_batched))
        return output if return_dict else output.to_tuple()

    def _swap_one(self, source, target, source_face_index, target_face_index, color_transfer, min_interocular,
                  measure) -> dict:
        import cv2

        from facehub.modeling.faces.compositing import alpha_blend, seamless_blend, transfer_color
        from facehub.modeling.geometry.texture_swap import render_uv_texture, swap_region

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
        texture = source_rec.dense_mesh(openings="closed", subdivision=1, texture="completed").texture
        mesh = geometry.dense_mesh(openings="closed", subdivision=1, texture="photo")
        timings["reconstruction"] = time.perf_counter() - start

        start = time.perf_counter()
        rendered, covered = render_uv_texture(target.shape[:2], mesh.vertices, mesh.triangles, mesh.uvs, texture)
        landmarks = np.asarray(geometry.landmarks68)[:, :2]
        width, height = np.ptp(landmarks, axis=0)
        size = float(np.sqrt(width * height))
        inside = (swap_region(landmarks, target.shape[:2]) & covered).astype(np.uint8)
        inset = max(1, int(round(MASK_INSET * size)))
        inside = cv2.erode(inside, np.ones((2 * inset + 1, 2 * inset + 1), np.uint8))
        feather = max(1.0, MASK_FEATHER * size / 2.0)
        mask = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), feather) * inside
        timings["render"] = time.perf_counter() - start

        start = time.perf_counter()
        image = target.copy()
        hard = mask > 0.5
        if hard.any():
            face = transfer_color(rendered, target, hard) if color_transfer else rendered
            image = seamless_blend(face, target, hard)
        timings["blend"] = time.perf_counter() - start

        measurements = {"output_face": None, "distance_to_source": None, "distance_to_target": None,
                        "landmark_error": None}
        if measure:
            start = time.perf_counter()
            measurements.update(self._measure_swap(image, source, target, source_face, target_face))
            timings["measure"] = time.perf_counter() - start
        return {
            "image": image,
            "rendered": rendered,
            "warped": alpha_blend(rendered, target, mask),
            "mask": mask,
            "faces": SourceTarget(source_face, target_face),
            "num_faces": SourceTarget(len(source_faces), len(target_faces)),
            "reconstructions": SourceTarget(source_rec, target_rec),
            "timings": timings,
            "repaired": False,
            **measurements,
        }

    def _measure_swap(self, image, source, target, source_face, target_face) -> dict:
        from facehub.modeling.faces.identity import face_distance
        from facehub.modeling.geometry.landmark_metrics import nme
        from facehub.modeling.pipeline_utils import measure_pose

        output_face, _ = measure_pose(self.find_faces, image, target_face.bbox)
        if output_face is None:
            return {}
        descriptor = self.embed(image, output_face)
        return {
            "output_face": output_face,
            "distance_to_source": float(face_distance(descriptor, self.embed(source, source_face))),
            "distance_to_target": float(face_distance(descriptor, self.embed(target, target_face))),
            "landmark_error": float(nme(output_face.landmarks68, target_face.landmarks68)),
        }
