"""The Gradio demo hub, driven over HTTP with gradio_client against a live in-process server."""

from __future__ import annotations

import json

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from facehub.apps import registry
from facehub.apps.demo import build_demo
from facehub.apps.registry import DemoContext, register_tab
from facehub.apps.tabs.about import NO_CHECKPOINTS

pytestmark = pytest.mark.slow


TEST_MODEL_ID = "facehub/depthnet-test"  # made by the demo_server fixture (conftest.py)


@pytest.fixture(scope="module")
def client(demo_server):
    assert demo_server.model_id == TEST_MODEL_ID
    return Client(demo_server.url, verbose=False, download_files=False)


def real_parameter_count(folder) -> int:
    from facehub.modeling.depthnet import DepthNetModel

    model = DepthNetModel.from_pretrained(folder / "depth_net")
    return sum(p.numel() for p in model.parameters())


def test_public_api_names(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/list_models", "/model_info", "/load_model", "/loaded_models"} <= set(endpoints)


def test_list_models(client, demo_server):
    _, catalog = client.predict(api_name="/list_models")
    assert catalog["headers"] == ["Model", "Class", "Description"]
    assert [TEST_MODEL_ID, "KeypointRegistrationPipeline", demo_server.model_card] in catalog["data"]


def test_model_info_shows_card_and_config(client, demo_server):
    summary, card, config = client.predict(TEST_MODEL_ID, api_name="/model_info")
    assert TEST_MODEL_ID in summary and "KeypointRegistrationPipeline" in summary
    assert demo_server.model_card in card
    assert "license:" not in card, "the YAML metadata header is not part of the rendered card"
    config = json.loads(config) if isinstance(config, str) else config
    assert config["model_index.json"]["_class_name"] == "KeypointRegistrationPipeline"
    assert config["depth_net/config.json"]["hidden_sizes"] == [16]


def test_load_reports_parameter_count_and_about_lists_it(client, demo_server):
    demo_server.ctx.clear()
    assert client.predict(api_name="/loaded_models") == NO_CHECKPOINTS

    status, count = client.predict(TEST_MODEL_ID, api_name="/load_model")
    expected = real_parameter_count(demo_server.defaults_dir / TEST_MODEL_ID)
    assert count == expected
    assert TEST_MODEL_ID in status and f"{expected:,}" in status

    loaded = client.predict(api_name="/loaded_models")
    assert TEST_MODEL_ID in loaded and "KeypointRegistrationPipeline" in loaded

    # Loading again reuses the cached pipeline.
    status, count = client.predict(TEST_MODEL_ID, api_name="/load_model")
    assert status.startswith("Already loaded") and count == expected
    assert len(demo_server.ctx.loaded()) == 1


def test_load_unknown_hub_id_is_a_clear_error(client, monkeypatch):
    import huggingface_hub.constants

    # The server runs in this process: offline mode keeps the Hub lookup local and fast.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AppError) as err:
        client.predict("facehub/no-such-model", api_name="/load_model")
    message = str(err.value)
    assert "Could not find model 'facehub/no-such-model'" in message
    assert TEST_MODEL_ID in message, "the error lists the embedded defaults the user could pick instead"
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("no-such-model", "is not a local folder and not a Hub id of the form 'org/name'"),
        ("", "No model selected"),
    ],
)
def test_load_bad_input_is_a_clear_error(client, model_id, expected):
    with pytest.raises(AppError, match=expected):
        client.predict(model_id, api_name="/load_model")


def test_load_unknown_class_is_a_clear_error(client, demo_server):
    folder = demo_server.defaults_dir / "facehub" / "mystery"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": "MysteryModel"}))
    with pytest.raises(AppError) as err:
        client.predict("facehub/mystery", api_name="/load_model")
    message = str(err.value)
    assert "MysteryModel" in message and "cannot load" in message
    assert "KeypointRegistrationPipeline" in message, "the error names the classes the demo can load"


def _markdown_values(demo: gr.Blocks) -> list[str]:
    return [block.value for block in demo.blocks.values() if isinstance(block, gr.Markdown)]


def _tab_labels(demo: gr.Blocks) -> list[str]:
    return [block.label for block in demo.blocks.values() if isinstance(block, gr.Tab)]


def test_empty_defaults_show_a_helpful_message(tmp_path, monkeypatch):
    monkeypatch.setattr("facehub.hub.resolver.EMBEDDED_DEFAULTS_DIR", tmp_path)
    demo = build_demo(DemoContext(device="cpu"))
    picker = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "facehub-model-picker")
    assert picker.choices == [] and picker.value is None
    assert any("No embedded default checkpoints were found" in text for text in _markdown_values(demo))


def test_registered_tabs_are_ordered_and_a_broken_tab_does_not_break_the_demo(monkeypatch):
    registry.load_builtin_tabs()  # registered in the real table, so the copy below is what gets thrown away
    monkeypatch.setattr(registry, "_TABS", dict(registry._TABS))

    @register_tab("Relight", order=10)
    def build_relight(ctx):
        gr.Markdown("relight here")

    @register_tab("Broken", order=27)
    def build_broken(ctx):
        raise RuntimeError("no weights")

    with pytest.raises(ValueError, match="already registered"):
        register_tab("Relight")(lambda ctx: None)

    demo = build_demo(DemoContext(device="cpu"))
    assert _tab_labels(demo) == ["Relight", "Rotate", "Reconstruct 3D", "Broken", "Swap", "Models", "About"]
    assert any("failed to build" in text and "no weights" in text for text in _markdown_values(demo))


def test_context_caches_models(demo_server):
    from facehub.modeling.depthnet import KeypointRegistrationPipeline

    ctx = DemoContext(device="cpu")
    folder = str(demo_server.defaults_dir / TEST_MODEL_ID)
    first = ctx.load(folder, KeypointRegistrationPipeline)
    assert ctx.load(folder, KeypointRegistrationPipeline) is first
    [record] = ctx.loaded()
    assert record.model_id == folder and record.class_name == "KeypointRegistrationPipeline"


def test_space_entry_point_exposes_demo():
    from facehub.apps import app

    assert isinstance(app.demo, gr.Blocks)
    assert {"Models", "About"} <= set(_tab_labels(app.demo))
