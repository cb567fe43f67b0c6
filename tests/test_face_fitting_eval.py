"""``facehub eval face_fitting`` and the shared reconstruction benchmark: yaw bins with wrapped angles, pose and
coefficient errors, the table on a tiny synthetic world (the fit beats the mean-face baseline, the FaceAnalyzer's
reference row is there) and an AFLW2000-3D-layout folder made from a public-domain photo."""

import json
from pathlib import Path

import numpy as np
import pytest

from facehub import methods
from facehub.trainers.evaluation import face_fitting as fit_eval
from facehub.trainers.evaluation import reconstruction as rec

PHOTOS = Path(__file__).parent / "data" / "photos"


def test_yaw_bins_wrap_angles_and_put_profiles_past_90_in_the_last_bin():
    yaws = [0.0, 29.9, -30.0, 59.99, 60.0, 90.0, 95.0, -120.0, 350.0, -200.0, 181.0, 390.0, -330.0]
    # 350 -> -10, -200 -> 160, 181 -> -179, 390 -> 30, -330 -> 30
    assert rec.yaw_bin_index(yaws).tolist() == [0, 0, 1, 1, 2, 2, 2, 2, 0, 2, 2, 1, 1]
    np.testing.assert_allclose(rec.wrap_degrees([350.0, -200.0, 180.0, -180.0]), [-10.0, 160.0, -180.0, -180.0])
    binned = rec.nme_by_yaw([2.0, 4.0, 1.0, 5.0, 10.0, np.nan], [10.0, 350.0, 45.0, -395.0, 100.0, 70.0])
    assert binned.bins == [3.0, 3.0, 10.0] and binned.counts == [2, 2, 1]
    assert binned.mean == pytest.approx(16.0 / 3) and binned.all_faces == pytest.approx(22.0 / 5)
    assert binned.missed == 1


def test_rows_that_found_different_faces_are_also_compared_on_the_faces_all_of_them_found():
    """A method that reads the analyzer's missed faces from a box measures harder faces than the analyzer's row; the
    paired table compares both on the faces both found, where the method here is ahead in every bin."""
    yaws = [10.0, 20.0, 40.0, 50.0, 70.0, 80.0]
    method = rec.RowResult("method", rec.nme_by_yaw([2.0, 9.0, 4.0, 12.0, 6.0, 7.0], yaws),
                           per_face_nme=[2.0, 9.0, 4.0, 12.0, 6.0, 7.0], faces=6)
    analyzer_nme = [3.0, np.nan, 5.0, np.nan, 8.0, 9.0]
    analyzer = rec.RowResult("analyzer", rec.nme_by_yaw(analyzer_nme, yaws), per_face_nme=analyzer_nme, faces=6)
    assert method.nme.bins[:2] == [5.5, 8.0] and analyzer.nme.bins[:2] == [3.0, 5.0]  # behind on its own faces
    paired = rec.paired_nme([method, analyzer], yaws)
    assert paired["method"].bins == [2.0, 4.0, 6.5] and paired["analyzer"].bins == [3.0, 5.0, 8.5]
    assert paired["method"].counts == paired["analyzer"].counts == [1, 1, 2]
    table = rec.reconstruction_table([method, analyzer], "two rows", yaws)
    assert "on only the faces every row found" in table
    assert "| method | 2.00 | 4.00 | 6.50 | 4.17 |" in table
    # rows that found the same faces need no second table
    assert rec.paired_nme([method, method], yaws) is None
    assert "every row found" not in rec.reconstruction_table([method, method], "same faces", yaws)


def test_pose_and_coefficient_errors():
    assert rec.pose_error((179.0, 10.0, -5.0), (-179.0, 4.0, -2.0)) == pytest.approx((2.0 + 6.0 + 3.0) / 3)
    truth = {"identity": np.array([1.0, -1.0, 2.0, 0.0]), "lighting": np.ones(27)}
    errors = rec.coefficient_errors({"identity": np.array([1.0, 1.0]), "lighting": np.zeros(27)}, truth)
    assert errors == {"identity": pytest.approx(np.sqrt((4.0 + 4.0) / 4)), "lighting": pytest.approx(1.0)}
    baseline = fit_eval.mean_face_coefficients(truth)
    assert not baseline["identity"].any() and baseline["lighting"].reshape(3, 9)[:, 1:].sum() == 0
    from facehub.modeling.geometry.morphable import SH_DC

    np.testing.assert_allclose(baseline["lighting"].reshape(3, 9)[:, 0], 1.0 / SH_DC)  # irradiance 1


