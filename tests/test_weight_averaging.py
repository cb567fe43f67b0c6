"""``facehub average-weights``: the mean of several runs' exported weights (a model soup) as one loadable model, and
clear refusals of folders that are not the same model."""

from __future__ import annotations

import json

import pytest
import torch

from facehub.modeling.face_fitting import FaceCoefficientRegressor, FaceFitter, FaceFittingPipeline
from facehub.trainers.core.weight_averaging import WeightAveragingError, average_model_folders

SMALL = {"image_size": 32, "stem_channels": 8, "stage_channels": (8, 16, 16, 16)}


def _bundle(folder, seed: int, init_from: str = "facehub/face-fitting", **architecture):
    """A face-fitting bundle with a regressor of random weights (and batch-norm statistics) drawn with ``seed``,
    exported as a run exports it."""
    torch.manual_seed(seed)
    regressor = FaceCoefficientRegressor.from_preset("cpu-small", **{**SMALL, **architecture})
    with torch.no_grad():
        for name, buffer in regressor.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_()
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
            elif name.endswith("num_batches_tracked"):
                buffer.fill_(100 + seed)
        for parameter in regressor.parameters():
            parameter.normal_()
    FaceFittingPipeline(FaceFitter(), regressor).save_pretrained(str(folder))
    (folder / "training_config.yaml").write_text(f"method: face_fitting\nseed: {seed}\ninit_from: {init_from}\n")
    (folder / "README.md").write_text(f"# run with seed {seed}\n")
    return regressor


def test_the_average_of_two_runs_is_the_mean_of_their_tensors_and_loads(tmp_path):
    a, b = _bundle(tmp_path / "a", 0), _bundle(tmp_path / "b", 1)
    out = average_model_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "soup")
    soup = FaceFittingPipeline.from_pretrained(str(out))
    state_a, state_b, state = a.state_dict(), b.state_dict(), soup.regressor.state_dict()
    for key, value in state.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (state_a[key] + state_b[key]) / 2, rtol=0, atol=1e-6)
            assert not torch.equal(value, state_a[key])
        else:  # a batch counter: the first run's
            assert torch.equal(value, state_a[key])
    provenance = json.loads((out / "averaged_from.json").read_text())
    assert provenance["weights"] == [0.5, 0.5] and provenance["sources"] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert not (out / "README.md").exists()  # the first run's card does not describe the soup
    assert (out / "training_config.yaml").read_text().startswith("method: face_fitting")

    # Weights are normalised: 3:1 is 0.75 and 0.25.
    weighted = average_model_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "weighted", weights=[3, 1])
    key = next(k for k, v in state.items() if v.is_floating_point())
    loaded = FaceFittingPipeline.from_pretrained(str(weighted)).regressor.state_dict()[key]
    torch.testing.assert_close(loaded, 0.75 * state_a[key] + 0.25 * state_b[key], rtol=0, atol=1e-6)


def test_a_setting_an_older_export_did_not_write_counts_as_its_default(tmp_path):
    """An export made before a setting existed has no key for it; it loads with the class's default, so it is the
    same model as one that writes that default. The same setting with another value is still refused."""
    _bundle(tmp_path / "new", 0)
    _bundle(tmp_path / "old", 1)
    config = tmp_path / "old" / "fitter" / "config.json"
    values = json.loads(config.read_text())
    assert values.pop("regressor_reading_weight") == FaceFitter().config.regressor_reading_weight
    config.write_text(json.dumps(values))
    for order in (["new", "old"], ["old", "new"]):
        out = average_model_folders([tmp_path / name for name in order], tmp_path / f"soup-{order[0]}")
        assert FaceFittingPipeline.from_pretrained(str(out)).fitter.config.regressor_reading_weight == 0.5
    values["regressor_reading_weight"] = 0.25
    config.write_text(json.dumps(values))
    with pytest.raises(WeightAveragingError, match=r"regressor_reading_weight: 0\.25 there, 0\.5 here"):
        average_model_folders([tmp_path / "new", tmp_path / "old"], tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_folders_that_are_not_the_same_model_are_refused(tmp_path):
    _bundle(tmp_path / "a", 0)
    _bundle(tmp_path / "b", 1)
    _bundle(tmp_path / "wider", 2, stem_channels=12)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightAveragingError, match="at least two"):
        average_model_folders([tmp_path / "a"], tmp_path / "out")
    with pytest.raises(WeightAveragingError, match="not an exported model"):
        average_model_folders([tmp_path / "a", tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(WeightAveragingError, match=r"regressor/config.json differs .* not the same architecture"):
        average_model_folders([tmp_path / "a", tmp_path / "wider"], tmp_path / "out")
    with pytest.raises(WeightAveragingError, match="one weight >= 0 per folder"):
        average_model_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "out", weights=[1.0])
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        average_model_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"  # nothing lost
    # A tensor of another shape under the same configs is refused before --out is touched, even with overwrite.
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(tmp_path / "b", tmp_path / "reshaped")
    weights_file = tmp_path / "reshaped" / "regressor" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights_file))
    key = next(k for k, v in state.items() if v.ndim == 4)
    state[key] = state[key][:, :, :1, :1].contiguous()
    save_file(state, str(weights_file))
    with pytest.raises(WeightAveragingError, match=f"Tensor '{key}' of regressor/.* other shapes"):
        average_model_folders([tmp_path / "a", tmp_path / "reshaped"], tmp_path / "taken", overwrite=True)
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    with pytest.raises(WeightAveragingError, match="one of the folders averaged"):
        average_model_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "a", overwrite=True)
    assert (tmp_path / "a" / "model_index.json").is_file()
    assert not (tmp_path / "out").exists()
    # Runs that record other starting weights are averaged with a warning: two names can hold the same weights.
    _bundle(tmp_path / "other-start", 3, init_from="runs/elsewhere/export")
    with pytest.warns(UserWarning, match="different init_from"):
        average_model_folders([tmp_path / "a", tmp_path / "other-start"], tmp_path / "out")


def test_the_command_averages_and_reports_errors_in_one_line(tmp_path, capsys):
    from facehub.apps.cli import main

    _bundle(tmp_path / "a", 0)
    _bundle(tmp_path / "b", 1)
    _bundle(tmp_path / "c", 2, init_from="runs/elsewhere/export")
    assert main(["average-weights", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "soup")]) == 0
    assert f"Averaged 2 models into {tmp_path / 'soup'}" in capsys.readouterr().out
    assert main(["average-weights", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "soup")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not empty" in err and err.count("\n") == 1
    assert main(["average-weights", str(tmp_path / "a"), str(tmp_path / "c"), "--out", str(tmp_path / "ac")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: The runs record different init_from") and "Traceback" not in err
