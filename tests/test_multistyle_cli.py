"""The command line with a multi-style model: `stylise --style/--mix` offline and through
`client stylise`, `sheet` with one tile per style, and `train` refusing what cannot work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serving_fixtures import DUO_MODEL, TINY_MODEL, encoded_image

from stylecast.cli import main

pytest_plugins = ("serving_fixtures",)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(encoded_image(64, "PNG"))
    return path


def _stylise(models: Path, photo: Path, out: Path, *args: str, model: str = DUO_MODEL) -> int:
    argv = ["stylise", str(photo), "--model", model, "--models-dir", str(models)]
    return main([*argv, "--out", str(out), *args])


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def test_stylise_a_style_or_a_mix(duo_models_dir, photo, tmp_path) -> None:
    outs = {name: tmp_path / f"{name}.png" for name in ("default", "first", "wave", "mix")}
    assert _stylise(duo_models_dir, photo, outs["default"]) == 0
    assert _stylise(duo_models_dir, photo, outs["first"], "--style", "starry_night") == 0
    assert _stylise(duo_models_dir, photo, outs["wave"], "--style", "great_wave") == 0
    mix = "starry_night:0.5,great_wave:0.5"
    assert _stylise(duo_models_dir, photo, outs["mix"], "--mix", mix) == 0
    default, first, wave, blend = (_pixels(outs[k]) for k in ("default", "first", "wave", "mix"))
    np.testing.assert_array_equal(default, first)
    assert np.abs(default - wave).mean() > 1
    # a half-and-half blend lies between the two styles
    assert np.abs(blend - default).mean() < np.abs(wave - default).mean()
    assert np.abs(blend - wave).mean() < np.abs(wave - default).mean()


@pytest.mark.parametrize(
    ("args", "model", "message"),
    [
        (["--style", "mona_lisa"], DUO_MODEL, "unknown style 'mona_lisa'"),
        (["--mix", "starry_night:-1"], DUO_MODEL, ">= 0"),
        (["--mix", "starry_night:0,great_wave:0"], DUO_MODEL, "all zero"),
        (["--mix", "starry_night=1"], DUO_MODEL, "NAME:WEIGHT"),
        (["--style", "starry_night"], TINY_MODEL, "single style"),
    ],
)
def test_bad_styles_are_one_line_errors(duo_models_dir, photo, tmp_path, capsys, args, model,
                                        message) -> None:  # fmt: skip
    assert _stylise(duo_models_dir, photo, tmp_path / "out.png", *args, model=model) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


def test_client_stylise_sends_the_mix(duo_models_dir, photo, tmp_path, start_server) -> None:
    server = start_server(duo_models_dir)
    out = tmp_path / "remote.png"
    argv = ["client", "stylise", str(photo), str(out), "--server", server.address]
    assert main([*argv, "--model", DUO_MODEL, "--style", "great_wave"]) == 0
    local = tmp_path / "local.png"
    assert _stylise(duo_models_dir, photo, local, "--style", "great_wave") == 0
    assert np.abs(_pixels(out) - _pixels(local)).max() <= 2  # PNG both ways: the same pixels


def test_model_listings_show_the_styles(duo_models_dir, start_server, capsys) -> None:
    server = start_server(duo_models_dir)
    for argv in (["models", "--models-dir", str(duo_models_dir)],
                 ["client", "models", "--server", server.address]):  # fmt: skip
        assert main(argv) == 0
        header, *rows = capsys.readouterr().out.splitlines()
        start = header.index("STYLES")  # columns are aligned; a cell may be empty
        cells = {row.split()[0]: row[start:].split()[0] for row in rows}
        assert cells == {DUO_MODEL: "starry_night,great_wave", TINY_MODEL: "-"}


def test_sheet_shows_each_style(duo_models_dir, photo, tmp_path, capsys) -> None:
    out = tmp_path / "sheet.png"
    assert main(["sheet", str(photo), "--models-dir", str(duo_models_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "duo/starry_night" in printed and "duo/great_wave" in printed and "tiny" in printed


def test_train_refuses_add_style_without_a_run(tmp_path, capsys) -> None:
    argv = ["train", "--add-style", "x.jpg", "--out", str(tmp_path / "run")]
    assert main(argv) != 0
    assert "--resume RUN" in capsys.readouterr().err
    assert main(["train", "--content-dir", str(tmp_path), "--out", str(tmp_path / "r")]) != 0
    assert "--style" in capsys.readouterr().err


def test_train_two_styles_then_add_a_third(tmp_path, content_dir, style_images, capsys) -> None:
    from stylecast.training.run_folder import RunFolder

    tiny = ["--image-size", "32", "--batch-size", "2", "--max-steps", "1", "--network", "rt",
            "--accelerator", "cpu", "--devices", "1", "--sample-every", "0", "--no-export",
            "--vgg-weights", "random:0", "--style-weight", "1e5", "--tv-weight", "1"]  # fmt: skip
    base = tmp_path / "duo"
    styles = [arg for path in style_images[:2] for arg in ("--style", str(path))]
    argv = ["train", *styles, "--content-dir", str(content_dir), "--out", str(base), *tiny]
    assert main(argv) == 0
    record = RunFolder(base).read_record()
    assert record.train["network"]["styles"] == 2
    assert record.train["extra_styles"] == [str(style_images[1])]
    added = tmp_path / "trio"
    argv = ["train", "--add-style", str(style_images[2]), "--resume", str(base), "--out",
            str(added), "--max-steps", "1", "--accelerator", "cpu", "--devices", "1",
            "--sample-every", "0", "--no-export"]  # fmt: skip
    assert main(argv) == 0
    record = RunFolder(added).read_record()
    assert record.train["frozen_styles"] == 2 and record.train["base_weights"] == str(base)
    assert record.train["network"]["styles"] == 3 and len(record.styles_sha256) == 3
    assert record.train["content_dirs"] == [str(content_dir)]  # from the base run
