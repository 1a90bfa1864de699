"""The summary as text, shared by the markdown and HTML documents and the CLI: number formats,
the headline figures, the settings lines and the rows of every table. Rows are lists of cells;
a first cell in ``**bold**`` marks an aggregate row."""

from __future__ import annotations

import html
import math

from .summary import Figures, ImageRecord, LossSettings, ValidationSummary, VideoRecord

Table = tuple[list[str], list[list[str]]]  # header, rows

# --- numbers ------------------------------------------------------------------------------------


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


def fmt_flicker(video: VideoRecord) -> str:
    flicker = video.flicker_ratio
    if flicker is None or math.isinf(flicker):
        return "∞ (static content)" if video.content_static else "–"
    return fmt_ratio(flicker)


# --- prose --------------------------------------------------------------------------------------


def headline(summary: ValidationSummary) -> list[tuple[str, str]]:
    """The few figures people quote, as (label, value)."""
    out: list[tuple[str, str]] = []
    if summary.aggregate is not None:
        median = summary.aggregate.median
        steps = summary.settings.iterate_steps
        out += [
            ("fast ÷ iterative total loss (median)", fmt_ratio(median.ratio_total)),
            ("speed-up (median)", fmt_speedup(median.speedup)),
            (
                "iterations to beat the fast network (median)",
                fmt_steps(median.beats_fast_at_step, steps),
            ),
            ("SSIM fast vs iterative (median)", fmt_ssim(median.ssim)),
        ]
    if summary.video is not None:
        out.append(("temporal flicker ratio (1.0 = none added)", fmt_flicker(summary.video)))
    return out


def settings_lines(summary: ValidationSummary) -> list[str]:
    """How the validation ran, one sentence each."""
    m, s, e = summary.model, summary.settings, summary.environment
    loss = s.loss
    return [
        f"Model: {m.name} v{m.version}; style image {m.style_image} ({m.style_path}).",
        f"Size {s.size} px (style {s.style_size} px, from {s.style_size_source}); iterative: "
        f"{s.iterate_steps} "
        f"{s.optimizer} steps from the content image.",
        f"Loss network {m.vgg_weights}; content {', '.join(loss.content_layers)} × "
        f"{fmt_weight(loss.content_weight)}; style {', '.join(loss.style_layers)} × "
        f"{fmt_weight(loss.style_weight)}; TV × {fmt_weight(loss.tv_weight)}.",
        f"Fast network on onnxruntime {e.onnxruntime} ({e.fast_provider}), "
        f"{s.fast_timing}; iterative on torch {e.torch} ({e.torch_device}, "
        f"{e.cpu_threads} threads).",
        "Ratios are fast ÷ iterative (below 1: the fast network reaches a lower loss); "
        "mean and median rows summarise the per-image figures.",
    ]


def agreement_note(summary: ValidationSummary) -> str:
    """What the agreement table's figures mean."""
    steps = summary.settings.iterate_steps
    note = (
        "SSIM, PSNR and LPIPS compare the fast output with the iterative one. Speed-up = "
        "iterative time ÷ fast time. Steps to beat fast: the first iteration whose total loss "
        f"is at or below the fast network's (> {steps}: not within the run)."
    )
    if any(r.cached for r in summary.images):
        note += " † from the cache: the wall time of the run that made it."
    return note


def video_lines(video: VideoRecord) -> list[str]:
    """The temporal-stability paragraph (``**`` marks the figure)."""
    return [
        f"Flicker ratio **{fmt_flicker(video)}** over {video.frames} frames "
        f"({video.width}×{video.height}) of {video.source}: mean absolute change between "
        f"consecutive stylised frames {video.stylised_change:.2f} levels, between content "
        f"frames {video.content_change:.2f} (1.0 = the network adds no flicker)."
    ]


# --- tables -------------------------------------------------------------------------------------


def _aggregate_rows(summary: ValidationSummary) -> list[tuple[str, Figures[float | None]]]:
    a = summary.aggregate
    return [] if a is None else [("**mean**", a.mean), ("**median**", a.median)]


