"""Serving a multi-style model over gRPC: a style by name or a mix per request and per stream
frame, the first style by default, clear INVALID_ARGUMENT refusals, styles in ListModels, and
a v1 client (no style fields) that still works both ways."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from serving_fixtures import DUO_MODEL, DUO_STYLES, TINY_MODEL, encoded_image

from stylecast.serving.client import ServerError
from stylecast.serving.codec import decode_image_message, request_options
from stylecast.serving.imaging import EncodedImage, OutputFormat, StyliseOptions, decode_image
from stylecast.serving.pipeline import stylise
from stylecast.serving.repository import ModelRepository
from stylecast.serving.runtime import RuntimeOptions
from stylecast.serving.styles import StyleRequestError, parse_mix, style_weights
from stylecast.v1 import stylise_pb2 as pb

pytest_plugins = ("serving_fixtures",)

DUO = DUO_MODEL
STYLES = DUO_STYLES


@pytest.fixture(scope="module")
def duo_models(duo_models_dir: Path) -> Path:
    return duo_models_dir


@pytest.fixture(scope="module")
def duo_server(duo_models: Path):
    from serving_fixtures import server_config

    from stylecast.serving.server import StylecastServer

    server = StylecastServer(server_config(duo_models)).start()
    yield server
    server.stop(0)


@pytest.fixture
def duo_client(duo_server):
    from stylecast.serving.client import StylecastClient

    with StylecastClient(duo_server.address, timeout=30) as connection:
        yield connection


@pytest.fixture(scope="module")
def duo_local(duo_models: Path):
    return ModelRepository(duo_models, RuntimeOptions(intra_op_threads=1)).get(DUO)


def _local(model, **options) -> np.ndarray:
    image = EncodedImage(encoded_image(64, "PNG"))
    return decode_image(stylise(model, image, StyliseOptions(**options), OutputFormat("raw")).image)


def _remote(client, **options) -> np.ndarray:
    reply = client.stylise(
        encoded_image(64, "PNG"), DUO, request_options(encoding="raw", **options)
    )
    return decode_image_message(reply.image)


def test_style_weights_contract() -> None:
    assert style_weights([]) is None
    np.testing.assert_array_equal(style_weights(STYLES), [1, 0])
    np.testing.assert_array_equal(style_weights(STYLES, "great_wave"), [0, 1])
    np.testing.assert_allclose(style_weights(STYLES, mix={"starry_night": 7, "great_wave": 3}),
                               [0.7, 0.3])  # fmt: skip
    for kwargs, message in (
        ({"style": "mona_lisa"}, "unknown style 'mona_lisa'.*starry_night, great_wave"),
        ({"mix": {"starry_night": -0.5, "great_wave": 1}}, "must be >= 0"),
        ({"mix": {"starry_night": float("nan")}}, "must be >= 0"),
        ({"mix": {"starry_night": 0.0, "great_wave": 0.0}}, "all zero"),
        ({"style": "great_wave", "mix": {"great_wave": 1}}, "not both"),
    ):
        with pytest.raises(StyleRequestError, match=message):
            style_weights(STYLES, **kwargs)
    with pytest.raises(StyleRequestError, match="single style"):
        style_weights([], "starry_night", model="tiny")
    assert parse_mix("a:0.7, b:0.3") == {"a": 0.7, "b": 0.3}
    for bad in ("a", "a:x", ":1", "a:1,a:2", "a:0.5,"):
        with pytest.raises(StyleRequestError):
            parse_mix(bad)


def test_list_models_shows_the_styles(duo_client) -> None:
    cards = {card.name: card for card in duo_client.models()}
    assert [s.name for s in cards[DUO].styles] == STYLES
    assert all(len(s.sha256) == 64 and not s.thumbnail for s in cards[DUO].styles)
    assert not cards[TINY_MODEL].styles
    with_thumbs = {c.name: c for c in duo_client.models(include_thumbnails=True)}
    assert all(s.thumbnail.startswith("data:image/jpeg") for s in with_thumbs[DUO].styles)


def test_a_style_or_a_mix_per_request(duo_client, duo_local) -> None:
    default = _remote(duo_client)
    np.testing.assert_array_equal(default, _local(duo_local))
    np.testing.assert_array_equal(default, _remote(duo_client, style="starry_night"))
    wave = _remote(duo_client, style="great_wave")
    np.testing.assert_array_equal(wave, _local(duo_local, style="great_wave"))
    assert np.abs(wave.astype(int) - default.astype(int)).mean() > 1
    mix = {"starry_night": 0.7, "great_wave": 0.3}
    blend = _remote(duo_client, mix=mix)
    np.testing.assert_array_equal(blend, _local(duo_local, mix=tuple(mix.items())))
    np.testing.assert_array_equal(
        blend, _remote(duo_client, mix={"starry_night": 7, "great_wave": 3})
    )


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        (DUO, {"style": "mona_lisa"}, "unknown style 'mona_lisa'"),
        (DUO, {"mix": {"great_wave": -1.0}}, ">= 0"),
        (DUO, {"mix": {"great_wave": 0.0, "starry_night": 0.0}}, "all zero"),
        (TINY_MODEL, {"style": "starry_night"}, "single style"),
    ],
)
def test_bad_styles_are_invalid_argument(duo_client, model, options, message) -> None:
    with pytest.raises(ServerError) as info:
        duo_client.stylise(encoded_image(64), model, request_options(**options))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details


def test_stream_frames_change_the_mix(duo_client, duo_local) -> None:
    frame = encoded_image(64, "PNG")
    wave = request_options(encoding="raw", style="great_wave")
    requests = iter([
        pb.StyliseStreamRequest(sequence=1, model=DUO, image=pb.Image(data=frame),
                                options=request_options(encoding="raw"), max_pending=4),
        pb.StyliseStreamRequest(sequence=2, image=pb.Image(data=frame), options=wave),
        pb.StyliseStreamRequest(sequence=3, image=pb.Image(data=frame)),  # still great_wave
        pb.StyliseStreamRequest(sequence=4, image=pb.Image(data=frame),
                                options=request_options(encoding="raw", style="nope")),
    ])  # fmt: skip
    replies = list(duo_client.stub.StyliseStream(requests, timeout=30))
    assert [r.sequence for r in replies] == [1, 2, 3, 4]
    images = [decode_image_message(r.image) for r in replies[:3]]
    np.testing.assert_array_equal(images[0], _local(duo_local))
    np.testing.assert_array_equal(images[1], _local(duo_local, style="great_wave"))
    np.testing.assert_array_equal(images[2], images[1])
    assert replies[3].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "unknown style" in replies[3].error.message


def _v1_descriptor() -> descriptor_pool.DescriptorPool:
    """The stylecast.v1 messages as a v1 client knows them: without any style field."""
    proto = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(proto)
    for message in proto.message_type:
        for name in ("style", "style_mix", "styles"):
            for field in [f for f in message.field if f.name == name]:
                message.field.remove(field)
        for nested in [n for n in message.nested_type if n.name == "StyleMixEntry"]:
            message.nested_type.remove(nested)
    for message in [m for m in proto.message_type if m.name == "Style"]:
        proto.message_type.remove(message)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return pool


def test_a_v1_client_still_works(duo_client, duo_local) -> None:
    pool = _v1_descriptor()
    v1_request = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("stylecast.v1.StyliseRequest")
    )
    v1_card = message_factory.GetMessageClass(pool.FindMessageTypeByName("stylecast.v1.ModelCard"))
    old = v1_request(model=DUO)
    old.image.data = encoded_image(64, "PNG")
    old.options.output_encoding = pb.ENCODING_RAW_RGB
    request = pb.StyliseRequest.FromString(old.SerializeToString())
    reply = duo_client.stub.Stylise(request, timeout=30)
    np.testing.assert_array_equal(decode_image_message(reply.image), _local(duo_local))
    # a v1 client reads a multi-style card: the first style is its style_image
    card = next(c for c in duo_client.models() if c.name == DUO)
    read = v1_card.FromString(card.SerializeToString())
    assert read.name == DUO and read.style_image == "starry_night.jpg"


# -- the Python API (stylecast.load / stylecast.connect) ----------------------------------


@pytest.fixture(params=["local", "remote"])
def duo_api(request: pytest.FixtureRequest, duo_models: Path):
    """The two-style model through the Python API, in-process and through the server."""
    import stylecast

    if request.param == "local":
        return stylecast.load(DUO, models_dir=duo_models)
    connection = stylecast.connect(request.getfixturevalue("duo_server").address, timeout=30)
    request.addfinalizer(connection.close)
    return connection.model(DUO)


def test_api_picks_and_mixes_styles(duo_api, duo_local) -> None:
    photo = decode_image(EncodedImage(encoded_image(64, "PNG")))
    assert duo_api.styles == STYLES
    first = duo_api.stylise(photo)
    np.testing.assert_array_equal(duo_api.stylise(photo, style="starry_night"), first)
    wave = duo_api.stylise(photo, style="great_wave")
    assert np.abs(wave.astype(int) - first).mean() > 1
    np.testing.assert_array_equal(duo_api.stylise(photo, mix={"great_wave": 2.0}), wave)
    half = duo_api.stylise(photo, mix={"starry_night": 0.5, "great_wave": 0.5})
    assert not np.array_equal(half, first) and not np.array_equal(half, wave)
    np.testing.assert_array_equal(half, _local(duo_local, mix=(("great_wave", 0.5),
                                                               ("starry_night", 0.5))))  # fmt: skip


API_REFUSALS = [
    ({"style": "mona_lisa"}, r"unknown style 'mona_lisa'.*starry_night, great_wave"),
    ({"mix": {"starry_night": -1.0, "great_wave": 1.0}}, r"must be >= 0"),
    ({"mix": {"starry_night": 0.0}}, r"all zero"),
    ({"style": "great_wave", "mix": {"great_wave": 1.0}}, r"either a style or a style mix"),
    ({"mix": {"great_wave": "lots"}}, r"mix must map style names to numbers"),
    ({"mix": [("great_wave", 1.0)]}, r"mix must be a dict of style name to weight"),
    ({"style": 3}, r"style must be a style's name"),
]


@pytest.mark.parametrize(("options", "message"), API_REFUSALS)
def test_api_refuses_styles_it_cannot_honour(duo_api, options, message) -> None:
    from stylecast.errors import StylecastError

    photo = decode_image(EncodedImage(encoded_image(32, "PNG")))
    with pytest.raises(StylecastError, match=message):
        duo_api.stylise(photo, **options)


def test_api_single_style_model_has_no_styles(duo_models: Path) -> None:
    import stylecast
    from stylecast.errors import StylecastError

    tiny = stylecast.load(TINY_MODEL, models_dir=duo_models)
    assert tiny.styles == []
    with pytest.raises(StylecastError, match="has a single style"):
        tiny.stylise(decode_image(EncodedImage(encoded_image(32, "PNG"))), style="starry_night")
