"""The camera page server without a browser: its WebSocket protocol, limits and failures
(the same as the gRPC server's), token auth, TLS, metrics, the CLI and the torch-free install.
The page itself, in Chromium, is tests/test_web_page.py."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from serving_fixtures import (
    DUO_MODEL,
    DUO_STYLES,
    TINY_MODEL,
    encoded_image,
    server_config,
    wait_for,
)
from test_grpc_security import pki, tls_settings  # noqa: F401  (pki is a fixture)
from test_no_torch import assert_ok, run_without_torch

from stylecast.cli import main
from stylecast.serving.imaging import EncodedImage, decode_image
from stylecast.serving.web.app import STATIC_DIR, WebServer
from stylecast.serving.web.config import WebConfig
from stylecast.serving.web.protocol import join_message, parse_frame, split_message
from stylecast.serving.web.session import PageStream
from stylecast.serving.web.thread import WebServerThread

pytest_plugins = ("serving_fixtures",)

TOKEN = "page-s3cret"


@pytest.fixture
def start_web(tiny_models_dir: Path) -> Iterator[Callable[..., WebServer]]:
    """``start_web(**ServerConfig overrides)`` → a started WebServer on loopback."""
    threads: list[WebServerThread] = []

    def start(**overrides: Any) -> WebServer:
        config = WebConfig(server=server_config(tiny_models_dir, **overrides), port=0)
        thread = WebServerThread(config)
        threads.append(thread)
        return thread.start()

    yield start
    for thread in threads:
        thread.stop()


def frame(seq: int, image: bytes | None = None, **header: Any) -> bytes:
    """A binary frame message for the tiny model."""
    fields = {"seq": seq, "model": TINY_MODEL, **header}
    return join_message(fields, encoded_image(64) if image is None else image)


def ws_url(server: WebServer) -> str:
    return server.url.replace("http", "ws", 1) + "api/stream"


async def converse(server: WebServer, messages: list[bytes], token: str = "") -> list[Any]:
    """Hello, then send each message and wait for its answer (one at a time, so none is
    dropped): binary replies as (header, image bytes), text ones as parsed JSON. The server's
    hello (or refusal) is the first item."""
    answers: list[Any] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(server)) as ws:
        await ws.send_str(json.dumps({"type": "hello", "token": token}))
        answers.append(json.loads((await ws.receive(timeout=10)).data))
        if answers[0]["type"] != "hello":
            return answers
        for message in messages:
            await ws.send_bytes(message)
            reply = await ws.receive(timeout=30)
            if reply.type == aiohttp.WSMsgType.BINARY:
                answers.append(split_message(reply.data))
            else:
                answers.append(json.loads(reply.data))
    return answers


def talk(server: WebServer, messages: list[bytes], **kwargs: Any) -> list[Any]:
    return asyncio.run(converse(server, messages, **kwargs))


# -- protocol --------------------------------------------------------------------------------


def test_frame_messages_round_trip_and_bad_headers_are_named():
    request = parse_frame(frame(3, b"jpeg-bytes", strength=0.5, max_side=320, format="webp"))
    assert (request.seq, request.model, request.image.data) == (3, TINY_MODEL, b"jpeg-bytes")
    assert (request.options.strength, request.options.max_side) == (0.5, 320)
    assert request.output.encoding == "webp"
    cases = {
        b"\x00\x00": "4-byte header length",
        b"\x00\x00\x00\x05{}": "bad frame header length",
        join_message({"seq": 1}, b"x"): "must name a model",
        join_message({"seq": -1, "model": "m"}, b"x"): "seq must be an integer",
        join_message({"seq": 1, "model": "m", "strength": True}, b"x"): "'strength'",
        join_message({"seq": 1, "model": "m", "strength": 2}, b"x"): "strength must be in [0, 1]",
        join_message({"seq": 1, "model": "m", "format": "raw"}, b"x"): "format must be one of",
        join_message({"seq": 1, "model": "m", "mix": [1]}, b"x"): "'mix' must be an object",
        join_message({"seq": 1, "model": "m"}, b""): "no image bytes",
    }
    for data, expected in cases.items():
        with pytest.raises(Exception, match=None) as info:
            parse_frame(data)
        assert expected in str(info.value), (data, str(info.value))


def test_a_busy_worker_answers_only_the_newest_frame_and_lists_the_dropped(tiny_models_dir):
    from stylecast.serving.inference import ServerInference
    from stylecast.serving.metrics import ServerMetrics
    from stylecast.serving.repository import ModelRepository

    config = server_config(tiny_models_dir)
    metrics = ServerMetrics()
    stream = PageStream(
        ModelRepository(tiny_models_dir), ServerInference(config, metrics), config, metrics
    )
    for seq in (1, 2, 3):  # they arrive while the worker is busy elsewhere
        assert stream.put(frame(seq)) is None
    stream.close()
    sent: list[bytes | str] = []
    stream.run(sent.append)
    assert len(sent) == 1 and isinstance(sent[0], bytes)
    header, _ = split_message(sent[0])
    assert (header["seq"], header["dropped"]) == (3, [1, 2])
    assert metrics.value("stylecast_stream_frames_dropped_total", {"model": TINY_MODEL}) == 2


# -- the page and the API ---------------------------------------------------------------------


def test_page_and_assets_are_served_from_the_package_with_nothing_from_elsewhere(start_web):
    server = start_web()

    async def fetch() -> dict[str, tuple[int, str, str]]:
        out = {}
        async with aiohttp.ClientSession() as session:
            for path in ("", "static/app.js", "static/style.css", "api/info", "api/health"):
                async with session.get(server.url + path) as response:
                    csp = response.headers.get("Content-Security-Policy", "")
                    out[path] = (response.status, await response.text(), csp)
        return out

    pages = asyncio.run(fetch())
    assert all(status == 200 for status, _, _ in pages.values())
    assert '<script type="module" src="/static/app.js">' in pages[""][1]
    assert "default-src 'self'" in pages[""][2]
    assert json.loads(pages["api/info"][1])["auth"] is False
    assert json.loads(pages["api/health"][1]) == {"status": "SERVING"}
    for asset in STATIC_DIR.iterdir():  # no CDN, no remote font: it works offline
        text = asset.read_text()
        assert "http://" not in text and "https://" not in text, asset.name


def test_a_frame_comes_back_stylised_with_timings_and_metrics(start_web):
    server = start_web(metrics_port=0)
    hello, (header, image) = talk(server, [frame(7, encoded_image(96), max_side=80)])
    assert hello == {"type": "hello", "max_in_flight": 2}
    assert (header["type"], header["seq"], header["model"], header["version"]) == (
        "frame",
        7,
        TINY_MODEL,
        1,
    )
    assert decode_image(EncodedImage(image)).shape[1] == 80 == header["width"]
    assert header["timings"]["total_ms"] > 0 and header["dropped"] == []
    labels = {"model": TINY_MODEL, "result": "ok"}
    assert server.metrics.value("stylecast_stream_frames_total", labels) == 1
    assert wait_for(
        lambda: (
            server.metrics.value(
                "stylecast_requests_total",
                {"method": "WebStream", "model": TINY_MODEL, "code": "OK"},
            )
            == 1
        )
    )
    assert server.metrics.value("stylecast_web_connections") == 0
    # The same registry as the gRPC server's metrics, on the Prometheus endpoint.
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as response:
        exposed = response.read().decode()
    assert 'stylecast_requests_total{code="OK",method="WebStream",model="tiny"} 1.0' in exposed
    assert 'stylecast_web_frame_duration_seconds_count{model="tiny"} 1.0' in exposed


def test_bad_frames_get_one_line_errors_in_the_apis_terms_and_the_stream_goes_on(start_web):
    server = start_web(max_pixels=100 * 100, max_message_bytes=200_000)
    messages = [
        frame(1, model="nope"),
        frame(2, b"not an image at all"),
        frame(3, encoded_image(200)),  # 200x133 pixels, over 100*100
        frame(4, mix={"starry": 1.0}),
        frame(5, b"\xff\xd8\xff" + bytes(300_000)),
        frame(6),
    ]
    answers = talk(server, messages)[1:]
    errors = [a for a in answers if isinstance(a, dict)]
    codes = {e["seq"]: (e["code"], e["message"]) for e in errors}
    assert codes[1][0] == "NOT_FOUND" and "unknown model 'nope'" in codes[1][1]
    assert codes[2] == ("INVALID_ARGUMENT", "not a decodable JPEG, PNG or WebP image")
    assert codes[3][0] == "INVALID_ARGUMENT" and "over the limit of 10000" in codes[3][1]
    assert codes[4][0] == "INVALID_ARGUMENT" and "has a single style" in codes[4][1]
    assert codes[5][0] == "RESOURCE_EXHAUSTED" and "over the server's limit" in codes[5][1]
    assert all("\n" not in e["message"] and e["fatal"] is False for e in errors)
    assert isinstance(answers[-1], tuple) and answers[-1][0]["seq"] == 6  # still streaming


def test_frames_carry_a_style_mix_for_a_multi_style_model(duo_models_dir: Path):
    config = WebConfig(server=server_config(duo_models_dir), port=0)
    with WebServerThread(config) as server:
        still = encoded_image(64, "PNG")
        answers = talk(
            server,
            [
                frame(1, still, model=DUO_MODEL, format="png", mix={DUO_STYLES[0]: 1}),
                frame(2, still, model=DUO_MODEL, format="png", mix={DUO_STYLES[1]: 2}),
                frame(3, still, model=DUO_MODEL, mix={"cubism": 1}),
                frame(4, still, model=DUO_MODEL, format="png", style=DUO_STYLES[1]),
            ],
        )[1:]
    first, second, bad, named = answers
    one, other, same = (decode_image(EncodedImage(a[1])) for a in (first, second, named))
    assert np.abs(one.astype(int) - other).mean() > 5  # the mix changes the output
    assert np.array_equal(other, same)  # a mix of one style is that style
    assert bad["code"] == "INVALID_ARGUMENT" and "unknown style 'cubism'" in bad["message"]


def test_the_hello_comes_first_and_frames_are_binary(start_web):
    server = start_web()

    async def misbehave() -> tuple[dict[str, Any], dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(ws_url(server)) as ws:
                await ws.send_bytes(frame(1))  # no hello
                refused = json.loads((await ws.receive(timeout=10)).data)
            async with session.ws_connect(ws_url(server)) as ws:
                await ws.send_str(json.dumps({"type": "hello"}))
                await ws.receive(timeout=10)
                await ws.send_str("{}")
                told = json.loads((await ws.receive(timeout=10)).data)
                await ws.send_bytes(frame(2))
                assert split_message((await ws.receive(timeout=30)).data)[0]["seq"] == 2
            return refused, told

    refused, told = asyncio.run(misbehave())
    assert refused["code"] == "INVALID_ARGUMENT" and refused["fatal"] is True
    assert refused["message"].startswith("the first message must be a hello")
    assert told["code"] == "INVALID_ARGUMENT" and told["fatal"] is False
    assert told["message"] == "after the hello, send frames as binary messages"


def test_token_auth_on_the_api_and_the_stream(start_web):
    server = start_web(auth_tokens=(TOKEN,))

    async def models(token: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            aiohttp.ClientSession() as session,
            session.get(server.url + "api/models", headers=headers) as response,
        ):
            return response.status, await response.json()

    status, body = asyncio.run(models(""))
    assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED"
    status, body = asyncio.run(models(TOKEN))
    assert status == 200 and [m["name"] for m in body["models"]] == [TINY_MODEL]
    assert body["models"][0]["styles"] == []  # single-style: the page hides the mix sliders
    refused = talk(server, [frame(1)], token="wrong")
    assert refused[0]["code"] == "UNAUTHENTICATED" and refused[0]["fatal"] is True
    assert "token" in refused[0]["message"]
    accepted = talk(server, [frame(1)], token=TOKEN)
    assert accepted[0]["type"] == "hello" and accepted[1][0]["seq"] == 1


def test_more_pages_than_the_limit_are_told_the_server_is_busy(start_web):
    server = start_web(max_streams=1)

    async def two_pages() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(server)) as one:
            await one.send_str(json.dumps({"type": "hello"}))
            assert json.loads((await one.receive(timeout=10)).data)["type"] == "hello"
            async with session.ws_connect(ws_url(server)) as two:
                await two.send_str(json.dumps({"type": "hello"}))
                busy = json.loads((await two.receive(timeout=10)).data)
                closed = await two.receive(timeout=10)
                assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            return dict(busy)

    busy = asyncio.run(two_pages())
    assert busy["code"] == "RESOURCE_EXHAUSTED" and busy["message"].startswith("server busy")
    assert busy["fatal"] is True
    assert talk(server, [frame(1)])[1][0]["seq"] == 1  # the slot is free again


def test_a_page_that_vanishes_mid_stream_frees_its_slot(start_web):
    server = start_web(max_streams=1)

    async def vanish() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(ws_url(server))
            await ws.send_str(json.dumps({"type": "hello"}))
            await ws.receive(timeout=10)
            for seq in range(1, 4):
                await ws.send_bytes(frame(seq, encoded_image(256)))
            await ws.close()  # gone, with frames in flight

    asyncio.run(vanish())
    assert wait_for(lambda: server.metrics.value("stylecast_web_connections") == 0, 10)
    assert wait_for(
        lambda: server.metrics.value("stylecast_requests_in_flight", {"method": "WebStream"}) == 0
    )
    assert talk(server, [frame(9)])[1][0]["seq"] == 9


def test_tls(start_web, pki):  # noqa: F811
    server = start_web(**tls_settings(pki))
    assert server.url.startswith("https://")
    context = ssl.create_default_context(cafile=str(pki["ca"]))

    async def over_tls() -> tuple[dict[str, Any], Any]:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "api/info", ssl=context) as response:
                info = await response.json()
            async with session.ws_connect(ws_url(server), ssl=context) as ws:
                await ws.send_str(json.dumps({"type": "hello"}))
                await ws.receive(timeout=10)
                await ws.send_bytes(frame(1))
                reply = await ws.receive(timeout=30)
            return info, split_message(reply.data)[0]

    info, header = asyncio.run(over_tls())
    assert info["version"] and header["seq"] == 1

    async def plaintext() -> None:
        plain = server.url.replace("https", "http", 1) + "api/info"
        async with aiohttp.ClientSession() as session, session.get(plain) as response:
            await response.read()

    with pytest.raises(aiohttp.ClientError):
        asyncio.run(plaintext())


# -- command line and install ----------------------------------------------------------------


def test_cli_refuses_bad_settings_in_one_line(capsys, tiny_models_dir, tmp_path):
    assert main(["web", "--models-dir", str(tiny_models_dir), "--tls-cert", "c.pem"]) == 1
    assert capsys.readouterr().err.strip() == (
        "stylecast web: error: TLS needs both a certificate and a key file"
    )
    missing = str(tmp_path / "missing.pem")
    code = main(["web", "--tls-cert", missing, "--tls-key", missing, "--port", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("stylecast web: error: cannot read TLS file")
    assert len(err.splitlines()) == 1


def test_web_command_serves_without_torch(tiny_models_dir: Path, tmp_path: Path):
    ready = tmp_path / "ready.json"
    result = run_without_torch(
        """
        import json, os, signal, threading, time, urllib.request
        from stylecast.cli import main
        ready = sys.argv[2]
        def probe():
            while not os.path.exists(ready):
                time.sleep(0.05)
            port = json.load(open(ready))["port"]
            url = f"http://127.0.0.1:{port}/api/models"
            print("MODELS", json.load(urllib.request.urlopen(url))["models"][0]["name"])
            os.kill(os.getpid(), signal.SIGTERM)
        threading.Thread(target=probe, daemon=True).start()
        code = main(["web", "--models-dir", sys.argv[1], "--port", "0", "--ready-file", ready,
                     "--reload-interval", "0"])
        assert code == 0, code
        import stylecast.serving.web.app
        """,
        str(tiny_models_dir),
        str(ready),
    )
    assert_ok(result)
    assert f"MODELS {TINY_MODEL}" in result.stdout and "camera page at http://" in result.stdout
    assert not ready.exists()  # removed on exit
