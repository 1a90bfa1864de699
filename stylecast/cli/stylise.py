"""`stylecast stylise`: stylise image files, folders or stdin, or videos, offline with
onnxruntime (never torch). Parses its arguments and delegates to stylecast.serving.stylise
(images, and the plan for videos) and stylecast.serving.video (frames); prints the results,
or with --json one JSON object per input. Also holds the stdin and stdout helpers that
`stylecast client stylise` shares."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .args import add_stylise_options, positive_int, style_mix


def _stylise_options(args: argparse.Namespace, model: Any = None) -> Any:
    """The per-image options; given the loaded ``model``, its style or mix is checked once
    here (a one-line error) rather than for every input."""
    from ..serving.imaging import StyliseOptions
    from ..serving.pipeline import request_weights

    options = StyliseOptions(
        strength=args.strength,
        preserve_color=args.preserve_color,
        max_side=args.max_side,
        style=args.style,
        mix=tuple(style_mix(args).items()),
    )
    if model is not None:
        request_weights(model, options)
    return options


def _cmd_stylise(args: argparse.Namespace) -> None:
    from ..errors import StylecastError
    from ..serving import stylise as offline

    if args.json and args.out == "-":
        raise StylecastError("--json writes to stdout; it cannot go with --out -")
    if offline.wants_video(args.inputs, args.out, args.frames):
        _stylise_videos(args)
        return
    if args.smooth or args.fps is not None:
        raise StylecastError(
            "--smooth and --fps apply to video: give a video file, --out VIDEO, or --frames "
            "to read a folder as the frames of one video"
        )
    _stylise_images(args)


def _stylise_images(args: argparse.Namespace) -> None:
    import sys

    from tqdm.auto import tqdm

    from ..errors import InputsFailed
    from ..progress import show_progress
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
        plan.jobs, model, _stylise_options(args, model), max_pixels=args.max_pixels,
        max_bytes=args.max_bytes, stdin=binary_stream(sys.stdin) if reads_stdin else None,
        stdout=binary_stream(sys.stdout) if writes_stdout else None,
    )  # fmt: skip
    total, written, failed = len(plan.jobs), [], []
    shown = show_progress(total > 1)
    with tqdm(total=total, desc="stylise", unit="img", disable=not shown, file=sys.stderr) as bar:
        for outcome in outcomes:
            bar.update()
            if args.json:
                print(json.dumps(_image_record(outcome, model)), flush=True)
            if outcome.error is None:
                written.append(outcome.job.target)
            else:
                failed.append(outcome.error)
                if total > 1:
                    bar.write(f"stylecast stylise: error: {outcome.error}", file=sys.stderr)
    if total == 1 and failed:
        raise InputsFailed(failed[0])
    if not writes_stdout:
        paths = sys.stderr if args.json else sys.stdout  # with --json, stdout is JSON only
        for path in written[:10]:
            print(path, file=paths)
        if len(written) > 10:
            print(f"… and {len(written) - 10} more", file=paths)
    _finish(total, len(written), len(failed))


def _stylise_videos(args: argparse.Namespace) -> None:
    import sys

    from ..errors import InputsFailed, StylecastError
    from ..serving import stylise as offline
    from ..serving import video
    from ..serving.runtime import RuntimeOptions

    if args.fps is not None and args.fps <= 0:
        raise StylecastError(f"--fps must be > 0 (got {args.fps})")
    models_dir = Path(args.models_dir)
    known = offline.model_names(models_dir) if models_dir.is_dir() else []
    jobs = offline.plan_video(args.inputs, args.model, args.out, args.format, [*known, args.model])
    if args.fps is not None and not all(job.frames for job in jobs):
        raise StylecastError("--fps sets the rate of a folder of frames; a video keeps its own")
    # Every video is opened before the model is loaded: a bad one is reported at once.
    opened: list[tuple[Any, Any]] = []
    for job in jobs:
        try:
            opened.append((job, _open_source(job, args.fps or video.DEFAULT_FPS)))
        except StylecastError as exc:
            if len(jobs) == 1:
                _video_failed(args, job, exc)
            opened.append((job, exc))
    # Frames share one size: the arena is never given back between them.
    runtime = RuntimeOptions(warmup=False, arena_shrink_pixels=args.max_pixels + 1)
    model = offline.load_model(models_dir, args.model, runtime)
    options = _stylise_options(args, model)
    failed = 0
    for job, source in opened:
        styliser = video.FrameStyliser(model, options, args.smooth, args.max_pixels)
        try:
            if isinstance(source, StylecastError):
                raise source
            result = _stylise_video(job, source, styliser)
        except StylecastError as exc:
            if len(jobs) == 1:
                _video_failed(args, job, exc)
            failed += 1
            print(f"stylecast stylise: error: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps(_failed_record(args, job, exc)), flush=True)
            continue
        if args.json:
            print(json.dumps(_video_record(result, model)), flush=True)
        print(_video_line(result), file=sys.stderr if args.json else sys.stdout)
    if failed:
        raise InputsFailed(
            f"{len(jobs) - failed} of {len(jobs)} written; {failed} could not be stylised "
            "(reported above)"
        )


def _failed_record(args: argparse.Namespace, job: Any, exc: Exception) -> dict[str, Any]:
    return {"input": job.source, "output": job.target, "model": args.model, "error": str(exc)}


def _video_failed(args: argparse.Namespace, job: Any, exc: Exception) -> None:
    """The only video failed: its --json line, then the error (exit 3)."""
    from ..errors import InputsFailed

    if args.json:
        print(json.dumps(_failed_record(args, job, exc)), flush=True)
    raise InputsFailed(str(exc)) from None


def _open_source(job: Any, fps: float) -> Any:
    """The frames of one VideoJob: its folder's images, or its video file opened."""
    from ..serving import video

    return (
        video.FrameFolder(job.frames, job.source, fps)
        if job.frames
        else video.VideoFile(job.source)
    )


