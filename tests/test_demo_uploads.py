"""Hostile and unusual uploads, sent with gradio_client to a running demo: the demo reads them with facehub's own
reader and limits, so it answers exactly as the Python API does on the same file, with no server path in sight.

The server's embedded defaults get a small untrained PRN-Dense (as in test_prn_dense_tabs.py): the comparisons are
between the demo and the Python API on the same checkpoint, not about accuracy.
"""

from __future__ import annotations

import html
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from facehub.modeling.faces.image_io import FaceHubImageError, load_image

pytestmark = pytest.mark.slow

PHOTOS = Path(__file__).parent / "data" / "photos"
MODEL_ID = "facehub/prn-dense"
FAILED = "**Could not do it:** "


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb(path: Path, side: int = 30_000) -> Path:
    """A 200-byte PNG whose header says ``side`` x ``side`` pixels (900 MP): only a reader that decodes it suffers."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grey
    row = b"\x00" + bytes((side + 7) // 8)
    body = zlib.compress(row * 16)  # a few rows are enough: nothing may read past the header
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("uploads")
    photo = Image.open(PHOTOS / "obama.jpg").convert("RGB").reduce(2)
    data = (PHOTOS / "obama.jpg").read_bytes()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("These are notes, not a picture.\n")
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    decompression_bomb(folder / "bomb.png")
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*photo.size[::-1], 3), dtype=np.uint8))
    photo.save(folder / "animated.gif", save_all=True, append_images=[noise], duration=100, loop=0)
    grey = np.asarray(photo.convert("L")).astype(np.uint16) * 257
    Image.fromarray(grey).save(folder / "grey16.png")
    with Image.open(folder / "grey16.png") as check, Image.open(folder / "animated.gif") as gif:
        assert check.mode.startswith("I") and gif.n_frames == 2 and gif.mode == "P"
    return {path.name: path for path in folder.iterdir()}


@pytest.fixture(scope="module")
def pipeline_folder(demo_server) -> Path:
    import torch

    from facehub.modeling.prn_dense import FaceReconstructionPipeline, PRNDenseModel

    torch.manual_seed(0)
    model = PRNDenseModel.from_preset("cpu-small", sample_size=64)
    folder = demo_server.defaults_dir / MODEL_ID
    FaceReconstructionPipeline(prn=model).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def client(demo_server, pipeline_folder, tmp_path_factory):
    return Client(demo_server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def api_error(call, path: Path, what: str) -> str:
    """The message the Python API raises for ``path``, the path named as the demo names an upload."""
    with pytest.raises(FaceHubImageError) as err:
        call(str(path))
    message = str(err.value)
    assert str(path) in message, "the Python API names the file it was given"
    return message.replace(f"Image '{path}'", f"The uploaded {what}").replace(f"'{path}'", f"the uploaded {what}")


def assert_no_server_paths(text: str) -> None:
    assert "/tmp" not in text and "gradio" not in text.lower() and "Traceback" not in text, text


BAD = ["empty.jpg", "notes.png", "truncated.jpg", "bomb.png"]


@pytest.mark.parametrize("name", BAD)
def test_unreadable_uploads_are_refused_as_the_python_api_refuses_them(client, files, pipeline_folder, name):
    from facehub import methods

    pipe = methods.load("prn_dense", "reconstruction", model=str(pipeline_folder))
    expected = api_error(pipe, files[name], "photo")
    assert expected == api_error(load_image, files[name], "photo"), "the pipeline reads with facehub's reader"
    view, _, _, status, *_ = client.predict(handle_file(str(files[name])), MODEL_ID, "prn_dense", api_name="/reconstruct")
    assert view is None
    assert html.unescape(status) == FAILED + expected
    assert_no_server_paths(status)


def test_unreadable_uploads_in_rotate_and_swap(client, files):
    good = handle_file(str(PHOTOS / "obama.jpg"))
    for name in BAD:
        upload = handle_file(str(files[name]))
        image, status = client.predict(upload, "depthnet", "facehub/depthnet-test", 20, 0, None, api_name="/rotate")
        assert image is None and html.unescape(status) == FAILED + api_error(load_image, files[name], "photo")
        _, status = client.predict(good, "depthnet", "facehub/depthnet-test", 0, 0, upload, api_name="/rotate")
        assert html.unescape(status) == FAILED + api_error(load_image, files[name], "target pose photo")
        swapped, _, status, _ = client.predict(upload, good, "facehub/depthnet-test", "", "depthnet", api_name="/swap")
        assert swapped is None and html.unescape(status) == FAILED + api_error(load_image, files[name], "source photo")
        _, _, status, _ = client.predict(good, upload, "facehub/depthnet-test", "", "depthnet", api_name="/swap")
        assert html.unescape(status) == FAILED + api_error(load_image, files[name], "target photo")
        assert_no_server_paths(status)
    assert "900,000,000 pixels" in api_error(load_image, files["bomb.png"], "photo") or "bomb" in api_error(
        load_image, files["bomb.png"], "photo"), "the bomb is refused for its size, before it is decoded"


@pytest.mark.parametrize("name", ["animated.gif", "grey16.png"])
def test_animated_gif_and_16_bit_grey_read_as_the_python_api_reads_them(client, files, pipeline_folder, name):
    from facehub import methods
    from facehub.apps.tabs.common import pose_text

    pipe = methods.load("prn_dense", "reconstruction", model=str(pipeline_folder))
    [face, *_] = pipe(str(files[name])).reconstructions
    view, landmarks, depth, status, *_ = client.predict(handle_file(str(files[name])), MODEL_ID, "prn_dense",
                                                       api_name="/reconstruct")
    assert status.startswith("**Reconstructed**"), status
    assert f"Pose measured on the mesh: {pose_text(face.pose)} degrees." in status
    # The landmark picture is the first frame in RGB (a GIF's palette indices would not match), 8-bit grey in RGB.
    photo = load_image(files[name])
    drawn = np.asarray(Image.open(landmarks).convert("RGB")).astype(int)
    assert drawn.shape == photo.shape
    untouched = np.all(drawn == photo, axis=-1).mean()
    assert untouched > 0.9, f"only {untouched:.0%} of the pixels match the first frame"
    if name == "grey16.png":
        assert photo.mean() < 200, "16-bit grey is rescaled, not clipped to white"

    rotate = methods.load("prn_dense", "rotation", model=str(pipeline_folder))
    expected = rotate(str(files[name]), yaw=20.0, pitch=0.0, output_type="np")
    image, status = client.predict(handle_file(str(files[name])), "prn_dense", MODEL_ID, 20, 0, None,
                                   api_name="/rotate")
    assert image is not None, status
    assert f"({pose_text(expected.requested_pose)})" in status
    if expected.achieved_pose is not None:
        assert f"Measured on the result: {pose_text(expected.achieved_pose)}" in status
    assert np.asarray(Image.open(image).convert("RGB")).shape == expected.images[0].shape


def test_pasted_images_and_server_paths_in_messages(tmp_path):
    import base64
    import tempfile

    from gradio.data_classes import ImageData

    from facehub.apps.tabs.common import UserFacingError, read_upload, scrub_paths, unexpected_status, uploaded_file

    # An image sent inline (a data: URL) reaches the reader as bytes, undecoded until then.
    encoded = base64.b64encode((PHOTOS / "obama.jpg").read_bytes()).decode()
    pasted = uploaded_file(ImageData(url=f"data:image/jpeg;base64,{encoded}"))
    assert isinstance(pasted, bytes)
    assert np.array_equal(read_upload(pasted), load_image(PHOTOS / "obama.jpg"))
    with pytest.raises(UserFacingError, match=r"^Could not read the given bytes \(0 bytes\)"):
        read_upload(uploaded_file(ImageData(url="data:image/png;base64,")))
    # A message that quotes a temporary file keeps no trace of where it is.
    secret = f"{tempfile.gettempdir()}/gradio/0123abc/photo.jpg"
    assert scrub_paths(f"Could not decode '{secret}' (x)") == "Could not decode '<file>' (x)"
    status = unexpected_status(RuntimeError("cannot open /srv/models/private/weights.bin"))
    assert status == "**Could not do it:** Unexpected RuntimeError; the server log has the details."
