"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``) read from dlib's own file and run
in PyTorch.

dlib computes its 128-D identity descriptor with its own CPU convolutions; the ``dlib-bin`` wheel is built without
BLAS, so one face costs 85 ms or more on two cores. The same network in PyTorch runs through oneDNN in a fraction of
that, with the same numbers (float32 rounding apart). This module has three parts.

**Reading dlib's serialization** (:func:`read_dlib_network`). The ``.dat`` file is ``dlib::serialize`` of the
``anet_type`` network. What is on disk, from dlib's sources (``dlib/serialize.h``, ``dlib/float_details.h``,
``dlib/dnn/core.h``, ``dlib/dnn/tensor.h``, ``dlib/dnn/layers.h``, ``dlib/dnn/input.h``, ``dlib/dnn/loss.h``):

- integers: a control byte (low 4 bits: how many bytes follow; bit 7: negative), then the magnitude in that many
  little-endian bytes. ``bool``: the ASCII byte ``'0'`` or ``'1'``. ``std::string``: its length as an integer,
  then its bytes.
- scalar ``float``/``double``: ``float_details``, the integer mantissa then the integer exponent (value =
  mantissa * 2**exponent; exponents 32000, 32001 and 32002 mean +inf, -inf and NaN).
- ``resizable_tensor``: version 2 is ``num_samples, k, nr, nc`` then the values as raw little-endian float32;
  the older version 1 is ``num_samples, nr, nc, k`` then one ``float_details`` per value. ``alias_tensor`` (a
  view's shape): version 1, then ``num_samples, k, nr, nc``.
- the network: ``add_loss_layer`` (version 1, the loss details, the subnetwork). Every ``add_layer`` writes its
  version and its subnetwork *first*, then its own layer details and state (three bools and the tensors
  ``x_grad``, ``cached_output`` and, from version 2, ``params_grad``); tag and skip layers write their version
  (1) and their subnetwork only. So the file holds every wrapper's version from the top of the network down,
  then the input layer, then each computational layer's details from the input up. The ``add_layer`` that sits on
  the input layer writes ``grad_final`` instead of ``params_grad`` and, from version 3, ``sample_expansion_factor``.
- layer details start with a version string: ``con_4`` (params, num_filters, nr, nc, stride_y, stride_x,
  padding_y, padding_x, filters and biases as alias shapes, four learning-rate / weight-decay multipliers;
  ``con_5`` and ``con_6`` add ``use_bias`` and ``use_relu``), ``affine_`` (params, gamma and beta shapes, mode;
  ``affine_2`` adds ``disabled``), ``relu_``, ``add_prev_``, ``max_pool_2`` / ``avg_pool_2`` (nr, nc, strides,
  paddings; nr = nc = 0 pools over everything), ``fc_2`` (num_outputs, num_inputs, params, weights and biases
  shapes, bias mode, four multipliers; ``fc_3`` adds ``use_bias``), the input layer ``input_rgb_image_sized``
  (mean red, green, blue as floats, then nr, nc) and the loss ``loss_metric_2`` (margin, distance threshold).
  Convolution filters are stored (num_filters, k, nr, nc), PyTorch's OIHW, with the biases after them in the same
  ``params`` tensor; ``affine_`` stores gamma then beta, one pair per channel (``CONV_MODE``); ``fc_`` stores its
  weights (num_inputs, num_outputs), the transpose of ``torch.nn.Linear.weight``.

The file shipped by ``face_recognition_models`` 0.3.0 is 22,466,066 bytes: 130 wrappers (107 ``add_layer`` v2, the
input ``add_layer`` v3, 22 tags and skips), 108 computational layers, 5,614,592 parameters. Reading it takes a
fraction of a second (each tensor is one ``numpy.frombuffer``).

**The network** (:class:`DlibResNetDescriptorNet`), from dlib's ``examples/dnn_face_recognition_ex.cpp``::

    loss_metric<fc_no_bias<128, avg_pool_everything<
        alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>

    alevel4 = 3 x ares<32>;  alevel3 = ares_down<64> + 3 x ares<64>;  alevel2 = ares_down<128> + 2 x ares<128>;
    alevel1 = ares_down<256> + 2 x ares<256>;  alevel0 = ares_down<256>
    ares<N>      = relu(x + affine(con3x3(relu(affine(con3x3(x))))))
    ares_down<N> = relu(avg_pool<2,2,2,2>(x) + affine(con3x3(relu(affine(con3x3 stride 2(x))))))

Details that decide the numbers:

- input (``input_rgb_image_sized::to_tensor``, ``dlib/dnn/input.h``): channel planes R, G, B, each
  ``(pixel - mean) / 256`` with the means stored in the file (122.782, 117.001, 104.298).
- padding (``con_``, ``max_pool_``, ``avg_pool_`` template defaults in ``dlib/dnn/layers.h``): ``nr/2`` when the
  stride is 1, else 0; the values stored in the file are used (and checked). Output size
  ``1 + (size + 2*padding - window) / stride``, as PyTorch's floor mode.
- ``affine_`` is a frozen batch norm, ``x * gamma + beta`` per channel; it is folded into the convolution before it.
- ``add_prev_`` adds tensors of different shapes (``tt::add`` in ``dlib/dnn/tensor_tools.h``): the output takes the
  larger size in every dimension and each input is added into its top-left corner, zeros elsewhere. This matters
  twice: the skip path gains channels (128 -> 256 etc.), and in ``alevel1`` the 3x3 block output (stride-2
  convolution of 8x8) meets a 4x4 average-pooled skip, so the sum is 4x4 with the block filling its top-left 3x3;
  ``alevel0`` then gives a 1x1 block output on a 2x2 skip.
- the descriptor is the ``fc_no_bias`` output as it is (``loss_metric_::to_label``): no normalisation.

**Caching** (:func:`load_descriptor_weights`): the weights are converted once and written as safetensors (never
pickle) to ``$FACEHUB_CACHE/dlib_resnet/`` (else ``$XDG_CACHE_HOME/facehub``, else ``~/.cache/facehub``), named
after the ``.dat`` file and keyed by its size and modification time, with the conversion's format in the metadata;
a cache that cannot be written, or read back, only costs the conversion again.

The 150x150 chip is dlib's own (:func:`face_chip`, ``dlib.get_face_chip`` with padding 0.25, as
``face_recognition_model_v1::compute_face_descriptor`` extracts it in ``tools/python/src/face_recognition.cpp``).

