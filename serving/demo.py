"""`stylecast demo`: the README's first command. Starts `stylecast serve` on a free loopback
port with the bundled models, stylises the sample images through gRPC (unary calls, and one
short StyliseStream as a camera app would), writes the results and a contact sheet, and stops
the server with SIGTERM, as an operator would."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from stylecast.errors import StylecastError

from .client import StylecastClient, to_array
from .stylise import collect_inputs

READY_PREFIX = "stylecast serve: listening on "
THUMB_HEIGHT = 160
STREAM_FRAMES = 12


@dataclass
class DemoResult:
    model: str
    version: int
    images: int
    server_ms: float  # mean server-side total per image
    round_trip_ms: float  # mean client-side round trip per image
    stream_fps: float


def start_server(models_dir: str, timeout_s: float = 60.0) -> tuple[subprocess.Popen, str]:
    """Run `stylecast serve` on 127.0.0.1:<free port>; return the process and its address."""
    command = [sys.executable, "-m", "stylecast", "serve", "--models-dir", models_dir,
               "--host", "127.0.0.1", "--port", "0"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # forward the server's log, and catch its "listening" line
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
            sys.stderr.write(f"  [server] {line}")

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                raise StylecastError(f"the server exited with code {process.returncode}") from None
            continue
        if line.startswith(READY_PREFIX):
            return process, line.removeprefix(READY_PREFIX).split()[0].rstrip(",")
    stop_server(process)
    raise StylecastError(f"the server did not start within {timeout_s:.0f} s")


def stop_server(process: subprocess.Popen, grace_s: float = 15.0) -> int:
    """SIGTERM (graceful shutdown), then SIGKILL if it overstays."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def contact_sheet(content: list[np.ndarray], rows: dict[str, list[np.ndarray]]) -> Image.Image:
    """Content images on top, one row per model below, each scaled to THUMB_HEIGHT."""

    def thumb(a: np.ndarray) -> Image.Image:
        image = Image.fromarray(a)
        return image.resize((max(1, image.width * THUMB_HEIGHT // image.height), THUMB_HEIGHT))

    all_rows = [[thumb(a) for a in content], *([thumb(a) for a in r] for r in rows.values())]
    width = max(sum(t.width for t in row) for row in all_rows)
    sheet = Image.new("RGB", (width, THUMB_HEIGHT * len(all_rows)), "white")
    for y, row in enumerate(all_rows):
        x = 0
        for tile in row:
            sheet.paste(tile, (x, y * THUMB_HEIGHT))
            x += tile.width
    return sheet


def stream_fps(client: StylecastClient, model: str, frame: bytes) -> float:
    """Frames per second of a short StyliseStream of one repeated frame."""
    began = time.perf_counter()
    frames = ((i, frame) for i in range(STREAM_FRAMES))
    replies = list(client.stream(frames, model, max_in_flight=2, max_pending=2))
    if [r.sequence for r in replies if r.HasField("image")][-1] != STREAM_FRAMES - 1:
        raise StylecastError("the stream did not answer its last frame")
    return len(replies) / (time.perf_counter() - began)


def run_demo(models_dir: str, content: list[str], out: str) -> list[DemoResult]:
    """Serve, stylise every content image with every model over gRPC, write results."""
    files = collect_inputs(content)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    process, address = start_server(models_dir)
    results, rows, originals = [], {}, []
    try:
        with StylecastClient(address, timeout=120) as client:
            client.wait_ready()
            cards = client.models()
            if not cards:
                raise StylecastError(f"the server loaded no model from {models_dir}")
            payloads = [path.read_bytes() for path in files]
            originals = [np.asarray(Image.open(path).convert("RGB")) for path in files]
            for card in cards:
                stylised, server_ms, trip_ms = [], [], []
                for path, payload in zip(files, payloads, strict=True):
                    began = time.perf_counter()
                    reply = client.stylise(payload, card.name)
                    trip_ms.append(1000 * (time.perf_counter() - began))
                    server_ms.append(reply.timings.total_ms)
                    image = to_array(reply.image)
                    target = out_dir / card.name / f"{path.stem}.jpg"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(image).save(target, quality=92)
                    stylised.append(image)
                rows[card.name] = stylised
                results.append(DemoResult(
                    card.name, card.version, len(files), float(np.mean(server_ms)),
                    float(np.mean(trip_ms)), stream_fps(client, card.name, payloads[0]),
                ))  # fmt: skip
    finally:
        code = stop_server(process)
    if code not in (0, -signal.SIGTERM):
        raise StylecastError(f"the server did not shut down cleanly (exit code {code})")
    contact_sheet(originals, rows).save(out_dir / "contact_sheet.jpg", quality=90)
    return results


def format_results(results: list[DemoResult], out: str) -> str:
    lines = [
        "| model | version | images | server ms/image | round trip ms/image | stream frames/s |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r.model} | {r.version} | {r.images} | {r.server_ms:.0f} "
            f"| {r.round_trip_ms:.0f} | {r.stream_fps:.1f} |"
            for r in results
        ),
        "",
        f"wrote {out}{os.sep}<model>/*.jpg and {out}{os.sep}contact_sheet.jpg",
    ]
    return "\n".join(lines)
