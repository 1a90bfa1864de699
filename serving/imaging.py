"""Images on numpy and Pillow only, with no transport: the one table of image encodings,
encoded images and their decoding and encoding, resizing, and the per-request options
(strength, preserve_color, max_side) with the blend they control. Arrays are uint8 RGB
[H, W, 3]; an alpha channel travels beside them as uint8 [H, W].

(About 400 lines on purpose: how real-world files are read — EXIF, 16-bit, transparency,
header-first size checks, JPEG draft decoding — is one set of rules, kept and documented
together here rather than spread over modules that would each need the others.)

How images as cameras and editors write them are read (the server and `stylecast stylise`):

- Format: JPEG (and MPO, the multi-picture JPEG of some cameras), PNG or WebP, detected from
  the bytes; anything else is "not a decodable JPEG, PNG or WebP image". The pixel limit is
  checked from the header, before any pixel is decoded; it counts pixels, so an EXIF rotation
  cannot change the verdict.
- EXIF orientation (tag 274, also read from XMP as Pillow does): applied, so the output is
  upright (a 160x80 JPEG with orientation 6 comes back 80x160) and carries no orientation tag
  (outputs carry no metadata at all). ``orient`` applies the same transposes as Pillow's
  ``ImageOps.exif_transpose``. Unreadable EXIF counts as "no orientation".
- 16 bits per channel: scaled to 8 by keeping the high byte (v >> 8, so 65535 → 255 and
  32896 → 128; the exact inverse of the usual 8 → 16 expansion v * 257). Pillow does this for
  16-bit RGB and RGBA PNGs; 16-bit grey (modes I;16, I;16B, I) is scaled here.
- Transparency (RGBA, LA, PA, and P, L or RGB with a transparent colour): the colour is
  composited over ``BACKGROUND`` (white) before the network sees it, so a fully transparent
  pixel never shows its hidden colour. Outputs that can carry alpha (PNG, WebP) get the
  input's alpha back (resized with the image); the others (JPEG, raw RGB) are the stylised
  image composited over ``BACKGROUND`` with that alpha, i.e. what the PNG shows on white.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

import numpy as np
from PIL import ExifTags, Image, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from stylecast.errors import StylecastError
from stylecast.image_rules import fit_longest_side

DEFAULT_MAX_PIXELS = 4096 * 4096
DEFAULT_QUALITY = 90
BACKGROUND = (255, 255, 255)  # what transparent pixels are composited over (white)


@dataclass(frozen=True)
class Encoding:
    """One image encoding: its name (options, CLI, Python client), its value in the API's
    ``stylecast.v1.Encoding`` enum, the file suffixes that stand for it, its Pillow format
    (None: packed raw RGB, which is no file format) and whether it can carry alpha."""

    name: str
    proto: str
    suffixes: tuple[str, ...]
    pillow: str | None
    alpha: bool = False


# The one table of encodings. serving.codec binds ``proto`` to the generated enum, where
# ENCODING_UNSPECIFIED means "detect" on input and DEFAULT_ENCODING on output. The suffixes
# are stylecast.image_rules.IMAGE_SUFFIXES (a test keeps the two in step).
ENCODINGS: dict[str, Encoding] = {
    encoding.name: encoding
    for encoding in (
        Encoding("jpeg", "ENCODING_JPEG", (".jpg", ".jpeg"), "JPEG"),
        Encoding("png", "ENCODING_PNG", (".png",), "PNG", alpha=True),
        Encoding("webp", "ENCODING_WEBP", (".webp",), "WEBP", alpha=True),
        Encoding("raw", "ENCODING_RAW_RGB", (), None),
    )
}
RAW = "raw"
DEFAULT_ENCODING = "jpeg"
FILE_ENCODINGS = tuple(name for name, encoding in ENCODINGS.items() if encoding.pillow)
NOT_AN_IMAGE = "not a decodable JPEG, PNG or WebP image"

# Pillow's readers of the file encodings, called directly rather than through Image.open:
# Image.open applies Pillow's own decompression-bomb limit before we see the size, and its
# errors name Pillow's limit and Python objects instead of ours.
_READERS: dict[str, Callable[[IO[bytes], str], ImageFile.ImageFile]] = {
    "jpeg": JpegImagePlugin.jpeg_factory,  # JPEG, or MPO (multi-picture JPEG) from cameras
    "png": PngImagePlugin.PngImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
}
# What Pillow raises on corrupt or truncated data.
_CORRUPT = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
            struct.error, zlib.error)  # fmt: skip
_SIXTEEN_BIT_GREY = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


def encoding_for_suffix(suffix: str, default: str = DEFAULT_ENCODING) -> str:
    """The encoding a file suffix stands for (".PNG" → "png"); ``default`` for any other."""
    suffix = suffix.lower()
    for encoding in ENCODINGS.values():
        if suffix in encoding.suffixes:
            return encoding.name
    return default


def sniff_encoding(data: bytes) -> str | None:
    """The file encoding ("jpeg", "png", "webp") the bytes start like, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


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
class Pixels:
    """Decoded pixels as stored: 8-bit RGB [H, W, 3], alpha [H, W] (None: opaque), and the
    EXIF orientation (1-8, 1: upright) that ``orient`` applies."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    orientation: int = 1


@dataclass(frozen=True)
class StyliseOptions:
    """Per-request options applied around inference."""

    strength: float = 1.0  # 0: the content unchanged, 1: fully stylised
    preserve_color: bool = False  # keep the content's colour, take the stylised luminance
    max_side: int = 0  # 0: no limit; else downscale so the longer side is at most this
    # Multi-style models (serving.styles): one style by name, or a mix of (name, weight).
    style: str = ""
    mix: tuple[tuple[str, float], ...] = ()

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


# -- decoding -------------------------------------------------------------------------------


def read_file(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = 0) -> Pixels:
    """JPEG/PNG/WebP bytes as stored (not yet oriented), in 8 bits. The size is checked from
    the header before any pixel is decoded, so a decompression bomb costs nothing.

    A JPEG over ``max_pixels`` is still accepted when ``max_side`` would bring it under the
    limit: it is decoded straight at a reduced scale (JPEG's DCT scaling, at most twice the
    asked size per side), so a 12 MP phone photo sent with max_side 1024 never occupies
    12 MP of memory. Other formats must fit the limit as stored."""
    if not data:
        raise ImageError("empty image data")
    encoding = sniff_encoding(data)
    if encoding is None:
        raise ImageError(NOT_AN_IMAGE)
    if encoding == "webp" and (size := _webp_size(data)) is not None:
        check_size(*size, max_pixels)  # Pillow's WebP reader allocates the canvas on opening
    try:
        with _READERS[encoding](io.BytesIO(data), "") as image:
            if encoding == "jpeg" and max_side > 0 and image.width * image.height > max_pixels:
                _draft_to_side(image, max_side, max_pixels)
            else:
                check_size(image.width, image.height, max_pixels)
            orientation = _orientation(image)
            image.load()
            rgb, alpha = _eight_bit(image)
    except Image.DecompressionBombError:  # Pillow's own guard, inside a reader
        raise ImageTooLarge(f"image is over the limit of {max_pixels} pixels") from None
    except _CORRUPT:
        raise ImageError(f"corrupt or truncated {encoding.upper()} image") from None
    return Pixels(rgb, alpha, orientation)


def read_pillow(image: Image.Image) -> Pixels:
    """A Pillow image already in memory (any mode) as stored, in 8 bits, with its EXIF
    orientation, read by the same rules as a file (the Python API's Pillow inputs)."""
    try:
        orientation = _orientation(image)
        image.load()
        rgb, alpha = _eight_bit(image)
    except _CORRUPT as exc:
        raise ImageError(f"cannot read a Pillow image of mode {image.mode}: {exc}") from None
    return Pixels(rgb, alpha, orientation)


def _draft_to_side(image: Image.Image, max_side: int, max_pixels: int) -> None:
    """Set a JPEG to decode at the smallest DCT scale still covering ``max_side``; refuse it
    when even the result of ``max_side`` would be over ``max_pixels``."""
    target = fit_longest_side(image.width, image.height, min(max_side, max(image.size)))
    if target[0] * target[1] > max_pixels:
        check_size(image.width, image.height, max_pixels)  # raises, naming the stored size
    image.draft("RGB", target)
    if image.width * image.height > 4 * max_pixels:  # DCT scaling stops at 1/8 per side
        raise ImageTooLarge(
            f"image is {image.width * 8}x{image.height * 8} or more, too large to reduce "
            f"under the limit of {max_pixels} pixels; send a smaller image"
        )


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """A WebP's canvas size from its first chunk's header (VP8, VP8L or VP8X), if readable."""
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        return width, int.from_bytes(data[27:30], "little") + 1
    return None


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8); 1 when absent, invalid or unreadable."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except _CORRUPT:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _eight_bit(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """A loaded image as 8-bit RGB and its alpha (None when it has no transparency)."""
    if image.mode in _SIXTEEN_BIT_GREY:
        values = np.asarray(image).astype(np.int64)
        grey = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
        transparent = image.info.get("transparency")
        alpha = None
        if isinstance(transparent, int):
            alpha = np.where(values == transparent, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), alpha
    if image.has_transparency_data:
        rgba = np.asarray(image.convert("RGBA"))
        return rgba[..., :3], rgba[..., 3]
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB")), None


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


def read_image(
    image: EncodedImage, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = 0
) -> Pixels:
    """An encoded image (file or raw RGB) as stored, refused over ``max_pixels`` (see
    ``read_file`` for JPEGs that ``max_side`` brings under it)."""
    if image.encoding == RAW:
        return Pixels(from_raw(image.data, image.width, image.height, max_pixels))
    return read_file(image.data, max_pixels, max_side)


# EXIF orientation → the transpose that makes the stored pixels upright: the table of Pillow's
# ImageOps.exif_transpose, on arrays (RGB or alpha).
_UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],  # FLIP_LEFT_RIGHT
    3: lambda a: a[::-1, ::-1],  # ROTATE_180
    4: lambda a: a[::-1],  # FLIP_TOP_BOTTOM
    5: lambda a: a.swapaxes(0, 1),  # TRANSPOSE
    6: lambda a: np.rot90(a, -1),  # ROTATE_270 (counter-clockwise): a quarter turn clockwise
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # TRANSVERSE
    8: lambda a: np.rot90(a, 1),  # ROTATE_90 (counter-clockwise)
}


def orient(pixels: Pixels) -> Pixels:
    """Pixels turned upright by their EXIF orientation (orientation 1 afterwards)."""
    turn = _UPRIGHT.get(pixels.orientation)
    if turn is None:
        return pixels
    alpha = None if pixels.alpha is None else np.ascontiguousarray(turn(pixels.alpha))
    return Pixels(np.ascontiguousarray(turn(pixels.rgb)), alpha)


def flatten(
    rgb: np.ndarray, alpha: np.ndarray | None, background: tuple[int, int, int] = BACKGROUND
) -> np.ndarray:
    """RGB composited over ``background`` with ``alpha`` (None: ``rgb`` as it is)."""
    if alpha is None:
        return rgb
    weight = alpha.astype(np.uint32)[..., None]
    under = np.asarray(background, dtype=np.uint32) * (255 - weight)
    return ((rgb.astype(np.uint32) * weight + under + 127) // 255).astype(np.uint8)


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """JPEG/PNG/WebP bytes as upright 8-bit RGB, composited over ``BACKGROUND``."""
    pixels = orient(read_file(data, max_pixels))
    return flatten(pixels.rgb, pixels.alpha)


def decode_image(image: EncodedImage, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An encoded image (file or raw RGB) as upright RGB, refused over ``max_pixels``."""
    pixels = orient(read_image(image, max_pixels))
    return flatten(pixels.rgb, pixels.alpha)


