"""Video with no server: `stylecast stylise` on a video file or a folder of frames (frame
count, rate and size kept, --max-side, frames out, --json, --smooth), bad videos and outputs
refused in one line, no half-written file under the final name, and `stylecast camera --local`
headless. A 6-frame 64x48 synthetic video and the bundled lite model; no torch needed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stylecast.cli import main
from stylecast.serving import video

cv2 = pytest.importorskip("cv2")

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS = REPO_ROOT / "models"
MODEL = "great_wave_lite"
FPS = 12.5
SIZE = (64, 48)  # width, height


def synthetic_frames(count: int = 6) -> list[np.ndarray]:
    """BGR frames: a gradient with a square moving 4 px a frame."""
    width, height = SIZE
    ramp = np.linspace(40, 200, width, dtype=np.float32)[None, :, None]
    base = np.broadcast_to(ramp, (height, width, 3)).copy()
    base[..., 1] = np.linspace(60, 180, height, dtype=np.float32)[:, None]
    frames = []
    for index in range(count):
        frame = base.copy()
        frame[12:28, 8 + 4 * index : 24 + 4 * index] = (30, 90, 220)
        frames.append(frame.astype(np.uint8))
    return frames


def write_video(path: Path, count: int = 6) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    assert writer.isOpened()
    for frame in synthetic_frames(count):
        writer.write(frame)
    writer.release()
    return path


def read_video(path: Path) -> tuple[int, float, tuple[int, int]]:
    """Frames, frame rate and (width, height) of a video, counted by decoding it."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    count, size = 0, (0, 0)
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count, size = count + 1, (frame.shape[1], frame.shape[0])
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return count, fps, size


def stylise(*args: str) -> int:
    return main(["stylise", *args, "--model", MODEL, "--models-dir", str(MODELS)])


def one_error(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if not line.startswith("INFO ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.avi")


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_a_video_keeps_its_frames_rate_and_size(clip, tmp_path, capsys, suffix):
    out = tmp_path / f"out{suffix}"
    assert stylise(str(clip), "--out", str(out)) == 0
    assert read_video(out) == (6, FPS, SIZE)
    assert f"{out}: 6 frames, 64x48 at 12.5 fps" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_default_output_is_beside_the_input_and_max_side_is_honoured(clip, capsys):
    assert stylise(str(clip), "--max-side", "32") == 0
    assert read_video(clip.with_name(f"clip.{MODEL}.avi")) == (6, FPS, (32, 24))


def test_json_lines_for_a_video_and_for_images(clip, tmp_path, capsys):
    assert stylise(str(clip), "--out", str(tmp_path / "o.mp4"), "--json", "--smooth", "0.5") == 0
    out, err = capsys.readouterr()
    record = json.loads(out)  # stdout holds the JSON alone
    assert record["input"] == str(clip) and record["output"] == str(tmp_path / "o.mp4")
    assert (record["model"], record["version"]) == (MODEL, 1)
    assert (record["size"], record["frames"], record["fps"]) == ([64, 48], 6, FPS)
    assert record["seconds"] > 0 and record["flicker"]["ratio"] > 0
    assert "6 frames" in err  # the human line went to stderr
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, frame in enumerate(synthetic_frames(2)):
        cv2.imwrite(str(frames / f"f{index}.png"), frame)
    assert stylise(str(frames), "--json", "--out", str(tmp_path / "styled")) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["input"], r["size"]) for r in records] == [
        (str(frames / "f0.png"), [64, 48]),
        (str(frames / "f1.png"), [64, 48]),
    ]
    assert all(r["output"].startswith(str(tmp_path / "styled")) for r in records)
    broken = _write(tmp_path / "broken.mp4", b"not a video" * 50)
    assert stylise(str(broken), "--json", "--out", str(tmp_path / "b.mp4")) == 3
    out, err = capsys.readouterr()
    assert json.loads(out)["error"] in one_error(err)


