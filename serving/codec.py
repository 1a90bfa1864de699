"""The one codec between stylecast.v1 protobuf messages and the transport-free values of
serving.imaging and serving.pipeline, shared by the server, the client, the camera, the demo
and the CLI.

- Encodings: the table ``imaging.ENCODINGS`` bound to the ``Encoding`` enum.
  ENCODING_UNSPECIFIED means "detect from the bytes" on input and JPEG on output.
- Images: ``image_from_message`` and ``message_from_image`` (the two directions, either
  side); ``request_image`` (what a client sends: bytes, a file or an array);
  ``decode_image_message`` (any Image message, typically a reply, as an RGB array).
- Options: ``options_from_message`` (server) and ``request_options`` (client).
- Replies: ``timings_message`` and ``card_message`` (server).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from stylecast.errors import StylecastError
from stylecast.v1 import stylise_pb2 as pb

from .imaging import (
    DEFAULT_ENCODING,
    ENCODINGS,
    EncodedImage,
    OutputFormat,
    StyliseOptions,
    decode_image,
    raw_image,
)

if TYPE_CHECKING:
    from .pipeline import Timings
    from .runtime import StyleModel

REPLY_MAX_PIXELS = 1 << 31  # a client trusts the size of what its server sends back
ImageInput = bytes | np.ndarray | Path

_ENUM_BY_NAME = {
    name: cast("pb.Encoding", pb.Encoding.Value(encoding.proto))
    for name, encoding in ENCODINGS.items()
}
_NAME_BY_ENUM: dict[int, str] = {enum: name for name, enum in _ENUM_BY_NAME.items()}


class BadRequest(StylecastError):
    """A request field is missing or out of range (maps to INVALID_ARGUMENT)."""


# -- encodings ------------------------------------------------------------------------------


def encoding_enum(name: str) -> pb.Encoding:
    """The ``Encoding`` enum value of an encoding name ("jpeg", "png", "webp", "raw")."""
    try:
        return _ENUM_BY_NAME[name]
    except KeyError:
        raise StylecastError(
            f"unknown encoding {name!r}; choose from {sorted(_ENUM_BY_NAME)}"
        ) from None


def output_encoding(enum: int) -> str:
    """The encoding name a reply is asked for in; ENCODING_UNSPECIFIED means JPEG."""
    if enum == pb.ENCODING_UNSPECIFIED:
        return DEFAULT_ENCODING
    name = _NAME_BY_ENUM.get(enum)
    if name is None:
        raise BadRequest(f"unknown output encoding {enum}")
    return name


# -- images ---------------------------------------------------------------------------------


def image_from_message(message: pb.Image) -> EncodedImage:
    """An Image message as an EncodedImage. Any encoding but raw RGB (ENCODING_UNSPECIFIED
    included) is a file whose format is detected from its bytes when it is decoded."""
    encoding = _NAME_BY_ENUM.get(message.encoding)  # None: unspecified (or unknown): detect
    return EncodedImage(message.data, encoding, message.width, message.height)


def message_from_image(image: EncodedImage) -> pb.Image:
    """An EncodedImage as an Image message (a reply's image, or a request's)."""
    enum = pb.ENCODING_UNSPECIFIED if image.encoding is None else encoding_enum(image.encoding)
    return pb.Image(data=image.data, encoding=enum, width=image.width, height=image.height)


def request_image(image: ImageInput) -> pb.Image:
    """What a client sends: encoded bytes (JPEG, PNG or WebP) or a file as they are, with
    ENCODING_UNSPECIFIED (the server detects the format); an RGB uint8 array [H, W, 3] as
    raw RGB."""
    if isinstance(image, Path):
        image = image.read_bytes()
    if isinstance(image, bytes | bytearray | memoryview):
        return message_from_image(EncodedImage(bytes(image)))
    return message_from_image(raw_image(np.asarray(image)))


def decode_image_message(message: pb.Image, max_pixels: int = REPLY_MAX_PIXELS) -> np.ndarray:
    """Any Image message (typically a reply) as an RGB uint8 array [H, W, 3]."""
    return decode_image(image_from_message(message), max_pixels)


# -- options --------------------------------------------------------------------------------


def options_from_message(
    message: pb.StyliseOptions, default_quality: int
) -> tuple[StyliseOptions, OutputFormat]:
    """Request options → (pipeline options, output format). Out-of-range values raise
    ImageError or BadRequest (INVALID_ARGUMENT)."""
    strength = message.strength if message.HasField("strength") else 1.0
    options = StyliseOptions(
        strength=strength,
        preserve_color=message.preserve_color,
        max_side=message.max_side,
        style=message.style,
        mix=tuple(sorted(message.style_mix.items())),
    )
    encoding = output_encoding(message.output_encoding)
    return options, OutputFormat(encoding, message.quality or default_quality)


def request_options(
    strength: float | None = None,
    preserve_color: bool = False,
    max_side: int = 0,
    encoding: str = DEFAULT_ENCODING,
    quality: int = 0,
    style: str = "",
    mix: dict[str, float] | None = None,
) -> pb.StyliseOptions:
    """A request's StyliseOptions from plain values (``encoding``: jpeg, png, webp or raw;
    ``strength`` None and ``quality`` 0: the server's defaults; ``style`` or ``mix``: a
    multi-style model's style or blend, none: its first style)."""
    options = pb.StyliseOptions(
        preserve_color=preserve_color,
        max_side=max_side,
        output_encoding=encoding_enum(encoding),
        quality=quality,
        style=style,
        style_mix=mix or {},
    )
    if strength is not None:
        options.strength = strength
    return options


