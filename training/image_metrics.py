"""Full-reference image distances between two stylised images: SSIM, PSNR and (when its
weights are on disk) LPIPS. Inputs are uint8 RGB arrays [H, W, 3] of the same shape."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from stylecast.errors import StylecastError

log = logging.getLogger(__name__)

LPIPS_UNAVAILABLE = "AlexNet ImageNet weights not in the torch hub cache (no download attempted)"


def _as_batch(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] to float [1, 3, H, W] in [0, 1]."""
    return torch.tensor(image, dtype=torch.uint8).permute(2, 0, 1)[None].float() / 255.0


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise StylecastError(
            f"image distance needs two RGB images of one shape ({a.shape}, {b.shape})"
        )


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03); 1.0 = identical."""
    _check_pair(a, b)
    value = structural_similarity_index_measure(
        _as_batch(a), _as_batch(b), gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=1.0
    )
    assert isinstance(value, torch.Tensor)  # one image pair, no full SSIM map: a scalar
    return float(value)


def psnr(a: np.ndarray, b: np.ndarray) -> float | None:
    """Peak signal-to-noise ratio in dB; None for identical images (infinite PSNR)."""
    _check_pair(a, b)
    if np.array_equal(a, b):
        return None
    return float(peak_signal_noise_ratio(_as_batch(a), _as_batch(b), data_range=1.0))


def _alexnet_weights_cached() -> bool:
    from torchvision.models import AlexNet_Weights

    name = Path(AlexNet_Weights.DEFAULT.url).name
    return (Path(torch.hub.get_dir()) / "checkpoints" / name).is_file()


class Lpips:
    """LPIPS (AlexNet) if its weights are available offline; ``available`` says whether."""

    def __init__(self) -> None:
        self.available = _alexnet_weights_cached()
        self.reason = "" if self.available else LPIPS_UNAVAILABLE
        self._metric = None
        if self.available:
            try:
                from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

                self._metric = LearnedPerceptualImagePatchSimilarity(
                    net_type="alex", normalize=True
                ).eval()
            except Exception as exc:  # any failure here just means no LPIPS
                self.available, self.reason = False, f"LPIPS unavailable: {exc}"
                log.warning("%s", self.reason)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float | None:
        """Distance (0 = identical, lower is closer), or None when unavailable."""
        _check_pair(a, b)
        if self._metric is None:
            return None
        with torch.no_grad():
            return float(self._metric(_as_batch(a), _as_batch(b)))
