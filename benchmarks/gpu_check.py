"""GPU check (not a test): what the GPU goals need, measured in one run and printed as ONE
markdown table under a header (GPU, driver, versions).

    benchmarks/gpu_check.sh [--no-install] [options]     # a fresh GPU machine: installs first
    python benchmarks/gpu_check.py [--quick] [--budget 460] [--out FILE] [--keep]

Each section runs in a process of its own with a share of the time budget, so a hang, a crash
or a missing library costs that section only: its row says what went wrong and the run goes
on; time a section leaves unused goes to the next ones.

- prepare: seeded random `standard` and `lite` networks exported with `stylecast export`'s
  code (bench_grpc.export_tiny_model), and their onnxruntime CPU fp32 outputs on a photo;
- inference, per provider (TensorRT fp16, TensorRT fp32, CUDA, CPU) and network, through the
  server's StyleModel: parity against CPU fp32 (max |diff| in levels, PSNR), ms and images/s
  for batch 1 and 8 at 640×480 and 1920×1080 (bench_inference.median_ms), and the TensorRT
  engine build, cold and from the engine cache (session creation + first run);
- server: `stylecast serve` over loopback with 1, 8 and 32 streams (bench_grpc.run_level);
- training: 50 steps in fp32 and in bf16-mixed, images/s (bench_training, random VGG);
- ddp: `stylecast train --devices N --strategy ddp` on all visible GPUs, 20 steps.

Without a GPU the GPU rows say "no GPU" and the rest runs at small sizes (a few minutes on 2
cores); --quick runs tiny sizes with the bundled lite model (the test suite's mode). Goals
checked on a GPU: standard network, TensorRT fp16, batch 8: >= 300 images/s at 640×480 and
>= 60 at 1920×1080; bf16 training >= 2x the images/s of fp32.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
PHOTO = REPO_ROOT / "assets" / "content" / "kodim23.jpg"
STYLE = REPO_ROOT / "assets" / "styles" / "starry_night.jpg"
BUNDLED_LITE = REPO_ROOT / "models", "starry_night_lite"  # --quick: no export
TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
GOAL_FPS = {(640, 480): 300.0, (1920, 1080): 60.0}  # standard, TensorRT fp16, with batching
GOAL_BF16_SPEEDUP = 2.0
NO_GPU = "no GPU"
TORCH_NO_GPU = "error: nvidia-smi sees a GPU, torch does not (driver too old for CUDA 13?)"


@dataclass(frozen=True)
class Profile:
    """Sizes and counts of one kind of run."""

    name: str
    label: str
    sizes: tuple[tuple[int, int], ...]  # (width, height); the first is also the parity photo's
    batches: tuple[int, ...]
    repeats: int
    networks: tuple[str, ...]
    server: dict[str, Any]  # network, size, calls per stream, seconds per level
    train: dict[str, Any]  # bench_training's arguments
    ddp: dict[str, Any]  # size, batch (per device), steps, network, precision


PROFILES = {
    "gpu": Profile(
        "gpu", "gpu (full sizes)", ((640, 480), (1920, 1080)), (1, 8), 5, ("standard", "lite"),
        {"network": "standard", "size": (640, 480), "calls": 8, "seconds": 12.0},
        {"size": 256, "batch_size": 8, "steps": 50, "warmup": 5, "network": "standard"},
        {"size": 256, "batch": 8, "steps": 20, "network": "standard", "precision": "bf16-mixed"},
    ),
    "cpu": Profile(
        "cpu", "cpu (no GPU: small sizes)", ((320, 240), (480, 270)), (1, 2), 2,
        ("standard", "lite"), {"network": "lite", "size": (320, 240), "calls": 2, "seconds": 8.0},
        {"size": 64, "batch_size": 2, "steps": 3, "warmup": 1, "network": "lite"},
        {"size": 64, "batch": 2, "steps": 20, "network": "lite", "precision": "32"},
    ),
    "quick": Profile(
        "quick", "quick (tiny sizes)", ((64, 48), (96, 54)), (1, 2), 1, ("lite",),
        {"network": "lite", "size": (64, 48), "calls": 1, "seconds": 4.0},
        {"size": 32, "batch_size": 1, "steps": 1, "warmup": 0, "network": "lite"},
        {},
    ),
}  # fmt: skip
# Sections in order, with their share of the time budget.
SECTIONS = (("prepare", 60), ("infer:trt16", 100), ("infer:trt32", 55), ("infer:cuda", 30),
            ("infer:cpu", 40), ("server", 60), ("train", 85), ("ddp", 45))  # fmt: skip
# Inference configurations: label, providers asked for, TensorRT fp16.
CONFIGS = {
    "trt16": ("TensorRT fp16", (TRT, CUDA), True),
    "trt32": ("TensorRT fp32", (TRT, CUDA), False),
    "cuda": ("CUDA", (CUDA,), False),
    "cpu": ("CPU", (CPU,), False),
}


@dataclass
class Row:
    section: str
    item: str
    setting: str = ""
    result: str = ""
    status: str = "ok"


@dataclass
class Context:
    """What a section process gets: the profile, the scratch folder, its deadline."""

    profile: Profile
    scratch: Path
    deadline: float
    facts: dict[str, str] = field(default_factory=dict)

    def left(self) -> float:
        return self.deadline - time.monotonic()


# -- machine and libraries -------------------------------------------------------------------


def gpus() -> list[str]:
    """nvidia-smi's "name, driver, memory" line per GPU; empty without a GPU."""
    query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def version(*names: str) -> str:
    """``name version`` of the first of ``names`` installed."""
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return f"{name} {metadata.version(name)}"
    return f"{names[0]} missing"


