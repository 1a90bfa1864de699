"""Back-pressure for the server: a concurrency limiter with a bounded waiting line, and the
newest-frames buffer of a stream. Both are plain threading code with no gRPC in them."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from stylecast.errors import StylecastError

T = TypeVar("T")
POLL_S = 0.05  # how often a waiting call re-checks that its client is still there


class Overloaded(StylecastError):
    """The server is at its limit (maps to RESOURCE_EXHAUSTED; the client should back off)."""


class CallAbandoned(StylecastError):
    """The client cancelled, or its deadline passed, so the work was not done.

    ``deadline``: the deadline passed (else the client cancelled); ``stage``: where the work
    stopped ("queue": before inference started, "inference": a running inference was stopped).
    """

    def __init__(self, message: str, deadline: bool, stage: str = "queue") -> None:
        super().__init__(message)
        self.deadline = deadline
        self.stage = stage


class InferenceLimiter:
    """At most ``max_concurrent`` inferences at once and at most ``max_queue`` calls waiting.

    ``admit()`` is the fail-fast gate: a call that finds the line full is rejected at once
    instead of piling up. ``slot()`` waits for a free inference slot while the call is alive,
    its deadline has not passed and it has waited less than ``max_wait_s``.
    """

    def __init__(self, max_concurrent: int, max_queue: int, max_wait_s: float) -> None:
        if max_concurrent < 1 or max_queue < 0 or max_wait_s <= 0:
            raise StylecastError(
                f"bad limits: max_concurrent={max_concurrent} (>= 1), max_queue={max_queue} "
                f"(>= 0), max_wait_s={max_wait_s} (> 0)"
            )
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._admitted = 0
        self._running = 0
        self._line: deque[object] = deque()  # waiting calls, first come first served

    @property
    def running(self) -> int:
        """Inferences running now."""
        return self._running

    @property
    def waiting(self) -> int:
        """Calls waiting for an inference slot now."""
        return len(self._line)

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a place among the ``max_concurrent + max_queue`` admitted calls, or raise
        Overloaded at once."""
        with self._cond:
            if self._admitted >= self.max_concurrent + self.max_queue:
                raise Overloaded(
                    f"server busy: {self._running} inferences running and {self.waiting} "
                    f"waiting (limits {self.max_concurrent} + {self.max_queue}); retry later"
                )
            self._admitted += 1
        try:
            yield
        finally:
            with self._cond:
                self._admitted -= 1

    @contextmanager
    def slot(
        self,
        is_active: Callable[[], bool] = lambda: True,
        time_remaining: Callable[[], float | None] = lambda: None,
    ) -> Iterator[float]:
        """Wait for an inference slot, first come first served; yields the seconds waited.

        Raises CallAbandoned when the call stops being active or its deadline passes while it
        waits, and Overloaded after ``max_wait_s``.
        """
        start = time.monotonic()
        ticket = object()
        with self._cond:
            self._line.append(ticket)
            try:
                while self._running >= self.max_concurrent or self._line[0] is not ticket:
                    _check_alive(is_active, time_remaining)
                    waited = time.monotonic() - start
                    if waited >= self.max_wait_s:
                        raise Overloaded(
                            f"server busy: no inference slot free after {waited:.1f} s; retry later"
                        )
                    self._cond.wait(min(POLL_S, self.max_wait_s - waited))
                _check_alive(is_active, time_remaining)
                self._running += 1
            finally:
                self._line.remove(ticket)
                self._cond.notify_all()  # the next in line may go (or move up)
        try:
            yield time.monotonic() - start
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()


def _check_alive(is_active: Callable[[], bool], time_remaining: Callable[[], float | None]) -> None:
    remaining = time_remaining()
    if remaining is not None and remaining <= 0:
        raise CallAbandoned("deadline exceeded before inference started", deadline=True)
    if not is_active():
        raise CallAbandoned("call cancelled before inference started", deadline=False)


class LatestFrames(Generic[T]):
    """The unprocessed frames of one stream: at most ``max_pending``, oldest dropped first.

    The stream's reader thread ``put``s frames; its worker ``take``s them in order together
    with the frames dropped since the previous take. ``close`` ends the stream, optionally with
    an error for the worker to raise once the remaining frames are done.
    """

    def __init__(self, max_pending: int = 1) -> None:
        self._cond = threading.Condition()
        self._frames: deque[tuple[int, T]] = deque()
        self._dropped: list[int] = []
        self._max_pending = max(1, max_pending)
        self._closed = False
        self.error: Exception | None = None
        self.dropped_total = 0

    def set_max_pending(self, max_pending: int) -> None:
        """Change how many frames may wait (at least 1); excess old frames are dropped."""
        with self._cond:
            self._max_pending = max(1, max_pending)
            self._trim()

    def put(self, sequence: int, frame: T) -> None:
        """Add the newest frame, dropping the oldest waiting ones over the limit."""
        with self._cond:
            if self._closed:
                return
            self._frames.append((sequence, frame))
            self._trim()
            self._cond.notify()

    def _trim(self) -> None:
        while len(self._frames) > self._max_pending:
            sequence, _ = self._frames.popleft()
            self._dropped.append(sequence)
            self.dropped_total += 1

    def take(self, timeout: float) -> tuple[int, T, list[int]] | None:
        """The oldest waiting frame and the sequence numbers dropped before it; None if nothing
        arrived within ``timeout`` or the buffer is closed and empty (see ``finished``)."""
        with self._cond:
            if not self._frames and not self._closed:
                self._cond.wait(timeout)
            if not self._frames:
                return None
            sequence, frame = self._frames.popleft()
            dropped, self._dropped = self._dropped, []
            return sequence, frame, dropped

    @property
    def finished(self) -> bool:
        """Closed and every frame taken."""
        with self._cond:
            return self._closed and not self._frames

    def close(self, error: Exception | None = None, discard: bool = False) -> None:
        """No more frames will come; ``discard`` also forgets the waiting ones (cancelled call)."""
        with self._cond:
            if error is not None and self.error is None:
                self.error = error
            self._closed = True
            if discard:
                self._frames.clear()
            self._cond.notify_all()
