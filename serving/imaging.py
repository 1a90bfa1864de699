"""Images on numpy and Pillow only, with no transport: the one table of image encodings,
encoded images and their decoding and encoding, resizing, and the per-request options
(strength, preserve_color, max_side) with the blend they control. Arrays are uint8 RGB
[H, W, 3]."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from stylecast.errors import StylecastError
from stylecast.image_rules import fit_longest_side

DEFAULT_MAX_PIXELS = 4096 * 4096
DEFAULT_QUALITY = 90


@dataclass(frozen=True)
class Encoding:
    """One image encoding: its name (options, CLI, Python client), its value in the API's
    ``stylecast.v1.Encoding`` enum, the file suffixes that stand for it, and its Pillow format
    (None: packed raw RGB, which is no file format)."""

    name: str
    proto: str
    suffixes: tuple[str, ...]
    pillow: str | None


# The one table of encodings. serving.codec binds ``proto`` to the generated enum, where
# ENCODING_UNSPECIFIED means "detect" on input and DEFAULT_ENCODING on output. The suffixes
# are stylecast.image_rules.IMAGE_SUFFIXES (a test keeps the two in step).
ENCODINGS: dict[str, Encoding] = {
    encoding.name: encoding
    for encoding in (
        Encoding("jpeg", "ENCODING_JPEG", (".jpg", ".jpeg"), "JPEG"),
        Encoding("png", "ENCODING_PNG", (".png",), "PNG"),
        Encoding("webp", "ENCODING_WEBP", (".webp",), "WEBP"),
        Encoding("raw", "ENCODING_RAW_RGB", (), None),
    )
}
RAW = "raw"
DEFAULT_ENCODING = "jpeg"
FILE_ENCODINGS = tuple(name for name, encoding in ENCODINGS.items() if encoding.pillow)
# Pillow formats that decode accepts: the file encodings, plus MPO (JPEG from some cameras).
_DECODABLE = frozenset({e.pillow for e in ENCODINGS.values() if e.pillow} | {"MPO"})


def encoding_for_suffix(suffix: str, default: str = DEFAULT_ENCODING) -> str:
    """The encoding a file suffix stands for (".PNG" → "png"); ``default`` for any other."""
    suffix = suffix.lower()
    for encoding in ENCODINGS.values():
        if suffix in encoding.suffixes:
            return encoding.name
    return default


class ImageError(StylecastError):
    """The input is not a usable image (maps to INVALID_ARGUMENT)."""


class ImageTooLarge(ImageError):
    """The image has more pixels than the configured limit (maps to INVALID_ARGUMENT too:
    retrying cannot help, so it is not RESOURCE_EXHAUSTED)."""


@dataclass(frozen=True)
class EncodedImage:
    """Image bytes as they travel: a JPEG, PNG or WebP file, or packed raw RGB.

    ``encoding``: a name from ENCODINGS; None on input means "a file, format detected from the
    bytes". ``width`` and ``height`` are required for raw RGB and always set on output."""

    data: bytes
    encoding: str | None = None
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class StyliseOptions:
    """Per-request options applied around inference."""

    strength: float = 1.0  # 0: the content unchanged, 1: fully stylised
    preserve_color: bool = False  # keep the content's colour, take the stylised luminance
    max_side: int = 0  # 0: no limit; else downscale so the longer side is at most this

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ImageError(f"strength must be in [0, 1] (got {self.strength})")
        if self.max_side < 0:
            raise ImageError(f"max_side must be >= 0 (got {self.max_side})")


@dataclass(frozen=True)
class OutputFormat:
    """How a stylised image is encoded: a name from ENCODINGS, and JPEG/WebP quality."""

    encoding: str = DEFAULT_ENCODING
    quality: int = DEFAULT_QUALITY

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ImageError(
                f"unknown output encoding {self.encoding!r}; choose from {sorted(ENCODINGS)}"
            )
        if not 1 <= self.quality <= 100:
            raise ImageError(f"quality must be in [1, 100] (got {self.quality})")


