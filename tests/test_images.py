"""Images as phones and editors write them, through the pipeline the server and `stylecast
stylise` share: EXIF orientation, 16-bit channels, transparency, and error messages that name
the problem in the API's terms."""

from __future__ import annotations

import io
import struct
import zlib

import grpc
import numpy as np
import pytest
from PIL import ExifTags, Image, ImageOps
from serving_fixtures import TINY_MODEL, encoded_image

from stylecast.serving import imaging
from stylecast.serving.client import ServerError
from stylecast.serving.imaging import (
    BACKGROUND,
    EncodedImage,
    ImageError,
    ImageTooLarge,
    OutputFormat,
    StyliseOptions,
    decode,
    decode_image,
    orient,
    read_file,
)
from stylecast.serving.pipeline import Inferred, stylise

pytest_plugins = ("serving_fixtures",)

MODEL = object()  # the pipeline hands the model to the inference hook and nothing else
ORIENTATION = ExifTags.Base.Orientation


class Identity:
    """An inference hook that returns its input and remembers it."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def __call__(self, model: object, content: np.ndarray, weights: object = None) -> Inferred:
        self.seen.append(content)
        return Inferred(content)


def invert(model: object, content: np.ndarray, weights: object = None) -> Inferred:
    return Inferred(255 - content)


def save(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def run(data: bytes, encoding: str, infer=None, **options: object) -> EncodedImage:
    hook = infer or Identity()
    output = OutputFormat(encoding, 95)
    return stylise(MODEL, EncodedImage(data), StyliseOptions(**options), output, infer=hook).image


def open_output(image: EncodedImage) -> Image.Image:
    return Image.open(io.BytesIO(image.data))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png16(values: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG (Pillow cannot write 16-bit RGB or RGBA): ``values`` uint16 [H, W, C] with
    C = 1 (grey, type 0), 2 (grey + alpha, type 4), 3 (RGB, type 2) or 4 (RGBA, type 6)."""
    height, width = values.shape[:2]
    rows = values.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return b"".join((b"\x89PNG\r\n\x1a\n", png_chunk(b"IHDR", header),
                     png_chunk(b"IDAT", zlib.compress(raw)), png_chunk(b"IEND", b"")))  # fmt: skip


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size (a decompression bomb's header) with no real pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + idat + png_chunk(b"IEND", b"")


def webp_header_only(width: int, height: int) -> bytes:
    """A WebP (VP8X) header that claims a canvas size, with no image data."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", len(vp8x) + 4) + b"WEBP" + vp8x


def two_halves(width: int = 160, height: int = 80) -> Image.Image:
    """Left half red, right half blue, a green square in the top-left corner."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2 :] = (0, 0, 255)
    pixels[:16, :16] = (0, 255, 0)
    return Image.fromarray(pixels)


def with_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = value
    return exif


# -- EXIF orientation ---------------------------------------------------------------------


def test_a_sideways_phone_jpeg_comes_back_upright_without_its_orientation_tag():
    jpeg = save(two_halves(), "JPEG", quality=95, exif=with_orientation(6))
    out = run(jpeg, "jpeg")
    assert (out.width, out.height) == (80, 160)
    with open_output(out) as image:
        assert image.size == (80, 160)
        assert image.getexif().get(ORIENTATION) is None
        upright = np.asarray(image.convert("RGB")).astype(int)
    # orientation 6: the stored left (red) is the top once upright; the green corner is top-right
    assert upright[50, 40, 0] > 200 and upright[110, 40, 2] > 200
    assert upright[4, 76, 1] > 200
    with Image.open(io.BytesIO(jpeg)) as stored:
        expected = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"))
    assert np.array_equal(decode(jpeg), expected)  # the same pixels as Pillow's exif_transpose


@pytest.mark.parametrize("value", range(1, 9))
def test_every_orientation_turns_as_pillows_exif_transpose_does(value):
    source = two_halves(24, 10)
    rgba = source.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.arange(240, dtype=np.uint8).reshape(10, 24)))
    png = save(rgba, "PNG", exif=with_orientation(value))
    pixels = orient(read_file(png))
    with Image.open(io.BytesIO(png)) as stored:
        expected = np.asarray(ImageOps.exif_transpose(stored))
    assert pixels.orientation == 1
    assert np.array_equal(pixels.rgb, expected[..., :3])
    assert pixels.alpha is not None and np.array_equal(pixels.alpha, expected[..., 3])


def test_the_pixel_limit_is_checked_from_the_stored_header_before_rotation():
    jpeg = save(two_halves(), "JPEG", exif=with_orientation(6))
    assert decode(jpeg, max_pixels=160 * 80).shape == (160, 80, 3)
    hook = Identity()
    with pytest.raises(ImageTooLarge, match=r"image is 160x80 = 12800 pixels, over the limit"):
        stylise(MODEL, EncodedImage(jpeg), max_pixels=160 * 80 - 1, infer=hook)
    assert hook.seen == []