def library_dirs() -> list[str]:
    """Folders of the CUDA, cuDNN and TensorRT libraries pip installed (nvidia-*, tensorrt-*-libs
    wheels), for LD_LIBRARY_PATH: onnxruntime's providers dlopen them by name."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    found = {p.parent for p in site.glob("nvidia/**/lib*.so*")}
    found |= {p.parent for p in site.glob("tensorrt_libs/lib*.so*")}
    return sorted(str(p) for p in found)


def trt_requirement(provider: Path | None = None) -> str:
    """The TensorRT libraries wheel this onnxruntime's TensorRT provider library (or
    ``provider``) links (its CUDA and TensorRT majors), e.g. ``tensorrt-cu13-libs==10.*``;
    empty without a TensorRT provider."""
    if provider is None:
        import onnxruntime as ort

        provider = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_tensorrt.so"
    data = provider.read_bytes() if provider.is_file() else b""
    trt = re.search(rb"libnvinfer\.so\.(\d+)", data)
    cuda = re.search(rb"libcudart\.so\.(\d+)", data)
    return f"tensorrt-cu{cuda[1].decode()}-libs=={trt[1].decode()}.*" if trt and cuda else ""


def runtime_fields() -> set[str]:
    """The settings serving's RuntimeOptions has (the GPU ones, e.g. the TensorRT profile, are
    newer than the rest)."""
    from stylecast.serving.runtime import RuntimeOptions

    return set(RuntimeOptions.__dataclass_fields__)


def runtime_options(**wanted: Any) -> Any:
    """serving's RuntimeOptions with those of ``wanted`` that this version of it has."""
    from stylecast.serving.runtime import RuntimeOptions

    known = runtime_fields()
    return RuntimeOptions(**{key: value for key, value in wanted.items() if key in known})


# -- sections (each runs in its own process) -------------------------------------------------


def manifest(scratch: Path) -> dict[str, list[str]]:
    """network -> [models folder, model name], written by prepare."""
    path = scratch / "models.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def photo(size: tuple[int, int]) -> Any:
    """The bundled photo at ``size``, as a uint8 [1, H, W, 3] batch."""
    import numpy as np
    from PIL import Image

    with Image.open(PHOTO) as image:
        return np.asarray(image.convert("RGB").resize(size, Image.Resampling.LANCZOS))[None]


def load(models_dir: str, name: str, options: Any) -> Any:
    """The server's StyleModel for the newest version of ``name``."""
    from stylecast.serving.repository import load_model_dir

    return load_model_dir(Path(models_dir) / name, options)[0]


