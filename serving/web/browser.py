"""Drive the camera page in a real headless Chromium, for the browser test and the benchmark.

Chromium's fake camera plays a Y4M clip (``write_y4m``: frames from a folder of images or a
synthetic pan) in a loop; ``CameraPage`` opens the page with it through Playwright, driving the
system's Chromium (Debian's ``chromium`` package; no browser download) and reads what the page
shows: canvas pixels, its error line and its figures (``window.stylecast``).

Playwright is a development dependency (the ``dev`` extra); the server never imports this."""

from __future__ import annotations

import base64
import io
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stylecast.errors import StylecastError
from stylecast.image_rules import IMAGE_SUFFIXES

CHROMIUM_ENV = "STYLECAST_CHROMIUM"
# The real binary first: Debian's /usr/bin/chromium is a shell wrapper that adds flags.
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")


def find_chromium() -> str:
    """The Chromium to drive: $STYLECAST_CHROMIUM, else the system's; StylecastError if none."""
    for candidate in (os.environ.get(CHROMIUM_ENV, ""), *CHROMIUM_CANDIDATES):
        found = candidate and (shutil.which(candidate) or None)
        if found:
            return found
    raise StylecastError(
        "no Chromium found: install Debian's chromium package (apt-get install chromium) or "
        f"set ${CHROMIUM_ENV} to a Chromium binary"
    )


def cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` scaled to cover width×height and centre-cropped to it."""
    scale = max(width / image.width, height / image.height)
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    image = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    return image.crop((left, top, left + width, top + height))


def folder_frames(folder: Path, width: int, height: int, limit: int = 0) -> Iterator[Image.Image]:
    """The images of ``folder`` in name order, each covering width×height."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise StylecastError(f"no images in {folder}")
    for path in paths[: limit or None]:
        with Image.open(path) as image:
            yield cover(image, width, height)


def synthetic_frames(width: int, height: int, count: int) -> Iterator[Image.Image]:
    """A colourful scene panning sideways: gradients, stripes and a moving disc."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(count):
        shift = x + 6.0 * i
        red = 128 + 100 * np.sin(shift / 37.0)
        green = 255 * y / max(1, height - 1)
        blue = 128 + 90 * np.sin((shift + y) / 29.0)
        disc = (x - width * (0.3 + 0.4 * i / max(1, count))) ** 2 + (y - height / 2) ** 2
        inside = disc < (min(width, height) / 5) ** 2
        rgb = np.stack([red, green, blue], axis=-1)
        rgb[inside] = (250, 240, 40)
        yield Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def write_y4m(path: Path, frames: Iterable[Image.Image], fps: int = 30) -> Path:
    """Write RGB frames (all one even size) as a 4:2:0 Y4M clip, the format Chromium's fake
    camera reads (``--use-file-for-fake-video-capture``)."""
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise StylecastError("a Y4M clip needs at least one frame")
    width, height = first.size
    if width % 2 or height % 2:
        raise StylecastError(f"Y4M frames need even sides (got {width}x{height})")
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in (first, *frames):
            ycbcr = frame.convert("RGB").convert("YCbCr")
            luma, cb, cr = ycbcr.split()
            half = (width // 2, height // 2)
            out.write(b"FRAME\n" + luma.tobytes())
            out.write(cb.resize(half, Image.Resampling.BOX).tobytes())
            out.write(cr.resize(half, Image.Resampling.BOX).tobytes())
    return path


def chromium_args(clip: Path) -> list[str]:
    """Chromium flags for a fake camera playing ``clip``, granted without a prompt."""
    return [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",  # CI containers run as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
    ]


def decode_data_url(url: str) -> np.ndarray:
    """A ``data:image/png;base64,…`` URL as an RGB array."""
    data = base64.b64decode(url.split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


class CameraPage:
    """The page at ``url`` in headless Chromium with a fake camera playing ``clip``.

    Use as a context manager; ``start(model)`` picks the model and starts the camera."""

    def __init__(self, url: str, clip: Path, chromium: str | None = None, timeout_s: float = 20):
        self.url = url
        self.clip = clip
        self.chromium = chromium or find_chromium()
        self.timeout_ms = timeout_s * 1000
        self._playwright: Any = None
        self._browser: Any = None
        self._context: Any = None
        self.page: Any = None

    def __enter__(self) -> CameraPage:
        from playwright.sync_api import Error, sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=self.chromium, headless=True, args=chromium_args(self.clip)
            )
        except Error as exc:
            self._playwright.stop()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no reason given"
            raise StylecastError(f"cannot start Chromium ({self.chromium}): {first}") from None
        # bypass_csp: Playwright's waits evaluate strings, which the page's CSP forbids.
        self._context = self._browser.new_context(
            viewport={"width": 1400, "height": 760}, accept_downloads=True, bypass_csp=True
        )
        self._open(self.url)
        return self

    def _open(self, url: str) -> None:
        self.page = self._context.new_page()
        self.page.set_default_timeout(self.timeout_ms)
        self.page.goto(url)

    def tab(self, url: str) -> CameraPage:
        """Another page, at ``url``, in this browser (one Playwright per process); it closes
        with this one."""
        other = CameraPage(url, self.clip, self.chromium, self.timeout_ms / 1000)
        other._context = self._context
        other._open(url)
        return other

    def __exit__(self, *_: object) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()

    # -- actions ----------------------------------------------------------------------------

    def wait_for_models(self) -> list[str]:
        """The model names offered, once the page has listed them."""
        self.page.wait_for_function("document.querySelectorAll('#model option').length > 0")
        names: list[str] = self.page.eval_on_selector_all(
            "#model option", "options => options.map(o => o.value)"
        )
        return names

    def start(self, model: str, max_side: int = 640) -> None:
        """Choose ``model`` and the max side, and start the camera."""
        self.wait_for_models()
        self.page.select_option("#model", model)
        self.page.select_option("#max-side", str(max_side))
        self.page.click("#start")

    def open_file(self, path: Path) -> None:
        """Stream an image or video file instead of the camera (the file picker)."""
        self.page.set_input_files("#file", str(path))

    def select_model(self, model: str) -> None:
        """Switch the model while streaming."""
        self.page.select_option("#model", model)

    def set_strength(self, value: float) -> None:
        """Move the strength slider (as a drag would: an input event)."""
        self.page.eval_on_selector(
            "#strength",
            "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input')); }",
            value,
        )

    def set_mix(self, weights: dict[str, float]) -> None:
        """Move the style mix sliders of a multi-style model (style name → weight)."""
        self.page.eval_on_selector_all(
            "#mix input[data-style]",
            "(sliders, w) => sliders.forEach(s => { if (s.dataset.style in w) {"
            " s.value = String(w[s.dataset.style]); s.dispatchEvent(new Event('input')); } })",
            weights,
        )

    def mix_styles(self) -> list[str]:
        """The styles the mix sliders offer (empty when they are hidden)."""
        styles: list[str] = self.page.eval_on_selector_all(
            "#mix:not([hidden]) input[data-style]", "sliders => sliders.map(s => s.dataset.style)"
        )
        return styles

    def enter_token(self, token: str) -> None:
        """Type ``token`` into the token field the page shows, and submit it."""
        self.page.fill("#token", token)
        self.page.click("#token-form button[type=submit]")

    # -- what the page shows ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The page's figures: frames, errors, rtts (ms), fps, lastError, lastHeader."""
        stats: dict[str, Any] = self.page.evaluate("() => ({...window.stylecast})")
        return stats

    def wait_frames(self, count: int) -> None:
        """Wait until ``count`` stylised frames have arrived in all."""
        self.page.wait_for_function(f"window.stylecast.frames >= {int(count)}")

    def frames_after(self, count: int) -> None:
        """Wait for ``count`` more stylised frames than arrived so far."""
        self.wait_frames(int(self.stats()["frames"]) + count)

    def canvases(self) -> tuple[np.ndarray, np.ndarray]:
        """The camera frame last answered and its stylised reply (RGB), read together."""
        urls: list[str] = self.page.evaluate(
            "() => ['original', 'stylised'].map(id => "
            "document.getElementById(id).toDataURL('image/png'))"
        )
        return decode_data_url(urls[0]), decode_data_url(urls[1])

    def error_line(self) -> str:
        """The error line's text ("" when hidden)."""
        line: str = self.page.eval_on_selector("#error", "e => (e.hidden ? '' : e.textContent)")
        return line

    def wait_error(self) -> str:
        """The error line, once it shows."""
        self.page.wait_for_selector("#error:not([hidden])")
        return self.error_line()

    def screenshot(self, path: Path) -> Path:
        """Save a screenshot of the page (PNG, or JPEG by the suffix)."""
        self.page.screenshot(path=str(path))
        return path
