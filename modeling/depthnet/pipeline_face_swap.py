"""Face swap with DepthNet (Moniz, Beckham et al. 2018, section 3.3, "Face Rotation, Replacement and Adversarial
Repair").

"We warp the face of one identity onto the geometry and background of another identity using DepthNet ... we paste
the rotated face by DepthNet onto the background of the target image and train a CycleGAN to map from the domain of
'swapped in faces' to the ground truth faces". Steps, for a source photo (whose face is used) and a target photo
(whose head, pose, place and background are kept):

1. **Analysis**: the 68 keypoints of the largest face (or ``face_index``) of each photo
   (:class:`facehub.modeling.faces.FaceAnalyzer`).
2. **Depth**: DepthNet infers the source keypoints' depths ``z_p`` from both keypoint sets and the 3D-to-2D affine
   ``m`` is solved in closed form (eq. 1-3, :func:`~facehub.modeling.depthnet.register_keypoints`), so the source
   face is turned to the target face's pose and geometry.
3. **Warp**: the source photo is warped onto the target's canvas with ``z_p`` and ``m`` (section 2.1 step 5,
   :func:`~facehub.modeling.depthnet.warp.warp_image`).
4. **Paste**: the face region is the convex hull of the registered keypoints ("the convex hull spanned by the
   keypoints", section 3.3), slightly inset, intersected with what the warp drew. ``warped`` is the warp pasted
   onto the target through that mask with a feathered edge: the paper's "swapped in faces" domain, the input of
   the repair network.
5. **Blend** (without a repair network): Reinhard colour transfer of the warped face to the target's skin inside
   the mask, then Poisson blending (``cv2.seamlessClone``) into the target
   (:mod:`facehub.modeling.faces.compositing`).
6. **Repair** (optional): the CycleGAN generator of section 3.3 maps ``warped`` to the final image through
   ``facehub.modeling.cyclegan.repair_face(generator, image, mask)`` when the pipeline has a ``repair`` component.

``measure=True`` finds the face again on the output and reports its identity distances (dlib's 128-D descriptor,
same person below 0.6) to the source and target faces and its landmark error against the target's keypoints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from diffusers import ModelMixin

from facehub.modeling.depthnet.modeling_depthnet import DepthNetModel
from facehub.modeling.depthnet.pipeline_depthnet import KeypointRegistration
from facehub.modeling.depthnet.pipeline_face_rotation import (
    DEPTHNET_BUNDLE_CLASSES,
    MIN_INTEROCULAR_PIXELS,
    DepthNetPipelineMixin,
    select_face,
)
from facehub.modeling.depthnet.warp import warp_image
from facehub.modeling.faces.analyzer import Face
from facehub.modeling.faces.compositing import (  # noqa: F401  (face_size re-exported for old imports)
    FACE_MASK_FEATHER,
    FACE_MASK_INSET,
    alpha_blend,
    face_size,
    hull_mask,
    seamless_blend,
    transfer_color,
)
from facehub.modeling.modeling_utils import FaceHubPipeline
from facehub.modeling.pipeline_utils import (
    ImagePipelineOutput,
    SourceTarget,
    measure_swap,
    swap_each,
)

#: The face mask's inset and feather (fractions of the face size), shared with every swap
#: (:data:`facehub.modeling.faces.compositing.FACE_MASK_INSET` and ``FACE_MASK_FEATHER``).
MASK_INSET = FACE_MASK_INSET
MASK_FEATHER = FACE_MASK_FEATHER


def mask_region(mask: np.ndarray, margin: int = 4) -> tuple[slice, slice]:
    """Row and column slices of the box holding ``mask > 0``, grown by ``margin`` pixels (clipped to the image)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return slice(0, 0), slice(0, 0)
    height, width = mask.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, height)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, width)),
    )


