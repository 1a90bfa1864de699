"""The server's back-pressure pieces on their own: the inference limiter, the newest-frames
buffer of a stream, and the default limits (no gRPC, no model)."""

from __future__ import annotations

import threading
import time

import pytest

from stylecast.errors import StylecastError
from stylecast.serving.config import BYTES_PER_PIXEL, IDLE_BYTES, ServerConfig
from stylecast.serving.limits import CallAbandoned, InferenceLimiter, LatestFrames, Overloaded
from stylecast.serving.runtime import RuntimeOptions


def test_admit_rejects_at_once_when_the_line_is_full():
    limiter = InferenceLimiter(max_concurrent=1, max_queue=1, max_wait_s=5)
    with limiter.admit(), limiter.admit():
        began = time.monotonic()
        with pytest.raises(Overloaded, match="server busy"), limiter.admit():
            pass
        assert time.monotonic() - began < 0.1
    with limiter.admit():  # places are given back
        pass


def test_slot_limits_concurrency():
    limiter = InferenceLimiter(max_concurrent=2, max_queue=8, max_wait_s=5)
    peak, running, lock = [0], [0], threading.Lock()

    def work() -> None:
        with limiter.slot():
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert peak[0] == 2
    assert limiter.running == 0 and limiter.waiting == 0


def test_slots_are_granted_first_come_first_served():
    limiter = InferenceLimiter(max_concurrent=1, max_queue=8, max_wait_s=10)
    order: list[int] = []

    def work(index: int) -> None:
        with limiter.slot():
            order.append(index)

    threads = []
    with limiter.slot():
        for index in range(6):
            threads.append(threading.Thread(target=work, args=(index,)))
            threads[-1].start()
            assert wait_until(lambda n=index + 1: limiter.waiting == n)
    for thread in threads:
        thread.join(timeout=10)
    assert order == list(range(6))


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.005)
    return predicate()


@pytest.mark.parametrize(
    ("is_active", "time_remaining", "deadline"),
    [(lambda: True, lambda: 0.0, True), (lambda: False, lambda: None, False)],
    ids=["deadline", "cancelled"],
)
def test_slot_gives_up_for_calls_that_are_gone(is_active, time_remaining, deadline):
    limiter = InferenceLimiter(max_concurrent=1, max_queue=1, max_wait_s=5)
    with (
        limiter.slot(),
        pytest.raises(CallAbandoned) as info,
        limiter.slot(is_active, time_remaining),
    ):
        pass
    assert info.value.deadline is deadline and info.value.stage == "queue"
    # Even with a free slot, a call that is gone does not start.
    with pytest.raises(CallAbandoned), limiter.slot(is_active, time_remaining):
        pass
    assert limiter.running == 0 and limiter.waiting == 0


def test_slot_wait_is_bounded():
    limiter = InferenceLimiter(max_concurrent=1, max_queue=1, max_wait_s=0.1)
    with limiter.slot():
        began = time.monotonic()
        with pytest.raises(Overloaded, match="no inference slot"), limiter.slot():
            pass
        assert time.monotonic() - began < 1.0


def test_bad_limits_are_refused():
    with pytest.raises(StylecastError):
        InferenceLimiter(max_concurrent=0, max_queue=1, max_wait_s=1)


def test_latest_frames_keeps_the_newest_and_reports_the_dropped():
    frames: LatestFrames[str] = LatestFrames(max_pending=2)
    for sequence in range(1, 6):
        frames.put(sequence, f"frame{sequence}")
    assert frames.take(0) == (4, "frame4", [1, 2, 3])
    assert frames.take(0) == (5, "frame5", [])
    assert frames.take(0.01) is None and not frames.finished
    frames.set_max_pending(1)
    frames.put(6, "frame6")
    frames.put(7, "frame7")
    frames.close()
    frames.put(8, "ignored after close")
    assert frames.take(0) == (7, "frame7", [6])
    assert frames.take(0) is None and frames.finished
    assert frames.dropped_total == 4


def test_latest_frames_close_wakes_the_worker_and_keeps_the_error():
    frames: LatestFrames[str] = LatestFrames()
    frames.put(1, "one")
    error = ValueError("bad sequence")
    threading.Timer(0.05, frames.close, kwargs={"error": error, "discard": True}).start()
    assert frames.take(1) == (1, "one", [])
    began = time.monotonic()
    assert frames.take(5) is None
    assert time.monotonic() - began < 1.0
    assert frames.finished and frames.error is error


def test_default_limits_fit_a_4_gb_container():
    config = ServerConfig()
    # Peak bytes per pixel of one inference, measured (benchmarks/bench_memory.py): the
    # standard network's, which also bounds the lite one's.
    assert config.memory_bound == IDLE_BYTES + 2 * BYTES_PER_PIXEL * config.max_pixels
    assert config.memory_bound < 3.2e9
    assert config.max_concurrent_inferences == 2
    assert config.max_batch == 1  # no batching by default
    # A batch of N images holds N images' memory.
    batched = ServerConfig(max_batch=4)
    assert batched.memory_bound == IDLE_BYTES + 2 * 4 * BYTES_PER_PIXEL * config.max_pixels
    # The largest image the server accepts fits in a message as raw RGB, in and out.
    assert config.max_message_bytes >= 3 * config.max_pixels
    assert config.grpc_message_limit > config.max_message_bytes
    assert RuntimeOptions().arena_shrink_pixels == 640 * 480  # camera frames stay warm
    assert not RuntimeOptions().memory_pattern


@pytest.mark.parametrize(
    "settings",
    [
        {"drain_s": -1},
        {"grace_s": -1},
        {"max_pixels": 0},
        {"max_message_bytes": 0},
        {"max_batch": 0},
        {"max_batch": 65},
        {"batch_window_ms": -0.5},
        {"batch_window_ms": 101},
        {"batch_window_ms": float("nan")},
    ],
)
def test_bad_server_settings_are_refused(settings):
    with pytest.raises(StylecastError):
        ServerConfig(**settings)


def test_bad_runtime_settings_are_refused():
    with pytest.raises(StylecastError, match="arena_shrink_pixels"):
        RuntimeOptions(arena_shrink_pixels=-1)
