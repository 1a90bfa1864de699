"""The stylecast.v1.Stylecast servicer: thin handlers that turn messages into pipeline calls
(serving.codec, serving.pipeline) and exceptions into statuses, with the server's limits,
cancellation and metrics around them. The inference step (slots, batching, stopping a run
when its call ends) is serving.inference's.

Status codes: unknown model → NOT_FOUND; anything wrong with the image or options (including
more pixels than ``max_pixels``: retrying cannot help, so it is not RESOURCE_EXHAUSTED, and a
style or mix the model does not have, serving.styles) → INVALID_ARGUMENT; inference limit
and queue full, too many streams, or a request or reply over ``max_message_bytes`` →
RESOURCE_EXHAUSTED; deadline passed → DEADLINE_EXCEEDED; shutting down and refusing calls →
UNAVAILABLE; the models folder unreadable on ReloadModels → FAILED_PRECONDITION; missing
token → UNAUTHENTICATED (serving.auth); anything else → INTERNAL with the traceback in the
server log only. Each is counted in
``stylecast_requests_total`` with the code the client sees.

Message size: gRPC's own limit sits above ``max_message_bytes`` by a margin
(``ServerConfig.grpc_message_limit``), so the handlers see, refuse and count messages over
``max_message_bytes``; only messages over the margin too are refused by gRPC itself, before
any handler runs, and are not counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from stylecast.v1 import stylise_pb2 as pb
from stylecast.v1 import stylise_pb2_grpc as pb_grpc

from . import pipeline
from .calls import (
    RescanFailed,
    ShuttingDown,
    TooLarge,
    safe_text,
    status_of,
)
from .codec import (
    BadRequest,
    card_message,
    image_from_message,
    message_from_image,
    options_from_message,
    timings_message,
)
from .config import ServerConfig
from .imaging import ImageError
from .inference import CallLink, ServerInference
from .limits import POLL_S, LatestFrames, Overloaded
from .metrics import ServerMetrics
from .repository import ModelRepository
from .runtime import StyleModel
from .styles import StyleRequestError
from .watcher import ModelWatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Frame:
    """A stream frame with the model and options in force when it arrived (earlier frames
    may have named them and been dropped since)."""

    request: pb.StyliseStreamRequest
    model: str
    options: pb.StyliseOptions


@dataclass
class _CallRecord:
    """What the metrics need to know about one RPC."""

    method: str
    model: str = ""
    code: grpc.StatusCode = grpc.StatusCode.OK
    start: float = field(default_factory=time.perf_counter)


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
        self.inference = ServerInference(config, metrics)
        self.limiter = self.inference.limiter
        self._streams = threading.BoundedSemaphore(config.max_streams)
        self._refusing = False

    def refuse_calls(self) -> None:
        """Shutdown is draining: answer new calls UNAVAILABLE from now on."""
        self._refusing = True

    def _check_open(self) -> None:
        if self._refusing:
            raise ShuttingDown("server is shutting down; retry on another server")

    def _check_size(self, message: Any, what: str) -> None:
        """Refuse a request or reply over ``max_message_bytes`` (TooLarge)."""
        size, limit = message.ByteSize(), self.config.max_message_bytes
        if size <= limit:
            return
        if what == "request":
            raise TooLarge(f"request is {size} bytes, over the server's limit of {limit} bytes")
        raise TooLarge(
            f"the reply would be {size} bytes, over the server's limit of {limit} bytes; ask "
            "for JPEG or WebP output, or a smaller max_side"
        )

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
        self,
        method: str,
        request: Any,
        context: grpc.ServicerContext,
        work: Callable[[_CallRecord], Any],
    ) -> Any:
        """Run ``work`` with metrics, refusing requests and replies over the size limit; turn
        any exception into a clean status."""
        call = self._begin(method)
        try:
            try:
                self._check_open()
                self._check_size(request, "request")
                reply = work(call)
                self._check_size(reply, "reply")
                return reply
            except Exception as exc:
                call.code, message = status_of(exc)
        finally:
            self._end(call)
        context.abort(call.code, message)

    # -- one image through the pipeline ------------------------------------------------------

    def _stylise(
        self,
        method: str,
        model: StyleModel,
        image: pb.Image,
        options_message: pb.StyliseOptions,
        context: grpc.ServicerContext,
        link: CallLink,
    ) -> pipeline.Stylised:
        """One request image through the pipeline, with this call's inference step (the only
        part that holds an inference slot)."""
        options, output = options_from_message(options_message, self.config.default_quality)
        result = pipeline.stylise(
            model,
            image_from_message(image),
            options,
            output,
            max_pixels=self.config.max_pixels,
            infer=self.inference.step(method, context, link),
        )
        self.metrics.inference_latency.labels(model.name).observe(result.timings.inference_s)
        return result

    # -- RPCs ---------------------------------------------------------------------------------

    def Stylise(self, request: pb.StyliseRequest, context: grpc.ServicerContext) -> Any:
        def work(call: _CallRecord) -> pb.StyliseResponse:
            model = self.repository.get(request.model)
            call.model = model.name
            with self.limiter.admit():
                result = self._stylise(
                    call.method,
                    model,
                    request.image,
                    request.options,
                    context,
                    self.inference.link(context),
                )
            return pb.StyliseResponse(
                image=message_from_image(result.image),
                model=model.name,
                model_version=model.version,
                timings=timings_message(result.timings, time.perf_counter() - call.start),
            )

        return self._unary("Stylise", request, context, work)

    def ListModels(self, request: pb.ListModelsRequest, context: grpc.ServicerContext) -> Any:
        def work(_call: _CallRecord) -> pb.ListModelsResponse:
            models = self.repository.models()
            cards = [card_message(m, request.include_thumbnails) for m in models]
            return pb.ListModelsResponse(models=cards)

        return self._unary("ListModels", request, context, work)

    def GetModel(self, request: pb.GetModelRequest, context: grpc.ServicerContext) -> Any:
        def work(call: _CallRecord) -> pb.GetModelResponse:
            model = self.repository.get(request.name)
            call.model = model.name
            return pb.GetModelResponse(model=card_message(model))

        return self._unary("GetModel", request, context, work)

    def ReloadModels(self, request: pb.ReloadModelsRequest, context: grpc.ServicerContext) -> Any:
        def work(_call: _CallRecord) -> pb.ReloadModelsResponse:
            report = self.watcher.reload()
            if report.scan_error:
                raise RescanFailed(
                    f"{safe_text(report.scan_error)}; the loaded models keep serving"
                )
            return pb.ReloadModelsResponse(
                loaded=[safe_text(name) for name in report.loaded],
                removed=[safe_text(name) for name in report.removed],
                failed={safe_text(name): safe_text(why) for name, why in report.failed.items()},
            )

        return self._unary("ReloadModels", request, context, work)

    def StyliseStream(
        self, request_iterator: Iterator[pb.StyliseStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.StyliseStreamResponse]:
        call = self._begin("StyliseStream")
        message = ""
        refusal = None
        if self._refusing:
            refusal = status_of(ShuttingDown("server is shutting down; retry on another server"))
        elif not self._streams.acquire(blocking=False):
            refusal = (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"server busy: {self.config.max_streams} streams open; retry later",
            )
        if refusal is not None:
            call.code = refusal[0]
            self._end(call)
            context.abort(*refusal)
        frames: LatestFrames[_Frame] = LatestFrames(1)
        link = self.inference.link(context)
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
                yield from self._stream_replies(call, frames, context, link)
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
        self, requests: Iterator[pb.StyliseStreamRequest], frames: LatestFrames[_Frame]
    ) -> None:
        """Reader thread of one stream: move frames into ``frames`` as they arrive, each with
        the model and options in force (so dropping the frame that named them loses nothing)."""
        last: int | None = None
        model, options = "", pb.StyliseOptions()
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
                model = request.model or model
                if request.HasField("options"):
                    options = request.options
                frames.put(request.sequence, _Frame(request, model, options))
        except Exception:  # the call was cancelled or the connection dropped
            frames.close(discard=True)
            return
        frames.close()

    def _stream_replies(
        self,
        call: _CallRecord,
        frames: LatestFrames[_Frame],
        context: grpc.ServicerContext,
        link: CallLink,
    ) -> Iterator[pb.StyliseStreamResponse]:
        """Worker of one stream: stylise frames in order, one at a time. A frame that cannot
        be stylised (bad image or options, server busy, a request or reply over the size
        limit) gets a reply with ``error`` set and the stream goes on."""
        while context.is_active():
            item = frames.take(POLL_S)
            if item is None:
                if frames.finished:
                    break
                continue
            sequence, frame, dropped = item
            start = time.perf_counter()
            if not frame.model:
                raise BadRequest("the first frame of a stream must name a model")
            model = self.repository.get(frame.model)
            call.model = model.name
            if dropped:
                self.metrics.frames_dropped.labels(model.name).inc(len(dropped))
            reply = pb.StyliseStreamResponse(
                sequence=sequence, model=model.name, model_version=model.version, dropped=dropped
            )
            try:
                self._check_size(frame.request, "request")
                result = self._stylise(
                    call.method, model, frame.request.image, frame.options, context, link
                )
                reply.image.CopyFrom(message_from_image(result.image))
                reply.timings.CopyFrom(timings_message(result.timings, time.perf_counter() - start))
                self._check_size(reply, "reply")
            except (ImageError, BadRequest, StyleRequestError, Overloaded, TooLarge) as exc:
                code, text = status_of(exc)
                reply.ClearField("image")
                reply.ClearField("timings")
                reply.error.code, reply.error.message = code.value[0], text
                self.metrics.frames.labels(model.name, "error").inc()
            else:
                self.metrics.frames.labels(model.name, "ok").inc()
            yield reply
        if frames.error is not None:
            raise frames.error
