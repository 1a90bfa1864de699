"""A small Python client for the Stylecast gRPC API (stylecast.v1).

    from stylecast.serving.codec import decode_image_message, request_options

    with StylecastClient("localhost:50051") as client:
        reply = client.stylise(Path("photo.jpg"), "starry_night", request_options(strength=0.8))
        Path("out.jpg").write_bytes(reply.image.data)  # JPEG unless the options ask otherwise
        array = decode_image_message(reply.image)  # RGB uint8 [H, W, 3]

Replies are the protobuf messages documented in proto/stylecast/v1/stylise.proto; every
conversion between them and images or options is in serving.codec. gRPC errors become
``ServerError`` (a StylecastError with the status code), so the CLI prints them as one line.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stylecast.errors import ServerFailed
from stylecast.v1 import stylise_pb2 as pb
from stylecast.v1 import stylise_pb2_grpc as pb_grpc

from .auth import bearer_metadata
from .codec import ImageInput, request_image

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
ROUND_ROBIN = "round_robin"  # gRPC's per-call policy over every address a target resolves to


class ServerError(ServerFailed):
    """A call failed; ``code`` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def _server_error(exc: grpc.RpcError) -> ServerError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return ServerError(code, details or code.name.lower())


class StylecastClient:
    """A connection to a Stylecast server.

    ``token``: bearer token sent with every call. ``root_certificates`` (PEM) or ``tls=True``
    (system roots): connect with TLS; ``client_key`` and ``client_cert`` (PEM) add a client
    certificate for servers that require one. ``timeout``: default deadline of unary calls.

    ``load_balancing``: gRPC's load-balancing policy (channel option ``grpc.lb_policy_name``),
    e.g. ``"round_robin"``: with a ``dns:///host:port`` target naming several addresses (a
    Kubernetes headless Service), every call goes to the next one instead of all to one
    connection. None: ``round_robin`` for ``dns:///`` targets, gRPC's default (``pick_first``)
    otherwise.
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
        load_balancing: str | None = None,
    ) -> None:
        if load_balancing is None and target.startswith("dns:///"):
            load_balancing = ROUND_ROBIN
        channel_options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            *((("grpc.lb_policy_name", load_balancing),) if load_balancing else ()),
            *options,
        ]
        self.channel_options = tuple(channel_options)
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
        """Stylise one image: encoded bytes, a file, or an RGB array (``codec.request_image``);
        ``options`` from ``codec.request_options``."""
        request = pb.StyliseRequest(model=model, image=request_image(image), options=options)
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
                    request = pb.StyliseStreamRequest(sequence=sequence, image=request_image(image))
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