# -- encoding -------------------------------------------------------------------------------


def encode(
    image: np.ndarray, encoding: str = DEFAULT_ENCODING, quality: int = DEFAULT_QUALITY
) -> bytes:
    """Encode RGB (or RGBA, for PNG and WebP) to the bytes of a JPEG, PNG or WebP file."""
    if encoding not in FILE_ENCODINGS:
        raise ImageError(f"unknown file encoding {encoding!r}; choose from {FILE_ENCODINGS}")
    if not 1 <= quality <= 100:
        raise ImageError(f"quality must be in [1, 100] (got {quality})")
    if image.ndim == 3 and image.shape[2] == 4 and not ENCODINGS[encoding].alpha:
        raise ImageError(f"{encoding} cannot carry alpha")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=ENCODINGS[encoding].pillow, quality=quality)
    return buffer.getvalue()


def raw_image(image: np.ndarray) -> EncodedImage:
    """An RGB uint8 array [H, W, 3] as packed raw RGB."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected a uint8 RGB array [H, W, 3], got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    return EncodedImage(np.ascontiguousarray(image).tobytes(), RAW, width, height)


def encode_image(
    image: np.ndarray, output: OutputFormat, alpha: np.ndarray | None = None
) -> EncodedImage:
    """An RGB array encoded as ``output`` asks (a file, or raw RGB), with its size. ``alpha``
    is kept by encodings that carry it and composited over ``BACKGROUND`` by the others."""
    if alpha is not None and ENCODINGS[output.encoding].alpha:
        image = np.dstack((image, alpha))
    else:
        image = flatten(image, alpha)
    if output.encoding == RAW:
        return raw_image(image)
    height, width = image.shape[:2]
    data = encode(image, output.encoding, output.quality)
    return EncodedImage(data, output.encoding, width, height)


# -- resizing and blending ------------------------------------------------------------------


def resize_longest_side(image: np.ndarray, side: int) -> np.ndarray:
    """Resize (up or down, Lanczos) so the longer side is ``side``, keeping the aspect ratio
    (RGB [H, W, 3] or a single channel [H, W])."""
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
