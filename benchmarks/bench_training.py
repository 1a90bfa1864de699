"""Training and iteration benchmark (not a test): ms per training step and ms per L-BFGS
iteration, with the real code paths and a calibrated random VGG-19 (timings do not depend on
the weights, so no download is needed).

    python benchmarks/bench_training.py [--size 256] [--batch-size 4] [--steps 3]
        [--network standard|lite] [--iterations 5] [--threads N] [--precision 32]

Training: a Lightning Trainer runs StyleTransferModule on bundled content crops; a callback
times each batch from on_train_batch_start to on_train_batch_end, which covers
training_step (transform net + VGG loss), backward and the Adam step, not data loading.
The first --warmup steps are dropped; the median of the next --steps is reported.
Iteration: stylise_iteratively (L-BFGS, one closure evaluation per step plus the clamp and
loss read-back the library does) on a size×size content image; the first iteration is dropped.
On a shared CPU, intra-op threads fighting other processes slow torch down badly; the
header line reports threads and load average so figures can be compared.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as TF

from stylecast.training.config import LossConfig, NetworkConfig, TrainConfig, to_dict
from stylecast.training.data import ContentImages, scan_content
from stylecast.training.images import load_image
from stylecast.training.iterate import IterateConfig, build_criterion, stylise_iteratively
from stylecast.training.module import StyleTransferModule

ASSETS = Path(__file__).resolve().parent.parent / "assets"
STYLE = ASSETS / "styles" / "starry_night.jpg"
CONTENT_DIR = ASSETS / "content"
CONTENT = CONTENT_DIR / "kodim23.jpg"
VGG = "random:0"
LOSS = LossConfig(style_weight=1e5, tv_weight=1.0)  # weights suited to the random VGG


def _sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class StepTimer(L.Callback):
    """Wall time of every training batch: forward, loss, backward and optimiser step."""

    def __init__(self) -> None:
        self.times_ms: list[float] = []
        self._began = 0.0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, *_: Any) -> None:
        _sync(pl_module.device)
        self._began = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *_: Any) -> None:
        _sync(pl_module.device)
        self.times_ms.append(1000 * (time.perf_counter() - self._began))


def quiet_logs() -> None:
    """Silence the random-VGG banner, Lightning's chatter and warnings."""
    logging.getLogger("stylecast").setLevel(logging.ERROR)  # the random-VGG banner
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def bench_training(args: argparse.Namespace) -> tuple[float, list[float], str]:
    config = TrainConfig(
        style_image=str(STYLE),
        content_dirs=(str(CONTENT_DIR),),
        image_size=args.size,
        batch_size=args.batch_size,
        vgg_weights=VGG,
        network=NetworkConfig.preset(args.network),
        loss=LOSS,
    )
    L.seed_everything(0, verbose=False)
    module = StyleTransferModule(to_dict(config))
    files = scan_content(CONTENT_DIR, min_side=16)
    files = files * -(-(args.batch_size * (args.warmup + args.steps)) // len(files))
    loader = DataLoader(
        ContentImages(files, args.size), batch_size=args.batch_size, shuffle=True, drop_last=True
    )
    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=args.warmup + args.steps,
        accelerator=args.accelerator,
        devices=1,
        precision=args.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, loader)
    measured = timer.times_ms[args.warmup :]
    return statistics.median(measured), measured, str(module.device)


def bench_iterate(args: argparse.Namespace, device: str) -> tuple[float, list[float]]:
    config = IterateConfig(
        size=args.size, steps=1 + args.iterations, optimizer="lbfgs", vgg_weights=VGG, loss=LOSS
    )
    criterion = build_criterion(STYLE, config).to(device)
    content = TF.resize(load_image(CONTENT), [args.size, args.size], antialias=True).to(device)
    stamps: list[float] = []

    def on_step(step: int, total: float) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    stylise_iteratively(content, criterion, config, progress=False, on_step=on_step)
    measured = [1000 * (b - a) for a, b in itertools.pairwise(stamps)]
    return statistics.median(measured), measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="square image side (both benches)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps first")
    parser.add_argument("--iterations", type=int, default=5, help="timed L-BFGS iterations")
    parser.add_argument("--network", choices=("standard", "lite"), default="standard")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--precision", default="32", help="Lightning precision, e.g. bf16-mixed")
    parser.add_argument("--accelerator", default="auto", help="auto | cpu | gpu")
    parser.add_argument("--skip-iterate", action="store_true")
    args = parser.parse_args()
    if min(args.size, args.batch_size, args.steps, args.iterations) < 1 or args.warmup < 0:
        parser.error("--size, --batch-size, --steps and --iterations must be >= 1")

    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_logs()

    train_ms, train_all, device = bench_training(args)
    rows = [
        (
            "train step (fwd + VGG loss + bwd + Adam)",
            f"{args.size}×{args.size}",
            str(args.batch_size),
            f"{args.network}, Adam, precision {args.precision}",
            train_ms,
            train_ms / args.batch_size,
            ", ".join(f"{t:.0f}" for t in train_all),
        )
    ]
    if not args.skip_iterate:
        iterate_device = "cuda" if device.startswith("cuda") else "cpu"
        iter_ms, iter_all = bench_iterate(args, iterate_device)
        rows.append(
            (
                "iterate (Gatys, one L-BFGS iteration)",
                f"{args.size}×{args.size}",
                "1",
                "L-BFGS, fp32",
                iter_ms,
                iter_ms,
                ", ".join(f"{t:.0f}" for t in iter_all),
            )
        )

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else ""
    print(
        f"\ndevice={device}{gpu} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"vgg={VGG} load average={load}\n"
    )
    print("| benchmark | size | batch | setting | median ms | ms/image | runs (ms) |")
    print("|---|---|---|---|---|---|---|")
    for name, size, batch, setting, ms, per_image, runs in rows:
        print(f"| {name} | {size} | {batch} | {setting} | {ms:.0f} | {per_image:.0f} | {runs} |")


if __name__ == "__main__":
    main()
