"""`stylecast demo`: serve the bundled models over gRPC and stylise the sample images."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_demo(args: argparse.Namespace) -> None:
    from ..serving.demo import format_results, run_demo

    print(format_results(run_demo(args.models_dir, args.content, args.out), args.out))


def register(sub: Any) -> None:
    """Add `demo` to the `stylecast` parser."""
    p = sub.add_parser("demo", help="serve the bundled models over gRPC and stylise samples")
    p.add_argument("--models-dir", default="models")
    p.add_argument("--content", nargs="+", default=["assets/content"], help="images or folders")
    p.add_argument("--out", default="demo-out")
    p.set_defaults(handler=_cmd_demo)