def torch_facts(ctx: Context) -> bool:
    """Note torch's CUDA build and GPUs for the header; whether torch sees a GPU."""
    import torch

    gpu = torch.cuda.is_available()
    bf16 = f", bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}" if gpu else ""
    ctx.facts["torch"] = (
        f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN "
        f"{torch.backends.cudnn.version()}, {torch.cuda.device_count()} GPU(s) visible{bf16})"
    )
    return gpu


def section_prepare(ctx: Context) -> Iterator[Row]:
    import numpy as np

    models: dict[str, list[str]] = {}
    for network in ctx.profile.networks:
        began = time.perf_counter()
        if ctx.profile.name == "quick":
            folder, name = BUNDLED_LITE
            how = f"bundled {name}"
        else:
            from bench_grpc import export_tiny_model

            folder, name = export_tiny_model(ctx.scratch / f"export-{network}", network)
            how = "seeded random weights, `stylecast export`'s code"
        model = load(str(folder), name, runtime_options(providers=(CPU,), warmup=False))
        reference = model.run(photo(ctx.profile.sizes[0]))
        np.save(ctx.scratch / f"reference-{network}.npy", reference)
        models[network] = [str(folder), name]
        (ctx.scratch / "models.json").write_text(json.dumps(models))
        yield Row("prepare", f"model · {network}", how, f"{time.perf_counter() - began:.1f} s")


def psnr(a: Any, b: Any) -> tuple[int, float]:
    """Max |a - b| in levels, and the PSNR in dB (inf when equal)."""
    import numpy as np

    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(diff**2))
    return int(np.abs(diff).max()), math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def trt_profile(profile: Profile) -> dict[str, str]:
    """TensorRT's optimisation profile: opt at the first size, max at the largest, both at
    the largest batch (the server's default max batch is smaller)."""
    (w0, h0), (w1, h1), n = profile.sizes[0], profile.sizes[-1], max(profile.batches)
    return {"trt_opt_shape": f"{n}x{h0}x{w0}x3", "trt_max_shape": f"{n}x{h1}x{w1}x3"}


def trt_cache(ctx: Context, config: str) -> Path:
    """The TensorRT engine cache: one for all when the runtime keeps each build setting's
    engine apart (then the server can load the fp16 one), else one per configuration."""
    return ctx.scratch / (
        "trt-cache" if "trt_opt_shape" in runtime_fields() else f"trt-cache-{config}"
    )


def section_infer(ctx: Context, config: str) -> Iterator[Row]:
    import numpy as np

    label, providers, fp16 = CONFIGS[config]
    profile = trt_profile(ctx.profile)
    options = runtime_options(
        providers=providers, trt_fp16=fp16, trt_cache_dir=str(trt_cache(ctx, config)),
        precision_check="never", warmup=False, **profile,
    )  # fmt: skip
    image = photo(ctx.profile.sizes[0])
    for network, (models_dir, name) in manifest(ctx.scratch).items():
        item = f"{label} · {network}"
        began = time.perf_counter()
        try:
            model = load(models_dir, name, options)
            output = model.run(image)
        except Exception as exc:  # e.g. a provider library that cannot be loaded
            yield Row("inference", item, "", "", f"error: {' '.join(str(exc).split())[:300]}")
            continue
        if model.provider != providers[0]:
            short = label.split()[0]
            yield Row("inference", item, "", "", f"{short} provider not available (the session "
                      f"fell back to {model.provider}; see the section's log)")  # fmt: skip
            return
        if TRT in providers:  # the engine cache: a second session, and its first run
            cold = time.perf_counter() - began
            began = time.perf_counter()
            load(models_dir, name, options).run(image)
            shapes = f"profile opt {profile['trt_opt_shape']}, max {profile['trt_max_shape']}"
            yield Row("inference", item, f"engine build: session + first run; {shapes}",
                      f"cold {cold:.1f} s, cached {time.perf_counter() - began:.1f} s")  # fmt: skip
        worst, db = psnr(output, np.load(ctx.scratch / f"reference-{network}.npy"))
        w, h = ctx.profile.sizes[0]
        yield Row("inference", item, f"parity vs CPU fp32, photo {w}×{h}",
                  f"max abs diff {worst} levels, PSNR {db:.1f} dB")  # fmt: skip
        yield from timings(ctx, config, item, model)


