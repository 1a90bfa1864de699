"""Dynamic micro-batching (serving.batcher) with a fake model whose runs the test controls,
then through a live server (``max_batch=4``); and the inference slot held for the network's
run only, never for decoding, blending or encoding.

Batches are made deterministic by holding the limiter's only slot while callers arrive: a
batch stays open until its runner gets the slot, so every caller has joined when it runs."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serving_fixtures import TINY_MODEL, encoded_image, wait_for

from stylecast.serving import pipeline
from stylecast.serving.batcher import BatchFailed, Caller, MicroBatcher
from stylecast.serving.client import StylecastClient
from stylecast.serving.codec import decode_image_message, request_options
from stylecast.serving.imaging import EncodedImage, OutputFormat, decode_image, raw_image
from stylecast.serving.limits import CallAbandoned, InferenceLimiter, Overloaded
from stylecast.serving.repository import ModelRepository
from stylecast.serving.runtime import RuntimeOptions, StyleModel

pytest_plugins = ("serving_fixtures",)

BUNDLED_LITE = Path(__file__).resolve().parent.parent / "models" / "starry_night_lite"


class FakeModel:
    """Inverts each image; records the batch shapes it ran. ``gate``: each run waits for it
    (stopping early, as onnxruntime does, when ``run_options.terminate`` is set); ``fail``:
    each run raises ``fail()``; ``max_shape``: the most it takes, as a TensorRT model."""

    def __init__(
        self,
        name: str = "fake",
        gate: bool = False,
        fail: Callable[[], Exception] | None = None,
        max_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.name = name
        self.fail = fail
        self.max_shape = max_shape
        self.gate = threading.Event()
        if not gate:
            self.gate.set()
        self.started = threading.Event()
        self.batches: list[tuple[int, ...]] = []
        self.run_options: list[Any] = []
        self.weights: list[Any] = []
        self.inputs: list[np.ndarray] = []
        self.style_names: list[str] = []

    def run(self, batch: np.ndarray, run_options: Any = None, weights: Any = None) -> np.ndarray:
        self.batches.append(batch.shape)
        self.inputs.append(batch.copy())
        self.weights.append(weights)
        self.run_options.append(run_options)
        self.started.set()
        while not self.gate.wait(0.01):
            if run_options is not None and run_options.terminate:
                raise RuntimeError("run terminated")
        if self.fail is not None:
            raise self.fail()
        return 255 - batch


class Call:
    """One caller of the batcher on its own thread."""

    def __init__(
        self,
        batcher: MicroBatcher,
        model: Any,
        image: np.ndarray,
        caller: Caller | None = None,
        weights: np.ndarray | None = None,
    ) -> None:
        self.image = image
        self.weights = weights
        self.caller = caller or Caller()
        self.result: pipeline.Inferred | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(batcher, model), daemon=True)
        self.thread.start()

    def _run(self, batcher: MicroBatcher, model: Any) -> None:
        try:
            self.result = batcher.infer(model, self.image, self.caller, self.weights)
        except BaseException as exc:
            self.error = exc

    def join(self) -> Call:
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the call never finished"
        return self


def image(seed: int, shape: tuple[int, int] = (12, 16)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def make_batcher(max_batch: int, window_s: float = 0.0, **limits: Any) -> MicroBatcher:
    settings = {"max_concurrent": 1, "max_queue": 16, "max_wait_s": 10.0, **limits}
    return MicroBatcher(InferenceLimiter(**settings), max_batch, window_s)


def gathered(
    batcher: MicroBatcher, start: Callable[[], list[Call]], expect_waiting: int
) -> list[Call]:
    """Start calls while the only slot is taken, wait until they all wait, free the slot."""
    with batcher.limiter.slot():
        calls = start()
        assert wait_for(lambda: batcher.waiting == expect_waiting)
    return [call.join() for call in calls]


def test_same_shape_calls_share_one_run_and_each_gets_its_own_image():
    batcher, model = make_batcher(max_batch=4), FakeModel()
    images = [image(seed) for seed in range(4)]
    calls = gathered(batcher, lambda: [Call(batcher, model, i) for i in images], 4)
    assert model.batches == [(4, 12, 16, 3)]
    for call in calls:
        assert call.error is None and call.result is not None
        assert np.array_equal(call.result.image, 255 - call.image)  # its own, as run alone
    assert len({call.result.image.tobytes() for call in calls if call.result}) == 4
    assert batcher.waiting == batcher.running == 0


def test_images_of_a_multistyle_model_batch_with_their_own_style_weights():
    batcher, model = make_batcher(max_batch=4), FakeModel()
    model.style_names = ["a", "b"]
    rows = [np.array([1.0, 0.0], np.float32), np.array([0.3, 0.7], np.float32), None]
    images = [image(seed) for seed in range(3)]
    pairs = list(zip(images, rows, strict=True))
    calls = gathered(batcher, lambda: [Call(batcher, model, i, weights=w) for i, w in pairs], 3)
    assert model.batches == [(3, 12, 16, 3)]
    (batch,), (weights,) = model.inputs, model.weights
    expected = {im.tobytes(): w for im, w in zip(images, rows, strict=True)}
    for row, picture in zip(weights, batch, strict=True):
        wanted = expected[picture.tobytes()]
        np.testing.assert_array_equal(row, [1.0, 0.0] if wanted is None else wanted)
    assert all(c.error is None for c in calls)


def test_different_shapes_and_models_never_share_a_batch():
    batcher, first, second = make_batcher(max_batch=8), FakeModel("a"), FakeModel("b")

    def start() -> list[Call]:
        return [
            *(Call(batcher, first, image(seed, (12, 16))) for seed in range(2)),
            *(Call(batcher, first, image(seed, (16, 12))) for seed in range(3)),
            *(Call(batcher, second, image(seed, (12, 16))) for seed in range(2)),
        ]

    calls = gathered(batcher, start, 7)
    assert sorted(first.batches) == [(2, 12, 16, 3), (3, 16, 12, 3)]
    assert second.batches == [(2, 12, 16, 3)]
    assert all(np.array_equal(c.result.image, 255 - c.image) for c in calls if c.result)
    assert all(call.error is None for call in calls)


def test_batches_hold_at_most_max_batch_images():
    batcher, model = make_batcher(max_batch=3), FakeModel()
    calls = gathered(batcher, lambda: [Call(batcher, model, image(s)) for s in range(7)], 7)
    assert sorted(shape[0] for shape in model.batches) == [1, 3, 3]
    assert all(call.error is None for call in calls)


def test_a_lone_image_waits_the_window_then_runs_alone():
    batcher, model = make_batcher(max_batch=4, window_s=0.05), FakeModel()
    call = Call(batcher, model, image(0)).join()
    assert call.result is not None and model.batches == [(1, 12, 16, 3)]
    assert call.result.queue_s >= 0.045  # it waited for company, not for ever


def test_a_full_batch_does_not_wait_for_the_window():
    batcher, model = make_batcher(max_batch=2, window_s=60.0), FakeModel()
    calls = [Call(batcher, model, image(seed)) for seed in range(2)]
    for call in calls:
        call.join()  # within join's 10 s, far below the 60 s window
    assert model.batches == [(2, 12, 16, 3)]


def test_a_failed_batched_run_fails_every_caller_of_that_batch():
    batcher, model = make_batcher(max_batch=3), FakeModel(fail=lambda: RuntimeError("boom"))
    calls = gathered(batcher, lambda: [Call(batcher, model, image(s)) for s in range(3)], 3)
    assert model.batches == [(3, 12, 16, 3)]
    for call in calls:  # the run's error, as unbatched (so the same status), each its own
        assert isinstance(call.error, RuntimeError) and str(call.error) == "boom"
        assert isinstance(call.error.__cause__, RuntimeError)
    assert len({id(call.error) for call in calls}) == 3
    lone = Call(batcher, model, image(9)).join()  # alone: the run's own error
    assert isinstance(lone.error, RuntimeError) and str(lone.error) == "boom"


class Unrebuildable(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def test_an_error_that_cannot_be_copied_reaches_each_caller_as_batch_failed():
    batcher, model = make_batcher(max_batch=2), FakeModel(fail=lambda: Unrebuildable("bad", 3))
    calls = gathered(batcher, lambda: [Call(batcher, model, image(s)) for s in range(2)], 2)
    for call in calls:
        assert isinstance(call.error, BatchFailed) and "bad" in str(call.error)
        assert isinstance(call.error.__cause__, Unrebuildable)


def test_batches_never_exceed_what_the_model_takes():
    """A model whose engine takes fewer images (a TensorRT profile) caps its batches."""
    batcher, model = make_batcher(max_batch=8), FakeModel(max_shape=(2, 64, 64, 3))
    gathered(batcher, lambda: [Call(batcher, model, image(s)) for s in range(5)], 5)
    assert sorted(shape[0] for shape in model.batches) == [1, 2, 2]


def test_a_caller_that_ends_during_the_run_leaves_the_others_their_images():
    batcher, model = make_batcher(max_batch=3), FakeModel(gate=True)
    images = [image(seed) for seed in range(3)]
    with batcher.limiter.slot():
        calls = [Call(batcher, model, i) for i in images]
        assert wait_for(lambda: batcher.waiting == 3)
    assert model.started.wait(10)
    calls[1].caller.end()  # cancelled while its batch runs
    calls[1].join()  # answered at once, before the run ends
    assert isinstance(calls[1].error, CallAbandoned) and calls[1].error.stage == "inference"
    assert not model.run_options[0].terminate  # the shared run goes on
    model.gate.set()
    for call in (calls[0], calls[2]):
        assert call.join().error is None and call.result is not None
        assert np.array_equal(call.result.image, 255 - call.image)
    assert batcher.running == 0


def test_the_run_stops_when_no_caller_is_left():
    batcher, model = make_batcher(max_batch=2), FakeModel(gate=True)
    lone = Call(batcher, model, image(0))
    assert model.started.wait(10)
    lone.caller.end()
    assert isinstance(lone.join().error, CallAbandoned)
    assert model.run_options[0].terminate  # alone: its run is stopped, as unbatched


def test_callers_gone_before_the_run_are_taken_out_of_the_batch():
    batcher, model = make_batcher(max_batch=4), FakeModel()
    remaining = [5.0]
    late = Caller(time_remaining=lambda: remaining[0])
    with batcher.limiter.slot():
        calls = [Call(batcher, model, image(seed)) for seed in range(3)]
        calls.append(Call(batcher, model, image(3), late))
        assert wait_for(lambda: batcher.waiting == 4)
        calls[0].caller.end()  # cancelled: the one that opened the batch (and runs it)
        remaining[0] = 0.0  # and another one's deadline passes
        assert wait_for(lambda: batcher.waiting == 2)
    for call in calls:
        call.join()
    assert model.batches == [(2, 12, 16, 3)]
    for call, deadline_passed in ((calls[0], False), (calls[3], True)):
        assert isinstance(call.error, CallAbandoned)
        assert (call.error.stage, call.error.deadline) == ("queue", deadline_passed)
    assert all(call.error is None for call in calls[1:3])
    ended = Caller()
    ended.end()
    with pytest.raises(CallAbandoned):  # a call already over never joins a batch
        batcher.infer(model, image(5), ended)


def test_a_batch_that_finds_no_slot_in_time_is_overloaded_for_every_caller():
    batcher, model = make_batcher(max_batch=4, max_wait_s=0.2), FakeModel()
    with batcher.limiter.slot():  # held past max_wait_s
        calls = [Call(batcher, model, image(seed)) for seed in range(2)]
        for call in calls:
            call.join()
    assert all(isinstance(call.error, Overloaded) for call in calls)
    assert model.batches == [] and batcher.waiting == 0


# -- through the server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_model(tiny_models_dir: Path) -> StyleModel:
    return ModelRepository(tiny_models_dir, RuntimeOptions(intra_op_threads=1)).get(TINY_MODEL)


def local_stylise(model: StyleModel, data: EncodedImage) -> np.ndarray:
    """The pipeline run in-process, unbatched, with raw RGB output."""
    return decode_image(pipeline.stylise(model, data, None, OutputFormat("raw")).image)


def close_to(got: np.ndarray, expected: np.ndarray) -> bool:
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    return got.shape == expected.shape and int(diff.max()) <= 1


def test_max_batch_1_is_the_unbatched_path(start_server):
    server = start_server()
    assert server.config.max_batch == 1 and server.servicer.inference.batcher is None
    assert server.metrics.registry.get_sample_value("stylecast_batch_size_count", {}) is None


def test_server_batches_concurrent_calls_and_streams_with_unbatched_results(
    start_server, local_model
):
    server = start_server(max_batch=4, max_concurrent_inferences=1)
    batcher = server.servicer.inference.batcher
    assert batcher is not None
    inputs = [image(seed, (48, 64)) for seed in range(4)]  # one shape: they may batch
    frames = [(sequence, encoded_image(64 + sequence, "PNG")) for sequence in range(1, 5)]
    options = request_options(encoding="raw")
    replies: list[Any] = [None] * len(inputs)
    with StylecastClient(server.address, timeout=60) as client:

        def call(index: int) -> None:
            replies[index] = client.stylise(inputs[index], TINY_MODEL, options)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
        with server.servicer.limiter.slot():  # the calls gather while inference is busy
            for thread in threads:
                thread.start()
            assert wait_for(lambda: batcher.waiting == len(inputs), timeout=30)
        for thread in threads:
            thread.join(timeout=60)
        stream = list(client.stream(frames, TINY_MODEL, options, max_pending=4, max_in_flight=4))
    for reply, pixels in zip(replies, inputs, strict=True):
        expected = local_stylise(local_model, raw_image(pixels))
        assert close_to(decode_image_message(reply.image), expected)
    assert [reply.sequence for reply in stream] == [1, 2, 3, 4]
    for reply, (_, data) in zip(stream, frames, strict=True):
        assert not reply.HasField("error")
        expected = local_stylise(local_model, EncodedImage(data))
        assert close_to(decode_image_message(reply.image), expected)
    sizes = {"model": TINY_MODEL}  # one batch of 4 calls, then the stream's frames one by one
    assert server.metrics.value("stylecast_batch_size_sum", sizes) == 8
    assert server.metrics.value("stylecast_batch_size_count", sizes) == 5
    ok = {"model": TINY_MODEL, "outcome": "ok"}
    assert server.metrics.value("stylecast_inferences_total", ok) == 8


@pytest.mark.parametrize("max_batch", [1, 4])
def test_the_slot_is_held_for_the_run_only_not_decode_blend_or_encode(
    start_server, monkeypatch, max_batch
):
    """Whatever blending and encoding cost, no inference slot is held meanwhile."""
    server = start_server(max_batch=max_batch, batch_window_ms=0)
    limiter = server.servicer.limiter
    held: dict[str, list[int]] = {"read": [], "run": [], "blend": [], "encode": []}

    def recording(name: str, work: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            held[name].append(limiter.running)
            return work(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(pipeline, "read_image", recording("read", pipeline.read_image))
    monkeypatch.setattr(pipeline, "blend", recording("blend", pipeline.blend))
    monkeypatch.setattr(pipeline, "encode_image", recording("encode", pipeline.encode_image))
    monkeypatch.setattr(StyleModel, "run", recording("run", StyleModel.run))
    with StylecastClient(server.address, timeout=60) as client:
        client.stylise(encoded_image(64), TINY_MODEL, request_options(strength=0.5))
        frames = [(1, encoded_image(64)), (2, encoded_image(64))]
        assert len(list(client.stream(frames, TINY_MODEL, max_pending=2, max_in_flight=1))) == 2
    assert held == {"read": [0] * 3, "run": [1] * 3, "blend": [0] * 3, "encode": [0] * 3}


# -- the measurement in serving.batcher's docstring ----------------------------------------------


@pytest.mark.skipif(not (BUNDLED_LITE / "1" / "model.onnx").is_file(), reason="no bundled model")
def test_bundled_lite_model_batch_of_4_matches_single_runs(record_property):
    """A batch of four 256×256 images gives each the single run's output (within 1 level);
    the time ratio is printed (``pytest -s``) and recorded, never asserted."""
    model = ModelRepository(BUNDLED_LITE.parent, RuntimeOptions()).get(BUNDLED_LITE.name)
    images = np.stack([image(seed, (256, 256)) for seed in range(4)])
    singles = np.stack([model.run(one) for one in images])
    assert close_to(model.run(images), singles)

    def seconds(work: Callable[[], object]) -> float:
        start = time.perf_counter()
        work()
        return time.perf_counter() - start

    singles_s, batch_s = [], []
    for _ in range(7):  # interleaved, so a busy moment hits both alike
        singles_s.append(seconds(lambda: [model.run(one) for one in images]))
        batch_s.append(seconds(lambda: model.run(images)))
    one_by_one, batched = statistics.median(singles_s), statistics.median(batch_s)
    ratio = batched / one_by_one
    record_property("batch4_over_4_singles_time", ratio)
    print(
        f"\n{model.name} on {model.provider}, 256x256: 4 single runs {one_by_one * 1e3:.0f} ms, "
        f"one batch of 4 {batched * 1e3:.0f} ms, time ratio {ratio:.2f}"
    )
