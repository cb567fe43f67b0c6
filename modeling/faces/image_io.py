"""Reading images for face analysis: any common source -> RGB uint8 numpy array, with clear errors.

Sources: a path (``str`` / ``os.PathLike``), encoded bytes, a PIL image or a numpy array. What is normalised:

- EXIF orientation (photos from phones are stored sideways with an orientation tag): the pixels are rotated so the
  array looks the way a viewer shows the photo.
- Alpha (RGBA, LA, palette with transparency): composited on white, so transparent areas do not turn black.
- Greyscale (L, I;16, I, F) and 16-bit images: rescaled to 8 bits and repeated on three channels.

Size guard: the width and height come from the file's header, which PIL reads without decoding the pixels, so an
image with more than ``max_pixels`` pixels is refused with :class:`ImageTooLargeError` before it costs any memory.
PIL's own decompression-bomb check is turned into the same error.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Default pixel limit (width * height): 64 megapixels, above any camera photo, far below what exhausts memory.
DEFAULT_MAX_PIXELS = 64_000_000

ImageSource = str | os.PathLike | bytes | bytearray | Image.Image | np.ndarray


class FaceHubImageError(ValueError):
    """Base class for image-input errors raised by :mod:`facehub.modeling.faces`."""


class ImageReadError(FaceHubImageError):
    """The input could not be read as an image (missing, not an image, truncated or corrupt)."""


class ImageTooLargeError(FaceHubImageError):
    """The image has more pixels than the configured limit; it was refused before being decoded."""


def _describe(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"'{os.fspath(source)}'"
    if isinstance(source, (bytes, bytearray)):
        return f"the given bytes ({len(source)} bytes)"
    return f"the given {type(source).__name__}"


def _check_size(width: int, height: int, max_pixels: int | None, name: str) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"Image {name} is {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}. "
            "Downscale it first, or raise the limit with max_pixels=... if you trust the file."
        )


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Rescale any numeric array to uint8: 16-bit by 257, floats in [0, 1] by 255, other integers clipped."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        finite = array[np.isfinite(array)]
        peak = float(finite.max()) if finite.size else 1.0
        scale = 255.0 if peak <= 1.0 else 1.0
        return np.clip(np.nan_to_num(array) * scale + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        peak = int(array.max()) if array.size else 0
        if peak > 255:  # e.g. int32 holding 16-bit values (PIL mode "I")
            return np.clip((array.astype(np.int64) + 128) // 257, 0, 255).astype(np.uint8)
        return np.clip(array, 0, 255).astype(np.uint8)
    raise ImageReadError(f"Cannot use an array of dtype {array.dtype} as an image; pass uint8 or uint16 RGB pixels.")


def _array_to_rgb(array: np.ndarray, name: str) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array of any numeric dtype -> contiguous RGB uint8."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(_to_uint8(array)[..., None], 3, axis=-1)
    elif array.ndim == 3 and array.shape[-1] in (3, 4):
        if array.shape[-1] == 4:
            alpha = _to_uint8(array[..., 3]).astype(np.float32)[..., None] / 255.0
            rgb = _to_uint8(array[..., :3]).astype(np.float32)
            array = (rgb * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
        else:
            array = _to_uint8(array)
    else:
        raise ImageReadError(
            f"Cannot use {name} with shape {array.shape} as an image; expected (H, W), (H, W, 3) or (H, W, 4)."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageReadError(f"Image {name} is empty (shape {array.shape}).")
    return np.ascontiguousarray(array)


def _pil_to_rgb(image: Image.Image, name: str) -> np.ndarray:
    image = ImageOps.exif_transpose(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    elif image.mode in ("LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
    elif image.mode.startswith("I;16"):
        return _array_to_rgb(np.asarray(image).astype(np.uint16), name)
    return _array_to_rgb(np.asarray(image), name)


def _open_and_decode(opener, name: str, max_pixels: int | None) -> np.ndarray:
    with warnings.catch_warnings():
        # PIL warns (and above twice its limit, fails) in Image.open for huge images; under our own, stricter limit
        # the warning becomes ImageTooLargeError, above it the caller has allowed big images and it is silenced.
        strict = max_pixels is not None and max_pixels <= (Image.MAX_IMAGE_PIXELS or float("inf"))
        warnings.simplefilter("error" if strict else "ignore", Image.DecompressionBombWarning)
        try:
            with opener() as image:
                _check_size(image.width, image.height, max_pixels, name)  # header only; nothing decoded yet
                image.load()
                return _pil_to_rgb(image, name)
        except FaceHubImageError:
            raise
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
            raise ImageTooLargeError(
                f"Image {name} is refused by PIL as a possible decompression bomb ({error}). "
                "Pass a smaller image, or raise max_pixels if you trust the file."
            ) from error
        except FileNotFoundError as error:
            raise ImageReadError(f"Image file {name} does not exist; check the path.") from error
        except IsADirectoryError as error:
            raise ImageReadError(f"{name} is a directory, not an image file; pass the path of one image.") from error
        except UnidentifiedImageError as error:
            raise ImageReadError(
                f"Could not read {name}: it is not an image file PIL recognises (JPEG, PNG, WebP, BMP, TIFF, ...). "
                "Check that the file is really an image and not another file renamed."
            ) from error
        except (OSError, SyntaxError, ValueError) as error:  # truncated / corrupt data surfaces as OSError
            raise ImageReadError(
                f"Could not decode {name}: the file looks truncated or corrupt ({error}). "
                "Re-download or re-export the image."
            ) from error


def load_image(source: ImageSource, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read ``source`` as an (H, W, 3) RGB uint8 array.

    Args:
        source: path, encoded bytes (JPEG, PNG, ...), PIL image, or numpy array ((H, W) grey, (H, W, 3) RGB or
            (H, W, 4) RGBA; uint8, uint16 or float in [0, 1]). Arrays are taken as RGB (not OpenCV's BGR).
        max_pixels: refuse images with more than this many pixels (``None``: no limit). For files and bytes the
            check runs on the header, before decoding.

    Raises:
        ImageReadError: the source is missing, not an image, truncated or corrupt.
        ImageTooLargeError: the image has more than ``max_pixels`` pixels.
    """
    name = _describe(source)
    if isinstance(source, np.ndarray):
        if source.ndim >= 2:
            _check_size(source.shape[1], source.shape[0], max_pixels, name)
        return _array_to_rgb(source, name)
    if isinstance(source, Image.Image):
        _check_size(source.width, source.height, max_pixels, name)
        return _pil_to_rgb(source, name)
    if isinstance(source, (bytes, bytearray)):
        return _open_and_decode(lambda: Image.open(io.BytesIO(bytes(source))), name, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return _open_and_decode(lambda: Image.open(path), name, max_pixels)
    raise TypeError(
        f"Cannot read an image from a {type(source).__name__}; pass a path, bytes, a PIL image or an RGB numpy array."
    )