def timings(ctx: Context, config: str, item: str, model: Any) -> Iterator[Row]:
    """ms per batch and images/s per size and batch; what the budget cannot fit is skipped."""
    import numpy as np
    from bench_inference import median_ms

    repeats, ms_per_pixel = ctx.profile.repeats, 0.0
    for w, h in ctx.profile.sizes:
        for batch in ctx.profile.batches:
            setting = f"{w}×{h} batch {batch}"
            need = ms_per_pixel * batch * w * h * (repeats + 1) / 1000
            if need > ctx.left():
                yield Row("inference", item, setting, "", f"skipped: needs ~{need:.0f} s, "
                          f"{max(ctx.left(), 0):.0f} s of budget left")  # fmt: skip
                continue
            images = np.random.default_rng(0).integers(0, 256, (batch, h, w, 3), np.uint8)
            ms = median_ms(lambda x=images: model.run(x), repeats)
            ms_per_pixel = ms / (batch * w * h)
            fps = 1000 * batch / ms
            status = "ok"
            if config == "trt16" and "standard" in item and batch > 1 and (w, h) in GOAL_FPS:
                goal = GOAL_FPS[(w, h)]
                status = f"goal >= {goal:.0f} images/s: {'met' if fps >= goal else 'MISSED'}"
            yield Row("inference", item, setting, f"{ms:.1f} ms/batch, {fps:.1f} images/s", status)


def server_args(ctx: Context, streams: int) -> list[str]:
    """`stylecast serve` flags: the queue for every stream; on a GPU, batching and the
    TensorRT profile and cache the inference section built (where this server has them)."""
    from stylecast.serving.config import ServerConfig

    args = [f"--max-queue={streams}"]
    if ctx.profile.name == "gpu":
        if "max_batch" in ServerConfig.__dataclass_fields__:
            args.append(f"--max-batch={max(ctx.profile.batches)}")
        profile = trt_profile(ctx.profile)
        if runtime_fields() >= profile.keys():
            args += [f"--trt-cache-dir={trt_cache(ctx, 'trt16')}",
                     f"--trt-opt-shape={profile['trt_opt_shape']}",
                     f"--trt-max-shape={profile['trt_max_shape']}"]  # fmt: skip
    return args


def section_server(ctx: Context) -> Iterator[Row]:
    from bench_grpc import content_jpeg, run_level, start_server

    server = ctx.profile.server
    models_dir, name = manifest(ctx.scratch)[server["network"]]
    data = content_jpeg(server["size"])
    levels = (1, 8, 32)
    args = server_args(ctx, max(levels))
    w, h = server["size"]
    setting = f"{name}, {w}×{h} JPEG, `stylecast serve {' '.join(args)}`"
    os.chdir(ctx.scratch)  # the server's default TensorRT cache: ./.trt-cache
    try:
        process, address = start_server(Path(models_dir), ctx.scratch, args)
    except SystemExit as exc:  # bench_grpc's way of saying the server did not start
        yield Row("server", "stylecast serve", setting, "", f"error: {exc}")
        return
    try:
        for index, streams in enumerate(levels):
            seconds = min(server["seconds"], ctx.left() / (len(levels) - index) - 2)
            if seconds < 1:
                yield Row("server", f"{streams} streams", setting, "", "skipped: budget")
                continue
            level = run_level(address, name, data, streams, streams * server["calls"], seconds)
            done = len(level.latencies_ms)
            errors = ", ".join(f"{k} {v}" for k, v in level.errors.items())
            yield Row("server", f"{streams} streams", setting,
                      f"{done / level.seconds:.1f} images/s, p50 {level.percentile(50):.0f} ms, "
                      f"p99 {level.percentile(99):.0f} ms ({done} calls)",
                      f"errors: {errors}" if errors else "ok")  # fmt: skip
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def section_train(ctx: Context) -> Iterator[Row]:
    from bench_training import bench_training, quiet_logs

    quiet_logs()
    gpu = torch_facts(ctx)
    if ctx.profile.name == "gpu" and not gpu:
        yield Row("training", "all", "", "", TORCH_NO_GPU)
        return
    settings = dict(ctx.profile.train, accelerator="gpu" if gpu else "cpu")
    where = (f"{settings['network']}, {settings['size']} px, batch {settings['batch_size']}, "
             f"{settings['steps']} steps, random VGG, {'GPU' if gpu else 'CPU'}")  # fmt: skip
    status = "ok" if gpu else f"{NO_GPU} (ran on the CPU)"
    rates = {}
    for precision in ("32", "bf16-mixed"):
        began = time.perf_counter()
        ms, _, _ = bench_training(argparse.Namespace(precision=precision, **settings))
        rates[precision] = 1000 * settings["batch_size"] / ms
        yield Row("training", f"precision {precision}", where,
                  f"{ms:.0f} ms/step, {rates[precision]:.1f} images/s (no data loading)",
                  status)  # fmt: skip
        if precision == "32" and ctx.left() < 1.2 * (time.perf_counter() - began):
            yield Row("training", "precision bf16-mixed", where, "", "skipped: budget")
            return
    speedup = rates["bf16-mixed"] / rates["32"]
    if gpu:
        met = "met" if speedup >= GOAL_BF16_SPEEDUP else "MISSED"
        status = f"goal >= {GOAL_BF16_SPEEDUP:.0f}x: {met}"
    yield Row("training", "bf16 vs fp32", where, f"{speedup:.2f}x images/s", status)