**Threads.** Nothing here changes torch's thread settings. One face is about 0.27 GMAC, small enough that a second
thread gains little; on a machine whose cores are busy with other work, torch's OpenMP barriers make two threads far
slower than one (on the shared 2-core development machine: a median of 6-16 ms single-threaded against 20-570 ms
with two threads, with a long tail; ``OMP_WAIT_POLICY=PASSIVE`` removes most of the tail). Applications that
describe one face at a time may want ``torch.set_num_threads(1)``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

#: Side of the aligned chip the network takes (``input_rgb_image_sized<150>``, dnn_face_recognition_ex.cpp).
CHIP_SIZE = 150
#: Padding around the face in the chip, as a fraction of its size (``compute_face_descriptor``'s default,
#: tools/python/src/face_recognition.cpp).
CHIP_PADDING = 0.25
DESCRIPTOR_SIZE = 128

#: Residual stages from the input up: (channels, whether the stage opens with a downsampling ``ares_down``, number
#: of plain ``ares`` blocks after it) -- alevel4 ... alevel0 of dnn_face_recognition_ex.cpp.
RESNET_STAGES = ((32, False, 3), (64, True, 3), (128, True, 2), (256, True, 2), (256, True, 0))
STEM_CHANNELS = 32

#: Layout of the tensors written to the cache; bump when it changes so older cache files are not used.
CACHE_FORMAT = "facehub-dlib-resnet-1"

# float_details special exponents (dlib/float_details.h).
_FLOAT_IS_INF, _FLOAT_IS_NINF, _FLOAT_IS_NAN = 32000, 32001, 32002


class DlibFormatError(ValueError):
    """The file is not a dlib network this module can read (truncated, corrupt, or another architecture)."""


# ---------------------------------------------------------------------------------------------------------------
# dlib's serialization primitives
# ---------------------------------------------------------------------------------------------------------------


