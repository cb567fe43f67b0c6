"""The "Swap" and "Rotate" demo tabs, driven over HTTP with gradio_client against a live in-process server."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

pytestmark = pytest.mark.slow

PHOTOS = Path(__file__).parent / "data" / "photos"
MODEL_ID = "facehub/depthnet"
METHOD = "depthnet"  # the method picker offers the registry's names


@pytest.fixture(scope="module")
def client(demo_server, tmp_path_factory):
    """A client of the demo, whose embedded defaults also hold the real ``facehub/depthnet``."""
    from facehub.hub.resolver import EMBEDDED_DEFAULTS_DIR  # patched by demo_server: the test's folder

    real = Path(__file__).resolve().parents[1] / "hub" / "defaults" / MODEL_ID
    assert EMBEDDED_DEFAULTS_DIR == demo_server.defaults_dir
    shutil.copytree(real, demo_server.defaults_dir / MODEL_ID, dirs_exist_ok=True)
    return Client(demo_server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def photo(name: str):
    return handle_file(str(PHOTOS / name))


def read(path) -> np.ndarray:
    assert path is not None, "no image came back"
    return np.asarray(Image.open(path).convert("RGB"))


def test_tabs_publish_their_endpoints(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/swap", "/rotate", "/frontalize"} <= set(endpoints)


def test_swap_returns_the_target_sized_photo_and_distances(client):
    swapped, warped, status, measurements = client.predict(
        photo("obama.jpg"), photo("biden.jpg"), MODEL_ID, "", METHOD, api_name="/swap"
    )
    target = np.asarray(Image.open(PHOTOS / "biden.jpg").convert("RGB"))
    assert read(swapped).shape == target.shape
    assert read(warped).shape == target.shape
    assert status.startswith("**Swapped.**") and "to the source face" in status
    assert measurements["distance_to_source"] < measurements["distance_to_target"]
    assert measurements["num_faces"] == {"source": 1, "target": 1}
    assert set(measurements["timings"]) >= {"analysis", "depth", "warp", "blend"}


@pytest.mark.parametrize("which", ["source", "target"])
def test_swap_with_a_no_face_photo_gives_a_clear_message(client, which):
    cat, face = photo("chelsea.jpg"), photo("obama.jpg")
    args = (cat, face) if which == "source" else (face, cat)
    swapped, warped, status, measurements = client.predict(*args, MODEL_ID, "", METHOD, api_name="/swap")
    assert swapped is None and warped is None and measurements in ({}, None)
    assert f"No face was found in the {which} photo" in status
    assert "Traceback" not in status


def test_swap_reports_several_faces_and_too_small_faces(client, tmp_path):
    big = np.asarray(Image.open(PHOTOS / "obama.jpg").convert("RGB"))[100:480, 320:660]
    small = np.asarray(Image.open(PHOTOS / "biden.jpg").convert("RGB").resize((485, 1102)))[90:300, 190:370]
    two_faces = np.full((380, 520, 3), 255, np.uint8)
    two_faces[:, :340], two_faces[:210, 340:] = big, small
    Image.fromarray(two_faces).save(tmp_path / "two.png")
    _, _, status, measurements = client.predict(
        photo("astronaut.png"), handle_file(str(tmp_path / "two.png")), MODEL_ID, "", METHOD, api_name="/swap"
    )
    assert measurements["num_faces"]["target"] == 2
    assert "The target photo has 2 faces; the largest was used." in status

    tiny = Image.open(PHOTOS / "obama.jpg").convert("RGB").reduce(10)  # eyes about 11 pixels apart
    tiny.save(tmp_path / "tiny.png")
    swapped, _, status, _ = client.predict(
        handle_file(str(tmp_path / "tiny.png")), photo("biden.jpg"), MODEL_ID, "", METHOD, api_name="/swap"
    )
    assert swapped is None and "The face in the source photo is too small" in status


def test_swap_with_a_model_the_demo_does_not_offer_gives_a_clear_message(client):
    from facehub.apps.registry import MODEL_REFUSED

    for model_id in ("no-such-model", "/etc/passwd", str(PHOTOS)):
        swapped, _, status, _ = client.predict(photo("obama.jpg"), photo("biden.jpg"), model_id, "", METHOD,
                                              api_name="/swap")
        assert swapped is None and status == f"**Could not do it:** {MODEL_REFUSED}"


def test_rotate_returns_the_photo_and_the_measured_pose(client):
    from facehub import methods
    from facehub.apps.tabs.common import pose_text

    image, status = client.predict(photo("obama.jpg"), METHOD, MODEL_ID, 20, 0, None, api_name="/rotate")
    assert read(image).shape == np.asarray(Image.open(PHOTOS / "obama.jpg")).shape
    assert "towards the requested pose (yaw +20.0, pitch +0.0" in status
    # What the status calls measured is the pose the Python API measures on its own result, not the request.
    out = methods.load("depthnet", "rotation")(str(PHOTOS / "obama.jpg"), yaw=20.0, pitch=0.0)
    assert out.achieved_pose is not None and out.achieved_pose.yaw != 20.0
    assert f"Measured on the result: {pose_text(out.achieved_pose)}" in status


def test_rotate_and_frontalize_without_a_face_give_a_clear_message(client):
    image, status = client.predict(photo("chelsea.jpg"), METHOD, MODEL_ID, 20, 0, None, api_name="/rotate")
    assert image is None and "No face was found in the photo" in status
    image, status = client.predict(photo("chelsea.jpg"), METHOD, MODEL_ID, api_name="/frontalize")
    assert image is None and "No face was found in the photo" in status


def test_frontalize_and_unreachable_pose(client):
    image, status = client.predict(photo("obama2.jpg"), METHOD, MODEL_ID, api_name="/frontalize")
    assert read(image).shape == np.asarray(Image.open(PHOTOS / "obama2.jpg")).shape
    assert "(yaw +0.0, pitch +0.0, roll +0.0)" in status
    # Within the sliders but 84 degrees away from obama2's pose (yaw -14): the far side of the head is not in it.
    image, status = client.predict(photo("obama2.jpg"), METHOD, MODEL_ID, 70, 0, None, api_name="/rotate")
    assert image is None and "degrees away from the face's pose" in status


def test_rotate_to_the_pose_of_a_target_photo(client):
    image, status = client.predict(photo("obama.jpg"), METHOD, MODEL_ID, 0, 0, photo("obama2.jpg"), api_name="/rotate")
    assert image is not None and "towards the target photo's face" in status


def test_swap_with_a_repair_checkpoint_runs_the_repair_network(client, demo_server, tmp_path, monkeypatch):
    import torch

    from facehub.apps.registry import MODEL_REFUSED
    from facehub.modeling.cyclegan import CycleGANGenerator, FaceRepairPipeline, cyclegan_config

    torch.manual_seed(0)
    generator = CycleGANGenerator(**cyclegan_config("cpu-small").generator_kwargs())
    FaceRepairPipeline(repair=generator).save_pretrained(tmp_path / "repair")
    monkeypatch.setattr(demo_server.ctx, "models_dir", tmp_path)  # the allow-listed models folder
    swapped, warped, status, measurements = client.predict(
        photo("obama.jpg"), photo("biden.jpg"), MODEL_ID, "repair", METHOD, api_name="/swap"
    )
    assert measurements["repaired"] is True and "repair" in measurements["timings"]
    assert "No repair network" not in status
    # The repair replaces the blend inside the face; outside its feathered box the pixels are the target's.
    target = np.asarray(Image.open(PHOTOS / "biden.jpg").convert("RGB")).astype(int)
    out = read(swapped).astype(int)
    assert out.shape == target.shape
    assert np.mean(np.abs(out - target)[:20]) < 1.0  # the top rows, far above the face

    _, _, status, _ = client.predict(photo("obama.jpg"), photo("biden.jpg"), MODEL_ID, "no/such-repair", METHOD,
                                     api_name="/swap")
    assert status == f"**Could not do it:** {MODEL_REFUSED}"
