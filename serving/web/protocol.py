"""The camera page's WebSocket protocol, as bytes and JSON, with no web library in it.

The page opens ``/api/stream`` and sends, in order:

- one text message, the hello: ``{"type": "hello", "token": "..."}`` (the token only when the
  server asks for one; ``GET /api/info`` says whether it does). The server answers
  ``{"type": "hello", "max_in_flight": 2, ...}`` or an error and closes.
- frames, each one binary message: a 4-byte big-endian header length, the header (UTF-8 JSON),
  then the encoded image (JPEG, PNG or WebP). The header:

      {"seq": 7, "model": "starry_night_lite", "strength": 1.0, "preserve_color": false,
       "max_side": 640, "format": "jpeg", "quality": 85,
       "mix": {"starry_night": 0.7, "great_wave": 0.3}}       # multi-style models only

  Only ``seq`` and ``model`` are required; the rest default as in ``stylecast stylise``.
  ``style`` (one style by name) or ``mix`` apply to multi-style models only; a single-style
  model refuses them (INVALID_ARGUMENT), so the page sends neither when the model lists no
  styles.

The server answers each frame it stylises with one binary message of the same layout (header
``{"type": "frame", "seq", "model", "version", "width", "height", "dropped": [...],
"timings": {"decode_ms", "queue_ms", "inference_ms", "encode_ms", "total_ms"}}``, then the
image), and each frame it cannot with a text message
``{"type": "error", "code": "INVALID_ARGUMENT", "message": "...", "seq": 7, "fatal": false}``;
codes are the gRPC API's status names. A fatal error closes the connection. Frames that
arrive while one is being stylised wait at most one deep: older ones are dropped (listed in
the next reply's ``dropped``), so a slow model drops frames instead of building a queue.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

from ..codec import BadRequest
from ..imaging import DEFAULT_ENCODING, FILE_ENCODINGS, EncodedImage, OutputFormat, StyliseOptions
from ..pipeline import Stylised

HEADER_LENGTH = struct.Struct(">I")
MAX_HEADER_BYTES = 16 * 1024
MAX_IN_FLIGHT = 2  # frames a page may have sent and not yet had answered
WEB_QUALITY = 85  # JPEG/WebP quality of replies unless a frame asks for another


@dataclass(frozen=True)
class FrameRequest:
    """One frame from the page: its sequence number, model, options and reply format."""

    seq: int
    model: str
    image: EncodedImage
    options: StyliseOptions
    output: OutputFormat


def split_message(data: bytes) -> tuple[dict[str, Any], bytes]:
    """A binary message as (header, payload); BadRequest if it is not one."""
    if len(data) < HEADER_LENGTH.size:
        raise BadRequest("a frame must start with a 4-byte header length")
    (length,) = HEADER_LENGTH.unpack_from(data)
    if length > MAX_HEADER_BYTES or HEADER_LENGTH.size + length > len(data):
        raise BadRequest(f"bad frame header length {length}")
    raw = data[HEADER_LENGTH.size : HEADER_LENGTH.size + length]
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("a frame header must be a JSON object") from None
    if not isinstance(header, dict):
        raise BadRequest("a frame header must be a JSON object")
    return header, data[HEADER_LENGTH.size + length :]


def join_message(header: dict[str, Any], payload: bytes) -> bytes:
    """A header and payload as one binary message (``split_message``'s inverse)."""
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return HEADER_LENGTH.pack(len(raw)) + raw + payload


def frame_sequence(header: dict[str, Any]) -> int:
    """The frame's ``seq`` (an integer >= 0); BadRequest otherwise."""
    seq = header.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise BadRequest(f"frame seq must be an integer >= 0 (got {seq!r})")
    return seq


def _field(header: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any) -> Any:
    """A header field of type ``kind`` (``default`` when absent or null); BadRequest otherwise.
    A JSON true/false is a bool, never a number."""
    value = header.get(name)
    if value is None:
        return default
    fits = isinstance(value, bool) if kind is bool else not isinstance(value, bool)
    if not (fits and isinstance(value, kind)):
        raise BadRequest(f"frame field {name!r} has the wrong type (got {value!r})")
    return value


def _mix(header: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    mix = header.get("mix") or {}
    if not isinstance(mix, dict):
        raise BadRequest("frame field 'mix' must be an object {style: weight}")
    pairs = []
    for name, weight in mix.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise BadRequest(f"style mix weight of {name!r} must be a number (got {weight!r})")
        pairs.append((str(name), float(weight)))
    return tuple(pairs)


def parse_frame(data: bytes) -> FrameRequest:
    """A binary frame message as a FrameRequest; BadRequest (or ImageError for an option out
    of range) when a field is missing or wrong. The image bytes are not decoded here."""
    header, payload = split_message(data)
    seq = frame_sequence(header)
    model = _field(header, "model", str, "")
    if not model:
        raise BadRequest("a frame must name a model")
    strength = float(_field(header, "strength", (int, float), 1.0))
    if not math.isfinite(strength):
        raise BadRequest("frame field 'strength' must be a finite number")
    options = StyliseOptions(
        strength=strength,
        preserve_color=_field(header, "preserve_color", bool, False),
        max_side=_field(header, "max_side", int, 0),
        style=_field(header, "style", str, ""),
        mix=_mix(header),
    )
    encoding = _field(header, "format", str, DEFAULT_ENCODING)
    if encoding not in FILE_ENCODINGS:
        raise BadRequest(f"frame format must be one of {', '.join(FILE_ENCODINGS)}")
    output = OutputFormat(encoding, _field(header, "quality", int, WEB_QUALITY))
    if not payload:
        raise BadRequest("the frame holds no image bytes")
    return FrameRequest(seq, model, EncodedImage(payload), options, output)


def reply_message(
    request: FrameRequest, result: Stylised, version: int, dropped: list[int], total_s: float
) -> bytes:
    """The binary reply to one stylised frame."""
    t = result.timings
    header = {
        "type": "frame",
        "seq": request.seq,
        "model": request.model,
        "version": version,
        "width": result.image.width,
        "height": result.image.height,
        "dropped": dropped,
        "timings": {
            "decode_ms": round(t.decode_s * 1000, 2),
            "queue_ms": round(t.queue_s * 1000, 2),
            "inference_ms": round(t.inference_s * 1000, 2),
            "encode_ms": round(t.encode_s * 1000, 2),
            "total_ms": round(total_s * 1000, 2),
        },
    }
    return join_message(header, result.image.data)


def error_message(code: str, message: str, seq: int | None = None, fatal: bool = False) -> str:
    """A text error message in the API's terms (a gRPC status name and one line)."""
    line = " ".join(message.split())
    return json.dumps({"type": "error", "code": code, "message": line, "seq": seq, "fatal": fatal})


def parse_hello(text: str) -> str:
    """The token of a hello message ("" when none); BadRequest if it is not a hello."""
    try:
        hello = json.loads(text)
    except ValueError:
        hello = None
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        raise BadRequest('the first message must be a hello: {"type": "hello", "token": "..."}')
    token = hello.get("token") or ""
    if not isinstance(token, str):
        raise BadRequest("the hello's token must be a string")
    return token
