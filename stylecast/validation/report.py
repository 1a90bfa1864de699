"""The `stylecast validate` report folder: summary.json, report.md, report.html (self-contained
apart from its PNGs), a grid and a loss chart per content image under ``images/`` and
``charts/``, and a strip of video frames. ``write_report`` writes them all."""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

from .charts import loss_chart, save_chart
from .files import write_text
from .pictures import grid_image, save_png, strip_image
from .results import Validation
from .summary import SUMMARY_FILE, ImageRecord, ValidationSummary, write_summary
from .tables import (
    agreement_note,
    agreement_rows,
    headline,
    html_table,
    loss_rows,
    markdown_table,
    settings_lines,
    term_rows,
    video_lines,
)

IMAGES_DIR = "images"
CHARTS_DIR = "charts"

# --- markdown -----------------------------------------------------------------------------------


def markdown_document(summary: ValidationSummary) -> str:
    """report.md: the figures, tables and pictures of ``summary``."""
    lines = [f"# Stylecast validation: {summary.model.name}", ""]
    lines += [f"> **Note:** {note}" for note in summary.notes] + ([""] if summary.notes else [])
    lines += [f"- {line}" for line in settings_lines(summary)] + [""]
    if head := headline(summary):
        lines += ["| figure | value |", "| --- | --: |"]
        lines += [f"| {label} | {value} |" for label, value in head] + [""]
    if summary.images:
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
        for r in summary.images:
            lines += [
                f"### {r.name}",
                "",
                f"![{r.name}: content, style, iterative, fast]({r.grid})",
                "",
                iterative_caption(r, summary),
                "",
                f"![loss against iteration]({r.chart})",
                "",
                markdown_table(*term_rows(r, summary.settings.loss)),
                "",
            ]
    if video := summary.video:
        lines += ["## Temporal stability", "", *video_lines(video), ""]
        lines += [f"![consecutive frames]({video.strip})", ""]
    lines += [f"All figures: [{SUMMARY_FILE}]({SUMMARY_FILE}).", ""]
    return "\n".join(lines)


# --- HTML ---------------------------------------------------------------------------------------

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
img{max-width:100%;height:auto;display:block} .image{margin:1.5em 0}
.settings{color:#555;font-size:.92em} footer{color:#888;font-size:.85em;margin-top:3em}
"""
CHART_WIDTH, CHART_HEIGHT = 640, 300  # CSS pixels; the PNG has twice as many


def _image_section(record: ImageRecord, summary: ValidationSummary) -> list[str]:
    esc = html.escape
    return [
        f'<section class="image"><h3>{esc(record.name)}</h3>',
        f'<img src="{esc(record.grid or "")}" alt="{esc(record.name)}: content, style, '
        'iterative, fast">',
        f"<p>{esc(iterative_caption(record, summary))}</p>",
        f'<img class="chart" src="{esc(record.chart or "")}" alt="{esc(record.name)}: total loss '
        f'against iteration" width="{CHART_WIDTH}" height="{CHART_HEIGHT}">',
        html_table(*term_rows(record, summary.settings.loss)),
        "</section>",
    ]


def html_document(summary: ValidationSummary) -> str:
    """report.html: the same content as report.md, styled."""
    esc = html.escape
    m = summary.model
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>Stylecast validation: {esc(m.name)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>Stylecast validation: {esc(m.name)} v{m.version}</h1>",
    ]
    out += [f'<p class="note">{esc(note)}</p>' for note in summary.notes]
    out.append('<ul class="settings">')
    out += [f"<li>{esc(line)}</li>" for line in settings_lines(summary)]
    out.append("</ul>")
    if head := headline(summary):
        out.append('<div class="cards">')
        out += [f'<div class="card"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for k, v in head]
        out.append("</div>")
    if summary.images:
        out += [
            "<h2>Loss under the training loss network (lower is better)</h2>",
            html_table(*loss_rows(summary)),
            "<h2>Agreement and speed</h2>",
            html_table(*agreement_rows(summary)),
            f'<p class="settings">{esc(agreement_note(summary))}</p>',
            "<h2>Images</h2>",
        ]
        for record in summary.images:
            out += _image_section(record, summary)
    if video := summary.video:
        out += [
            "<h2>Temporal stability</h2>",
            *(f"<p>{esc(line).replace('**', '')}</p>" for line in video_lines(video)),
            f'<img src="{esc(video.strip or "")}" alt="consecutive frames">',
        ]
    out += [
        f"<footer>Created {esc(summary.created)} by stylecast "
        f"{esc(summary.environment.stylecast)}. "
        f'All figures: <a href="{SUMMARY_FILE}">{SUMMARY_FILE}</a>.</footer>',
        "</body>",
        "</html>",
    ]
    return "\n".join(out) + "\n"


# --- the folder ---------------------------------------------------------------------------------


def _chart_title(record: ImageRecord, steps: int) -> str:
    beats = record.beats_fast_at_step
    if beats:
        return f"{record.name}: iterative beats the fast network at step {beats}"
    return f"{record.name}: iterative does not beat the fast network in {steps} steps"


def write_report(validation: Validation, out: str | Path) -> list[Path]:
    """Write every file of the report under ``out``; returns their paths (pictures first)."""
    out = Path(out)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    (out / CHARTS_DIR).mkdir(parents=True, exist_ok=True)
    summary = validation.summary
    steps = summary.settings.iterate_steps
    written: list[Path] = []
    records: list[ImageRecord] = []
    for record in summary.images:
        pictures = validation.pictures[record.name]
        grid = save_png(
            grid_image(
                pictures.content, validation.style, pictures.iterative, pictures.fast, steps
            ),
            out / IMAGES_DIR / f"{record.name}_grid.png",
        )
        losses = record.losses
        chart = loss_chart(
            record.history,
            losses.content_image.total,
            losses.fast.total,
            record.beats_fast_at_step,
            _chart_title(record, steps),
        )
        chart_path = save_chart(chart, out / CHARTS_DIR / f"{record.name}_loss.png")
        records.append(
            dataclasses.replace(
                record,
                grid=grid.relative_to(out).as_posix(),
                chart=chart_path.relative_to(out).as_posix(),
            )
        )
        written += [grid, chart_path]
    video = summary.video
    if video is not None and validation.video is not None:
        strip = save_png(
            strip_image(validation.video.content, validation.video.stylised),
            out / IMAGES_DIR / "video_strip.png",
        )
        video = dataclasses.replace(video, strip=strip.relative_to(out).as_posix())
        written.append(strip)
    summary = dataclasses.replace(summary, images=tuple(records), video=video)
    documents = [
        write_summary(summary, out / SUMMARY_FILE),
        write_text(out / "report.md", markdown_document(summary)),
        write_text(out / "report.html", html_document(summary)),
    ]
    return [*written, *documents]


def iterative_caption(record: ImageRecord, summary: ValidationSummary) -> str:
    """Which iterate the "iterative" image is: the best the optimisation reached."""
    steps = summary.settings.iterate_steps
    if record.best_step is None:
        return f"Iterative: the image after {steps} steps."
    return f"Iterative: the best iterate of {steps} steps, reached at step {record.best_step}."
