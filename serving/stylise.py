"""`stylecast stylise`: stylise image files, folders or stdin offline, with no server, through
the same pipeline the server runs (serving.pipeline), loading only the model asked for.

``plan`` turns the command line into jobs (input → output, ``-`` for stdin or stdout) and
refuses what cannot work before any image is read or any model loaded; ``run`` does the jobs
one by one and yields an outcome for each, so one bad input never stops the others.

Where outputs go: ``--out FILE`` (one input), ``--out -`` (stdout, one input), ``--out DIR``,
or by default beside each input, named ``STEM.MODEL.EXT``. Files in scanned folders already
named like that for any model in the models folder are earlier outputs and are skipped, so
re-running on a folder in place does not stylise its own results; name a file explicitly to
stylise it anyway. An output keeps its input's format (a PNG's transparency survives)
unless ``fmt`` or the ``--out`` file's suffix says otherwise; for stdout it is the format of
the bytes read, else JPEG.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from stylecast.errors import StylecastError
from stylecast.image_rules import IMAGE_SUFFIXES

from .image_files import STDIO, display_name, read_bounded, write_atomically
from .imaging import (
    DEFAULT_ENCODING,
    DEFAULT_MAX_PIXELS,
    ENCODINGS,
    FILE_ENCODINGS,
    EncodedImage,
    ImageError,
    OutputFormat,
    StyliseOptions,
    encoding_for_suffix,
    sniff_encoding,
)
from .pipeline import stylise

if TYPE_CHECKING:
    from .runtime import RuntimeOptions, StyleModel

OUTPUT_QUALITY = 92  # JPEG/WebP quality of the files written
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # largest input file (or stdin) read, in bytes


@dataclass(frozen=True)
class Job:
    """One input and where its result goes (``-``: stdin or stdout); ``encoding`` None: the
    format of the bytes read (JPEG when they are not an image)."""

    source: str
    target: str
    encoding: str | None


@dataclass(frozen=True)
class Plan:
    """The jobs of one command, and the earlier outputs that folder scans skipped."""

    jobs: list[Job]
    skipped: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """What became of one job: ``error`` is None when its output was written, ``size``
    (width, height) and ``seconds`` then say what was written and how long it took."""

    job: Job
    error: str | None = None
    size: tuple[int, int] = (0, 0)
    seconds: float = 0.0


def model_names(models_dir: Path) -> list[str]:
    """The model folders in ``models_dir`` (not checked or loaded)."""
    try:
        return sorted(
            p.name for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
    except OSError as exc:
        raise StylecastError(f"cannot list {models_dir}: {exc.strerror}") from None


def load_model(
    models_dir: str | Path, name: str, runtime: RuntimeOptions | None = None
) -> StyleModel:
    """Load model ``name`` alone from ``models_dir`` (its newest working version); default
    runtime options: onnxruntime's, with no warm-up run."""
    from .repository import load_model_dir  # onnxruntime: only once a model is really needed
    from .runtime import RuntimeOptions

    root = Path(models_dir)
    if not root.is_dir():
        raise StylecastError(f"models folder not found: {root}")
    names = model_names(root)
    available = f"models in {root}: {', '.join(names) or 'none'}"
    if name not in names:
        raise StylecastError(f"unknown model {name!r} ({available})")
    try:
        model, _newer_broken = load_model_dir(root / name, runtime or RuntimeOptions(warmup=False))
    except StylecastError as exc:
        raise StylecastError(f"model {name!r} cannot be loaded: {exc} ({available})") from None
    return model