def test_the_yaw_reading_by_bin_shows_a_readers_bias_that_one_mae_hides():
    """Signed yaw errors: positive where a face is read as turned further than it is, whichever way it turns; binned
    by |yaw| like the NME, profiles past 90 in the last bin, unread faces and frontal truths left out."""
    truths = [20.0, -40.0, 70.0, -75.0, 100.0, 0.0, 50.0]
    read = [22.0, -35.0, 55.0, -60.0, 110.0, 3.0, None]
    errors = [float("nan") if r is None else rec.signed_yaw_error((r, 0.0, 0.0), (t, 0.0, 0.0))
              for r, t in zip(read, truths, strict=True)]
    np.testing.assert_allclose(errors[:5], [2.0, -5.0, -15.0, -15.0, 10.0])
    assert np.isnan(errors[5]) and np.isnan(errors[6])
    assert rec.signed_yaw_error((-170.0, 0, 0), (170.0, 0, 0)) == pytest.approx(20.0)  # wrapped across 180
    reading = rec.yaw_reading(errors, truths)
    np.testing.assert_allclose(reading.bias, [2.0, -5.0, -20.0 / 3.0])
    np.testing.assert_allclose(reading.mae, [2.0, 5.0, 40.0 / 3.0])
    assert np.isnan(rec.yaw_reading([float("nan")], [10.0]).bias[0])