def _stylise_video(job: Any, source: Any, styliser: Any) -> Any:
    """One VideoJob, with a progress bar on a terminal: its VideoResult."""
    import sys

    from tqdm.auto import tqdm

    from ..progress import show_progress
    from ..serving import stylise as offline
    from ..serving import video

    shown = show_progress()
    name = Path(job.source).name
    with tqdm(total=source.total, desc=name, unit="frame", disable=not shown,
              file=sys.stderr, leave=False) as bar:  # fmt: skip

        def tick(done: int) -> None:
            bar.update(done - bar.n)

        if not job.frames_out:
            return video.stylise_to_video(source, job.target, styliser, tick)
        folder = Path(job.target) if job.target else None
        return video.stylise_to_frames(
            source, folder, styliser, job.encoding or "png", offline.OUTPUT_QUALITY, tick
        )


def _finish(total: int, written: int, failed: int) -> None:
    import sys

    from ..errors import InputsFailed

    summary = f"{written} of {total} written"
    if failed:
        raise InputsFailed(f"{summary}; {failed} could not be stylised (reported above)")
    print(f"stylecast stylise: {summary}", file=sys.stderr)


def _image_record(outcome: Any, model: Any) -> dict[str, Any]:
    """The --json object of one image (``error`` instead of a size when it failed)."""
    record: dict[str, Any] = {"input": outcome.job.source, "output": outcome.job.target,
                              "model": model.name, "version": model.version}  # fmt: skip
    if outcome.error is not None:
        return {**record, "error": outcome.error}
    return {**record, "size": list(outcome.size), "seconds": round(outcome.seconds, 4)}


def _video_record(result: Any, model: Any) -> dict[str, Any]:
    """The --json object of one video: an image's fields, plus frames, fps and flicker."""
    flicker = result.flicker
    return {
        "input": result.source, "output": result.target, "model": model.name,
        "version": model.version, "size": list(result.size), "seconds": round(result.seconds, 4),
        "frames": result.frames, "fps": result.fps,
        "flicker": None if flicker is None else {
            "ratio": flicker.ratio, "content_change": round(flicker.content_change, 4),
            "stylised_change": round(flicker.stylised_change, 4),
        },
    }  # fmt: skip


def _video_line(result: Any) -> str:
    width, height = result.size
    rate = result.frames / result.seconds if result.seconds > 0 else 0.0
    flicker = result.flicker
    shimmer = "" if flicker is None or flicker.ratio is None else (
        f", flicker {flicker.ratio:.2f}")  # fmt: skip
    return (f"{result.target}: {result.frames} frames, {width}x{height} at {result.fps:g} fps "
            f"in {result.seconds:.1f} s ({rate:.1f} frames/s){shimmer}")  # fmt: skip


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
DEFAULT_FPS = 25.0  # = serving.video.DEFAULT_FPS


def unit_float(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1] (got {value})")
    return value


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
written. Exit status: 0 all written; 1 a missing input, unknown model or bad option value; 2 bad
usage; 3 some inputs could not be stylised (the rest were written).

Video (needs OpenCV): a video file in (.mp4, .avi, .mov, .mkv, …) is written as
STEM.MODEL.EXT beside it, into --out DIR, or to --out FILE (.mp4, .m4v, .mov, .avi, .mkv),
keeping its frame rate. With --frames, --out FILE.mp4 or a video among the inputs, a folder
is the frames of one video in name order: out as a video, or as frames STEM.MODEL.EXT beside
them or in --out DIR.
--max-side downscales the frames before inference and the output keeps that size. --smooth
damps the frame-to-frame shimmer; each video's line reports its flicker (stylised
frame-to-frame change over the content's, as `stylecast validate --video` measures it).
A video is written under a temporary name and renamed when complete."""


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
    p.add_argument(
        "--json", action="store_true",
        help="one JSON object per input on stdout (input, output, model, version, size, "
        "seconds; videos also frames, fps, flicker); other lines go to stderr",
    )  # fmt: skip
    video = p.add_argument_group("video")
    video.add_argument(
        "--smooth", type=unit_float, default=0.0, metavar="0..1",
        help="temporal smoothing: how much of the previous frame to keep where the content did "
        "not change (0: off; 0.5 is a good start)",
    )  # fmt: skip
    video.add_argument(
        "--frames", action="store_true",
        help="read each folder as the frames of one video (in name order), not as images",
    )  # fmt: skip
    video.add_argument(
        "--fps", type=float, help=f"frame rate of a folder of frames (default {DEFAULT_FPS:g})"
    )
    p.set_defaults(handler=_cmd_stylise)