class DlibStreamReader:
    """Reads dlib-serialized values from a byte string, front to back, with errors that say where and what."""

    def __init__(self, data: bytes, source: str = "<bytes>"):
        self.data = memoryview(data)
        self.source = source
        self.position = 0

    def error(self, message: str) -> DlibFormatError:
        return DlibFormatError(f"{self.source}: {message} (at byte {self.position} of {len(self.data)}).")

    def take(self, count: int, what: str) -> memoryview:
        end = self.position + count
        if count < 0 or end > len(self.data):
            raise self.error(f"the file ends while reading {what}; it is truncated or not a dlib model")
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    @property
    def at_end(self) -> bool:
        return self.position == len(self.data)

    def integer(self, what: str = "an integer") -> int:
        control = self.take(1, what)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.error(f"invalid integer control byte 0x{control:02x} while reading {what}")
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def boolean(self, what: str = "a bool") -> bool:
        byte = self.take(1, what)[0]
        if byte not in (ord("0"), ord("1")):
            raise self.error(f"invalid bool byte 0x{byte:02x} while reading {what}")
        return byte == ord("1")

    def string(self, what: str = "a string", max_length: int = 256) -> str:
        length = self.integer(f"the length of {what}")
        if not 0 <= length <= max_length:
            raise self.error(f"implausible length {length} for {what}")
        return bytes(self.take(length, what)).decode("latin-1")

    def next_string_starts_with(self, prefix: str) -> bool:
        """Whether a string starting with ``prefix`` comes next (nothing is consumed)."""
        start = self.position
        try:
            return self.string("a peeked string").startswith(prefix)
        except DlibFormatError:
            return False
        finally:
            self.position = start

    def real(self, what: str = "a float") -> float:
        """A scalar float/double: ``float_details`` (mantissa, exponent)."""
        mantissa = self.integer(f"the mantissa of {what}")
        exponent = self.integer(f"the exponent of {what}")
        if exponent == _FLOAT_IS_INF:
            return math.inf
        if exponent == _FLOAT_IS_NINF:
            return -math.inf
        if exponent == _FLOAT_IS_NAN:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def dims(self, count: int, what: str) -> tuple[int, ...]:
        values = tuple(self.integer(what) for _ in range(count))
        if any(v < 0 for v in values):
            raise self.error(f"negative dimension in {what}: {values}")
        return values

    def tensor(self, what: str = "a tensor") -> np.ndarray:
        """A ``resizable_tensor`` -> float32 array of shape (num_samples, k, nr, nc)."""
        version = self.integer(f"the version of {what}")
        if version == 2:
            n, k, nr, nc = self.dims(4, f"the shape of {what}")
            count = n * k * nr * nc
            raw = self.take(4 * count, f"the {count} values of {what}")
            return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(n, k, nr, nc)
        if version == 1:
            # Older dlib: shape in the order num_samples, nr, nc, k and one float_details per value. Not used by
            # the face_recognition_models file; a plain loop is enough for the rare old file.
            n, nr, nc, k = self.dims(4, f"the shape of {what}")
            count = n * k * nr * nc
            if count > len(self.data) - self.position:
                raise self.error(f"the file ends before the {count} values of {what}")
            values = [self.real(f"value {i} of {what}") for i in range(count)]
            return np.asarray(values, dtype=np.float32).reshape(n, k, nr, nc)
        raise self.error(f"unknown tensor version {version} for {what}")

    def alias_shape(self, what: str = "an alias tensor") -> tuple[int, int, int, int]:
        version = self.integer(f"the version of {what}")
        if version != 1:
            raise self.error(f"unknown alias_tensor version {version} for {what}")
        return self.dims(4, f"the shape of {what}")


# ---------------------------------------------------------------------------------------------------------------
# Layers of a dlib network file
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class DlibLayer:
    """One layer's details as stored: ``kind`` (``"con"``, ``"affine"``, ``"relu"``, ``"max_pool"``, ``"avg_pool"``,
    ``"add_prev"``, ``"fc"``), the version string, scalar settings and parameter arrays."""

    kind: str
    version: str
    settings: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_parameters(self) -> int:
        return sum(int(a.size) for a in self.arrays.values())


@dataclass
class DlibNetwork:
    """A dlib network file read into plain values: the loss, the input layer, the computational layers from the
    input up, and the wrapper counts (``add_layer`` and tag/skip) found in the header."""

    loss: DlibLayer
    input: DlibLayer
    layers: list[DlibLayer]
    num_add_layers: int
    num_tag_or_skip_layers: int

    @property
    def num_parameters(self) -> int:
        return sum(layer.num_parameters for layer in self.layers)


def _read_loss(reader: DlibStreamReader) -> DlibLayer:
    version = reader.string("the loss layer's version")
    if version == "loss_metric_2":
        return DlibLayer(
            "loss_metric", version, {"margin": reader.real("margin"), "distance_threshold": reader.real("threshold")}
        )
    if version == "loss_metric_":  # older files: values that used to be hard-coded (dlib/dnn/loss.h)
        return DlibLayer("loss_metric", version, {"margin": 0.1, "distance_threshold": 0.75})
    raise reader.error(f"unsupported loss layer {version!r} (expected loss_metric_2, a metric-learning network)")


