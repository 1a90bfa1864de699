"""Temporal stability for `stylecast validate`: reading consecutive frames (a video file or a
folder of frame images) and the flicker ratio, the fast network's frame-to-frame change over
the content's (1.0 = no flicker added)."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from stylecast.errors import StylecastError
from stylecast.image_rules import IMAGE_SUFFIXES
from stylecast.progress import show_progress
from stylecast.serving.imaging import resize_longest_side
from stylecast.validation.results import VideoFrames
from stylecast.validation.summary import VideoRecord

from .images import list_images
from .scoring import Stylise


@dataclass(frozen=True)
class TemporalOutcome:
    """The figures of a video and its frames, content and stylised."""

    record: VideoRecord
    frames: VideoFrames


def mean_abs_change(frames: Sequence[np.ndarray]) -> float:
    """Mean absolute difference between consecutive frames, in 0-255 levels."""
    if len(frames) < 2:
        raise StylecastError("temporal stability needs at least 2 frames")
    diffs = [
        float(np.abs(b.astype(np.int16) - a.astype(np.int16)).mean())
        for a, b in itertools.pairwise(frames)
    ]
    return statistics.fmean(diffs)


def flicker_ratio(stylised_change: float, content_change: float) -> float:
    """stylised ÷ content change; 1.0 when both are 0, infinite when only the content is."""
    if content_change == 0:
        return 1.0 if stylised_change == 0 else math.inf
    return stylised_change / content_change


def temporal_stability(
    frames: Sequence[np.ndarray], stylise: Stylise, progress: bool = False, source: str = ""
) -> TemporalOutcome:
    """Stylise consecutive frames; the figure is the mean absolute change between stylised
    frames over that between content frames (1.0 = no added flicker; higher = more). For a
    perfectly static video it is 1.0 if the stylised frames are static too, else infinite
    (stored as null in summary.json, with ``content_static`` true)."""
    bar = tqdm(frames, desc="video", unit="frame", disable=not show_progress(progress))
    stylised = [stylise(f) for f in bar]
    content_change = mean_abs_change(frames)
    stylised_change = mean_abs_change(stylised)
    record = VideoRecord(
        frames=len(frames),
        height=int(frames[0].shape[0]),
        width=int(frames[0].shape[1]),
        content_change=content_change,
        stylised_change=stylised_change,
        flicker_ratio=flicker_ratio(stylised_change, content_change),
        content_static=content_change == 0,
        source=source,
    )
    return TemporalOutcome(record, VideoFrames(list(frames), stylised))


def read_frames(source: str | Path, size: int, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` consecutive RGB frames of a video file or a folder of frame images,
    resized so their longer side is ``size``."""
    source = Path(source)
    if source.is_dir():
        frames = []
        for path in list_images(source)[:limit]:
            with Image.open(path) as file:
                frames.append(np.asarray(file.convert("RGB")))
    elif source.is_file():
        if source.suffix.lower() in IMAGE_SUFFIXES:
            raise StylecastError(f"--video {source}: a single image is not a video")
        frames = _read_video(source, limit)
    else:
        raise StylecastError(f"video not found: {source}")
    frames = [resize_longest_side(f, size) for f in frames]
    if len(frames) < 2:
        raise StylecastError(f"--video {source}: needs at least 2 frames, found {len(frames)}")
    if len({f.shape for f in frames}) > 1:
        raise StylecastError(f"--video {source}: frames differ in size")
    return frames


def _read_video(path: Path, limit: int) -> list[np.ndarray]:
    try:
        import cv2
    except ImportError:
        raise StylecastError(
            "reading video files needs OpenCV (pip install 'stylecast[camera]'); "
            "or pass a folder of frame images"
        ) from None
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while capture.isOpened() and len(frames) < limit:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise StylecastError(f"cannot read video {path}: no decodable frames")
    return frames
