"""Dynamic micro-batching of inferences (``stylecast serve --max-batch N``; off at 1).

Images of the same shape for the same loaded model version that arrive within
``window_s`` of the first (or while it waits for a slot), up to ``max_batch`` of them, run
as one [N, H, W, 3] ``StyleModel.run``; each caller gets its own image back, or, when the
run fails, its own copy of the run's error (same type, so same status). Different shapes or
different models (a reload's new version included) never share a batch, and a model whose
engine takes fewer images (a TensorRT profile's max N, ``StyleModel.max_shape``) caps its
batches there. Unary calls and stream frames batch alike: each stream has one frame in
inference at a time, so frames batch across streams (several cameras at one resolution).
Images of a multi-style model batch whatever their style mix: each brings its own row of
style weights, and the batch runs with them stacked.

How a batch forms, with no thread of its own: the first caller of a (model, shape) opens a
batch and runs it. It waits up to the window (less once the batch is full), then for an
inference slot (``limits.InferenceLimiter``: one slot per batch), and callers keep joining
until it has the slot or is full. Then it runs the network and hands each caller its row.
Only the run holds the slot; decoding, blending and encoding stay on each caller's thread.

Calls that end: a caller whose call is cancelled or past its deadline (``Caller.end``, or
seen by polling) leaves its batch at once with CallAbandoned: before the run its image is
taken out; during the run its row is thrown away and the others still get theirs. Only when
no caller of a running batch is left is the run stopped (``run_options.terminate``), as the
unbatched server stops a lone call's run. The caller that opened a batch keeps running it
for the others even when its own call has ended, and answers once the batch is done.

Limits: admission (``InferenceLimiter.admit``, RESOURCE_EXHAUSTED when the line is full) is
per call as before; the slot wait (``max_queue_wait_s``) is per batch. A batch of N images
of up to ``max_pixels`` each holds N times the memory of one (``ServerConfig.memory_bound``).

Throughput: batching is for GPUs, where one image may leave the device partly idle
(measure it there before turning it on). On a CPU it does not raise throughput: onnxruntime
already keeps the cores busy with one image, so a batch of N takes about as long as N single
runs, and the window only adds latency. Measured on a 2-core x86_64 CPU shared with other
jobs, bundled lite network, 256×256, onnxruntime CPU: one batch of 4 took 0.88, 0.92 and
0.97 times as long as 4 single runs (three runs, median of 7 each; `pytest -s
tests/test_batcher.py -k bundled`), within this machine's noise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from stylecast.errors import StylecastError

from .limits import POLL_S, CallAbandoned, InferenceLimiter, Overloaded
from .pipeline import Inferred

if TYPE_CHECKING:
    from .runtime import StyleModel


class BatchFailed(StylecastError):
    """This call's image was in a batch that could not be run or answered (the cause, if
    any, is chained)."""


class Caller:
    """One call as the batcher sees it: whether it is still there, and ``end`` for the
    transport to call when it ends (gRPC: ``context.add_callback(caller.end)``). A stream is
    one caller with one image in the batcher at a time."""

    def __init__(
        self,
        is_active: Callable[[], bool] = lambda: True,
        time_remaining: Callable[[], float | None] = lambda: None,
    ) -> None:
        self._is_active = is_active
        self._time_remaining = time_remaining
        self._lock = threading.Lock()
        self._on_end: Callable[[], None] | None = None
        self.ended = False

    def end(self) -> None:
        """The call has ended (cancelled, deadline, disconnect): drop its image, if any."""
        with self._lock:
            self.ended = True
            on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end()

    def gone(self) -> CallAbandoned | None:
        """Why the call is over (stage "queue"; None: it is not)."""
        remaining = self._time_remaining()
        if remaining is not None and remaining <= 0:
            return CallAbandoned("deadline exceeded before inference started", deadline=True)
        if self.ended or not self._is_active():
            return CallAbandoned("call cancelled before inference started", deadline=False)
        return None

    def _watch(self, on_end: Callable[[], None]) -> None:
        with self._lock:
            ended = self.ended
            self._on_end = None if ended else on_end
        if ended:
            on_end()

    def _unwatch(self) -> None:
        with self._lock:
            self._on_end = None


@dataclass(eq=False)
class _Item:
    """One caller's image in a batch, and what it gets back."""

    content: np.ndarray
    caller: Caller
    batch: _Batch
    weights: np.ndarray | None = None  # a multi-style model's style weights row
    arrived: float = field(default_factory=time.perf_counter)
    done: threading.Event = field(default_factory=threading.Event)
    image: np.ndarray | None = None
    error: BaseException | None = None
    queue_s: float = 0.0
    inference_s: float = 0.0

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


