"""Frames per second and round trip of the browser camera page, end to end.

Starts `stylecast web` (a separate process, on loopback), opens the page in headless Chromium
whose fake camera plays a 640×480 clip (the frames of ../shared/data/video, or a synthetic pan
when that folder is missing), starts the camera with the model, and counts the stylised frames
the page draws over ``--seconds`` after a warm-up, with the round trip the page measures for
each (capture → JPEG → WebSocket → decode, infer, encode → draw). The page keeps at most two
frames in flight, as a person's browser would.

``--grpc`` also runs the gRPC camera path on the same frames for comparison: `stylecast serve`
and a StyliseStream with two frames in flight (640×480 JPEGs in, JPEGs out).

    python benchmarks/bench_web.py --models-dir models [--model NAME] [--seconds 15] [--grpc]

Without ``--model`` the fastest model is used: each one stylises one 640×480 frame a few times
in this process, and the quickest median wins. Needs Chromium (Debian's ``chromium``) and the
``dev`` extra (Playwright).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stylecast.serving.client import StylecastClient  # noqa: E402
from stylecast.serving.demo import start_server, stop_server  # noqa: E402
from stylecast.serving.readiness import wait_for_ready_file  # noqa: E402
from stylecast.serving.web.browser import (  # noqa: E402
    CameraPage,
    folder_frames,
    synthetic_frames,
    write_y4m,
)

VIDEO_DIR = REPO.parent / "shared" / "data" / "video"
WIDTH, HEIGHT = 640, 480


def fastest_model(models_dir: str, frame: np.ndarray, repeats: int = 5) -> tuple[str, float]:
    """The model with the quickest median run on ``frame`` (name, ms)."""
    from stylecast.serving.repository import ModelRepository

    timings = {}
    for model in ModelRepository(models_dir).models():
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.run(frame)
            runs.append(time.perf_counter() - start)
        timings[model.name] = statistics.median(runs) * 1000
    if not timings:
        sys.exit(f"no model loads from {models_dir}")
    name = min(timings, key=timings.__getitem__)
    return name, timings[name]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run_page(args: argparse.Namespace, model: str, clip: Path, scratch: Path) -> dict:
    """The page's fps and round trips over ``args.seconds`` after the warm-up."""
    ready = scratch / "web-ready.json"
    command = [sys.executable, "-m", "stylecast", "web", "--models-dir", args.models_dir,
               "--port", "0", "--reload-interval", "0", "--ready-file", str(ready)]  # fmt: skip
    log = open(scratch / "web.log", "wb")  # noqa: SIM115  (closed below)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        info = wait_for_ready_file(ready, process, 60)
        with CameraPage(f"http://{info.address}/", clip, timeout_s=60) as page:
            page.start(model, max_side=args.max_side)
            page.wait_frames(args.warmup)
            before = page.stats()
            start = time.perf_counter()
            time.sleep(args.seconds)
            after = page.stats()
            elapsed = time.perf_counter() - start
            if args.screenshot:
                page.screenshot(Path(args.screenshot))
        rtts = after["rtts"][len(before["rtts"]) :]
        return {
            "path": "web page (Chromium, WebSocket)",
            "frames": after["frames"] - before["frames"],
            "fps": (after["frames"] - before["frames"]) / elapsed,
            "rtt_p50_ms": percentile(rtts, 50),
            "rtt_p90_ms": percentile(rtts, 90),
            "size": f"{after['lastHeader']['width']}x{after['lastHeader']['height']}",
            "errors": after["errors"] - before["errors"],
        }
    finally:
        stop_server(process)
        log.close()


def run_grpc(args: argparse.Namespace, model: str, jpegs: list[bytes], scratch: Path) -> dict:
    """The gRPC camera path (StyliseStream, two in flight) on the same frames."""
    process, info = start_server(args.models_dir, scratch / "grpc.log")
    try:
        with StylecastClient(info.address, timeout=120) as client:
            warm = [(i, jpegs[i % len(jpegs)]) for i in range(args.warmup)]
            list(client.stream(warm, model, max_in_flight=2, max_pending=2))
            sent: dict[int, float] = {}
            rtts: list[float] = []
            deadline = time.perf_counter() + args.seconds

            def frames():  # type: ignore[no-untyped-def]
                i = 0
                while time.perf_counter() < deadline:
                    sent[i] = time.perf_counter()
                    yield i, jpegs[i % len(jpegs)]
                    i += 1

            start = time.perf_counter()
            count = 0
            for reply in client.stream(frames(), model, max_in_flight=2, max_pending=2):
                if reply.HasField("image"):
                    count += 1
                    rtts.append((time.perf_counter() - sent[reply.sequence]) * 1000)
            elapsed = time.perf_counter() - start
        return {
            "path": "gRPC StyliseStream (Python client)",
            "frames": count,
            "fps": count / elapsed,
            "rtt_p50_ms": percentile(rtts, 50),
            "rtt_p90_ms": percentile(rtts, 90),
            "size": f"{WIDTH}x{HEIGHT}",
            "errors": 0,
        }
    finally:
        stop_server(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", default=str(REPO / "models"))
    parser.add_argument("--model", help="default: the fastest in --models-dir, measured here")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured span (15)")
    parser.add_argument("--warmup", type=int, default=10, help="frames before measuring (10)")
    parser.add_argument("--max-side", type=int, default=640, help="the page's max side (640)")
    parser.add_argument("--video", default=str(VIDEO_DIR), help="folder of frames for the clip")
    parser.add_argument("--grpc", action="store_true", help="also measure the gRPC camera path")
    parser.add_argument("--screenshot", help="save a screenshot of the page here")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    video = Path(args.video)
    source = "synthetic pan"
    if video.is_dir():
        frames = list(folder_frames(video, WIDTH, HEIGHT, limit=48))
        source = f"{video.name}/ ({len(frames)} frames)"
    else:
        frames = list(synthetic_frames(WIDTH, HEIGHT, 48))
    model, model_ms = args.model, float("nan")
    if model is None:
        model, model_ms = fastest_model(args.models_dir, np.asarray(frames[0]))
    with tempfile.TemporaryDirectory(prefix="stylecast-bench-web-") as folder:
        scratch = Path(folder)
        clip = write_y4m(scratch / "camera.y4m", frames, fps=30)
        results = [run_page(args, model, clip, scratch)]
        if args.grpc:
            jpegs = []
            for frame in frames:
                buffer = io.BytesIO()
                frame.save(buffer, format="JPEG", quality=90)
                jpegs.append(buffer.getvalue())
            results.append(run_grpc(args, model, jpegs, scratch))
    if args.json:
        print(json.dumps({"model": model, "model_ms": model_ms, "results": results}, indent=2))
        return
    chosen = "" if model_ms != model_ms else f" (fastest here: {model_ms:.0f} ms per frame)"
    print(f"model {model}{chosen}; camera {WIDTH}x{HEIGHT} from {source}, 30 fps; "
          f"{args.seconds:g} s after {args.warmup} warm-up frames")  # fmt: skip
    print(f"{'path':<36} {'size':>8} {'frames':>6} {'fps':>6} {'p50 ms':>7} {'p90 ms':>7} errors")
    for r in results:
        print(f"{r['path']:<36} {r['size']:>8} {r['frames']:>6} {r['fps']:>6.1f} "
              f"{r['rtt_p50_ms']:>7.0f} {r['rtt_p90_ms']:>7.0f} {r['errors']:>6}")  # fmt: skip


if __name__ == "__main__":
    main()
