"""The Gradio demo hub, driven over HTTP with gradio_client against a live in-process server."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from facehub.apps import registry
from facehub.apps.demo import build_demo
from facehub.apps.registry import MODEL_REFUSED, NO_MODEL_SELECTED, DemoContext, register_tab
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


def test_load_an_id_the_demo_does_not_offer_is_refused(client, monkeypatch):
    import huggingface_hub.constants

    # Even if the demo asked the Hub, offline mode would keep the test local; it must not ask at all.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AppError) as err:
        client.predict("facehub/no-such-model", api_name="/load_model")
    assert err.value.message == MODEL_REFUSED
    assert "Traceback" not in str(err.value)


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("no-such-model", MODEL_REFUSED),
        ("", NO_MODEL_SELECTED),
    ],
)
def test_load_bad_input_is_a_clear_error(client, model_id, expected):
    with pytest.raises(AppError) as err:
        client.predict(model_id, api_name="/load_model")
    assert err.value.message == expected


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
    assert _tab_labels(demo) == ["Relight", "Rotate", "Reconstruct 3D", "Broken", "Swap", "Generate", "Compare",
                                  "Models", "About"]
    assert any("failed to build" in text and "no weights" in text for text in _markdown_values(demo))


def test_context_caches_models(demo_server):
    from facehub.modeling.depthnet import KeypointRegistrationPipeline

    ctx = DemoContext(device="cpu")
    folder = str(demo_server.defaults_dir / TEST_MODEL_ID)
    first = ctx.load(folder, KeypointRegistrationPipeline)
    assert ctx.load(folder, KeypointRegistrationPipeline) is first
    assert ctx.load(TEST_MODEL_ID, KeypointRegistrationPipeline) is first, "one copy, whichever way it is named"
    [record] = ctx.loaded()
    assert record.model_id == TEST_MODEL_ID and record.class_name == "KeypointRegistrationPipeline"


def test_space_entry_point_exposes_demo():
    from facehub.apps import app

    assert isinstance(app.demo, gr.Blocks)
    assert {"Models", "About"} <= set(_tab_labels(app.demo))


def test_capability_tabs_list_the_methods_of_the_registry(tmp_path, monkeypatch):
    """A method declared in the registry shows up in the pickers of its capabilities, and its own tab module is
    imported, with no demo file edited."""
    from facehub import methods
    from facehub.methods import MethodSpec

    (tmp_path / "facehub_test_relight_tab.py").write_text(
        "import gradio as gr\n"
        "from facehub.apps.registry import register_tab\n\n"
        "@register_tab('Relight (test)', order=60)\n"
        "def build(ctx):\n"
        "    gr.Markdown('relight here')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_TABS", dict(registry._TABS))
    spec = MethodSpec(
        name="relight_test",
        title="Relight (test method)",
        paper="none",
        summary="a method made by the demo tests.",
        capabilities={"rotation": "facehub.modeling.depthnet:FaceRotationPipeline",
                      "swap": "facehub.modeling.depthnet:FaceSwapPipeline"},
        default_model="facehub/depthnet",
        tabs=("facehub_test_relight_tab",),
    )
    methods.register(spec)
    try:
        assert registry.BUILTIN_TAB_MODULES == [f"facehub.apps.tabs.{name}" for name in
                                                ("rotate", "reconstruct", "swap", "generate", "compare", "models",
                                                 "about")]
        assert "facehub_test_relight_tab" in registry.tab_modules()
        demo = build_demo(DemoContext(device="cpu"))
    finally:
        methods.unregister("relight_test")
    assert "Relight (test)" in _tab_labels(demo)
    pickers = [b for b in demo.blocks.values() if isinstance(b, gr.Radio) and b.label == "Method"]
    expected = {"rotation": methods.available("rotation") + ["relight_test"],
                "swap": methods.available("swap") + ["relight_test"],
                "reconstruction": methods.available("reconstruction"),
                "generation": methods.available("generation")}
    offered = sorted(sorted(value for _, value in picker.choices) for picker in pickers)
    assert offered == sorted(sorted(names) for names in expected.values())
    titles = {value: label for picker in pickers for label, value in picker.choices}
    assert titles["relight_test"] == "Relight (test method)" and titles["depthnet"] == methods.get("depthnet").title
    # The Rotate tab starts on the 3D rotation (the rotation evaluation's most accurate method).
    rotation_picker = next(p for p in pickers if sorted(v for _, v in p.choices) == sorted(expected["rotation"]))
    assert rotation_picker.value == "face_fitting"
    # So do the Reconstruct tab (the fit's landmarks and pose are nearer AFLW2000-3D's truth than PRN-Dense's) and
    # the Swap tab (its swaps are nearest the source's identity).
    for capability in ("reconstruction", "swap"):
        picker = next(p for p in pickers if sorted(v for _, v in p.choices) == sorted(expected[capability]))
        assert picker.value == "face_fitting", capability


def test_every_capability_tab_offers_example_photos():
    from facehub.apps.tabs.common import EXAMPLES_DIR, example_photos

    demo = build_demo(DemoContext(device="cpu"))
    datasets = [b for b in demo.blocks.values() if isinstance(b, gr.Dataset)]
    assert len(datasets) == 4, "Rotate, Reconstruct 3D, Swap and Compare each offer examples"
    assert all(len(d.samples) >= 3 for d in datasets)
    # The package ships its own copies (tests/ is not installed), identical to the credited test photos.
    photos = Path(__file__).parent / "data" / "photos"
    for path in map(Path, example_photos("obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png")):
        assert path.parent == EXAMPLES_DIR
        assert path.read_bytes() == (photos / path.name).read_bytes()


def test_long_work_reports_progress_and_accepts_a_method_title(demo_server):
    from facehub.apps.tabs.rotate import rotate

    steps = []
    photo = str(Path(__file__).parent / "data" / "photos" / "obama.jpg")
    image, status = rotate(demo_server.ctx, photo, "DepthNets", TEST_MODEL_ID, 10, 0, None,
                           progress=lambda fraction, desc=None: steps.append((fraction, desc)))
    assert image is not None and "Measured on the result" in status
    assert [desc for _, desc in steps] == ["Reading the photo", "Loading the model",
                                           "Rotating and measuring the result", "Done"]
    assert [fraction for fraction, _ in steps] == sorted(fraction for fraction, _ in steps) and steps[-1][0] == 1.0


def test_the_rotate_status_says_when_a_result_misses_the_request():
    """The status never calls the request reached: it says what was asked and what was measured, and where the two
    differ by more than 10 degrees (a miniature generator that left the face frontal when asked for +45), it says so
    in bold; within that, it adds nothing."""
    from types import SimpleNamespace

    from facehub.apps.tabs.rotate import rotation_status
    from facehub.modeling.pipeline_utils import Pose

    asked = Pose(45.0, 0.0, 0.2)
    short = rotation_status(SimpleNamespace(requested_pose=asked, achieved_pose=Pose(-0.7, -3.7, -2.5),
                                            source_pose=Pose(1.9, -3.7, 0.2)), target_given=False)
    assert short.startswith("Turned the face from (yaw +1.9, pitch -3.7, roll +0.2) towards the requested pose "
                            "(yaw +45.0, pitch +0.0, roll +0.2).")
    assert "off by 45.7 degrees in yaw, 3.7 in pitch" in short and "misses the request by more than 10 degrees" in short
    near = rotation_status(SimpleNamespace(requested_pose=asked, achieved_pose=Pose(44.0, -0.8, -2.2),
                                           source_pose=Pose(1.9, -3.7, 0.2)), target_given=False)
    assert "off by 1.0 degrees in yaw, 0.8 in pitch" in near and "misses the request" not in near


def test_the_swap_status_says_when_the_result_is_not_the_source_person():
    """Where the swapped face is no closer to the source's identity than to the target's (as in two of the 18 pairs
    the swap issue found), the status says so in bold; otherwise it adds nothing."""
    from types import SimpleNamespace

    from facehub.apps.tabs.swap import swap_status
    from facehub.modeling.pipeline_utils import SourceTarget

    def status(to_source: float, to_target: float) -> str:
        return swap_status(SimpleNamespace(num_faces=SourceTarget(1, 1), distance_to_source=to_source,
                                           distance_to_target=to_target, landmark_error=0.03,
                                           timings={"blend": 0.01}, repaired=False))

    assert "closer to the target person than to the source" in status(0.61, 0.52)
    good = status(0.27, 0.84)
    assert "to the source face **0.270**, to the target face **0.840**" in good and "closer to the target" not in good
