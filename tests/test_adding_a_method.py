"""docs/adding-a-method.md, followed by a newcomer: a method declared in a package of its own (made here in a
temporary folder, registered through the ``facehub.methods`` entry-point group) shows up in the registry, trains
with ``facehub train`` in the shared loop, gets a model card from its registry entry, evaluates with
``facehub eval``, and is listed by the demo's Rotate tab together with its own tab, with no facehub file touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = '''
"""A minimal method in a package of its own: a one-layer "pose net", a pipeline honouring the rotation contract by
returning the photo unchanged with the pose it asked for, a training recipe and an evaluation."""

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from diffusers.configuration_utils import register_to_config
from diffusers import ModelMixin  # noqa: F401  (diffusers finds a component's loader through this name)

from facehub.methods import MethodSpec
from facehub.modeling.modeling_utils import FaceHubModel, FaceHubPipeline
from facehub.modeling.pipeline_utils import Pose, RotationPipelineOutput, as_image_list, convert_images
from facehub.trainers.core import TrainingConfig, TrainingMethod
from facehub.trainers.core.config import ConfigError, ConfigSection, ModelSection


class PoseNet(FaceHubModel):
    @register_to_config
    def __init__(self, width: int = 4):
        super().__init__()
        self.layer = torch.nn.Linear(3, width)
        self.out = torch.nn.Linear(width, 3)

    def forward(self, pose):
        return self.out(torch.tanh(self.layer(pose)))


class StillRotationPipeline(FaceHubPipeline):
    def __init__(self, pose_net: PoseNet):
        super().__init__()
        self.register_modules(pose_net=pose_net)

    def __call__(self, image, yaw=0.0, pitch=0.0, roll=None, target_image=None, output_type="pil"):
        photos, batched = as_image_list(image)
        poses = [Pose(yaw, pitch, roll or 0.0)] * len(photos)
        return RotationPipelineOutput(images=convert_images(photos, output_type),
                                      requested_pose=poses if batched else poses[0],
                                      achieved_pose=[None] * len(photos) if batched else None)


PRESETS = {"tiny": {"width": 4}, "wide": {"width": 16}}


@dataclass
class ToyModelConfig(ModelSection):
    """``model``: a preset of PRESETS plus overrides.

    Fields:
        preset: ``tiny`` or ``wide``.
        width: hidden units.
    """

    model_presets: ClassVar[dict[str, dict[str, Any]]] = PRESETS
    preset: str = "tiny"
    width: int | None = None


@dataclass
class ToyDataConfig(ConfigSection):
    """``data``.

    Fields:
        num_samples: random poses per epoch.
    """

    num_samples: int = 64

    def __post_init__(self):
        if self.num_samples <= 0:
            raise ConfigError(f"Got {self.num_samples} for `data.num_samples`; it must be positive.")


@dataclass
class ToyLossesConfig(ConfigSection):
    """``losses``.

    Fields:
        pose_weight: weight of the pose reconstruction loss.
    """

    pose_weight: float = 1.0


@dataclass
class ToyConfig(TrainingConfig):
    """Training of the toy method."""

    presets: ClassVar[dict[str, dict[str, Any]]] = {"cpu-small": {"max_steps": 4, "train_batch_size": 8}}
    method: str = "toy_method"
    model: ToyModelConfig = field(default_factory=ToyModelConfig)
    data: ToyDataConfig = field(default_factory=ToyDataConfig)
    losses: ToyLossesConfig = field(default_factory=ToyLossesConfig)


class RandomPoses(torch.utils.data.Dataset):
    def __init__(self, count):
        self.poses = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (count, 3))).float()

    def __len__(self):
        return len(self.poses)

    def __getitem__(self, index):
        return self.poses[index]


class ToyTraining(TrainingMethod):
    name = "toy_method"
    config_class = ToyConfig

    def build_models(self):
        return {"pose_net": PoseNet(**self.config.model.settings())}

    def build_dataset(self):
        return RandomPoses(self.config.data.num_samples)

    def training_step(self, batch, ctx):
        loss = self.config.losses.pose_weight * (ctx.models["pose_net"](batch) - batch).pow(2).mean()
        ctx.optimize("main", loss)
        return {"loss": loss.item()}

    def export(self, models, folder):
        StillRotationPipeline(pose_net=models["pose_net"]).save_pretrained(folder)

    def model_card(self):
        return {"description": "A toy pose net trained by the facehub test suite."}


def evaluate(argv):
    import argparse

    parser = argparse.ArgumentParser(prog="facehub eval toy_method")
    parser.add_argument("--model", required=True)
    args = parser.parse_args(argv)
    pipe = StillRotationPipeline.from_pretrained(args.model)
    with torch.no_grad():
        error = (pipe.pose_net(torch.zeros(1, 3))).abs().mean().item()
    print(f"toy pose error {error:.4f}")
    return 0


TAB_BUILT = []


METHOD = MethodSpec(
    name="toy_method",
    title="Toy still rotation",
    paper="The facehub test suite",
    summary="returns the photo as it is, with the pose it was asked for.",
    capabilities={"rotation": "toy_method:StillRotationPipeline"},
    default_model=None,
    models={"pose_net": "toy_method:PoseNet"},
    training="toy_method:ToyTraining",
    evaluation="toy_method:evaluate",
    tabs=("toy_method_tab",),
    tags=("toy",),
)
'''

TAB = '''
from facehub.apps.registry import register_tab


@register_tab("Toy", order=90)
def build(ctx):
    import gradio as gr

    gr.Markdown("The toy method's own tab.")
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> dict[str, str]:
    """A package with one method, declared only through its entry point; the environment that sees it."""
    site = tmp_path_factory.mktemp("site")
    (site / "toy_method.py").write_text(textwrap.dedent(PACKAGE))
    (site / "toy_method_tab.py").write_text(textwrap.dedent(TAB))
    dist = site / "toy_method-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-method\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[facehub.methods]\ntoy_method = toy_method:METHOD\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1"}
    return env


def _facehub(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facehub.apps.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_the_registry_and_the_demo_find_it(plugin):
    code = textwrap.dedent("""
        import json
        from facehub import methods
        from facehub.apps.registry import registered_tabs
        from facehub.apps.tabs.common import method_choices
        print(json.dumps({"rotation": methods.available("rotation"), "choices": method_choices("rotation"),
                          "tabs": [tab.name for tab in registered_tabs()]}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=plugin, check=True,
                         timeout=300)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert "toy_method" in found["rotation"]
    assert ["Toy still rotation", "toy_method"] in found["choices"]
    assert "Toy" in found["tabs"] and "Rotate" in found["tabs"]


def test_train_help_lists_its_config_keys(plugin):
    result = _facehub("train", "toy_method", "--help", env=plugin)
    assert result.returncode == 0, result.stderr
    for key in ("data.num_samples", "losses.pose_weight", "model.width", "cpu-small"):
        assert key in result.stdout


def test_a_typo_in_its_config_is_one_line_before_any_launch(plugin, tmp_path):
    result = _facehub("train", "toy_method", "--preset", "cpu-small", "losses.pose_wieght=2", f"output_dir={tmp_path}",
                      "--cpu", env=plugin)
    assert result.returncode == 2
    assert "losses.pose_weight" in result.stderr and "Traceback" not in result.stderr
    assert "launching" not in result.stdout and not (tmp_path / "config.yaml").exists()


def test_it_trains_exports_a_card_and_evaluates(plugin, tmp_path):
    out = tmp_path / "run"
    result = _facehub("train", "toy_method", "--preset", "cpu-small", f"output_dir={out}", "report_to=none",
                      "--cpu", env=plugin)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    export = out / "export"
    index = json.loads((export / "model_index.json").read_text())
    assert index["_class_name"] == "StillRotationPipeline"
    card = (export / "README.md").read_text()
    assert "Toy still rotation" in card and "The facehub test suite" in card and "- toy_method" in card
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 4

    evaluation = _facehub("eval", "toy_method", "--model", str(export), env=plugin)
    assert evaluation.returncode == 0, evaluation.stderr
    assert "toy pose error" in evaluation.stdout

    code = ("from facehub import methods\n"
            f"out = methods.load('toy_method', 'rotation', model={str(export)!r})('photo.png', yaw=12.0)\n"
            "print(out.requested_pose.yaw, out.images[0].size)")
    photo = Path(__file__).parent / "data" / "photos" / "astronaut.png"
    (tmp_path / "photo.png").write_bytes(photo.read_bytes())
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=plugin, cwd=tmp_path,
                            timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["12.0", "(512,", "512)"]
