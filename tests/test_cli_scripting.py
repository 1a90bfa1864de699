"""Using stylecast from scripts: distinct exit codes (stylecast.errors), progress bars only on
a terminal, `stylecast validate --json` on stdout with the human lines on stderr, and a
closed stdout pipe ending a command quietly."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from serving_fixtures import REPO_ROOT, TINY_MODEL, encoded_image
from test_validate import make_model

from stylecast.cli import main
from stylecast.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INPUTS_FAILED,
    EXIT_INTERRUPTED,
    EXIT_SERVER,
    EXIT_USAGE,
    EXIT_USER_ERROR,
    InputsFailed,
    Interrupted,
    StylecastError,
)
from stylecast.progress import show_progress
from stylecast.serving.client import ServerError

pytest_plugins = ("serving_fixtures",)


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_error_line(err: str, command: str) -> str:
    """The one line of stderr from the command itself (log records aside)."""
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("stylecast ")]
    assert line.startswith(f"stylecast {command}: ")
    return line


# -- exit codes ----------------------------------------------------------------------------


def test_each_kind_of_error_has_its_own_code():
    codes = [EXIT_USER_ERROR, EXIT_USAGE, EXIT_INPUTS_FAILED, EXIT_SERVER, EXIT_INTERRUPTED]
    assert codes == [1, 2, 3, 4, 130] and EXIT_BROKEN_PIPE == 141
    assert StylecastError.exit_code == EXIT_USER_ERROR
    assert InputsFailed.exit_code == EXIT_INPUTS_FAILED
    assert ServerError.exit_code == EXIT_SERVER
    assert Interrupted.exit_code == EXIT_INTERRUPTED


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sheet", "photo.jpg"])  # --out is required
    assert exit_info.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_missing_file_exits_1(tiny_models_dir, tmp_path, capsys):
    missing = str(tmp_path / "missing.jpg")
    args = ["stylise", missing, "--model", TINY_MODEL, "--models-dir", str(tiny_models_dir)]
    assert main(args) == 1
    assert "input not found" in one_error_line(capsys.readouterr().err, "stylise")


def test_an_input_that_cannot_be_processed_exits_3(tiny_models_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"no image in here")
    args = ["stylise", str(bad), "--model", TINY_MODEL, "--models-dir", str(tiny_models_dir)]
    assert main(args) == 3
    assert "not a decodable" in one_error_line(capsys.readouterr().err, "stylise")


def test_unreachable_server_exits_4(capsys):
    server = f"127.0.0.1:{free_port()}"
    assert main(["client", "models", "--server", server, "--timeout", "1"]) == 4
    assert "UNAVAILABLE" in one_error_line(capsys.readouterr().err, "client")


def test_ctrl_c_exits_130(tiny_models_dir, monkeypatch, capsys):
    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr("stylecast.serving.catalog.list_models", interrupted)
    assert main(["models", "--models-dir", str(tiny_models_dir)]) == 130
    assert one_error_line(capsys.readouterr().err, "models") == "stylecast models: interrupted"


def test_a_closed_stdout_ends_quietly(tiny_models_dir):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone, as after `| head`
    try:
        result = subprocess.run(
            [sys.executable, "-m", "stylecast", "models", "--models-dir", str(tiny_models_dir)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, cwd=REPO_ROOT,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert result.returncode == EXIT_BROKEN_PIPE and result.stderr == ""


# -- progress bars -------------------------------------------------------------------------


def test_progress_only_on_a_terminal(monkeypatch):
    assert show_progress() is False  # pytest captures stderr: not a terminal
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert show_progress() is True
    assert show_progress(False) is False
    monkeypatch.setattr(sys, "stderr", None)
    assert show_progress() is False


def test_lightning_bar_only_on_a_terminal(tmp_path, monkeypatch):
    import torch

    from stylecast.training.train import RunOptions, build_trainer

    def trainer(folder: str):
        run = RunOptions(out=str(tmp_path / folder), accelerator="cpu", devices="1")
        return build_trainer(run, torch.zeros(1, 3, 8, 8), validate=False)

    assert trainer("captured").progress_bar_callback is None
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert trainer("terminal").progress_bar_callback is not None


def test_video_bar_writes_nothing_when_captured(capsys):
    import numpy as np

    from stylecast.training.temporal import temporal_stability

    frames = [np.full((16, 16, 3), i, np.uint8) for i in range(3)]
    outcome = temporal_stability(frames, lambda frame: frame, progress=True)
    assert outcome.record.frames == 3
    assert capsys.readouterr().err == ""


# -- validate --json -----------------------------------------------------------------------


def test_validate_json_on_stdout_and_no_bar_frames(tmp_path, style_image, capsys):
    models = make_model(tmp_path, style_image)
    content = tmp_path / "content"
    content.mkdir()
    (content / "photo.jpg").write_bytes(encoded_image(64))
    out = tmp_path / "report"
    args = [
        "validate",
        "--model",
        "tiny",
        "--models-dir",
        str(models),
        "--content-dir",
        str(content),
        "--out",
        str(out),
        "--size",
        "32",
        "--iterate-steps",
        "2",
        "--fast-repeats",
        "1",
        "--json",
    ]  # fmt: skip — progress left on: the bars must stay silent when stderr is captured
    assert main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary == json.loads((out / "summary.json").read_text())
    assert [image["name"] for image in summary["images"]] == ["photo"]
    assert "report: " in captured.err and "report: " not in captured.out
    assert "\r" not in captured.err
    assert Path(out / "report.html").is_file()