@dataclass
class FaceSwapPipelineOutput(ImagePipelineOutput):
    """What :class:`FaceSwapPipeline` returns.

    Attributes:
        images: the target photos with the source face (each the size of its target), one per swap: PIL images, or
            (H, W, 3) RGB uint8 arrays with ``output_type="np"``.
        warped: (H, W, 3) RGB uint8, the DepthNet warp pasted on the target with the feathered mask, before colour
            transfer, blending or repair (the repair network's input).
        mask: (H, W) float32 in [0, 1], the feathered face mask in the target photo.
        faces: :class:`SourceTarget` of the :class:`~facehub.modeling.faces.Face` used in each photo.
        num_faces: :class:`SourceTarget` of the number of faces found in each photo.
        registration: DepthNet's :class:`KeypointRegistration` of the source keypoints onto the target's.
        repaired: whether the repair network produced the image.
        timings: seconds per stage: ``analysis``, ``depth``, ``warp``, ``blend`` (``repair``, ``measure``).
        output_face: the face found on the result where the target face was (``measure=True``).
        distance_to_source, distance_to_target: identity distance of ``output_face`` to the source and the target
            face (``measure=True``; below 0.6 = same person).
        landmark_error: :func:`~facehub.modeling.geometry.landmark_metrics.nme` of ``output_face``'s landmarks
            against the target's (``measure=True``).

    For one swap every field but ``images`` holds one value; when a list was given (pairs, or one source over many
    targets) each is a list with one value per swap. ``.image`` (the first image as an array) is a deprecated alias.
    """

    warped: np.ndarray | list[np.ndarray]
    mask: np.ndarray | list[np.ndarray]
    faces: SourceTarget | list[SourceTarget]
    num_faces: SourceTarget | list[SourceTarget]
    registration: KeypointRegistration | list[KeypointRegistration]
    repaired: bool | list[bool] = False
    timings: dict[str, float] | list[dict[str, float]] = field(default_factory=dict)
    output_face: Face | list[Face | None] | None = None
    distance_to_source: float | list[float | None] | None = None
    distance_to_target: float | list[float | None] | None = None
    landmark_error: float | list[float | None] | None = None


#: Former name of :class:`FaceSwapPipelineOutput`.
FaceSwapOutput = FaceSwapPipelineOutput


