"""The iterative (Gatys et al.) reference: optimisers lower the loss; run_iterate writes outputs."""

from __future__ import annotations

import json

import pytest
import torch

from stylecast.errors import StylecastError
from stylecast.training.iterate import (
    IterateConfig,
    build_criterion,
    run_iterate,
    stylise_iteratively,
)
from stylecast.training.losses import PerceptualLoss

SIZE = 64


@pytest.fixture
def criterion(random_vgg, loss_config, style_image, small_image) -> PerceptualLoss:
    return PerceptualLoss(random_vgg, loss_config, small_image(style_image, SIZE))


@pytest.fixture
def content(content_image, small_image) -> torch.Tensor:
    return small_image(content_image, SIZE)


def _untouched_loss(criterion: PerceptualLoss, content: torch.Tensor) -> float:
    batch = content[None]
    with torch.no_grad():
        return float(criterion(batch, criterion.content_targets(batch))["total"])


def test_lbfgs_lowers_the_loss(criterion, content, loss_config) -> None:
    config = IterateConfig(size=SIZE, steps=20, vgg_weights="random:0", loss=loss_config)
    steps_seen = []
    result = stylise_iteratively(
        content, criterion, config, progress=False, on_step=lambda s, _: steps_seen.append(s)
    )
    start = _untouched_loss(criterion, content)
    assert len(result.history) == 20
    assert steps_seen == list(range(1, 21))
    assert result.history[-1] < result.history[0]
    assert result.losses["total"] < start
    assert result.losses["total"] < 0.5 * start  # 20 steps do much more than nudge it
    assert result.losses["total"] == pytest.approx(min(result.history), rel=1e-4)
    assert result.image.shape == content.shape
    assert 0.0 <= float(result.image.min()) <= float(result.image.max()) <= 1.0
    assert not torch.equal(result.image, content)
    assert result.steps == 20
    assert result.seconds > 0
    assert result.vgg_weights == "random:0"


def test_lbfgs_reference_is_monotone_and_returns_its_best_iterate(
    criterion, content, loss_config
) -> None:
    """The reference never rises above the best loss so far by more than a sliver, and the
    image it returns scores the minimum of its own curve (the report calls it "iterative")."""
    config = IterateConfig(size=SIZE, steps=30, vgg_weights="random:0", loss=loss_config)
    result = stylise_iteratively(content, criterion, config, progress=False)
    best_so_far = [min(result.history[: i + 1]) for i in range(len(result.history))]
    worst_rise = max(h - b for h, b in zip(result.history, best_so_far, strict=True))
    assert worst_rise <= 1e-3 * best_so_far[-1]
    assert result.losses["total"] == pytest.approx(min(result.history), rel=1e-4)
    assert result.history[result.best_step - 1] == pytest.approx(min(result.history), rel=1e-6)
    # One evaluation per step (plus the final one), more only inside line searches; never
    # the extra no-grad forward after each step the clamped version paid for.
    assert config.steps + 1 <= result.evaluations <= (config.steps + 1) * 8


def test_adam_lowers_the_loss(criterion, content, loss_config) -> None:
    config = IterateConfig(
        size=SIZE, steps=15, optimizer="adam", vgg_weights="random:0", loss=loss_config
    )
    result = stylise_iteratively(content, criterion, config, progress=False)
    assert result.history[-1] < result.history[0]
    assert result.losses["total"] < _untouched_loss(criterion, content)


def test_noise_init_is_seeded(criterion, content, loss_config) -> None:
    config = IterateConfig(
        size=SIZE, steps=2, init="noise", vgg_weights="random:0", loss=loss_config
    )
    a = stylise_iteratively(content, criterion, config, progress=False)
    b = stylise_iteratively(content, criterion, config, progress=False)
    torch.testing.assert_close(a.image, b.image)
    assert a.history == pytest.approx(b.history)


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 0}, {"steps": 0}, {"optimizer": "sgd"}, {"init": "zeros"}, {"lr": -1.0}],
)
def test_iterate_config_rejects_bad_values(kwargs) -> None:
    with pytest.raises(StylecastError):
        IterateConfig(**kwargs)


def test_run_iterate_writes_image_and_json(tmp_path, content_image, style_image, loss_config):
    out = tmp_path / "result" / "styled.png"
    config = IterateConfig(size=48, steps=3, vgg_weights="random:0", loss=loss_config)
    summary = run_iterate(content_image, style_image, out, config)

    assert out.is_file()
    from stylecast.training.images import load_image

    image = load_image(out)
    assert max(image.shape[-2:]) == 48
    assert image.shape == load_image(content_image, 48).shape

    report = json.loads(out.with_suffix(".json").read_text())
    assert report == json.loads(json.dumps(summary))
    for key in ("losses", "steps", "seconds", "vgg_weights", "history", "config"):
        assert key in report, key
    assert set(report["losses"]) == {"content", "style", "tv", "total"}
    assert report["steps"] == 3
    assert len(report["history"]) == 3
    assert report["seconds"] > 0
    assert report["vgg_weights"] == "random:0"
    assert report["config"]["loss"]["style_weight"] == loss_config.style_weight
    assert report["content"] == str(content_image)


def test_run_iterate_rejects_bad_output_suffix(tmp_path, content_image, style_image) -> None:
    config = IterateConfig(size=32, steps=1, vgg_weights="random:0")
    with pytest.raises(StylecastError, match=r"\.png or \.jpg"):
        run_iterate(content_image, style_image, tmp_path / "out.gif", config)
    assert not (tmp_path / "out.gif").exists()


def test_build_criterion_missing_style(tmp_path) -> None:
    with pytest.raises(StylecastError, match="not found"):
        build_criterion(tmp_path / "missing.jpg", IterateConfig(size=32, vgg_weights="random:0"))
