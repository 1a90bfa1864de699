"""Video offline: frames from a video file (OpenCV) or a folder of frame images, stylised one by
one through the same pipeline as every image (serving.pipeline, raw RGB in and out), optionally
smoothed over time (serving.smoothing), and written to a video file or a folder of frames.
Returns what it did (``VideoResult``) and never prints.

Sizes: frames are downscaled to ``max_side`` before inference and the output keeps that
downscaled size (as for images: the network's output is never upscaled again). A video keeps
its frame rate; a folder of frames gets the one asked for. A video file is written under a
temporary name beside the target and renamed into place only when complete, so an error or
Ctrl-C never leaves a half-written video under the final name.

Flicker is the figure `stylecast validate --video` reports (training/temporal.py), computed
here without torch: the mean absolute change between consecutive stylised frames over that of
the content frames the network saw (1.0: no flicker added).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stylecast.errors import StylecastError

from .image_files import read_bounded, write_atomically
from .imaging import (
    DEFAULT_MAX_PIXELS,
    ENCODINGS,
    RAW,
    EncodedImage,
    ImageError,
    OutputFormat,
    StyliseOptions,
    encode,
    from_raw,
    raw_image,
)
from .pipeline import prepare, stylise
from .smoothing import TemporalSmoother

if TYPE_CHECKING:
    from .runtime import StyleModel

# Containers OpenCV writes here, and the codec for each (all in opencv-python's FFmpeg).
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
# What is read as a video (anything FFmpeg decodes; the suffix only tells videos from images).
VIDEO_SUFFIXES = frozenset(
    {*FOURCC_BY_SUFFIX, ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".ogv"}
)
DEFAULT_FPS = 25.0  # a folder of frames, or a video that does not say
MAX_FRAME_BYTES = 64 * 1024 * 1024  # largest frame image read from a folder


class VideoError(StylecastError):
    """A video could not be read, decoded or written."""


def import_cv2() -> Any:
    """OpenCV with its own stderr logging off (unless OPENCV_LOG_LEVEL says otherwise): the
    commands report failures themselves, in one line. StylecastError when not installed."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's messages: quiet
    try:
        import cv2
    except ImportError:
        raise StylecastError(
            "video and the camera need OpenCV: pip install 'stylecast[camera]' "
            "(opencv-python-headless; use opencv-python for an on-screen window)"
        ) from None
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None and "OPENCV_LOG_LEVEL" not in os.environ:
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    return cv2


