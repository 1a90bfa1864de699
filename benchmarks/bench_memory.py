"""Server memory benchmark (not a test): the resident memory of a `stylecast serve` process
(VmRSS now and VmHWM, its peak, from /proc/PID/status) through a sequence of requests, for the
old runtime settings (onnxruntime's memory pattern on, CPU arena never shrunk) and the new
defaults (pattern off, arena shrunk after inferences over ``--arena-shrink-pixels``), side by
side; then the peak bytes per pixel of one inference for each network, from which the
memory bound of the server's limits is stated (README, "Memory").

    python benchmarks/bench_memory.py [--models-dir models --model NAME] [--networks lite,standard]
                                      [--sequence 640x480,1920x1080,2880x2880,640x480]

Each configuration runs in a fresh server process (JPEG requests of the bundled photo, JPEG
replies, one client, ``--intra-op-threads`` threads). Without ``--models-dir`` seeded random
networks are exported to a temporary folder (needs torch; timings do not depend on weights).
Linux only (/proc).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from stylecast.errors import StylecastError
from stylecast.serving.client import StylecastClient
from stylecast.serving.readiness import wait_for_ready_file

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTENT = REPO_ROOT / "assets" / "content" / "kodim23.jpg"
STYLE = REPO_ROOT / "assets" / "styles" / "starry_night.jpg"
MAX_PIXELS = 2880 * 2880  # raised for the benchmark, so every size in it is accepted
OLD = ("old: pattern on, arena kept", ["--memory-pattern", f"--arena-shrink-pixels={MAX_PIXELS}"])
NEW = ("new: defaults", [])
PER_PIXEL_SIZES = ((640, 480), (1280, 720), (1920, 1088))


@dataclass(frozen=True)
class Memory:
    """A server process's resident memory, MB: now and the peak so far."""

    rss: float
    peak: float


def memory_of(pid: int) -> Memory:
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(value.split()[0]) / 1024
    return Memory(values["VmRSS"], values["VmHWM"])


def jpeg(width: int, height: int) -> bytes:
    with Image.open(CONTENT) as image:
        image = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def export_random(folder: Path, preset: str) -> str:
    """Export a seeded random ``preset`` network into ``folder/models``; returns its name."""
    import torch

    from stylecast.training.config import NetworkConfig, TrainConfig, to_dict
    from stylecast.training.export import export_model
    from stylecast.training.network import TransformNet
    from stylecast.training.run_folder import RunFolder, RunRecord

    config = TrainConfig(
        style_image=str(STYLE), content_dirs=(str(STYLE.parent),), image_size=64,
        vgg_weights="random:0", network=NetworkConfig.preset(preset),
    )  # fmt: skip
    torch.manual_seed(0)
    run = RunFolder(folder / f"run-{preset}")
    run.write_record(
        RunRecord(
            train=to_dict(config),
            vgg_weights="random:0",
            style_sha256=hashlib.sha256(STYLE.read_bytes()).hexdigest(),
            commands=["bench_memory.py (random weights)"],
            final_losses={},
        )
    )
    run.save_weights(TransformNet(config.network).state_dict())
    name = f"random_{preset}"
    export_model(folder / f"run-{preset}", name, folder / "models")
    return name


class Server:
    """A `stylecast serve` process on a free loopback port."""

    def __init__(self, models_dir: Path, scratch: Path, threads: int, extra: list[str]) -> None:
        stamp = time.monotonic_ns()
        ready_file = scratch / f"ready-{stamp}.json"
        self.log = scratch / f"serve-{stamp}.log"
        command = [
            sys.executable, "-c", "import sys; from stylecast.cli import main; sys.exit(main())",
            "serve", "--models-dir", str(models_dir), "--host", "127.0.0.1", "--port", "0",
            "--reload-interval", "0", "--drain-seconds", "0", "--ready-file", str(ready_file),
            "--intra-op-threads", str(threads), "--max-pixels", str(MAX_PIXELS),
            "--max-message-bytes", str(64 * 1024 * 1024), *extra,
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        try:
            self.address = wait_for_ready_file(ready_file, self.process, timeout=120).address
        except StylecastError as exc:
            self.process.kill()
            raise SystemExit(f"server did not start: {exc}\n{self.log.read_text()}") from None
        self.client = StylecastClient(self.address, timeout=600)

    def memory(self) -> Memory:
        return memory_of(self.process.pid)

    def stylise(self, data: bytes, model: str) -> float:
        began = time.perf_counter()
        self.client.stylise(data, model)
        return time.perf_counter() - began

    def close(self) -> None:
        self.client.close()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)