def test_unreadable_exif_counts_as_no_orientation():
    jpeg = save(two_halves(16, 8), "JPEG", exif=with_orientation(6))
    start = jpeg.index(b"Exif\x00\x00") + 6
    broken = jpeg[:start] + b"\x00" * 16 + jpeg[start + 16 :]
    assert decode(broken).shape == (8, 16, 3)


# -- 16-bit channels ----------------------------------------------------------------------

RAMP = np.linspace(0, 65535, 64).round().astype(np.uint16)[None].repeat(8, axis=0)  # [8, 64]


@pytest.mark.parametrize(
    ("color_type", "channels"), [(0, 1), (4, 2), (2, 3), (6, 4)], ids=["grey", "LA", "RGB", "RGBA"]
)
def test_a_16_bit_ramp_comes_back_as_an_8_bit_ramp(color_type, channels):
    values = np.repeat(RAMP[..., None], channels, axis=2)
    if channels in (2, 4):
        values[..., -1] = 65535  # opaque
    expected = (RAMP >> 8).astype(np.uint8)  # the high byte: 65535 → 255, 32896 → 128
    hook = Identity()
    out = run(png16(values, color_type), "raw", infer=hook)
    assert np.array_equal(hook.seen[0], np.repeat(expected[..., None], 3, axis=2))
    got = decode_image(out)[..., 0]
    assert np.array_equal(got, expected)
    assert len(np.unique(got)) > 60 and got[0, 0] == 0 and got[0, -1] == 255


def test_16_bit_grey_values_scale_by_the_high_byte():
    values = np.array([[0, 255, 256, 257 * 128, 32896, 65279, 65535, 257 * 7]], np.uint16)
    got = decode(png16(values[..., None], 0))[..., 0]
    assert got.tolist() == [[0, 0, 1, 128, 128, 254, 255, 7]]


# -- transparency -------------------------------------------------------------------------


def transparent_png(mode: str = "RGBA") -> tuple[bytes, np.ndarray]:
    """16x16: the left half fully transparent with a hidden red colour, the right half opaque
    blue, and one half-transparent black pixel; returns (PNG bytes, the alpha)."""
    pixels = np.zeros((16, 16, 4), np.uint8)
    pixels[:, :8] = (255, 0, 0, 0)
    pixels[:, 8:] = (0, 0, 255, 255)
    pixels[0, 15] = (0, 0, 0, 128)
    image = Image.fromarray(pixels)
    if mode == "LA":
        image = image.convert("LA")
    elif mode == "P":
        image = image.convert("RGB").quantize(4)
        palette = np.asarray(image)
        image.info["transparency"] = int(palette[0, 0])  # the hidden red's index
        pixels[0, 15, 3] = 255  # a palette transparency is all or nothing
    return save(image, "PNG"), pixels[..., 3]


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_pixels_never_show_their_hidden_colour(mode):
    data, alpha = transparent_png(mode)
    hook = Identity()
    out = run(data, "png", infer=hook)
    assert np.array_equal(hook.seen[0][:, :8], np.full((16, 8, 3), BACKGROUND, np.uint8))
    with open_output(out) as image:
        assert image.mode == "RGBA"
        assert np.array_equal(np.asarray(image)[..., 3], alpha)  # the alpha is put back


def test_png_and_webp_keep_alpha_and_jpeg_and_raw_are_what_it_shows_on_white():
    data, alpha = transparent_png()
    png = np.asarray(open_output(run(data, "png", infer=invert)))
    assert np.array_equal(png[..., 3], alpha)
    assert (png[1:, 8:, :3] == (255, 255, 0)).all()  # the opaque blue, inverted
    with open_output(run(data, "webp", infer=invert)) as image:
        assert image.mode == "RGBA" and np.array_equal(np.asarray(image)[..., 3], alpha)
    raw = decode_image(run(data, "raw", infer=invert))
    assert (raw[:, :8] == 255).all()  # fully transparent: the background, not stylised white
    assert (raw[1:, 8:] == (255, 255, 0)).all()
    on_white = imaging.flatten(png[..., :3], png[..., 3])
    assert np.array_equal(raw, on_white)
    jpeg = np.asarray(open_output(run(data, "jpeg", infer=invert))).astype(int)
    assert np.abs(jpeg - on_white).mean() < 10 and (jpeg[2:, :6] > 240).all()  # lossy edges


def test_half_transparent_black_over_white_is_mid_grey():
    assert imaging.flatten(
        np.zeros((1, 1, 3), np.uint8), np.full((1, 1), 128, np.uint8)
    ).tolist() == [[[127, 127, 127]]]


