"""Loss-settings sweep for a loss network (not a test): trains one short lite model per
setting with the real `stylecast train`, scores it with `stylecast validate` on photos that
no setting trained on, and prints one table row per setting.

    python benchmarks/loss_sweep.py --out sweep --eval-dir EVAL --content-dir DIR [...]
        [--vgg-weights random:0] [--size 128] [--steps 200] [--iterate-steps 50]

Each setting is scored under its own loss, so the columns that compare settings are ratios
(fast ÷ iterative total loss; iterations until L-BFGS beats the fast network) and the SSIM
between the fast output and the content photo, which no loss weight can rescale: it says
whether the content stays recognisable.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from stylecast.serving.stylise import load_model
from stylecast.training.image_metrics import ssim


@dataclass(frozen=True)
class Setting:
    """One row of the sweep: a name and the loss options of `stylecast train`."""

    name: str
    options: tuple[str, ...]


SETTINGS = (
    Setting("A relu2_2, style 1e5 (bundled)", ("--content-layers", "relu2_2")),
    Setting("B relu2_2, style 3e4", ("--content-layers", "relu2_2", "--style-weight", "3e4")),
    Setting("C relu3_1, style 1e5", ("--content-layers", "relu3_1")),
    Setting(
        "D relu2_2, style to relu4_1",
        ("--content-layers", "relu2_2", "--style-layers", "relu1_1,relu2_1,relu3_1,relu4_1"),
    ),
    # The two changes that each helped (C, D) together: the bundled models' recipe.
    Setting(
        "E relu3_1, style to relu4_1",
        ("--content-layers", "relu3_1", "--style-layers", "relu1_1,relu2_1,relu3_1,relu4_1"),
    ),
)
COMMON = ("--style-weight", "1e5", "--tv-weight", "1")


def content_ssim(models_dir: Path, name: str, photos: list[Path], size: int) -> float:
    """Median SSIM between each photo (longer side ``size``) and the model's output on it."""
    model = load_model(models_dir, name)
    scores = []
    for photo in photos:
        image = Image.open(photo).convert("RGB")
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        content = np.asarray(image)
        stylised = model.run(content[None])[0]
        scores.append(ssim(stylised, content))
    return statistics.median(scores)


def run_setting(setting: Setting, index: int, args: argparse.Namespace) -> dict[str, object]:
    out = Path(args.out) / f"setting{index}"
    name = f"sweep{index}"
    train = [
        "stylecast", "train", "--style", args.style, "--out", str(out / "run"),
        "--network", "lite", "--image-size", str(args.size), "--batch-size", "4",
        "--max-steps", str(args.steps), "--lr", "2e-3", "--vgg-weights", args.vgg_weights,
        "--sample-every", "0", "--val-fraction", "0", "--export-name", name,
        "--models-dir", str(out / "models"), *COMMON, *setting.options,
    ]  # fmt: skip
    for folder in args.content_dir:
        train += ["--content-dir", folder]
    for folder in (args.eval_dir, *args.exclude_dir):
        train += ["--exclude-dir", folder]
    started = time.perf_counter()
    subprocess.run(train, check=True, capture_output=True)
    train_seconds = time.perf_counter() - started
    report = out / "report"
    validate = [
        "stylecast", "validate", "--model", name, "--models-dir", str(out / "models"),
        "--content-dir", args.eval_dir, "--out", str(report), "--size", str(args.size),
        "--iterate-steps", str(args.iterate_steps), "--no-progress",
    ]  # fmt: skip
    subprocess.run(validate, check=True, capture_output=True)
    median = json.loads((report / "summary.json").read_text())["aggregate"]["median"]
    photos = sorted(p for p in Path(args.eval_dir).iterdir() if p.suffix.lower() == ".jpg")
    return {
        "setting": setting.name,
        "train_s": train_seconds,
        "fast_over_iterative": median["ratio_total"],
        "beats_fast_at_step": median["beats_fast_at_step"],
        "ssim_fast_content": content_ssim(out / "models", name, photos, args.size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--style", default="assets/styles/starry_night.jpg")
    parser.add_argument("--content-dir", action="append", required=True)
    parser.add_argument("--eval-dir", required=True, help="photos no setting trains on")
    parser.add_argument("--exclude-dir", action="append", default=[])
    parser.add_argument("--vgg-weights", default="random:0")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--iterate-steps", type=int, default=50)
    parser.add_argument("--only", type=int, nargs="*", help="setting indices to run")
    args = parser.parse_args()
    print(
        f"# {args.steps} steps at {args.size} px, lite net, {args.vgg_weights}; "
        f"scored on {args.eval_dir} at {args.size} px, {args.iterate_steps} L-BFGS steps"
    )
    print("| setting | train s | fast ÷ iterative | iterations to beat | SSIM fast vs photo |")
    print("|---|---|---|---|---|")
    for index, setting in enumerate(SETTINGS):
        if args.only and index not in args.only:
            continue
        row = run_setting(setting, index, args)
        print(
            f"| {row['setting']} | {row['train_s']:.0f} | {row['fast_over_iterative']:.3f} | "
            f"{row['beats_fast_at_step']} | {row['ssim_fast_content']:.3f} |",
            flush=True,
        )
    sys.exit(0)


if __name__ == "__main__":
    main()
