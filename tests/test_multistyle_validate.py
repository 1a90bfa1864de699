"""`stylecast validate` on a multi-style model: each style scored against the iterative
optimum of its own style image, into its own report folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from model_factory import make_run

from stylecast.cli import main
from stylecast.training.config import LossConfig
from stylecast.training.export import export_model
from stylecast.training.images import load_image, save_image

SIZE = 48
LOSS = LossConfig(style_weight=1e5, tv_weight=1.0)  # suits the calibrated random VGG


@pytest.fixture(scope="module")
def duo(tmp_path_factory, style_images, content_images) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("validate-duo")
    run = make_run(root / "run", style_images[0], image_size=SIZE, loss=LOSS,
                   extra_styles=(style_images[1],))  # fmt: skip
    export_model(run, "duo", root / "models")
    content = root / "content"
    save_image(load_image(content_images[0], SIZE), content / "one.jpg")
    return root / "models", content


def test_each_style_is_scored_against_its_own_style_image(duo, style_images, tmp_path, capsys):
    models, content = duo
    argv = ["validate", "--model", "duo", "--models-dir", str(models), "--content-dir",
            str(content), "--out", str(tmp_path), "--size", str(SIZE), "--iterate-steps", "2",
            "--no-progress", "--fast-repeats", "1"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summaries = {}
    for path in style_images[:2]:
        summaries[path.stem] = json.loads((tmp_path / path.stem / "summary.json").read_text())
        assert f"{path.stem}: report:" in printed
        model = summaries[path.stem]["model"]
        assert model["name"] == f"duo/{path.stem}"
        assert model["style_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert model["style_sha256_matches_card"] is True
    first, second = (summaries[p.stem]["images"][0] for p in style_images[:2])
    assert first["cache_key"] != second["cache_key"]  # two styles, two iterative optima
    assert first["losses"]["fast"] != second["losses"]["fast"]


def test_one_style_or_a_clear_error(duo, tmp_path, capsys):
    models, content = duo
    argv = ["validate", "--model", "duo", "--models-dir", str(models), "--content-dir",
            str(content), "--size", str(SIZE), "--iterate-steps", "1", "--no-progress",
            "--fast-repeats", "1"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "one"), "--model-style", "great_wave"]) == 0
    assert (tmp_path / "one" / "summary.json").is_file()  # one style: OUT itself
    assert main([*argv, "--out", str(tmp_path / "bad"), "--model-style", "nope"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "composition_vii, great_wave" in err
