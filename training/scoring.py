"""Scoring for `stylecast validate`: the one PerceptualLoss that drives the iterative run and
scores every output, conversions between uint8 arrays and tensors, ratios, and the timing of
the fast network."""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from stylecast.validation.summary import LossTerms, Ratios

from .config import LossConfig
from .images import load_image, to_uint8
from .losses import PerceptualLoss
from .vgg import LossNetwork, load_loss_network

Stylise = Callable[[np.ndarray], np.ndarray]  # uint8 RGB [H, W, 3] -> uint8 RGB [H, W, 3]


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [H, W, 3] to a contiguous float [3, H, W] in [0, 1]."""
    pixels = torch.tensor(image, dtype=torch.uint8).permute(2, 0, 1)  # a copy: may be read-only
    return pixels.float().div(255).contiguous().to(device)


def to_array(image: torch.Tensor) -> np.ndarray:
    """float [3, H, W] in [0, 1] to uint8 [H, W, 3] (rounded, as saved to PNG)."""
    return to_uint8(image).permute(1, 2, 0).contiguous().numpy()


@functools.lru_cache(maxsize=2)
def _loss_network(spec: str, layers: tuple[str, ...]) -> LossNetwork:
    """The frozen loss network, built once per process (the random one takes seconds)."""
    return load_loss_network(spec, layers)


def build_scorer(
    style_path: Path, style_size: int, loss: LossConfig, vgg_spec: str, device: torch.device
) -> PerceptualLoss:
    """The one PerceptualLoss that drives the iterative run and scores every output."""
    network = _loss_network(vgg_spec, (*loss.content_layers, *loss.style_layers))
    style = load_image(style_path, style_size)
    return PerceptualLoss(network, loss, style).to(device)


def score(
    criterion: PerceptualLoss, image: np.ndarray, targets: dict[str, torch.Tensor]
) -> LossTerms:
    """Loss terms of a uint8 image against content targets."""
    device = criterion.network.mean.device
    with torch.no_grad():
        terms = criterion(to_tensor(image, device)[None], targets)
    return LossTerms(
        content=float(terms["content"]),
        style=float(terms["style"]),
        tv=float(terms["tv"]),
        total=float(terms["total"]),
    )


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator; 1.0 for 0/0, None when undefined."""
    if numerator is None or denominator is None:
        return None
    if denominator == 0:
        return 1.0 if numerator == 0 else None
    return numerator / denominator


def loss_ratios(fast: LossTerms, iterative: LossTerms) -> Ratios:
    """fast ÷ iterative for every loss term."""
    return Ratios(
        content=ratio(fast.content, iterative.content),
        style=ratio(fast.style, iterative.style),
        tv=ratio(fast.tv, iterative.tv),
        total=ratio(fast.total, iterative.total),
    )


def first_step_below(history: Sequence[float], threshold: float) -> int | None:
    """The first step (1-based) whose loss is <= ``threshold``, or None if none is."""
    for step, value in enumerate(history, start=1):
        if value <= threshold:
            return step
    return None


def time_fast(stylise: Stylise, image: np.ndarray, repeats: int) -> tuple[np.ndarray, float]:
    """Stylise once to warm up for this shape, then return the output and median seconds."""
    output = stylise(image)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        output = stylise(image)
        times.append(time.perf_counter() - began)
    return output, statistics.median(times)
