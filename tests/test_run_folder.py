"""The training run folder contract (``training/run_folder.py``): one writer and one reader
of config.json and transform.pt, full-precision losses, and an export path free of Lightning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stylecast.errors import StylecastError
from stylecast.training.run_folder import RunFolder, RunRecord, read_trained


def record(**changes) -> RunRecord:
    values = dict(
        train={"network": {"width": 16, "residual_blocks": 3}},
        vgg_weights="random:0",
        style_sha256="ab" * 32,
        commands=["stylecast train a", "stylecast train --resume last a"],
        steps=12,
        final_losses={"style": 1.234567891e-7, "total": 0.5},
    )
    return RunRecord(**{**values, **changes})


def test_record_round_trips_with_full_precision(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    folder.write_record(record())
    again = folder.read_record()
    assert again == record()
    assert again.final_losses["style"] == 1.234567891e-7  # not rounded to 1e-07 or 0
    data = json.loads(folder.config_path.read_text())
    assert data["command"] == "stylecast train a && stylecast train --resume last a"
    assert not [p for p in folder.path.iterdir() if p.name.startswith(".")]


def test_weights_and_record_read_back_as_a_finished_run(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    folder.write_record(record())
    assert not folder.is_finished()
    state = {"w": torch.arange(4.0)}
    folder.save_weights(state)
    trained = read_trained(folder.path)
    assert torch.equal(trained.state["w"], state["w"]) and trained.record.steps == 12


def test_bad_record_is_a_clear_error(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.config_path.write_text('{"train": {}}')
    with pytest.raises(StylecastError, match="not a valid run record"):
        folder.read_record()


@pytest.mark.slow
def test_importing_export_does_not_import_lightning() -> None:
    code = (
        "import sys, stylecast.training.export\n"
        "assert 'lightning' not in sys.modules, 'export imported lightning'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
