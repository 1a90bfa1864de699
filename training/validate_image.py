"""One content image of `stylecast validate`: its iterative output (from the cache, or the same
optimisation as `stylecast iterate`), its fast output (timed), both scored by one
PerceptualLoss, and the ``ImageRecord`` of every figure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from stylecast.validation.results import ImagePictures
from stylecast.validation.summary import Distances, ImageRecord, Losses, Seconds

from .image_metrics import Lpips, psnr, ssim
from .images import load_image
from .iterate import IterateConfig, stylise_iteratively
from .iterative_cache import IterativeCache, cache_key
from .losses import PerceptualLoss
from .scoring import (
    Stylise,
    first_step_below,
    loss_ratios,
    ratio,
    score,
    time_fast,
    to_array,
    to_tensor,
)


@dataclass(frozen=True)
class ImageOutcome:
    """One content image: every figure and the three pictures."""

    record: ImageRecord
    pictures: ImagePictures


@dataclass
class ImageValidator:
    """Everything shared by the content images of one validation."""

    stylise: Stylise
    criterion: PerceptualLoss
    iterate: IterateConfig
    cache: IterativeCache
    key_fields: dict[str, Any]  # every setting that changes the iterative output
    lpips: Lpips
    fast_repeats: int = 3
    progress: bool = True

    def iterative(self, content: np.ndarray, key: str) -> tuple[np.ndarray, dict[str, Any], bool]:
        """The iterative output of ``content`` (from the cache when there); returns
        (image, record with seconds and history, whether it came from the cache)."""
        hit = self.cache.get(key, content.shape)
        if hit is not None:
            return hit.image, hit.record, True
        device = self.criterion.network.mean.device
        result = stylise_iteratively(
            to_tensor(content, device), self.criterion, self.iterate, progress=self.progress
        )
        image = to_array(result.image)
        record = {
            "seconds": result.seconds,
            "steps": result.steps,
            "history": result.history,
            "best_step": result.best_step,
            "losses_unrounded": result.losses,
            "settings": self.key_fields,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.cache.put(key, image, record)
        return image, record, False

    def run(self, path: Path, name: str) -> ImageOutcome:
        """Validate one content image file."""
        content = to_array(load_image(path, self.iterate.size))
        device = self.criterion.network.mean.device
        targets = self.criterion.content_targets(to_tensor(content, device)[None])
        key = cache_key(path.read_bytes(), self.key_fields)
        iterative, cached_record, cached = self.iterative(content, key)
        fast, fast_seconds = time_fast(self.stylise, content, self.fast_repeats)
        losses = Losses(
            content_image=score(self.criterion, content, targets),
            iterative=score(self.criterion, iterative, targets),
            fast=score(self.criterion, fast, targets),
        )
        iterative_seconds = float(cached_record["seconds"])
        history = tuple(float(v) for v in cached_record["history"])
        record = ImageRecord(
            name=name,
            path=str(path),
            height=int(content.shape[0]),
            width=int(content.shape[1]),
            cache_key=key,
            cached=cached,
            losses=losses,
            ratios=loss_ratios(losses.fast, losses.iterative),
            distances=Distances(
                ssim=ssim(fast, iterative),
                psnr_db=psnr(fast, iterative),
                lpips=self.lpips(fast, iterative),
            ),
            seconds=Seconds(iterative=iterative_seconds, fast=fast_seconds),
            speedup=ratio(iterative_seconds, fast_seconds),
            beats_fast_at_step=first_step_below(history, losses.fast.total),
            iterative_below_content_baseline=losses.iterative.total < losses.content_image.total,
            history=history,
            best_step=recorded_best_step(cached_record, history),
        )
        return ImageOutcome(record, ImagePictures(content, iterative, fast))


def recorded_best_step(record: dict[str, Any], history: Sequence[float]) -> int | None:
    """The step of the reported iterative image. Cache entries written before it was recorded
    hold the history only: there it is the step of the lowest loss (the best iterate)."""
    if "best_step" in record:
        return int(record["best_step"])
    if not history:
        return None
    return 1 + min(range(len(history)), key=history.__getitem__)