@dataclass(eq=False)
class _Batch:
    """Images of one model version and shape that run together."""

    model: StyleModel
    key: tuple[int, tuple[int, ...], str]
    opened: float = field(default_factory=time.monotonic)
    items: list[_Item] = field(default_factory=list)
    running: bool = False
    run_options: Any = None  # the run's ort.RunOptions, once it runs

    def live(self) -> list[_Item]:
        return [item for item in self.items if not item.done.is_set()]


class MicroBatcher:
    """Runs inferences in batches of up to ``max_batch`` same-shape images, each waiting at
    most ``window_s`` for company; one ``limiter`` slot per batch. ``on_batch(model name,
    size)`` is told each batch's size as it starts (a metric)."""

    def __init__(
        self,
        limiter: InferenceLimiter,
        max_batch: int,
        window_s: float,
        on_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        if max_batch < 1 or not window_s >= 0:
            raise StylecastError(
                f"bad batching: max_batch={max_batch} (>= 1), window_s={window_s} (>= 0)"
            )
        self.limiter = limiter
        self.max_batch = max_batch
        self.window_s = window_s
        self.on_batch = on_batch or (lambda _model, _size: None)
        self._cond = threading.Condition()
        self._open: dict[tuple[int, tuple[int, ...], str], _Batch] = {}
        self._waiting = 0
        self._running = 0

    @property
    def waiting(self) -> int:
        """Images waiting for their batch to run."""
        return self._waiting

    @property
    def running(self) -> int:
        """Images in batches running now."""
        return self._running

    def infer(
        self,
        model: StyleModel,
        content: np.ndarray,
        caller: Caller,
        weights: np.ndarray | None = None,
    ) -> Inferred:
        """The network's output for ``content`` (uint8 [H, W, 3]) in the style ``weights``
        (a multi-style model's row; None: its first style), run in a batch.

        Raises CallAbandoned when the call ends first (stage "queue" or "inference"),
        Overloaded when the batch waited ``max_queue_wait_s`` for a slot, and the run's own
        exception when it failed (to each caller of a batch its own copy, the run's one as
        its cause)."""
        gone = caller.gone()
        if gone is not None:
            raise gone
        item, runs = self._join(model, content, caller, weights)
        caller._watch(lambda: self._drop(item, caller.gone()))
        try:
            if runs:
                self._run(item.batch, item)
            while not item.done.wait(POLL_S):
                why = caller.gone()
                if why is not None:
                    self._drop(item, why)
        finally:
            caller._unwatch()
        if item.error is not None:
            raise item.error
        assert item.image is not None
        return Inferred(item.image, item.queue_s, item.inference_s)

    # -- forming a batch ------------------------------------------------------------------

    def _join(
        self,
        model: StyleModel,
        content: np.ndarray,
        caller: Caller,
        weights: np.ndarray | None = None,
    ) -> tuple[_Item, bool]:
        """Add ``content`` to the open batch of its model and shape, or open one; returns the
        item and whether this caller runs the batch."""
        key = (id(model), content.shape, content.dtype.str)
        with self._cond:
            batch = self._open.get(key)
            runs = batch is None
            if batch is None:
                batch = self._open[key] = _Batch(model, key)
            item = _Item(content, caller, batch, weights)
            batch.items.append(item)
            self._waiting += 1
            if len(batch.items) >= self._limit(model):
                self._close(batch)
                self._cond.notify_all()
        return item, runs

    def _limit(self, model: StyleModel) -> int:
        """The largest batch for ``model``: ``max_batch``, or less where its engine takes
        fewer (a TensorRT profile's max shape, ``StyleModel.max_shape``)."""
        most = getattr(model, "max_shape", None)
        return min(self.max_batch, most[0]) if most else self.max_batch

    def _close(self, batch: _Batch) -> None:
        """No more images join ``batch`` (call with the lock held)."""
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]

    def _drop(self, item: _Item, why: CallAbandoned | None) -> None:
        """``item``'s call has ended: it leaves its batch with ``why`` (a cancel by default);
        a running batch with no caller left is stopped."""
        why = why or CallAbandoned("call cancelled before inference started", deadline=False)
        with self._cond:
            if item.done.is_set():
                return
            batch = item.batch
            if batch.running:
                why = CallAbandoned(
                    "call ended during inference; its image was dropped from the batch",
                    deadline=why.deadline,
                    stage="inference",
                )
                self._running -= 1
                if all(other is item for other in batch.live()):  # no one else is left
                    batch.run_options.terminate = True
            else:
                batch.items.remove(item)
                self._waiting -= 1
            item.fail(why)
            self._cond.notify_all()

    def _prune(self, batch: _Batch) -> bool:
        """Drop the images of calls that have ended; whether any are left."""
        with self._cond:
            items = batch.live()
        for item in items:
            why = item.caller.gone()
            if why is not None:
                self._drop(item, why)
        with self._cond:
            return bool(batch.live())

    def _wait_window(self, batch: _Batch) -> None:
        """Until the window has passed since the batch opened, or it is full (or empty)."""
        end = batch.opened + self.window_s
        while self._prune(batch):
            with self._cond:
                left = end - time.monotonic()
                if left <= 0 or self._open.get(batch.key) is not batch:  # passed, or full
                    return
                self._cond.wait(min(left, POLL_S))

    # -- running a batch ------------------------------------------------------------------

    def _run(self, batch: _Batch, own: _Item) -> None:
        """Run ``batch`` (its opener's thread): window, slot, the network, one row each.
        Every image of the batch is answered, whatever happens."""
        try:
            self._wait_window(batch)
            try:
                with self.limiter.slot(lambda: self._prune(batch)):
                    self._run_in_slot(batch)
            except CallAbandoned:  # every caller has gone, each with its own error
                pass
            except Overloaded as exc:
                busy = exc
                self._fail_live(batch, lambda item: busy if item is own else Overloaded(str(busy)))
        finally:
            self._fail_live(batch, lambda _: BatchFailed("this image's batch was abandoned"))

    def _fail_live(self, batch: _Batch, error: Callable[[_Item], BaseException]) -> None:
        """Close ``batch`` and answer its unanswered images with ``error(item)``."""
        with self._cond:
            self._close(batch)
            for item in batch.live():
                if batch.running:
                    self._running -= 1
                else:
                    self._waiting -= 1
                item.fail(error(item))
            self._cond.notify_all()

    def _run_in_slot(self, batch: _Batch) -> None:
        with self._cond:
            self._close(batch)
            items = batch.live()
            if not items:
                return
            batch.running = True
            batch.run_options = ort.RunOptions()
            self._waiting -= len(items)
            self._running += len(items)
        self.on_batch(batch.model.name, len(items))
        images = items[0].content[None] if len(items) == 1 else np.stack([i.content for i in items])
        start = time.perf_counter()
        try:
            out = batch.model.run(images, batch.run_options, _stacked_weights(batch.model, items))
        except Exception as exc:
            if not batch.run_options.terminate:
                self._answer(items, start, error=exc)
            return
        self._answer(items, start, out=out)

    def _answer(
        self,
        items: list[_Item],
        start: float,
        out: np.ndarray | None = None,
        error: Exception | None = None,
    ) -> None:
        """Give each image still waiting its row of ``out``, or ``error``."""
        end = time.perf_counter()
        with self._cond:
            for row, item in enumerate(items):
                if item.done.is_set():
                    continue
                self._running -= 1
                item.queue_s, item.inference_s = start - item.arrived, end - start
                if out is not None:
                    item.image = out[row]
                    item.done.set()
                elif error is not None:
                    item.fail(error if len(items) == 1 else _own_copy(error, len(items)))


def _own_copy(error: BaseException, size: int) -> BaseException:
    """One caller's copy of a batched run's error: the same type and message where the type
    can be made from its arguments (so its status is the same as unbatched), else
    BatchFailed; the run's error is the cause."""
    copy: BaseException
    try:
        copy = type(error)(*error.args)
    except Exception:
        copy = BatchFailed(f"batched inference of {size} images failed: {error}")
    copy.__cause__ = error
    return copy


def _stacked_weights(model: StyleModel, items: list[_Item]) -> np.ndarray | None:
    """The [N, S] style weights of a batch of a multi-style model (None: single-style)."""
    names = getattr(model, "style_names", None)
    if not names:
        return None
    first = np.eye(len(names), dtype=np.float32)[0]
    return np.stack([first if i.weights is None else i.weights for i in items])
