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
