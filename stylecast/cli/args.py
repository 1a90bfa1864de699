"""Argument types and option groups shared by several subcommands."""

from __future__ import annotations

import argparse
from typing import Any


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 (got {value})")
    return value


def layer_list(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated VGG layer names."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def float_list(text: str) -> tuple[float, ...]:
    """argparse type: comma-separated floats."""
    return tuple(float(v) for v in text.split(",") if v.strip())


def add_loss_arguments(parser: argparse.ArgumentParser) -> None:
    """Loss-network and loss-weight options shared by train, iterate and validate."""
    group = parser.add_argument_group("loss")
    group.add_argument(
        "--vgg-weights",
        default=None,
        help="imagenet (default: torchvision IMAGENET1K_V1, downloaded once), a local VGG-19 "
        "state-dict PATH, or random:SEED (calibrated random init, for tests only)",
    )
    group.add_argument("--content-layers", type=layer_list, help="comma-separated, e.g. relu4_2")
    group.add_argument(
        "--style-layers", type=layer_list, help="comma-separated, e.g. relu1_1,relu2_1,relu3_1"
    )
    group.add_argument("--style-layer-weights", type=float_list, help="one weight per style layer")
    group.add_argument("--content-weight", type=float)
    group.add_argument("--style-weight", type=float)
    group.add_argument("--tv-weight", type=float)


def loss_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The loss options the user gave, as LossConfig field names."""
    names = (
        "content_layers", "style_layers", "style_layer_weights",
        "content_weight", "style_weight", "tv_weight",
    )  # fmt: skip
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def add_stylise_options(parser: argparse.ArgumentParser) -> None:
    """Per-request stylisation options shared by stylise, client stylise and camera."""
    parser.add_argument("--strength", type=float, default=1.0, help="0 = content, 1 = full style")
    parser.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    parser.add_argument("--max-side", type=int, default=0, help="downscale larger inputs (0: off)")
    styles = parser.add_mutually_exclusive_group()
    styles.add_argument(
        "--style", default="", help="multi-style models: the style to apply, by name (default: "
        "the model's first)",
    )  # fmt: skip
    styles.add_argument(
        "--mix",
        metavar="NAME:W,...",
        default="",
        help="multi-style models: blend styles, e.g. starry_night:0.7,great_wave:0.3",
    )


def style_mix(args: argparse.Namespace) -> dict[str, float]:
    """The ``--mix`` argument as {name: weight} (empty when not given)."""
    from ..serving.styles import parse_mix

    return parse_mix(args.mix) if args.mix else {}
