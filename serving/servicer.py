"""The stylecast.v1.Stylecast servicer: thin handlers that turn messages into pipeline calls
(serving.codec, serving.pipeline) and exceptions into statuses, with the server's limits,
cancellation and metrics around them.

Status codes: unknown model → NOT_FOUND; anything wrong with the image or options (including
more pixels than ``max_pixels``: retrying cannot help, so it is not RESOURCE_EXHAUSTED) →
INVALID_ARGUMENT; inference limit and queue full, too many streams, or a message over
``max_message_bytes`` (gRPC's own check) → RESOURCE_EXHAUSTED; deadline passed →
DEADLINE_EXCEEDED; missing token → UNAUTHENTICATED (serving.auth); anything else → INTERNAL
with the traceback in the server log only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort

from stylecast.v1 import stylise_pb2 as pb
from stylecast.v1 import stylise_pb2_grpc as pb_grpc

from . import pipeline
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
from .limits import POLL_S, CallAbandoned, InferenceLimiter, LatestFrames, Overloaded
from .metrics import ServerMetrics
from .repository import ModelNotFound, ModelRepository
from .runtime import StyleModel
from .watcher import ModelWatcher

log = logging.getLogger(__name__)


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


def run_options_for(context: grpc.ServicerContext) -> ort.RunOptions:
    """RunOptions that are terminated when the call ends for any reason."""
    run_options = ort.RunOptions()

    def terminate() -> None:
        run_options.terminate = True

    if not context.add_callback(terminate):  # the call has already ended
        terminate()
    return run_options


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

    # -- one image through the pipeline ------------------------------------------------------

    def _inference(
        self, method: str, context: grpc.ServicerContext, run_options: ort.RunOptions
    ) -> pipeline.Infer:
        """The pipeline's inference step for one call: wait for a slot while the call is
        alive, run the network, count the outcome. No inference starts for a call that is
        already cancelled or past its deadline, and a running one is stopped
        (``run_options.terminate``) when the call ends."""

        def infer(model: StyleModel, content: np.ndarray) -> pipeline.Inferred:
            try:
                with self.limiter.slot(context.is_active, context.time_remaining) as queue_s:
                    start = time.perf_counter()
                    try:
                        out = model.run(content, run_options)
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
            return pipeline.Inferred(out, queue_s, inference_s)

        return infer

    def _stylise(
        self,
        method: str,
        model: StyleModel,
        image: pb.Image,
        options_message: pb.StyliseOptions,
        context: grpc.ServicerContext,
        run_options: ort.RunOptions,
    ) -> pipeline.Stylised:
        """One request image through the pipeline, with this call's inference step."""
        options, output = options_from_message(options_message, self.config.default_quality)
        result = pipeline.stylise(
            model,
            image_from_message(image),
            options,
            output,
            max_pixels=self.config.max_pixels,
            infer=self._inference(method, context, run_options),
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
                    run_options_for(context),
                )
            return pb.StyliseResponse(
                image=message_from_image(result.image),
                model=model.name,
                model_version=model.version,
                timings=timings_message(result.timings, time.perf_counter() - call.start),
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
        run_options = run_options_for(context)
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
                result = self._stylise(
                    call.method, model, request.image, options, context, run_options
                )
            except (ImageError, BadRequest, Overloaded) as exc:
                code, text = status_of(exc)
                reply.error.code, reply.error.message = code.value[0], text
                self.metrics.frames.labels(model.name, "error").inc()
            else:
                reply.image.CopyFrom(message_from_image(result.image))
                reply.timings.CopyFrom(timings_message(result.timings, time.perf_counter() - start))
                self.metrics.frames.labels(model.name, "ok").inc()
            yield reply
        if frames.error is not None:
            raise frames.error
