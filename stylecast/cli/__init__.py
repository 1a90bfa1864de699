"""The `stylecast` command: parses arguments and delegates to training/ or serving/.

Each subcommand group lives in its own module and imports its heavy dependencies (torch,
onnxruntime, grpc) only when run, so `stylecast serve` never loads torch and `--help` is
instant. User errors print one line and exit non-zero: 1 a user error, 2 bad usage
(argparse), 3 some inputs failed, 4 a server error, 130 interrupted (stylecast.errors).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, Interrupted, StylecastError
from . import demo, models, serving, stylise, training, validate, web

log = logging.getLogger("stylecast")

SUBCOMMAND_GROUPS = (
    training.register,
    stylise.register,
    serving.register,
    validate.register,
    models.register,
    demo.register,
    web.register,
)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (callers and tests may swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylecast", description="Train, export, serve and validate style-transfer networks."
    )
    parser.add_argument("--version", action="version", version=f"stylecast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in SUBCOMMAND_GROUPS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our own logger gets its own handler; the root logger is left alone, so libraries
    # that bring their own (Lightning) print once, and others only warnings and errors.
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        args.handler(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below
    except BrokenPipeError:  # stdout closed early (`stylecast models | head`): no traceback
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except Interrupted as exc:
        print(f"stylecast {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except StylecastError as exc:
        print(f"stylecast {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"stylecast {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests swap it)
        pass


if __name__ == "__main__":
    sys.exit(main())
