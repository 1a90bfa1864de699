"""`stylecast sheet` and serving.sheet: one photo through every model in one labelled grid
that grows with the models, broken models skipped with a warning, bad photos refused in one
line; and the demo's contact and style sheets built by the same grid."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serving_fixtures import TINY_MODEL, encoded_image

from stylecast.cli import build_parser, main
from stylecast.errors import StylecastError
from stylecast.serving import demo
from stylecast.serving.sheet import (
    DEFAULT_MAX_SIDE,
    GAP,
    MAX_COLUMNS,
    ORIGINAL,
    Tile,
    compose,
    grid,
    style_sheet,
)

pytest_plugins = ("serving_fixtures",)

SIDE = 64  # tiles of a 96x64 photo: 64x43


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(encoded_image(96))
    return path


def add_model(models_dir: Path, name: str) -> None:
    """A second working model: the tiny one under another name."""
    shutil.copytree(models_dir / TINY_MODEL, models_dir / name)
    card = models_dir / name / "model.json"
    card.write_text(card.read_text().replace(f'"name": "{TINY_MODEL}"', f'"name": "{name}"'))


def add_broken(models_dir: Path, name: str = "broken") -> None:
    (models_dir / name).mkdir()
    (models_dir / name / "model.json").write_text("{not json")


def tiles_of(image: Image.Image, count: int, tile_height: int) -> list[np.ndarray]:
    """The picture part of each cell of a one-row sheet."""
    pixels = np.asarray(image)
    cell_w = (image.width - GAP) // count - GAP
    lefts = [GAP + i * (cell_w + GAP) for i in range(count)]
    return [pixels[GAP : GAP + tile_height, left : left + cell_w] for left in lefts]


def test_the_sheet_grows_with_the_models_and_every_tile_is_drawn(models_copy, photo):
    one = style_sheet(photo, models_copy, max_side=SIDE)
    add_model(models_copy, "second")
    two = style_sheet(photo, models_copy, max_side=SIDE)
    assert one.labels == [ORIGINAL, TINY_MODEL] and one.skipped == {}
    assert two.labels == [ORIGINAL, "second", TINY_MODEL]
    assert two.image.height == one.image.height and two.image.width > one.image.width
    original, *stylised = tiles_of(two.image, 3, 43)
    for tile in (original, *stylised):
        assert tile.std() > 5  # a picture, not blank background
    assert np.abs(stylised[0].astype(int) - original).mean() > 5  # the model changed it
    labels = np.asarray(two.image)[GAP + 43 :]
    assert (labels < 128).any()  # label text drawn under the tiles


def test_models_option_picks_and_orders(models_copy, photo):
    add_model(models_copy, "second")
    sheet = style_sheet(photo, models_copy, [TINY_MODEL, "second", TINY_MODEL], max_side=SIDE)
    assert sheet.labels == [ORIGINAL, TINY_MODEL, "second"]
    with pytest.raises(StylecastError, match=r"unknown model.*nope.*models in"):
        style_sheet(photo, models_copy, ["nope"], max_side=SIDE)


def test_many_models_wrap_into_rows():
    picture = np.full((20, 30, 3), 90, np.uint8)
    one_row = compose([Tile(str(i), picture) for i in range(MAX_COLUMNS)])
    two_rows = compose([Tile(str(i), picture) for i in range(MAX_COLUMNS + 1)])
    assert two_rows.width == one_row.width and two_rows.height > one_row.height


def test_a_long_label_is_shortened_not_widening_the_cell():
    picture = np.full((20, 30, 3), 90, np.uint8)
    sheet = grid([[Tile("a very long model name " * 10, picture)]])
    assert sheet.width == 30 + 2 * GAP


def test_broken_model_is_skipped_with_one_warning(models_copy, photo, tmp_path, capsys):
    add_broken(models_copy)
    out = tmp_path / "sheet.png"
    args = ["sheet", str(photo), "--out", str(out), "--models-dir", str(models_copy)]
    assert main([*args, "--max-side", str(SIDE)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "skipped model 'broken'" in warnings[0]
    assert "Traceback" not in captured.err
    assert captured.out.startswith(f"{out}: ") and TINY_MODEL in captured.out
    with Image.open(out) as written:
        assert written.format == "PNG" and written.width > 2 * SIDE


def test_no_working_model_is_an_error(tmp_path, photo, capsys):
    models = tmp_path / "models"
    models.mkdir()
    add_broken(models)
    with pytest.raises(StylecastError, match="no model could stylise"):
        style_sheet(photo, models, max_side=SIDE)
    out = str(tmp_path / "s.jpg")
    assert main(["sheet", str(photo), "--out", out, "--models-dir", str(models)]) == 1
    assert not Path(out).exists()


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [("missing", 1, "photo not found"), ("undecodable", 3, "not a decodable")],
)
def test_bad_photo_is_one_error_line(tiny_models_dir, tmp_path, capsys, case, code, message):
    bad = tmp_path / "photo.jpg"
    if case == "undecodable":
        bad.write_bytes(b"not an image at all")
    out = tmp_path / "sheet.jpg"
    args = ["sheet", str(bad), "--out", str(out), "--models-dir", str(tiny_models_dir)]
    assert main(args) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stylecast sheet: error: ") and message in err
    assert not out.exists()


def test_out_must_name_an_image_file(tiny_models_dir, photo, tmp_path, capsys):
    args = ["sheet", str(photo), "--out", str(tmp_path / "sheet.txt")]
    assert main([*args, "--models-dir", str(tiny_models_dir)]) == 1
    assert "use a .jpg, .png or .webp" in capsys.readouterr().err


def test_cli_default_tile_side_is_the_library_default():
    args = build_parser().parse_args(["sheet", "p.jpg", "--out", "s.jpg"])
    assert args.max_side == DEFAULT_MAX_SIDE


def test_demo_sheets_share_the_grid():
    photo = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    rows = {"m1": [photo, photo], "m2": [photo, photo]}
    contact = demo.contact_sheet([("a", photo), ("b", photo)], rows)
    assert contact.size == (GAP + 2 * (60 + GAP), contact.height)
    assert contact.height > 3 * 40  # three rows: the photos, then one per model
    sheet = demo.style_sheet(photo, {"m1": photo, "m2": photo})
    assert sheet.width == GAP + 3 * (60 + GAP) and sheet.height < contact.height
