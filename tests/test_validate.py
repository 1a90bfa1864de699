"""`stylecast validate`: scoring, ratios, the iterative cache, temporal stability, the report
files and bad input. A seeded random lite network exported to ONNX, 64 px, a few L-BFGS steps."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import statistics
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from model_factory import make_run
from PIL import Image

import stylecast.training.validate as validate_module
from stylecast.cli import main
from stylecast.errors import Interrupted, StylecastError
from stylecast.training.config import LossConfig, to_dict
from stylecast.training.export import export_model
from stylecast.training.image_metrics import psnr, ssim
from stylecast.training.images import load_image, save_image
from stylecast.training.report import json_safe, log_ticks, nice_ticks, write_report
from stylecast.training.validate import (
    IterativeCache,
    ValidateOptions,
    aggregate,
    cache_key,
    first_step_below,
    ratio,
    read_frames,
    resolve_style,
    temporal_stability,
    validate_model,
)

SIZE = 64
STEPS = 8
LOSS = LossConfig(style_weight=1e5, tv_weight=1.0)  # suits the calibrated random VGG


def make_model(root: Path, style: Path) -> Path:
    """A models folder holding ``tiny``: a seeded random lite TransformNet, exported."""
    export_model(make_run(root / "run", style, image_size=SIZE, loss=LOSS), "tiny", root / "models")
    return root / "models"


def panning_frames(count: int = 6, seed: int = 0) -> list[np.ndarray]:
    """A synthetic camera pan: a 48×64 window sliding 1 px per frame over smooth noise."""
    rng = np.random.default_rng(seed)
    field = (rng.random((6, 10, 3)) * 255).astype(np.uint8)
    scene = np.asarray(Image.fromarray(field).resize((64 + count, 48), Image.BICUBIC))
    return [scene[:, i : i + 64].copy() for i in range(count)]


def static_frames(count: int = 6, noise: float = 2.0, seed: int = 0) -> list[np.ndarray]:
    """A static scene as a camera films it: the same picture plus a little sensor noise."""
    rng = np.random.default_rng(seed)
    scene = panning_frames(1, seed)[0].astype(np.float64)
    return [
        np.clip(scene + rng.normal(0, noise, scene.shape), 0, 255).round().astype(np.uint8)
        for _ in range(count)
    ]


def noisy(seed: int = 1, sigma: float = 20.0):
    """A 'network' that returns its input plus fresh noise every frame (pure flicker)."""
    rng = np.random.default_rng(seed)

    def stylise(frame: np.ndarray) -> np.ndarray:
        out = frame.astype(np.float64) + rng.normal(0, sigma, frame.shape)
        return np.clip(out, 0, 255).round().astype(np.uint8)

    return stylise


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, style_image: Path, content_images: list[Path]):
    root = tmp_path_factory.mktemp("validate")
    models = make_model(root, style_image)
    content = root / "content"
    save_image(load_image(content_images[0], 64), content / f"{content_images[0].stem}.jpg")
    save_image(load_image(content_images[-1], 72), content / "sub" / "wide.png")
    frames = root / "frames"
    frames.mkdir()
    for index, frame in enumerate(panning_frames()):
        Image.fromarray(frame).save(frames / f"frame_{index:03d}.png")
    return SimpleNamespace(root=root, models=models, content=content, frames=frames)


def cli_args(setup, out: Path, *extra: str) -> list[str]:
    return [
        "validate", "--model", "tiny", "--models-dir", str(setup.models),
        "--content-dir", str(setup.content), "--out", str(out), "--size", str(SIZE),
        "--iterate-steps", str(STEPS), "--no-progress", "--fast-repeats", "1", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def report(setup) -> Path:
    out = setup.root / "report"
    assert main(cli_args(setup, out, "--video", str(setup.frames))) == 0
    return out


@pytest.fixture(scope="module")
def summary(report: Path) -> dict:
    return json.loads((report / "summary.json").read_text())


# --- the report ---------------------------------------------------------------------------------


class TagChecker(HTMLParser):
    """Checks that elements nest and close properly; collects img sources and svg count."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input", "line", "polyline", "rect"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []
        self.svgs = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag == "svg":
            self.svgs += 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()