def test_alpha_is_downscaled_with_the_image():
    data, _ = transparent_png()
    with open_output(run(data, "png", max_side=8)) as image:
        assert image.size == (8, 8) and image.mode == "RGBA"
        alpha = np.asarray(image)[..., 3]
    assert (alpha[:, :3] <= 2).all() and (alpha[1:, 5:] >= 253).all()  # Lanczos rings a little


# -- error messages -----------------------------------------------------------------------

PNG = encoded_image(64, "PNG")
JPEG = encoded_image(64, "JPEG")
WEBP = encoded_image(64, "WEBP")
BAD_IMAGES = {
    "garbage": b"definitely not an image",
    "gif": save(Image.new("RGB", (16, 16)), "GIF"),
    "bmp": save(Image.new("RGB", (16, 16)), "BMP"),
    "truncated png": PNG[: len(PNG) // 2],
    "truncated jpeg": JPEG[: len(JPEG) // 3],
    "truncated webp": WEBP[: len(WEBP) // 2],
    "png signature only": PNG[:8],
    "png over our limit": png_header_only(30000, 30000),
    "png over pillow's guard": png_header_only(100_000, 100_000),
    "webp over pillow's guard": webp_header_only(16000, 16000),
}
LEAKS = ("object at 0x", "BytesIO", "PIL", "Pillow", str(Image.MAX_IMAGE_PIXELS),
         str(2 * Image.MAX_IMAGE_PIXELS), "Traceback", "Errno")  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_error_messages_name_the_problem_in_the_apis_terms(name):
    with pytest.raises(ImageError) as caught:
        decode(BAD_IMAGES[name], max_pixels=1000 * 1000)
    message = str(caught.value)
    assert not [leak for leak in LEAKS if leak in message], message
    assert "\n" not in message


def test_the_messages_say_what_is_wrong():
    limit = 4096 * 4096

    def message(data: bytes) -> str:
        with pytest.raises(ImageError) as caught:
            decode(data, max_pixels=limit)
        return str(caught.value)

    over = f"image is 30000x30000 = 900000000 pixels, over the limit of {limit}"
    assert message(png_header_only(30000, 30000)) == over
    assert message(png_header_only(100_000, 100_000)) == (
        f"image is 100000x100000 = 10000000000 pixels, over the limit of {limit}"
    )
    assert message(webp_header_only(16000, 16000)).startswith("image is 16000x16000 = ")
    assert message(BAD_IMAGES["garbage"]) == "not a decodable JPEG, PNG or WebP image"
    assert message(BAD_IMAGES["gif"]) == "not a decodable JPEG, PNG or WebP image"
    assert message(BAD_IMAGES["truncated png"]) == "corrupt or truncated PNG image"
    assert message(b"") == "empty image data"


def test_remote_clients_get_the_same_clean_messages(client):
    for data in (
        BAD_IMAGES["garbage"],
        BAD_IMAGES["truncated jpeg"],
        png_header_only(10**5, 10**5),
    ):
        with pytest.raises(ServerError) as caught:
            client.stylise(data, TINY_MODEL)
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        details = caught.value.details
        assert not [leak for leak in LEAKS if leak in details], details
    assert "over the limit of" in details and "100000x100000" in details


def _jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    ramp = np.linspace(0, 255, width, dtype=np.uint8)
    pixels = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2)
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    if orientation is None:
        image.save(buffer, format="JPEG", quality=85)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(buffer, format="JPEG", quality=85, exif=exif)
    return buffer.getvalue()


def test_a_large_jpeg_that_max_side_brings_under_the_limit_is_accepted() -> None:
    """A phone photo over max_pixels is served when the caller asks for max_side small enough:
    decoded at a reduced DCT scale (never at full size), then resized exactly."""
    from stylecast.serving.imaging import EncodedImage, StyliseOptions, read_file
    from stylecast.serving.pipeline import prepare

    data = _jpeg(2000, 1500, orientation=6)
    limit = 400 * 400
    drafted = read_file(data, max_pixels=limit, max_side=300)
    assert drafted.rgb.shape[0] * drafted.rgb.shape[1] <= 4 * limit  # never the full 3 MP
    prepared = prepare(EncodedImage(data), StyliseOptions(max_side=300), max_pixels=limit)
    assert prepared.content.shape[:2] == (300, 225)  # upright (orientation 6), longest 300
    with pytest.raises(ImageTooLarge, match="over the limit of 160000"):
        prepare(EncodedImage(data), StyliseOptions(max_side=1000), max_pixels=limit)
    with pytest.raises(ImageTooLarge, match="2000x1500 = 3000000 pixels"):
        prepare(EncodedImage(data), StyliseOptions(), max_pixels=limit)
