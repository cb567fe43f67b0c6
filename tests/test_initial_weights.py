"""`init_from`: a run's networks start from a trained checkpoint (fine-tuning), all or nothing per network."""

import pytest
import torch

from facehub.modeling.depthnet import DepthNetModel
from facehub.modeling.face_fitting import FaceCoefficientRegressor
from facehub.trainers.core.config import ConfigError
from facehub.trainers.core.initial_weights import load_initial_weights


def test_the_networks_a_checkpoint_holds_start_from_it_and_the_others_start_fresh(tmp_path):
    torch.manual_seed(0)
    trained = DepthNetModel(hidden_sizes=(8, 8))
    trained.save_pretrained(tmp_path / "trained")
    torch.manual_seed(1)
    models = {"depthnet": DepthNetModel(hidden_sizes=(8, 8)), "regressor": FaceCoefficientRegressor.from_preset()}
    fresh = {k: v.clone() for k, v in models["regressor"].state_dict().items()}
    assert not torch.equal(next(models["depthnet"].parameters()), next(trained.parameters()))  # seeds differ
    assert load_initial_weights(models, str(tmp_path / "trained")) == ["depthnet"]
    for key, value in trained.state_dict().items():
        assert torch.equal(models["depthnet"].state_dict()[key], value), key
    assert all(torch.equal(models["regressor"].state_dict()[k], v) for k, v in fresh.items())


def test_another_architecture_or_method_is_refused_before_any_step(tmp_path):
    DepthNetModel(hidden_sizes=(8, 8)).save_pretrained(tmp_path / "trained")
    wider = {"depthnet": DepthNetModel(hidden_sizes=(16, 16))}
    with pytest.raises(ConfigError, match=r"other settings than this run's `depthnet` \(hidden_sizes: \[8, 8\] there"):
        load_initial_weights(wider, str(tmp_path / "trained"))
    with pytest.raises(ConfigError, match="holds none of this run's networks \\(regressor\\)"):
        load_initial_weights({"regressor": FaceCoefficientRegressor.from_preset()}, str(tmp_path / "trained"))
