"""`stylecast validate`: scoring, ratios, the iterative cache, temporal stability, the typed
summary and its JSON round trip, the report files (rendered without torch), the loss chart and
bad input. A seeded random lite network exported to ONNX, 64 px, a few L-BFGS steps."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from model_factory import make_run
from PIL import Image

import stylecast.training.validate_image as validate_image_module
from stylecast.cli import main
from stylecast.errors import Interrupted, StylecastError
from stylecast.training.card_settings import resolve_style
from stylecast.training.config import LossConfig, to_dict
from stylecast.training.export import export_model
from stylecast.training.image_metrics import psnr, ssim
from stylecast.training.images import load_image, save_image
from stylecast.training.iterative_cache import IterativeCache, cache_key
from stylecast.training.scoring import first_step_below, ratio
from stylecast.training.temporal import read_frames, temporal_stability
from stylecast.training.validate import ValidateOptions, validate_model
from stylecast.validation.charts import COLOURS, loss_chart, save_chart
from stylecast.validation.report import write_report
from stylecast.validation.summary import (
    Distances,
    ImageRecord,
    Losses,
    LossTerms,
    Ratios,
    Seconds,
    ValidationSummary,
    aggregate,
    json_safe,
    read_summary,
    write_summary,
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


@pytest.fixture(scope="module")
def revalidated(setup, report: Path):
    """The report's validation run again in-process: every iterative output from its cache."""

    def must_not_run(*args, **kwargs):
        raise AssertionError("the iterative optimisation ran again")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validate_image_module, "stylise_iteratively", must_not_run)
        return validate_model(
            "tiny", setup.content, report, setup.models,
            ValidateOptions(size=SIZE, iterate_steps=STEPS, progress=False, fast_repeats=1),
        )  # fmt: skip


# --- the report ---------------------------------------------------------------------------------


