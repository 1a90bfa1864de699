"""The report's pictures, drawn with Pillow: a captioned grid per content image (content, style,
iterative, fast) and a strip of consecutive video frames with their frame-to-frame change."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .files import write_atomically

MIN_PANEL = 192  # smaller pictures are enlarged (nearest neighbour) so captions fit
CAPTION = 24
STRIP_FRAMES = 4
TEXT_COLOUR = "#333333"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def _enlarge(image: Image.Image, minimum: int = MIN_PANEL) -> Image.Image:
    factor = math.ceil(minimum / max(image.size))
    if factor <= 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def _cover(image: np.ndarray, width: int, height: int) -> Image.Image:
    """Centre-crop ``image`` to the aspect ratio width:height, then resize to that size."""
    picture = Image.fromarray(image)
    scale = max(width / picture.width, height / picture.height)
    w, h = round(width / scale), round(height / scale)
    left, top = (picture.width - w) // 2, (picture.height - h) // 2
    return picture.crop((left, top, left + w, top + h)).resize(
        (width, height), Image.Resampling.LANCZOS
    )


def _labelled_row(
    panels: Sequence[Image.Image], captions: Sequence[str], gap: int = 4
) -> Image.Image:
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    height = max(p.height for p in panels) + CAPTION
    canvas = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(canvas), _font(13)
    x = 0
    for panel, caption in zip(panels, captions, strict=True):
        canvas.paste(panel, (x, 0))
        text = caption if draw.textlength(caption, font=font) <= panel.width else caption.split()[0]
        draw.text(
            (x + panel.width / 2, panel.height + CAPTION / 2),
            text,
            fill=TEXT_COLOUR,
            font=font,
            anchor="mm",
        )
        x += panel.width + gap
    return canvas


def grid_image(
    content: np.ndarray, style: np.ndarray, iterative: np.ndarray, fast: np.ndarray, steps: int
) -> Image.Image:
    """content | style | iterative | fast, captioned, the style cropped to the content's shape."""
    h, w = content.shape[:2]
    panels = [
        Image.fromarray(content),
        _cover(style, w, h),
        Image.fromarray(iterative),
        Image.fromarray(fast),
    ]
    panels = [_enlarge(p) for p in panels]
    return _labelled_row(panels, ["content", "style", f"iterative ({steps} steps)", "fast network"])


def _panel(image: np.ndarray, side: int = 192) -> Image.Image:
    """An image shown with its longer side ``side`` (nearest when enlarged: pixels stay sharp)."""
    picture = Image.fromarray(image)
    scale = side / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    return picture.resize(size, resample)


def _change(a: np.ndarray, b: np.ndarray, gain: int = 4) -> np.ndarray:
    return np.clip(np.abs(b.astype(np.int16) - a.astype(np.int16)) * gain, 0, 255).astype(np.uint8)


def strip_image(content: Sequence[np.ndarray], stylised: Sequence[np.ndarray]) -> Image.Image:
    """A few consecutive frames from the middle: content and stylised rows, then the change
    from the previous frame of each (×4, so flicker shows) for a side-by-side comparison."""
    n = min(STRIP_FRAMES, len(content) - 1)
    start = max(1, (len(content) - n) // 2)
    indices = range(start, start + n)
    rows = [
        _labelled_row([_panel(content[i]) for i in indices], [f"content {i}" for i in indices]),
        _labelled_row([_panel(stylised[i]) for i in indices], [f"stylised {i}" for i in indices]),
        _labelled_row(
            [_panel(_change(content[i - 1], content[i])) for i in indices],
            [f"content change x4, {i - 1}-{i}" for i in indices],
        ),
        _labelled_row(
            [_panel(_change(stylised[i - 1], stylised[i])) for i in indices],
            [f"stylised change x4, {i - 1}-{i}" for i in indices],
        ),
    ]
    canvas = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for row in rows:
        canvas.paste(row, (0, y))
        y += row.height
    return canvas


def save_png(image: Image.Image, path: Path) -> Path:
    """Write ``image`` as an optimised PNG, atomically."""
    return write_atomically(path, lambda tmp: image.save(tmp, format="PNG", optimize=True))
