"""One camera page connection's frames, with no web library in it: the reader ``put``s each
binary message, a worker thread ``run``s them through the shared pipeline one at a time (the
newest waiting frame only; older ones are dropped) and hands each reply to ``send``.

The inference step is the gRPC server's (``serving.inference``): the same slots, the same
wait limit, and a run stopped when its connection ends. ``PageCall`` gives it what it needs
of a call (``is_active``, ``time_remaining``, ``add_callback``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..calls import TooLarge, status_of
from ..codec import BadRequest
from ..config import ServerConfig
from ..inference import ServerInference
from ..limits import POLL_S, CallAbandoned, LatestFrames
from ..metrics import ServerMetrics
from ..pipeline import stylise
from ..repository import ModelRepository
from .protocol import error_message, frame_sequence, parse_frame, reply_message, split_message

METHOD = "WebStream"  # the method label of page connections in the shared metrics
Send = Callable[[bytes | str], None]


class PageCall:
    """A page connection seen as a call: active until ``end()``, which runs the callbacks
    (the inference step's run stopper) once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = True
        self._callbacks: list[Callable[[], None]] = []

    def is_active(self) -> bool:
        """False once the connection has ended."""
        return self._active

    def time_remaining(self) -> float | None:
        """No deadline: a page stays until it leaves."""
        return None

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Run ``callback`` when the connection ends; False (not added) if it has."""
        with self._lock:
            if not self._active:
                return False
            self._callbacks.append(callback)
            return True

    def end(self) -> None:
        """The connection ended: stop its inference, once."""
        with self._lock:
            callbacks, self._callbacks = self._callbacks, []
            self._active = False
        for callback in callbacks:
            callback()


class PageStream:
    """The frames of one page connection and the worker that answers them."""

    def __init__(
        self,
        repository: ModelRepository,
        inference: ServerInference,
        config: ServerConfig,
        metrics: ServerMetrics,
    ) -> None:
        self.repository = repository
        self.config = config
        self.metrics = metrics
        self.frames: LatestFrames[bytes] = LatestFrames(1)
        self.call = PageCall()
        self._step = inference.step(METHOD, self.call, inference.link(self.call))
        self.model = ""  # the last model a frame named successfully (for metrics labels)

    def put(self, data: bytes) -> str | None:
        """Queue a binary message (dropping an older waiting one); an error message to send
        at once when it has no readable header."""
        try:
            header, _ = split_message(data)
            seq = frame_sequence(header)
        except BadRequest as exc:
            return error_message("INVALID_ARGUMENT", str(exc))
        self.frames.put(seq, data)
        return None

    def close(self, vanished: bool = False) -> None:
        """No more frames; ``vanished``: the page went away, so drop waiting frames and stop a
        running inference too."""
        self.frames.close(discard=vanished)
        if vanished:
            self.call.end()

    def run(self, send: Send) -> None:
        """Worker loop: answer frames until the stream is closed and drained, or the page has
        gone (a failing ``send`` ends it too)."""
        while self.call.is_active():
            item = self.frames.take(POLL_S)
            if item is None:
                if self.frames.finished:
                    return
                continue
            seq, data, dropped = item
            try:
                reply = self.answer(seq, data, dropped)
            except CallAbandoned:
                return
            send(reply)

    def _check_size(self, size: int, what: str) -> None:
        limit = self.config.max_message_bytes
        if size > limit:
            raise TooLarge(f"{what} is {size} bytes, over the server's limit of {limit} bytes")

    def answer(self, seq: int, data: bytes, dropped: list[int]) -> bytes | str:
        """The reply to one frame: a binary stylised frame, or a text error in the API's terms
        (CallAbandoned passes through: nobody is left to answer)."""
        start = time.perf_counter()
        model_name = ""
        try:
            self._check_size(len(data), "the frame")
            request = parse_frame(data)
            model = self.repository.get(request.model)
            model_name = self.model = model.name
            if dropped:
                self.metrics.frames_dropped.labels(model.name).inc(len(dropped))
            result = stylise(
                model,
                request.image,
                request.options,
                request.output,
                max_pixels=self.config.max_pixels,
                infer=self._step,
            )
            self.metrics.inference_latency.labels(model.name).observe(result.timings.inference_s)
            total_s = time.perf_counter() - start
            reply = reply_message(request, result, model.version, dropped, total_s)
            self._check_size(len(reply), "the reply")
        except CallAbandoned:
            raise
        except Exception as exc:
            code, text = status_of(exc)
            if model_name:
                self.metrics.frames.labels(model_name, "error").inc()
            return error_message(code.name, text, seq)
        self.metrics.frames.labels(model_name, "ok").inc()
        self.metrics.web_frame_seconds.labels(model_name).observe(total_s)
        return reply
