"""Morphable-model fitting: a fit recovers a synthetic face's pose, landmarks and coefficients; the pipeline
reconstructs a photo's face in agreement with the FaceAnalyzer and exports meshes that reload.

The synthetic fits start from the world's exact dense landmarks with 0.5 px Gaussian noise (about 1% of the face's
size): MediaPipe on the world's flat-lit renders is itself 3-7% NME off, which would test MediaPipe rather than the
fit. The photo test runs the whole pipeline (FaceAnalyzer included).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facehub.modeling.face_fitting import (
    FaceFitter,
    FaceFittingConfig,
    FaceFittingPipeline,
    FittedFace,
    SparseLandmarks,
    face_fitting_config,
    fit_face,
)
from facehub.modeling.faces import load_image
from facehub.modeling.geometry.jaw_depth import jaw_offsets
from facehub.modeling.geometry.landmark_metrics import nme
from facehub.modeling.prn_dense import FaceReconstruction

PHOTOS = Path(__file__).parent / "data" / "photos"


@pytest.fixture(scope="module")
def world():
    from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig

    return SyntheticFaceWorld(SyntheticWorldConfig(image_size=128, seed=3))


@pytest.fixture(scope="module")
def synthetic_fits(world):
    """Four faces of the world (yaw -43 to +18, pitch -22 to +22 degrees), fitted with the ``fast`` preset at 96 px."""
    config = face_fitting_config("fast", render_size=96)
    fits = []
    for index in (0, 5, 9, 14):
        row = world[index]
        noise = np.random.default_rng(index).normal(scale=0.5, size=row["dense_landmarks"].shape)
        fits.append((row, fit_face(row["image"], row["dense_landmarks"] + noise, config=config, model=world.model,
                                   compute_depth=False)))
    return fits


def _frontal_shape(model, identity, expression) -> np.ndarray:
    coefficients = [torch.as_tensor(np.asarray(c), dtype=torch.float32)[None] for c in (identity, expression)]
    shape = model.shape(*coefficients)[0].numpy()
    return shape - shape.mean(axis=0)


def test_fit_recovers_pose_and_landmarks_of_synthetic_faces(world, synthetic_fits):
    for row, fit in synthetic_fits:
        # Head pose within 2.5 degrees on every axis (measured: at most 2.03).
        assert np.abs(np.subtract(fit.pose, row["pose"])).max() < 2.5, (fit.pose, row["pose"])
        # It is the pose of the fitted rotation, in the frame the FaceAnalyzer and the world's rows use.
        assert fit.pose == pytest.approx(world.model.head_pose(fit.coefficients.rotation), abs=1e-9)
        # The mesh's 68 points within 1% NME of the truth (measured 0.22-0.34%; the input noise is ~1% of the face per
        # point), and the reported ones (the jaw at its 3D depth) as near the truth with its jaw placed the same way.
        assert nme(fit.mesh_landmarks68, row["landmarks68_3d"]) < 0.01
        truth_3d_jaw = row["landmarks68_3d"] + jaw_offsets(row["dense_landmarks"])
        assert nme(fit.landmarks68, truth_3d_jaw) < 0.01
        assert fit.losses["landmarks68"] < 0.02 and fit.losses["dense_landmarks"] < 0.02


def test_fit_recovers_identity_and_expression_far_better_than_the_mean_face(world, synthetic_fits):
    model = world.model
    coefficient_ratios, shape_ratios = [], []
    for row, fit in synthetic_fits:
        truth = np.r_[row["shape_coefficients"], row["expression_coefficients"]]
        fitted = np.r_[fit.coefficients.identity, fit.coefficients.expression]
        coefficient_ratios.append(np.linalg.norm(fitted - truth) / np.linalg.norm(truth))  # the mean: ratio 1
        true_shape = _frontal_shape(model, row["shape_coefficients"], row["expression_coefficients"])
        error = np.linalg.norm(_frontal_shape(model, fit.coefficients.identity, fit.coefficients.expression)
                               - true_shape, axis=1).mean()
        baseline = np.linalg.norm(_frontal_shape(model, 0 * fitted[:40], 0 * fitted[40:]) - true_shape, axis=1).mean()
        shape_ratios.append(error / baseline)
    # Coefficients (identity + expression): the mean face's error is 1; fits are at most 0.65 each, 0.55 on average
    # (measured 0.35-0.61, mean 0.48). Identity and expression modes partly explain each other from 468 points.
    assert max(coefficient_ratios) < 0.65 and np.mean(coefficient_ratios) < 0.55, coefficient_ratios
    # The frontal 3D shape those coefficients make: at most 0.75 of the mean face's error (measured 0.31-0.67).
    assert max(shape_ratios) < 0.75 and np.mean(shape_ratios) < 0.6, shape_ratios


def test_photometric_stage_recovers_albedo_and_lighting(world, synthetic_fits):
    for row, fit in synthetic_fits:
        truth = np.asarray(row["albedo_coefficients"])
        # Albedo coefficients: closer to the truth than the mean albedo (ratio 1) by at least a quarter (measured
        # 0.41-0.62 of the mean albedo's error).
        assert np.linalg.norm(fit.coefficients.albedo - truth) < 0.75 * np.linalg.norm(truth)
        # Albedo colour and light trade off (a redder albedo under a bluer light); their product, the face's mean
        # albedo lit from the front (irradiance at the normal facing the camera), is within 10% of the truth.
        def ambient_colour(albedo, lighting):
            from facehub.modeling.geometry.morphable import sh_shading

            texture = world.model.albedo(torch.as_tensor(np.asarray(albedo), dtype=torch.float32)[None])[0]
            frontal = sh_shading(torch.tensor([[[0.0, 0.0, 1.0]]]),
                                 torch.as_tensor(np.asarray(lighting), dtype=torch.float32).reshape(1, 3, 9))
            return texture.mean(dim=(1, 2)).numpy() * frontal[0, 0].numpy()

        fitted = ambient_colour(fit.coefficients.albedo, fit.coefficients.lighting)
        true = ambient_colour(truth, row["lighting"])
        assert np.allclose(fitted, true, rtol=0.1), (fitted, true)
        assert fit.losses["photometric"] < 0.04  # mean colour distance over the face, [0, 1] units (measured <= 0.023)
    # Without the photometric stage (albedo at the mean, only the ambient light set) the render is worse.
    row, fit = synthetic_fits[0]
    noise = np.random.default_rng(0).normal(scale=0.5, size=row["dense_landmarks"].shape)
    unlit = fit_face(row["image"], row["dense_landmarks"] + noise, model=world.model, compute_depth=False,
                     config=face_fitting_config("fast", render_size=96, appearance_iterations=0))
    assert fit.losses["photometric"] < 0.8 * unlit.losses["photometric"]


def test_fitted_face_is_a_reconstruction_with_texture_and_visibility(synthetic_fits):
    row, fit = synthetic_fits[2]
    assert isinstance(fit, FaceReconstruction) and isinstance(fit, FittedFace)
    assert fit.vertices.shape == (468, 3) and fit.triangles.shape == (852, 3) and fit.colors.dtype == np.uint8
    # The mesh lies where the world drew it (photo pixels, z measured from the world's deepest vertex + offset).
    assert np.abs(fit.vertices[:, :2] - row["dense_landmarks"][:, :2]).mean() < 1.0
    size = 64  # the fast preset's texture
    assert fit.texture.shape == fit.completed_texture.shape == (size, size, 3) and fit.visibility.shape == (size, size)
    assert fit.texture_completion_at(size) is fit.texture_completion  # computed once, shared with PRN-Dense's API
    np.testing.assert_array_equal(fit.texture_visibility, fit.texture_completion.visibility)
    assert 0.0 <= fit.visibility.min() and fit.visibility.max() <= 1.0
    # A face turned by -43 degrees hides one cheek: about a third of the texels are unseen (measured 0.36).
    assert 0.2 < fit.texture_completion.hidden_fraction < 0.6
    from facehub.modeling.geometry.texture_completion import OUTSIDE, OWN

    hidden = (fit.visibility < 0.5) & (fit.texture_completion.source != OUTSIDE)
    assert (fit.texture_completion.source[hidden] != OWN).mean() > 0.9  # filled from the mirror or inpainted
    assert fit.coefficients.lighting.shape == (3, 9) and fit.coefficients.translation.shape == (3,)
    assert json.loads(json.dumps(fit.coefficients.to_dict()))["scale"] == pytest.approx(fit.coefficients.scale)


def test_a_fit_started_from_the_true_coefficients_stays_there(world):
    from facehub.modeling.face_fitting import FaceCoefficients

    row = world[21]
    first = fit_face(row["image"], row["dense_landmarks"], model=world.model, compute_depth=False,
                     config=face_fitting_config("fast", appearance_iterations=0))
    start = FaceCoefficients(
        identity=np.asarray(row["shape_coefficients"]), expression=np.asarray(row["expression_coefficients"]),
        albedo=np.asarray(row["albedo_coefficients"]), lighting=np.asarray(row["lighting"]).reshape(3, 9),
        rotation=world.model.rotation_for_head_pose(row["pose"]), translation=first.coefficients.translation,
        scale=first.coefficients.scale,
    )
    fit = fit_face(row["image"], row["dense_landmarks"], model=world.model, compute_depth=False, initial=start,
                   config=face_fitting_config("fast", appearance_iterations=0))
    assert np.abs(np.subtract(fit.pose, row["pose"])).max() < 1.0
    assert nme(fit.mesh_landmarks68, row["landmarks68_3d"]) < 0.005


def test_landmarks_without_depth_still_give_the_pose(world):
    """(468, 2) landmarks: the camera starts from a scaled-orthographic fit and depth comes from the model alone."""
    for index in (0, 9):
        row = world[index]
        fit = fit_face(row["image"], row["dense_landmarks"][:, :2], model=world.model, compute_depth=False,
                       config=face_fitting_config("fast", appearance_iterations=0))
        # Within 4 degrees (measured at most 2.8) and 0.5% NME (measured 0.21%).
        assert np.abs(np.subtract(fit.coefficients.rotation, row["pose"])).max() < 4.0
        assert nme(fit.mesh_landmarks68, row["landmarks68_3d"]) < 0.005
        assert fit.vertices[:, 2].min() == pytest.approx(0.0, abs=1e-4)  # no depth given: deepest vertex at z = 0


def test_sparse_landmarks_alone_fit_a_turned_face(world):
    """Hand-labelled points only (no dense landmarks, as where the analyzer finds no face): 58 of the 68 iBUG points
    of a face turned by -43 degrees, 0.5 px noise, the 10 of the hidden jaw side left out."""
    row = world[9]
    model = world.model
    visible = np.ones(68, bool)
    visible[9:17] = False  # the jaw on the far side
    visible[[26, 16]] = False
    points = row["landmarks68"] + np.random.default_rng(9).normal(scale=0.5, size=(68, 2))
    sparse = SparseLandmarks(model.landmark_weights.numpy(), points, visible=visible, sigma=0.01)
    fit = fit_face(row["image"], None, sparse_landmarks=sparse, model=model, compute_depth=False,
                   config=face_fitting_config("fast", appearance_iterations=0))
    # Pose within 4 degrees (measured 0.6), all 68 landmarks within 1.5% NME (measured 0.62%).
    assert np.abs(np.subtract(fit.coefficients.rotation, row["pose"])).max() < 4.0
    assert nme(fit.mesh_landmarks68, row["landmarks68_3d"]) < 0.015
    assert set(fit.losses) >= {"sparse_landmarks"} and "dense_landmarks" not in fit.losses
    with pytest.raises(ValueError, match="Nothing to fit"):
        fit_face(row["image"], None, sparse_landmarks=SparseLandmarks(sparse.vertex_weights[:5], points[:5]))
    with pytest.raises(ValueError, match=r"\(N, 468\) vertex weights and \(N, 2\) points"):
        SparseLandmarks(np.ones((3, 10)), points[:3])


def test_a_second_reading_pulls_the_fit_by_its_weight(world):
    """``reading`` / ``reading_weight``: the analyzer's targets and a second reader's are blended point by point
    (the two Gaussian terms' minimiser). A reading 8 px to the right of exact landmarks moves the fitted mesh by the
    weight's share of 8 px and nothing else; weight 0 ignores it; the losses stay measured against the landmarks
    given."""
    row = world[5]
    dense = np.asarray(row["dense_landmarks"], np.float64)
    config = face_fitting_config("fast", appearance_iterations=0)
    plain = fit_face(row["image"], dense, model=world.model, compute_depth=False, config=config)
    reading = dense[:, :2] + np.array([8.0, 0.0])
    shifts = {}
    for weight in (0.0, 0.25, 0.5):
        fit = fit_face(row["image"], dense, model=world.model, compute_depth=False, config=config, reading=reading,
                       reading_weight=weight)
        shifts[weight] = (fit.mesh_landmarks68[:, :2] - plain.mesh_landmarks68[:, :2]).mean(axis=0)
        size = float(np.sqrt(np.prod(np.ptp(row["landmarks68"], axis=0))))
        given = float(np.linalg.norm(fit.vertices[:, :2] - dense[:, :2], axis=1).mean()) / size
        assert fit.losses["dense_landmarks"] == pytest.approx(given, rel=1e-3)
    print("mean shift of the 68 landmarks by weight", shifts)
    np.testing.assert_allclose(shifts[0.0], [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(shifts[0.25], [2.0, 0.0], atol=0.1)
    np.testing.assert_allclose(shifts[0.5], [4.0, 0.0], atol=0.1)
    with pytest.raises(ValueError, match="Got 1.5 for `reading_weight`"):
        fit_face(row["image"], dense, model=world.model, reading=reading, reading_weight=1.5)
    with pytest.raises(ValueError, match=r"`reading` must be \(468, 2 or 3\)"):
        fit_face(row["image"], dense, model=world.model, reading=reading[:68], reading_weight=0.5)


def test_pipeline_reconstructs_a_photo_and_exports_meshes_that_reload(tmp_path):
    import trimesh

    pipe = FaceFittingPipeline.from_pretrained("facehub/face-fitting")
    out = pipe(PHOTOS / "obama.jpg", compute_depth=True)
    assert len(out.reconstructions) == 1 and out.coefficients == [out.reconstructions[0].coefficients]
    fit = out.reconstructions[0]
    faces = pipe.find_faces(load_image(PHOTOS / "obama.jpg"))
    # The fitted mesh's 68 landmarks agree with the FaceAnalyzer's within 2% NME (measured 0.46%).
    assert nme(fit.landmarks68, faces[0].landmarks68) < 0.02
    assert np.abs(np.subtract(fit.pose, faces[0].pose)).max() < 6.0  # pose near the analyzer's (measured <= 3.5)
    assert fit.losses["photometric"] < 0.08 and fit.face_mask.sum() > 1000  # measured 0.046
    for suffix in (".glb", ".ply", ".obj"):
        path = fit.export(tmp_path / f"face{suffix}")
        mesh = trimesh.load(path, force="mesh", process=False)
        assert len(mesh.vertices) == 468, suffix
        np.testing.assert_allclose(mesh.vertices[:, 0], fit.vertices[:, 0], atol=1e-3)
    # The dense mesh of the fit's UV position map, as PRN-Dense offers it, exports and reloads with its vertex count.
    dense = fit.dense_mesh()
    assert len(dense.vertices) > 15_000
    mesh = trimesh.load(fit.export(tmp_path / "dense.glb", dense=True), force="mesh", process=False)
    assert len(mesh.vertices) == len(dense.vertices)
    # What the Reconstruct tab's coefficients panel shows of this fit.
    from facehub.apps.tabs.reconstruct import coefficients_summary

    summary = coefficients_summary(fit)
    assert summary["head pose (yaw, pitch, roll), degrees"] == pytest.approx(fit.pose, abs=0.051)
    assert summary["model rotation (yaw, pitch, roll), degrees"] == pytest.approx(fit.coefficients.rotation, abs=0.051)
    identity = np.asarray(fit.coefficients.identity).reshape(-1)
    key = f"identity ({len(identity)} values, first 10)"
    assert summary[key] == pytest.approx(identity[:10], abs=5e-4)
    assert np.asarray(summary["lighting (SH, 3 colours x 9)"]).shape == (3, 9)


def test_pipeline_batches_and_photos_without_faces():
    pipe = FaceFittingPipeline.from_pretrained("facehub/face-fitting")
    blank = np.full((96, 96, 3), 128, np.uint8)
    out = pipe([blank, PHOTOS / "obama.jpg"], appearance_iterations=0, texture_size=32, compute_depth=False)
    assert out.reconstructions[0] == [] and out.coefficients[0] == []
    assert len(out.reconstructions[1]) == 1 and out.reconstructions[1][0].texture.shape == (32, 32, 3)
    with pytest.raises(TypeError, match="Unknown fit setting"):
        pipe(blank, iterations=3)
    # A later regressor starts each face's fit from its own coefficients: one set per face.
    photo = load_image(PHOTOS / "obama.jpg")
    faces = pipe.find_faces(photo)
    start = out.reconstructions[1][0].coefficients
    again = pipe.reconstruct_faces(photo, faces, initial=[start], appearance_iterations=0, compute_depth=False)
    assert np.abs(np.subtract(again[0].coefficients.rotation, start.rotation)).max() < 1.0
    with pytest.raises(ValueError, match="2 initial coefficient sets for 1 faces"):
        pipe.reconstruct_faces(photo, faces, initial=[start, start])


def test_faces_read_as_turned_beyond_the_threshold_keep_the_regressor_reading():
    pipe = FaceFittingPipeline.from_pretrained("facehub/face-fitting")
    photo = load_image(PHOTOS / "obama.jpg")
    faces = pipe.find_faces(photo)
    read = pipe.reconstruct_faces(photo, faces, refine=False, compute_depth=False)[0]
    settings = {"appearance_iterations": 0, "compute_depth": False}
    # obama.jpg is frontal: with the default threshold (60 degrees) it is fitted; with 0 every face is "turned".
    fitted = pipe.reconstruct_faces(photo, faces, **settings)[0]
    kept = pipe.reconstruct_faces(photo, faces, regressor_beyond_yaw=0.0, **settings)[0]
    np.testing.assert_allclose(kept.vertices, read.vertices, atol=1e-4)
    assert np.abs(fitted.vertices - read.vertices).max() > 1.0
    assert nme(fitted.landmarks68, faces[0].landmarks68) < nme(kept.landmarks68, faces[0].landmarks68)
    # A kept reading is re-read as `regressor_recrop_beyond_yaw` says, like the regressor alone's.
    reread = pipe.reconstruct_faces(photo, faces, refine=False, compute_depth=False, regressor_recrop_beyond_yaw=0.0)[0]
    kept_reread = pipe.reconstruct_faces(photo, faces, regressor_beyond_yaw=0.0, regressor_recrop_beyond_yaw=0.0,
                                         **settings)[0]
    np.testing.assert_allclose(kept_reread.vertices, reread.vertices, atol=1e-4)
    assert np.abs(reread.vertices - read.vertices).max() > 0.1
    with pytest.raises(ValueError, match="Got 120 for `regressor_beyond_yaw`"):
        pipe.reconstruct_faces(photo, faces, regressor_beyond_yaw=120)


def test_landmarks_the_regressor_contradicts_keep_its_reading():
    from facehub.modeling.face_fitting.modeling_face_regressor import landmark_disagreement

    pipe = FaceFittingPipeline.from_pretrained("facehub/face-fitting")
    photo = load_image(PHOTOS / "obama.jpg")
    face = pipe.find_faces(photo)[0]
    model = pipe.fitter.face_model
    settings = {"appearance_iterations": 0, "compute_depth": False}
    # The analyzer's mesh turned upside down about its centre, as MediaPipe placed it on AFLW2000-3D's image00450:
    # the same box, so the regressor reads the same crop and the upright face in it.
    dense = np.asarray(face.dense_landmarks, np.float64)[:468, :2]
    centre = (dense.min(axis=0) + dense.max(axis=0)) / 2
    upside_down = np.column_stack([dense[:, 0], 2 * centre[1] - dense[:, 1]])
    good, bad = pipe.regress(photo, [dense, upside_down])
    assert landmark_disagreement(good, face.landmarks68, model) < 0.03  # the readers agree on obama.jpg (0.017)
    flipped68 = model.landmark_weights.double().numpy() @ upside_down
    assert landmark_disagreement(bad, flipped68, model) > 0.2
    # By default the contradicted landmarks are not fitted: the face keeps the regressor's reading, near the truth.
    read = pipe.reconstruct_faces(photo, [upside_down], refine=False, compute_depth=False)[0]
    kept = pipe.reconstruct_faces(photo, [upside_down], **settings)[0]
    np.testing.assert_allclose(kept.vertices, read.vertices, atol=1e-4)
    # The analyzer's own landmarks, which the reading agrees with, are fitted as before.
    fitted = pipe.reconstruct_faces(photo, [face], **settings)[0]
    assert np.abs(fitted.vertices - pipe.reconstruct_faces(photo, [face], refine=False, compute_depth=False)[0]
                  .vertices).max() > 1.0
    assert nme(kept.landmarks68, fitted.landmarks68) < 0.1  # measured 0.066 (a crop cut around other landmarks)
    # Switched off, the fit follows them and lands far from the face (measured 0.51).
    followed = pipe.reconstruct_faces(photo, [upside_down], regressor_beyond_disagreement=None, **settings)[0]
    assert nme(followed.landmarks68, fitted.landmarks68) > 0.4
    with pytest.raises(ValueError, match="Got 0 for `regressor_beyond_disagreement`"):
        pipe.reconstruct_faces(photo, [face], regressor_beyond_disagreement=0)


def test_embedded_default_holds_the_default_settings(tmp_path):
    from facehub import methods

    embedded = FaceFitter.from_pretrained("facehub/face-fitting", subfolder="fitter")
    fresh = FaceFitter()
    assert embedded.fitting_config == fresh.fitting_config == FaceFittingConfig()
    assert torch.equal(embedded.dense_landmark_weights, torch.ones(468))
    spec = methods.get("face_fitting")
    assert spec.default_model == "facehub/face-fitting"
    assert spec.pipeline_class("reconstruction") is FaceFittingPipeline
    card = (Path(__file__).parents[1] / "hub" / "defaults" / "facehub" / "face-fitting" / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: facehub" in card and "holds only the optimisation's settings (nothing trained)" in card


def test_bad_settings_and_inputs_are_one_line_errors():
    with pytest.raises(ValueError, match="Got 4 for `render_size`"):
        FaceFittingConfig(render_size=4)
    with pytest.raises(ValueError, match="Got -1 for `shape_iterations`"):
        FaceFitter(shape_iterations=-1)
    with pytest.raises(ValueError, match="known presets"):
        face_fitting_config("slow")
    with pytest.raises(ValueError, match=r"dense landmarks in pixels; got an array of shape \(68, 2\)"):
        fit_face(np.zeros((64, 64, 3), np.uint8), np.zeros((68, 2)))
