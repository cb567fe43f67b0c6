"""3D face reconstruction by fitting the morphable model: photo -> one :class:`FittedFace` per face.

``FaceFittingPipeline.from_pretrained("facehub/face-fitting")(image).reconstructions`` holds one
:class:`~facehub.modeling.face_fitting.FittedFace` per face, largest first (``[]`` when there is none); for a list of
images, a list of such lists. A :class:`FittedFace` is a :class:`~facehub.modeling.prn_dense.FaceReconstruction`
(``landmarks68``, ``vertices``, ``triangles``, ``colors``, ``pose``, ``texture``, ``export(path)``), so code written
for PRN-Dense's reconstructions takes these too, plus ``.coefficients`` (:class:`FaceCoefficients`),
``.visibility``, ``.texture_completion`` and ``.losses``.

1. faces are found with :class:`facehub.modeling.faces.FaceAnalyzer` (68 and 468 dense landmarks with depth);
2. each face is fitted by :func:`~facehub.modeling.face_fitting.fit_face` with the settings of the bundle's
   ``fitter`` component (:class:`~facehub.modeling.face_fitting.FaceFitter`: no learned weights, only the fit's
   configuration; seconds per face on a CPU), from the mean face (default) or, with ``start="regressor"``, from the
   bundle's optional ``regressor`` (:class:`~facehub.modeling.face_fitting.FaceCoefficientRegressor`); or replaced by
   the regressor's prediction alone with ``pipe(image, refine=False)`` (milliseconds per face). Each reading is the
   mean of the regressor's readings of the face's crop, four shifted crops and their mirrors (``regressor_flip_test``,
   ``regressor_crop_shift``). With a regressor, a face it reads as turned beyond ``regressor_beyond_yaw``, or whose
   analyzer landmarks its reading contradicts (``regressor_beyond_disagreement``), keeps that reading instead of
   being fitted. A reading kept as a result that is turned beyond ``regressor_recrop_beyond_yaw`` or contradicts
   the landmarks its crop was cut around is read ``regressor_rereads`` more times, each from a crop cut around the
   previous reading, and becomes the median of its readings. A face that is fitted takes the regressor's reading as
   a second observation of its landmarks, trusted more the more the reading finds the face turned
   (``regressor_reading_weight``): the analyzer's landmarks are the better reader of a frontal face, and lose that
   lead as the face turns.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffusers.utils import BaseOutput

from facehub.modeling.face_fitting.configuration_face_fitting import READING_WEIGHT_FULL_AT_YAW, FaceFitter
from facehub.modeling.face_fitting.fitting import FittedFace
from facehub.modeling.face_fitting.modeling_face_regressor import (
    FaceCoefficientRegressor,
    fitted_face_from_coefficients,
    landmark_disagreement,
    median_reading,
    posed_mesh,
    reading_landmarks68,
)
from facehub.modeling.faces.image_io import load_image
from facehub.modeling.faces.profile_detection import FaceBox
from facehub.modeling.modeling_utils import FaceHubPipeline
from facehub.modeling.pipeline_utils import FacePipelineMixin, as_image_list
from facehub.modeling.prn_dense.cropping import PosedLandmarks


@dataclass
class FaceFittingPipelineOutput(BaseOutput):
    """What :class:`FaceFittingPipeline` returns.

    Attributes:
        reconstructions: for one input image, a list of :class:`~facehub.modeling.face_fitting.FittedFace`, one per
            face, largest first (``[]`` when the photo has no face); for a list of images, a list of such lists.
        coefficients: the same nesting with each face's :class:`~facehub.modeling.face_fitting.FaceCoefficients`.
    """

    reconstructions: list
    coefficients: list


class FaceFittingPipeline(FacePipelineMixin, FaceHubPipeline):
    """Photo -> 3D faces by morphable-model fitting; component ``fitter`` (:class:`FaceFitter`). See the module
    docstring.

    ``recs = pipe(image).reconstructions``; ``recs[0].landmarks68`` (68, 3), ``recs[0].coefficients.identity``,
    ``recs[0].export("face.glb")``.
    """

    model_cpu_offload_seq = "fitter"
    _optional_components = ["regressor"]

    def __init__(self, fitter: FaceFitter, regressor: FaceCoefficientRegressor | None = None):
        super().__init__()
        self.register_modules(fitter=fitter, regressor=regressor)

    def _crop_landmarks(self, faces) -> list:
        """What the regressor's crop is cut around: a Face, or the 68 iBUG combinations of a bare (468, 2 or 3)
        dense-landmark array."""
        import numpy as np

        weights = self.fitter.face_model.landmark_weights.double().numpy()
        return [face if hasattr(face, "landmarks68") or np.asarray(face).shape[0] != weights.shape[1]
                else weights @ np.asarray(face, np.float64)[:, :2] for face in faces]

    def regress(self, image, faces, flip_test: bool | None = None, reread: bool = True) -> list:
        """The ``regressor``'s :class:`~facehub.modeling.face_fitting.FaceCoefficients` of given faces (one forward
        pass each, two with the flip test: default the fitter's ``regressor_flip_test``; a reading turned further
        than the fitter's ``regressor_recrop_beyond_yaw``, or contradicting the given landmarks, is read again around
        its own landmarks, :meth:`_read_doubtful_again`; ``reread=False`` returns every first reading, the one the
        fit's switch decides on); a one-line ``ValueError`` when the bundle has no regressor."""
        settings = self.fitter.config_with(**({} if flip_test is None else {"regressor_flip_test": flip_test}))
        return self._regress(image, faces, settings, reread=reread)[0]

    def _read(self, image, sources: list, settings) -> list:
        """The regressor's readings of crops cut around ``sources`` (faces, boxes,
        :class:`~facehub.modeling.prn_dense.cropping.PosedLandmarks`) with the settings' flip test, shifted crops
        (``regressor_crop_shift``) and upright crops (``regressor_upright_beyond_roll``)."""
        return self.regressor.predict(image, sources, face_model=self.fitter.face_model,
                                      flip_test=settings.regressor_flip_test,
                                      upright_beyond_roll=settings.regressor_upright_beyond_roll,
                                      crop_shift=settings.regressor_crop_shift)

    def _regress(self, image, faces, settings, reread: bool = True) -> tuple[list, list]:
        """:meth:`regress` with these settings (a :class:`~facehub.modeling.face_fitting.FaceFittingConfig`), and
        what each face's crop was cut around (the result's ``image_to_crop``); ``reread=False`` keeps every first
        reading (:meth:`_read_doubtful_again` not applied)."""
        if getattr(self, "regressor", None) is None:
            raise ValueError("This face-fitting bundle has no coefficient regressor; load one that has "
                             "(facehub/face-fitting) or call with refine=True to fit from the mean face.")
        crop_sources = self._crop_landmarks(faces)
        coefficients = self._read(image, crop_sources, settings)
        _keep_landmark_depth(coefficients, faces)
        if reread:
            self._read_doubtful_again(image, faces, coefficients, crop_sources, settings)
        return coefficients, crop_sources

    def _read_doubtful_again(self, image, faces, coefficients: list, crop_sources: list, settings) -> None:
        """In place: each face whose reading is in doubt is read again ``regressor_rereads`` times, each time from
        the crop cut around the previous reading's 68 landmarks (3DDFA_V2 re-crops around its own landmarks), and
        takes the coefficient-wise median of all its readings (:func:`median_reading`; with one re-read, the re-read
        alone: the first is the one in doubt). The last crop's landmarks become its crop source.

        A reading is in doubt when it is turned further than ``regressor_recrop_beyond_yaw`` (the crop was cut around
        landmarks the analyzer places poorly on near-profiles), or when it contradicts the landmarks its crop was cut
        around by more than ``regressor_beyond_disagreement`` (then the crop is as suspect as those landmarks)."""
        if settings.regressor_rereads == 0:
            return
        doubtful = [i for i, (c, source) in enumerate(zip(coefficients, crop_sources, strict=True))
                    if self._turned_or_contradicting(c, source, settings, settings.regressor_recrop_beyond_yaw)]
        if not doubtful:
            return
        readings = {i: [coefficients[i]] for i in doubtful}
        for _ in range(settings.regressor_rereads):
            own = [self._landmarks68_of(readings[i][-1]) for i in doubtful]
            again = self._read(image, own, settings)
            _keep_landmark_depth(again, [faces[i] for i in doubtful])
            for i, reading, source in zip(doubtful, again, own, strict=True):
                readings[i].append(reading)
                crop_sources[i] = source
        for i in doubtful:
            coefficients[i] = readings[i][-1] if len(readings[i]) == 2 else median_reading(readings[i])

    def _turned_or_contradicting(self, coefficients, crop_source, settings, beyond_yaw: float | None) -> bool:
        """Whether a reading is turned further than ``beyond_yaw`` (|yaw| degrees; ``None``: never), or its 68
        landmarks lie further than ``regressor_beyond_disagreement`` from the given ones (``crop_source``: a Face,
        :class:`~facehub.modeling.prn_dense.cropping.PosedLandmarks` or (68, 2) landmarks). With
        ``regressor_beyond_yaw`` it says whether a face keeps the reading instead of being fitted; with
        ``regressor_recrop_beyond_yaw``, whether the reading is in doubt and read again (:meth:`_read_doubtful_again`)."""
        if beyond_yaw is not None and abs(float(coefficients.rotation[0])) > beyond_yaw:
            return True
        limit = settings.regressor_beyond_disagreement
        if limit is None:
            return False
        given = getattr(crop_source, "landmarks68", crop_source)
        return landmark_disagreement(coefficients, given, self.fitter.face_model) > limit

    def _landmarks68_of(self, coefficients) -> PosedLandmarks:
        """The 68 mesh landmarks of a reading ((68, 2) float64 photo pixels), what the regressor's second crop is cut
        around, with the reading's head pose (its roll turns that crop upright)."""
        model = self.fitter.face_model
        return PosedLandmarks(reading_landmarks68(coefficients, model), tuple(model.head_pose(coefficients.rotation)))

    @property
    def reconstructs_from_boxes(self) -> bool:
        """Whether a face the analyzer missed can be reconstructed from a box alone: with a regressor only."""
        return getattr(self, "regressor", None) is not None

    def _locate(self, photo, boxes: list, settings) -> list:
        """The 68 landmarks (photo pixels) the regressor reads from a crop around each
        :class:`~facehub.modeling.faces.profile_detection.FaceBox`: the first of two passes."""
        if getattr(self, "regressor", None) is None:
            raise ValueError("A face found by its box alone (the analyzer missed it) is read by the coefficient "
                             "regressor, and this face-fitting bundle has none; load one that has (facehub/face-fitting).")
        return [self._landmarks68_of(coefficients) for coefficients in self._read(photo, boxes, settings)]

    def reconstruct_faces(self, image, faces, *, initial=None, compute_depth: bool = True, refine: bool = True,
                          start: str = "mean", **overrides) -> list[FittedFace]:
        """Fit given faces of a photo.

        Args:
            image: RGB uint8 array, PIL image, path or bytes.
            faces: :class:`~facehub.modeling.faces.Face` objects or (468, 3) / (468, 2) dense landmark arrays in the
                photo's pixels, one per face; or a :class:`~facehub.modeling.faces.profile_detection.FaceBox` (a face
                the analyzer missed): the regressor reads it from a crop around the box, then again around the 68
                landmarks of that first pass, and its prediction is the result (there are no landmarks to fit to).
            initial: per face, :class:`~facehub.modeling.face_fitting.FaceCoefficients` to start the fit from (a
                regressor's prediction) or ``None`` (see ``start``).
            start: where a fit without ``initial`` starts: ``"mean"`` (the mean face, the camera in closed form from
                the landmarks) or ``"regressor"`` (the bundle's regressor's prediction). With the analyzer's 468
                landmarks the closed-form start reaches a lower landmark error in few iterations (measured on
                synthetic faces), so it is the default; the regressor's start is for faces with few landmarks.
            compute_depth: also z-buffer each mesh into ``depth`` / ``face_mask``.
            overrides: fields of :class:`~facehub.modeling.face_fitting.FaceFittingConfig` to change for this call
                (``appearance_iterations=0``, ``render_size=64``...).
            refine: ``False`` skips the optimisation: each face is the regressor's prediction as it is (needs a
                ``regressor`` or ``initial``).

        Returns:
            One :class:`FittedFace` per given face, in order.
        """
        photo = load_image(image)
        settings = self.fitter.config_with(**overrides)  # refuse unknown or bad settings before any work
        faces = list(faces)
        boxed = [i for i, face in enumerate(faces) if isinstance(face, FaceBox)]
        if boxed:
            if initial is not None:
                raise ValueError("`initial` cannot be combined with FaceBox faces; give landmarks to start a fit from.")
            located = self._locate(photo, [faces[i] for i in boxed], settings)
            from_boxes = self.reconstruct_faces(photo, located, compute_depth=compute_depth, refine=False, **overrides)
            rest = [i for i in range(len(faces)) if i not in set(boxed)]
            fitted = self.reconstruct_faces(photo, [faces[i] for i in rest], compute_depth=compute_depth,
                                            refine=refine, start=start, **overrides) if rest else []
            results = dict(zip(boxed, from_boxes, strict=True)) | dict(zip(rest, fitted, strict=True))
            return [results[i] for i in range(len(faces))]
        if start not in ("mean", "regressor"):
            raise ValueError(f"Got {start!r} for `start`; use 'mean' (closed-form camera, mean face) or 'regressor'.")
        switches = settings.regressor_beyond_yaw is not None or settings.regressor_beyond_disagreement is not None
        fuse = settings.regressor_reading_weight > 0
        if refine and initial is None and (switches or fuse) and getattr(self, "regressor", None) is not None \
                and faces:
            # Near-profiles, and faces whose given landmarks the regressor contradicts, keep the regressor's reading
            # (FaceFittingConfig.regressor_beyond_yaw, regressor_beyond_disagreement). The switch reads the crop
            # around the given landmarks, as when it was chosen; the readings kept are then re-read where in doubt
            # (_read_doubtful_again: `regressor_recrop_beyond_yaw`, `regressor_rereads`). The faces fitted take the
            # same first reading as a second observation of their landmarks (`regressor_reading_weight`).
            predicted, crop_sources = self._regress(photo, faces, settings, reread=False)
            turned = [i for i, (c, source) in enumerate(zip(predicted, crop_sources, strict=True))
                      if self._turned_or_contradicting(c, source, settings, settings.regressor_beyond_yaw)] \
                if switches else []
            read = []
            if turned:
                turned_faces = [faces[i] for i in turned]
                readings, sources = [predicted[i] for i in turned], [crop_sources[i] for i in turned]
                self._read_doubtful_again(photo, turned_faces, readings, sources, settings)
                read = self._from_coefficients(photo, turned_faces, readings, sources, settings, compute_depth)
            kept = [i for i in range(len(faces)) if i not in set(turned)]
            fitted = [self._fit(photo, faces[i], predicted[i] if start == "regressor" else None,
                                predicted[i] if fuse else None, settings, compute_depth, overrides) for i in kept]
            results = dict(zip(turned, read, strict=True)) | dict(zip(kept, fitted, strict=True))
            return [results[i] for i in range(len(faces))]
        crop_sources = None
        if initial is None and (start == "regressor" or not refine):
            initial, crop_sources = self._regress(photo, faces, settings)
        starts = [None] * len(faces) if initial is None else list(initial)
        if len(starts) != len(faces):
            raise ValueError(f"Got {len(starts)} initial coefficient sets for {len(faces)} faces; pass one per face "
                             "(None for a face to start at the mean).")
        if not refine:
            return self._from_coefficients(photo, faces, starts, crop_sources, settings, compute_depth)
        return [self._fit(photo, face, start, None, settings, compute_depth, overrides)
                for face, start in zip(faces, starts, strict=True)]

    def _fit(self, photo, face, initial, reading, settings, compute_depth: bool, overrides: dict) -> FittedFace:
        """The fitter's fit of one face from ``initial`` (``None``: the mean face), with the regressor's ``reading``
        (:class:`~facehub.modeling.face_fitting.FaceCoefficients` or ``None``) as a second observation of its
        landmarks, weighted by ``regressor_reading_weight`` in proportion to the reading's |yaw| up to
        :data:`~facehub.modeling.face_fitting.configuration_face_fitting.READING_WEIGHT_FULL_AT_YAW`."""
        posed, weight = None, 0.0
        if reading is not None and settings.regressor_reading_weight > 0:
            posed = posed_mesh(reading, self.fitter.face_model)
            turned = min(abs(float(reading.rotation[0])) / READING_WEIGHT_FULL_AT_YAW, 1.0)
            weight = settings.regressor_reading_weight * turned
        return self.fitter.fit(photo, face, initial=initial, compute_depth=compute_depth, reading=posed,
                               reading_weight=weight, **overrides)

    def _from_coefficients(self, photo, faces: list, coefficients: list, crop_sources: list | None, settings,
                           compute_depth: bool) -> list[FittedFace]:
        """One :class:`FittedFace` per face straight from its coefficients, each keeping the regressor's crop it was
        read from (cut around ``crop_sources``, default the given faces' landmarks)."""
        regressor = getattr(self, "regressor", None)
        if crop_sources is None:
            crop_sources = self._crop_landmarks(faces)
        transforms = ([regressor.crop_transform(source, settings.regressor_upright_beyond_roll)
                       for source in crop_sources] if regressor is not None
                      else [None] * len(faces))
        crop_size = int(regressor.config.image_size) if regressor is not None else None
        return [fitted_face_from_coefficients(
                    photo, start, face=face, model=self.fitter.face_model, texture_size=settings.texture_size,
                    complete=settings.complete_texture, compute_depth=compute_depth, image_to_crop=matrix,
                    crop_size=crop_size)
                for face, start, matrix in zip(faces, coefficients, transforms, strict=True)]

    def __call__(self, image, *, max_faces: int | None = None, compute_depth: bool = True, refine: bool = True,
                 start: str = "mean", return_dict: bool = True, **overrides) -> FaceFittingPipelineOutput:
        """Fit every face of ``image``, largest first.

        Args:
            image: one image (RGB uint8 array, PIL image, path or bytes) or a list of them.
            max_faces: keep at most this many faces per image (the largest); ``None`` keeps all the analyzer found.
            compute_depth: also z-buffer each mesh into ``depth`` / ``face_mask``.
            refine: ``True`` fits each face; ``False`` returns the bundle regressor's prediction without optimisation
                (milliseconds per face).
            start: where each fit starts, ``"mean"`` or ``"regressor"`` (see :meth:`reconstruct_faces`).
            return_dict: ``False`` returns ``(reconstructions, coefficients)``.
            overrides: fit settings for this call (see :meth:`reconstruct_faces`).

        Returns:
            :class:`FaceFittingPipelineOutput`.

        Raises:
            ImageReadError: an image cannot be read (missing, not an image, corrupt).
        """
        self.fitter.config_with(**overrides)  # refuse unknown or bad settings before any work
        photos, batched = as_image_list(image)
        per_image = []
        for photo in photos:
            faces = (self.find_faces_or_boxes(photo, max_faces) if self.reconstructs_from_boxes
                     else self.find_faces(photo, max_faces))
            per_image.append(self.reconstruct_faces(photo, faces, compute_depth=compute_depth, refine=refine,
                                                    start=start, **overrides))
        coefficients = [[fitted.coefficients for fitted in faces] for faces in per_image]
        output = FaceFittingPipelineOutput(
            reconstructions=per_image if batched else per_image[0],
            coefficients=coefficients if batched else coefficients[0],
        )
        return output if return_dict else output.to_tuple()


