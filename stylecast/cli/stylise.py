"""`stylecast stylise`: stylise image files, folders or stdin offline with onnxruntime (never
torch). Parses its arguments and delegates to stylecast.serving.stylise; also holds the stdin
and stdout helpers that `stylecast client stylise` shares."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .args import add_stylise_options, positive_int


def _stylise_options(args: argparse.Namespace) -> Any:
    from ..serving.imaging import StyliseOptions

    return StyliseOptions(
        strength=args.strength, preserve_color=args.preserve_color, max_side=args.max_side
    )


def _cmd_stylise(args: argparse.Namespace) -> None:
    import sys

    from tqdm.auto import tqdm

    from ..errors import InputsFailed
    from ..serving import stylise as offline
    from ..serving.image_files import STDIO

    models_dir = Path(args.models_dir)
    known = offline.model_names(models_dir) if models_dir.is_dir() else []
    plan = offline.plan(args.inputs, args.model, args.out, args.format, [*known, args.model])
    reads_stdin = plan.jobs[0].source == STDIO
    writes_stdout = plan.jobs[0].target == STDIO
    refuse_terminals(reads_stdin, writes_stdout)
    if plan.skipped:
        print(f"stylecast stylise: skipping {len(plan.skipped)} earlier output(s) of stylise, "
              f"e.g. {plan.skipped[0]}", file=sys.stderr)  # fmt: skip
    model = offline.load_model(models_dir, args.model)
    outcomes = offline.run(
        plan.jobs, model, _stylise_options(args), max_pixels=args.max_pixels,
        max_bytes=args.max_bytes, stdin=binary_stream(sys.stdin) if reads_stdin else None,
        stdout=binary_stream(sys.stdout) if writes_stdout else None,
    )  # fmt: skip
    total, written, failed = len(plan.jobs), [], []
    with tqdm(total=total, desc="stylise", unit="img", disable=total < 2, file=sys.stderr) as bar:
        for outcome in outcomes:
            bar.update()
            if outcome.error is None:
                written.append(outcome.job.target)
            else:
                failed.append(outcome.error)
                if total > 1:
                    bar.write(f"stylecast stylise: error: {outcome.error}", file=sys.stderr)
    if total == 1 and failed:
        raise InputsFailed(failed[0])
    if not writes_stdout:
        for path in written[:10]:
            print(path)
        if len(written) > 10:
            print(f"… and {len(written) - 10} more")
    summary = f"{len(written)} of {total} written"
    if failed:
        raise InputsFailed(f"{summary}; {len(failed)} could not be stylised (reported above)")
    print(f"stylecast stylise: {summary}", file=sys.stderr)


def refuse_terminals(reads_stdin: bool, writes_stdout: bool) -> None:
    """Image bytes are never read from or written to a terminal (``-`` needs a pipe)."""
    import sys

    from ..errors import StylecastError

    if reads_stdin and sys.stdin is not None and sys.stdin.isatty():
        raise StylecastError("- (stdin) is a terminal; pipe an image in, e.g. cat x.jpg | ...")
    if writes_stdout and sys.stdout is not None and sys.stdout.isatty():
        raise StylecastError("refusing to write image data to a terminal; redirect stdout")


def binary_stream(stream: Any) -> Any:
    """The byte stream under a text stream (None when there is none, e.g. a closed stdin)."""
    return getattr(stream, "buffer", None)


# The file encodings, spelled here so that --help needs no imaging import (a test keeps the two
# in step with serving.imaging.FILE_ENCODINGS).
OUTPUT_FORMATS = ("jpeg", "png", "webp")
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # = serving.stylise.DEFAULT_MAX_BYTES

STYLISE_DESCRIPTION = """\
Stylise images offline with onnxruntime (no server), loading only --model.

Inputs: files, folders (searched recursively for .jpg, .jpeg, .png and .webp) or - for stdin.
Outputs go to --out FILE (one input), --out - (stdout: the image bytes only, messages go to
stderr), --out DIR, or by default beside each input as STEM.MODEL.EXT. Each output keeps its
input's format unless --format or --out FILE's suffix says otherwise (stdout: the format read,
else JPEG). In folders, files already named STEM.NAME.EXT for a model NAME in --models-dir are
earlier outputs and are skipped, so running again in place never stylises its own results;
name such a file explicitly to stylise it anyway.

Every input is read with at most --max-bytes bytes and checked against --max-pixels. An input
that cannot be read, decoded or written is reported on its own line and the others are still
written. Exit status: 0 all written; 2 bad usage (options, missing input, unknown model);
3 some inputs could not be stylised (the rest were written)."""


def register(sub: Any) -> None:
    """Add `stylise` to the `stylecast` parser."""
    p = sub.add_parser(
        "stylise",
        aliases=["stylize"],
        help="stylise images offline (onnxruntime)",
        description=STYLISE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files or folders, or - (stdin)")
    p.add_argument("--model", required=True, help="model name in --models-dir")
    p.add_argument("--models-dir", default="models")
    p.add_argument(
        "--out", help="output file (one input), folder, or - (stdout); default: beside each input"
    )
    p.add_argument("--format", choices=OUTPUT_FORMATS, help="output format (default: the input's)")
    p.add_argument(
        "--max-pixels", type=positive_int, default=4096 * 4096, help="largest input, in pixels"
    )
    p.add_argument(
        "--max-bytes",
        type=positive_int,
        default=DEFAULT_MAX_BYTES,
        help=f"largest input file or stdin read, in bytes ({DEFAULT_MAX_BYTES})",
    )
    add_stylise_options(p)
    p.set_defaults(handler=_cmd_stylise)
