"""The one codec between API messages and images/options (serving.codec) and the one table of
encodings behind it (serving.imaging.ENCODINGS), with no server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from serving_fixtures import encoded_image

from stylecast.errors import StylecastError
from stylecast.image_rules import IMAGE_SUFFIXES
from stylecast.serving.codec import (
    BadRequest,
    decode_image_message,
    encoding_enum,
    image_from_message,
    message_from_image,
    options_from_message,
    request_image,
    request_options,
)
from stylecast.serving.imaging import (
    ENCODINGS,
    EncodedImage,
    ImageError,
    OutputFormat,
    StyliseOptions,
    decode,
    encode_image,
    encoding_for_suffix,
)
from stylecast.v1 import stylise_pb2 as pb


def test_the_encoding_table_covers_the_proto_enum_and_the_image_suffixes():
    in_table = {encoding_enum(name) for name in ENCODINGS}
    assert in_table == set(pb.Encoding.values()) - {pb.ENCODING_UNSPECIFIED}
    suffixes = [suffix for encoding in ENCODINGS.values() for suffix in encoding.suffixes]
    assert sorted(suffixes) == sorted(IMAGE_SUFFIXES)  # each suffix names exactly one encoding
    assert [encoding_for_suffix(s) for s in (".PNG", ".jpeg", ".webp", ".tiff")] == [
        "png", "jpeg", "webp", "jpeg",
    ]  # fmt: skip
    with pytest.raises(StylecastError, match="unknown encoding 'gif'"):
        encoding_enum("gif")


def test_unspecified_means_detect_on_input_and_jpeg_on_output():
    png = encoded_image(40, "PNG")
    message = request_image(png)
    assert message.encoding == pb.ENCODING_UNSPECIFIED
    assert image_from_message(message) == EncodedImage(png)  # encoding None: detect
    assert decode_image_message(message).shape == decode(png).shape
    options, output = options_from_message(pb.StyliseOptions(), default_quality=90)
    assert (options, output) == (StyliseOptions(), OutputFormat("jpeg", 90))


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_reply_images_round_trip_through_messages(name):
    image = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    encoded = encode_image(image, OutputFormat(name, 95))
    message = message_from_image(encoded)
    assert message.encoding == encoding_enum(name) != pb.ENCODING_UNSPECIFIED
    assert (message.width, message.height) == (20, 12)
    assert image_from_message(message) == encoded
    back = decode_image_message(message)
    assert back.shape == image.shape
    if name in ("png", "raw"):
        assert np.array_equal(back, image)


def test_request_images_from_bytes_files_and_arrays(tmp_path: Path):
    jpeg = encoded_image(32)
    (tmp_path / "in.jpg").write_bytes(jpeg)
    assert request_image(tmp_path / "in.jpg") == request_image(jpeg) == pb.Image(data=jpeg)
    array = decode(jpeg)
    raw = request_image(array)
    assert raw.encoding == pb.ENCODING_RAW_RGB
    assert (raw.width, raw.height, len(raw.data)) == (array.shape[1], array.shape[0], array.size)
    assert np.array_equal(decode_image_message(raw), array)
    with pytest.raises(ImageError, match="uint8 RGB array"):
        request_image(np.zeros((4, 4), dtype=np.uint8))


def test_options_both_ways():
    message = request_options(0.25, True, 64, "webp", 70)
    options, output = options_from_message(message, default_quality=90)
    assert options == StyliseOptions(strength=0.25, preserve_color=True, max_side=64)
    assert output == OutputFormat("webp", 70)
    assert not request_options().HasField("strength")  # unset: the server's default, 1.0
    with pytest.raises(BadRequest, match="unknown output encoding 99"):
        options_from_message(pb.StyliseOptions(output_encoding=99), 90)
    with pytest.raises(ImageError, match="quality"):
        options_from_message(pb.StyliseOptions(quality=101), 90)
