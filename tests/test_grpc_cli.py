"""The command line over gRPC: `stylecast serve` (as a real process: graceful shutdown, SIGHUP
reload), `stylecast client ...` and `stylecast camera`."""

from __future__ import annotations

import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serving_fixtures import TINY_MODEL, encoded_image, wait_for

from stylecast.cli import main
from stylecast.errors import StylecastError
from stylecast.serving.client import ServerError, StylecastClient
from stylecast.serving.readiness import (
    ReadyInfo,
    remove_ready_file,
    wait_for_ready_file,
    write_ready_file,
)

pytest_plugins = ("serving_fixtures",)

cv2 = pytest.importorskip("cv2")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_client_models_and_stylise(shared_server, tmp_path, capsys):
    server = ["--server", shared_server.address]
    assert main(["client", "models", *server]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["NAME", "VERSION", "PRECISION"]
    assert table[1].split()[:3] == [TINY_MODEL, "1", "fp32"]
    assert main(["client", "models", "--json", *server]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == TINY_MODEL

    source = tmp_path / "in.jpg"
    source.write_bytes(encoded_image(96))
    for name, fmt in (("out.png", "PNG"), ("out.jpg", "JPEG"), ("out.webp", "WEBP")):
        args = ["client", "stylise", *server, "--model", TINY_MODEL, str(source),
                str(tmp_path / name), "--strength", "0.7", "--max-side", "80"]  # fmt: skip
        assert main(args) == 0
        assert "inference" in capsys.readouterr().out
        with Image.open(tmp_path / name) as image:
            assert image.format == fmt and image.size == (80, 53)

    assert main(["client", "health", *server]) == 0
    assert main(["client", "health", *server, "--model", TINY_MODEL]) == 0
    assert main(["client", "health", *server, "--model", "nope"]) == 4  # a server state
    assert "SERVICE_UNKNOWN" in capsys.readouterr().out


def test_client_errors_are_one_line(shared_server, tmp_path, capsys):
    source = tmp_path / "in.jpg"
    source.write_bytes(encoded_image(64))
    out = str(tmp_path / "out.jpg")
    args = ["client", "stylise", "--model", "nope", str(source), out]
    assert main([*args, "--server", shared_server.address]) == 4
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "NOT_FOUND" in error
    unreachable = f"127.0.0.1:{free_port()}"
    assert main([*args, "--server", unreachable, "--timeout", "2"]) == 4
    assert "UNAVAILABLE" in capsys.readouterr().err
    assert main(["client", "stylise", "--model", TINY_MODEL, "missing.jpg", out]) == 1


def _in_flight(metrics_port: int) -> float:
    """`stylecast_requests_in_flight{method="Stylise"}` scraped from the metrics endpoint."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith('stylecast_requests_in_flight{method="Stylise"}'):
                return float(line.split()[-1])
    return 0.0


def test_serve_reloads_on_sighup_and_shuts_down_gracefully(models_copy, tmp_path):
    metrics_port = free_port()
    ready_file = tmp_path / "ready.json"
    command = [
        sys.executable, "-c", "import sys; from stylecast.cli import main; sys.exit(main())",
        "serve", "--models-dir", str(models_copy), "--host", "127.0.0.1", "--port", "0",
        "--metrics-port", str(metrics_port), "--reload-interval", "0", "--grace", "20",
        "--drain-seconds", "1",
        "--intra-op-threads", "1", "--ready-file", str(ready_file),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready = wait_for_ready_file(ready_file, process, timeout=60)
        assert ready.address == f"127.0.0.1:{ready.port}" and ready.port > 0
        assert (ready.metrics_port, ready.pid) == (metrics_port, process.pid)
        client = StylecastClient(ready.address, timeout=30)
        client.wait_ready(10)
        assert client.health() == "SERVING"
        # SIGHUP rescans the models folder.
        shutil.copytree(models_copy / TINY_MODEL, models_copy / "second")
        card = json.loads((models_copy / "second" / "model.json").read_text())
        (models_copy / "second" / "model.json").write_text(json.dumps({**card, "name": "second"}))
        process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: len(client.models()) == 2, timeout=10)
        # SIGTERM while a slow call is in flight: the call still completes.
        big = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
        result: dict[str, object] = {}

        def slow_call() -> None:
            try:
                result["reply"] = client.stylise(big, TINY_MODEL)
            except ServerError as exc:
                result["error"] = exc

        caller = threading.Thread(target=slow_call)
        caller.start()
        assert wait_for(lambda: _in_flight(metrics_port) >= 1, timeout=10)
        process.send_signal(signal.SIGTERM)  # mid-inference; the drain ends by itself
        caller.join(timeout=30)
        assert "error" not in result, result.get("error")
        assert result["reply"].image.width == 512
        assert process.wait(timeout=30) == 0
        client.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not ready_file.exists()  # removed on exit: it would say a stopped server is up
    out = process.stdout.read().decode()  # the human line is still printed, for people
    assert f"stylecast serve: listening on {ready.address}, metrics on :{metrics_port}" in out
    log = process.stderr.read().decode()
    assert "SIGTERM: shutting down" in log and "draining for 1 s" in log
    assert "server stopped" in log
    assert "Traceback" not in log


def test_ready_file_is_written_atomically_and_read_back(tmp_path):
    path = tmp_path / "ready.json"
    info = ReadyInfo("127.0.0.1:5001", 5001, None, 42)
    write_ready_file(path, info)
    assert [p.name for p in tmp_path.iterdir()] == ["ready.json"]  # no temporary file left
    assert json.loads(path.read_text())["address"] == "127.0.0.1:5001"
    assert wait_for_ready_file(path, timeout=1) == info
    remove_ready_file(path)
    remove_ready_file(path)  # already gone: no error
    began = time.monotonic()
    with pytest.raises(StylecastError, match="not ready within"):
        wait_for_ready_file(path, timeout=0.2)
    assert time.monotonic() - began < 2
    path.write_text("{}")
    with pytest.raises(StylecastError, match="not a stylecast ready file"):
        wait_for_ready_file(path, timeout=1)


def test_ready_file_reader_stops_when_the_server_exits(tmp_path):
    command = [sys.executable, "-m", "stylecast", "serve", "--models-dir",
               str(tmp_path / "missing"), "--ready-file", str(tmp_path / "ready.json")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with pytest.raises(StylecastError, match="exited with code 1 before it was ready"):
        wait_for_ready_file(tmp_path / "ready.json", process, timeout=60)
    _, err = process.communicate(timeout=10)
    assert "models folder not found" in err.decode()


def _write_video(path: Path, frames: int, size: tuple[int, int] = (96, 64)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    photo = cv2.imdecode(np.frombuffer(encoded_image(128), np.uint8), cv2.IMREAD_COLOR)
    for index in range(frames):
        frame = cv2.resize(np.roll(photo, 4 * index, axis=1), size)
        writer.write(frame)
    writer.release()


def _count_frames(path: Path) -> tuple[int, tuple[int, ...]]:
    capture = cv2.VideoCapture(str(path))
    count, shape = 0, ()
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count, shape = count + 1, frame.shape
    capture.release()
    return count, shape


@pytest.mark.parametrize(
    ("out_name", "max_frames", "expected"), [("out.avi", 0, 12), ("out.mp4", 5, 5)]
)
def test_camera_streams_a_video_to_a_file(
    shared_server, tmp_path, capsys, monkeypatch, out_name, max_frames, expected
):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = tmp_path / "in.avi"
    _write_video(video, 12)
    out = tmp_path / out_name
    args = ["camera", "--server", shared_server.address, "--model", TINY_MODEL,
            "--video", str(video), "--out", str(out), "--max-frames", str(max_frames)]  # fmt: skip
    assert main(args) == 0
    assert f"{expected} frames stylised of {expected} sent (0 dropped, 0 errors)" in (
        capsys.readouterr().out
    )
    assert _count_frames(out) == (expected, (64, 96, 3))


def test_camera_without_a_screen_needs_out(shared_server, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = tmp_path / "in.avi"
    _write_video(video, 2)
    args = [
        "camera",
        "--server",
        shared_server.address,
        "--model",
        TINY_MODEL,
        "--video",
        str(video),
    ]
    assert main(args) == 1
    assert "pass --out" in capsys.readouterr().err
    missing = [*args[:-1], str(tmp_path / "missing.avi"), "--out", str(tmp_path / "o.avi")]
    assert main(missing) == 1
    assert "cannot open video" in capsys.readouterr().err


def test_camera_without_opencv_says_how_to_install(monkeypatch):
    from stylecast.serving import camera

    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(StylecastError, match=r"stylecast\[camera\]"):
        camera.import_cv2()


def test_stream_reply_frames_decode_as_images(shared_server):
    """What the camera relies on: JPEG replies that OpenCV decodes to the frame's size."""
    with StylecastClient(shared_server.address) as client:
        replies = list(client.stream([(1, encoded_image(96))], TINY_MODEL))
    frame = cv2.imdecode(np.frombuffer(replies[0].image.data, np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == (64, 96, 3)
    with Image.open(io.BytesIO(replies[0].image.data)) as image:
        assert image.format == "JPEG"