def is_earlier_output(path: Path, models: list[str]) -> bool:
    """Whether ``path`` is named like an output of one of ``models`` (STEM.MODEL.EXT)."""
    return any(path.stem.endswith(f".{name}") for name in models)


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Expand files and folders (recursive) into the image paths, each once."""
    return scan_inputs(inputs, [])[0]


def scan_inputs(inputs: list[str], models: list[str]) -> tuple[list[Path], list[Path]]:
    """Expand files and folders (recursive; earlier outputs of ``models`` skipped) into the
    image paths, each once, and the skipped ones."""
    files: list[Path] = []
    skipped: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(
                p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            fresh = [p for p in found if not is_earlier_output(p, models)]
            skipped += [p for p in found if is_earlier_output(p, models)]
            if not fresh:
                done = f" (only {len(found)} earlier outputs)" if found else ""
                raise StylecastError(f"no JPEG, PNG or WebP images under {item}{done}")
            files.extend(fresh)
        elif item.is_file():
            files.append(item)
        else:
            raise StylecastError(f"input not found: {item}")
    seen: set[Path] = set()
    unique = []
    for path in files:  # each file once, at its first mention
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique, skipped


def plan(
    inputs: list[str],
    model_name: str,
    out: str | None = None,
    fmt: str | None = None,
    models: list[str] | None = None,
) -> Plan:
    """The jobs for stylising ``inputs`` with ``model_name`` into ``out`` (see the module's
    docstring); ``fmt`` forces the output encoding; ``models``: the names of earlier outputs
    to skip in folders (default: ``model_name``). Raises StylecastError for what cannot work.
    """
    if fmt is not None and fmt not in FILE_ENCODINGS:
        raise StylecastError(f"unknown format {fmt!r}; choose from {', '.join(FILE_ENCODINGS)}")
    if STDIO in inputs:
        if len(inputs) > 1:
            raise StylecastError("- (stdin) must be the only input")
        target = STDIO if out is None else out
        if target != STDIO and Path(target).suffix.lower() not in IMAGE_SUFFIXES:
            raise StylecastError("with - (stdin) as input, --out must be - or an image file")
        return Plan([Job(STDIO, target, output_encoding(target, fmt))])
    files, skipped = scan_inputs(inputs, models or [model_name])
    if out == STDIO:
        if len(files) != 1:
            raise StylecastError(
                f"--out - (stdout) takes exactly one input image; got {len(files)}"
            )
        return Plan([Job(str(files[0]), STDIO, fmt)], skipped)
    out_path = Path(out) if out else None
    if out_path is not None and not out_path.is_dir():
        if out_path.suffix.lower() in IMAGE_SUFFIXES:
            if len(files) != 1:
                raise StylecastError(
                    f"--out {out_path} names one file, but there are {len(files)} inputs; "
                    "give a folder instead"
                )
            target = str(out_path)
            return Plan([Job(str(files[0]), target, output_encoding(target, fmt))], skipped)
        if out_path.exists():
            raise StylecastError(f"--out {out_path} exists and is not a folder")
    jobs = []
    for source in files:
        encoding = fmt or encoding_for_suffix(source.suffix)
        folder = out_path if out_path is not None else source.parent
        name = f"{source.stem}.{model_name}{ENCODINGS[encoding].suffixes[0]}"
        jobs.append(Job(str(source), str(folder / name), encoding))
    _refuse_collisions(jobs)
    return Plan(jobs, skipped)


def output_encoding(target: str, fmt: str | None) -> str | None:
    """The encoding of an output the user named: ``fmt``, which must agree with the file's
    image suffix if it has one; None (the input's own format) for ``-`` or no suffix."""
    if target == STDIO or Path(target).suffix.lower() not in IMAGE_SUFFIXES:
        return fmt
    named = encoding_for_suffix(Path(target).suffix)
    if fmt is not None and fmt != named:
        raise StylecastError(f"--format {fmt} disagrees with the output file name {target}")
    return named


def _refuse_collisions(jobs: list[Job]) -> None:
    seen: dict[Path, str] = {}
    for job in jobs:
        key = Path(job.target).resolve()
        if key in seen:
            raise StylecastError(
                f"{seen[key]} and {job.source} would both be written to {job.target}; "
                "stylise them into different folders"
            )
        seen[key] = job.source


def run(
    jobs: list[Job],
    model: StyleModel,
    options: StyliseOptions | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
) -> Iterator[Outcome]:
    """Do each job (``stdin``/``stdout``: the streams ``-`` stands for), yielding its outcome
    once its output is written or it failed: an unreadable input, one over ``max_bytes`` or
    ``max_pixels``, a bad image, or an output that cannot be written."""
    for job in jobs:
        start = time.perf_counter()
        try:
            data = read_bounded(job.source, max_bytes, stdin)
            encoding = job.encoding or sniff_encoding(data) or DEFAULT_ENCODING
            output = OutputFormat(encoding, OUTPUT_QUALITY)
            try:
                result = stylise(model, EncodedImage(data), options, output, max_pixels=max_pixels)
            except ImageError as exc:
                raise ImageError(f"{display_name(job.source)}: {exc}") from None
            write_atomically(job.target, result.image.data, stdout)
        except StylecastError as exc:
            yield Outcome(job, str(exc))
        else:
            size = (result.image.width, result.image.height)
            yield Outcome(job, None, size, time.perf_counter() - start)


# -- video ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoJob:
    """One video to stylise: ``source`` a video file or a folder whose images are its
    ``frames`` (in name order); ``target`` a video file, or with ``frames_out`` the folder for
    the stylised frames ("": beside each frame) written as ``encoding``."""

    source: str
    target: str
    frames: list[Path] = field(default_factory=list)
    frames_out: bool = False
    encoding: str | None = None


def wants_video(inputs: list[str], out: str | None, frames: bool) -> bool:
    """Whether a command line asks for video: a video input, ``--out`` naming a video file,
    or ``--frames`` (folders are the frames of one video each)."""
    from .video import is_video_path

    return frames or any(map(is_video_path, inputs)) or (out is not None and is_video_path(out))


def plan_video(
    inputs: list[str],
    model_name: str,
    out: str | None = None,
    fmt: str | None = None,
    models: list[str] | None = None,
) -> list[VideoJob]:
    """The jobs for stylising videos (files) and folders of frames with ``model_name``: into
    ``--out`` VIDEO (one input), ``--out`` DIR (a video as DIR/STEM.MODEL.EXT, frames as
    DIR/FRAME.MODEL.EXT), or beside each input. Raises StylecastError for what cannot work."""
    from .video import FOURCC_BY_SUFFIX, check_writable, is_video_path

    if STDIO in inputs or out == STDIO:
        raise StylecastError("video cannot be read from stdin or written to stdout")
    out_path = Path(out) if out is not None else None
    out_is_video = out_path is not None and not out_path.is_dir() and bool(out_path.suffix)
    if out_path is not None and out_is_video:
        if out_path.suffix.lower() in IMAGE_SUFFIXES:
            raise StylecastError(f"--out {out_path} is an image; give a video file or a folder")
        check_writable(out_path)
        if len(inputs) != 1:
            raise StylecastError(f"--out {out_path} names one video, but there are "
                                 f"{len(inputs)} inputs; give a folder instead")  # fmt: skip
    elif out_path is not None and out_path.is_file():
        raise StylecastError(f"--out {out_path} exists and is not a folder")
    jobs = []
    for item in map(Path, inputs):
        if item.is_dir():
            frames = sorted(scan_inputs([str(item)], models or [model_name])[0], key=_natural)
            if out_path is not None and out_is_video:
                jobs.append(VideoJob(str(item), str(out_path), frames))
            else:
                encoding = fmt or encoding_for_suffix(frames[0].suffix)
                target = str(out_path) if out_path is not None else ""
                jobs.append(VideoJob(str(item), target, frames, True, encoding))
        elif item.is_file() and is_video_path(item):
            if fmt is not None:
                raise StylecastError(f"--format applies to frames; {item} is a video")
            suffix = item.suffix if item.suffix.lower() in FOURCC_BY_SUFFIX else ".mp4"
            named = f"{item.stem}.{model_name}{suffix}"
            video = out_path if out_path is not None and out_is_video else None
            video = video or (out_path or item.parent) / named
            if video.resolve() == item.resolve():
                raise StylecastError(f"--out {video} is the input video; choose another name")
            jobs.append(VideoJob(str(item), str(video)))
        elif item.is_file():
            raise StylecastError(
                f"{item} is not a video ({', '.join(sorted(FOURCC_BY_SUFFIX))}, …); stylise "
                "images and videos separately, or give a folder of frames"
            )
        else:
            raise StylecastError(f"input not found: {item}")
    _refuse_collisions([Job(job.source, job.target, None) for job in jobs if not job.frames_out])
    return jobs


def _natural(path: Path) -> list[str | int]:
    """A sort key that puts frame_2 before frame_10."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]
