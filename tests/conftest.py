"""Shared test set-up: no telemetry, and a live demo server with a tiny embedded checkpoint."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ports import free_port

# Gradio reads this when a Blocks is created; set it before any test builds one, so nothing calls home.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# Tests start torch subprocesses (accelerate launch, the demo) beside this one on two cores: OpenMP threads that
# spin while waiting slow such neighbours down many times over; passive waiting costs nothing alone.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TEST_MODEL_ID = "facehub/depthnet-test"
TEST_MODEL_CARD = "A tiny DepthNet made by the facehub tests."




@dataclass
class DemoServer:
    """A running demo: its URL, its model context, the embedded-defaults folder it serves and the test model in it."""

    url: str
    ctx: Any  # facehub.apps.registry.DemoContext
    defaults_dir: Path
    model_id: str = TEST_MODEL_ID
    model_card: str = TEST_MODEL_CARD


def make_embedded_defaults(root: Path) -> Path:
    """Fill ``root`` as an embedded-defaults folder holding a small DepthNet pipeline, ``facehub/depthnet-test``."""
    from facehub.modeling.depthnet import DepthNetModel, KeypointRegistrationPipeline

    folder = root / TEST_MODEL_ID
    KeypointRegistrationPipeline(depth_net=DepthNetModel(hidden_sizes=(16,))).save_pretrained(folder)
    (folder / "README.md").write_text(
        f"---\nlicense: apache-2.0\ntags: [facehub]\n---\n# depthnet-test\n\n{TEST_MODEL_CARD}\n"
    )
    return root


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """The demo app served in-process on a free loopback port, over embedded defaults made for the test."""
    from facehub.apps.demo import launch
    from facehub.apps.registry import DemoContext

    defaults = make_embedded_defaults(tmp_path_factory.mktemp("defaults"))
    ctx = DemoContext(device="cpu")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("facehub.hub.resolver.EMBEDDED_DEFAULTS_DIR", defaults)
        port = free_port()
        demo = launch(host="127.0.0.1", port=port, ctx=ctx, block=False)
        try:
            yield DemoServer(url=f"http://127.0.0.1:{port}/", ctx=ctx, defaults_dir=defaults)
        finally:
            demo.close()


@pytest.fixture(scope="session")
def faces_of_test_photos():
    """``[(file name, RGB image, its largest Face)]`` for every photo in tests/data/photos that shows a face (six;
    chelsea.jpg is a cat), found once by the FaceAnalyzer (no identity descriptor)."""
    from facehub.modeling.faces import FaceAnalyzer, load_image

    analyzer = FaceAnalyzer(compute_embedding=False)
    found = []
    try:
        for path in sorted((Path(__file__).parent / "data" / "photos").iterdir()):
            if path.suffix not in (".jpg", ".png"):
                continue
            image = load_image(path)
            faces = analyzer(image)
            if faces:
                found.append((path.name, image, faces[0]))
    finally:
        analyzer.close()
    return found


#: Test files that take the longest, longest first (by `make test`'s own durations: run it with ``--durations=0``).
#: `make test` hands whole files to its workers in collection order (``--dist loadfile --no-loadscope-reorder``), so
#: these start first and the short files fill in around them; started last, one of them keeps one core busy for
#: minutes after the other has run out of work.
LONGEST_FILES_FIRST = (
    "test_readme.py",  # every README command and block
    "test_depthnet_training.py",  # Table 1's three 1,200-step runs
    "test_disco_facegan.py",  # the paper's schedule against the adversarial-only row
    "test_trainer.py",  # two processes, a killed run resumed
    "test_prepare.py",
    "test_adding_a_method.py",
    "test_pose_cvaegan.py",
    "test_cli.py",
    "test_prn_dense_training.py",
    "test_stylefaceuv.py",
)


def pytest_collection_modifyitems(config, items):
    """Put :data:`LONGEST_FILES_FIRST` at the head of the collection, in that order; every other file keeps its place
    after them, and every test its place within its file."""
    rank = {name: position for position, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