def test_table_on_a_tiny_synthetic_world(tmp_path):
    """Three faces at 128 px, every method from the face the FaceAnalyzer finds (measured: fit NME 5.1%, mean face
    9.5%; pose MAE 6.8 against 16.5 degrees; dense NME 9.7 against 10.9)."""
    from facehub.trainers.data.prepare import prepare_synthetic
    from facehub.trainers.data.synthetic_world import SyntheticWorldConfig

    prepare_synthetic(SyntheticWorldConfig(num_identities=3, views_per_identity=1, seed=5, image_size=128, uv_size=8,
                                           max_yaw=60.0), tmp_path / "world")
    out = tmp_path / "eval"
    assert fit_eval.main(["--data", str(tmp_path / "world"), "--out", str(out), "--method", "none",
                          "--fit", "appearance_iterations=20", "--fit", "render_size=64"]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = {row["label"]: row for row in results["rows"]}
    fit = rows["Morphable-model fitting (facehub/face-fitting)"]
    reference, baseline = rows[fit_eval.REFERENCE_LABEL], rows[fit_eval.BASELINE_LABEL]
    assert results["kind"] == "synthetic" and results["num_faces"] == 3
    assert fit["found_percent"] == reference["found_percent"] == 100.0
    assert 0 < reference["all_faces"] < 8.0  # MediaPipe's 68 on clean renders
    assert fit["all_faces"] < 0.7 * baseline["all_faces"] and fit["mean"] < baseline["mean"]
    assert fit["pose_mae"] < 0.6 * baseline["pose_mae"]
    assert fit["dense_nme"] < baseline["dense_nme"]
    assert fit["coefficient_errors"]["albedo"] < baseline["coefficient_errors"]["albedo"]
    assert set(fit["coefficient_errors"]) == {"identity", "expression", "albedo", "lighting"}
    metrics = json.loads((out / "eval_results.json").read_text())
    assert metrics["dataset"] == "facehub-synthetic-world"
    assert metrics["metrics"]["nme_all_faces"] == pytest.approx(fit["all_faces"], abs=1e-4)
    assert (out / "nme_by_yaw.png").stat().st_size > 1000


def test_aflw2000_layout_bins_by_wrapped_yaw_and_counts_missed_faces(tmp_path):
    """One real photo in the AFLW2000-3D layout, its 'ground truth' the FaceAnalyzer's own 68 points (so the
    reference row's NME is ~0), its yaw stored as 200 degrees (wrapped: -160, the last bin); and a blank photo that
    no method finds."""
    from PIL import Image
    from scipy.io import savemat

    from facehub.modeling.faces import FaceAnalyzer, load_image

    analyzer = FaceAnalyzer(compute_embedding=False)
    photo = load_image(PHOTOS / "obama.jpg")
    found = analyzer(photo)[0]
    Image.fromarray(photo).save(tmp_path / "image00001.png")
    points = np.c_[np.asarray(found.landmarks68, np.float64)[:, :2] + 0.5, np.zeros(68)]  # MATLAB's 1-based pixels
    pose = [0.0, np.deg2rad(200.0), 0.0, 0.0, 0.0, 0.0, 1.0]  # pitch, yaw, roll, translation, scale
    savemat(tmp_path / "image00001.mat", {"pt3d_68": points.T, "Pose_Para": np.array([pose])})
    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(tmp_path / "image00002.png")
    savemat(tmp_path / "image00002.mat", {"pt3d_68": points.T * 0.2, "Pose_Para": np.array([pose])})

    data = rec.open_evaluation_data(tmp_path)
    assert data.kind == "aflw2000-3d" and data.count == 2
    evaluation = fit_eval.evaluate({"fit": methods.load("face_fitting", "reconstruction")}, data, analyzer=analyzer,
                                   fit_settings={"appearance_iterations": 0}, progress=False)
    reference, fit = evaluation.row(fit_eval.REFERENCE_LABEL), evaluation.row("fit")
    for row in (reference, fit):
        assert row.nme.counts == [0, 0, 1] and row.nme.missed == 1 and row.found_percent == 50.0
    assert reference.nme.bins[2] == pytest.approx(0.0, abs=1e-6)
    assert 0 < fit.nme.bins[2] < 6.0
    # the stored yaw is mirrored into facehub's convention: -200 -> wrapped 160; a frontal face is ~160 degrees off
    assert 150 / 3 < reference.pose_mae < 200 / 3
    assert evaluation.kind == "aflw2000-3d" and "found %" in evaluation.table()
    # read as frontal where the truth is 160 degrees round: 160 degrees less turned, in the last bin only
    assert reference.yaw.bias[2] == pytest.approx(-reference.yaw.mae[2]) and 140 < reference.yaw.mae[2] < 180
    assert np.isnan(reference.yaw.bias[0]) and "Yaw read against the truth by |yaw| bin" in evaluation.table()
    assert evaluation.to_json()["rows"][0]["yaw_mae"][2] == pytest.approx(fit.yaw.mae[2])
    assert fit_eval.eval_results(evaluation)["metrics"]["faces_found_percent"] == 50.0


def test_a_checkpoint_with_a_regressor_adds_the_regressor_alone_row(tmp_path):
    """The regressor's prediction without optimisation is its own row (an untrained network here: only the
    bookkeeping is checked), next to the fit started from it."""
    import torch

    from facehub.modeling.face_fitting import FaceCoefficientRegressor, FaceFitter, FaceFittingPipeline
    from facehub.modeling.faces import FaceAnalyzer, load_image

    torch.manual_seed(0)
    pipe = FaceFittingPipeline(fitter=FaceFitter(), regressor=FaceCoefficientRegressor.from_preset("cpu-small"))
    photo = load_image(PHOTOS / "obama.jpg")
    analyzer = FaceAnalyzer(compute_embedding=False)
    truth = np.asarray(analyzer(photo)[0].landmarks68, np.float64)
    data = rec.EvaluationData("photos", "one photo", 1, iter([rec.EvaluationFace(photo, truth, 10.0, None, "obama")]))
    # An untrained network contradicts every face's landmarks: with the switch that keeps such a reading
    # (`regressor_beyond_disagreement`) on, the fit would be the reading itself.
    evaluation = fit_eval.evaluate({"fit": pipe}, data, analyzer=analyzer, progress=False,
                                   fit_settings={"appearance_iterations": 0, "regressor_beyond_disagreement": None})
    assert [row.label for row in evaluation.rows] == ["fit", "fit: regressor alone"]  # no reference on photos
    alone = evaluation.row("fit: regressor alone")
    assert alone.nme.counts == [1, 0, 0] and np.isfinite(alone.nme.bins[0])
    assert evaluation.row("fit").nme.bins[0] < alone.nme.bins[0]  # the fit improves on an untrained start