class TagChecker(HTMLParser):
    """Checks that elements nest and close properly; collects img sources."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.images.append(dict(attrs)["src"])
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
    charts = [src for src in checker.images if src.startswith("charts/")]
    assert charts == [r["chart"] for r in summary["images"]]  # one loss chart per content image
    assert all((report / src).is_file() for src in checker.images)
    assert len(checker.images) == 5  # a grid and a chart per image, the video strip
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
        # The reported iterative image is the best iterate: its step has the lowest loss.
        history = record["history"]
        assert history[record["best_step"] - 1] == min(history)


def test_report_names_the_step_of_the_iterative_image(report: Path, summary: dict) -> None:
    md = (report / "report.md").read_text()
    for record in summary["images"]:
        assert f"best iterate of {len(record['history'])} steps, reached at step " in md
        assert f"reached at step {record['best_step']}." in md


def test_best_step_of_an_older_cache_entry_comes_from_its_history() -> None:
    from stylecast.training.validate_image import recorded_best_step

    assert recorded_best_step({"best_step": 4}, [3.0, 2.0]) == 4
    assert recorded_best_step({}, [5.0, 2.0, 3.0]) == 2
    assert recorded_best_step({}, []) is None


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


def test_second_run_reuses_the_cache(summary: dict, revalidated) -> None:
    for first, second in zip(summary["images"], revalidated.summary.images, strict=True):
        assert first["cached"] is False and second.cached is True
        assert second.cache_key == first["cache_key"]
        assert second.seconds.iterative == first["seconds"]["iterative"]
        iterative = dataclasses.asdict(second.losses.iterative)
        assert iterative == pytest.approx(first["losses"]["iterative"])
        assert second.history == tuple(first["history"])
        assert revalidated.pictures[second.name].iterative.shape == (second.height, second.width, 3)


def test_ctrl_c_leaves_a_usable_cache(setup, tmp_path: Path, monkeypatch, capsys) -> None:
    real = validate_image_module.stylise_iteratively
    calls = []

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(validate_image_module, "stylise_iteratively", interrupt_second)
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
    assert temporal_stability(frames, lambda f: f).record.flicker_ratio == 1.0
    assert temporal_stability(frames, noisy()).record.flicker_ratio > 2.0


def test_identity_on_a_pan_is_one_and_noise_is_more() -> None:
    frames = panning_frames()
    assert temporal_stability(frames, lambda f: f.copy()).record.flicker_ratio == 1.0
    assert temporal_stability(frames, noisy()).record.flicker_ratio > 1.5


def test_perfectly_static_frames() -> None:
    frames = [panning_frames(1)[0]] * 4
    identity = temporal_stability(frames, lambda f: f).record
    assert identity.flicker_ratio == 1.0 and identity.content_static
    assert temporal_stability(frames, noisy()).record.flicker_ratio == math.inf
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
    for kept in card.parent.glob("style.*"):  # the model folder's own copy, gone too
        kept.unlink()
    monkeypatch.chdir(tmp_path)
    err = run_cli(setup, models, setup.content, tmp_path, capsys)
    assert "style image 'gone.jpg'" in err and "--style" in err


def test_style_resolution_order_and_checksum(style_images: list[Path], tmp_path: Path) -> None:
    trained, other = style_images[0], style_images[1]
    sha = hashlib.sha256(trained.read_bytes()).hexdigest()
    card = SimpleNamespace(
        name="m", style_image=trained.name, style_sha256=sha,
        train_config={"style_image": str(trained)}, styles=[],
    )  # fmt: skip
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    assert resolve_style(card, None, model_dir) == (trained, sha, True)  # older folder: no copy
    kept = model_dir / f"style{trained.suffix}"
    kept.write_bytes(trained.read_bytes())
    assert resolve_style(card, None, model_dir) == (kept, sha, True)  # the model's own copy
    path, _, matches = resolve_style(card, str(other), model_dir)  # --style wins, and is checked
    assert path == other and matches is False
    with pytest.raises(StylecastError, match="style image not found"):
        resolve_style(card, str(tmp_path / "nope.jpg"), model_dir)


# --- small parts --------------------------------------------------------------------------------


def test_ratio_and_first_step_below() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(0.0, 0.0) == 1.0
    assert ratio(1.0, 0.0) is None and ratio(None, 1.0) is None
    assert first_step_below([5.0, 4.0, 2.0, 1.0], 2.0) == 3
    assert first_step_below([5.0, 4.0], 1.0) is None


def image_record(name: str, ratio_total: float, beats: int | None) -> ImageRecord:
    """A hand-made record: identical fast and iterative losses, no PSNR (identical), no LPIPS."""
    terms = LossTerms(content=1.0, style=2.0, tv=0.5, total=3.5)
    return ImageRecord(
        name=name, path=f"{name}.jpg", height=8, width=12, cache_key="0" * 64, cached=False,
        losses=Losses(content_image=terms, iterative=terms, fast=terms),
        ratios=Ratios(content=1.0, style=1.0, tv=1.0, total=ratio_total),
        distances=Distances(ssim=1.0, psnr_db=None, lpips=None),
        seconds=Seconds(iterative=2.0, fast=0.5), speedup=4.0, beats_fast_at_step=beats,
        iterative_below_content_baseline=False, history=(3.5, 3.5),
    )  # fmt: skip


def test_aggregate_skips_missing_figures() -> None:
    records = [image_record("a", 1.0, 4), image_record("b", 3.0, None), image_record("c", 8.0, 10)]
    result = aggregate(records)
    assert result.mean.ratio_total == 4.0 and result.median.ratio_total == 3.0
    assert result.count.ratio_total == 3
    assert result.mean.beats_fast_at_step == 7.0 and result.count.beats_fast_at_step == 2
    assert result.mean.lpips is None and result.count.lpips == 0
    assert result.median.speedup == 4.0 and result.mean.iterative_total == 3.5


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


def test_loss_chart_shows_the_run_the_fast_line_and_the_crossing() -> None:
    chart = loss_chart([50.0, 5.0, 1.0], 100.0, 2.0, 3, "wide")
    axes = chart.axes[0]
    assert axes.get_yscale() == "log"  # 100 ÷ 1 > 20
    assert axes.get_title(loc="left") == "wide"
    iterative, fast, marker = axes.get_lines()
    assert list(iterative.get_xdata()) == [0, 1, 2, 3]  # step 0: the content image
    assert list(iterative.get_ydata()) == [100.0, 50.0, 5.0, 1.0]
    assert set(fast.get_ydata()) == {2.0} and fast.get_linestyle() == "--"
    assert set(marker.get_xdata()) == {3}
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend == ["iterative", "fast network", "iterative beats fast (step 3)"]
    narrow = loss_chart([9.0, 8.0], 10.0, 7.0, None, "narrow").axes[0]
    assert narrow.get_yscale() == "linear" and len(narrow.get_lines()) == 2  # no crossing


def test_loss_chart_png_is_written_and_drawn(tmp_path: Path) -> None:
    path = save_chart(loss_chart([50.0, 5.0, 1.0], 100.0, 2.0, 3, "title"), tmp_path / "c.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png"]  # no temporary file left
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (1280, 600)
        pixels = np.asarray(png.convert("RGB")).reshape(-1, 3)
    for colour, least in ((COLOURS["iterative"], 1000), (COLOURS["fast"], 500)):
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        assert (pixels == rgb).all(axis=1).sum() > least, colour  # the line is drawn
    assert (pixels == 255).all(axis=1).mean() > 0.5  # mostly white background


# --- the summary contract -----------------------------------------------------------------------


def test_summary_json_round_trip(revalidated, tmp_path: Path) -> None:
    summary = revalidated.summary
    assert isinstance(summary, ValidationSummary) and len(summary.images) == 2
    path = write_summary(summary, tmp_path / "summary.json")
    assert read_summary(path) == summary
    assert json.loads(path.read_text()) == summary.to_dict()
    # non-finite figures are written as null and read back as None
    video = temporal_stability([panning_frames(1)[0]] * 3, noisy()).record
    assert video.flicker_ratio == math.inf
    with_video = dataclasses.replace(summary, video=video)
    write_summary(with_video, path)
    assert json.loads(path.read_text())["video"]["flicker_ratio"] is None
    assert read_summary(path) == dataclasses.replace(
        with_video, video=dataclasses.replace(video, flicker_ratio=None)
    )


def test_the_written_summary_reads_back_whole(report: Path, summary: dict) -> None:
    typed = read_summary(report / "summary.json")
    assert typed.to_dict() == summary  # every key of summary.json is in the typed summary
    assert typed.images[0].chart == summary["images"][0]["chart"]
    assert typed.aggregate is not None and typed.video is not None and typed.video.strip


def test_a_file_that_is_not_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text('{"created": "today"}')
    with pytest.raises(StylecastError, match="not a stylecast validation summary"):
        read_summary(path)
    with pytest.raises(StylecastError, match="cannot read"):
        read_summary(tmp_path / "missing.json")


# --- the report needs no torch ------------------------------------------------------------------

BLOCK_TORCH = """
import importlib.abc, sys
BLOCKED = {"torch", "torchvision", "lightning", "torchmetrics", "onnxruntime"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, Block())
"""


def test_report_renders_without_torch(report: Path, tmp_path: Path) -> None:
    """Read summary.json and write the whole report again with torch and onnxruntime blocked."""
    script = BLOCK_TORCH + textwrap.dedent(
        """
        import numpy as np
        from stylecast.validation.report import write_report
        from stylecast.validation.results import ImagePictures, Validation, VideoFrames
        from stylecast.validation.summary import read_summary

        summary = read_summary(sys.argv[1])
        pixels = np.full((16, 24, 3), 128, np.uint8)
        frames = [pixels, pixels + 1, pixels + 2]
        pictures = {r.name: ImagePictures(pixels, pixels, pixels) for r in summary.images}
        video = VideoFrames(frames, frames)
        write_report(Validation(summary, pixels, pictures, video), sys.argv[2])
        assert read_summary(sys.argv[2] + "/summary.json") == summary
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("NO-TORCH-OK")
        """
    )
    out = tmp_path / "again"
    result = subprocess.run(
        [sys.executable, "-c", script, str(report / "summary.json"), str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and "NO-TORCH-OK" in result.stdout, result.stderr
    assert (out / "report.md").read_text() == (report / "report.md").read_text()
    assert (out / "report.html").read_text() == (report / "report.html").read_text()


def test_style_targets_use_the_training_style_size_unless_overridden(
    setup, summary: dict, tmp_path: Path, capsys
) -> None:
    """Gram targets are compared at the scale the model was trained with (its card), not at
    --size; --style-size overrides, and the report says which was used."""
    card = json.loads((setup.models / "tiny" / "model.json").read_text())
    trained = card["train_config"]["style_size"] or card["train_config"]["image_size"]
    assert summary["settings"]["style_size"] == trained
    assert summary["settings"]["style_size_source"] == "training"
    out = tmp_path / "override"
    assert main(cli_args(setup, out, "--style-size", "48")) == 0
    overridden = json.loads((out / "summary.json").read_text())["settings"]
    assert (overridden["style_size"], overridden["style_size_source"]) == (48, "--style-size")
    assert "style 48 px, from --style-size" in (out / "report.md").read_text()
