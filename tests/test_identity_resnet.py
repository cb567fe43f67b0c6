"""dlib's face-recognition ResNet read from its .dat and run in PyTorch: the reader, the numbers against dlib's own
``compute_face_descriptor`` on the same chips, identity decisions, the safetensors cache and bad input."""

from __future__ import annotations

import math
from collections import Counter
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facehub.modeling.faces import FaceAnalyzer, face_distance, load_image
from facehub.modeling.faces.dlib_resnet import (
    DlibFormatError,
    DlibResNetDescriptorNet,
    DlibStreamReader,
    cache_file_for,
    descriptor_weight_shapes,
    facehub_cache_dir,
    load_descriptor_weights,
    read_dlib_network,
    zero_padded_add,
)
from facehub.modeling.faces.identity import DlibFaceDescriptor, face_recognition_models_dir

PHOTOS = Path(__file__).parent / "data" / "photos"
NAMES = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.png")
MODEL = face_recognition_models_dir() / DlibFaceDescriptor.MODEL_FILE
# Measured on the five photos: max |torch - dlib| 2.2e-7 to 2.9e-7 per component, distances 8e-7 to 1.1e-6.
MAX_ABS_DIFF = 1e-4
MAX_DISTANCE = 1e-4


@cache
def photo(name: str, max_side: int = 640) -> np.ndarray:
    image = load_image(PHOTOS / name)
    scale = max_side / max(image.shape[:2])
    if scale < 1:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Converted weights go to a temporary cache, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEHUB_CACHE", str(tmp_path_factory.mktemp("facehub-cache")))
        yield


@pytest.fixture(scope="module")
def landmarks() -> dict[str, np.ndarray]:
    analyzer = FaceAnalyzer(compute_embedding=False)
    try:
        found = {name: analyzer(photo(name)) for name in NAMES}
    finally:
        analyzer.close()
    assert all(len(faces) == 1 for faces in found.values()), {n: len(f) for n, f in found.items()}
    return {name: faces[0].landmarks68 for name, faces in found.items()}


@pytest.fixture(scope="module")
def descriptor() -> DlibFaceDescriptor:
    return DlibFaceDescriptor()


@pytest.fixture(scope="module")
def reference() -> DlibFaceDescriptor:
    return DlibFaceDescriptor(backend="dlib")


# -- the reader ---------------------------------------------------------------------------------------------------


def test_reader_finds_the_face_recognition_resnet():
    network = read_dlib_network(MODEL)
    kinds = Counter(layer.kind for layer in network.layers)
    assert kinds == {
        "con": 29,
        "affine": 29,
        "relu": 29,
        "add_prev": 14,
        "avg_pool": 5,  # four skip paths and avg_pool_everything
        "max_pool": 1,
        "fc": 1,
    }
    assert network.num_add_layers == len(network.layers) == 108
    assert network.num_tag_or_skip_layers == 22  # tag1 per block, tag2 + skip1 per downsampling block
    assert network.num_parameters == 5_614_592
    assert network.input.version == "input_rgb_image_sized"
    assert network.input.settings["nr"] == network.input.settings["nc"] == 150
    np.testing.assert_allclose(network.input.settings["mean_rgb"], (122.782, 117.001, 104.298), atol=1e-4)
    assert network.loss.version == "loss_metric_2"
    assert network.loss.settings["margin"] == pytest.approx(0.04)
    assert network.loss.settings["distance_threshold"] == pytest.approx(0.6)
    first, fc = network.layers[0], network.layers[-1]
    assert first.version == "con_4" and first.arrays["weight"].shape == (32, 3, 7, 7)
    assert first.settings["stride"] == (2, 2) and first.settings["padding"] == (0, 0)
    assert fc.version == "fc_2" and fc.arrays["weight"].shape == (256, 128) and "bias" not in fc.arrays