#: The embedded default's id and what its card says about training (nothing is learned yet).
DEFAULT_MODEL_ID = "facehub/face-fitting"
_NOT_TRAINED = (
    "Nothing in this bundle was trained: `fitter` holds only the settings of the optimisation (its config) and a "
    "weight per dense landmark (all 1), so there is no `facehub train ` command behind it. It is rebuilt with "
    "`python -c \"from facehub.modeling.face_fitting.pipeline_face_fitting import write_default_bundle; "
    "write_default_bundle('hub/defaults/facehub/face-fitting')\"`."
)


def _keep_landmark_depth(coefficients: list, faces: list) -> None:
    """In place: a reading of a face given with 3D dense landmarks takes their mean depth as its translation's z (the
    fit's depth frame)."""
    import numpy as np

    for coefficient, face in zip(coefficients, faces, strict=True):
        dense = getattr(face, "dense_landmarks", face if isinstance(face, np.ndarray) else None)
        dense = None if dense is None else np.asarray(dense, np.float64)
        if dense is not None and dense.ndim == 2 and dense.shape[1] == 3:
            coefficient.translation[2] = float(dense[:, 2].mean())


def write_default_bundle(folder) -> None:
    """Save a fitting-only bundle: a :class:`FaceFittingPipeline` with the default :class:`FaceFitter` and no
    regressor, and its model card. The shipped ``facehub/face-fitting`` also holds a trained regressor: it is the
    export of ``facehub train face_fitting --preset default`` (the command is on its card)."""
    from pathlib import Path

    from facehub.hub.cards import write_model_card

    folder = Path(folder)
    FaceFittingPipeline(FaceFitter()).save_pretrained(str(folder))
    card = write_model_card(
        folder, repo_id=DEFAULT_MODEL_ID, method="face_fitting",
        description="Morphable-model fitting for facehub: the project's morphable face model (identity, expression, "
        "albedo, SH lighting, pose) fitted to each face of a photo by optimisation of landmark, photometric and prior "
        "terms; no learned weights.",
    )
    text = card.read_text()
    card.write_text(text.replace("The training command of this checkpoint was not recorded.", _NOT_TRAINED))