def test_every_report_file_is_written_and_parses(
    report: Path, summary: dict, content_images: list[Path]
) -> None:
    assert [r["name"] for r in summary["images"]] == [content_images[0].stem, "sub__wide"]
    pngs = [report / r[key] for r in summary["images"] for key in ("grid", "chart")]
    pngs.append(report / summary["video"]["strip"])
    for path in pngs:
        with Image.open(path) as image:
            image.verify()
    with Image.open(report / summary["images"][0]["grid"]) as grid:
        assert grid.width > 4 * SIZE  # four panels side by side
    checker = TagChecker()
    html = (report / "report.html").read_text()
    checker.feed(html)
    checker.close()
    assert checker.stack == [], f"unclosed: {checker.stack}"
    assert checker.svgs == 2  # one loss chart per content image
    assert all((report / src).is_file() for src in checker.images)
    assert len(checker.images) == 3
    md = (report / "report.md").read_text()
    assert "| image | no stylisation | iterative | fast |" in md
    assert "## Temporal stability" in md
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (report / target).is_file(), target
    assert summary["model"]["vgg_weights"] == "random:0"
    assert summary["model"]["testing_only"] is True
    assert summary["settings"]["loss"] == json.loads(json.dumps(to_dict(LOSS)))  # the model's
    assert summary["settings"]["size"] == SIZE
    assert all(len(r["history"]) == STEPS for r in summary["images"])


def test_iterative_output_beats_the_unstylised_content(summary: dict) -> None:
    for record in summary["images"]:
        losses = record["losses"]
        assert losses["iterative"]["total"] < losses["content_image"]["total"]
        assert losses["content_image"]["content"] == 0.0  # the content image is its own target
        assert record["iterative_below_content_baseline"] is True


def test_ratios_are_computed_from_the_recorded_figures(summary: dict) -> None:
    record = summary["images"][0]
    fast, iterative = record["losses"]["fast"], record["losses"]["iterative"]
    # by hand: every ratio is fast / iterative of the recorded losses
    for term in ("content", "style", "tv", "total"):
        assert record["ratios"][term] == pytest.approx(fast[term] / iterative[term], rel=1e-12)
    total = fast["content"] * LOSS.content_weight + fast["style"] * LOSS.style_weight
    assert fast["total"] == pytest.approx(total + fast["tv"] * LOSS.tv_weight, rel=1e-5)
    seconds = record["seconds"]
    assert record["speedup"] == pytest.approx(seconds["iterative"] / seconds["fast"])
    step = record["beats_fast_at_step"]
    history = record["history"]
    if step is None:
        assert min(history) > fast["total"]
    else:
        assert history[step - 1] <= fast["total"] < min([math.inf, *history[: step - 1]])
    ratios = [r["ratios"]["total"] for r in summary["images"]]
    assert summary["aggregate"]["mean"]["ratio_total"] == pytest.approx(statistics.fmean(ratios))
    assert summary["aggregate"]["median"]["ratio_total"] == pytest.approx(statistics.median(ratios))
    distances = record["distances"]
    assert -1.0 <= distances["ssim"] < 1.0 and distances["psnr_db"] > 0


def test_temporal_figure_of_the_video(summary: dict) -> None:
    video = summary["video"]
    assert video["frames"] == 6
    assert video["flicker_ratio"] == pytest.approx(
        video["stylised_change"] / video["content_change"]
    )


