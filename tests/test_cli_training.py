"""`stylecast train` / `stylecast iterate` from the command line: user errors give one line and a
non-zero exit (never a traceback); a happy path; Ctrl-C saves a resumable checkpoint (SIGTERM:
see test_train.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from stylecast.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent


def stylecast_command() -> list[str]:
    """The installed `stylecast` entry point of this interpreter's environment (or, failing
    that, the same `main` through ``python -c``)."""
    script = Path(sys.executable).with_name("stylecast")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from stylecast.cli import main; sys.exit(main())"]


RANDOM_LOSS = ["--vgg-weights", "random:0", "--style-weight", "1e5", "--tv-weight", "1"]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``stylecast ARGV`` in-process; returns (exit code, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert len(error_lines) == 1, err
    for fragment in fragments:
        assert fragment in error_lines[0], (fragment, error_lines[0])


def without_log_lines(err: str) -> str:
    """stderr without the log records (e.g. the random-VGG warning banner) before an error."""
    lines = err.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("stylecast ")]
    return "\n".join(lines[errors[0] :]) if errors else err.strip()


def assert_stylecast_error(code: int, err: str, command: str, *fragments: str) -> None:
    """A StylecastError: exit 1 and exactly one error line, ``stylecast CMD: error: …``,
    after at most some log records."""
    assert_one_line_error(code, err, *fragments)
    assert code == 1
    message = without_log_lines(err)
    assert message.count("\n") == 0, err
    assert message.startswith(f"stylecast {command}: error: ")


@pytest.fixture
def iterate_args(tmp_path, content_image, style_image) -> list[str]:
    """A complete, tiny `stylecast iterate` command line; later options override earlier ones."""
    return [
        "iterate",
        "--content", str(content_image),
        "--style", str(style_image),
        "--out", str(tmp_path / "out.png"),
        "--size", "32",
        "--steps", "1",
        *RANDOM_LOSS,
    ]  # fmt: skip


@pytest.fixture
def train_args(tmp_path, content_dir, style_image) -> list[str]:
    """A complete, tiny `stylecast train` command line."""
    return [
        "train",
        "--style", str(style_image),
        "--content-dir", str(content_dir),
        "--out", str(tmp_path / "run"),
        "--image-size", "32",
        "--batch-size", "2",
        "--max-steps", "2",
        "--network", "lite",
        "--accelerator", "cpu",
        "--devices", "1",
        "--sample-every", "0",
        "--no-export",
        *RANDOM_LOSS,
    ]  # fmt: skip


# --- user errors: iterate ---------------------------------------------------------------------


def test_iterate_missing_style_image(iterate_args, tmp_path, capsys) -> None:
    missing = tmp_path / "nope.jpg"
    code, _, err = run_cli([*iterate_args, "--style", str(missing)], capsys)
    assert_stylecast_error(code, err, "iterate", "not found", str(missing))
    assert not (tmp_path / "out.png").exists()


def test_iterate_non_image_content(iterate_args, tmp_path, capsys) -> None:
    fake = tmp_path / "photo.jpg"
    fake.write_text("this is a text file, not a JPEG\n" * 10)
    code, _, err = run_cli([*iterate_args, "--content", str(fake)], capsys)
    assert_stylecast_error(code, err, "iterate", "cannot read image", str(fake))


def test_iterate_unknown_layer(iterate_args, capsys) -> None:
    code, _, err = run_cli([*iterate_args, "--style-layers", "relu1_1,relu6_1"], capsys)
    assert_stylecast_error(code, err, "iterate", "relu6_1")


def test_iterate_mismatched_layer_weights(iterate_args, capsys) -> None:
    argv = [*iterate_args, "--style-layers", "relu1_1,relu2_1", "--style-layer-weights", "1"]
    code, _, err = run_cli(argv, capsys)
    assert_stylecast_error(code, err, "iterate", "style layer")


def test_iterate_bad_vgg_weights_file(iterate_args, tmp_path, capsys) -> None:
    garbage = tmp_path / "vgg19.pth"
    garbage.write_bytes(os.urandom(512))
    code, _, err = run_cli([*iterate_args, "--vgg-weights", str(garbage)], capsys)
    assert_stylecast_error(code, err, "iterate", "not a VGG-19 state dict")
    code, _, err = run_cli([*iterate_args, "--vgg-weights", str(tmp_path / "none.pth")], capsys)
    assert_stylecast_error(code, err, "iterate", "not found")


def test_iterate_bad_random_spec(iterate_args, capsys) -> None:
    code, _, err = run_cli([*iterate_args, "--vgg-weights", "random:x"], capsys)
    assert_stylecast_error(code, err, "iterate", "random:SEED")


def test_iterate_bad_output_name(iterate_args, tmp_path, capsys) -> None:
    code, _, err = run_cli([*iterate_args, "--out", str(tmp_path / "out.gif")], capsys)
    assert_stylecast_error(code, err, "iterate", ".png or .jpg")


def test_iterate_negative_learning_rate(iterate_args, capsys) -> None:
    code, _, err = run_cli([*iterate_args, "--lr", "-1"], capsys)
    assert_stylecast_error(code, err, "iterate", "learning rate")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--size", "-5"),
        ("--size", "0"),
        ("--steps", "0"),
        ("--size", "big"),
        ("--optimizer", "sgd"),
    ],
)
def test_iterate_argument_errors(iterate_args, capsys, option, value) -> None:
    code, _, err = run_cli([*iterate_args, option, value], capsys)
    assert code == 2
    assert_one_line_error(code, err, option)


# --- user errors: train -----------------------------------------------------------------------


def test_train_missing_style_image(train_args, tmp_path, capsys) -> None:
    code, _, err = run_cli([*train_args, "--style", str(tmp_path / "nope.jpg")], capsys)
    assert_stylecast_error(code, err, "train", "style image not found")


def test_train_content_dir_without_images(train_args, tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    code, _, err = run_cli([*train_args, "--content-dir", str(empty)], capsys)
    assert_stylecast_error(code, err, "train", "no JPEG, PNG or WebP images", str(empty))
    code, _, err = run_cli([*train_args, "--content-dir", str(tmp_path / "absent")], capsys)
    assert_stylecast_error(code, err, "train", "content folder not found")


def test_train_unknown_layer(train_args, capsys) -> None:
    code, _, err = run_cli([*train_args, "--content-layers", "relu4_9"], capsys)
    assert_stylecast_error(code, err, "train", "relu4_9")


def test_train_bad_vgg_weights_file(train_args, tmp_path, capsys) -> None:
    garbage = tmp_path / "weights.pth"
    garbage.write_bytes(b"PK\x03\x04 not really a zip" * 8)
    code, _, err = run_cli([*train_args, "--vgg-weights", str(garbage)], capsys)
    assert_stylecast_error(code, err, "train", "not a VGG-19 state dict")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--max-steps", "0"], "max steps"),
        (["--precision", "fp8"], "precision"),
        (["--residual-blocks", "-1"], "residual blocks"),
        (["--lr", "0"], "learning rate"),
        (["--workers", "-2"], "workers"),
        (["--resume", "last"], "no checkpoint to resume from"),
    ],
)
def test_train_invalid_settings(train_args, capsys, extra, fragment) -> None:
    code, _, err = run_cli([*train_args, *extra], capsys)
    assert_stylecast_error(code, err, "train", fragment)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--image-size", "0"), ("--image-size", "-32"), ("--batch-size", "0"), ("--network", "xl")],
)
def test_train_argument_errors(train_args, capsys, option, value) -> None:
    code, _, err = run_cli([*train_args, option, value], capsys)
    assert code == 2
    assert_one_line_error(code, err, option)


def test_iterate_too_small_size_is_a_user_error(iterate_args, capsys) -> None:
    code, _, err = run_cli([*iterate_args, "--size", "16"], capsys)
    assert_stylecast_error(code, err, "iterate", "too small", "--size")


def test_out_paths_through_a_file_are_user_errors(train_args, iterate_args, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, _, err = run_cli([*train_args, "--out", str(blocker)], capsys)
    assert_stylecast_error(code, err, "train", "is a file")
    code, _, err = run_cli([*iterate_args, "--out", str(blocker / "x.png")], capsys)
    assert_stylecast_error(code, err, "iterate", "is a file")


def test_errors_from_a_real_process(tmp_path, content_image) -> None:
    """The installed entry point: one stderr line, exit 1, no traceback, no banner."""
    argv = [
        *stylecast_command(), "iterate",
        "--content", str(content_image), "--style", str(tmp_path / "missing.jpg"),
        "--out", str(tmp_path / "out.png"), "--size", "32", "--vgg-weights", "random:0",
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"stylecast iterate: error: image not found: {tmp_path / 'missing.jpg'}"
    ]


# --- happy path -------------------------------------------------------------------------------


def test_iterate_happy_path(iterate_args, tmp_path, capsys) -> None:
    out = tmp_path / "styled.png"
    code, stdout, err = run_cli(
        [*iterate_args, "--size", "48", "--steps", "3", "--out", str(out)], capsys
    )
    assert code == 0, err
    assert "Traceback" not in err
    assert f"wrote {out}" in stdout
    assert out.is_file() and out.stat().st_size > 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["steps"] == 3
    assert report["vgg_weights"] == "random:0"
    assert report["config"]["size"] == 48


# --- interruption -----------------------------------------------------------------------------


def _restore_default_sigint() -> None:
    # A shell or CI runner may start us with SIGINT ignored, and children inherit that;
    # Python only raises KeyboardInterrupt if SIGINT is at its default when it starts.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_training(argv: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as sink:
        return subprocess.Popen(
            [*stylecast_command(), *argv],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
            preexec_fn=_restore_default_sigint,
        )


def _interrupt_after_first_steps(proc: subprocess.Popen, samples: Path, signum: int) -> int:
    """Wait until the run has saved a sample image (a step has completed), send ``signum``;
    returns the exit code."""
    deadline = time.monotonic() + 180
    while not list(samples.glob("step_*.png")):
        if proc.poll() is not None:
            pytest.fail(f"training exited early with {proc.returncode}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("training did not complete a step within 180 s")
        time.sleep(0.2)
    proc.send_signal(signum)
    try:
        return proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"training did not stop within 120 s of signal {signum}")


def _newest_checkpoint(folder: Path) -> tuple[Path, int]:
    checkpoints = [folder / "interrupted.ckpt", folder / "last.ckpt"]
    existing = [p for p in checkpoints if p.is_file()]
    assert existing, f"no interrupted.ckpt or last.ckpt in {folder}: {list(folder.iterdir())}"
    newest = max(existing, key=lambda p: p.stat().st_mtime)
    return newest, torch.load(newest, map_location="cpu", weights_only=False)["global_step"]


@pytest.mark.slow
def test_ctrl_c_then_resume(tmp_path, train_args) -> None:
    """Ctrl-C (SIGINT) during `stylecast train` leaves a checkpoint and exits 130 with a hint;
    `--resume last` then finishes the run. (SIGTERM is covered in-process in test_train.py.)"""
    out = tmp_path / "run"
    checkpoints = out / "checkpoints"
    base = [*train_args, "--sample-every", "1", "--checkpoint-every", "1000", "--log-every", "1"]
    log = tmp_path / "train.log"

    proc = _start_training([*base, "--max-steps", "100000"], log)
    code = _interrupt_after_first_steps(proc, out / "samples", signal.SIGINT)
    text = log.read_text()
    assert code == 130, f"exit {code}; output:\n{text[-4000:]}"
    assert "Traceback" not in text
    assert "interrupted at step" in text
    assert "--resume last" in text
    _, stopped_at = _newest_checkpoint(checkpoints)
    assert stopped_at >= 1

    target = stopped_at + 2
    proc = _start_training([*base, "--max-steps", str(target), "--resume", "last"], log)
    code = proc.wait(timeout=300)
    text = log.read_text()
    assert code == 0, f"exit {code}; output:\n{text[-4000:]}"
    assert f"trained: {out}" in text
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == target
    assert not (checkpoints / "interrupted.ckpt").exists()
    assert (out / "transform.pt").is_file()
    assert json.loads((out / "config.json").read_text())["steps"] == target


@pytest.mark.slow
def test_train_exports_into_the_run_folder_unless_told(train_args, tmp_path, capsys, monkeypatch):
    """Without --models-dir the export lands inside --out, never in the current directory's
    models/; the last line says where."""
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    argv = [a for a in train_args if a != "--no-export"] + ["--export-name", "mine"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    run = tmp_path / "run"
    model = run / "models" / "mine" / "1" / "model.onnx"
    assert model.is_file()
    assert not (elsewhere / "models").exists()
    assert out.strip().splitlines()[-1] == f"exported mine v1: {model}"
    card = json.loads((run / "models" / "mine" / "model.json").read_text())
    assert card["testing_only"] is True and card["vgg_weights"] == "random:0"


@pytest.mark.slow
@pytest.mark.parametrize("styles", [1, 2], ids=["one-style", "two-styles"])
def test_ddp_on_two_cpu_processes_trains_and_exports_once(
    tmp_path, content_dir, style_images, styles
):
    """`--devices 2 --strategy ddp` on the CPU (gloo): both ranks train, only global rank zero
    reports and exports, so the model gets exactly one version (rank 1 used to crash
    renaming into the version folder rank 0 had just created). A two-style network trains
    the same way (each rank draws its own styles) and exports with both styles."""
    models = tmp_path / "models"
    chosen = [arg for path in style_images[-styles:] for arg in ("--style", str(path))]
    argv = [
        *stylecast_command(), "train", *chosen, "--content-dir", str(content_dir),
        "--out", str(tmp_path / "run"), "--image-size", "32", "--batch-size", "2",
        "--max-steps", "3", "--network", "lite", "--sample-every", "0",
        "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
        "--models-dir", str(models), "--export-name", "ddp", *RANDOM_LOSS,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Traceback" not in output
    assert [p.name for p in (models / "ddp").iterdir() if p.name.isdigit()] == ["1"]
    assert result.stdout.count("exported ddp v1") == 1
    assert result.stdout.strip().splitlines()[-1] == f"exported ddp v1: {models}/ddp/1/model.onnx"
    card = json.loads((models / "ddp" / "model.json").read_text())
    assert [style["name"] for style in card.get("styles", [])] == (
        [path.stem for path in style_images[-styles:]] if styles > 1 else []
    )


@pytest.mark.parametrize(
    "device, fragment", [("cuda:7", "CUDA GPU"), ("mps", "only cpu and cuda"), ("c:p:u", "bad")]
)
def test_iterate_device_that_is_not_here_is_a_user_error(iterate_args, capsys, device, fragment):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has eight GPUs")
    code, _, err = run_cli([*iterate_args, "--device", device], capsys)
    assert_stylecast_error(code, err, "iterate", fragment)


def test_iterate_reports_its_device_and_best_step(iterate_args, tmp_path, capsys) -> None:
    code, out, err = run_cli([*iterate_args, "--device", "cpu", "--steps", "3"], capsys)
    assert code == 0, err
    assert "on cpu" in out and "best of 3 steps" in out
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["device"] == "cpu" and 0 <= report["best_step"] <= 3


def test_train_missing_validation_folder_is_named_as_such(train_args, tmp_path, capsys) -> None:
    code, _, err = run_cli([*train_args, "--val-dir", str(tmp_path / "nope")], capsys)
    assert_stylecast_error(code, err, "train", "validation folder not found", "nope")
