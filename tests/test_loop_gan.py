"""What the loop gives adversarial methods: the frozen-discriminator call, EMA, R1 / WGAN-GP penalties, per-optimiser
learning-rate schedules (the logged rate is the applied one) and sample grids on disk and in TensorBoard."""

import json

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from PIL import Image
from safetensors.torch import load_file, save_file
from torch.utils.data import TensorDataset

from facehub.trainers.core import (
    ExponentialMovingAverage,
    TrainingConfig,
    TrainingMethod,
    frozen_call,
    gradient_penalty,
    r1_penalty,
    train,
)
from facehub.trainers.core import loop as core_loop
from facehub.trainers.core.samples import make_grid
from facehub.trainers.core.schedules import config_schedule


@pytest.fixture(autouse=True)
def no_model_card(monkeypatch):
    monkeypatch.setattr(core_loop, "_write_card", lambda *args: None)


class Critic(torch.nn.Module):
    """A discriminator with batch-norm statistics (buffers) in front of a linear score."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(3)
        self.score = torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.score(self.norm(x))


def test_frozen_call_sends_gradients_to_the_input_only_and_leaves_the_statistics_alone():
    torch.manual_seed(0)
    critic = Critic().train()
    x = torch.randn(16, 3, requires_grad=True)
    before = {name: tensor.clone() for name, tensor in critic.state_dict().items()}
    scores = frozen_call(Accelerator(cpu=True), critic, x)
    scores.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())
    for name, tensor in critic.state_dict().items():  # running mean / var / count did not move
        assert torch.equal(tensor, before[name]), name
    # The same scores as the network in training mode (batch statistics), from the same weights.
    expected = critic.score((x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + critic.norm.eps))
    torch.testing.assert_close(scores, expected)


def test_ema_is_the_exponential_average_of_the_weights():
    network = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        network.weight.fill_(1.0)
    ema = ExponentialMovingAverage(network, decay=0.5)
    for value in (3.0, 5.0):
        with torch.no_grad():
            network.weight.fill_(value)
        ema.update(network)
    # 1 -> 0.5 * 1 + 0.5 * 3 = 2 -> 0.5 * 2 + 0.5 * 5 = 3.5
    assert torch.equal(ema.average.weight, torch.full((1, 2), 3.5))
    assert not ema.average.weight.requires_grad and not ema.average.training
    with pytest.raises(ValueError, match=r"Got 1.0 for the EMA decay; it must be in \[0, 1\)"):
        ExponentialMovingAverage(network, 1.0)


def test_r1_and_wgan_gp_penalties_on_a_linear_critic():
    weight = torch.tensor([[3.0, 4.0]], requires_grad=True)  # ||w|| = 5

    def critic(x):
        return x @ weight.T

    real = torch.randn(8, 2).requires_grad_(True)
    r1 = r1_penalty(critic(real), real)
    assert r1.item() == pytest.approx(25.0)  # ||grad_x (w . x)||^2 = ||w||^2
    r1.backward()
    torch.testing.assert_close(weight.grad, 2 * weight.detach())  # d||w||^2/dw: the graph reaches the critic
    penalty = gradient_penalty(critic, torch.randn(8, 2), torch.randn(8, 2), torch.Generator().manual_seed(0))
    assert penalty.item() == pytest.approx((5.0 - 1.0) ** 2)


def test_config_schedules_are_diffusers_factors_per_step():
    linear = config_schedule("linear", warmup_steps=2, max_steps=10)
    assert [linear(k) for k in (0, 1, 2, 6, 10)] == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="`lr_scheduler`"):
        config_schedule("reduce_lr_on_plateau", 0, 10)


class TwoPlayers(TrainingMethod):
    """Two scalar "networks" pushed by constant gradients with plain SGD, so every step moves a weight by exactly
    the rate applied: ``player`` under the config's schedule, ``other`` under a halving schedule of its own on top.
    The generator's EMA is exported; a sample grid shows a black row and a white row."""

    name = "two-players"
    sample_steps = 3

    def build_models(self):
        return {"player": torch.nn.Linear(1, 1, bias=False), "other": torch.nn.Linear(1, 1, bias=False)}

    def build_optimizers(self, models):
        return {"player": torch.optim.SGD(models["player"].parameters(), lr=0.1),
                "other": torch.optim.SGD(models["other"].parameters(), lr=0.2)}

    def learning_rate_schedules(self):
        return {"other": lambda step: 0.5 ** (step // 2)}

    def ema_decays(self):
        return {"player": 0.5}

    def build_dataset(self):
        return TensorDataset(torch.ones(4, 1))

    def training_step(self, batch, ctx):
        (x,) = batch
        ctx.optimize("player", ctx.models["player"](x).mean())  # gradient 1 for any weight
        ctx.optimize("other", ctx.models["other"](x).mean())
        return {"player": ctx.models["player"].weight.item()}

    def sample_images(self, models, batch):
        assert not models["player"].training and models["player"] is not None
        return {"black": -torch.ones(2, 3, 4, 4), "white": torch.ones(1, 1, 4, 4)}

    def export(self, models, folder):
        save_file({"player": models["player"].weight.detach().clone()}, str(folder / "weights.safetensors"))


def test_each_optimizer_applies_and_logs_its_own_schedule_and_samples_are_written(tmp_path):
    config = TrainingConfig(method="two-players", output_dir=str(tmp_path), seed=0, max_steps=6, train_batch_size=2,
                            learning_rate=0.1, lr_scheduler="linear", lr_warmup_steps=2, max_grad_norm=None,
                            logging_steps=1, checkpointing_steps=100, report_to="tensorboard")
    torch.manual_seed(0)
    start = {name: model.weight.item() for name, model in TwoPlayers(config).build_models().items()}
    train(TwoPlayers(config))
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    linear = [min(k / 2, (6 - k) / 4) for k in range(6)]  # warm-up over 2 steps, then linear decay to 0 at step 6
    player_rates = [0.1 * f for f in linear]
    other_rates = [0.2 * f * 0.5 ** (k // 2) for k, f in enumerate(linear)]
    assert [m["lr/player"] for m in logs] == pytest.approx(player_rates)
    assert [m["lr/other"] for m in logs] == pytest.approx(other_rates)
    # The logged rates are the applied ones: each SGD step moved the weight by exactly that rate.
    weights = load_file(tmp_path / "checkpoints" / "checkpoint-6" / "model_other.safetensors")["weight"]
    assert weights.item() == pytest.approx(start["other"] - sum(other_rates), abs=1e-6)
    assert [m["player"] for m in logs] == pytest.approx([start["player"] - sum(player_rates[: k + 1])
                                                         for k in range(6)], abs=1e-6)
    # The export is the EMA (decay 0.5) of the player's weights after each step.
    average = start["player"]
    for m in logs:
        average = 0.5 * average + 0.5 * m["player"]
    assert load_file(tmp_path / "export" / "weights.safetensors")["player"].item() == pytest.approx(average, abs=1e-6)

    # Sample grids every 3 steps: a black row of two and a white row of one (padded), white 2-pixel borders.
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step-000003.png", "step-000006.png"]
    grid = np.asarray(Image.open(tmp_path / "samples" / "step-000006.png"))
    assert grid.shape == (2 + 2 * (4 + 2), 2 + 2 * (4 + 2), 3)
    assert (grid[2:6, 2:6] == 0).all() and (grid[2:6, 8:12] == 0).all()  # black row
    assert (grid[8:12, 2:6] == 255).all() and (grid[8:12, 8:12] == 255).all()  # white image, then the padding
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((tmp_path / "logs").rglob("events.out.tfevents.*")).parent)).Reload()
    assert [event.step for event in events.Images("samples")] == [3, 6]


def test_sample_grid_checks_its_rows():
    assert make_grid({"grey": torch.zeros(1, 1, 2, 2)}, padding=0).tolist() == [[[128] * 3] * 2] * 2
    with pytest.raises(ValueError, match=r"Sample rows differ in image size"):
        make_grid({"a": torch.zeros(1, 3, 2, 2), "b": torch.zeros(1, 3, 4, 4)})
    with pytest.raises(ValueError, match=r"Sample row 'a' has shape \(1, 2, 2, 2\)"):
        make_grid({"a": torch.zeros(1, 2, 2, 2)})
