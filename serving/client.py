"""A small Python client for the Stylecast gRPC API (stylecast.v1).

    with StylecastClient("localhost:50051") as client:
        reply = client.stylise(Path("photo.jpg").read_bytes(), "starry_night")
        Path("out.jpg").write_bytes(reply.image.data)

Replies are the protobuf messages documented in proto/stylecast/v1/stylise.proto; ``to_array``
turns a reply image into an RGB array. gRPC errors become ``ServerError`` (a StylecastError with
the status code), so the CLI prints them as one line.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stylecast.errors import StylecastError
from stylecast.v1 import stylise_pb2 as pb
from stylecast.v1 import stylise_pb2_grpc as pb_grpc

from .auth import bearer_metadata
from .imaging import decode

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
REPLY_MAX_PIXELS = 1 << 31  # the server enforces its own limit; trust what it sends back
ENCODINGS = {
    "jpeg": pb.ENCODING_JPEG,
    "png": pb.ENCODING_PNG,
    "webp": pb.ENCODING_WEBP,
    "raw": pb.ENCODING_RAW_RGB,
}
ImageInput = bytes | np.ndarray | Path


class ServerError(StylecastError):
    """A call failed; ``code`` is the gRPC status code."""

    exit_code = 1

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def _server_error(exc: grpc.RpcError) -> ServerError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return ServerError(code, details or code.name.lower())


def make_options(
    strength: float | None = None,
    preserve_color: bool = False,
    max_side: int = 0,
    encoding: str = "jpeg",
    quality: int = 0,
) -> pb.StyliseOptions:
    """StyliseOptions from plain values (``encoding``: jpeg, png, webp or raw)."""
    if encoding not in ENCODINGS:
        raise StylecastError(f"unknown encoding {encoding!r}; choose from {sorted(ENCODINGS)}")
    options = pb.StyliseOptions(
        preserve_color=preserve_color,
        max_side=max_side,
        output_encoding=ENCODINGS[encoding],
        quality=quality,
    )
    if strength is not None:
        options.strength = strength
    return options


def image_message(image: ImageInput) -> pb.Image:
    """Encoded bytes (JPEG/PNG/WebP) or a file are sent as they are; an RGB uint8 array
    [H, W, 3] is sent as raw RGB."""
    if isinstance(image, Path):
        image = image.read_bytes()
    if isinstance(image, bytes | bytearray | memoryview):
        return pb.Image(data=bytes(image))
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise StylecastError(
            f"expected a uint8 RGB array [H, W, 3], got {array.dtype} {array.shape}"
        )
    height, width = array.shape[:2]
    return pb.Image(
        data=np.ascontiguousarray(array).tobytes(),
        encoding=pb.ENCODING_RAW_RGB,
        width=width,
        height=height,
    )


def to_array(image: pb.Image) -> np.ndarray:
    """A reply image as an RGB uint8 array [H, W, 3]."""
    if image.encoding == pb.ENCODING_RAW_RGB:
        return np.frombuffer(image.data, dtype=np.uint8).reshape(image.height, image.width, 3)
    return decode(image.data, max_pixels=REPLY_MAX_PIXELS)


class StylecastClient:
    """A connection to a Stylecast server.

    ``token``: bearer token sent with every call. ``root_certificates`` (PEM) or ``tls=True``
    (system roots): connect with TLS; ``client_key`` and ``client_cert`` (PEM) add a client
    certificate for servers that require one. ``timeout``: default deadline of unary calls.
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        client_key: bytes | None = None,
        client_cert: bytes | None = None,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        options: Iterable[tuple[str, Any]] = (),
    ) -> None:
        channel_options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            *options,
        ]
        if tls or root_certificates or client_cert:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=root_certificates,
                private_key=client_key,
                certificate_chain=client_cert,
            )
            self.channel = grpc.secure_channel(target, credentials, options=channel_options)
        else:
            self.channel = grpc.insecure_channel(target, options=channel_options)
        self.target = target
        self.timeout = timeout
        self.metadata = bearer_metadata(token)
        self.stub = pb_grpc.StylecastStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> StylecastClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise _server_error(exc) from None

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the channel connects, or raise ServerError(UNAVAILABLE)."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ServerError(
                grpc.StatusCode.UNAVAILABLE, f"no server at {self.target} after {timeout:.0f} s"
            ) from None

    def stylise(
        self,
        image: ImageInput,
        model: str,
        options: pb.StyliseOptions | None = None,
        timeout: float | None = None,
    ) -> pb.StyliseResponse:
        """Stylise one image (see ``image_message`` for the accepted inputs)."""
        request = pb.StyliseRequest(model=model, image=image_message(image), options=options)
        return self._call(self.stub.Stylise, request, timeout)

    def models(self, include_thumbnails: bool = False) -> list[pb.ModelCard]:
        """The cards of the loaded models."""
        request = pb.ListModelsRequest(include_thumbnails=include_thumbnails)
        return list(self._call(self.stub.ListModels, request, None).models)

    def model(self, name: str) -> pb.ModelCard:
        """One model's card (with its thumbnail)."""
        return self._call(self.stub.GetModel, pb.GetModelRequest(name=name), None).model

    def reload(self) -> pb.ReloadModelsResponse:
        """Ask the server to rescan its model repository now."""
        return self._call(self.stub.ReloadModels, pb.ReloadModelsRequest(), None)

    def health(self, service: str = "") -> str:
        """The standard health status of ``service`` ("" = the server; a model:
        "stylecast.v1.Stylecast/<name>"), e.g. "SERVING"."""
        request = health_pb2.HealthCheckRequest(service=service)
        reply = self._call(self._health.Check, request, None)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def stream(
        self,
        frames: Iterable[tuple[int, ImageInput]],
        model: str,
        options: pb.StyliseOptions | None = None,
        max_pending: int = 1,
        max_in_flight: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[pb.StyliseStreamResponse]:
        """Stream ``(sequence, image)`` frames through StyliseStream; yields the replies.

        ``max_in_flight``: send a frame only while fewer than this many are unanswered (a
        frame counts as answered by its reply or by being listed as dropped); None sends as
        fast as ``frames`` produces them. A frame is pulled from ``frames`` only when it may
        be sent, so a camera source delivers fresh frames. With ``max_in_flight <=
        max_pending`` the server never drops a frame.
        """
        window = threading.Semaphore(max_in_flight) if max_in_flight else None
        stop = threading.Event()
        failure: list[BaseException] = []

        def requests() -> Iterator[pb.StyliseStreamRequest]:
            source = iter(frames)
            first = True
            try:
                while not stop.is_set():
                    if window is not None and not window.acquire(timeout=0.1):
                        continue
                    try:
                        sequence, image = next(source)
                    except StopIteration:
                        return
                    request = pb.StyliseStreamRequest(sequence=sequence, image=image_message(image))
                    if first:
                        request.model, request.max_pending, first = model, max_pending, False
                        if options is not None:
                            request.options.CopyFrom(options)
                    yield request
            except Exception as exc:  # surfaced to the caller instead of a bare CANCELLED
                failure.append(exc)
                raise

        call = self.stub.StyliseStream(requests(), timeout=timeout, metadata=self.metadata)
        try:
            for reply in call:
                if window is not None:
                    for _ in range(1 + len(reply.dropped)):
                        window.release()
                yield reply
        except grpc.RpcError as exc:
            if failure:
                raise failure[0] from None
            raise _server_error(exc) from None
        finally:
            stop.set()
            call.cancel()
        if failure:
            raise failure[0]
