"""Image decoding, encoding and the per-request options (strength, preserve_color, max_side),
on numpy and Pillow only. Arrays are uint8 RGB [H, W, 3]."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from stylecast.errors import StylecastError
from stylecast.image_rules import fit_longest_side

DEFAULT_MAX_PIXELS = 4096 * 4096
ENCODINGS = ("jpeg", "png", "webp")


class ImageError(StylecastError):
    """The input is not a usable image (maps to INVALID_ARGUMENT)."""


class ImageTooLarge(ImageError):
    """The image exceeds the configured pixel limit (maps to RESOURCE_EXHAUSTED / a clear error)."""


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


def check_size(width: int, height: int, max_pixels: int) -> None:
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
            if image.format not in {"JPEG", "PNG", "WEBP", "MPO"}:
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


def encode(image: np.ndarray, encoding: str = "jpeg", quality: int = 90) -> bytes:
    """Encode RGB to JPEG, PNG or WebP bytes."""
    if encoding not in ENCODINGS:
        raise ImageError(f"unknown output encoding {encoding!r}; choose from {ENCODINGS}")
    if not 1 <= quality <= 100:
        raise ImageError(f"quality must be in [1, 100] (got {quality})")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=encoding.upper(), quality=quality)
    return buffer.getvalue()


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
