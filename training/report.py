"""The `stylecast validate` report: summary.json, report.md, report.html (self-contained apart
from its PNGs, with inline SVG charts), a grid per content image, a loss chart per image and a
strip of video frames. Only Pillow and the standard library; no plotting package."""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .validate import Validation

IMAGES_DIR = "images"
CHARTS_DIR = "charts"
MIN_PANEL = 192  # smaller pictures are enlarged (nearest neighbour) so captions fit
CAPTION = 24
STRIP_FRAMES = 4
COLOURS = {"iterative": "#2f6db5", "fast": "#e07b1a", "grid": "#d9d9d9", "text": "#333333"}


# --- formatting ---------------------------------------------------------------------------------


def fmt_loss(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def fmt_weight(value: float) -> str:
    """A loss weight: 1, 0.5, 1e+05, 1e-05."""
    return f"{value:.0e}" if value and not 1e-3 <= abs(value) < 1e4 else f"{value:g}"


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.1f} s"


def fmt_speedup(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}×" if value >= 10 else f"{value:.1f}×"


def fmt_psnr(value: float | None, identical: bool = True) -> str:
    return ("∞" if identical else "–") if value is None else f"{value:.1f} dB"


def fmt_ssim(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def fmt_lpips(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def fmt_steps(value: float | None, steps: int) -> str:
    return f"> {steps}" if value is None else f"{value:.0f}"


# --- pictures -----------------------------------------------------------------------------------


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
            fill=COLOURS["text"],
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


# --- the loss chart -----------------------------------------------------------------------------


@dataclass
class Chart:
    """Geometry of one loss-vs-iteration chart, shared by the SVG and PNG renderers."""

    width: int
    height: int
    points: list[tuple[float, float]]
    fast_y: float
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    cross_x: float | None
    left: int = 70
    right: int = 20
    top: int = 30
    bottom: int = 44
    log_scale: bool = False
    title: str = ""


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round-numbered ticks covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks between 10**lo and 10**hi: powers of ten, with 2 and 5 (then every digit) added
    while fewer than three fall in the range."""
    exponents = range(math.floor(lo), math.ceil(hi) + 1)
    for mantissas in ((1,), (1, 2, 5), tuple(range(1, 10))):
        ticks = [m * 10.0**e for e in exponents for m in mantissas]
        ticks = [t for t in ticks if lo <= math.log10(t) <= hi]
        if len(ticks) >= 3:
            break
    return ticks


def loss_chart(
    history: Sequence[float],
    baseline: float,
    fast: float,
    beats_at: int | None,
    title: str,
    width: int = 640,
    height: int = 300,
) -> Chart:
    """Total loss per step (step 0 = the content image, where the optimisation starts) with
    the fast network's loss as a horizontal line; log y axis when the range is wide."""
    series = [baseline, *history]
    values = [*series, fast]
    positive = all(v > 0 for v in values)
    log_scale = positive and max(values) / min(values) > 20
    scale = math.log10 if log_scale else (lambda v: v)
    lo, hi = scale(min(values)), scale(max(values))
    pad = (hi - lo) * 0.06 or abs(hi) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad
    chart = Chart(width, height, [], 0.0, [], [], None, log_scale=log_scale, title=title)
    plot_w = width - chart.left - chart.right
    plot_h = height - chart.top - chart.bottom
    steps = max(len(series) - 1, 1)

    def px(step: float) -> float:
        return chart.left + plot_w * step / steps

    def py(value: float) -> float:
        return chart.top + plot_h * (1 - (scale(value) - lo) / (hi - lo))

    chart.points = [(px(i), py(v)) for i, v in enumerate(series)]
    chart.fast_y = py(fast)
    chart.x_ticks = [(px(t), f"{t:g}") for t in nice_ticks(0, steps, 6) if t <= steps]
    if log_scale:
        chart.y_ticks = [(py(t), f"{t:g}") for t in log_ticks(lo, hi)]
    else:
        chart.y_ticks = [(py(t), f"{t:.3g}") for t in nice_ticks(lo, hi, 5) if lo <= t <= hi]
    chart.cross_x = px(beats_at) if beats_at is not None else None
    return chart


def chart_svg(chart: Chart) -> str:
    """The chart as an inline <svg> element."""
    c, plot_right, plot_bottom = chart, chart.width - chart.right, chart.height - chart.bottom
    parts = [
        f'<svg class="chart" viewBox="0 0 {c.width} {c.height}" width="{c.width}" '
        f'height="{c.height}" role="img" aria-label="{html.escape(c.title)}" '
        'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12">',
        f'<text x="{c.left}" y="18" font-weight="bold">{html.escape(c.title)}</text>',
    ]
    for y, label in c.y_ticks:
        parts.append(
            f'<line x1="{c.left}" x2="{plot_right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{COLOURS["grid"]}"/>'
        )
        parts.append(f'<text x="{c.left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for x, label in c.x_ticks:
        parts.append(
            f'<text x="{x:.1f}" y="{plot_bottom + 16}" text-anchor="middle">{label}</text>'
        )
    parts.append(
        f'<text x="{(c.left + plot_right) / 2}" y="{c.height - 6}" '
        'text-anchor="middle">iteration</text>'
    )
    parts.append(
        f'<text x="14" y="{(c.top + plot_bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(c.top + plot_bottom) / 2})">total loss'
        f"{' (log)' if c.log_scale else ''}</text>"
    )
    parts.append(
        f'<rect x="{c.left}" y="{c.top}" width="{plot_right - c.left}" '
        f'height="{plot_bottom - c.top}" fill="none" stroke="#999"/>'
    )
    parts.append(
        f'<line x1="{c.left}" x2="{plot_right}" y1="{c.fast_y:.1f}" y2="{c.fast_y:.1f}" '
        f'stroke="{COLOURS["fast"]}" stroke-width="2" stroke-dasharray="6 4"/>'
    )
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in c.points)
    parts.append(
        f'<polyline points="{points}" fill="none" stroke="{COLOURS["iterative"]}" '
        'stroke-width="2"/>'
    )
    if c.cross_x is not None:
        parts.append(
            f'<line x1="{c.cross_x:.1f}" x2="{c.cross_x:.1f}" y1="{c.top}" '
            f'y2="{plot_bottom}" stroke="#666" stroke-dasharray="2 3"/>'
        )
    legend_x = plot_right - 190
    parts.append(
        f'<rect x="{legend_x - 8}" y="{c.top + 4}" width="130" height="40" fill="white" '
        'stroke="#ccc"/>'
    )
    parts.append(
        f'<line x1="{legend_x}" x2="{legend_x + 22}" y1="{c.top + 14}" '
        f'y2="{c.top + 14}" stroke="{COLOURS["iterative"]}" stroke-width="2"/>'
        f'<text x="{legend_x + 28}" y="{c.top + 18}">iterative</text>'
        f'<line x1="{legend_x}" x2="{legend_x + 22}" y1="{c.top + 30}" '
        f'y2="{c.top + 30}" stroke="{COLOURS["fast"]}" stroke-width="2" '
        f'stroke-dasharray="6 4"/><text x="{legend_x + 28}" y="{c.top + 34}">'
        "fast network</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)


def chart_png(chart: Chart, scale: int = 2) -> Image.Image:
    """The same chart rasterised with Pillow (drawn at ``scale``× for crisp lines)."""
    c, s = chart, scale
    image = Image.new("RGB", (c.width * s, c.height * s), "white")
    draw, font = ImageDraw.Draw(image), _font(12 * s)
    plot_right, plot_bottom = c.width - c.right, c.height - c.bottom
    draw.text((c.left * s, 8 * s), c.title, fill=COLOURS["text"], font=_font(13 * s))
    for y, label in c.y_ticks:
        draw.line([(c.left * s, y * s), (plot_right * s, y * s)], fill=COLOURS["grid"], width=s)
        draw.text(((c.left - 6) * s, y * s), label, fill=COLOURS["text"], font=font, anchor="rm")
    for x, label in c.x_ticks:
        draw.text(
            (x * s, (plot_bottom + 10) * s), label, fill=COLOURS["text"], font=font, anchor="mm"
        )
    draw.text(
        ((c.left + plot_right) / 2 * s, (c.height - 10) * s),
        "iteration",
        fill=COLOURS["text"],
        font=font,
        anchor="mm",
    )
    draw.rectangle([(c.left * s, c.top * s), (plot_right * s, plot_bottom * s)], outline="#999999")
    _vertical_text(image, f"total loss{' (log)' if c.log_scale else ''}", font,
                   (14 * s, (c.top + plot_bottom) / 2 * s))  # fmt: skip
    _dashed(
        draw,
        (c.left * s, c.fast_y * s),
        (plot_right * s, c.fast_y * s),
        COLOURS["fast"],
        2 * s,
        6 * s,
        4 * s,
    )
    if c.cross_x is not None:
        _dashed(
            draw,
            (c.cross_x * s, c.top * s),
            (c.cross_x * s, plot_bottom * s),
            "#666666",
            s,
            2 * s,
            3 * s,
        )
    draw.line(
        [(x * s, y * s) for x, y in c.points], fill=COLOURS["iterative"], width=2 * s, joint="curve"
    )
    lx, ly = (plot_right - 190) * s, (c.top + 14) * s
    draw.rectangle([(lx - 8 * s, ly - 10 * s), (lx + 122 * s, ly + 30 * s)], "white", "#cccccc")
    draw.line([(lx, ly), (lx + 22 * s, ly)], fill=COLOURS["iterative"], width=2 * s)
    draw.text((lx + 28 * s, ly), "iterative", fill=COLOURS["text"], font=font, anchor="lm")
    _dashed(
        draw, (lx, ly + 16 * s), (lx + 22 * s, ly + 16 * s), COLOURS["fast"], 2 * s, 6 * s, 4 * s
    )
    draw.text(
        (lx + 28 * s, ly + 16 * s), "fast network", fill=COLOURS["text"], font=font, anchor="lm"
    )
    return image


def _vertical_text(image: Image.Image, text: str, font: Any, centre: tuple[float, float]) -> None:
    """Paste ``text`` rotated 90° anticlockwise, centred at ``centre``."""
    left, top, right, bottom = font.getbbox(text)
    label = Image.new("RGB", (right - left + 4, bottom - top + 4), "white")
    ImageDraw.Draw(label).text((2 - left, 2 - top), text, fill=COLOURS["text"], font=font)
    label = label.rotate(90, expand=True)
    image.paste(label, (round(centre[0] - label.width / 2), round(centre[1] - label.height / 2)))


def _dashed(
    draw: ImageDraw.ImageDraw,
    start: tuple[float, float],
    end: tuple[float, float],
    colour: str,
    width: int,
    dash: int,
    gap: int,
) -> None:
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0)
    position = 0.0
    while position < length:
        a, b = position / length, min(position + dash, length) / length
        draw.line(
            [(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)],
            fill=colour,
            width=width,
        )
        position += dash + gap


# --- tables -------------------------------------------------------------------------------------


def loss_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (per image, then mean and median) of the loss table."""
    header = [
        "image",
        "no stylisation",
        "iterative",
        "fast",
        "fast ÷ iterative: total",
        "content",
        "style",
        "TV",
    ]
    rows = []
    for r in summary["images"]:
        losses, ratios = r["losses"], r["ratios"]
        rows.append(
            [
                r["name"],
                fmt_loss(losses["content_image"]["total"]),
                fmt_loss(losses["iterative"]["total"]),
                fmt_loss(losses["fast"]["total"]),
                fmt_ratio(ratios["total"]),
                fmt_ratio(ratios["content"]),
                fmt_ratio(ratios["style"]),
                fmt_ratio(ratios["tv"]),
            ]
        )
    for label in ("mean", "median"):
        a = summary["aggregate"][label]
        rows.append(
            [
                f"**{label}**",
                fmt_loss(a["content_image_total"]),
                fmt_loss(a["iterative_total"]),
                fmt_loss(a["fast_total"]),
                fmt_ratio(a["ratio_total"]),
                fmt_ratio(a["ratio_content"]),
                fmt_ratio(a["ratio_style"]),
                fmt_ratio(a["ratio_tv"]),
            ]
        )
    return header, rows


def agreement_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the similarity-and-speed table."""
    steps = summary["settings"]["iterate_steps"]
    header = [
        "image",
        "SSIM",
        "PSNR",
        "LPIPS",
        "iterative time",
        "fast time",
        "speed-up",
        "steps to beat fast",
    ]
    rows = []
    for r in summary["images"]:
        d, s = r["distances"], r["seconds"]
        rows.append(
            [
                r["name"],
                fmt_ssim(d["ssim"]),
                fmt_psnr(d["psnr_db"]),
                fmt_lpips(d["lpips"]),
                fmt_seconds(s["iterative"]) + (" †" if r["cached"] else ""),
                fmt_seconds(s["fast"]),
                fmt_speedup(r["speedup"]),
                fmt_steps(r["beats_fast_at_step"], steps),
            ]
        )
    count, total = summary["aggregate"]["count"], len(summary["images"])
    for label in ("mean", "median"):
        a = summary["aggregate"][label]
        beats = fmt_steps(a["beats_fast_at_step"], steps)
        if 0 < count["beats_fast_at_step"] < total:
            beats += f" ({count['beats_fast_at_step']} of {total} images)"
        rows.append(
            [
                f"**{label}**",
                fmt_ssim(a["ssim"]),
                fmt_psnr(a["psnr_db"], False),
                fmt_lpips(a["lpips"]),
                fmt_seconds(a["iterative_seconds"]),
                fmt_seconds(a["fast_seconds"]),
                fmt_speedup(a["speedup"]),
                beats,
            ]
        )
    return header, rows


def agreement_note(summary: dict[str, Any]) -> str:
    """What the agreement table's figures mean."""
    steps = summary["settings"]["iterate_steps"]
    note = (
        "SSIM, PSNR and LPIPS compare the fast output with the iterative one. Speed-up = "
        "iterative time ÷ fast time. Steps to beat fast: the first iteration whose total loss "
        f"is at or below the fast network's (> {steps}: not within the run)."
    )
    if any(r["cached"] for r in summary["images"]):
        note += " † from the cache: the wall time of the run that made it."
    return note


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["--:"] * (len(header) - 1)
    lines = [header, align, *rows]
    return "\n".join(
        "| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines
    )


def html_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str, tag: str) -> str:
        bold = text.startswith("**") and text.endswith("**")
        text = html.escape(text.strip("*") if bold else text)
        return f"<{tag}>{f'<b>{text}</b>' if bold else text}</{tag}>"

    head = "".join(cell(h, "th") for h in header)
    body = "\n".join(
        f"<tr{' class=agg' if row[0].startswith('**') else ''}>"
        + "".join(cell(c, "td") for c in row)
        + "</tr>"
        for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def term_rows(record: dict[str, Any], loss: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Every loss term of the three images of one content image, weighted as in the total
    (so each row adds up to its total)."""
    weights = {"content": loss["content_weight"], "style": loss["style_weight"],
               "tv": loss["tv_weight"], "total": 1.0}  # fmt: skip
    header = ["", f"content × {fmt_weight(weights['content'])}",
              f"style × {fmt_weight(weights['style'])}", f"TV × {fmt_weight(weights['tv'])}",
              "total"]  # fmt: skip
    names = {"content_image": "no stylisation", "iterative": "iterative", "fast": "fast"}
    rows = [
        [label, *(fmt_loss(record["losses"][key][t] * w) for t, w in weights.items())]
        for key, label in names.items()
    ]
    rows.append(["fast ÷ iterative", *(fmt_ratio(record["ratios"][t]) for t in weights)])
    return header, rows


# --- the documents ------------------------------------------------------------------------------


def headline(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The few figures people quote, as (label, value)."""
    out: list[tuple[str, str]] = []
    if summary["images"]:
        median = summary["aggregate"]["median"]
        steps = summary["settings"]["iterate_steps"]
        out += [
            ("fast ÷ iterative total loss (median)", fmt_ratio(median["ratio_total"])),
            ("speed-up (median)", fmt_speedup(median["speedup"])),
            (
                "iterations to beat the fast network (median)",
                fmt_steps(median["beats_fast_at_step"], steps),
            ),
            ("SSIM fast vs iterative (median)", fmt_ssim(median["ssim"])),
        ]
    if summary.get("video"):
        out.append(
            (
                "temporal flicker ratio (1.0 = none added)",
                fmt_flicker(summary["video"]),
            )
        )
    return out


def settings_lines(summary: dict[str, Any]) -> list[str]:
    m, s, e = summary["model"], summary["settings"], summary["environment"]
    loss = s["loss"]
    return [
        f"Model: {m['name']} v{m['version']}; style image {m['style_image']} ({m['style_path']}).",
        f"Size {s['size']} px (style {s['style_size']} px); iterative: {s['iterate_steps']} "
        f"{s['optimizer']} steps from the content image.",
        f"Loss network {m['vgg_weights']}; content {', '.join(loss['content_layers'])} × "
        f"{fmt_weight(loss['content_weight'])}; style {', '.join(loss['style_layers'])} × "
        f"{fmt_weight(loss['style_weight'])}; TV × {fmt_weight(loss['tv_weight'])}.",
        f"Fast network on onnxruntime {e['onnxruntime']} ({e['fast_provider']}), "
        f"{s['fast_timing']}; iterative on torch {e['torch']} ({e['torch_device']}, "
        f"{e['cpu_threads']} threads).",
        "Ratios are fast ÷ iterative (below 1: the fast network reaches a lower loss); "
        "mean and median rows summarise the per-image figures.",
    ]


def write_markdown(summary: dict[str, Any], path: Path) -> None:
    lines = [f"# Stylecast validation: {summary['model']['name']}", ""]
    lines += [f"> **Note:** {note}" for note in summary["notes"]] + (
        [""] if summary["notes"] else []
    )
    lines += [f"- {line}" for line in settings_lines(summary)] + [""]
    if head := headline(summary):
        lines += ["| figure | value |", "| --- | --: |"]
        lines += [f"| {label} | {value} |" for label, value in head] + [""]
    if summary["images"]:
        lines += [
            "## Loss under the training loss network (lower is better)",
            "",
            markdown_table(*loss_rows(summary)),
            "",
            "## Agreement and speed",
            "",
            markdown_table(*agreement_rows(summary)),
            "",
            agreement_note(summary),
            "",
            "## Images",
            "",
        ]
        for r in summary["images"]:
            lines += [
                f"### {r['name']}",
                "",
                f"![{r['name']}: content, style, iterative, fast]({r['grid']})",
                "",
                f"![loss against iteration]({r['chart']})",
                "",
                markdown_table(*term_rows(r, summary["settings"]["loss"])),
                "",
            ]
    if video := summary.get("video"):
        lines += [
            "## Temporal stability",
            "",
            *video_lines(video),
            "",
            f"![consecutive frames]({video['strip']})",
            "",
        ]
    lines += ["All figures: [summary.json](summary.json).", ""]
    _write_text(path, "\n".join(lines))


def fmt_flicker(video: dict[str, Any]) -> str:
    flicker = video["flicker_ratio"]
    if flicker is None or (isinstance(flicker, float) and math.isinf(flicker)):
        return "∞ (static content)" if video["content_static"] else "–"
    return fmt_ratio(flicker)


def video_lines(video: dict[str, Any]) -> list[str]:
    return [
        f"Flicker ratio **{fmt_flicker(video)}** over {video['frames']} frames "
        f"({video['width']}×{video['height']}) of {video['source']}: mean absolute change between "
        f"consecutive stylised frames {video['stylised_change']:.2f} levels, between content "
        f"frames {video['content_change']:.2f} (1.0 = the network adds no flicker)."
    ]


CSS = """
body{font:15px/1.5 system-ui,sans-serif;color:#222;max-width:1100px;margin:2em auto;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #ddd}
.note{background:#fff4e0;border-left:4px solid #e07b1a;padding:.5em 1em;margin:.5em 0}
.cards{display:flex;flex-wrap:wrap;gap:1em;margin:1em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:12em}
.card b{display:block;font-size:1.6em} .card span{color:#666;font-size:.9em}
table{border-collapse:collapse;margin:.8em 0;font-variant-numeric:tabular-nums}
th,td{padding:.3em .7em;border-bottom:1px solid #e4e4e4;text-align:right}
th:first-child,td:first-child{text-align:left} thead th{background:#f4f4f4}
tr.agg td{background:#fafafa}
img,svg.chart{max-width:100%;height:auto} .image{margin:1.5em 0}
.settings{color:#555;font-size:.92em} footer{color:#888;font-size:.85em;margin-top:3em}
"""


def write_html(summary: dict[str, Any], charts: dict[str, str], path: Path) -> None:
    esc = html.escape
    m = summary["model"]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>Stylecast validation: {esc(m['name'])}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>Stylecast validation: {esc(m['name'])} v{m['version']}</h1>",
    ]
    out += [f'<p class="note">{esc(note)}</p>' for note in summary["notes"]]
    out.append('<ul class="settings">')
    out += [f"<li>{esc(line)}</li>" for line in settings_lines(summary)]
    out.append("</ul>")
    if head := headline(summary):
        out.append('<div class="cards">')
        out += [f'<div class="card"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for k, v in head]
        out.append("</div>")
    if summary["images"]:
        out += [
            "<h2>Loss under the training loss network (lower is better)</h2>",
            html_table(*loss_rows(summary)),
            "<h2>Agreement and speed</h2>",
            html_table(*agreement_rows(summary)),
            f'<p class="settings">{html.escape(agreement_note(summary))}</p>',
            "<h2>Images</h2>",
        ]
        for r in summary["images"]:
            out += [
                f'<section class="image"><h3>{esc(r["name"])}</h3>',
                f'<img src="{esc(r["grid"])}" alt="{esc(r["name"])}: content, style, '
                'iterative, fast">',
                charts[r["name"]],
                html_table(*term_rows(r, summary["settings"]["loss"])),
                "</section>",
            ]
    if video := summary.get("video"):
        out += [
            "<h2>Temporal stability</h2>",
            *(f"<p>{esc(line).replace('**', '')}</p>" for line in video_lines(video)),
            f'<img src="{esc(video["strip"])}" alt="consecutive frames">',
        ]
    env = summary["environment"]
    out += [
        f"<footer>Created {esc(summary['created'])} by stylecast {esc(env['stylecast'])}. "
        'All figures: <a href="summary.json">summary.json</a>.</footer>',
        "</body>",
        "</html>",
    ]
    _write_text(path, "\n".join(out) + "\n")


# --- writing ------------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """Replace NaN and ±inf (invalid JSON) with None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _save_png(image: Image.Image, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG", optimize=True)
    os.replace(tmp, path)


def write_report(validation: Validation, out: str | Path) -> list[Path]:
    """Write every file of the report under ``out``; returns their paths."""
    out = Path(out)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    (out / CHARTS_DIR).mkdir(parents=True, exist_ok=True)
    summary = validation.summary
    steps = summary["settings"]["iterate_steps"]
    written: list[Path] = []
    charts: dict[str, str] = {}
    for outcome in validation.images:
        r = outcome.record
        grid = out / IMAGES_DIR / f"{outcome.name}_grid.png"
        _save_png(
            grid_image(outcome.content, validation.style, outcome.iterative, outcome.fast, steps),
            grid,
        )
        beats = r["beats_fast_at_step"]
        title = f"{outcome.name}: " + (
            f"iterative beats the fast network at step {beats}"
            if beats
            else f"iterative does not beat the fast network in {steps} steps"
        )
        chart = loss_chart(
            r["history"],
            r["losses"]["content_image"]["total"],
            r["losses"]["fast"]["total"],
            beats,
            title,
        )
        chart_path = out / CHARTS_DIR / f"{outcome.name}_loss.png"
        _save_png(chart_png(chart), chart_path)
        charts[outcome.name] = chart_svg(chart)
        r["grid"], r["chart"] = (
            grid.relative_to(out).as_posix(),
            chart_path.relative_to(out).as_posix(),
        )
        written += [grid, chart_path]
    if validation.temporal is not None and summary.get("video") is not None:
        strip = out / IMAGES_DIR / "video_strip.png"
        _save_png(
            strip_image(validation.temporal.content_frames, validation.temporal.stylised_frames),
            strip,
        )
        summary["video"]["strip"] = strip.relative_to(out).as_posix()
        written.append(strip)
    summary_path = out / "summary.json"
    _write_text(summary_path, json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n")
    write_markdown(summary, out / "report.md")
    write_html(summary, charts, out / "report.html")
    return [*written, summary_path, out / "report.md", out / "report.html"]
