"""The "Reconstruct 3D" tab and the Rotate tab's 3D method, over HTTP against a live in-process server.

The server's embedded defaults get a small untrained PRN-Dense: these tests check the app's wiring (files, images,
messages), not the network's accuracy (tests/test_prn_dense_*.py do that).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from gradio_client import Client, handle_file
from PIL import Image

PHOTOS = Path(__file__).parent / "data" / "photos"
MODEL_ID = "facehub/prn-dense"


@pytest.fixture(scope="module")
def client(demo_server, tmp_path_factory):
    import torch

    from facehub.modeling.prn_dense import FaceReconstructionPipeline, PRNDenseModel

    torch.manual_seed(0)
    model = PRNDenseModel.from_preset("cpu-small", sample_size=64)
    FaceReconstructionPipeline(prn=model).save_pretrained(demo_server.defaults_dir / MODEL_ID)
    return Client(demo_server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def photo(name: str):
    return handle_file(str(PHOTOS / name))


def test_reconstruct_returns_mesh_files_landmarks_and_depth(client):
    view, landmarks, depth, status, glb, ply, obj_zip, texture, visibility, coefficients = client.predict(
        photo("obama.jpg"), MODEL_ID, "prn_dense", api_name="/reconstruct")
    assert "not morphable-model coefficients" in coefficients["note"]  # PRN-Dense regresses a mesh
    assert status.startswith("**Reconstructed** a dense mesh of") and "Pose measured on the mesh: yaw" in status
    assert "eyes and mouth closed" in status and "completed by symmetry" in status
    for picture in (texture, visibility):  # the dense mesh's texture: 256 px
        assert np.asarray(Image.open(picture).convert("RGB")).shape == (256, 256, 3)
    original = np.asarray(Image.open(PHOTOS / "obama.jpg").convert("RGB"))
    drawn = np.asarray(Image.open(landmarks).convert("RGB"))
    assert drawn.shape == original.shape and (drawn != original).any()  # the dots are drawn on the photo
    assert np.asarray(Image.open(depth).convert("RGB")).shape == original.shape
    for path in (view, glb, ply):  # the dense mesh: ~7k vertices from a 64 px map
        assert len(trimesh.load(path, force="mesh", process=False).vertices) > 5000
    with zipfile.ZipFile(obj_zip) as bundle:
        assert {Path(n).suffix for n in bundle.namelist()} >= {".obj", ".mtl", ".png"}


def test_reconstruct_without_a_face_says_so(client):
    from facehub.apps.registry import MODEL_REFUSED

    view, _, _, status, *_ = client.predict(photo("chelsea.jpg"), MODEL_ID, "prn_dense", api_name="/reconstruct")
    assert view is None and "No face was found" in status
    _, _, _, status, *_ = client.predict(photo("obama.jpg"), "no/such-model", "prn_dense", api_name="/reconstruct")
    assert status == f"**Could not do it:** {MODEL_REFUSED}"


def test_rotate_tab_offers_the_3d_method(client):
    image, status = client.predict(photo("obama.jpg"), "prn_dense", MODEL_ID, 20, 0, None, api_name="/rotate")
    assert image is not None and "Turned the face from" in status and "Measured on the result" in status
    assert np.asarray(Image.open(image).convert("RGB")).shape == np.asarray(Image.open(PHOTOS / "obama.jpg")).shape
    _, status = client.predict(photo("chelsea.jpg"), "prn_dense", MODEL_ID, 20, 0, None, api_name="/rotate")
    assert "No face was found" in status
