"""`stylecast models`: the local models folder as a table and as JSON, read from the cards
without loading a graph; broken models and broken versions listed with their error; and the
command (with `stylecast sheet`) running where torch cannot be imported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from serving_fixtures import TINY_MODEL, encoded_image
from test_no_torch import assert_ok, run_without_torch

from stylecast.cli import main
from stylecast.serving.catalog import NETWORK_PRESETS, list_models, network_label

pytest_plugins = ("serving_fixtures",)


def listing(models_dir: Path, capsys, *extra: str) -> tuple[str, str]:
    assert main(["models", "--models-dir", str(models_dir), *extra]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.out, captured.err


def test_table_lists_each_model_with_its_figures(tiny_models_dir, capsys):
    out, _ = listing(tiny_models_dir, capsys)
    header, *rows = out.splitlines()
    assert header.split() == [
        "NAME", "VERSION", "VERSIONS", "NETWORK", "PRECISION", "SIZE", "TESTING", "STYLES",
        "STATUS",
    ]  # fmt: skip
    assert len(rows) == 1
    name, version, versions, network, precision, size, unit, testing, styles, status = rows[
        0
    ].split()
    assert styles == "-"
    assert (name, version, versions, network, precision) == (TINY_MODEL, "1", "1", "lite", "fp32")
    assert unit in ("kB", "MB") and float(size) > 0
    assert testing in ("yes", "no") and status == "ok"


def test_json_is_one_document_with_the_card_figures(tiny_models_dir, capsys):
    out, _ = listing(tiny_models_dir, capsys, "--json")
    (entry,) = json.loads(out)
    onnx = tiny_models_dir / TINY_MODEL / "1" / "model.onnx"
    assert entry["name"] == TINY_MODEL and entry["version"] == 1 and entry["versions"] == [1]
    assert entry["network"] == "lite"
    assert entry["network_config"] == {"width": 16, "residual_blocks": 3, "architecture": "johnson"}
    assert entry["precision"] == "fp32" and entry["size_bytes"] == onnx.stat().st_size
    assert isinstance(entry["testing_only"], bool)
    assert entry["error"] is None and entry["version_errors"] == {}


def test_broken_models_are_listed_with_their_error(models_copy, capsys):
    (models_copy / "broken").mkdir()
    (models_copy / "broken" / "model.json").write_text("{not json")
    shutil.copytree(models_copy / TINY_MODEL, models_copy / "empty")
    shutil.rmtree(models_copy / "empty" / "1")
    (models_copy / "empty" / "model.json").write_text(
        (models_copy / TINY_MODEL / "model.json").read_text().replace(TINY_MODEL, "empty")
    )
    out, _ = listing(models_copy, capsys)
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert sorted(rows) == ["broken", "empty", TINY_MODEL]
    assert "error: " in rows["broken"] and "not a valid model card" in rows["broken"]
    assert "error: no usable version" in rows["empty"]
    assert rows[TINY_MODEL].endswith("ok")
    entries = {e["name"]: e for e in json.loads(listing(models_copy, capsys, "--json")[0])}
    assert "not a valid model card" in entries["broken"]["error"]
    assert entries["broken"]["version"] is None and entries["broken"]["versions"] == []
    assert entries[TINY_MODEL]["error"] is None


def test_a_broken_newer_version_leaves_the_older_one_listed(models_copy, capsys):
    model = models_copy / TINY_MODEL
    shutil.copytree(model / "1", model / "2")
    (model / "2" / "model.onnx").write_bytes(b"not the graph its version.json hashed")
    (entry,) = list_models(models_copy)
    assert entry.version == 1 and entry.versions == [1, 2] and entry.error is None
    assert "does not match its version's SHA-256" in entry.version_errors[2]
    (row,) = listing(models_copy, capsys)[0].splitlines()[1:]
    assert row.split()[1:3] == ["1", "1,2"] and "ok (broken v2: " in row


def test_missing_models_folder_is_one_error_line(tmp_path, capsys):
    assert main(["models", "--models-dir", str(tmp_path / "absent")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"stylecast models: error: models folder not found: {tmp_path / 'absent'}"


def test_empty_folder_lists_nothing(tmp_path, capsys):
    out, err = listing(tmp_path, capsys, "--json")
    assert json.loads(out) == [] and err == ""
    out, err = listing(tmp_path, capsys)
    assert out.splitlines()[0].startswith("NAME") and "no models in" in err


def test_network_names_match_the_training_presets():
    """serving spells the presets so it needs nothing from training; they must not drift."""
    from stylecast.training.config import NETWORK_PRESETS as TRAINING_PRESETS

    for name, preset in TRAINING_PRESETS.items():
        assert NETWORK_PRESETS[(preset.width, preset.residual_blocks, preset.architecture)] == name
    assert len(NETWORK_PRESETS) == len(TRAINING_PRESETS)
    assert network_label({"width": 24, "residual_blocks": 4}) == "width 24, 4 blocks"
    assert network_label(None) is None


def test_models_and_sheet_run_without_torch(tiny_models_dir, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(encoded_image(96))
    out = tmp_path / "sheet.png"
    result = run_without_torch(
        f"""
        from stylecast.cli import main
        assert main(["models", "--models-dir", {str(tiny_models_dir)!r}, "--json"]) == 0
        assert main(["sheet", {str(photo)!r}, "--out", {str(out)!r},
                     "--models-dir", {str(tiny_models_dir)!r}, "--max-side", "64"]) == 0
        """
    )
    assert_ok(result)
    listed, _ = json.JSONDecoder().raw_decode(result.stdout)
    assert [entry["name"] for entry in listed] == [TINY_MODEL]
    assert out.is_file()