# -- replies --------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def timings_message(timings: Timings, total_s: float) -> pb.Timings:
    """A reply's Timings: the pipeline's, plus ``total_s`` from the request to the reply."""
    return pb.Timings(
        decode_ms=_ms(timings.decode_s),
        queue_ms=_ms(timings.queue_s),
        inference_ms=_ms(timings.inference_s),
        encode_ms=_ms(timings.encode_s),
        total_ms=_ms(total_s),
    )


def card_message(model: StyleModel, thumbnail: bool = True) -> pb.ModelCard:
    """The model card of a loaded model as a ModelCard message. The served version's
    precision is the one really served (``StyleModel.served_precision``: TensorRT may serve
    an fp32 export in fp16), not the export's."""
    card = model.card
    versions = [
        pb.ModelVersion(
            version=int(number),
            precision=model.served_precision if int(number) == model.version else info.precision,
            opset=info.opset,
            created=info.created,
            sha256=info.sha256,
            parity_passed=bool(info.parity.get("passed", False)),
        )
        for number, info in sorted(card.versions.items(), key=lambda item: int(item[0]))
    ]
    losses = {}
    for name, value in card.final_losses.items():
        try:
            losses[name] = float(value)
        except (TypeError, ValueError):
            continue
    return pb.ModelCard(
        name=card.name,
        version=model.version,
        latest_version=max((v.version for v in versions), default=card.version),
        versions=versions,
        provider=model.provider,
        description=card.description,
        testing_only=card.testing_only,
        style_image=card.style_image,
        style_sha256=card.style_sha256,
        style_thumbnail=card.style_thumbnail if thumbnail else "",
        vgg_weights=card.vgg_weights,
        final_losses=losses,
        train_config_json=json.dumps(card.train_config, sort_keys=True),
        train_command=card.train_command,
        exporter=card.exporter,
        io_json=json.dumps(card.io, sort_keys=True),
        styles=[
            pb.Style(
                name=style.name,
                image=style.image,
                sha256=style.sha256,
                thumbnail=style.thumbnail if thumbnail else "",
            )
            for style in card.styles
        ],
    )
