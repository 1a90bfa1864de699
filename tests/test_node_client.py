"""The Node example client (examples/node/stylise.js) against a live server.

A client in another language loads the same .proto and must get the same answers: the model
list, a decodable image of the input's size in the asked-for format, strength 0 sent as a set
field (not dropped as a proto3 default), bearer-token metadata, and gRPC status names on errors.
Skipped when ``node`` is not on PATH or ``examples/node/node_modules`` is missing (``make``
installs it with ``npm ci`` when npm is on PATH).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from serving_fixtures import (
    DUO_MODEL,
    DUO_STYLES,
    REPO_ROOT,
    encoded_image,
    server_config,
)

from stylecast.serving.client import StylecastClient
from stylecast.serving.server import StylecastServer

pytest_plugins = ("serving_fixtures",)

EXAMPLE = REPO_ROOT / "examples" / "node"
SCRIPT = EXAMPLE / "stylise.js"
BUNDLED_MODELS = REPO_ROOT / "models"
MODEL = "starry_night_lite"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not on PATH"),
    pytest.mark.skipif(
        not (EXAMPLE / "node_modules").is_dir(),
        reason="examples/node/node_modules is missing: run `npm ci --prefix examples/node`",
    ),
]


def run_node(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the example client; $STYLECAST_TOKEN is ``token`` (unset when None)."""
    env = {key: value for key, value in os.environ.items() if key != "STYLECAST_TOKEN"}
    if token is not None:
        env["STYLECAST_TOKEN"] = token
    assert NODE is not None
    return subprocess.run(
        [NODE, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture(scope="module")
def server() -> Iterator[StylecastServer]:
    """A live server of the bundled models on a free loopback port."""
    started = StylecastServer(server_config(BUNDLED_MODELS)).start()
    yield started
    started.stop(0)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A 96x64 PNG of a bundled photo."""
    path = tmp_path / "photo.png"
    path.write_bytes(encoded_image(96, "PNG"))
    return path


def pixels(data: bytes | Path) -> np.ndarray:
    source: Any = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(source) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_list_prints_every_loaded_model(server: StylecastServer) -> None:
    result = run_node("--server", server.address, "list")
    assert result.returncode == 0, result.stderr
    listed = [line.split("\t")[0] for line in result.stdout.splitlines()]
    with StylecastClient(server.address) as client:
        expected = [card.name for card in client.models()]
    bundled = sorted(p.parent.name for p in BUNDLED_MODELS.glob("*/model.json"))
    assert listed == expected == bundled
    assert MODEL in listed


@pytest.mark.parametrize(
    ("suffix", "pil_format"), [("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")]
)
def test_stylise_writes_a_decodable_image_of_the_input_size(
    server: StylecastServer, photo: Path, tmp_path: Path, suffix: str, pil_format: str
) -> None:
    out = tmp_path / f"out.{suffix}"
    result = run_node(
        "--server",
        server.address,
        "stylise",
        "--model",
        MODEL,
        "--in",
        str(photo),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert f"96x64, {MODEL} v1" in result.stdout
    with Image.open(out) as image:
        assert image.format == pil_format
        assert image.size == (96, 64)
    # No --strength: the full style (1), clearly not the photo.
    assert np.abs(pixels(out) - pixels(photo)).mean() > 5


def test_strength_zero_is_sent_and_returns_the_content(
    server: StylecastServer, photo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.png"
    args = ("stylise", "--model", MODEL, "--in", str(photo), "--out", str(out))
    result = run_node("--server", server.address, *args, "--strength", "0")
    assert result.returncode == 0, result.stderr
    assert np.array_equal(pixels(out), pixels(photo))


def test_unknown_model_is_not_found(server: StylecastServer, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jpg"
    args = ("stylise", "--model", "no_such_model", "--in", str(photo), "--out", str(out))
    result = run_node("--server", server.address, *args)
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr
    assert "no_such_model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_input_file(server: StylecastServer, tmp_path: Path) -> None:
    missing, out = tmp_path / "missing.jpg", tmp_path / "out.jpg"
    args = ("stylise", "--model", MODEL, "--in", str(missing), "--out", str(out))
    result = run_node("--server", server.address, *args)
    assert result.returncode == 3
    assert f"cannot read {missing}" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "expected one command"),
        (("frobnicate",), "expected one command"),
        (("--bogus", "list"), "--bogus"),
        (("stylise", "--in", "a.jpg", "--out", "b.jpg"), "stylise needs --model"),
        (("stylise", "--model", "m", "--in", "a.jpg", "--out", "b.bmp"), "--out must end in"),
        (
            ("stylise", "--model", "m", "--in", "a.jpg", "--out", "b.jpg", "--strength", "1.5"),
            "--strength must be a number in [0, 1]",
        ),
        (("--timeout", "0", "list"), "--timeout must be a positive number"),
        (
            ("stylise", "--model", "m", "--in", "a.jpg", "--out", "b.jpg", "--mix", "a=1"),
            "bad --mix",
        ),
        (
            ("stylise", "--model", "m", "--in", "a.jpg", "--out", "b.jpg", "--mix", "a:-1"),
            "weights >= 0",
        ),
        (
            ("stylise", "--model", "m", "--in", "a.jpg", "--out", "b.jpg", "--mix", "a:1,a:2"),
            "appears twice",
        ),
        (
            (
                "stylise",
                "--model",
                "m",
                "--in",
                "a.jpg",
                "--out",
                "b.jpg",
                "--style",
                "a",
                "--mix",
                "a:1",
            ),
            "either --style or --mix",
        ),
        (("list", "--style", "a"), "list takes no"),
    ],
)
def test_bad_arguments_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run_node(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "usage: node stylise.js --help" in result.stderr


def test_styles_of_a_multi_style_model(duo_models_dir: Path, photo: Path, tmp_path: Path) -> None:
    """`list` shows the styles; --style and --mix reach the server as the proto's style and
    style_mix (the same pixels as the Python client's request); bad names are the server's
    INVALID_ARGUMENT."""
    from stylecast.serving.codec import request_options

    duo = StylecastServer(server_config(duo_models_dir)).start()
    try:
        listed = run_node("--server", duo.address, "list")
        outs = {key: tmp_path / f"{key}.png" for key in ("style", "mix", "blend")}
        stylise = ("--server", duo.address, "stylise", "--model", DUO_MODEL, "--in", str(photo))
        by_style = run_node(*stylise, "--out", str(outs["style"]), "--style", "great_wave")
        by_mix = run_node(*stylise, "--out", str(outs["mix"]), "--mix", "great_wave:2")
        blend = run_node(*stylise, "--out", str(outs["blend"]), "--mix",
                         "starry_night:0.5,great_wave:0.5")  # fmt: skip
        unknown = run_node(*stylise, "--out", str(tmp_path / "x.png"), "--style", "mona_lisa")
        with StylecastClient(duo.address) as client:
            options = request_options(encoding="png", mix={"starry_night": 1, "great_wave": 1})
            python = client.stylise(photo.read_bytes(), DUO_MODEL, options).image.data
    finally:
        duo.stop(0)
    assert listed.returncode == 0, listed.stderr
    assert f"styles: {','.join(DUO_STYLES)}" in listed.stdout
    for result in (by_style, by_mix, blend):
        assert result.returncode == 0, result.stderr
    assert np.array_equal(pixels(outs["style"]), pixels(outs["mix"]))
    assert np.array_equal(pixels(outs["blend"]), pixels(python))
    assert not np.array_equal(pixels(outs["blend"]), pixels(outs["style"]))
    assert unknown.returncode == 1
    assert "INVALID_ARGUMENT" in unknown.stderr and "unknown style 'mona_lisa'" in unknown.stderr


def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as probe:  # a free port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_node("--server", f"127.0.0.1:{port}", "--timeout", "10", "list")
    assert result.returncode == 1
    assert "ListModels failed: UNAVAILABLE" in result.stderr


def test_bearer_token_from_flag_or_environment() -> None:
    token = "node-client-token"
    secured = StylecastServer(server_config(BUNDLED_MODELS, auth_tokens=(token,))).start()
    try:
        address = secured.address
        for missing in (
            run_node("--server", address, "list"),
            run_node("--server", address, "--token", "wrong", "list"),
        ):
            assert missing.returncode == 1
            assert "UNAUTHENTICATED" in missing.stderr
        by_flag = run_node("--server", address, "--token", token, "list")
        by_env = run_node("--server", address, "list", token=token)
    finally:
        secured.stop(0)
    for result in (by_flag, by_env):
        assert result.returncode == 0, result.stderr
        assert MODEL in result.stdout