def test_stream_reader_primitives():
    def integer(value: int) -> bytes:
        magnitude = abs(value).to_bytes(max(1, (abs(value).bit_length() + 7) // 8), "little")
        return bytes([len(magnitude) | (0x80 if value < 0 else 0)]) + magnitude

    def real(value: float) -> bytes:
        mantissa, exponent = math.frexp(value)
        return integer(int(mantissa * 2**24)) + integer(exponent - 24)

    values = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4) / 8 - 1  # (num_samples, k, nr, nc)
    version_1 = integer(1) + b"".join(integer(d) for d in (1, 3, 4, 2))  # num_samples, nr, nc, k
    version_1 += b"".join(real(float(v)) for v in values.reshape(-1))
    version_2 = integer(2) + b"".join(integer(d) for d in values.shape) + values.astype("<f4").tobytes()
    data = integer(-300) + b"1" + integer(5) + b"con_4" + real(0.6) + integer(1) + integer(32000) + version_1
    reader = DlibStreamReader(data + version_2)
    assert reader.integer() == -300 and reader.boolean() is True and reader.string() == "con_4"
    assert reader.real() == pytest.approx(0.6) and reader.real() == math.inf
    np.testing.assert_array_equal(reader.tensor(), values)
    np.testing.assert_array_equal(reader.tensor(), values)
    assert reader.at_end
    with pytest.raises(DlibFormatError, match="ends while reading"):
        reader.integer()


# -- the numbers against dlib ---------------------------------------------------------------------------------


def test_torch_matches_dlib_on_the_same_chip(descriptor, reference, landmarks):
    for name in NAMES:
        chip = descriptor.chip(photo(name), landmarks[name])
        assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
        mine = descriptor.describe_chips(chip)
        theirs = reference.describe_chips(chip)  # dlib's compute_face_descriptor(chip)
        assert mine.shape == theirs.shape == (1, 128) and mine.dtype == np.float64
        assert np.abs(mine - theirs).max() < MAX_ABS_DIFF, name
        assert face_distance(mine[0], theirs[0]) < MAX_DISTANCE, name


def test_full_call_matches_dlibs_compute_face_descriptor(descriptor, reference, landmarks):
    """Image + landmarks: our chip and network against dlib's own chip extraction and network."""
    name = "obama.jpg"
    mine = descriptor(photo(name), landmarks[name])
    theirs = reference(photo(name), landmarks[name])
    assert mine.shape == (128,) and mine.dtype == np.float64
    assert np.abs(mine - theirs).max() < MAX_ABS_DIFF


def test_same_and_different_people(descriptor, landmarks):
    embedding = {name: descriptor(photo(name), landmarks[name]) for name in NAMES}
    for other in ("obama2.jpg", "obama3.jpg"):
        assert face_distance(embedding["obama.jpg"], embedding[other]) < 0.6, other
    for obama in ("obama.jpg", "obama2.jpg", "obama3.jpg"):
        assert face_distance(embedding[obama], embedding["biden.jpg"]) > 0.6, obama
        assert face_distance(embedding[obama], embedding["astronaut.png"]) > 0.6, obama


def test_batches_and_jitter(descriptor, landmarks):
    chips = np.stack([descriptor.chip(photo(name), landmarks[name]) for name in ("obama.jpg", "biden.jpg")])
    batch = descriptor.describe_chips(chips)
    single = np.concatenate([descriptor.describe_chips(chip) for chip in chips])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    jittered = DlibFaceDescriptor(num_jitters=4).describe_chips(chips[0])
    assert jittered.shape == (1, 128)
    assert 0 < face_distance(jittered[0], batch[0]) < 0.2  # jitter moves the descriptor a little


def test_zero_padded_add_follows_dlib_add_prev():
    block = torch.ones(1, 4, 3, 3)  # e.g. a stride-2 block output
    skip = torch.full((1, 2, 4, 4), 10.0)  # the average-pooled skip path, fewer channels, larger
    total = zero_padded_add(block, skip)
    assert total.shape == (1, 4, 4, 4)
    assert torch.all(total[:, :2, :3, :3] == 11) and torch.all(total[:, 2:, :3, :3] == 1)
    assert torch.all(total[:, :2, 3, :] == 10) and torch.all(total[:, 2:, 3, :] == 0)


# -- bad files and input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[: len(data) // 3], "truncated"),
        (lambda data: data[:100], "truncated"),
        (lambda data: b"", "empty"),
        (lambda data: data + b"\x00", "left over"),
        (lambda data: data.replace(b"con_4", b"con_9", 1), "unsupported layer 'con_9'"),
        (lambda data: b"\x89PNG\r\n\x1a\n" + bytes(64), "not a dlib"),
    ],
    ids=["third", "header", "empty", "trailing", "unknown-layer", "png"],
)
def test_damaged_model_file_gives_a_clear_error(tmp_path, damage, message):
    path = tmp_path / "damaged.dat"
    path.write_bytes(damage(MODEL.read_bytes()))
    with pytest.raises(DlibFormatError, match=message) as error:
        load_descriptor_weights(path, cache_dir=tmp_path / "cache")
    assert str(path) in str(error.value)
    assert not (tmp_path / "cache").exists()


