"""load_image: every supported source and format -> RGB uint8, and clear errors for what cannot be read."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from facehub.modeling.faces import FaceHubImageError, ImageReadError, ImageTooLargeError, load_image

PHOTOS = Path(__file__).parent / "data" / "photos"


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _png_with_header_size(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR claims ``width`` x ``height`` (CRC fixed), so only the header is plausible."""
    data = bytearray(_png_bytes(Image.new("RGB", (4, 4))))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def test_error_classes_share_one_base():
    assert issubclass(ImageReadError, FaceHubImageError) and issubclass(ImageTooLargeError, FaceHubImageError)
    assert issubclass(FaceHubImageError, ValueError)


def test_sources_path_bytes_pil_array_agree():
    path = PHOTOS / "astronaut.png"
    from_path = load_image(path)
    assert from_path.dtype == np.uint8 and from_path.shape == (512, 512, 3) and from_path.flags.c_contiguous
    np.testing.assert_array_equal(load_image(str(path)), from_path)
    np.testing.assert_array_equal(load_image(path.read_bytes()), from_path)
    np.testing.assert_array_equal(load_image(Image.open(path)), from_path)
    np.testing.assert_array_equal(load_image(from_path), from_path)


def test_rgba_is_composited_on_white():
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top half opaque red-ish, bottom half fully transparent
    for source in (rgba, Image.fromarray(rgba, "RGBA"), _png_bytes(Image.fromarray(rgba, "RGBA"))):
        out = load_image(source)
        assert out.shape == (8, 8, 3)
        np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
        np.testing.assert_array_equal(out[-1, -1], [255, 255, 255])


def test_greyscale_and_16_bit():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    out = load_image(_png_bytes(Image.fromarray(grey, "L")))
    assert out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out[..., 0], grey)
    np.testing.assert_array_equal(out[..., 2], grey)

    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    expected = ((deep.astype(np.uint32) + 128) // 257).astype(np.uint8)
    from_png = load_image(_png_bytes(Image.fromarray(deep)))  # PIL writes a 16-bit greyscale PNG
    np.testing.assert_array_equal(from_png[..., 1], expected)
    np.testing.assert_array_equal(load_image(np.repeat(deep[..., None], 3, axis=-1))[..., 0], expected)
    floats = load_image(np.full((4, 4, 3), 0.5, dtype=np.float32))
    assert floats.dtype == np.uint8 and int(floats[0, 0, 0]) == 128


def test_exif_orientation_is_applied():
    upright = load_image(PHOTOS / "astronaut.png")[:, :300]  # not square, so a wrong rotation shows in the shape
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1)))  # stored rotated 90 degrees CCW
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif)
    np.testing.assert_array_equal(load_image(buffer.getvalue()), upright)


def test_text_file_renamed_jpg_names_the_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n" * 10)
    with pytest.raises(ImageReadError, match="notes.jpg") as info:
        load_image(path)
    assert "not an image" in str(info.value)


def test_truncated_jpeg_names_the_file(tmp_path):
    data = (PHOTOS / "obama.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match="cut.jpg") as info:
        load_image(path)
    assert "truncated" in str(info.value)


def test_missing_file_and_bad_arrays(tmp_path):
    with pytest.raises(ImageReadError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="shape"):
        load_image(np.zeros((4, 4, 5), dtype=np.uint8))
    with pytest.raises(TypeError):
        load_image(12345)


def test_oversized_image_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_with_header_size(8_000, 8_000))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_with_header_size(30_000, 30_000))

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageTooLargeError, match="huge.png") as info:
        load_image(path, max_pixels=50_000_000)
    assert "8000x8000" in str(info.value)
    # PIL's own decompression-bomb guard (here above twice PIL's limit) also surfaces as ImageTooLargeError.
    with pytest.raises(ImageTooLargeError, match="bomb.png"):
        load_image(bomb, max_pixels=50_000_000)
    with pytest.raises(ImageTooLargeError):
        load_image(bomb, max_pixels=None)
    with pytest.raises(ImageTooLargeError):
        load_image(np.zeros((100, 100, 3), dtype=np.uint8), max_pixels=5_000)


def test_limit_can_be_raised():
    assert load_image(np.zeros((100, 100, 3), dtype=np.uint8), max_pixels=10_000).shape == (100, 100, 3)
