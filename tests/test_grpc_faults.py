"""Bad input and faults: every bad request gets a clear status (never UNKNOWN or a crash), the
server keeps serving good requests afterwards, stops work for calls that are gone, and its
memory stays bounded."""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from serving_fixtures import TINY_MODEL, encoded_image, wait_for

from stylecast.serving.client import ServerError, StylecastClient
from stylecast.serving.codec import request_options
from stylecast.serving.runtime import RuntimeOptions, StyleModel, asks_arena_shrink
from stylecast.v1 import stylise_pb2 as pb

pytest_plugins = ("serving_fixtures",)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width``x``height`` pixels but holds no pixel data (a 'bomb')."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def status_of(call, *args, **kwargs) -> grpc.StatusCode:
    with pytest.raises(ServerError) as info:
        call(*args, **kwargs)
    assert info.value.details, "every error carries a message"
    return info.value.code


def assert_serves(client: StylecastClient) -> None:
    reply = client.stylise(encoded_image(64), TINY_MODEL)
    assert reply.image.width == 64


def test_unknown_model_is_not_found(client):
    image = encoded_image(64)
    assert status_of(client.stylise, image, "nope") == grpc.StatusCode.NOT_FOUND
    assert status_of(client.model, "nope") == grpc.StatusCode.NOT_FOUND
    stream = client.stream([(1, image)], "nope")
    assert status_of(list, stream) == grpc.StatusCode.NOT_FOUND
    assert_serves(client)