def test_bad_arguments_and_input(descriptor, landmarks):
    with pytest.raises(ValueError, match="backend"):
        DlibFaceDescriptor(backend="onnx")
    with pytest.raises(ValueError, match="num_jitters"):
        DlibFaceDescriptor(num_jitters=-1)
    image = photo("obama.jpg")
    with pytest.raises(ValueError, match="uint8"):
        descriptor(image.astype(np.float32), landmarks["obama.jpg"])
    with pytest.raises(ValueError, match="uint8"):
        descriptor(image[..., 0], landmarks["obama.jpg"])
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        descriptor(image, landmarks["obama.jpg"][:5])
    with pytest.raises(ValueError, match="chips"):
        descriptor.describe_chips(np.zeros((2, 112, 112, 3), np.uint8))
    with pytest.raises(FileNotFoundError):
        load_descriptor_weights(MODEL.parent / "missing.dat")


# -- the cache ----------------------------------------------------------------------------------------------------


def test_weights_are_cached_as_safetensors(tmp_path, caplog):
    cache_dir = tmp_path / "cache"
    weights = load_descriptor_weights(MODEL, cache_dir=cache_dir)
    assert {k: v.shape for k, v in weights.items()} == descriptor_weight_shapes()
    cached = cache_file_for(MODEL, cache_dir)
    assert cached.parent == cache_dir / "dlib_resnet" and cached.suffix == ".safetensors" and cached.exists()
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temporary file left behind
    written = cached.stat().st_mtime_ns

    again = load_descriptor_weights(MODEL, cache_dir=cache_dir)  # read back, not converted again
    assert cached.stat().st_mtime_ns == written
    assert all(np.array_equal(weights[name], again[name]) for name in weights)

    cached.write_bytes(b"not safetensors")  # a damaged cache is converted again and replaced
    repaired = load_descriptor_weights(MODEL, cache_dir=cache_dir)
    assert all(np.array_equal(weights[name], repaired[name]) for name in weights)
    assert load_descriptor_weights(MODEL, cache_dir=cache_dir).keys() == weights.keys()
    assert "unreadable cache" in caplog.text

    blocked = tmp_path / "a-file"  # a cache "directory" that cannot be created: the weights stay in memory
    blocked.write_bytes(b"")
    in_memory = load_descriptor_weights(MODEL, cache_dir=blocked / "cache")
    assert all(np.array_equal(weights[name], in_memory[name]) for name in weights)

    net = DlibResNetDescriptorNet.from_dlib_weights(again)
    assert not net.training and all(not p.requires_grad for p in net.parameters())


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEHUB_CACHE", str(tmp_path / "mine"))
    assert facehub_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("FACEHUB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert facehub_cache_dir() == tmp_path / "xdg" / "facehub"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert facehub_cache_dir() == Path.home() / ".cache" / "facehub"
