"""How a call ends: the API's server-side error types and the gRPC status each maps to
(``status_of``), text made safe for protobuf, and ``RunStopper``, which stops a call's
inference when the call ends for any reason (cancelled, deadline, disconnect)."""

from __future__ import annotations

import logging
import threading

import grpc
import onnxruntime as ort

from stylecast.errors import StylecastError

from .codec import BadRequest
from .imaging import ImageError
from .limits import CallAbandoned, Overloaded
from .repository import ModelNotFound
from .runtime import ShapeOutsideProfile
from .styles import StyleRequestError

log = logging.getLogger(__name__)


class TooLarge(StylecastError):
    """A request or reply is over ``max_message_bytes`` (maps to RESOURCE_EXHAUSTED)."""


class ShuttingDown(StylecastError):
    """The server is draining and refuses new calls (maps to UNAVAILABLE: try another one)."""


class RescanFailed(StylecastError):
    """The models folder could not be read (maps to FAILED_PRECONDITION)."""


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status for an exception raised while handling a call."""
    if isinstance(exc, ModelNotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, ImageError | BadRequest | ShapeOutsideProfile | StyleRequestError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, Overloaded | TooLarge):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, ShuttingDown):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, RescanFailed):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, CallAbandoned):
        code = grpc.StatusCode.DEADLINE_EXCEEDED if exc.deadline else grpc.StatusCode.CANCELLED
        return code, str(exc)
    log.error("internal error while handling a call", exc_info=exc)
    return grpc.StatusCode.INTERNAL, "internal server error (details are in the server log)"


def safe_text(text: str) -> str:
    """``text`` as protobuf accepts it: lone surrogates (from undecodable file names or
    JSON escapes) become "?"."""
    return text.encode("utf-8", "replace").decode("utf-8")


class RunStopper:
    """Stops the inference of a call when the call ends for any reason: each inference gets
    fresh RunOptions from ``new()``, terminated when the call ends (at once if it has)."""

    def __init__(self, context: grpc.ServicerContext) -> None:
        self._lock = threading.Lock()
        self._current: ort.RunOptions | None = None
        self.stopped = False
        if not context.add_callback(self.stop):  # the call has already ended
            self.stop()

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            if self._current is not None:
                self._current.terminate = True

    def new(self) -> ort.RunOptions:
        """RunOptions for the call's next inference."""
        run_options = ort.RunOptions()
        with self._lock:
            self._current = run_options
            if self.stopped:
                run_options.terminate = True
        return run_options
