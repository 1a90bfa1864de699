"""The gRPC server (`stylecast serve`): the stylecast.v1.Stylecast servicer on the onnxruntime
model repository, plus standard health, reflection, Prometheus metrics, limits, optional TLS
and bearer tokens, hot model reload and graceful shutdown.

Status codes: unknown model → NOT_FOUND; anything wrong with the image or options (including
more pixels than ``max_pixels``: retrying cannot help, so it is not RESOURCE_EXHAUSTED) →
INVALID_ARGUMENT; inference limit and queue full, too many streams, or a message over
``max_message_bytes`` (gRPC's own check) → RESOURCE_EXHAUSTED; deadline passed →
DEADLINE_EXCEEDED; missing token → UNAUTHENTICATED; anything else → INTERNAL with the
traceback in the server log only.

Health service names: "" and "stylecast.v1.Stylecast" are SERVING while at least one model is
loaded; "stylecast.v1.Stylecast/<model>" is SERVING while that model is loaded (NOT_SERVING
after it is removed). Everything turns NOT_SERVING when shutdown begins.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from stylecast.errors import StylecastError
from stylecast.v1 import stylise_pb2 as pb
from stylecast.v1 import stylise_pb2_grpc as pb_grpc

from .auth import TokenAuthInterceptor
from .imaging import ImageError, StyliseOptions, decode, downscale, encode, from_raw
from .limits import POLL_S, CallAbandoned, InferenceLimiter, LatestFrames, Overloaded
from .metrics import ServerMetrics
from .model_card import MIN_SIDE
from .repository import ModelNotFound, ModelRepository, ReloadReport
from .runtime import RuntimeOptions, StyleModel
from .watcher import ModelWatcher

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Stylecast"].full_name  # "stylecast.v1.Stylecast"
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
OUTPUT_ENCODINGS = {
    pb.ENCODING_UNSPECIFIED: "jpeg",
    pb.ENCODING_JPEG: "jpeg",
    pb.ENCODING_PNG: "png",
    pb.ENCODING_WEBP: "webp",
    pb.ENCODING_RAW_RGB: "raw",
}
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def model_health_name(model: str) -> str:
    """The health-service name of one model: ``stylecast.v1.Stylecast/<model>``."""
    return f"{SERVICE_NAME}/{model}"


@dataclass(frozen=True)
class ServerConfig:
    """Every server setting, with safe defaults (`stylecast serve --help` lists the flags)."""

    models_dir: str = "models"
    host: str = "0.0.0.0"
    port: int = 50051  # 0: an ephemeral port (read StylecastServer.port)
    workers: int = 32  # gRPC handler threads; also the limit on concurrent RPCs
    max_streams: int = 8  # open StyliseStream calls (each holds a handler thread)
    max_concurrent_inferences: int = 2
    max_queue: int = 16  # calls waiting for an inference slot; more get RESOURCE_EXHAUSTED
    max_queue_wait_s: float = 30.0
    max_message_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 3840 * 2160  # per input image (4K UHD)
    min_side: int = MIN_SIDE  # the exported graphs accept MIN_SIDE pixels and more per side
    stream_max_pending: int = 4  # cap on a stream's max_pending
    default_quality: int = 90
    reload_interval_s: float = 5.0  # 0: reload only on ReloadModels / SIGHUP
    grace_s: float = 10.0  # shutdown: time for in-flight calls to finish
    metrics_port: int | None = None  # None: no metrics endpoint; 0: an ephemeral port
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None  # set: clients must present a certificate it signed
    auth_tokens: tuple[str, ...] = ()  # empty: no authentication
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)

    def __post_init__(self) -> None:
        positive = (
            "workers",
            "max_streams",
            "max_concurrent_inferences",
            "max_message_bytes",
            "max_pixels",
            "min_side",
            "stream_max_pending",
            "max_queue_wait_s",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise StylecastError(f"{name} must be > 0 (got {getattr(self, name)})")
        if self.max_queue < 0 or self.reload_interval_s < 0 or self.grace_s < 0:
            raise StylecastError("max_queue, reload_interval_s and grace_s must be >= 0")
        if self.max_streams >= self.workers:
            raise StylecastError(
                f"max_streams ({self.max_streams}) must be below workers ({self.workers}) so "
                "single-image calls and health checks always find a thread"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise StylecastError("TLS needs both a certificate and a key file")
        if self.tls_client_ca and not self.tls_cert:
            raise StylecastError("a client CA (mutual TLS) needs a server certificate and key")
        if not 1 <= self.default_quality <= 100:
            raise StylecastError(
                f"default_quality must be in [1, 100] (got {self.default_quality})"
            )


class BadRequest(StylecastError):
    """A request field is missing or out of range (maps to INVALID_ARGUMENT)."""


@dataclass
class _CallRecord:
    """What the metrics need to know about one RPC."""

    method: str
    model: str = ""
    code: grpc.StatusCode = grpc.StatusCode.OK
    start: float = field(default_factory=time.perf_counter)


@dataclass
class _Stylised:
    """A stylised image and where the time went (seconds)."""

    image: pb.Image
    decode_s: float
    queue_s: float
    inference_s: float
    encode_s: float


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def parse_options(
    message: pb.StyliseOptions, default_quality: int
) -> tuple[StyliseOptions, str, int]:
    """Request options → (StyliseOptions, output encoding name, quality)."""
    strength = message.strength if message.HasField("strength") else 1.0
    options = StyliseOptions(
        strength=strength, preserve_color=message.preserve_color, max_side=message.max_side
    )
    encoding = OUTPUT_ENCODINGS.get(message.output_encoding)
    if encoding is None:
        raise BadRequest(f"unknown output encoding {message.output_encoding}")
    quality = message.quality or default_quality
    if not 1 <= quality <= 100:
        raise BadRequest(f"quality must be in [1, 100] (got {quality})")
    return options, encoding, quality


def image_message(image: np.ndarray, encoding: str, quality: int) -> pb.Image:
    """An RGB array as a reply Image (encoded, or raw RGB)."""
    height, width = image.shape[:2]
    if encoding == "raw":
        data, enum = np.ascontiguousarray(image).tobytes(), pb.ENCODING_RAW_RGB
    else:
        data = encode(image, encoding, quality)
        enum = {"jpeg": pb.ENCODING_JPEG, "png": pb.ENCODING_PNG, "webp": pb.ENCODING_WEBP}[
            encoding
        ]
    return pb.Image(data=data, encoding=enum, width=width, height=height)


def card_message(model: StyleModel, thumbnail: bool = True) -> pb.ModelCard:
    """The model card of a loaded model as a protobuf message."""
    card = model.card
    versions = [
        pb.ModelVersion(
            version=int(number),
            precision=info.precision,
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
    )


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status for an exception raised while handling a call."""
    if isinstance(exc, ModelNotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, ImageError | BadRequest):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, Overloaded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, CallAbandoned):
        code = grpc.StatusCode.DEADLINE_EXCEEDED if exc.deadline else grpc.StatusCode.CANCELLED
        return code, str(exc)
    log.error("internal error while handling a call", exc_info=exc)
    return grpc.StatusCode.INTERNAL, "internal server error (details are in the server log)"


