"""3D face reconstruction and dense alignment from one photo with PRN-Dense (seed 003; PRNet's inference recipe).

``FaceReconstructionPipeline.from_pretrained("facehub/prn-dense")(image).reconstructions`` holds one
:class:`~facehub.modeling.prn_dense.FaceReconstruction` per face, largest first (``[]`` when there is none); for a
list of images it is a list of such lists, one per image:

1. faces are found with :class:`facehub.modeling.faces.FaceAnalyzer` (MediaPipe, robust to large poses and rolls; no
   identity descriptor);
2. each face is cropped with :func:`~facehub.modeling.prn_dense.upright_crop_transform` (PRNet's square around the
   68 landmarks' box, no rotation; turned upright when the analyzer measures a roll beyond 20 degrees, which the
   network never saw in training) to the model's ``sample_size`` and normalised to [-1, 1];
3. all crops of the photo go through :class:`~facehub.modeling.prn_dense.PRNDenseModel` in batches, giving UV position
   maps in crop units; with ``flip_test`` (the default) each crop also goes through mirrored, and the two maps are
   averaged, and with ``crop_shift`` (the default) each face is read from four shifted crops as well (below);
4. each map is taken back to the photo's pixels and turned into a mesh, landmarks, pose, colours, texture and depth
   image (:func:`~facehub.modeling.prn_dense.reconstruction.build_reconstruction`); on demand, the whole map as a
   dense mesh (``rec.dense_mesh()``, ~30k vertices from a 128 px map, eyes and mouth closed or open) and the texture
   completed by symmetry (``rec.completed_texture``, ``rec.texture_visibility``).

:meth:`FaceReconstructionPipeline.reconstruct_faces` runs steps 2-4 on faces (or 68-landmark arrays) the caller
already has, e.g. ground-truth landmarks in an evaluation.

**Flip test.** The network's map of a face and the map of its mirror image, mirrored back
(:func:`~facehub.modeling.geometry.uv_maps.mirror_uv_position_map`: x to ``1 - x`` in crop units and every surface
point to its left-right partner), are two readings of the same face whose errors are partly independent; their mean
is the prediction. This test-time augmentation is ours (PRNet and seed 003 predict once). It doubles the network's
share of the time and lowers the landmark error in every yaw bin on the AFLW2000-3D half in ../shared/data and on
held-out synthetic faces, and the pose error too (the model card gives the figures). ``flip_test=False`` (per call,
or as the pipeline's attribute) predicts once, as the papers do. The default checkpoint trained with mirrored crops
(:mod:`facehub.trainers.prn_dense`), so a mirrored face is no stranger to it.

**Shifted crops** (``crop_shift``, default :data:`CROP_SHIFT`). Each face is also read from four crops moved along the
diagonals by a fraction of the crop's side, each with its flip test: the five crops of Krizhevsky et al.'s test-time
averaging (NIPS 2012, sec. 4.1), as the face-fitting regressor reads faces
(:meth:`~facehub.modeling.face_fitting.FaceCoefficientRegressor.predict`). Each map is taken into the centred crop's
units and the five are averaged. The network trained on crops shifted at random by up to PRNet's 0.1 of the box, so
each is as good a crop as the centred one, and their errors are partly independent. It multiplies the network's share
of the time by five again; ``crop_shift=0`` reads the centred crop alone (the model card gives both figures). Neither
average is in seed 003 or PRNet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.utils import BaseOutput

from facehub.modeling.faces.analyzer import Face
from facehub.modeling.faces.image_io import load_image
from facehub.modeling.faces.profile_detection import FaceBox
from facehub.modeling.modeling_utils import FaceHubPipeline
from facehub.modeling.pipeline_utils import FacePipelineMixin, as_image_list
from facehub.modeling.prn_dense.cropping import (
    UPRIGHT_ROLL_THRESHOLD,
    PosedLandmarks,
    check_crop_shift,
    crop_face_image,
    shift_crop,
    shifted_crop_offsets,
    upright_crop_transform,
)
from facehub.modeling.prn_dense.modeling_prn_dense import PRNDenseModel
from facehub.modeling.prn_dense.reconstruction import FaceReconstruction, build_reconstruction

#: How far the four shifted crops lie from the centred one along its diagonals, as a fraction of the crop's side
#: (module docstring, *shifted crops*): chosen on the AFLW2000-3D half of ../shared/data by reading the photos of even
#: number at 0.04, 0.06 and 0.08, and checked on those of odd number (the model card has the figures). The training
#: crops were shifted up to 0.1 of the landmark box's side (about 0.06 of the crop's).
CROP_SHIFT = 0.06


def crops_to_tensor(crops: np.ndarray) -> torch.Tensor:
    """(B, S, S, 3) RGB uint8 crops -> (B, 3, S, S) float32 in [-1, 1] (the model's input)."""
    array = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.uint8))
    return array.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@dataclass
