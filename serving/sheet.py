"""Style sheets: one photo and what every model makes of it, labelled, in one image
(`stylecast sheet`), and the labelled grid that the demo's contact sheet shares.

``style_sheet`` runs each model offline through the pipeline `stylecast stylise` and the
server use (``pipeline.stylise``), loading the models one at a time; a multi-style model
gives one tile per style, labelled ``model/style``. A model that cannot be loaded or run is
skipped with its reason. Pillow draws the labels in its default font.
Returns images; prints nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from stylecast.errors import StylecastError

from .image_files import read_bounded
from .imaging import RAW, EncodedImage, ImageError, OutputFormat, StyliseOptions, downscale
from .pipeline import prepare, stylise
from .stylise import DEFAULT_MAX_BYTES, load_model, model_names

if TYPE_CHECKING:
    from .runtime import StyleModel

DEFAULT_MAX_SIDE = 384  # longer side of each tile
MAX_COLUMNS = 4
GAP = 6  # pixels between and around tiles
BACKGROUND = "white"
TEXT = "black"
ORIGINAL = "original"


@dataclass(frozen=True)
class Tile:
    """One labelled picture of a grid (RGB uint8 [H, W, 3])."""

    label: str
    image: np.ndarray


@dataclass(frozen=True)
class StyleSheet:
    """A composed sheet, its labels in reading order, and the models skipped with the reason."""

    image: Image.Image
    labels: list[str]
    skipped: dict[str, str] = field(default_factory=dict)


Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def _fit_label(draw: ImageDraw.ImageDraw, text: str, width: float, font: Font) -> str:
    """``text``, shortened with "..." until it fits in ``width`` pixels (ASCII: Pillow's
    older default font is a Latin-1 bitmap)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def grid(rows: Sequence[Sequence[Tile]], max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """The tiles row by row, each shrunk to at most ``max_side`` and centred in a cell of the
    largest tile's size, with its label along the cell's foot."""
    pictures = [[downscale(tile.image, max_side) for tile in row] for row in rows]
    flat = [p for row in pictures for p in row]
    if not flat:
        raise ValueError("a grid needs at least one tile")
    font = ImageFont.load_default()
    _, top, _, bottom = font.getbbox("Ag")
    label_height = int(bottom - top) + 2 * GAP
    cell_w = max(p.shape[1] for p in flat)
    cell_h = max(p.shape[0] for p in flat) + label_height
    columns = max(len(row) for row in rows)
    sheet = Image.new(
        "RGB", (GAP + columns * (cell_w + GAP), GAP + len(rows) * (cell_h + GAP)), BACKGROUND
    )
    draw = ImageDraw.Draw(sheet)
    for r, (row, row_pictures) in enumerate(zip(rows, pictures, strict=True)):
        for c, (tile, picture) in enumerate(zip(row, row_pictures, strict=True)):
            x, y = GAP + c * (cell_w + GAP), GAP + r * (cell_h + GAP)
            sheet.paste(Image.fromarray(picture), (x + (cell_w - picture.shape[1]) // 2, y))
            label = _fit_label(draw, tile.label, cell_w, font)
            text_x = x + (cell_w - draw.textlength(label, font=font)) / 2
            text_y = y + cell_h - label_height + GAP - top
            draw.text((text_x, text_y), label, fill=TEXT, font=font)
    return sheet


def compose(tiles: Sequence[Tile], max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """The tiles in reading order, at most MAX_COLUMNS to a row."""
    columns = max(1, min(len(tiles), MAX_COLUMNS))
    return grid([tiles[i : i + columns] for i in range(0, len(tiles), columns)], max_side)


def style_sheet(
    photo: str | Path,
    models_dir: str | Path,
    names: Sequence[str] | None = None,
    max_side: int = DEFAULT_MAX_SIDE,
) -> StyleSheet:
    """``photo`` (as the network sees it: upright, at most ``max_side``) followed by each of
    ``names`` (default: every model in ``models_dir``) applied to it.

    Raises StylecastError for a missing photo, models folder or model name, ImageError for a
    photo that cannot be decoded, and StylecastError when no model works."""
    photo, root = Path(photo), Path(models_dir)
    if not photo.is_file():
        raise StylecastError(f"photo not found: {photo}")
    if not root.is_dir():
        raise StylecastError(f"models folder not found: {root}")
    available = model_names(root)
    unknown = [name for name in names or () if name not in available]
    if unknown:
        raise StylecastError(
            f"unknown model(s) {', '.join(unknown)} (models in {root}: "
            f"{', '.join(available) or 'none'})"
        )
    chosen = list(dict.fromkeys(names)) if names else available
    if not chosen:
        raise StylecastError(f"no models in {root}")
    data = EncodedImage(read_bounded(str(photo), DEFAULT_MAX_BYTES))
    options = StyliseOptions(max_side=max_side)
    try:
        original = prepare(data, options).content
    except ImageError as exc:
        raise ImageError(f"{photo}: {exc}") from None
    tiles, skipped = [Tile(ORIGINAL, original)], {}
    for name in chosen:
        try:
            tiles += _model_tiles(load_model(root, name), data, options)
        except Exception as exc:  # one broken model never spoils the others' sheet
            skipped[name] = str(exc)
    if len(tiles) == 1:
        reasons = "; ".join(f"{name}: {error}" for name, error in skipped.items())
        raise StylecastError(f"no model could stylise {photo} ({reasons})")
    return StyleSheet(compose(tiles, max_side), [t.label for t in tiles], skipped)


def _model_tiles(model: StyleModel, data: EncodedImage, options: StyliseOptions) -> list[Tile]:
    """The photo in each style of ``model`` (one tile for a single-style model)."""
    tiles = []
    for style in model.style_names or [""]:
        styled = replace(options, style=style)
        result = stylise(model, data, styled, OutputFormat(RAW)).image
        pixels = np.frombuffer(result.data, np.uint8).reshape(result.height, result.width, 3)
        tiles.append(Tile(f"{model.name}/{style}" if style else model.name, pixels))
    return tiles