class StylecastServicer(pb_grpc.StylecastServicer):
    """The stylecast.v1.Stylecast methods on a model repository."""

    def __init__(
        self,
        repository: ModelRepository,
        watcher: ModelWatcher,
        config: ServerConfig,
        metrics: ServerMetrics,
    ) -> None:
        self.repository = repository
        self.watcher = watcher
        self.config = config
        self.metrics = metrics
        self.limiter = InferenceLimiter(
            config.max_concurrent_inferences, config.max_queue, config.max_queue_wait_s
        )
        metrics.inferences_running.set_function(lambda: self.limiter.running)
        metrics.inference_queue.set_function(lambda: self.limiter.waiting)
        self._streams = threading.BoundedSemaphore(config.max_streams)

    # -- bookkeeping ----------------------------------------------------------------------

    def _begin(self, method: str) -> _CallRecord:
        self.metrics.in_flight.labels(method).inc()
        return _CallRecord(method)

    def _end(self, call: _CallRecord) -> None:
        self.metrics.in_flight.labels(call.method).dec()
        self.metrics.requests.labels(call.method, call.model, call.code.name).inc()
        self.metrics.latency.labels(call.method, call.model).observe(
            time.perf_counter() - call.start
        )

    def _unary(
        self, method: str, context: grpc.ServicerContext, work: Callable[[_CallRecord], Any]
    ) -> Any:
        """Run ``work`` with metrics; turn any exception into a clean status."""
        call = self._begin(method)
        try:
            try:
                return work(call)
            except Exception as exc:
                call.code, message = status_of(exc)
        finally:
            self._end(call)
        context.abort(call.code, message)

    # -- the pipeline -----------------------------------------------------------------------

    def _decode(self, image: pb.Image, options: StyliseOptions) -> np.ndarray:
        """Request image → RGB array, downscaled to max_side, checked against the limits."""
        if image.encoding == pb.ENCODING_RAW_RGB:
            array = from_raw(image.data, image.width, image.height, self.config.max_pixels)
        else:
            array = decode(image.data, self.config.max_pixels)
        array = downscale(array, options.max_side)
        height, width = array.shape[:2]
        if min(height, width) < self.config.min_side:
            raise ImageError(
                f"image is {width}x{height}; the network needs at least {self.config.min_side} "
                "pixels on each side"
            )
        return array

    def _infer(
        self,
        method: str,
        model: StyleModel,
        image: np.ndarray,
        options: StyliseOptions,
        context: grpc.ServicerContext,
        run_options: ort.RunOptions,
    ) -> tuple[np.ndarray, float, float]:
        """Wait for a slot and stylise; returns (image, queue seconds, inference seconds).

        No inference starts for a call that is already cancelled or past its deadline, and a
        running one is stopped (``run_options.terminate``) when the call ends."""
        try:
            with self.limiter.slot(context.is_active, context.time_remaining) as queue_s:
                start = time.perf_counter()
                try:
                    out = model.stylise(image, options, run_options)
                except Exception:
                    if not run_options.terminate:
                        self.metrics.inferences.labels(model.name, "failed").inc()
                        raise
                    self.metrics.inferences.labels(model.name, "terminated").inc()
                    self.metrics.abandoned.labels(method, "inference").inc()
                    remaining = context.time_remaining()
                    raise CallAbandoned(
                        "call ended during inference; inference stopped",
                        deadline=remaining is not None and remaining <= 0,
                        stage="inference",
                    ) from None
                inference_s = time.perf_counter() - start
        except CallAbandoned as exc:
            if exc.stage == "queue":
                self.metrics.abandoned.labels(method, "queue").inc()
            raise
        self.metrics.inferences.labels(model.name, "ok").inc()
        self.metrics.inference_latency.labels(model.name).observe(inference_s)
        return out, queue_s, inference_s

    def _stylise_image(
        self,
        method: str,
        model: StyleModel,
        image: pb.Image,
        options_message: pb.StyliseOptions,
        context: grpc.ServicerContext,
        run_options: ort.RunOptions,
    ) -> _Stylised:
        options, encoding, quality = parse_options(options_message, self.config.default_quality)
        start = time.perf_counter()
        content = self._decode(image, options)
        decode_s = time.perf_counter() - start
        out, queue_s, inference_s = self._infer(
            method, model, content, options, context, run_options
        )
        start = time.perf_counter()
        reply = image_message(out, encoding, quality)
        return _Stylised(reply, decode_s, queue_s, inference_s, time.perf_counter() - start)

    @staticmethod
    def _timings(result: _Stylised, start: float) -> pb.Timings:
        return pb.Timings(
            decode_ms=_ms(result.decode_s),
            queue_ms=_ms(result.queue_s),
            inference_ms=_ms(result.inference_s),
            encode_ms=_ms(result.encode_s),
            total_ms=_ms(time.perf_counter() - start),
        )

    @staticmethod
    def _run_options(context: grpc.ServicerContext) -> ort.RunOptions:
        """RunOptions that are terminated when the call ends for any reason."""
        run_options = ort.RunOptions()

        def terminate() -> None:
            run_options.terminate = True

        if not context.add_callback(terminate):  # the call has already ended
            terminate()
        return run_options

    # -- RPCs ---------------------------------------------------------------------------------

    def Stylise(self, request: pb.StyliseRequest, context: grpc.ServicerContext) -> Any:
        def work(call: _CallRecord) -> pb.StyliseResponse:
            model = self.repository.get(request.model)
            call.model = model.name
            with self.limiter.admit():
                result = self._stylise_image(
                    call.method,
                    model,
                    request.image,
                    request.options,
                    context,
                    self._run_options(context),
                )
            return pb.StyliseResponse(
                image=result.image,
                model=model.name,
                model_version=model.version,
                timings=self._timings(result, call.start),
            )

        return self._unary("Stylise", context, work)

    def ListModels(self, request: pb.ListModelsRequest, context: grpc.ServicerContext) -> Any:
        def work(_call: _CallRecord) -> pb.ListModelsResponse:
            cards = [card_message(m, request.include_thumbnails) for m in self.repository.models()]
            return pb.ListModelsResponse(models=cards)

        return self._unary("ListModels", context, work)

    def GetModel(self, request: pb.GetModelRequest, context: grpc.ServicerContext) -> Any:
        def work(call: _CallRecord) -> pb.GetModelResponse:
            model = self.repository.get(request.name)
            call.model = model.name
            return pb.GetModelResponse(model=card_message(model))

        return self._unary("GetModel", context, work)

    def ReloadModels(self, request: pb.ReloadModelsRequest, context: grpc.ServicerContext) -> Any:
        def work(_call: _CallRecord) -> pb.ReloadModelsResponse:
            report = self.watcher.reload()
            return pb.ReloadModelsResponse(
                loaded=report.loaded, removed=report.removed, failed=report.failed
            )

        return self._unary("ReloadModels", context, work)

    def StyliseStream(
        self, request_iterator: Iterator[pb.StyliseStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.StyliseStreamResponse]:
        call = self._begin("StyliseStream")
        message = ""
        if not self._streams.acquire(blocking=False):
            call.code = grpc.StatusCode.RESOURCE_EXHAUSTED
            self._end(call)
            context.abort(
                call.code, f"server busy: {self.config.max_streams} streams open; retry later"
            )
        frames: LatestFrames[pb.StyliseStreamRequest] = LatestFrames(1)
        run_options = self._run_options(context)
        context.add_callback(lambda: frames.close(discard=True))
        reader = threading.Thread(
            target=self._read_frames,
            args=(request_iterator, frames),
            daemon=True,
            name="stream-reader",
        )
        reader.start()
        try:
            try:
                yield from self._stream_replies(call, frames, context, run_options)
                if not context.is_active():
                    call.code = grpc.StatusCode.CANCELLED
            except Exception as exc:
                call.code, message = status_of(exc)
            except GeneratorExit:
                call.code = grpc.StatusCode.CANCELLED
                raise
        finally:
            frames.close(discard=True)
            self._streams.release()
            self._end(call)
        if call.code not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            context.abort(call.code, message)

    def _read_frames(
        self, requests: Iterator[pb.StyliseStreamRequest], frames: LatestFrames[Any]
    ) -> None:
        """Reader thread of one stream: move frames into ``frames`` as they arrive."""
        last: int | None = None
        try:
            for request in requests:
                if last is not None and request.sequence <= last:
                    frames.close(
                        BadRequest(
                            f"sequence numbers must increase (got {request.sequence} after {last})"
                        )
                    )
                    return
                last = request.sequence
                if request.max_pending:
                    frames.set_max_pending(min(request.max_pending, self.config.stream_max_pending))
                frames.put(request.sequence, request)
        except Exception:  # the call was cancelled or the connection dropped
            frames.close(discard=True)
            return
        frames.close()

    def _stream_replies(
        self,
        call: _CallRecord,
        frames: LatestFrames[pb.StyliseStreamRequest],
        context: grpc.ServicerContext,
        run_options: ort.RunOptions,
    ) -> Iterator[pb.StyliseStreamResponse]:
        """Worker of one stream: stylise frames in order, one at a time."""
        model_name, options = "", pb.StyliseOptions()
        while context.is_active():
            item = frames.take(POLL_S)
            if item is None:
                if frames.finished:
                    break
                continue
            sequence, request, dropped = item
            start = time.perf_counter()
            model_name = request.model or model_name
            if request.HasField("options"):
                options = request.options
            if not model_name:
                raise BadRequest("the first frame of a stream must name a model")
            model = self.repository.get(model_name)
            call.model = model.name
            if dropped:
                self.metrics.frames_dropped.labels(model.name).inc(len(dropped))
            reply = pb.StyliseStreamResponse(
                sequence=sequence, model=model.name, model_version=model.version, dropped=dropped
            )
            try:
                result = self._stylise_image(
                    call.method, model, request.image, options, context, run_options
                )
            except (ImageError, BadRequest, Overloaded) as exc:
                code, text = status_of(exc)
                reply.error.code, reply.error.message = code.value[0], text
                self.metrics.frames.labels(model.name, "error").inc()
            else:
                reply.image.CopyFrom(result.image)
                reply.timings.CopyFrom(self._timings(result, start))
                self.metrics.frames.labels(model.name, "ok").inc()
            yield reply
        if frames.error is not None:
            raise frames.error


class StylecastServer:
    """A configured server: ``start()``, then ``port``/``address``; ``stop(grace)`` to end."""

    def __init__(self, config: ServerConfig, repository: ModelRepository | None = None) -> None:
        self.config = config
        self.repository = repository or ModelRepository(config.models_dir, config.runtime)
        self.metrics = ServerMetrics()
        self.health = health.HealthServicer()
        self.watcher = ModelWatcher(self.repository, config.reload_interval_s, self._on_reload)
        self.servicer = StylecastServicer(self.repository, self.watcher, config, self.metrics)
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._grpc: grpc.Server | None = None
        self._metrics_http: Any = None
        self._health_models: set[str] = set()
        self._health_lock = threading.Lock()

    @property
    def address(self) -> str:
        """``host:port`` for clients (loopback when bound to every interface)."""
        host = "127.0.0.1" if self.config.host in WILDCARD_HOSTS else self.config.host
        return f"{host}:{self.port}"

    def _credentials(self) -> grpc.ServerCredentials | None:
        config = self.config
        if not config.tls_cert:
            return None
        try:
            key = Path(config.tls_key or "").read_bytes()
            cert = Path(config.tls_cert).read_bytes()
            ca = Path(config.tls_client_ca).read_bytes() if config.tls_client_ca else None
        except OSError as exc:
            raise StylecastError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )

    def _on_auth_reject(self, method: str) -> None:
        self.metrics.requests.labels(method.rsplit("/", 1)[-1], "", "UNAUTHENTICATED").inc()

    def _on_reload(self, report: ReloadReport) -> None:
        """Keep health statuses and model metrics in step with the repository."""
        for event, names in (
            ("loaded", report.loaded),
            ("removed", report.removed),
            ("failed", report.failed),
        ):
            if names:
                self.metrics.reloads.labels(event).inc(len(names))
        loaded = {model.name for model in self.repository.models()}
        self.metrics.models_loaded.set(len(loaded))
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        with self._health_lock:
            for name in loaded:
                self.health.set(model_health_name(name), serving)
            for name in self._health_models - loaded:
                self.health.set(model_health_name(name), not_serving)
            overall = serving if loaded else not_serving
            self.health.set("", overall)
            self.health.set(SERVICE_NAME, overall)
            self._health_models = loaded

    def start(self) -> StylecastServer:
        """Bind, start serving, start the model watcher and the metrics endpoint."""
        config = self.config
        interceptors = (
            [TokenAuthInterceptor(config.auth_tokens, self._on_auth_reject)]
            if config.auth_tokens
            else []
        )
        server = grpc.server(
            ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="grpc-handler"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", config.max_message_bytes),
                ("grpc.max_send_message_length", config.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=config.workers,
        )
        pb_grpc.add_StylecastServicer_to_server(self.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        bind = f"{config.host}:{config.port}"
        credentials = self._credentials()
        try:
            if credentials is None:
                port = server.add_insecure_port(bind)
            else:
                port = server.add_secure_port(bind, credentials)
        except RuntimeError as exc:
            raise StylecastError(f"cannot listen on {bind}: {exc}") from None
        if not port:
            raise StylecastError(f"cannot listen on {bind} (address in use?)")
        self.port = port
        self._on_reload(ReloadReport())
        server.start()
        self._grpc = server
        self.watcher.start()
        if config.metrics_port is not None:
            self._metrics_http = self.metrics.start_http(config.host, config.metrics_port)
            if isinstance(self._metrics_http, tuple):
                self.metrics_port = self._metrics_http[0].server_port
            else:
                self.metrics_port = config.metrics_port
        for name, error in sorted(self.repository.errors.items()):
            log.warning("model %s: %s", name, error)
        log.info(
            "serving %d model(s) on %s%s%s",
            len(self.repository.models()),
            self.address,
            " with TLS" if credentials else "",
            " with token auth" if interceptors else "",
        )
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, give in-flight ones ``grace`` seconds, then end them all."""
        if self._grpc is None:
            return
        self.health.enter_graceful_shutdown()
        self.watcher.stop()
        grace = self.config.grace_s if grace is None else grace
        self._grpc.stop(grace).wait()
        self._grpc = None
        if self._metrics_http is not None:
            ServerMetrics.stop_http(self._metrics_http)
            self._metrics_http = None

    def force_stop(self) -> None:
        """End every call now (a second Ctrl-C)."""
        if self._grpc is not None:
            self._grpc.stop(0)

    def __enter__(self) -> StylecastServer:
        return self.start() if self._grpc is None else self

    def __exit__(self, *_: object) -> None:
        self.stop(0)


def serve(config: ServerConfig, on_ready: Callable[[StylecastServer], None] | None = None) -> None:
    """Run a server until SIGTERM or SIGINT, then shut down gracefully. SIGHUP reloads models.

    Must run in the main thread (it installs signal handlers)."""
    server = StylecastServer(config).start()
    stop = threading.Event()

    def on_stop(signum: int, _frame: Any) -> None:
        if stop.is_set():
            log.warning("second %s: ending in-flight calls now", signal.Signals(signum).name)
            threading.Thread(target=server.force_stop, daemon=True).start()
            return
        log.info(
            "%s: shutting down (in-flight calls get %.0f s)",
            signal.Signals(signum).name,
            config.grace_s,
        )
        stop.set()

    def on_hangup(_signum: int, _frame: Any) -> None:
        threading.Thread(target=server.watcher.reload, daemon=True, name="sighup-reload").start()

    handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_hangup}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        if on_ready is not None:
            on_ready(server)
        while not stop.wait(1.0):
            pass
        server.stop(config.grace_s)
    finally:
        server.stop(0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("server stopped")
