"""`stylecast camera`: read frames with OpenCV (a camera or a video file), stream them through
StyliseStream, and show the stylised video with its frame rate and round-trip latency, or
write it to a file (always when there is no screen).

A live camera sends the newest frame only and lets the server drop stale ones; a video file is
sent with a small window so that every frame comes back and the output has them all.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stylecast.errors import StylecastError
from stylecast.v1 import stylise_pb2 as pb

from .client import StylecastClient
from .codec import encoding_enum

log = logging.getLogger(__name__)

WINDOW_TITLE = "stylecast"
SEND_JPEG_QUALITY = 90
FPS_WINDOW = 30  # frames over which the displayed frame rate is averaged
# (max_pending, max_in_flight): a camera keeps only the newest frame; a file loses none.
LIVE_FLOW = (1, 3)
FILE_FLOW = (2, 2)
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}
QUIT_KEYS = (ord("q"), 27)  # q, Esc


def import_cv2() -> Any:
    """OpenCV, or a StylecastError saying how to install it."""
    try:
        import cv2
    except ImportError:
        raise StylecastError(
            "the camera needs OpenCV: pip install 'stylecast[camera]' "
            "(opencv-python-headless; use opencv-python for an on-screen window)"
        ) from None
    return cv2


def display_available(cv2: Any) -> bool:
    """Whether OpenCV can open a window here (a GUI build and, on Linux, a display)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_NORMAL)
    except cv2.error:
        return False
    return True


@dataclass
class CameraStats:
    """What a camera session did."""

    sent: int = 0
    received: int = 0
    dropped: int = 0
    errors: int = 0
    seconds: float = 0.0
    round_trips_ms: list[float] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        rtt = statistics.median(self.round_trips_ms) if self.round_trips_ms else 0.0
        return (
            f"{self.received} frames stylised of {self.sent} sent ({self.dropped} dropped, "
            f"{self.errors} errors) in {self.seconds:.1f} s: {self.fps:.1f} fps, "
            f"median round trip {rtt:.0f} ms"
        )


class _Output:
    """Where stylised frames go: a window, a video file, or both."""

    def __init__(self, cv2: Any, out: str | None, fps: float, show: bool) -> None:
        self.cv2 = cv2
        self.out = Path(out) if out else None
        self.fps = fps
        self.show = show
        self.writer: Any = None
        self.size: tuple[int, int] | None = None

    def write(self, frame: np.ndarray) -> bool:
        """Show and/or record one BGR frame; False when the user asked to quit."""
        cv2 = self.cv2
        height, width = frame.shape[:2]
        if self.size is None:
            self.size = (width, height)
        elif self.size != (width, height):
            frame = cv2.resize(frame, self.size)
        if self.out is not None:
            if self.writer is None:
                self.writer = self._open_writer()
            self.writer.write(frame)
        if self.show:
            cv2.imshow(WINDOW_TITLE, frame)
            if cv2.waitKey(1) & 0xFF in QUIT_KEYS:
                return False
        return True

    def _open_writer(self) -> Any:
        cv2 = self.cv2
        assert self.out is not None and self.size is not None
        self.out.parent.mkdir(parents=True, exist_ok=True)
        fourcc = FOURCC_BY_SUFFIX.get(self.out.suffix.lower(), "MJPG")
        writer = cv2.VideoWriter(
            str(self.out), cv2.VideoWriter_fourcc(*fourcc), self.fps, self.size
        )
        if not writer.isOpened():
            raise StylecastError(f"cannot write video {self.out} (try a .avi or .mp4 file name)")
        return writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
        if self.show:
            self.cv2.destroyAllWindows()


def _overlay(cv2: Any, frame: np.ndarray, fps: float, rtt_ms: float) -> np.ndarray:
    text = f"{fps:5.1f} fps  {rtt_ms:4.0f} ms"
    for color, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(frame, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, thickness)
    return frame


def run_camera(
    client: StylecastClient,
    model: str,
    *,
    camera: int = 0,
    video: str | None = None,
    out: str | None = None,
    show: bool | None = None,
    options: pb.StyliseOptions | None = None,
    max_frames: int = 0,
    overlay: bool = True,
) -> CameraStats:
    """Stream a camera (or ``video``) through the server until the source ends, ``max_frames``
    frames were sent, or the user quits. ``show`` None: show a window if there is a screen."""
    cv2 = import_cv2()
    show = display_available(cv2) if show is None else show
    if not show and not out:
        raise StylecastError("no screen to show the video on: pass --out FILE to record it")
    capture = cv2.VideoCapture(video) if video else cv2.VideoCapture(camera)
    if not capture.isOpened():
        source = f"video {video}" if video else f"camera {camera}"
        raise StylecastError(f"cannot open {source}")
    fps_in = capture.get(cv2.CAP_PROP_FPS)
    output = _Output(cv2, out, fps_in if fps_in and fps_in > 0 else 30.0, show)
    max_pending, max_in_flight = FILE_FLOW if video else LIVE_FLOW
    stats, sent_at, stop = CameraStats(), {}, threading.Event()
    request_options = pb.StyliseOptions()
    if options is not None:
        request_options.CopyFrom(options)
    request_options.output_encoding = encoding_enum("jpeg")  # replies decode with cv2.imdecode

    def frames() -> Iterator[tuple[int, bytes]]:
        sequence = 0
        while not stop.is_set() and (max_frames <= 0 or sequence < max_frames):
            ok, frame = capture.read()
            if not ok:
                return
            ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, SEND_JPEG_QUALITY])
            if not ok:
                raise StylecastError("OpenCV could not encode a frame as JPEG")
            sequence += 1
            sent_at[sequence] = time.perf_counter()
            stats.sent = sequence
            yield sequence, jpeg.tobytes()

    recent: deque[float] = deque(maxlen=FPS_WINDOW)
    start = time.perf_counter()
    try:
        replies = client.stream(
            frames(), model, request_options, max_pending=max_pending, max_in_flight=max_in_flight
        )
        for reply in replies:
            now = time.perf_counter()
            stats.dropped += len(reply.dropped)
            for sequence in reply.dropped:
                sent_at.pop(sequence, None)
            rtt_ms = 1000.0 * (now - sent_at.pop(reply.sequence, now))
            if reply.HasField("error"):
                stats.errors += 1
                log.warning("frame %d: %s", reply.sequence, reply.error.message)
                continue
            stats.received += 1
            stats.round_trips_ms.append(rtt_ms)
            recent.append(now)
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
            frame = cv2.imdecode(np.frombuffer(reply.image.data, np.uint8), cv2.IMREAD_COLOR)
            if overlay:
                frame = _overlay(cv2, frame, fps, rtt_ms)
            if not output.write(frame):
                stop.set()
    finally:
        stop.set()
        stats.seconds = time.perf_counter() - start
        capture.release()
        output.close()
    return stats