def test_video_alone(setup, tmp_path: Path) -> None:
    options = ValidateOptions(size=SIZE, video=str(setup.frames), progress=False)
    validation = validate_model("tiny", None, tmp_path, setup.models, options)
    write_report(validation, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["images"] == [] and summary["aggregate"] is None
    assert summary["video"]["flicker_ratio"] > 0
    checker = TagChecker()
    checker.feed((tmp_path / "report.html").read_text())
    assert checker.stack == [] and checker.images == [summary["video"]["strip"]]
    with pytest.raises(StylecastError, match="nothing to validate"):
        validate_model("tiny", None, tmp_path, setup.models, ValidateOptions(size=SIZE))


def test_second_run_reuses_the_cache(setup, report: Path, summary: dict, monkeypatch) -> None:
    def must_not_run(*args, **kwargs):
        raise AssertionError("the iterative optimisation ran again")

    monkeypatch.setattr(validate_module, "stylise_iteratively", must_not_run)
    again = validate_model(
        "tiny", setup.content, report, setup.models,
        ValidateOptions(size=SIZE, iterate_steps=STEPS, progress=False, fast_repeats=1),
    )  # fmt: skip
    for first, second in zip(summary["images"], again.summary["images"], strict=True):
        assert first["cached"] is False and second["cached"] is True
        assert second["cache_key"] == first["cache_key"]
        assert second["seconds"]["iterative"] == first["seconds"]["iterative"]
        assert second["losses"]["iterative"] == pytest.approx(first["losses"]["iterative"])


def test_ctrl_c_leaves_a_usable_cache(setup, tmp_path: Path, monkeypatch, capsys) -> None:
    real = validate_module.stylise_iteratively
    calls = []

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(validate_module, "stylise_iteratively", interrupt_second)
    out = tmp_path / "report"
    assert main(cli_args(setup, out, "--iterate-steps", "3")) == Interrupted.exit_code
    assert "cached" in capsys.readouterr().err
    cache = sorted(p.name for p in (out / "cache").iterdir())
    assert len(cache) == 2 and {Path(n).suffix for n in cache} == {".png", ".json"}  # no .tmp
    assert main(cli_args(setup, out, "--iterate-steps", "3")) == 0
    records = json.loads((out / "summary.json").read_text())["images"]
    assert [r["cached"] for r in records] == [True, False]
    assert len(calls) == 3


# --- temporal stability -------------------------------------------------------------------------


def test_identity_on_a_static_video_adds_no_flicker() -> None:
    frames = static_frames()
    assert temporal_stability(frames, lambda f: f).record["flicker_ratio"] == 1.0
    assert temporal_stability(frames, noisy()).record["flicker_ratio"] > 2.0


def test_identity_on_a_pan_is_one_and_noise_is_more() -> None:
    frames = panning_frames()
    assert temporal_stability(frames, lambda f: f.copy()).record["flicker_ratio"] == 1.0
    assert temporal_stability(frames, noisy()).record["flicker_ratio"] > 1.5


def test_perfectly_static_frames() -> None:
    frames = [panning_frames(1)[0]] * 4
    identity = temporal_stability(frames, lambda f: f).record
    assert identity["flicker_ratio"] == 1.0 and identity["content_static"]
    assert temporal_stability(frames, noisy()).record["flicker_ratio"] == math.inf
    assert json_safe({"x": math.inf}) == {"x": None}


def test_read_frames_from_a_folder_and_a_video_file(setup, tmp_path: Path) -> None:
    frames = read_frames(setup.frames, 32, limit=4)
    assert len(frames) == 4 and frames[0].shape == (24, 32, 3)
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "pan.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for frame in panning_frames():
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    frames = read_frames(path, 64, limit=5)
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3)