def sequence_run(
    models_dir: Path, model: str, scratch: Path, threads: int, extra: list[str], sizes: list
) -> list[tuple[str, Memory, float]]:
    """(step, memory after it, seconds) for idle, then each size of ``sizes`` in turn."""
    server = Server(models_dir, scratch, threads, extra)
    try:
        rows = [("idle", server.memory(), 0.0)]
        for width, height in sizes:
            seconds = server.stylise(jpeg(width, height), model)
            rows.append((f"{width}×{height}", server.memory(), seconds))
    finally:
        server.close()
    return rows


def per_pixel_run(
    models_dir: Path, model: str, scratch: Path, threads: int, extra: list[str]
) -> list[tuple[str, float, float, float]]:
    """(size, peak MB above idle, peak bytes per pixel, seconds), each from a fresh server:
    each size twice (the second run of a size is where the memory pattern doubles), then two
    of the largest at once (bytes per pixel of each)."""
    rows = []
    for width, height in PER_PIXEL_SIZES:
        rows.append(peak_above_idle(models_dir, model, scratch, threads, extra, width, height, 1))
    width, height = PER_PIXEL_SIZES[-1]
    rows.append(peak_above_idle(models_dir, model, scratch, threads, extra, width, height, 2))
    return rows


def peak_above_idle(
    models_dir: Path, model: str, scratch: Path, threads: int, extra: list[str],
    width: int, height: int, at_once: int,
) -> tuple[str, float, float, float]:  # fmt: skip
    server = Server(models_dir, scratch, threads, extra)
    try:
        idle = server.memory().rss
        data = jpeg(width, height)
        times = []
        for _ in range(2):
            began = time.perf_counter()
            calls = [threading.Thread(target=server.stylise, args=(data, model))
                     for _ in range(at_once)]  # fmt: skip
            for call in calls:
                call.start()
            for call in calls:
                call.join()
            times.append(time.perf_counter() - began)
        above = server.memory().peak - idle
    finally:
        server.close()
    label = f"{width}×{height}" if at_once == 1 else f"{at_once} × {width}×{height} at once"
    return label, above, above * 2**20 / (at_once * width * height), min(times)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        width, _, height = item.partition("x")
        sizes.append((int(width), int(height)))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, help="default: export random networks")
    parser.add_argument("--model", help="model name (with --models-dir): the sequence's model")
    parser.add_argument("--networks", default="lite,standard", help="presets for bytes/pixel")
    parser.add_argument("--sequence", default="640x480,1920x1080,2880x2880,640x480")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    args = parser.parse_args()
    sizes = parse_sizes(args.sequence)
    presets = [p for p in args.networks.split(",") if p]
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        models: dict[str, str] = {}
        if args.models_dir is None:
            models_dir = scratch / "models"
            models = {preset: export_random(scratch, preset) for preset in presets or ["lite"]}
            sequence_model = models.get("lite") or next(iter(models.values()))
        else:
            if not args.model:
                raise SystemExit("--model is required with --models-dir")
            models_dir, sequence_model = args.models_dir, args.model
        print(f"\n## Server RSS through a sequence, model {sequence_model}, {args.threads} "
              "threads (MB: VmRSS after / VmHWM peak so far; seconds)\n")  # fmt: skip
        runs = [(label, sequence_run(models_dir, sequence_model, scratch, args.threads,
                                     extra, sizes)) for label, extra in (OLD, NEW)]  # fmt: skip
        print("| step | " + " | ".join(label for label, _ in runs) + " |")
        print("|---|" + "---:|" * len(runs))
        for index, (step, _, _) in enumerate(runs[0][1]):
            cells = []
            for _, rows in runs:
                _, memory, seconds = rows[index]
                timing = f", {seconds:.2f} s" if seconds else ""
                cells.append(f"{memory.rss:.0f} / {memory.peak:.0f}{timing}")
            print(f"| {step} | " + " | ".join(cells) + " |")
        if not models:
            return
        print("\n## Peak memory above the idle server (MB; bytes per pixel of each inference; "
              "a fresh server per row, each size twice, the faster time)\n")  # fmt: skip
        print("| network | size | old: MB | old: B/px | old: s | new: MB | new: B/px | new: s |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for preset, name in models.items():
            old = per_pixel_run(models_dir, name, scratch, args.threads, OLD[1])
            new = per_pixel_run(models_dir, name, scratch, args.threads, NEW[1])
            for (size, old_mb, old_bpp, old_s), (_, new_mb, new_bpp, new_s) in zip(
                old, new, strict=True
            ):
                print(f"| {preset} | {size} | {old_mb:.0f} | {old_bpp:.0f} | {old_s:.2f} "
                      f"| {new_mb:.0f} | {new_bpp:.0f} | {new_s:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
