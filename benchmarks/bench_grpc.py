"""gRPC load benchmark (not a test): throughput and p50/p95/p99 latency of Stylise for 1, 4 and
16 concurrent clients on loopback with 640×480 JPEGs, against the same work done in-process
(the server's pipeline: decode + stylise + encode, alternated with gRPC calls), so the
server's overhead shows; then the camera path: `stylecast camera --video` streaming a
640×480 clip over the bidi stream, as frames per second.

    python benchmarks/bench_grpc.py [--models-dir models --model NAME] [--requests 32]
                                    [--time-limit 45] [--clients 1,4,16]

Bounded: each concurrency level stops after ``--requests`` calls or ``--time-limit`` seconds,
whichever comes first. The server runs as a separate `stylecast serve` process (so client and
server do not share a GIL) with its default limits unless given ``--serve-arg``. Without
``--models-dir`` a tiny random `lite` model is exported to a temporary folder (needs torch).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from stylecast.errors import StylecastError
from stylecast.serving.camera import CameraStats, run_camera
from stylecast.serving.client import ServerError, StylecastClient
from stylecast.serving.imaging import EncodedImage
from stylecast.serving.pipeline import stylise
from stylecast.serving.readiness import wait_for_ready_file
from stylecast.serving.repository import ModelRepository

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTENT = REPO_ROOT / "assets" / "content" / "kodim23.jpg"
SIZE = (640, 480)
WARMUP_CALLS = 2


@dataclass
class Level:
    """Results of one concurrency level."""

    clients: int
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def content_jpeg(size: tuple[int, int] = SIZE) -> bytes:
    with Image.open(CONTENT) as image:
        image = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def export_tiny_model(folder: Path, network: str = "lite") -> tuple[Path, str]:
    """A seeded random ``network`` (preset) exported through `stylecast export`'s code path
    into ``folder``/models as ``bench_NETWORK``."""
    import torch

    from stylecast.training.config import NetworkConfig, TrainConfig, to_dict
    from stylecast.training.export import export_model
    from stylecast.training.network import TransformNet
    from stylecast.training.run_folder import RunFolder, RunRecord

    torch.manual_seed(0)
    config = TrainConfig(style_image=str(REPO_ROOT / "assets/styles/starry_night.jpg"),
                         content_dirs=(str(CONTENT.parent),), vgg_weights="random:0",
                         network=NetworkConfig.preset(network))  # fmt: skip
    run = RunFolder(folder / f"run-{network}")
    run.write_record(RunRecord(train=to_dict(config), vgg_weights="random:0", style_sha256="-"))
    run.save_weights(TransformNet(config.network).state_dict())
    export_model(run.path, f"bench_{network}", folder / "models")
    return folder / "models", f"bench_{network}"


def paired_overhead(
    address: str, models_dir: Path, model_name: str, data: bytes, pairs: int
) -> dict[str, float]:
    """Alternate one in-process call (the server's pipeline with its defaults: decode +
    stylise + encode as JPEG) with one gRPC call, so both see the same machine load; medians
    in milliseconds, and the median per-pair difference."""
    model = ModelRepository(models_dir).get(model_name)
    parts: dict[str, list[float]] = {
        "decode": [], "inference": [], "encode": [], "total": [], "grpc": [], "overhead": [],
    }  # fmt: skip
    with StylecastClient(address, timeout=120) as client:
        for index in range(pairs + WARMUP_CALLS):
            began = time.perf_counter()
            timings = stylise(model, EncodedImage(data)).timings
            done = time.perf_counter()
            client.stylise(data, model_name)
            remote = time.perf_counter() - done
            if index < WARMUP_CALLS:
                continue
            seconds = {"decode": timings.decode_s, "inference": timings.inference_s,
                       "encode": timings.encode_s, "total": done - began, "grpc": remote,
                       "overhead": remote - (done - began)}  # fmt: skip
            for name, value in seconds.items():
                parts[name].append(1000 * value)
    return {name: statistics.median(values) for name, values in parts.items()}


def start_server(models_dir: Path, scratch: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    """`stylecast serve` on a free loopback port; returns the process and its address."""
    ready_file = scratch / "ready.json"
    command = [sys.executable, "-c", "import sys; from stylecast.cli import main; sys.exit(main())",
               "serve", "--models-dir", str(models_dir), "--host", "127.0.0.1", "--port", "0",
               "--reload-interval", "0", "--ready-file", str(ready_file), *extra]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return process, wait_for_ready_file(ready_file, process, timeout=120).address
    except StylecastError as exc:
        process.kill()
        raise SystemExit(f"server did not start: {exc}") from None


def run_level(address: str, model: str, data: bytes, clients: int, requests: int,
              time_limit: float) -> Level:  # fmt: skip
    """``clients`` threads, each with its own channel, share ``requests`` calls."""
    level = Level(clients)
    lock = threading.Lock()
    tickets = [requests]
    connections = [StylecastClient(address, timeout=120) for _ in range(clients)]
    for connection in connections:
        connection.wait_ready(10)
    connections[0].stylise(data, model)  # warm the server's path for this level
    stop_at = time.monotonic() + time_limit

    def worker(client: StylecastClient) -> None:
        while time.monotonic() < stop_at:
            with lock:
                if tickets[0] <= 0:
                    return
                tickets[0] -= 1
            began = time.perf_counter()
            try:
                reply = client.stylise(data, model)
            except ServerError as exc:
                with lock:
                    level.errors[exc.code.name] = level.errors.get(exc.code.name, 0) + 1
                continue
            elapsed = 1000 * (time.perf_counter() - began)
            with lock:
                level.latencies_ms.append(elapsed)
                for name in ("decode_ms", "queue_ms", "inference_ms", "encode_ms", "total_ms"):
                    level.server_ms.setdefault(name, []).append(getattr(reply.timings, name))

    threads = [threading.Thread(target=worker, args=(c,)) for c in connections]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    level.seconds = time.perf_counter() - began
    for connection in connections:
        connection.close()
    return level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, help="default: export a tiny lite model")
    parser.add_argument("--model", help="model name (with --models-dir)")
    parser.add_argument("--requests", type=int, default=32, help="calls per concurrency level")
    parser.add_argument("--time-limit", type=float, default=45.0, help="seconds per level")
    parser.add_argument("--clients", default="1,4,16", help="comma-separated concurrency levels")
    parser.add_argument("--pairs", type=int, default=8, help="in-process/gRPC call pairs")
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="extra `stylecast serve` argument"
    )
    parser.add_argument(
        "--camera-frames", type=int, default=96, help="frames of the camera clip (0: skip)"
    )
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    data = content_jpeg()
    with tempfile.TemporaryDirectory() as scratch:
        if args.models_dir is None:
            models_dir, model = export_tiny_model(Path(scratch))
        else:
            models_dir, model = args.models_dir, args.model
            if not model:
                raise SystemExit("--model is required with --models-dir")
        serve_args = [f"--max-queue={max(levels)}", *args.serve_arg]
        process, address = start_server(models_dir, Path(scratch), serve_args)
        try:
            local = paired_overhead(address, models_dir, model, data, args.pairs)
            results = [run_level(address, model, data, c, args.requests, args.time_limit)
                       for c in levels]  # fmt: skip
            camera = None
            if args.camera_frames > 0:
                clip = pan_clip(Path(scratch) / "pan.mp4", args.camera_frames)
                camera = camera_over_grpc(address, model, clip)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    report(results, local, args.pairs, model, len(data), serve_args)
    if camera is not None:
        print(
            f"\nCamera path (`stylecast camera --video --out`, a {args.camera_frames}-frame "
            f"{SIZE[0]}×{SIZE[1]} clip, bidi stream on loopback; decode, send, infer, "
            f"encode, decode of the reply and recording included): {camera.summary()}"
        )


def pan_clip(path: Path, frames: int) -> Path:
    """A ``frames``-long 640×480 MP4 panning across a bundled photo (no external data)."""
    import cv2

    photo = cv2.imread(str(CONTENT))
    photo = cv2.resize(photo, (SIZE[0] + frames * 2, SIZE[1] + frames))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, SIZE)
    try:
        for i in range(frames):
            writer.write(np.ascontiguousarray(photo[i : i + SIZE[1], 2 * i : 2 * i + SIZE[0]]))
    finally:
        writer.release()
    return path


def camera_over_grpc(address: str, model: str, clip: Path) -> CameraStats:
    """What `stylecast camera --video CLIP --out OUT` does against the server."""
    out = clip.with_name("stylised.mp4")
    with StylecastClient(address) as client:
        return run_camera(client, model, video=str(clip), out=str(out), show=False)


def report(results: list[Level], local: dict[str, float], local_calls: int, model: str,
           size: int, serve_args: list[str]) -> None:  # fmt: skip
    command = " ".join(["stylecast serve", *serve_args])
    print(f"\n## gRPC Stylise, {SIZE[0]}×{SIZE[1]} JPEG ({size // 1024} KiB), model {model}, "
          f"{os.cpu_count()} CPU cores, loopback; server: `{command}`\n")  # fmt: skip
    print(
        "| clients | calls | errors | throughput (img/s) | p50 ms | p95 ms | p99 ms "
        "| server queue p50 ms | server inference p50 ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for level in results:
        errors = ", ".join(f"{k} {v}" for k, v in level.errors.items()) or "0"
        done = len(level.latencies_ms)
        queue = statistics.median(level.server_ms.get("queue_ms", [float("nan")]))
        infer = statistics.median(level.server_ms.get("inference_ms", [float("nan")]))
        print(f"| {level.clients} | {done} | {errors} | {done / level.seconds:.2f} "
              f"| {level.percentile(50):.0f} | {level.percentile(95):.0f} "
              f"| {level.percentile(99):.0f} | {queue:.0f} | {infer:.0f} |")  # fmt: skip
    print(
        f"\nOverhead, {local_calls} alternating pairs of one in-process call and one gRPC call "
        f"(medians): in-process decode {local['decode']:.1f} + stylise "
        f"{local['inference']:.1f} + encode {local['encode']:.1f} = {local['total']:.1f} ms; "
        f"gRPC round trip {local['grpc']:.1f} ms; per-pair difference "
        f"{local['overhead']:+.1f} ms ({100 * local['overhead'] / local['total']:+.1f}%)."
    )


if __name__ == "__main__":
    main()
