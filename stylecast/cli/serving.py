"""Subcommands of the serving side (never import torch): `stylise`, and later `serve`,
`client` and `camera`."""

from __future__ import annotations

import argparse
from typing import Any

from .args import add_stylise_options, positive_int


def _stylise_options(args: argparse.Namespace) -> Any:
    from ..serving.imaging import StyliseOptions

    return StyliseOptions(
        strength=args.strength, preserve_color=args.preserve_color, max_side=args.max_side
    )


def _cmd_stylise(args: argparse.Namespace) -> None:
    from ..serving.stylise import stylise_files

    written = stylise_files(
        args.inputs, args.model, args.models_dir, args.out, _stylise_options(args),
        max_pixels=args.max_pixels,
    )  # fmt: skip
    for path in written[:10]:
        print(path)
    if len(written) > 10:
        print(f"… and {len(written) - 10} more")


def _add_stylise(sub: Any) -> None:
    p = sub.add_parser("stylise", aliases=["stylize"], help="stylise images offline (onnxruntime)")
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files or folders")
    p.add_argument("--model", required=True, help="model name in --models-dir")
    p.add_argument("--models-dir", default="models")
    p.add_argument("--out", help="output file (one input) or folder; default: beside each input")
    p.add_argument("--max-pixels", type=positive_int, default=4096 * 4096)
    add_stylise_options(p)
    p.set_defaults(handler=_cmd_stylise)


def register(sub: Any) -> None:
    """Add the serving-side subcommands to the `stylecast` parser."""
    for add in (_add_stylise,):
        add(sub)