def section_ddp(ctx: Context) -> Iterator[Row]:
    import torch

    if not torch_facts(ctx) and ctx.profile.name == "gpu":
        yield Row("ddp", "all", "", "", TORCH_NO_GPU)
        return
    p = ctx.profile.ddp
    devices = torch.cuda.device_count()
    accelerator, status = ("gpu", "ok") if devices else ("cpu", f"{NO_GPU}: 2 CPU processes")
    devices = devices or 2
    content, out, log = (ctx.scratch / n for n in ("ddp-content", "ddp-run", "ddp.log"))
    crops(content, max(32, 4 * p["batch"] * devices), p["size"] * 5 // 4)
    command = [sys.executable, "-m", "stylecast", "train", "--style", str(STYLE),
               "--content-dir", str(content), "--out", str(out), "--network", p["network"],
               "--image-size", str(p["size"]), "--batch-size", str(p["batch"]),
               "--max-steps", str(p["steps"]), "--precision", p["precision"],
               "--accelerator", accelerator, "--devices", str(devices), "--strategy", "ddp",
               "--vgg-weights", "random:0", "--style-weight", "1e5", "--tv-weight", "1",
               "--val-fraction", "0", "--sample-every", "0", "--checkpoint-every", "100000",
               "--log-every", "1", "--no-export"]  # fmt: skip
    setting = (f"{devices} × {accelerator}, {p['network']}, {p['size']} px, batch {p['batch']} "
               f"per device, {p['steps']} steps, precision {p['precision']}")  # fmt: skip
    began = time.perf_counter()
    with log.open("w") as sink:
        done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, cwd=ctx.scratch,
                              timeout=max(ctx.left() - 3, 1), check=False)  # fmt: skip
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        last = log.read_text().strip().splitlines()[-1:] or ["no output"]
        yield Row("ddp", "stylecast train --strategy ddp", setting, "",
                  f"error: exit {done.returncode}: {last[0][:200]}")  # fmt: skip
        return
    steps, rate = logged_rate(out, p["batch"] * devices)
    result = f"success in {seconds:.0f} s; {rate:.1f} images/s over steps {steps}"
    yield Row("ddp", "stylecast train --strategy ddp", setting, result, status)


