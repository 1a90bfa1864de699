"""`stylecast camera`: read frames with OpenCV (a camera or a video file), stylise them, and
show the stylised video with its frame rate (overlaid on each frame), or write it to a file
(always when there is no screen).

Two ways to stylise: through a server (``run_camera``: StyliseStream; the overlay also shows
the round trip), or in this process (``run_local_camera``, `--local`: the same pipeline as
`stylecast stylise`, no server, optional temporal smoothing; the overlay shows the time per
frame). Through a server, a live camera sends the newest frame only and lets the server drop
stale ones; a video file is sent with a small window so that every frame comes back.

The recording is written under a temporary name and renamed when it ends (serving.video).
Ctrl-C is how a live camera is stopped: its recording is kept. From a video file, Ctrl-C or an
error leaves no file behind.
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
from typing import TYPE_CHECKING, Any

import numpy as np

from stylecast.errors import StylecastError

from .imaging import DEFAULT_MAX_PIXELS, StyliseOptions
from .video import FrameStyliser, VideoWriter, import_cv2

if TYPE_CHECKING:
    from stylecast.v1 import stylise_pb2 as pb

    from .client import StylecastClient
    from .runtime import StyleModel

log = logging.getLogger(__name__)

WINDOW_TITLE = "stylecast"
SEND_JPEG_QUALITY = 90
FPS_WINDOW = 30  # frames over which the displayed frame rate is averaged
# (max_pending, max_in_flight): a camera keeps only the newest frame; a file loses none.
LIVE_FLOW = (1, 3)
FILE_FLOW = (2, 2)
QUIT_KEYS = (ord("q"), 27)  # q, Esc


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
    """What a camera session did; ``round_trips_ms``: per frame, the server's round trip or
    (local) the time to stylise it."""

    sent: int = 0
    received: int = 0
    dropped: int = 0
    errors: int = 0
    seconds: float = 0.0
    round_trips_ms: list[float] = field(default_factory=list)
    local: bool = False

    @property
    def fps(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        rtt = statistics.median(self.round_trips_ms) if self.round_trips_ms else 0.0
        timing = "median time per frame" if self.local else "median round trip"
        return (
            f"{self.received} frames stylised of {self.sent} sent ({self.dropped} dropped, "
            f"{self.errors} errors) in {self.seconds:.1f} s: {self.fps:.1f} fps, "
            f"{timing} {rtt:.0f} ms"
        )


class _Output:
    """Where stylised frames go: a window, a video file, or both."""

    def __init__(self, cv2: Any, out: str | None, fps: float, show: bool) -> None:
        self.cv2 = cv2
        self.recording = VideoWriter(out, fps) if out else None
        self.show = show
        self.size: tuple[int, int] | None = None

    def write(self, frame: np.ndarray) -> bool:
        """Show and/or record one BGR frame; False when the user asked to quit."""
        cv2 = self.cv2
        height, width = frame.shape[:2]
        if self.size is None:
            self.size = (width, height)
        elif self.size != (width, height):
            frame = cv2.resize(frame, self.size)
        if self.recording is not None:
            self.recording.write(frame, bgr=True)
        if self.show:
            cv2.imshow(WINDOW_TITLE, frame)
            if cv2.waitKey(1) & 0xFF in QUIT_KEYS:
                return False
        return True

    def close(self, keep: bool) -> None:
        """Close the window; move the recording into place (``keep``) or drop it."""
        try:
            if self.recording is not None and keep:
                self.recording.commit()
            elif self.recording is not None:
                self.recording.abort()
        finally:
            if self.show:
                self.cv2.destroyAllWindows()


def _overlay(cv2: Any, frame: np.ndarray, fps: float, ms: float) -> np.ndarray:
    text = f"{fps:5.1f} fps  {ms:4.0f} ms"
    for color, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(frame, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, thickness)
    return frame


def _open(
    cv2: Any, camera: int, video: str | None, out: str | None, show: bool | None
) -> tuple[Any, _Output]:
    """The capture and the output of a session (``show`` None: a window if there is a
    screen)."""
    show = display_available(cv2) if show is None else show
    if not show and not out:
        raise StylecastError("no screen to show the video on: pass --out FILE to record it")
    capture = cv2.VideoCapture(video) if video else cv2.VideoCapture(camera)
    if not capture.isOpened():
        source = f"video {video}" if video else f"camera {camera}"
        raise StylecastError(f"cannot open {source}")
    fps_in = capture.get(cv2.CAP_PROP_FPS)
    try:
        return capture, _Output(cv2, out, fps_in if fps_in and fps_in > 0 else 30.0, show)
    except StylecastError:
        capture.release()
        raise


class _Rate:
    """The frame rate over the last FPS_WINDOW frames."""

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=FPS_WINDOW)

    def tick(self, now: float) -> float:
        self.recent.append(now)
        span = self.recent[-1] - self.recent[0]
        return (len(self.recent) - 1) / span if span > 0 else 0.0


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
    from stylecast.v1 import stylise_pb2 as pb

    from .codec import encoding_enum

    cv2 = import_cv2()
    capture, output = _open(cv2, camera, video, out, show)
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

    rate, keep, start = _Rate(), False, time.perf_counter()
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
            fps = rate.tick(now)
            frame = cv2.imdecode(np.frombuffer(reply.image.data, np.uint8), cv2.IMREAD_COLOR)
            if overlay:
                frame = _overlay(cv2, frame, fps, rtt_ms)
            if not output.write(frame):
                stop.set()
        keep = True
    except KeyboardInterrupt:
        if video:
            raise
        keep = True  # Ctrl-C is how a live camera stops: keep its recording
    finally:
        stop.set()
        stats.seconds = time.perf_counter() - start
        capture.release()
        output.close(keep)
    return stats


def run_local_camera(
    model: StyleModel,
    *,
    camera: int = 0,
    video: str | None = None,
    out: str | None = None,
    show: bool | None = None,
    options: StyliseOptions | None = None,
    smooth: float = 0.0,
    max_frames: int = 0,
    overlay: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> CameraStats:
    """Stylise a camera (or ``video``) in this process, frame by frame through the pipeline
    (``smooth``: serving.smoothing), until the source ends, ``max_frames`` frames were read,
    or the user quits. ``show`` None: show a window if there is a screen."""
    cv2 = import_cv2()
    capture, output = _open(cv2, camera, video, out, show)
    styliser = FrameStyliser(model, options, smooth, max_pixels)
    stats, rate, keep, start = CameraStats(local=True), _Rate(), False, time.perf_counter()
    try:
        while max_frames <= 0 or stats.sent < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            stats.sent += 1
            began = time.perf_counter()
            _, stylised = styliser(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            now = time.perf_counter()
            stats.received += 1
            stats.round_trips_ms.append(1000.0 * (now - began))
            frame = cv2.cvtColor(stylised, cv2.COLOR_RGB2BGR)
            if overlay:
                frame = _overlay(cv2, frame, rate.tick(now), stats.round_trips_ms[-1])
            if not output.write(frame):
                break
        keep = True
    except KeyboardInterrupt:
        if video:
            raise
        keep = True  # Ctrl-C is how a live camera stops: keep its recording
    finally:
        stats.seconds = time.perf_counter() - start
        capture.release()
        output.close(keep)
    return stats
