"""The gRPC service against a real server on a loopback ephemeral port: round trips, streams,
model cards, health, reflection and metrics."""

from __future__ import annotations

import io
import json
import threading
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from PIL import Image
from serving_fixtures import TINY_MODEL, encoded_image

from stylecast.serving import servicer as servicer_module
from stylecast.serving.client import ServerError, StylecastClient
from stylecast.serving.codec import decode_image_message, request_options
from stylecast.serving.health import SERVICE_NAME, model_health_name
from stylecast.serving.imaging import (
    EncodedImage,
    OutputFormat,
    StyliseOptions,
    decode,
    decode_image,
    raw_image,
)
from stylecast.serving.limits import LatestFrames
from stylecast.serving.pipeline import stylise
from stylecast.serving.repository import ModelRepository
from stylecast.serving.runtime import RuntimeOptions
from stylecast.v1 import stylise_pb2 as pb

pytest_plugins = ("serving_fixtures",)


@pytest.fixture(scope="module")
def local_model(tiny_models_dir: Path):
    """The same model run in-process (the reference for the server's output)."""
    return ModelRepository(tiny_models_dir, RuntimeOptions(intra_op_threads=1)).get(TINY_MODEL)


def local_stylise(model, image: EncodedImage, options: StyliseOptions | None = None):
    """The pipeline run in-process, with raw RGB output: what the server must send back."""
    return decode_image(stylise(model, image, options, OutputFormat("raw")).image)


@pytest.mark.parametrize(
    ("options", "local_options"),
    [
        (request_options(encoding="png"), StyliseOptions()),
        (
            request_options(strength=0.5, preserve_color=True, max_side=64, encoding="png"),
            StyliseOptions(strength=0.5, preserve_color=True, max_side=64),
        ),
    ],
    ids=["defaults", "options"],
)
def test_unary_round_trip_matches_local_runtime(client, local_model, options, local_options):
    data = encoded_image(96, "PNG")
    reply = client.stylise(data, TINY_MODEL, options)
    expected = local_stylise(local_model, EncodedImage(data), local_options)
    got = decode_image_message(reply.image)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert (reply.model, reply.model_version) == (TINY_MODEL, 1)
    assert reply.image.encoding == pb.ENCODING_PNG
    assert (reply.image.height, reply.image.width) == expected.shape[:2]
    timings = reply.timings
    assert timings.inference_ms > 0 and timings.decode_ms > 0 and timings.encode_ms > 0
    assert timings.total_ms >= timings.decode_ms + timings.inference_ms + timings.encode_ms - 1e-3


def test_raw_rgb_in_and_out(client, local_model):
    image = decode(encoded_image(80, "PNG"))
    reply = client.stylise(image, TINY_MODEL, request_options(encoding="raw"))
    assert reply.image.encoding == pb.ENCODING_RAW_RGB
    assert len(reply.image.data) == image.size
    got = decode_image_message(reply.image)
    assert np.array_equal(got, local_stylise(local_model, raw_image(image)))
    assert np.array_equal(got, local_model.run(image))  # default options: the network's output


@pytest.mark.parametrize(
    ("encoding", "pil_format"), [("jpeg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")]
)
@pytest.mark.parametrize("input_format", ["JPEG", "PNG", "WEBP"])
def test_encodings(client, encoding, pil_format, input_format):
    reply = client.stylise(
        encoded_image(64, input_format), TINY_MODEL, request_options(encoding=encoding)
    )
    with Image.open(io.BytesIO(reply.image.data)) as decoded:
        assert decoded.format == pil_format
        assert decoded.size == (reply.image.width, reply.image.height)


def test_stream_of_30_frames_comes_back_complete_and_in_order(client, local_model):
    frames = [(sequence, encoded_image(48 + sequence, "PNG")) for sequence in range(1, 31)]
    options = request_options(encoding="png")
    replies = list(client.stream(frames, TINY_MODEL, options, max_pending=4, max_in_flight=4))
    assert [r.sequence for r in replies] == list(range(1, 31))
    assert all(not r.dropped and not r.HasField("error") for r in replies)
    for reply, (_, data) in zip(replies, frames, strict=True):
        expected = local_stylise(local_model, EncodedImage(data))
        assert np.array_equal(decode_image_message(reply.image), expected)
        assert reply.model == TINY_MODEL and reply.timings.inference_ms > 0