BAD_IMAGES = {
    "not-an-image": pb.Image(data=b"this is not an image at all"),
    "empty": pb.Image(data=b""),
    "truncated-jpeg": pb.Image(data=encoded_image(96, "JPEG")[:300]),
    "truncated-png": pb.Image(data=encoded_image(96, "PNG")[:200]),
    "gif": pb.Image(data=b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04"),
    "raw-zero-width": pb.Image(data=b"", encoding=pb.ENCODING_RAW_RGB, width=0, height=10),
    "raw-size-mismatch": pb.Image(
        data=b"\x00" * 100, encoding=pb.ENCODING_RAW_RGB, width=10, height=10
    ),
    "too-small-for-network": pb.Image(
        data=b"\x00" * 48, encoding=pb.ENCODING_RAW_RGB, width=4, height=4
    ),
    "png-bomb": pb.Image(data=png_header_only(100_000, 100_000)),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_images_are_invalid_argument(client, name):
    request = pb.StyliseRequest(model=TINY_MODEL, image=BAD_IMAGES[name])
    with pytest.raises(grpc.RpcError) as info:
        client.stub.Stylise(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details()
    assert_serves(client)


@pytest.mark.parametrize(
    "options",
    [
        pb.StyliseOptions(strength=1.5),
        pb.StyliseOptions(strength=-0.1),
        pb.StyliseOptions(strength=float("nan")),
        pb.StyliseOptions(quality=101),
        pb.StyliseOptions(output_encoding=99),
    ],
    ids=["strength-high", "strength-negative", "strength-nan", "quality", "encoding"],
)
def test_bad_options_are_invalid_argument(client, options):
    code = status_of(client.stylise, encoded_image(64), TINY_MODEL, options)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert_serves(client)


def test_over_the_pixel_limit_and_message_size(start_server):
    server = start_server(max_pixels=60 * 60, max_message_bytes=64 * 1024)
    with StylecastClient(server.address) as client:
        with pytest.raises(ServerError) as info:
            client.stylise(encoded_image(96), TINY_MODEL)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "over the limit of 3600" in info.value.details
        big = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
        assert status_of(client.stylise, big, TINY_MODEL) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert_serves(client)


def requests_counted(server, method: str, model: str, code: str) -> float:
    labels = {"method": method, "model": model, "code": code}
    return server.metrics.value("stylecast_requests_total", labels)


def test_messages_over_the_size_limit_are_counted_as_the_client_sees_them(start_server):
    limit = 64 * 1024
    server = start_server(max_message_bytes=limit)
    noise = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    raw = request_options(encoding="raw")
    # Small JPEGs in; raw RGB out: 96x64x3 = 18 KB fits, 200x133x3 = 80 KB does not.
    fits, too_big_out = encoded_image(96), encoded_image(200)
    assert len(too_big_out) < limit
    with StylecastClient(server.address) as client:
        # A request over the limit (76,800 bytes of raw RGB): refused and counted.
        with pytest.raises(ServerError) as info:
            client.stylise(noise, TINY_MODEL)
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"over the server's limit of {limit} bytes" in info.value.details
        assert requests_counted(server, "Stylise", "", "RESOURCE_EXHAUSTED") == 1
        # A reply over the limit: RESOURCE_EXHAUSTED with a hint, counted as such, not as OK.
        with pytest.raises(ServerError) as info:
            client.stylise(too_big_out, TINY_MODEL, raw)
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "the reply would be" in info.value.details and "JPEG" in info.value.details
        assert requests_counted(server, "Stylise", TINY_MODEL, "RESOURCE_EXHAUSTED") == 1
        assert requests_counted(server, "Stylise", TINY_MODEL, "OK") == 0
        # In a stream, a frame over the limit, or whose reply would be, gets an error reply,
        # and the stream goes on.
        frames = [(1, noise), (2, fits), (3, too_big_out)]
        replies = list(client.stream(frames, TINY_MODEL, raw, max_pending=4, max_in_flight=1))
        assert [r.sequence for r in replies] == [1, 2, 3]
        exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert replies[0].error.code == exhausted and "request is" in replies[0].error.message
        assert not replies[1].HasField("error") and replies[1].image.width == 96
        assert replies[2].error.code == exhausted and "reply would be" in replies[2].error.message
        assert not replies[2].HasField("image")
        assert_serves(client)


def test_stream_bad_frame_gets_an_error_reply_and_the_stream_goes_on(client):
    frames = [(1, encoded_image(64)), (2, b"garbage"), (3, encoded_image(64))]
    replies = list(client.stream(frames, TINY_MODEL, max_pending=4, max_in_flight=1))
    assert [r.sequence for r in replies] == [1, 2, 3]
    assert not replies[0].HasField("error") and not replies[2].HasField("error")
    assert replies[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "not a decodable" in replies[1].error.message
    assert not replies[1].HasField("image")


@pytest.mark.parametrize(
    "requests",
    [
        [pb.StyliseStreamRequest(sequence=1, image=pb.Image(data=encoded_image(64)))],
        [
            pb.StyliseStreamRequest(
                sequence=5, model=TINY_MODEL, image=pb.Image(data=encoded_image(64))
            ),
            pb.StyliseStreamRequest(sequence=5, image=pb.Image(data=encoded_image(64))),
        ],
    ],
    ids=["no-model", "sequence-not-increasing"],
)
def test_stream_protocol_errors_are_invalid_argument(client, requests):
    with pytest.raises(grpc.RpcError) as info:
        list(client.stub.StyliseStream(iter(requests), timeout=10))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert_serves(client)


def test_busy_server_answers_resource_exhausted_quickly(start_server):
    server = start_server(max_concurrent_inferences=1, max_queue=0)
    limiter = server.servicer.limiter
    with StylecastClient(server.address) as client:
        with limiter.admit(), limiter.slot():  # the only place is taken
            began = time.monotonic()
            code = status_of(client.stylise, encoded_image(64), TINY_MODEL)
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert time.monotonic() - began < 1.0
        assert_serves(client)


def test_too_many_streams_is_resource_exhausted(start_server):
    server = start_server(max_streams=1)
    release = threading.Event()

    def slow_frames():
        yield 1, encoded_image(64)
        release.wait(10)

    with StylecastClient(server.address) as client:
        first = client.stream(slow_frames(), TINY_MODEL)
        assert next(first).sequence == 1  # the one stream is open
        second = client.stream([(1, encoded_image(64))], TINY_MODEL)
        assert status_of(list, second) == grpc.StatusCode.RESOURCE_EXHAUSTED
        release.set()
        assert list(first) == []


def test_deadline_while_queued_runs_no_inference(start_server):
    server = start_server(max_concurrent_inferences=1)
    limiter, metrics = server.servicer.limiter, server.metrics
    ok = {"model": TINY_MODEL, "outcome": "ok"}
    with StylecastClient(server.address) as client:
        with limiter.slot():  # inference is busy: the call waits in the queue
            code = status_of(client.stylise, encoded_image(64), TINY_MODEL, timeout=0.3)
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED
            assert wait_for(lambda: metrics.value("stylecast_requests_in_flight",
                                                  {"method": "Stylise"}) == 0)  # fmt: skip
        assert metrics.value("stylecast_inferences_total", ok) == 0
        abandoned = {"method": "Stylise", "stage": "queue"}
        assert metrics.value("stylecast_abandoned_total", abandoned) == 1
        assert_serves(client)
        assert metrics.value("stylecast_inferences_total", ok) == 1


def test_deadline_during_a_long_inference_stops_it(start_server, monkeypatch):
    # Make the inference take 30 s unless it is told to stop (as onnxruntime is, through
    # run_options.terminate), so the deadline surely falls inside it on any machine.
    real_run = StyleModel.run

    def long_run(self, batch, run_options, style_weights=None):
        stop_at = time.monotonic() + 30
        while not run_options.terminate and time.monotonic() < stop_at:
            time.sleep(0.01)
        # terminated: onnxruntime refuses to run
        return real_run(self, batch, run_options, style_weights)

    server = start_server()
    metrics = server.metrics
    with StylecastClient(server.address) as client:
        monkeypatch.setattr(StyleModel, "run", long_run)
        began = time.monotonic()
        code = status_of(client.stylise, encoded_image(64), TINY_MODEL, timeout=0.25)
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        # The server lets go of the call long before the inference could have finished, and
        # no inference completes for it.
        in_flight = {"method": "Stylise"}
        assert wait_for(lambda: metrics.value("stylecast_requests_in_flight", in_flight) == 0, 5)
        assert time.monotonic() - began < 5.0
        monkeypatch.undo()
        outcomes = {
            outcome: metrics.value(
                "stylecast_inferences_total", {"model": TINY_MODEL, "outcome": outcome}
            )
            for outcome in ("ok", "terminated")
        }
        assert outcomes == {"ok": 0, "terminated": 1}
        abandoned = {"method": "Stylise", "stage": "inference"}
        assert metrics.value("stylecast_abandoned_total", abandoned) == 1
        assert metrics.value("stylecast_inferences_running") == 0
        assert_serves(client)


def test_client_disconnecting_mid_stream_frees_the_stream(start_server):
    server = start_server(max_streams=1)
    metrics = server.metrics

    def endless_frames():
        for sequence in range(1, 10_000):  # bounded, but far more than the test reads
            yield sequence, encoded_image(64)

    with StylecastClient(server.address) as client:
        replies = client.stream(endless_frames(), TINY_MODEL, max_pending=2, max_in_flight=2)
        assert [next(replies).sequence for _ in range(3)] == [1, 2, 3]
        replies.close()  # the client goes away mid-stream
        in_flight = {"method": "StyliseStream"}
        assert wait_for(lambda: metrics.value("stylecast_requests_in_flight", in_flight) == 0)
        cancelled = {"method": "StyliseStream", "model": TINY_MODEL, "code": "CANCELLED"}
        assert metrics.value("stylecast_requests_total", cancelled) == 1
        # The only stream slot is free again, and the server still serves.
        again = list(client.stream([(1, encoded_image(64))], TINY_MODEL))
        assert [r.sequence for r in again] == [1]
        assert_serves(client)


def test_eight_concurrent_clients_all_succeed(shared_server):
    calls_each = 12

    def worker(index: int) -> list[int]:
        image = encoded_image(48 + 8 * index)
        with StylecastClient(shared_server.address, timeout=30) as client:
            return [client.stylise(image, TINY_MODEL).image.width for _ in range(calls_each)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(8)))
    assert [len(widths) for widths in results] == [calls_each] * 8
    assert all(widths == [48 + 8 * i] * calls_each for i, widths in enumerate(results))


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs /proc")
def test_memory_stays_bounded_under_bad_input(start_server):
    server = start_server(max_pixels=128 * 128)
    bad = [
        pb.StyliseRequest(model=TINY_MODEL, image=pb.Image(data=b"junk" * 1000)),
        pb.StyliseRequest(model=TINY_MODEL, image=pb.Image(data=encoded_image(200)[:2000])),
        pb.StyliseRequest(model=TINY_MODEL, image=pb.Image(data=png_header_only(50_000, 50_000))),
        pb.StyliseRequest(model=TINY_MODEL, image=pb.Image(data=encoded_image(300))),
        pb.StyliseRequest(model="x" * 200, image=pb.Image(data=encoded_image(64))),
        pb.StyliseRequest(model=TINY_MODEL, image=pb.Image(data=encoded_image(64)),
                          options=pb.StyliseOptions(strength=7)),
    ]  # fmt: skip
    good = pb.StyliseRequest(model=TINY_MODEL, image=pb.Image(data=encoded_image(64)))
    with StylecastClient(server.address) as client:

        def round_of_calls() -> None:
            for request in bad:
                with pytest.raises(grpc.RpcError) as info:
                    client.stub.Stylise(request, timeout=10)
                assert info.value.code() != grpc.StatusCode.UNKNOWN
            assert client.stub.Stylise(good, timeout=10).image.width == 64

        for _ in range(20):  # warm up allocators and caches
            round_of_calls()
        baseline = rss_mb()
        for _ in range(100):
            round_of_calls()
        growth = rss_mb() - baseline
    assert growth < 40, f"memory grew {growth:.0f} MB over 700 calls"
    labels = server.metrics.registry.get_sample_value
    assert labels("stylecast_requests_total", {"method": "Stylise", "model": "",
                                               "code": "NOT_FOUND"}) == 120  # fmt: skip


def load_tiny(models_dir, **options) -> StyleModel:
    from stylecast.serving.repository import load_model_dir

    model, _ = load_model_dir(
        models_dir / TINY_MODEL, RuntimeOptions(intra_op_threads=1, **options)
    )
    return model


def test_only_large_inferences_shrink_the_arena(tiny_models_dir, monkeypatch):
    model = load_tiny(tiny_models_dir, arena_shrink_pixels=100 * 100)
    assert not model.session.get_session_options().enable_mem_pattern
    asked: list[bool] = []
    real_run = model.session.run

    def spy(outputs, feeds, run_options=None):
        asked.append(run_options is not None and asks_arena_shrink(run_options))
        return real_run(outputs, feeds, run_options)

    monkeypatch.setattr(model.session, "run", spy)
    small, large = np.zeros((100, 100, 3), np.uint8), np.zeros((100, 101, 3), np.uint8)
    model.run(small)
    model.run(large)
    model.run(small, ort.RunOptions())
    model.run(large, ort.RunOptions())
    assert asked == [False, True, False, True]


GROWTH_SCRIPT = """
import sys
import numpy as np
from stylecast.serving.repository import ModelRepository
from stylecast.serving.runtime import RuntimeOptions

def rss():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS:")) / 1024

options = RuntimeOptions(intra_op_threads=1, arena_shrink_pixels=int(sys.argv[2]))
model = ModelRepository(sys.argv[1], options).get(sys.argv[3])
image = np.random.default_rng(0).integers(0, 256, (768, 768, 3), dtype=np.uint8)
idle = rss()
model.run(image)
print(rss() - idle)
"""


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs /proc")
def test_memory_returns_after_a_large_inference(tiny_models_dir):
    # onnxruntime's arena keeps what its largest run needed (about 500 bytes a pixel for this
    # network): kept, a 768x768 run holds on to about 300 MB; shrunk, it gives it back. Each
    # in a fresh process, as a server is.
    growth = {}
    for name, threshold in (("shrunk", 100_000), ("kept", 10**9)):
        command = [sys.executable, "-c", GROWTH_SCRIPT, str(tiny_models_dir), str(threshold),
                   TINY_MODEL]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        growth[name] = float(result.stdout.split()[-1])
    assert growth["kept"] > 150, growth
    assert growth["shrunk"] < growth["kept"] / 4, growth