class FaceSwapPipeline(DepthNetPipelineMixin, FaceHubPipeline):
    """Put the face of a source photo onto the head of a target photo (module docstring).

    ``swap = FaceSwapPipeline.from_pretrained("facehub/depthnet")``; ``out = swap(source_image, target_image)``;
    ``out.images[0]`` is the target photo with the source face.

    Components:
        depth_net: :class:`DepthNetModel`.
        repair: optional image-to-image generator (section 3.3's CycleGAN) applied by
            ``facehub.modeling.cyclegan.repair_face``; ``None`` (the default, and when the bundle has none) blends
            instead. Attach one with ``pipe.register_modules(repair=generator)`` so that ``save_pretrained`` keeps it.
    """

    loads_bundles_of = DEPTHNET_BUNDLE_CLASSES
    model_cpu_offload_seq = "depth_net->repair"
    _optional_components = ["repair"]

    def __init__(self, depth_net: DepthNetModel, repair: ModelMixin | None = None):
        super().__init__()
        self.register_modules(depth_net=depth_net, repair=repair)

    def face_mask(self, registered_keypoints: np.ndarray, drawn: np.ndarray) -> np.ndarray:
        """Feathered hull of the registered keypoints, inside the pixels the warp drew; float32 (H, W)."""
        size = face_size(registered_keypoints)
        hull = hull_mask(registered_keypoints, drawn.shape, inset=MASK_INSET * size, feather=MASK_FEATHER * size)
        return hull * drawn

    def __call__(
        self,
        source_image,
        target_image,
        *,
        source_face_index: int = 0,
        target_face_index: int = 0,
        color_transfer: bool = True,
        min_interocular: float = MIN_INTEROCULAR_PIXELS,
        measure: bool = False,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> FaceSwapPipelineOutput:
        """Swap the source photo's face onto the target photo's.

        Args:
            source_image, target_image: RGB uint8 arrays, PIL images or paths; or lists: two lists of the same
                length swap pair by pair, one source and a list of targets put that face on every target (and a
                list of sources with one target puts each face on that target).
            source_face_index, target_face_index: which face of each photo (0 = the largest).
            color_transfer: match the warped face's colours to the target skin before blending.
            min_interocular: smallest accepted distance between a face's eye centres, pixels.
            measure: report identity distances and the landmark error of the result (see
                :class:`FaceSwapPipelineOutput`).
            output_type: ``"pil"`` (default) or ``"np"`` for the ``images`` field.
            return_dict: ``False`` returns ``output.to_tuple()`` (``images`` first).

        Raises:
            FaceSelectionError: no face, no face at the index, or a face too small, naming the photo.
        """
        def swap_one(source, target):
            return self._swap_one(source, target, source_face_index, target_face_index, color_transfer,
                                  min_interocular, measure)

        return swap_each(swap_one, FaceSwapPipelineOutput, source_image, target_image, output_type, return_dict)

    def _swap_one(
        self, source, target, source_face_index, target_face_index, color_transfer, min_interocular, measure
    ) -> dict:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        source_faces, target_faces = self.find_faces(source), self.find_faces(target)
        source_face = select_face(source_faces, "source photo", source_face_index, min_interocular)
        target_face = select_face(target_faces, "target photo", target_face_index, min_interocular)
        timings["analysis"] = time.perf_counter() - start

        start = time.perf_counter()
        registration = self.register(source_face.landmarks68, target_face.landmarks68)
        timings["depth"] = time.perf_counter() - start

        start = time.perf_counter()
        warp = warp_image(
            source,
            source_face.landmarks68,
            registration.depths,
            registration.affine,
            output_size=target.shape[:2],
            background=target,
        )
        mask = self.face_mask(warp.keypoints, warp.mask)
        region = mask_region(mask)  # everything below only changes pixels in here
        warped = target.copy()
        warped[region] = alpha_blend(warp.image[region], target[region], mask[region])
        timings["warp"] = time.perf_counter() - start

        if self.repair is not None:
            start = time.perf_counter()
            image = self.repair_face(warped, mask)
            timings["repair"] = time.perf_counter() - start
        else:
            start = time.perf_counter()
            image = target.copy()
            image[region] = self.blend(warp.image[region], target[region], mask[region], color_transfer)
            timings["blend"] = time.perf_counter() - start

        measurements = {
            "output_face": None, "distance_to_source": None, "distance_to_target": None, "landmark_error": None
        }
        if measure:
            start = time.perf_counter()
            measurements.update(self.measure(image, source, target, source_face, target_face))
            timings["measure"] = time.perf_counter() - start
        return {
            "image": image,
            "warped": warped,
            "mask": mask,
            "faces": SourceTarget(source_face, target_face),
            "num_faces": SourceTarget(len(source_faces), len(target_faces)),
            "registration": registration,
            "repaired": self.repair is not None,
            "timings": timings,
            **measurements,
        }

    @staticmethod
    def blend(warped_face: np.ndarray, target: np.ndarray, mask: np.ndarray, color_transfer: bool) -> np.ndarray:
        """Colour-match the warped face to the target inside ``mask`` (Reinhard), then Poisson-blend it in."""
        inside = mask > 0.5
        face = transfer_color(warped_face, target, inside) if color_transfer else warped_face
        return seamless_blend(face, target, inside)

    def repair_face(self, warped: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The hook for section 3.3's adversarial repair: ``facehub.modeling.cyclegan.repair_face(self.repair,
        warped, mask)`` -> RGB uint8 of the same size. Imported only when a repair component is present."""
        try:
            from facehub.modeling.cyclegan import repair_face
        except ImportError as err:
            raise ImportError(
                f"This FaceSwapPipeline has a repair component ({type(self.repair).__name__}) but "
                f"facehub.modeling.cyclegan.repair_face cannot be imported ({err}). Install a facehub with the CycleGAN "
                "method, or drop the component with pipe.register_modules(repair=None) to blend without it."
            ) from err
        return np.asarray(repair_face(self.repair, warped, mask))

    def measure(
        self, image: np.ndarray, source: np.ndarray, target: np.ndarray, source_face: Face, target_face: Face
    ) -> dict:
        """``output_face``, identity distances and landmark error of a swap result ``image`` (see
        :class:`FaceSwapPipelineOutput`, :func:`~facehub.modeling.pipeline_utils.measure_swap`); empty when no face
        is found on ``image``."""
        return measure_swap(self, image, source, target, source_face, target_face)
