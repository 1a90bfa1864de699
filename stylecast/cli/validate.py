"""`stylecast validate`: fast network vs the iterative optimisation it replaces. Parses the
arguments, runs ``stylecast.training.validate`` (torch, imported only when run), writes the report
with ``stylecast.validation.report`` and prints the headline figures (with ``--json``: the
summary.json document on stdout and the headline on stderr). A multi-style model is scored
style by style (every style, or the one ``--model-style`` names), each into OUT/<style>/."""

from __future__ import annotations

import argparse
from typing import Any

from .args import add_loss_arguments, loss_overrides, positive_int


def _styles_to_score(args: argparse.Namespace) -> list[str | None]:
    """The styles of the model to validate one by one ([None]: a single-style model)."""
    from pathlib import Path

    from ..errors import StylecastError
    from ..serving.model_card import read_card

    model_dir = Path(args.models_dir) / args.model
    names = read_card(model_dir).style_names if (model_dir / "model.json").is_file() else []
    if args.model_style and args.model_style not in names:
        raise StylecastError(
            f"--model-style {args.model_style}: model {args.model} has "
            + (f"the styles {', '.join(names)}" if names else "a single style")
        )
    if args.model_style:
        return [args.model_style]
    return list(names) or [None]


def _cmd_validate(args: argparse.Namespace) -> None:
    from pathlib import Path

    styles = _styles_to_score(args)
    for style in styles:
        out = Path(args.out) / style if style and len(styles) > 1 else Path(args.out)
        _validate_one(args, style, out)


def _validate_one(args: argparse.Namespace, style: str | None, out: Any) -> None:
    """Validate one style of the model (None: its only one) into ``out``."""
    import sys
    from pathlib import Path

    from ..training.validate import ValidateOptions, validate_model
    from ..validation.report import write_report
    from ..validation.summary import SUMMARY_FILE, read_summary
    from ..validation.tables import headline

    options = ValidateOptions(
        size=args.size,
        iterate_steps=args.iterate_steps,
        optimizer=args.optimizer,
        style=args.style,
        style_size=args.style_size,
        vgg_weights=args.vgg_weights,
        loss_overrides=loss_overrides(args),
        cache_dir=args.cache_dir or str(Path(args.out) / "cache"),
        device=args.device,
        fast_repeats=args.fast_repeats,
        video=args.video,
        video_frames=args.video_frames,
        progress=not args.no_progress,
        model_style=style,
    )
    validation = validate_model(args.model, args.content_dir, out, args.models_dir, options)
    write_report(validation, out)
    human = sys.stdout
    if args.json:  # the written summary (with its picture paths), exactly as in the file
        sys.stdout.write(read_summary(Path(out) / SUMMARY_FILE).to_json())
        human = sys.stderr
    prefix = f"{style}: " if style else ""
    for label, value in headline(validation.summary):
        print(f"{prefix}{label}: {value}", file=human)
    print(f"{prefix}report: {out}/report.html (also report.md, {SUMMARY_FILE})", file=human)


def _add_validate(sub: Any) -> None:
    p = sub.add_parser(
        "validate",
        help="compare a model with the iterative optimisation: losses, similarity, speed",
        description="Score a model's fast output against `stylecast iterate` under the loss "
        "network it was trained with; write report.html, report.md and summary.json. Style "
        "image and loss settings come from the model card; the loss options override them.",
    )
    p.add_argument("--model", required=True, help="model name in --models-dir")
    p.add_argument("--content-dir", help="folder of content images (recursive)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--models-dir", default="models")
    p.add_argument("--size", type=positive_int, default=512, help="longer side of each image")
    p.add_argument("--iterate-steps", type=positive_int, default=300)
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--style", help="style image (default: from the model card)")
    p.add_argument(
        "--model-style",
        metavar="NAME",
        help="multi-style models: score this style only (default: each style, into OUT/NAME/)",
    )
    p.add_argument(
        "--style-size",
        type=positive_int,
        help="style longer side (default: the one the model was trained with, from its card)",
    )
    p.add_argument("--cache-dir", help="iterative-output cache (default: OUT/cache)")
    p.add_argument(
        "--device",
        default="auto",
        help="torch device of the iterative run and scoring: auto (CUDA if there), cpu, cuda:0",
    )
    p.add_argument("--fast-repeats", type=positive_int, default=3, help="timed fast runs")
    p.add_argument("--video", help="video file or folder of frames: adds temporal stability")
    p.add_argument("--video-frames", type=positive_int, default=24, help="frames to use")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bars (none unless on a terminal)"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print summary.json to stdout (the headline goes to stderr)",
    )
    add_loss_arguments(p)
    p.set_defaults(handler=_cmd_validate)


def register(sub: Any) -> None:
    """Add `validate` to the `stylecast` parser."""
    _add_validate(sub)
