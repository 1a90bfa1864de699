"""The iterative reference: Gatys et al. optimisation of the pixels themselves (L-BFGS or Adam),
with the same PerceptualLoss as training."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from stylecast.errors import StylecastError

from .config import LossConfig, require_positive, to_dict
from .images import load_image, save_image
from .losses import PerceptualLoss
from .vgg import load_loss_network

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}


@dataclass(frozen=True)
class IterateConfig:
    """Settings of one Gatys optimisation."""

    size: int = 512
    steps: int = 300
    optimizer: str = "lbfgs"
    init: str = "content"
    lr: float | None = None
    vgg_weights: str = "imagenet"
    seed: int = 0
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        require_positive("size", self.size)
        require_positive("steps", self.steps)
        if self.optimizer not in OPTIMIZERS:
            raise StylecastError(f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}")
        if self.init not in INITS:
            raise StylecastError(f"unknown init {self.init!r}; choose from {INITS}")
        if self.lr is not None:
            require_positive("learning rate", self.lr)


@dataclass
class IterateResult:
    """The optimised image and what it cost."""

    image: torch.Tensor  # [3, H, W] in [0, 1]
    losses: dict[str, float]
    history: list[float]  # total loss after each step
    steps: int
    seconds: float
    vgg_weights: str

    def summary(self, config: IterateConfig) -> dict[str, Any]:
        return {
            "losses": self.losses,
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "ms_per_step": round(1000 * self.seconds / max(self.steps, 1), 1),
            "vgg_weights": self.vgg_weights,
            "config": to_dict(config),
            "history": self.history,
        }


def stylise_iteratively(
    content: torch.Tensor,
    criterion: PerceptualLoss,
    config: IterateConfig,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> IterateResult:
    """Optimise an image ([3, H, W] content in [0, 1]) under ``criterion``; returns the result."""
    content = content.unsqueeze(0)
    targets = criterion.content_targets(content)
    generator = torch.Generator().manual_seed(config.seed)
    start = (
        content.clone()
        if config.init == "content"
        else torch.rand(content.shape, generator=generator)
    )
    image = start.requires_grad_(True)
    lr = config.lr or DEFAULT_LR[config.optimizer]
    if config.optimizer == "lbfgs":
        optimizer: torch.optim.Optimizer = torch.optim.LBFGS(
            [image], lr=lr, max_iter=1, history_size=50
        )
    else:
        optimizer = torch.optim.Adam([image], lr=lr)

    def closure() -> float:
        optimizer.zero_grad()
        total = criterion(image, targets)["total"]
        total.backward()
        return float(total)

    history: list[float] = []
    began = time.perf_counter()
    bar = tqdm(range(config.steps), desc="iterate", unit="step", disable=not progress)
    for step in bar:
        optimizer.step(closure)
        with torch.no_grad():
            image.clamp_(0, 1)
            total = float(criterion(image, targets)["total"])
        if not torch.isfinite(torch.tensor(total)):
            raise StylecastError(f"loss became {total} at step {step + 1}; lower --lr")
        history.append(total)
        bar.set_postfix(loss=f"{total:.4g}")
        if on_step is not None:
            on_step(step + 1, total)
    seconds = time.perf_counter() - began
    with torch.no_grad():
        final = {k: float(v) for k, v in criterion(image, targets).items()}
    return IterateResult(
        image=image.detach()[0],
        losses=final,
        history=history,
        steps=config.steps,
        seconds=seconds,
        vgg_weights=criterion.network.weights_id,
    )


def build_criterion(style_path: str | Path, config: IterateConfig) -> PerceptualLoss:
    """Loss network + cached style targets for ``style_path`` at the iterate size."""
    style = load_image(style_path, config.size)
    network = load_loss_network(
        config.vgg_weights, (*config.loss.content_layers, *config.loss.style_layers)
    )
    return PerceptualLoss(network, config.loss, style)


def run_iterate(
    content_path: str | Path, style_path: str | Path, out: str | Path, config: IterateConfig
) -> dict[str, Any]:
    """`stylecast iterate`: optimise, write OUT (image) and OUT's .json; returns the summary."""
    out = Path(out)
    if out.suffix.lower() not in {".png", ".jpg", ".jpeg"}:
        raise StylecastError(f"--out {out}: use a .png or .jpg file name")
    if any(parent.exists() and not parent.is_dir() for parent in out.parents):
        raise StylecastError(f"--out {out}: a parent of it is a file, not a folder")
    content = load_image(content_path, config.size)
    criterion = build_criterion(style_path, config)
    result = stylise_iteratively(content, criterion, config)
    save_image(result.image, out)
    summary = {"content": str(content_path), "style": str(style_path), **result.summary(config)}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    return summary