def test_a_folder_of_frames_to_frames_and_to_a_video(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, frame in enumerate(synthetic_frames(6)):  # frame_2 sorts before frame_10
        cv2.imwrite(str(frames / f"frame_{index * 4}.jpg"), frame)
    styled = tmp_path / "styled"
    assert stylise(str(frames), "--frames", "--out", str(styled), "--smooth", "0.3") == 0
    names = sorted(p.name for p in styled.iterdir())
    assert names == sorted(f"frame_{i * 4}.{MODEL}.jpg" for i in range(6))
    assert cv2.imread(str(styled / names[0])).shape == (48, 64, 3)
    movie = tmp_path / "movie.mp4"
    assert stylise(str(frames), "--out", str(movie), "--fps", "10") == 0
    assert read_video(movie) == (6, 10.0, SIZE)
    assert stylise(str(frames), "--frames") == 0  # beside the frames; scanned again: skipped
    assert len(list(frames.glob(f"*.{MODEL}.jpg"))) == 6
    assert stylise(str(frames), "--frames") == 0
    assert len(list(frames.iterdir())) == 12


@pytest.mark.parametrize(
    ("make", "out", "message"),
    [
        (lambda d: d / "missing.mp4", "o.mp4", "input not found: {src}"),
        (lambda d: _write(d / "broken.mp4", b"not a video" * 50), "o.mp4",
         "cannot read video {src}: not a video OpenCV can decode"),
        (lambda d: _write(d / "empty.avi", b""), "o.avi", "cannot read video {src}"),
        (lambda d: write_video(d / "in.avi"), "o.xyz", "cannot write video {out}: choose a .mp4"),
        (lambda d: write_video(d / "in.avi"), "in.avi", "--out {out} is the input video"),
        (lambda d: write_video(d / "in.avi"), "o.png", "--out {out} is an image"),
    ],
)  # fmt: skip
def test_bad_videos_and_outputs_are_one_line_and_a_non_zero_exit(
    tmp_path, capsys, make, out, message
):
    source = make(tmp_path)
    target = tmp_path / out
    code = stylise(str(source), "--out", str(target))
    line = one_error(capsys.readouterr().err)
    assert code != 0
    assert line.startswith("stylecast stylise: error: ")
    assert message.format(src=source, out=target) in line
    assert out == "in.avi" or not target.exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_an_interrupted_run_leaves_no_file_under_the_final_name(clip, tmp_path, monkeypatch):
    out = tmp_path / "out.mp4"
    calls = []

    def interrupt(self, frame):
        calls.append(frame)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, frame)

    original = video.FrameStyliser.__call__
    monkeypatch.setattr(video.FrameStyliser, "__call__", interrupt)
    assert stylise(str(clip), "--out", str(out)) == 130
    assert list(tmp_path.iterdir()) == [clip]


def test_smooth_needs_video(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.png"), synthetic_frames(1)[0])
    assert stylise(str(frames), "--smooth", "0.5") == 1
    assert "--frames" in one_error(capsys.readouterr().err)


def test_camera_local_writes_a_video_headless(clip, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = tmp_path / "camera.mp4"
    args = ["camera", "--local", "--models-dir", str(MODELS), "--model", MODEL,
            "--video", str(clip), "--smooth", "0.5"]  # fmt: skip
    assert main([*args, "--out", str(out)]) == 0
    assert "6 frames stylised of 6 sent (0 dropped, 0 errors)" in capsys.readouterr().out
    assert read_video(out) == (6, FPS, SIZE)
    assert main(args) == 1  # no screen and no --out
    assert "pass --out" in one_error(capsys.readouterr().err)


def test_video_and_camera_local_run_without_torch(clip, tmp_path):
    from test_no_torch import assert_ok, run_without_torch

    result = run_without_torch(
        """
        import os
        from stylecast.cli import main
        os.environ.pop("DISPLAY", None)
        os.environ.pop("WAYLAND_DISPLAY", None)
        clip, model, models, out_a, out_b = sys.argv[1:]
        common = ["--model", model, "--models-dir", models]
        assert main(["stylise", clip, "--out", out_a, "--smooth", "0.5", *common]) == 0
        assert main(["camera", "--local", "--video", clip, "--out", out_b, *common]) == 0
        """,
        str(clip), MODEL, str(MODELS), str(tmp_path / "a.mp4"), str(tmp_path / "b.avi"),
    )  # fmt: skip
    assert_ok(result)
    assert read_video(tmp_path / "a.mp4")[0] == read_video(tmp_path / "b.avi")[0] == 6
