"""`stylecast demo`: the README's first command. Starts `stylecast serve` on a free loopback
port with the bundled models, stylises the sample images through gRPC (unary calls, and one
short StyliseStream as a camera app would), writes the results, a contact sheet (every photo
by every model), a style sheet (the first photo by every model, as `stylecast sheet` draws it)
and the server's log, and stops the server with SIGTERM, as an operator would.

A multi-style model is shown style by style (``model/style``) and as an even blend of all its
styles (``model/blend``); ``blend.jpg`` slides the first photo from its first style to its
second in BLEND_STEPS mixes, one request each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from stylecast.errors import StylecastError
from stylecast.v1 import stylise_pb2 as pb

from .client import StylecastClient
from .codec import decode_image_message, request_options
from .imaging import decode
from .readiness import ReadyInfo, wait_for_ready_file
from .sheet import DEFAULT_MAX_SIDE, ORIGINAL, Tile, compose, grid
from .stylise import collect_inputs

THUMB_SIDE = 240  # contact sheet tiles
CONTACT_SHEET = "contact_sheet.jpg"
STYLE_SHEET = "sheet.jpg"
STREAM_FRAMES = 12
SERVER_LOG = "server.log"
BLEND_SHEET = "blend.jpg"
BLEND_STEPS = 5  # mixes from the first style alone to the second alone
BLEND = "blend"


@dataclass(frozen=True)
class Variant:
    """What one demo row asks of a model: ``label`` (``model`` or ``model/style``) and the
    request options (None: the server's defaults)."""

    label: str
    options: pb.StyliseOptions | None = None


def variants(card: pb.ModelCard) -> list[Variant]:
    """A single-style model as it is; a multi-style model once per style and once as an even
    blend of them all."""
    names = [style.name for style in card.styles]
    if not names:
        return [Variant(card.name)]
    each = [Variant(f"{card.name}/{n}", request_options(style=n)) for n in names]
    even = request_options(mix={name: 1.0 / len(names) for name in names})
    return [*each, Variant(f"{card.name}/{BLEND}", even)]


def blend_strip(client: StylecastClient, card: pb.ModelCard, payload: bytes) -> list[Tile]:
    """One photo from the card's first style to its second, in BLEND_STEPS even steps."""
    first, second = (style.name for style in card.styles[:2])
    tiles = []
    for step in range(BLEND_STEPS):
        share = step / (BLEND_STEPS - 1)
        mix = {first: 1.0 - share, second: share}
        reply = client.stylise(payload, card.name, request_options(mix=mix))
        label = f"{first} {1 - share:.2f} / {second} {share:.2f}"
        tiles.append(Tile(label, decode_image_message(reply.image)))
    return tiles


@dataclass
class DemoResult:
    """One model's figures in the demo."""

    model: str  # the row's label: a model, or model/style for a multi-style model
    version: int
    images: int
    server_ms: float  # mean server-side total per image
    round_trip_ms: float  # mean client-side round trip per image
    stream_fps: float


def start_server(
    models_dir: str, log_path: Path, timeout_s: float = 60.0
) -> tuple[subprocess.Popen, ReadyInfo]:
    """Run `stylecast serve` on 127.0.0.1:<free port>, its output going to ``log_path``;
    return the process and where it listens once it is ready."""
    with tempfile.TemporaryDirectory(prefix="stylecast-demo-") as scratch:
        ready_file = Path(scratch) / "ready.json"
        command = [sys.executable, "-m", "stylecast", "serve", "--models-dir", models_dir,
                   "--host", "127.0.0.1", "--port", "0",
                   "--ready-file", str(ready_file)]  # fmt: skip
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            return process, wait_for_ready_file(ready_file, process, timeout_s)
        except StylecastError as exc:
            stop_server(process)
            raise StylecastError(f"{exc} (its log: {log_path})") from None


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


def contact_sheet(
    content: list[tuple[str, np.ndarray]], rows: dict[str, list[np.ndarray]]
) -> Image.Image:
    """The content images (name, pixels) on top, one row per model below, labelled."""
    top = [Tile(name, image) for name, image in content]
    below = [[Tile(model, image) for image in images] for model, images in rows.items()]
    return grid([top, *below], THUMB_SIDE)


def style_sheet(original: np.ndarray, stylised: dict[str, np.ndarray]) -> Image.Image:
    """One photo and each model's result (by model name), as `stylecast sheet` lays it out."""
    tiles = [Tile(ORIGINAL, original), *(Tile(name, image) for name, image in stylised.items())]
    return compose(tiles, DEFAULT_MAX_SIDE)


def stream_fps(
    client: StylecastClient, model: str, frame: bytes, options: pb.StyliseOptions | None = None
) -> float:
    """Frames per second of a short StyliseStream of one repeated frame."""
    began = time.perf_counter()
    frames = ((i, frame) for i in range(STREAM_FRAMES))
    replies = list(client.stream(frames, model, options, max_in_flight=2, max_pending=2))
    if [r.sequence for r in replies if r.HasField("image")][-1] != STREAM_FRAMES - 1:
        raise StylecastError("the stream did not answer its last frame")
    return len(replies) / (time.perf_counter() - began)


def run_demo(models_dir: str, content: list[str], out: str) -> list[DemoResult]:
    """Serve, stylise every content image with every model over gRPC, write results."""
    files = collect_inputs(content)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    process, ready = start_server(models_dir, out_dir / SERVER_LOG)
    results, rows, originals, strips = [], {}, [], []
    try:
        with StylecastClient(ready.address, timeout=120) as client:
            client.wait_ready()
            cards = client.models()
            if not cards:
                raise StylecastError(f"the server loaded no model from {models_dir}")
            payloads = [path.read_bytes() for path in files]
            originals = [decode(payload) for payload in payloads]  # upright, as served
            for card in cards:
                for variant in variants(card):
                    stylised, server_ms, trip_ms = [], [], []
                    for path, payload in zip(files, payloads, strict=True):
                        began = time.perf_counter()
                        reply = client.stylise(payload, card.name, variant.options)
                        trip_ms.append(1000 * (time.perf_counter() - began))
                        server_ms.append(reply.timings.total_ms)
                        target = out_dir / variant.label / f"{path.stem}.jpg"
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(reply.image.data)  # a JPEG: the default encoding
                        stylised.append(decode_image_message(reply.image))
                    rows[variant.label] = stylised
                    fps = stream_fps(client, card.name, payloads[0], variant.options)
                    results.append(DemoResult(
                        variant.label, card.version, len(files), float(np.mean(server_ms)),
                        float(np.mean(trip_ms)), fps,
                    ))  # fmt: skip
                if len(card.styles) > 1:
                    strips.append(blend_strip(client, card, payloads[0]))
    finally:
        code = stop_server(process)
    if code not in (0, -signal.SIGTERM):
        raise StylecastError(
            f"the server did not shut down cleanly (exit code {code}; its log: "
            f"{out_dir / SERVER_LOG})"
        )
    named = [(path.stem, image) for path, image in zip(files, originals, strict=True)]
    contact_sheet(named, rows).save(out_dir / CONTACT_SHEET, quality=90)
    first = {model: images[0] for model, images in rows.items()}
    style_sheet(originals[0], first).save(out_dir / STYLE_SHEET, quality=90)
    if strips:
        grid(strips, THUMB_SIDE).save(out_dir / BLEND_SHEET, quality=90)
    else:
        (out_dir / BLEND_SHEET).unlink(missing_ok=True)  # from an earlier run's models
    return results


def format_results(results: list[DemoResult], out: str) -> str:
    """The demo's figures as a Markdown table, and where its files are."""
    lines = [
        "| model | version | images | server ms/image | round trip ms/image | stream frames/s |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r.model} | {r.version} | {r.images} | {r.server_ms:.0f} "
            f"| {r.round_trip_ms:.0f} | {r.stream_fps:.1f} |"
            for r in results
        ),
        "",
        f"wrote {out}{os.sep}<model>/*.jpg, {out}{os.sep}{CONTACT_SHEET} and "
        f"{out}{os.sep}{STYLE_SHEET}; the server's log is {out}{os.sep}{SERVER_LOG}",
    ]
    if Path(out, BLEND_SHEET).is_file():
        lines.append(
            f"multi-style models: one row per style and an even blend; {out}{os.sep}"
            f"{BLEND_SHEET} slides from the first style to the second"
        )
    return "\n".join(lines)