def crops(folder: Path, count: int, side: int) -> None:
    """``count`` distinct square crops of the bundled photos: training counts identical files
    once, and DDP needs batches for every device."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted(PHOTO.parent.glob("*.jpg"))
    for index in range(count):
        with Image.open(photos[index % len(photos)]) as image:
            shift, side_in = (index // len(photos)) % 40, min(image.size) - 40
            box = (shift, shift, shift + side_in, shift + side_in)
            image.convert("RGB").crop(box).resize((side, side)).save(folder / f"{index:03d}.jpg")


def logged_rate(run: Path, images_per_step: int) -> tuple[str, float]:
    """Images/s from the TensorBoard wall times of train/loss (logged every step), leaving
    out the first quarter of the steps (start-up, cuDNN autotuning)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = [EventAccumulator(str(f.parent)).Reload() for f in run.rglob("events.out.*")]
    logged = sorted((e.step, e.wall_time) for acc in events for e in acc.Scalars("train/loss"))
    measured = logged[len(logged) // 4 :]
    if len(measured) < 2:
        return "(too few logged)", math.nan
    (first, t0), (last, t1) = measured[0], measured[-1]
    return f"{first}-{last}", (last - first) * images_per_step / (t1 - t0)


def run_section(name: str, ctx: Context, rows_file: Path) -> None:
    """Run one section in this process, appending its rows (then its facts) to ``rows_file``."""
    sys.path.insert(0, str(HERE))  # the other benchmarks
    kind, _, config = name.partition(":")
    sections: dict[str, Callable[[Context], Iterator[Row]]] = {
        "prepare": section_prepare, "server": section_server, "train": section_train,
        "ddp": section_ddp, "infer": lambda c: section_infer(c, config),
    }  # fmt: skip
    with rows_file.open("a") as out:
        try:
            for row in sections[kind](ctx):
                out.write(json.dumps(asdict(row)) + "\n")
                out.flush()
        except Exception as exc:  # the section's failure is a row; the run goes on
            error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            out.write(json.dumps(asdict(Row(title(name), "failed", "", "", error))) + "\n")
        out.write(json.dumps({"facts": ctx.facts}) + "\n")


# -- the driver ------------------------------------------------------------------------------


def title(name: str) -> str:
    return {"infer": "inference", "train": "training"}.get(name.split(":")[0], name)


def rows_saying(name: str, reason: str, profile: Profile) -> list[Row]:
    """The rows of a section that did not run: one per network for inference."""
    if name.startswith("infer:"):
        label = CONFIGS[name.split(":")[1]][0]
        return [Row("inference", f"{label} · {n}", "all", "", reason) for n in profile.networks]
    return [Row(title(name), "all", "", "", reason)]


def cannot_run(name: str, gpu: bool, providers: list[str], profile: Profile) -> str | None:
    """Why a section cannot run on this machine, or None."""
    if name in ("infer:trt16", "infer:trt32", "infer:cuda"):
        wanted = CONFIGS[name.split(":")[1]][1][0]
        if not gpu:
            return NO_GPU
        if wanted not in providers:
            short = "TensorRT" if wanted == TRT else "CUDA"
            return f"{short} provider not available (onnxruntime has {', '.join(providers)})"
    if name == "ddp" and not gpu and profile.name == "quick":
        return f"{NO_GPU} (not run with --quick)"
    return None


def run_sections(args: argparse.Namespace, profile: Profile, gpu: bool, providers: list[str],
                 scratch: Path, end: float) -> tuple[list[Row], dict[str, str]]:  # fmt: skip
    """Every section in order, each in a child process with its share of the time left."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*library_dirs(), env.get("LD_LIBRARY_PATH", "")])
    rows: list[Row] = []
    facts: dict[str, str] = {}
    todo = [name for name, _ in SECTIONS if name in args.sections]
    reasons = {name: cannot_run(name, gpu, providers, profile) for name in todo}
    pending = {name: share for name, share in SECTIONS if name in todo and not reasons[name]}
    rows_file = scratch / "rows.jsonl"
    for name in todo:
        reason, left = reasons[name], end - time.monotonic()
        if reason is None and name.startswith(("infer", "server")) and not manifest(scratch):
            reason = "skipped: no model (see prepare)"
        elif reason is None and left < 5:
            reason = "skipped: total budget spent"
        if reason is not None:
            rows += rows_saying(name, reason, profile)
            pending.pop(name, None)
            continue
        budget = left * pending[name] / sum(pending.values())
        del pending[name]
        print(f"gpu_check: {name} (budget {budget:.0f} s)", file=sys.stderr, flush=True)
        rows_file.write_text("")
        command = [sys.executable, str(Path(__file__).resolve()), "--section", name,
                   "--scratch", str(scratch), "--section-seconds", f"{budget:.1f}",
                   "--profile", profile.name]  # fmt: skip
        with open(scratch / f"{name.replace(':', '-')}.log", "w") as log:
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)  # fmt: skip
            try:
                child.wait(timeout=budget + 15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)  # the section, its server, its DDP ranks
                child.wait()
        for line in rows_file.read_text().splitlines():
            record = json.loads(line)
            if "facts" in record:
                facts.update(record["facts"])
            else:
                rows.append(Row(**record))
        if child.returncode == -signal.SIGKILL:
            rows.append(Row(title(name), "stopped", "", "", f"timed out after {budget:.0f} s"))
        elif child.returncode != 0:
            rows.append(Row(title(name), "crashed", "", "", f"exit {child.returncode} "
                            f"(log: {name.replace(':', '-')}.log, kept with --keep)"))  # fmt: skip
    return rows, facts


def header(cards: list[str], facts: dict[str, str], providers: list[str], profile: Profile,
           budget: float, seconds: float) -> list[str]:  # fmt: skip
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## Stylecast GPU check, {now}, profile {profile.label}", ""]
    for index, card in enumerate(cards):
        name, driver, memory = (part.strip() for part in card.split(","))
        lines.append(f"- GPU {index}: {name}, driver {driver}, {memory}")
    if cards and int(cards[0].split(",")[1].split(".")[0]) < 580:
        lines.append("- note: the CUDA 13 builds (torch 2.14, onnxruntime-gpu) need driver >= 580")
    if not cards:
        lines.append(f"- GPU: none found (nvidia-smi); {os.cpu_count()} CPU cores")
    lines += [
        f"- {facts.get('torch', version('torch'))}",
        f"- python {platform.python_version()}, {version('torchvision')}, "
        f"{version('lightning')}, {version('onnx')}, {version('grpcio')}",
        f"- {version('onnxruntime-gpu', 'onnxruntime')} (providers: {', '.join(providers)}), "
        f"TensorRT libraries: {version('tensorrt-cu13-libs', 'tensorrt-cu12-libs', 'tensorrt')}",
        f"- wall time {seconds:.0f} s (budget {budget:.0f} s)",
        "",
    ]
    return lines


def table(rows: list[Row]) -> list[str]:
    lines = ["| section | item | setting | result | status |", "|---|---|---|---|---|"]
    for r in rows:
        cells = (r.section, r.item, r.setting, r.result or "—", r.status)
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return lines


def drive(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    began = time.monotonic()
    cards = gpus()
    providers = ort.get_available_providers()
    profile = PROFILES["quick" if args.quick else "gpu" if cards else "cpu"]
    missing = [p for p in (TRT, CUDA) if p not in providers]
    status = f"missing: {', '.join(missing)}" if missing else "ok"
    onnxruntime = version("onnxruntime-gpu", "onnxruntime")
    rows = [Row("providers", onnxruntime, "in this build", ", ".join(providers), status)]
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        more, facts = run_sections(args, profile, bool(cards), providers, scratch,
                                   began + args.budget)  # fmt: skip
    finally:
        if args.keep:
            print(f"gpu_check: logs and models kept in {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.monotonic() - began
    text = "\n".join([*header(cards, facts, providers, profile, args.budget, seconds),
                      *table(rows + more)]) + "\n"  # fmt: skip
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, bundled lite model")
    parser.add_argument("--budget", type=float, default=460.0, help="seconds for all sections")
    parser.add_argument("--out", help="also write the report (markdown) to this file")
    parser.add_argument("--keep", action="store_true", help="keep the logs and exported models")
    names = [name for name, _ in SECTIONS]
    parser.add_argument("--sections", type=lambda s: s.split(","), default=names,
                        help=f"comma-separated subset of: {', '.join(names)}")  # fmt: skip
    parser.add_argument(
        "--trt-requirement", action="store_true", help="print the TensorRT wheel needed, exit"
    )
    parser.add_argument("--section", help=argparse.SUPPRESS)  # internal: one section process
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--section-seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--profile", choices=PROFILES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trt_requirement:
        print(trt_requirement())
    elif args.section:
        deadline = time.monotonic() + args.section_seconds
        run_section(args.section, Context(PROFILES[args.profile], args.scratch, deadline),
                    args.scratch / "rows.jsonl")  # fmt: skip
    else:
        return drive(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