def check_size(width: int, height: int, max_pixels: int) -> None:
    """Refuse an image with no pixels or more than ``max_pixels``."""
    if width <= 0 or height <= 0:
        raise ImageError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
        )


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode JPEG/PNG/WebP bytes to RGB. The size is checked from the header before any
    pixel is decoded, so a decompression bomb costs nothing."""
    if not data:
        raise ImageError("empty image data")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in _DECODABLE:
                raise ImageError(f"unsupported image format {image.format}; use JPEG, PNG or WebP")
            check_size(image.width, image.height, max_pixels)
            return np.asarray(image.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from None
    except UnidentifiedImageError as exc:
        raise ImageError(f"not a decodable JPEG, PNG or WebP image ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise ImageError(f"corrupt or truncated image: {exc}") from None


def from_raw(
    data: bytes, width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Raw packed RGB bytes (row-major, 3 bytes per pixel) to an array."""
    check_size(width, height, max_pixels)
    if len(data) != width * height * 3:
        raise ImageError(
            f"raw RGB data has {len(data)} bytes; {width}x{height} needs {width * height * 3}"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)


def encode(
    image: np.ndarray, encoding: str = DEFAULT_ENCODING, quality: int = DEFAULT_QUALITY
) -> bytes:
    """Encode RGB to the bytes of a JPEG, PNG or WebP file."""
    if encoding not in FILE_ENCODINGS:
        raise ImageError(f"unknown file encoding {encoding!r}; choose from {FILE_ENCODINGS}")
    if not 1 <= quality <= 100:
        raise ImageError(f"quality must be in [1, 100] (got {quality})")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=ENCODINGS[encoding].pillow, quality=quality)
    return buffer.getvalue()


def raw_image(image: np.ndarray) -> EncodedImage:
    """An RGB uint8 array [H, W, 3] as packed raw RGB."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected a uint8 RGB array [H, W, 3], got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    return EncodedImage(np.ascontiguousarray(image).tobytes(), RAW, width, height)


def decode_image(image: EncodedImage, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An encoded image (file or raw RGB) as an RGB array, refused over ``max_pixels``."""
    if image.encoding == RAW:
        return from_raw(image.data, image.width, image.height, max_pixels)
    return decode(image.data, max_pixels)


def encode_image(image: np.ndarray, output: OutputFormat) -> EncodedImage:
    """An RGB array encoded as ``output`` asks (a file, or raw RGB), with its size."""
    if output.encoding == RAW:
        return raw_image(image)
    height, width = image.shape[:2]
    data = encode(image, output.encoding, output.quality)
    return EncodedImage(data, output.encoding, width, height)


def resize_longest_side(image: np.ndarray, side: int) -> np.ndarray:
    """Resize (up or down, Lanczos) so the longer side is ``side``, keeping the aspect ratio."""
    height, width = image.shape[:2]
    size = fit_longest_side(width, height, side)
    if size == (width, height):
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink so the longer side is at most ``max_side`` (0: no limit); never enlarges."""
    if max_side <= 0 or max(image.shape[:2]) <= max_side:
        return image
    return resize_longest_side(image, max_side)


def blend(content: np.ndarray, stylised: np.ndarray, options: StyliseOptions) -> np.ndarray:
    """Apply preserve_color and strength to a stylised image of the content's size."""
    out = stylised
    if options.preserve_color:
        luma = Image.fromarray(stylised).convert("YCbCr").getchannel("Y")
        _, cb, cr = Image.fromarray(content).convert("YCbCr").split()
        out = np.asarray(Image.merge("YCbCr", (luma, cb, cr)).convert("RGB"))
    if options.strength < 1.0:
        mixed = options.strength * out.astype(np.float32) + (1 - options.strength) * content
        out = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out