def test_unreadable_video_is_a_clear_error(tmp_path: Path, content_image: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(StylecastError, match=r"cannot read video|OpenCV"):
        read_frames(bad, 64, 10)
    with pytest.raises(StylecastError, match="video not found"):
        read_frames(tmp_path / "missing.mp4", 64, 10)
    with pytest.raises(StylecastError, match="single image"):
        read_frames(content_image, 64, 10)
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(panning_frames(1)[0]).save(one / "f.png")
    with pytest.raises(StylecastError, match="at least 2 frames"):
        read_frames(one, 64, 10)


# --- bad input through the CLI ------------------------------------------------------------------


def copy_model(setup, tmp_path: Path) -> tuple[Path, Path]:
    models = tmp_path / "models"
    shutil.copytree(setup.models / "tiny", models / "tiny")
    return models, models / "tiny" / "model.json"


def run_cli(setup, models: Path, content: Path, tmp_path: Path, capsys, *extra: str) -> str:
    args = cli_args(setup, tmp_path / "out", *extra)
    args[args.index("--models-dir") + 1] = str(models)
    args[args.index("--content-dir") + 1] = str(content)
    assert main(args) == StylecastError.exit_code
    lines = capsys.readouterr().err.strip().splitlines()
    # Log records (e.g. "INFO … loaded model") may come first; then exactly one error line.
    errors = [line for line in lines if line.startswith("stylecast ")]
    assert errors == lines[-1:] and errors[0].startswith("stylecast validate: error:"), lines
    return errors[0]


def test_unknown_model_and_broken_card(setup, tmp_path: Path, capsys) -> None:
    assert "no model 'nope'" in run_cli(
        setup, setup.models, setup.content, tmp_path, capsys, "--model", "nope"
    )
    models, card = copy_model(setup, tmp_path)
    card.write_text("{ not json")
    assert "not a valid model card" in run_cli(setup, models, setup.content, tmp_path, capsys)


def test_card_without_loss_settings(setup, tmp_path: Path, capsys) -> None:
    models, card = copy_model(setup, tmp_path)
    data = json.loads(card.read_text())
    del data["train_config"]["loss"]
    card.write_text(json.dumps(data))
    assert "no loss settings" in run_cli(setup, models, setup.content, tmp_path, capsys)


def test_content_folder_without_images(setup, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no pictures here")
    assert "no JPEG, PNG or WebP images" in run_cli(setup, setup.models, empty, tmp_path, capsys)


def test_missing_style_image(setup, tmp_path: Path, capsys, monkeypatch) -> None:
    models, card = copy_model(setup, tmp_path)
    data = json.loads(card.read_text())
    data["train_config"]["style_image"] = str(tmp_path / "gone.jpg")
    data["style_image"] = "gone.jpg"
    card.write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)
    err = run_cli(setup, models, setup.content, tmp_path, capsys)
    assert "style image 'gone.jpg'" in err and "--style" in err


def test_style_resolution_order_and_checksum(style_images: list[Path], tmp_path: Path) -> None:
    trained, other = style_images[0], style_images[1]
    sha = hashlib.sha256(trained.read_bytes()).hexdigest()
    card = SimpleNamespace(
        name="m", style_image=trained.name, style_sha256=sha,
        train_config={"style_image": str(trained)},
    )  # fmt: skip
    assert resolve_style(card, None) == (trained, sha, True)
    path, _, matches = resolve_style(card, str(other))  # --style wins, and is checked
    assert path == other and matches is False
    with pytest.raises(StylecastError, match="style image not found"):
        resolve_style(card, str(tmp_path / "nope.jpg"))


# --- small parts --------------------------------------------------------------------------------


def test_ratio_and_first_step_below() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(0.0, 0.0) == 1.0
    assert ratio(1.0, 0.0) is None and ratio(None, 1.0) is None
    assert first_step_below([5.0, 4.0, 2.0, 1.0], 2.0) == 3
    assert first_step_below([5.0, 4.0], 1.0) is None


def test_aggregate_skips_missing_figures() -> None:
    records = [
        {"ratios": {"total": 1.0}, "beats_fast_at_step": 4},
        {"ratios": {"total": 3.0}, "beats_fast_at_step": None},
        {"ratios": {"total": 8.0}, "beats_fast_at_step": 10},
    ]
    result = aggregate(records)
    assert result["mean"]["ratio_total"] == 4.0 and result["median"]["ratio_total"] == 3.0
    assert (
        result["mean"]["beats_fast_at_step"] == 7.0 and result["count"]["beats_fast_at_step"] == 2
    )
    assert result["mean"]["ssim"] is None


def test_image_distances() -> None:
    image = panning_frames(1)[0]
    assert ssim(image, image) == pytest.approx(1.0)
    assert psnr(image, image) is None  # identical: infinite PSNR
    darker = image.astype(np.int16) - 10
    shifted = np.clip(darker, 0, 255).astype(np.uint8)
    mse = np.mean((shifted.astype(np.float64) - image) ** 2)
    assert psnr(image, shifted) == pytest.approx(10 * math.log10(255**2 / mse), rel=1e-4)
    assert ssim(image, noisy()(image)) < 0.9


def test_cache_round_trip_and_half_written_entries(tmp_path: Path) -> None:
    cache = IterativeCache(tmp_path)
    image = panning_frames(1)[0]
    key = cache_key(b"content", {"steps": 3})
    assert key != cache_key(b"content", {"steps": 4}) and key != cache_key(b"other", {"steps": 3})
    assert cache.get(key, image.shape) is None
    cache.put(key, image, {"seconds": 1.5, "history": [2.0, 1.0]})
    hit = cache.get(key, image.shape)
    assert hit is not None and np.array_equal(hit.image, image) and hit.record["seconds"] == 1.5
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".png"]
    assert cache.get(key, (10, 10, 3)) is None  # another size: not this entry
    (tmp_path / f"{key}.json").unlink()  # interrupted between the PNG and the JSON
    assert cache.get(key, image.shape) is None


def test_chart_ticks() -> None:
    assert nice_ticks(0, 10, 5) == [0, 2, 4, 6, 8, 10]
    assert log_ticks(0, 3) == [1, 10, 100, 1000]
    assert log_ticks(math.log10(1.5), math.log10(30)) == [2, 5, 10, 20]