def is_video_path(path: str | Path) -> bool:
    """Whether ``path`` is named like a video file."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def check_writable(path: str | Path) -> None:
    """Refuse a video file name OpenCV cannot write here (by its suffix)."""
    if Path(path).suffix.lower() not in FOURCC_BY_SUFFIX:
        raise VideoError(
            f"cannot write video {path}: choose a {', '.join(FOURCC_BY_SUFFIX)} file name"
        )


# -- flicker --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flicker:
    """Mean absolute change between consecutive frames (0-255 levels) and their ratio,
    stylised ÷ content (None: the content is static and the stylised frames are not)."""

    content_change: float
    stylised_change: float
    ratio: float | None


def flicker_ratio(stylised_change: float, content_change: float) -> float:
    """stylised ÷ content change; 1.0 when both are 0, infinite when only the content is
    (training/temporal.py's figure)."""
    if content_change == 0:
        return 1.0 if stylised_change == 0 else math.inf
    return stylised_change / content_change


class ChangeMeter:
    """The mean absolute change between consecutive frames fed to ``add`` (pairs of
    different sizes are skipped)."""

    def __init__(self) -> None:
        self.previous: np.ndarray | None = None
        self.total = 0.0
        self.pairs = 0

    def add(self, frame: np.ndarray) -> None:
        if self.previous is not None and self.previous.shape == frame.shape:
            diff = np.abs(frame.astype(np.int16) - self.previous.astype(np.int16))
            self.total += float(diff.mean())
            self.pairs += 1
        self.previous = frame

    @property
    def value(self) -> float | None:
        return self.total / self.pairs if self.pairs else None


def flicker(content: ChangeMeter, stylised: ChangeMeter) -> Flicker | None:
    """The figures of two meters fed the same frames (None: fewer than two frames)."""
    if content.value is None or stylised.value is None:
        return None
    ratio = flicker_ratio(stylised.value, content.value)
    return Flicker(content.value, stylised.value, None if math.isinf(ratio) else ratio)


# -- one frame ------------------------------------------------------------------------------


class FrameStyliser:
    """One RGB frame → (the content the network saw, the stylised frame), through the
    pipeline (raw RGB), then the temporal smoothing. Shared by video files and the camera."""

    def __init__(
        self,
        model: StyleModel,
        options: StyliseOptions | None = None,
        smooth: float = 0.0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.model = model
        self.options = options or StyliseOptions()
        self.smoother = TemporalSmoother(smooth)
        self.max_pixels = max_pixels

    def __call__(self, frame: np.ndarray | EncodedImage) -> tuple[np.ndarray, np.ndarray]:
        image = frame if isinstance(frame, EncodedImage) else raw_image(frame)
        content = prepare(image, self.options, self.max_pixels).content
        result = stylise(
            self.model, raw_image(content), self.options, OutputFormat(RAW),
            max_pixels=self.max_pixels,
        )  # fmt: skip
        out = from_raw(result.image.data, result.image.width, result.image.height)
        return content, self.smoother(content, out)


# -- sources --------------------------------------------------------------------------------


class FrameSource:
    """Frames to stylise: ``frames()`` yields (name, RGB array or encoded image); ``fps`` and
    ``total`` (None: unknown) describe them."""

    name: str
    fps: float
    total: int | None

    def frames(self) -> Iterator[tuple[str, np.ndarray | EncodedImage]]:
        raise NotImplementedError


class VideoFile(FrameSource):
    """The frames of a video file, decoded by OpenCV."""

    def __init__(self, path: str | Path) -> None:
        self.name = str(path)
        self._cv2 = import_cv2()
        if not Path(path).is_file():
            raise VideoError(f"video not found: {path}")
        self._capture = self._cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise VideoError(f"cannot read video {path}: not a video OpenCV can decode")
        fps = self._capture.get(self._cv2.CAP_PROP_FPS)
        self.fps = fps if fps and math.isfinite(fps) and fps > 0 else DEFAULT_FPS
        count = int(self._capture.get(self._cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = count if count > 0 else None

    def frames(self) -> Iterator[tuple[str, np.ndarray]]:
        stem, index = Path(self.name).stem, 0
        try:
            while True:
                ok, frame = self._capture.read()
                if not ok:
                    return
                index += 1
                yield f"{stem}_{index:06d}", self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB)
        finally:
            self._capture.release()


class FrameFolder(FrameSource):
    """Frame images (JPEG, PNG, WebP) in name order; decoded by the pipeline, so each is
    read as every image is (orientation, transparency, limits)."""

    def __init__(self, paths: list[Path], name: str, fps: float = DEFAULT_FPS) -> None:
        if not paths:
            raise VideoError(f"{name}: no frames")
        self.paths, self.name, self.fps, self.total = paths, name, fps, len(paths)

    def frames(self) -> Iterator[tuple[str, EncodedImage]]:
        for path in self.paths:
            yield str(path), EncodedImage(read_bounded(str(path), MAX_FRAME_BYTES))


# -- sinks ----------------------------------------------------------------------------------


class VideoWriter:
    """Writes RGB frames to a video file through a temporary file renamed on ``commit``;
    ``abort`` (or leaving the ``with`` block on an exception) removes it."""

    def __init__(self, target: str | Path, fps: float) -> None:
        check_writable(target)
        self.target = Path(target)
        self.fps = fps
        self.size: tuple[int, int] | None = None  # (width, height) of the first frame
        self.temporary = self.target.with_name(
            f".{self.target.stem}.{os.getpid()}.partial{self.target.suffix}"
        )
        self._cv2 = import_cv2()
        self._writer: Any = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()

    def write(self, frame: np.ndarray, bgr: bool = False) -> None:
        """Add one RGB frame (``bgr``: in OpenCV's BGR order); all have the first's size."""
        height, width = frame.shape[:2]
        if self._writer is None:
            self._open((width, height))
        elif (width, height) != self.size:
            assert self.size is not None
            raise VideoError(
                f"cannot write video {self.target}: a frame is {width}x{height}, the first was "
                f"{self.size[0]}x{self.size[1]}; a video's frames must share one size"
            )
        self._writer.write(frame if bgr else self._cv2.cvtColor(frame, self._cv2.COLOR_RGB2BGR))

    def _open(self, size: tuple[int, int]) -> None:
        cv2 = self._cv2
        not_a_folder = next((p for p in self.target.parents if p.exists() and not p.is_dir()), None)
        if not_a_folder is not None:
            raise VideoError(f"cannot write {self.target}: {not_a_folder} is not a folder")
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VideoError(f"cannot write {self.target}: {exc.strerror}") from None
        fourcc = cv2.VideoWriter_fourcc(*FOURCC_BY_SUFFIX[self.target.suffix.lower()])
        self._writer = cv2.VideoWriter(str(self.temporary), fourcc, self.fps, size)
        if not self._writer.isOpened():
            self.abort()
            raise VideoError(f"cannot write video {self.target}: OpenCV cannot open it")
        self.size = size

    def commit(self) -> None:
        """Finish the file and move it into place (nothing is written without frames)."""
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        try:
            if self.temporary.stat().st_size == 0:
                raise VideoError(f"cannot write video {self.target}: OpenCV wrote nothing")
            os.replace(self.temporary, self.target)
        except OSError as exc:
            self.abort()
            raise VideoError(f"cannot write {self.target}: {exc.strerror}") from None
        except VideoError:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the temporary file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        with contextlib.suppress(OSError):
            self.temporary.unlink()


# -- the loop -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoResult:
    """What one video became: ``size`` is (width, height) of the frames written."""

    source: str
    target: str
    frames: int
    fps: float
    size: tuple[int, int]
    seconds: float
    flicker: Flicker | None


# Where stylised frames go: (name, RGB frame) → None.
FrameSink = Callable[[str, np.ndarray], None]


def stylise_frames(
    source: FrameSource,
    sink: FrameSink,
    styliser: FrameStyliser,
    target: str,
    progress: Callable[[int], None] | None = None,
) -> VideoResult:
    """Stylise every frame of ``source`` into ``sink`` (``progress(n)``: n frames done).
    Raises VideoError for no frames, ImageError (naming the frame) for a bad one."""
    start = time.perf_counter()
    content_meter, stylised_meter = ChangeMeter(), ChangeMeter()
    count, size = 0, (0, 0)
    for name, frame in source.frames():
        try:
            content, out = styliser(frame)
        except ImageError as exc:
            raise ImageError(f"{name}: {exc}") from None
        sink(name, out)
        content_meter.add(content)
        stylised_meter.add(out)
        count += 1
        size = (int(out.shape[1]), int(out.shape[0]))
        if progress is not None:
            progress(count)
    if count == 0:
        raise VideoError(f"cannot read video {source.name}: no frames could be decoded")
    seconds = time.perf_counter() - start
    stats = flicker(content_meter, stylised_meter)
    return VideoResult(source.name, target, count, source.fps, size, seconds, stats)


def stylise_to_video(
    source: FrameSource,
    target: str | Path,
    styliser: FrameStyliser,
    progress: Callable[[int], None] | None = None,
) -> VideoResult:
    """Stylise ``source`` into the video file ``target`` at the source's frame rate."""
    with VideoWriter(target, source.fps) as writer:
        return stylise_frames(source, lambda _, f: writer.write(f), styliser, str(target), progress)


def stylise_to_frames(
    source: FrameSource,
    folder: Path | None,
    styliser: FrameStyliser,
    encoding: str,
    quality: int,
    progress: Callable[[int], None] | None = None,
) -> VideoResult:
    """Stylise ``source`` into frame images STEM.MODEL.EXT in ``folder`` (None: beside each
    frame), each written whole (a temporary file renamed)."""
    suffix = ENCODINGS[encoding].suffixes[0]

    def write(name: str, frame: np.ndarray) -> None:
        path = Path(name)
        target = (folder or path.parent) / f"{path.stem}.{styliser.model.name}{suffix}"
        write_atomically(str(target), encode(frame, encoding, quality))

    where = str(folder) if folder is not None else str(Path(source.name))
    return stylise_frames(source, write, styliser, where, progress)