def _read_input(reader: DlibStreamReader) -> DlibLayer:
    version = reader.string("the input layer's version")
    if version not in ("input_rgb_image_sized", "input_rgb_image"):
        raise reader.error(f"unsupported input layer {version!r} (expected input_rgb_image_sized)")
    mean = np.array([reader.real("mean red"), reader.real("mean green"), reader.real("mean blue")], np.float32)
    settings = {"mean_rgb": tuple(float(v) for v in mean)}
    if version == "input_rgb_image_sized":
        settings["nr"], settings["nc"] = reader.dims(2, "the input size")
    return DlibLayer("input_rgb_image", version, settings, {"mean_rgb": mean})


def _read_multipliers(reader: DlibStreamReader, layer: str) -> dict:
    names = ("learning_rate_mult", "weight_decay_mult", "bias_learning_rate_mult", "bias_weight_decay_mult")
    return {name: reader.real(f"{layer} {name}") for name in names}


def _read_con(reader: DlibStreamReader, version: str) -> DlibLayer:
    params = reader.tensor("con_ params")
    num_filters, nr, nc = reader.dims(3, "con_ num_filters, nr, nc")
    stride_y, stride_x, padding_y, padding_x = reader.dims(4, "con_ strides and paddings")
    filters = reader.alias_shape("con_ filters")
    biases = reader.alias_shape("con_ biases")
    settings = dict(num_filters=num_filters, nr=nr, nc=nc, stride=(stride_y, stride_x), padding=(padding_y, padding_x))
    settings |= _read_multipliers(reader, "con_")
    settings["use_bias"] = reader.boolean("con_ use_bias") if version in ("con_5", "con_6") else True
    if version == "con_6" and reader.boolean("con_ use_relu"):
        raise reader.error("con_ with a fused relu is not supported")
    flat = params.reshape(-1)
    n_weights = int(np.prod(filters))
    n_biases = int(np.prod(biases)) if settings["use_bias"] else 0
    if filters[0] != num_filters or filters[2:] != (nr, nc) or flat.size != n_weights + n_biases:
        raise reader.error(f"inconsistent con_ layer: filters {filters}, biases {biases}, {flat.size} params")
    arrays = {"weight": flat[:n_weights].reshape(filters)}
    if n_biases:
        arrays["bias"] = flat[n_weights:]
    return DlibLayer("con", version, settings, arrays)


def _read_affine(reader: DlibStreamReader, version: str) -> DlibLayer:
    params = reader.tensor("affine_ params").reshape(-1)
    gamma = reader.alias_shape("affine_ gamma")
    beta = reader.alias_shape("affine_ beta")
    mode = reader.integer("affine_ mode")
    disabled = reader.boolean("affine_ disabled") if version == "affine_2" else False
    if disabled:
        raise reader.error("disabled affine_ layers are not supported")
    size = int(np.prod(gamma))
    if gamma != beta or params.size != 2 * size:
        raise reader.error(f"inconsistent affine_ layer: gamma {gamma}, beta {beta}, {params.size} params")
    return DlibLayer("affine", version, {"mode": mode}, {"gamma": params[:size], "beta": params[size:]})


def _read_pool(reader: DlibStreamReader, kind: str, version: str) -> DlibLayer:
    nr, nc, stride_y, stride_x, padding_y, padding_x = reader.dims(6, f"{version} window, strides and paddings")
    return DlibLayer(kind, version, dict(nr=nr, nc=nc, stride=(stride_y, stride_x), padding=(padding_y, padding_x)))


def _read_fc(reader: DlibStreamReader, version: str) -> DlibLayer:
    num_outputs, num_inputs = reader.dims(2, "fc_ num_outputs, num_inputs")
    params = reader.tensor("fc_ params").reshape(-1)
    weights = reader.alias_shape("fc_ weights")
    biases = reader.alias_shape("fc_ biases")
    bias_mode = reader.integer("fc_ bias mode")  # FC_HAS_BIAS = 0, FC_NO_BIAS = 1
    settings = dict(num_outputs=num_outputs, num_inputs=num_inputs, bias_mode=bias_mode)
    settings |= _read_multipliers(reader, "fc_")
    use_bias = bias_mode == 0 and (reader.boolean("fc_ use_bias") if version == "fc_3" else True)
    n_weights = num_inputs * num_outputs
    n_biases = num_outputs if use_bias else 0
    if weights[:2] != (num_inputs, num_outputs) or params.size != n_weights + n_biases:
        raise reader.error(f"inconsistent fc_ layer: weights {weights}, biases {biases}, {params.size} params")
    arrays = {"weight": params[:n_weights].reshape(num_inputs, num_outputs)}
    if n_biases:
        arrays["bias"] = params[n_weights:]
    return DlibLayer("fc", version, settings, arrays)


