"""`stylecast models` (what the local models folder holds) and `stylecast sheet` (one photo
through every model, in one image): offline, no server, never torch. Each parses its
arguments and delegates to stylecast.serving.catalog or stylecast.serving.sheet."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..image_rules import IMAGE_SUFFIXES
from .args import positive_int

SHEET_QUALITY = 90


def _size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "-"
    if size_bytes >= 1_000_000:
        return f"{size_bytes / 1_000_000:.1f} MB"
    return f"{size_bytes / 1000:.0f} kB"


def _status(entry: Any) -> str:
    if entry.error is not None:
        return f"error: {entry.error}"
    broken = "; ".join(f"v{n}: {error}" for n, error in entry.version_errors.items())
    return f"ok (broken {broken})" if broken else "ok"


def styles_cell(styles: list[str]) -> str:
    """A multi-style model's styles for a table cell ("-": a single-style model)."""
    return ",".join(styles) or "-"


def models_table(entries: list[Any]) -> str:
    """The entries as an aligned text table, the status (or error) last."""
    rows = [("NAME", "VERSION", "VERSIONS", "NETWORK", "PRECISION", "SIZE", "TESTING", "STYLES",
             "STATUS")]  # fmt: skip
    for e in entries:
        testing = "-" if e.testing_only is None else ("yes" if e.testing_only else "no")
        rows.append((e.name, str(e.version or "-"), ",".join(map(str, e.versions)) or "-",
                     e.network or "-", e.precision or "-", _size(e.size_bytes), testing,
                     styles_cell(e.styles), _status(e)))  # fmt: skip
    return aligned_table(rows)


def aligned_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as text columns two spaces apart; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _cmd_models(args: argparse.Namespace) -> None:
    from ..serving.catalog import list_models

    entries = list_models(args.models_dir)
    if args.json:
        print(json.dumps([entry.to_dict() for entry in entries], indent=2))
        return
    print(models_table(entries))
    if not entries:
        print(f"stylecast models: no models in {args.models_dir}", file=sys.stderr)


def _model_list(text: str) -> list[str]:
    """argparse type: comma-separated model names."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _cmd_sheet(args: argparse.Namespace) -> None:
    import numpy as np

    from ..errors import InputsFailed, StylecastError
    from ..serving.image_files import write_atomically
    from ..serving.imaging import ImageError, encode, encoding_for_suffix
    from ..serving.sheet import style_sheet

    suffix = Path(args.out).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise StylecastError(f"--out {args.out}: use a .jpg, .png or .webp file name")
    try:
        sheet = style_sheet(args.photo, args.models_dir, args.models, args.max_side)
    except ImageError as exc:
        raise InputsFailed(str(exc)) from None
    for name, error in sheet.skipped.items():
        print(f"stylecast sheet: warning: skipped model {name!r}: {error}", file=sys.stderr)
    data = encode(np.asarray(sheet.image), encoding_for_suffix(suffix), SHEET_QUALITY)
    write_atomically(args.out, data)
    models = sheet.labels[1:]
    print(f"{args.out}: {sheet.image.width}x{sheet.image.height}, the photo and "
          f"{len(models)} model(s): {', '.join(models)}")  # fmt: skip


def _add_models(sub: Any) -> None:
    p = sub.add_parser(
        "models",
        help="list the local models folder (offline)",
        description="List the models in --models-dir from their cards, without loading them: "
        "name, versions, network, precision, size of the serving version's model.onnx, and "
        "whether it is for testing only. A broken model is listed with its error.",
    )
    p.add_argument("--models-dir", default="models")
    p.add_argument("--json", action="store_true", help="one JSON document (a list of objects)")
    p.set_defaults(handler=_cmd_models)


def _add_sheet(sub: Any) -> None:
    p = sub.add_parser(
        "sheet",
        help="one photo through every model, labelled, in one image (offline)",
        description="Stylise PHOTO with every model in --models-dir (or --models) offline and "
        "write the original and each result, labelled with the model's name, as one grid "
        "image. A model that cannot be loaded is skipped with a warning.",
    )
    p.add_argument("photo", metavar="PHOTO", help="JPEG, PNG or WebP photo")
    p.add_argument("--out", required=True, help="the sheet (.jpg, .png or .webp)")
    p.add_argument("--models-dir", default="models")
    p.add_argument(
        "--max-side", type=positive_int, default=384, help="longer side of each tile (384)"
    )
    p.add_argument(
        "--models", type=_model_list, help="comma-separated model names (default: every model)"
    )
    p.set_defaults(handler=_cmd_sheet)


def register(sub: Any) -> None:
    """Add `models` and `sheet` to the `stylecast` parser."""
    for add in (_add_models, _add_sheet):
        add(sub)