class FaceReconstructionPipelineOutput(BaseOutput):
    """What :class:`FaceReconstructionPipeline` returns.

    Attributes:
        reconstructions: for one input image, a list of :class:`FaceReconstruction`, one per face, largest first
            (``[]`` when the photo has no face); for a list of images, a list of such lists, one per image.
    """

    reconstructions: list


class FaceReconstructionPipeline(FacePipelineMixin, FaceHubPipeline):
    """Photo -> 3D faces with PRN-Dense; component ``prn`` (:class:`PRNDenseModel`). See the module docstring.

    ``recs = pipe(image).reconstructions``; ``recs[0].landmarks68`` (68, 3), ``recs[0].vertices`` (the 468-vertex
    mesh), ``recs[0].dense_mesh()`` (the whole UV map as a mesh), ``recs[0].export("face.glb", dense=True)``.

    Attributes:
        upright_roll_threshold: faces the analyzer finds rolled by more than this many degrees are cropped upright
            (:func:`~facehub.modeling.prn_dense.upright_crop_transform`); ``float("inf")`` turns that off.
        flip_test: average each prediction with the mirrored prediction of the mirrored crop (module docstring,
            *flip test*); a call's ``flip_test=`` overrides it.
        crop_shift: also predict from four crops shifted along the diagonals by this fraction of the crop's side and
            average the five maps (module docstring, *shifted crops*); ``0`` reads the centred crop alone; a call's
            ``crop_shift=`` overrides it.
    """

    model_cpu_offload_seq = "prn"
    loads_bundles_of = ("FaceMeshRotationPipeline",)
    upright_roll_threshold = UPRIGHT_ROLL_THRESHOLD

    #: A face the analyzer missed can be reconstructed from a box alone (:meth:`reconstruct_faces`).
    reconstructs_from_boxes = True
    flip_test: bool = True
    crop_shift: float = CROP_SHIFT

    def __init__(self, prn: PRNDenseModel):
        super().__init__()
        self.register_modules(prn=prn)

    @property
    def crop_size(self) -> int:
        """Side of the face crops the model reads (its ``sample_size``)."""
        return int(self.prn.config.sample_size)

    @torch.no_grad()
    def predict_uv_position_maps(self, crops: np.ndarray, batch_size: int = 8, flip_test: bool | None = None
                                 ) -> np.ndarray:
        """(B, S, S, 3) RGB uint8 crops -> (B, U, U, 3) float32 UV position maps in crop units (model in eval mode);
        ``flip_test`` (default :attr:`flip_test`) averages them with the mirrored crops' maps, mirrored back."""
        crops = np.asarray(crops)
        size = self.crop_size
        if crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
            raise ValueError(f"Expected (B, {size}, {size}, 3) RGB crops, got an array of shape {crops.shape}.")
        model = self.prn
        parameter = next(model.parameters())
        was_training = model.training
        model.eval()
        outputs = []
        try:
            for start in range(0, len(crops), max(1, int(batch_size))):
                batch = crops_to_tensor(crops[start : start + batch_size]).to(parameter.device, parameter.dtype)
                predicted = model(batch).uv_position_map
                outputs.append(predicted.float().permute(0, 2, 3, 1).cpu().numpy())
        finally:
            model.train(was_training)
        if not outputs:
            return np.zeros((0, model.uv_size, model.uv_size, 3), dtype=np.float32)
        maps = np.concatenate(outputs)
        if self.flip_test if flip_test is None else flip_test:
            from facehub.modeling.geometry.uv_maps import mirror_uv_position_map

            flipped = self.predict_uv_position_maps(np.ascontiguousarray(crops[:, :, ::-1]), batch_size, False)
            # Crop units: the crop's side is 1, so a flip takes x to 1 - x.
            maps = 0.5 * (maps + np.stack([mirror_uv_position_map(m, 1.0) for m in flipped]))
        return maps

    def predict_face_uv_position_maps(self, photo: np.ndarray, transforms: list, *, batch_size: int = 8,
                                      flip_test: bool | None = None, crop_shift: float | None = None) -> np.ndarray:
        """One UV position map per face of ``photo`` (RGB uint8), each in the crop units of its (2, 3) image -> crop
        affine in ``transforms``. With ``crop_shift`` (default :attr:`crop_shift`) each face is also read from four
        crops shifted along the diagonals, and the five maps are averaged (module docstring, *shifted crops*)."""
        shift = check_crop_shift(self.crop_shift if crop_shift is None else crop_shift)
        size = self.crop_size
        offsets = shifted_crop_offsets(shift)
        crops = np.stack([crop_face_image(photo, shift_crop(transform, offset, size), size)
                          for transform in transforms for offset in offsets])
        maps = self.predict_uv_position_maps(crops, batch_size=batch_size, flip_test=flip_test)
        # A crop moved by an offset (fractions of its side) sees every point at its centred-crop position minus the
        # offset, so adding the offset back takes its map's x, y into the centred crop's units (z is unchanged: the
        # shift keeps the scale).
        maps = maps.reshape(len(transforms), len(offsets), *maps.shape[1:]).copy()
        maps[..., :2] += np.asarray(offsets, dtype=np.float32)[None, :, None, None, :]
        return maps.mean(axis=1)

    def reconstruct_faces(
        self, image, faces, *, batch_size: int = 8, compute_depth: bool = True, flip_test: bool | None = None,
        crop_shift: float | None = None,
    ) -> list[FaceReconstruction]:
        """Reconstruct given faces of a photo in one batched pass.

        Args:
            image: RGB uint8 array, PIL image, path or bytes.
            faces: :class:`~facehub.modeling.faces.Face` objects or (68, 2) / (68, 3) landmark arrays in the photo's
                pixels, one per face. A Face rolled beyond ``upright_roll_threshold`` is cropped upright; bare
                landmarks are cropped as they are (PRNet's square). A
                :class:`~facehub.modeling.faces.profile_detection.FaceBox` (a face the analyzer missed) is cropped
                around the landmark box it implies, then again, upright, around the 68 landmarks that first pass
                predicts.
            compute_depth: also z-buffer each mesh into a depth image.
            flip_test, crop_shift: override the pipeline's :attr:`flip_test` and :attr:`crop_shift` for this call.

        Returns:
            One :class:`FaceReconstruction` per given face, in order (a plain list: this is the lower-level call).
        """
        photo = load_image(image)
        faces = list(faces)
        if not faces:
            return []
        size = self.crop_size
        boxed = [i for i, face in enumerate(faces) if isinstance(face, FaceBox)]
        if boxed:  # a first pass from each box; the second crop follows the predicted landmarks and roll
            first = [upright_crop_transform(faces[i], size) for i in boxed]
            uv_maps = self.predict_face_uv_position_maps(photo, first, batch_size=batch_size, flip_test=flip_test,
                                                         crop_shift=crop_shift)
            faces = list(faces)
            for i, uv_map, transform in zip(boxed, uv_maps, first, strict=True):
                predicted = build_reconstruction(photo, uv_map, transform, size, compute_depth=False)
                faces[i] = PosedLandmarks(predicted.mesh_landmarks68, predicted.pose)  # crops are cut around these
        size = self.crop_size
        transforms = [upright_crop_transform(face, size, threshold=self.upright_roll_threshold) for face in faces]
        uv_maps = self.predict_face_uv_position_maps(photo, transforms, batch_size=batch_size, flip_test=flip_test,
                                                     crop_shift=crop_shift)
        return [
            build_reconstruction(
                photo, uv_map, transform, size, face=face if isinstance(face, Face) else None,
                compute_depth=compute_depth,
            )
            for face, uv_map, transform in zip(faces, uv_maps, transforms, strict=True)
        ]

    def __call__(
        self, image, *, max_faces: int | None = None, batch_size: int = 8, compute_depth: bool = True,
        flip_test: bool | None = None, crop_shift: float | None = None, return_dict: bool = True,
    ) -> FaceReconstructionPipelineOutput:
        """Reconstruct every face of ``image``, largest first.

        Faces come from the FaceAnalyzer; in a photo where it finds none (a face turned beyond about 60 degrees), from
        the fallback box detector (:meth:`find_faces_or_boxes`), each reconstructed from its box in two passes.

        Args:
            image: one image (RGB uint8 array, PIL image, path or bytes) or a list of them.
            max_faces: keep at most this many faces per image (the largest); ``None`` keeps all the analyzer found.
            batch_size: crops per network pass.
            compute_depth: also z-buffer each mesh into ``depth`` / ``face_mask``.
            flip_test: average each face's prediction with its mirror image's (default :attr:`flip_test`; module
                docstring).
            crop_shift: also read each face from four crops shifted by this fraction of the crop's side (default
                :attr:`crop_shift`; module docstring).
            return_dict: ``False`` returns ``(reconstructions,)``.

        Returns:
            :class:`FaceReconstructionPipelineOutput`: ``reconstructions`` is a list of :class:`FaceReconstruction`
            (``[]`` when the photo has no face) for one image, a list of such lists for a list of images.

        Raises:
            ImageReadError: an image cannot be read (missing, not an image, corrupt).
        """
        photos, batched = as_image_list(image)
        per_image = []
        for photo in photos:
            faces = self.find_faces_or_boxes(photo, max_faces)
            per_image.append(
                self.reconstruct_faces(photo, faces, batch_size=batch_size, compute_depth=compute_depth,
                                       flip_test=flip_test, crop_shift=crop_shift)
            )
        output = FaceReconstructionPipelineOutput(reconstructions=per_image if batched else per_image[0])
        return output if return_dict else output.to_tuple()