class HeldFrames(LatestFrames):
    """A stream's frame buffer that hands out no frame before the client has sent them all,
    so frames surely pile up and the oldest are dropped, whatever the machine's speed."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.all_in = threading.Event()

    def close(self, *args, **kwargs) -> None:
        super().close(*args, **kwargs)
        self.all_in.set()

    def take(self, timeout: float):
        return super().take(timeout) if self.all_in.wait(timeout) else None


def test_stream_drops_stale_frames_and_says_so(client, shared_server, monkeypatch):
    monkeypatch.setattr(servicer_module, "LatestFrames", HeldFrames)
    frames = [(sequence, encoded_image(64)) for sequence in range(1, 31)]
    before = shared_server.metrics.value(
        "stylecast_stream_frames_dropped_total", {"model": TINY_MODEL}
    )
    replies = list(client.stream(frames, TINY_MODEL, max_pending=4))
    assert [r.sequence for r in replies] == [27, 28, 29, 30]  # the newest max_pending frames
    assert list(replies[0].dropped) == list(range(1, 27))  # told once, in the next reply
    assert all(not r.dropped for r in replies[1:])
    assert all(r.model == TINY_MODEL and not r.HasField("error") for r in replies)
    after = shared_server.metrics.value(
        "stylecast_stream_frames_dropped_total", {"model": TINY_MODEL}
    )
    assert after - before == 26


def test_stream_keeps_the_model_and_options_of_a_dropped_first_frame(client, monkeypatch):
    # Only the first frame names the model and options; it is dropped as stale, and the frame
    # that is answered must still use them.
    monkeypatch.setattr(servicer_module, "LatestFrames", HeldFrames)
    first = pb.StyliseStreamRequest(
        sequence=1, model=TINY_MODEL, image=pb.Image(data=encoded_image(64)),
        options=request_options(encoding="png"), max_pending=1,
    )  # fmt: skip
    rest = [pb.StyliseStreamRequest(sequence=s, image=pb.Image(data=encoded_image(64)))
            for s in (2, 3)]  # fmt: skip
    replies = list(client.stub.StyliseStream(iter([first, *rest]), timeout=30))
    assert [(r.sequence, list(r.dropped)) for r in replies] == [(3, [1, 2])]
    assert replies[0].model == TINY_MODEL and not replies[0].HasField("error")
    assert replies[0].image.encoding == pb.ENCODING_PNG


def test_stream_options_carry_over_and_can_change(client):
    requests = [
        pb.StyliseStreamRequest(
            sequence=1, model=TINY_MODEL, image=pb.Image(data=encoded_image(64)),
            options=request_options(encoding="png"), max_pending=3,  # none dropped
        ),
        pb.StyliseStreamRequest(sequence=2, image=pb.Image(data=encoded_image(64))),
        pb.StyliseStreamRequest(
            sequence=3, image=pb.Image(data=encoded_image(64)),
            options=request_options(encoding="webp"),
        ),
    ]  # fmt: skip
    replies = list(client.stub.StyliseStream(iter(requests), timeout=30))
    assert [r.image.encoding for r in replies] == [
        pb.ENCODING_PNG, pb.ENCODING_PNG, pb.ENCODING_WEBP,
    ]  # fmt: skip
    assert all(r.model == TINY_MODEL for r in replies)


def test_list_and_get_model(client):
    cards = client.models()
    assert [card.name for card in cards] == [TINY_MODEL]
    listed = cards[0]
    assert listed.style_thumbnail == ""
    assert listed.version == listed.latest_version == 1
    assert [v.version for v in listed.versions] == [1]
    assert listed.versions[0].precision == "fp32" and listed.versions[0].parity_passed
    assert listed.testing_only and listed.vgg_weights == "random:0"
    assert listed.provider == "CPUExecutionProvider"
    assert listed.description == "tiny random network for tests"
    assert dict(listed.final_losses) == {"total": 1.5, "style": 1.0}
    network = json.loads(listed.train_config_json)["network"]
    assert network == {"width": 16, "residual_blocks": 3, "architecture": "johnson"}
    assert json.loads(listed.io_json)["input"]["name"] == "image"
    full = client.model(TINY_MODEL)
    assert full.style_thumbnail.startswith("data:image/jpeg;base64,")
    assert client.models(include_thumbnails=True)[0].style_thumbnail == full.style_thumbnail


def test_health_reports_serving(client):
    assert client.health() == "SERVING"
    assert client.health(SERVICE_NAME) == "SERVING"
    assert client.health(model_health_name(TINY_MODEL)) == "SERVING"
    with pytest.raises(ServerError) as info:
        client.health(model_health_name("missing"))
    assert info.value.code == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_service(shared_server):
    with grpc.insecure_channel(shared_server.address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = database.get_services()
        assert SERVICE_NAME in services
        assert "grpc.health.v1.Health" in services
        proto = database.FindFileContainingSymbol(SERVICE_NAME)
        assert proto.package == "stylecast.v1"
        assert {s.name for s in proto.service} == {"Stylecast"}


def test_metrics_count_calls(shared_server, sample_image):
    metrics = shared_server.metrics
    labels = {"method": "Stylise", "model": TINY_MODEL, "code": "OK"}
    missing = {"method": "Stylise", "model": "", "code": "NOT_FOUND"}
    ok_before = metrics.value("stylecast_requests_total", labels)
    missing_before = metrics.value("stylecast_requests_total", missing)
    with StylecastClient(shared_server.address) as fresh:
        for _ in range(3):
            fresh.stylise(sample_image(64), TINY_MODEL)
        with pytest.raises(ServerError):
            fresh.stylise(sample_image(64), "no-such-model")
    assert metrics.value("stylecast_requests_total", labels) - ok_before == 3
    assert metrics.value("stylecast_requests_total", missing) - missing_before == 1
    assert metrics.value("stylecast_models_loaded") == 1
    assert metrics.value("stylecast_requests_in_flight", {"method": "Stylise"}) == 0
    # The same numbers over HTTP, as Prometheus scrapes them.
    url = f"http://127.0.0.1:{shared_server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    ok_line = 'stylecast_requests_total{code="OK",method="Stylise",model="tiny"}'
    assert ok_line in text
    assert "stylecast_request_duration_seconds_bucket" in text
    assert "stylecast_inference_duration_seconds_count" in text
    assert 'stylecast_requests_in_flight{method="Stylise"} 0.0' in text