def _read_layer_details(reader: DlibStreamReader) -> DlibLayer:
    version = reader.string("a layer's version")
    if version in ("con_4", "con_5", "con_6"):
        return _read_con(reader, version)
    if version in ("affine_", "affine_2"):
        return _read_affine(reader, version)
    if version == "relu_":
        return DlibLayer("relu", version)
    if version == "add_prev_":
        return DlibLayer("add_prev", version)
    if version == "max_pool_2":
        return _read_pool(reader, "max_pool", version)
    if version == "avg_pool_2":
        return _read_pool(reader, "avg_pool", version)
    if version in ("fc_2", "fc_3"):
        return _read_fc(reader, version)
    raise reader.error(f"unsupported layer {version!r}")


def read_dlib_network(source: str | os.PathLike | bytes) -> DlibNetwork:
    """Read a dlib ``loss_metric`` network file made of the layers this module knows (see the module docstring).

    Raises:
        DlibFormatError: the file is truncated, corrupt, has bytes left over, or uses layers or versions this
            reader does not know.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        reader = DlibStreamReader(bytes(source))
    else:
        path = Path(source)
        reader = DlibStreamReader(path.read_bytes(), str(path))
    if reader.at_end:
        raise reader.error("the file is empty")
    if bytes(reader.data[:2]) != b"\x01\x01":  # add_loss_layer's version, 1
        raise reader.error("not a dlib network file (it does not start with a dlib add_loss_layer)")
    reader.integer("the add_loss_layer version")
    loss = _read_loss(reader)

    # Wrapper versions, from the top of the network down to the add_layer holding the input layer (version 2 or
    # 3); tag and skip layers are version 1, the other add_layers version 2 (version 1 add_layers are not read).
    wrappers = []
    while not reader.next_string_starts_with("input_rgb_image"):
        version = reader.integer("a layer wrapper's version")
        if version not in (1, 2, 3) or (wrappers and wrappers[-1] == 3):
            raise reader.error(f"unexpected layer wrapper version {version} (dlib add_layer versions 2-3 are read)")
        wrappers.append(version)
    if not wrappers or wrappers[-1] not in (2, 3):
        raise reader.error("the input layer is not held by an add_layer of version 2 or 3")
    input_layer = _read_input(reader)
    num_add_layers = wrappers.count(2) + wrappers.count(3)
    input_wrapper_version = wrappers[-1]

    layers = []
    for index in range(num_add_layers):
        layers.append(_read_layer_details(reader))
        for name in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
            reader.boolean(name)
        reader.tensor("x_grad")
        reader.tensor("cached_output")
        reader.tensor("grad_final" if index == 0 else "params_grad")
        if index == 0 and input_wrapper_version == 3:
            reader.integer("sample_expansion_factor")
    if not reader.at_end:
        raise reader.error("bytes left over after the last layer; not the network this reader expects")
    return DlibNetwork(loss, input_layer, layers, num_add_layers, wrappers.count(1))


# ---------------------------------------------------------------------------------------------------------------
# The architecture: expected layer sequence and the mapping to PyTorch parameter names
# ---------------------------------------------------------------------------------------------------------------


def _expected_layers() -> list[tuple[str, dict, str | None]]:
    """(kind, settings that must match, name of the PyTorch module it feeds) for every computational layer of
    dnn_face_recognition_ex.cpp's ``anet_type``, from the input up."""

    def con(channels, size, stride, name):
        padding = size // 2 if stride == 1 else 0  # con_'s default padding (dlib/dnn/layers.h)
        expected = dict(num_filters=channels, nr=size, nc=size, stride=(stride, stride), padding=(padding,) * 2)
        return [("con", expected, f"{name}.conv"), ("affine", {"mode": 0}, f"{name}.affine")]

    relu = ("relu", {}, None)
    layers = con(STEM_CHANNELS, 7, 2, "stem") + [relu]
    layers.append(("max_pool", dict(nr=3, nc=3, stride=(2, 2), padding=(0, 0)), None))
    block = 0
    for channels, downsample_first, plain_blocks in RESNET_STAGES:
        for downsample in [True] * downsample_first + [False] * plain_blocks:
            name = f"blocks.{block}"
            layers += con(channels, 3, 2 if downsample else 1, f"{name}.conv1") + [relu]
            layers += con(channels, 3, 1, f"{name}.conv2")
            if downsample:
                layers.append(("avg_pool", dict(nr=2, nc=2, stride=(2, 2), padding=(0, 0)), None))
            layers += [("add_prev", {}, None), relu]
            block += 1
    layers.append(("avg_pool", dict(nr=0, nc=0, stride=(1, 1), padding=(0, 0)), None))  # avg_pool_everything
    layers.append(("fc", dict(num_outputs=DESCRIPTOR_SIZE, bias_mode=1), "fc"))
    return layers