def loss_rows(summary: ValidationSummary) -> Table:
    """Header and rows (per image, then mean and median) of the loss table."""
    header = ["image", "no stylisation", "iterative", "fast", "fast ÷ iterative: total",
              "content", "style", "TV"]  # fmt: skip
    rows = [
        [
            r.name,
            fmt_loss(r.losses.content_image.total),
            fmt_loss(r.losses.iterative.total),
            fmt_loss(r.losses.fast.total),
            fmt_ratio(r.ratios.total),
            fmt_ratio(r.ratios.content),
            fmt_ratio(r.ratios.style),
            fmt_ratio(r.ratios.tv),
        ]
        for r in summary.images
    ]
    rows += [
        [
            label,
            fmt_loss(a.content_image_total),
            fmt_loss(a.iterative_total),
            fmt_loss(a.fast_total),
            fmt_ratio(a.ratio_total),
            fmt_ratio(a.ratio_content),
            fmt_ratio(a.ratio_style),
            fmt_ratio(a.ratio_tv),
        ]
        for label, a in _aggregate_rows(summary)
    ]
    return header, rows


def agreement_rows(summary: ValidationSummary) -> Table:
    """Header and rows of the similarity-and-speed table."""
    steps = summary.settings.iterate_steps
    header = ["image", "SSIM", "PSNR", "LPIPS", "iterative time", "fast time", "speed-up",
              "steps to beat fast"]  # fmt: skip
    rows = [
        [
            r.name,
            fmt_ssim(r.distances.ssim),
            fmt_psnr(r.distances.psnr_db),
            fmt_lpips(r.distances.lpips),
            fmt_seconds(r.seconds.iterative) + (" †" if r.cached else ""),
            fmt_seconds(r.seconds.fast),
            fmt_speedup(r.speedup),
            fmt_steps(r.beats_fast_at_step, steps),
        ]
        for r in summary.images
    ]
    total = len(summary.images)
    beaten = summary.aggregate.count.beats_fast_at_step if summary.aggregate else 0
    for label, a in _aggregate_rows(summary):
        beats = fmt_steps(a.beats_fast_at_step, steps)
        if 0 < beaten < total:
            beats += f" ({beaten} of {total} images)"
        rows.append(
            [
                label,
                fmt_ssim(a.ssim),
                fmt_psnr(a.psnr_db, False),
                fmt_lpips(a.lpips),
                fmt_seconds(a.iterative_seconds),
                fmt_seconds(a.fast_seconds),
                fmt_speedup(a.speedup),
                beats,
            ]
        )
    return header, rows


def term_rows(record: ImageRecord, loss: LossSettings) -> Table:
    """Every loss term of the three images of one content image, weighted as in the total
    (so each row adds up to its total)."""
    weights = {"content": loss.content_weight, "style": loss.style_weight, "tv": loss.tv_weight}
    header = ["", f"content × {fmt_weight(weights['content'])}",
              f"style × {fmt_weight(weights['style'])}", f"TV × {fmt_weight(weights['tv'])}",
              "total"]  # fmt: skip
    losses = record.losses
    rows = [
        [
            label,
            fmt_loss(terms.content * weights["content"]),
            fmt_loss(terms.style * weights["style"]),
            fmt_loss(terms.tv * weights["tv"]),
            fmt_loss(terms.total),
        ]
        for label, terms in (
            ("no stylisation", losses.content_image),
            ("iterative", losses.iterative),
            ("fast", losses.fast),
        )
    ]
    r = record.ratios
    rows.append(["fast ÷ iterative", *map(fmt_ratio, (r.content, r.style, r.tv, r.total))])
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table, numbers right-aligned."""
    align = ["---"] + ["--:"] * (len(header) - 1)
    lines = [header, align, *rows]
    return "\n".join(
        "| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines
    )


def html_table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; ``**bold**`` first cells mark aggregate rows."""

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
