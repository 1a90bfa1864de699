"""`stylecast stylise` (offline) and `stylecast client stylise` as a hostile user tries them:
bad files among good ones, outputs that cannot be written, re-runs in place, `-` for stdin
and stdout, --out naming one file for many inputs, and loading only the model asked for."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serving_fixtures import REPO_ROOT, TINY_MODEL, encoded_image

from stylecast.cli import main
from stylecast.cli.stylise import OUTPUT_FORMATS
from stylecast.errors import InputsFailed, StylecastError
from stylecast.serving.image_files import InputError, read_bounded
from stylecast.serving.imaging import FILE_ENCODINGS
from stylecast.serving.runtime import StyleModel

pytest_plugins = ("serving_fixtures",)


def photo(path: Path, side: int = 64, fmt: str = "JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoded_image(side, fmt))
    return path


def stylise(models_dir: Path, *args: str) -> int:
    return main(["stylise", *args, "--model", TINY_MODEL, "--models-dir", str(models_dir)])


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if ": error: " in line]


class Pipe(io.TextIOWrapper):
    """A stdin or stdout that is a pipe, not a terminal: its ``buffer`` holds the bytes."""

    def __init__(self, data: bytes = b"") -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8")

    def data(self) -> bytes:
        self.flush()
        buffer = self.buffer
        assert isinstance(buffer, io.BytesIO)
        return buffer.getvalue()


def test_a_bad_image_among_good_ones_is_named_and_the_others_are_written(
    tiny_models_dir, tmp_path, capsys
):
    folder = tmp_path / "photos"
    photo(folder / "a.jpg")
    photo(folder / "b.png", fmt="PNG")
    Image.new("RGB", (4, 4)).save(folder / "small.png")
    assert stylise(tiny_models_dir, str(folder)) == InputsFailed.exit_code == 3
    out, err = capsys.readouterr()
    assert (folder / "a.tiny.jpg").is_file() and (folder / "b.tiny.png").is_file()
    assert not (folder / "small.tiny.png").exists()
    errors = error_lines(err)
    assert len(errors) == 2
    assert f"{folder / 'small.png'}: image is 4x4; the network needs at least" in errors[0]
    assert errors[1] == (
        "stylecast stylise: error: 2 of 3 written; 1 could not be stylised (reported above)"
    )
    assert out.split() == [str(folder / "a.tiny.jpg"), str(folder / "b.tiny.png")]


def test_all_written_says_so_and_exits_0(tiny_models_dir, tmp_path, capsys):
    assert stylise(tiny_models_dir, str(photo(tmp_path / "a.jpg"))) == 0
    out, err = capsys.readouterr()
    assert out.split() == [str(tmp_path / "a.tiny.jpg")]
    assert "stylecast stylise: 1 of 1 written" in err and not error_lines(err)


def test_an_output_that_cannot_be_written_is_one_line_naming_it(tiny_models_dir, tmp_path, capsys):
    source = str(photo(tmp_path / "a.jpg"))
    (tmp_path / "file.txt").write_text("not a folder")
    targets = {
        "/proc/out.jpg": "cannot write /proc/out.jpg: ",
        str(tmp_path / "file.txt" / "out.jpg"): f"{tmp_path / 'file.txt'} is not a folder",
    }
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        targets[str(locked / "out.jpg")] = f"cannot write {locked / 'out.jpg'}: Permission denied"
    for target, expected in targets.items():
        assert stylise(tiny_models_dir, source, "--out", target) == 3
        errors = error_lines(capsys.readouterr().err)
        assert len(errors) == 1 and expected in errors[0] and target in errors[0], errors
    assert not list(tmp_path.glob("**/.*.tmp"))  # no temporary file left behind


def test_running_again_in_place_skips_earlier_outputs(models_copy, tmp_path, capsys):
    (models_copy / "other").mkdir()  # another model's outputs are earlier outputs too
    folder = tmp_path / "photos"
    photo(folder / "a.jpg")
    photo(folder / "b.other.jpg")
    assert stylise(models_copy, str(folder)) == 0
    assert "skipping 1 earlier output" in capsys.readouterr().err
    assert stylise(models_copy, str(folder)) == 0
    assert "skipping 2 earlier output" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg", "a.tiny.jpg", "b.other.jpg"]
    assert stylise(models_copy, str(folder / "a.tiny.jpg")) == 0  # named: stylised anyway
    assert (folder / "a.tiny.tiny.jpg").is_file()
    for name in os.listdir(folder):
        if name != "a.jpg":
            (folder / name).unlink()
    (folder / "a.jpg").rename(folder / "a.tiny.jpg")
    assert stylise(models_copy, str(folder)) == 1
    assert "(only 1 earlier outputs)" in capsys.readouterr().err


def test_stdin_to_stdout_carries_the_image_bytes_only(
    tiny_models_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    for fmt, args, expected in (
        ("PNG", [], "PNG"),
        ("JPEG", [], "JPEG"),
        ("PNG", ["--format", "webp"], "WEBP"),
    ):
        stdout = Pipe()
        monkeypatch.setattr(sys, "stdin", Pipe(encoded_image(64, fmt)))
        monkeypatch.setattr(sys, "stdout", stdout)
        assert stylise(tiny_models_dir, "-", "--out", "-", *args) == 0
        with Image.open(io.BytesIO(stdout.data())) as image:
            assert image.format == expected and image.size == (64, 43)
        assert not error_lines(capsys.readouterr().err)
    stdout = Pipe()
    monkeypatch.setattr(sys, "stdin", Pipe(encoded_image(64, "PNG")))
    monkeypatch.setattr(sys, "stdout", stdout)
    assert stylise(tiny_models_dir, "-") == 0  # from stdin, the output defaults to stdout
    assert stdout.data().startswith(b"\x89PNG")
    monkeypatch.setattr(sys, "stdout", stdout := Pipe())
    assert stylise(tiny_models_dir, str(photo(tmp_path / "a.png", fmt="PNG")), "--out", "-") == 0
    assert stdout.data().startswith(b"\x89PNG")
    assert sorted(os.listdir(tmp_path)) == ["a.png"]  # no file or folder named "-"


def test_stdin_is_read_up_to_the_byte_limit_and_no_further(tiny_models_dir, capsys, monkeypatch):
    class Endless:
        def __init__(self) -> None:
            self.asked: list[int] = []

        def read(self, size: int = -1) -> bytes:
            assert size > 0, "an unbounded read of stdin"
            self.asked.append(size)
            return b"\xff" * size

    endless = Endless()
    with pytest.raises(InputError, match="stdin has more than 1000 bytes"):
        read_bounded("-", 1000, endless)  # type: ignore[arg-type]
    assert endless.asked == [1001]
    monkeypatch.setattr(sys, "stdin", Pipe(encoded_image(64)))
    monkeypatch.setattr(sys, "stdout", Pipe())
    assert stylise(tiny_models_dir, "-", "--out", "-", "--max-bytes", "100") == 3
    assert error_lines(capsys.readouterr().err) == [
        "stylecast stylise: error: stdin has more than 100 bytes, the limit for one image"
    ]


def test_a_pipe_through_the_real_command(tiny_models_dir):
    command = [sys.executable, "-m", "stylecast", "stylise", "-", "--out", "-",
               "--model", TINY_MODEL, "--models-dir", str(tiny_models_dir)]  # fmt: skip
    result = subprocess.run(
        command, input=encoded_image(64), capture_output=True, timeout=120, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr.decode()
    with Image.open(io.BytesIO(result.stdout)) as image:
        assert image.format == "JPEG" and image.size == (64, 43)
    assert b"\xff\xd8" not in result.stderr and b"1 of 1 written" in result.stderr
    empty = subprocess.run(command, input=b"", capture_output=True, timeout=120, cwd=REPO_ROOT)
    assert empty.returncode == 3 and empty.stdout == b""
    assert empty.stderr.decode().endswith("stylecast stylise: error: stdin: empty image data\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a.jpg", "b.jpg", "--out", "one.jpg"], "--out one.jpg names one file, but there are 2"),
        (["a.jpg", "b.jpg", "--out", "-"], "--out - (stdout) takes exactly one input image; got 2"),
        (["-", "a.jpg"], "- (stdin) must be the only input"),
        (["-", "--out", "folder"], "with - (stdin) as input, --out must be - or an image file"),
        (["a.jpg", "--out", "x.jpg", "--format", "png"], "--format png disagrees with"),
        (["a.jpg", "--out", "notes.txt"], "--out notes.txt exists and is not a folder"),
        (["d1", "d2", "--out", "o"], "would both be written to"),
        (["missing.jpg"], "input not found: missing.jpg"),
    ],
    ids=["one-file-out", "stdout-many", "stdin-and-files", "stdin-to-folder", "format-conflict",
         "out-is-a-file", "collision", "missing"],
)  # fmt: skip
def test_usage_errors_are_one_line_and_write_nothing(
    tiny_models_dir, tmp_path, capsys, monkeypatch, args, message
):
    monkeypatch.chdir(tmp_path)
    for name in ("a.jpg", "b.jpg", "d1/x.jpg", "d2/x.jpg"):
        photo(tmp_path / name)
    (tmp_path / "notes.txt").write_text("notes")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert stylise(tiny_models_dir, *args) == StylecastError.exit_code == 1
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and message in errors[0], errors
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_only_the_model_asked_for_is_loaded(models_copy, tmp_path, capsys, monkeypatch):
    shutil.copytree(models_copy / TINY_MODEL, models_copy / "second")
    broken = models_copy / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{not json")
    loaded: list[str] = []
    real_init = StyleModel.__init__

    def counting_init(self, path, card, version, options):
        loaded.append(card.name)
        real_init(self, path, card, version, options)

    monkeypatch.setattr(StyleModel, "__init__", counting_init)
    assert stylise(models_copy, str(photo(tmp_path / "a.jpg"))) == 0
    assert loaded == [TINY_MODEL]
    capsys.readouterr()
    source = str(tmp_path / "a.jpg")
    assert main(["stylise", source, "--model", "nope", "--models-dir", str(models_copy)]) == 1
    assert error_lines(capsys.readouterr().err) == [
        f"stylecast stylise: error: unknown model 'nope' "
        f"(models in {models_copy}: broken, second, {TINY_MODEL})"
    ]
    assert main(["stylise", source, "--model", "broken", "--models-dir", str(models_copy)]) == 1
    (error,) = error_lines(capsys.readouterr().err)
    assert error.startswith("stylecast stylise: error: model 'broken' cannot be loaded: ")
    assert error.endswith(f"(models in {models_copy}: broken, second, {TINY_MODEL})")
    assert loaded == [TINY_MODEL]


def test_the_cli_spellings_match_the_library():
    """The CLI spells these out so --help imports nothing heavy; they must not drift."""
    from stylecast.cli import stylise as cli
    from stylecast.serving import stylise as library

    assert OUTPUT_FORMATS == FILE_ENCODINGS
    assert cli.DEFAULT_MAX_BYTES == library.DEFAULT_MAX_BYTES


# -- client stylise -------------------------------------------------------------------------


def test_client_stylise_reads_stdin_and_writes_stdout(shared_server, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server = ["--server", shared_server.address, "--model", TINY_MODEL]
    stdout = Pipe()
    monkeypatch.setattr(sys, "stdin", Pipe(encoded_image(64, "PNG")))
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["client", "stylise", "-", "-", *server]) == 0
    with Image.open(io.BytesIO(stdout.data())) as image:
        assert image.format == "PNG" and image.size == (64, 43)  # the input's format
        assert np.asarray(image).shape == (43, 64, 3)
    assert capsys.readouterr().err.startswith("stdout: 64x43, tiny v1; server ")
    monkeypatch.setattr(sys, "stdout", stdout := Pipe())
    source = str(photo(tmp_path / "in.jpg"))
    assert main(["client", "stylise", source, "-", "--format", "webp", *server]) == 0
    assert stdout.data()[8:12] == b"WEBP"
    assert sorted(os.listdir(tmp_path)) == ["in.jpg"]  # no file named "-"


def test_client_stylise_unwritable_output_is_one_line(shared_server, tmp_path, capsys):
    source = str(photo(tmp_path / "in.jpg"))
    args = ["client", "stylise", source, "/proc/out.jpg", "--server", shared_server.address]
    assert main([*args, "--model", TINY_MODEL]) == 1
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "cannot write /proc/out.jpg: " in errors[0]