def descriptor_weight_shapes() -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor :func:`dlib_network_to_weights` returns."""
    shapes: dict[str, tuple[int, ...]] = {"input.mean_rgb": (3,)}

    def con(name: str, in_channels: int, out_channels: int, size: int) -> None:
        shapes[f"{name}.conv.weight"] = (out_channels, in_channels, size, size)
        for tensor in ("conv.bias", "affine.gamma", "affine.beta"):
            shapes[f"{name}.{tensor}"] = (out_channels,)

    con("stem", 3, STEM_CHANNELS, 7)
    block, in_channels = 0, STEM_CHANNELS
    for channels, downsample_first, plain_blocks in RESNET_STAGES:
        for _ in range(downsample_first + plain_blocks):
            con(f"blocks.{block}.conv1", in_channels, channels, 3)
            con(f"blocks.{block}.conv2", channels, channels, 3)
            block, in_channels = block + 1, channels
    shapes["fc.weight"] = (DESCRIPTOR_SIZE, in_channels)
    return shapes


def dlib_network_to_weights(network: DlibNetwork) -> dict[str, np.ndarray]:
    """Check a read network against the face-recognition ResNet and name its parameters for
    :class:`DlibResNetDescriptorNet` (unfolded: convolution weight and bias, affine gamma and beta per layer)."""
    expected = _expected_layers()
    if len(network.layers) != len(expected):
        raise DlibFormatError(
            f"the network has {len(network.layers)} computational layers; dlib's face-recognition ResNet has "
            f"{len(expected)}"
        )
    size = (network.input.settings.get("nr"), network.input.settings.get("nc"))
    if size != (CHIP_SIZE, CHIP_SIZE):
        raise DlibFormatError(f"the network's input is {size}, not the {CHIP_SIZE}x{CHIP_SIZE} chip")
    weights = {"input.mean_rgb": network.input.arrays["mean_rgb"]}
    for index, (layer, (kind, settings, name)) in enumerate(zip(network.layers, expected, strict=True)):
        mismatched = {k: (layer.settings.get(k), v) for k, v in settings.items() if layer.settings.get(k) != v}
        if layer.kind != kind or mismatched:
            raise DlibFormatError(
                f"layer {index} is {layer.version} {layer.settings}; dlib's face-recognition ResNet has {kind} "
                f"{settings} there"
            )
        if kind == "con":
            if "bias" not in layer.arrays:
                raise DlibFormatError(f"layer {index} (con_) has no bias")
            weights[f"{name}.weight"] = layer.arrays["weight"]
            weights[f"{name}.bias"] = layer.arrays["bias"]
        elif kind == "affine":
            weights[f"{name}.gamma"] = layer.arrays["gamma"]
            weights[f"{name}.beta"] = layer.arrays["beta"]
        elif kind == "fc":
            weights[f"{name}.weight"] = np.ascontiguousarray(layer.arrays["weight"].T)  # -> (out, in)
    shapes = {name: tuple(array.shape) for name, array in weights.items()}
    expected_shapes = descriptor_weight_shapes()
    if shapes != expected_shapes:
        wrong = {name: (shapes.get(name), expected_shapes.get(name)) for name in shapes | expected_shapes}
        wrong = {name: pair for name, pair in wrong.items() if pair[0] != pair[1]}
        raise DlibFormatError(f"parameter shapes differ from dlib's face-recognition ResNet: (found, expected) {wrong}")
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}


# ---------------------------------------------------------------------------------------------------------------
# The network in PyTorch
# ---------------------------------------------------------------------------------------------------------------


def zero_padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev_`` on (N, C, H, W) tensors: the sum has the larger size in every dimension and each input
    fills its first channels, rows and columns, zeros elsewhere (``tt::add``, dlib/dnn/tensor_tools.h)."""
    if a.shape == b.shape:
        return a + b
    size = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True)]

    def pad(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        return F.pad(t, (0, size[2] - w, 0, size[1] - h, 0, size[0] - c))

    return pad(a) + pad(b)


def _folded_conv(in_channels: int, out_channels: int, size: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, size, stride=stride, padding=size // 2 if stride == 1 else 0)


class DlibResidualBlock(nn.Module):
    """``ares`` / ``ares_down`` with each ``affine_`` folded into the convolution before it."""

    def __init__(self, in_channels: int, channels: int, downsample: bool):
        super().__init__()
        self.downsample = downsample
        self.conv1 = _folded_conv(in_channels, channels, 3, 2 if downsample else 1)
        self.conv2 = _folded_conv(channels, channels, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        skip = F.avg_pool2d(x, 2, 2) if self.downsample else x
        return F.relu(zero_padded_add(y, skip))


class DlibResNetDescriptorNet(nn.Module):
    """dlib's face-recognition ResNet (29 convolutions) for inference: 150x150 RGB chips -> 128-D descriptors.

    Build it with :meth:`from_dlib_weights` (or :func:`load_descriptor_net`); the ``affine_`` layers are folded into
    the convolutions, so the module's own parameters are not dlib's one to one. Eval mode, channels-last weights.

    ``forward`` takes (N, 3, 150, 150) float pixel values in 0..255 (channels-last memory is fastest, see
    :meth:`chips_to_tensor`) and returns (N, 128) float32.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("mean_rgb", torch.zeros(1, 3, 1, 1))
        self.stem = _folded_conv(3, STEM_CHANNELS, 7, 2)
        blocks, in_channels = [], STEM_CHANNELS
        for channels, downsample_first, plain_blocks in RESNET_STAGES:
            for downsample in [True] * downsample_first + [False] * plain_blocks:
                blocks.append(DlibResidualBlock(in_channels, channels, downsample))
                in_channels = channels
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(in_channels, DESCRIPTOR_SIZE, bias=False)

    @classmethod
    def from_dlib_weights(cls, weights: dict[str, np.ndarray | torch.Tensor]) -> DlibResNetDescriptorNet:
        """Build from :func:`dlib_network_to_weights`'s names (dlib's unfolded parameters)."""

        def get(name: str) -> torch.Tensor:
            if name not in weights:
                raise DlibFormatError(f"descriptor weights lack {name!r}")
            return torch.as_tensor(weights[name], dtype=torch.float32)

        def fold(conv: nn.Conv2d, name: str) -> None:
            weight, bias = get(f"{name}.conv.weight"), get(f"{name}.conv.bias")
            gamma, beta = get(f"{name}.affine.gamma"), get(f"{name}.affine.beta")
            channels = (conv.out_channels,)
            if weight.shape != conv.weight.shape or not bias.shape == gamma.shape == beta.shape == channels:
                raise DlibFormatError(f"{name}: weights {tuple(weight.shape)}, expected {tuple(conv.weight.shape)}")
            conv.weight.copy_(weight * gamma.view(-1, 1, 1, 1))
            conv.bias.copy_(bias * gamma + beta)

        net = cls()
        with torch.no_grad():
            net.mean_rgb.copy_(get("input.mean_rgb").view(1, 3, 1, 1))
            fold(net.stem, "stem")
            for index, block in enumerate(net.blocks):
                fold(block.conv1, f"blocks.{index}.conv1")
                fold(block.conv2, f"blocks.{index}.conv2")
            fc = get("fc.weight")
            if fc.shape != net.fc.weight.shape:
                raise DlibFormatError(f"fc weights {tuple(fc.shape)}, expected {tuple(net.fc.weight.shape)}")
            net.fc.weight.copy_(fc)
        net.requires_grad_(False)
        return net.eval().to(memory_format=torch.channels_last)

    @staticmethod
    def chips_to_tensor(chips: np.ndarray) -> torch.Tensor:
        """(N, 150, 150, 3) or (150, 150, 3) RGB uint8 chips -> (N, 3, 150, 150) float32, channels-last memory."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or chips.dtype != np.uint8:
            raise ValueError(
                f"expected RGB uint8 chips of shape (N, {CHIP_SIZE}, {CHIP_SIZE}, 3), got {chips.dtype} {chips.shape}"
            )
        # (N, H, W, C) viewed as (N, C, H, W) is already channels-last; float() keeps that layout.
        return torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2).float()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels - self.mean_rgb) / 256.0  # input_rgb_image_sized::to_tensor (dlib/dnn/input.h)
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))

    def describe(self, chips: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) RGB uint8 chips -> (N, 128) float64 descriptors (under ``torch.inference_mode``)."""
        with torch.inference_mode():
            return self(self.chips_to_tensor(chips)).double().numpy()


# ---------------------------------------------------------------------------------------------------------------
# Loading, with a safetensors cache of the converted weights
# ---------------------------------------------------------------------------------------------------------------


def facehub_cache_dir() -> Path:
    """``$FACEHUB_CACHE``, else ``$XDG_CACHE_HOME/facehub``, else ``~/.cache/facehub``."""
    if os.environ.get("FACEHUB_CACHE"):
        return Path(os.environ["FACEHUB_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "facehub"


def cache_file_for(dat_path: Path, cache_dir: Path | None = None) -> Path:
    """Where the converted weights of ``dat_path`` are cached: named after the file, keyed by its size and mtime."""
    stat = dat_path.stat()
    key = hashlib.sha256(f"{dat_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{CACHE_FORMAT}".encode()).hexdigest()
    return (cache_dir or facehub_cache_dir()) / "dlib_resnet" / f"{dat_path.stem}-{key[:16]}.safetensors"


def _cache_metadata(dat_path: Path) -> dict[str, str]:
    stat = dat_path.stat()
    return {
        "format": CACHE_FORMAT,
        "source": dat_path.name,
        "size": str(stat.st_size),
        "mtime_ns": str(stat.st_mtime_ns),
    }


def _read_cache(cache_file: Path, dat_path: Path) -> dict[str, np.ndarray] | None:
    from safetensors import safe_open

    if not cache_file.is_file():
        return None
    try:
        with safe_open(str(cache_file), framework="numpy") as handle:
            if handle.metadata() != _cache_metadata(dat_path):
                return None
            weights = {name: handle.get_tensor(name) for name in handle.keys()}
        if {name: tuple(array.shape) for name, array in weights.items()} != descriptor_weight_shapes():
            raise DlibFormatError("the tensors are not the descriptor's")
        return weights
    except Exception as error:  # a damaged cache file is rebuilt, never trusted
        logger.warning("Ignoring unreadable cache file %s (%s); converting %s again.", cache_file, error, dat_path)
        return None


def _write_cache(cache_file: Path, weights: dict[str, np.ndarray], dat_path: Path) -> None:
    from safetensors.numpy import save_file

    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cache_file.parent, prefix=cache_file.stem, suffix=".tmp")
        os.close(handle)
        try:
            save_file(weights, temporary, metadata=_cache_metadata(dat_path))
            os.replace(temporary, cache_file)  # atomic: a concurrent reader sees the old file or the whole new one
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    except OSError as error:
        logger.info("Not caching the converted dlib weights in %s (%s); they stay in memory.", cache_file.parent, error)


def load_descriptor_weights(
    dat_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None, use_cache: bool = True
) -> dict[str, np.ndarray]:
    """dlib's unfolded parameters of ``dat_path`` by PyTorch name (:func:`dlib_network_to_weights`), from the
    safetensors cache when it holds this file's conversion, else read from the ``.dat`` and cached."""
    dat_path = Path(dat_path)
    if not dat_path.is_file():
        raise FileNotFoundError(f"dlib's identity model {dat_path} is missing; reinstall face_recognition_models.")
    cache_file = cache_file_for(dat_path, Path(cache_dir) if cache_dir is not None else None) if use_cache else None
    if cache_file is not None and (weights := _read_cache(cache_file, dat_path)) is not None:
        return weights
    weights = dlib_network_to_weights(read_dlib_network(dat_path))
    if cache_file is not None:
        _write_cache(cache_file, weights, dat_path)
    return weights


def load_descriptor_net(
    dat_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None, use_cache: bool = True
) -> DlibResNetDescriptorNet:
    """:class:`DlibResNetDescriptorNet` with the weights of a dlib ``.dat`` file (cached, see
    :func:`load_descriptor_weights`)."""
    return DlibResNetDescriptorNet.from_dlib_weights(load_descriptor_weights(dat_path, cache_dir, use_cache))


def face_chip(image: np.ndarray, shape) -> np.ndarray:
    """dlib's 150x150 descriptor chip of a face: ``dlib.get_face_chip`` with padding 0.25, the chip
    ``compute_face_descriptor`` makes from an image and a ``dlib.full_object_detection`` (5 or 68 points)."""
    import dlib

    return dlib.get_face_chip(np.ascontiguousarray(image), shape, size=CHIP_SIZE, padding=CHIP_PADDING)
