"""Proof at load that a reduced-precision session (TensorRT fp16, or any GPU provider) still
draws the same picture: a deterministic, textured probe image is run through the chosen session
and through a CPU fp32 session of the same graph, and the two outputs are compared
(``compare``). ``run_probe`` takes the two runs as plain callables, so the check is testable
without a GPU; the runtime decides what a failure means (rebuild in fp32, or refuse)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stylecast.errors import StylecastError

PROBE_SIDE = 256
PROBE_SEED = 20240611
PRECISION_CHECKS = ("auto", "always", "never")  # auto: every session that is not the CPU's
FP16_FALLBACKS = ("fp32", "refuse")  # what a failed TensorRT fp16 engine becomes

Run = Callable[[np.ndarray], np.ndarray]


class PrecisionCheckFailed(StylecastError):
    """The served session's output differs too much from the CPU fp32 reference."""


@dataclass(frozen=True)
class PrecisionThresholds:
    """How close the served output must be to the CPU fp32 one, on uint8 output levels.

    ``min_psnr_db`` 35 dB bounds the error spread over the whole image. It is stricter than
    what the server itself already loses on the way out: its default JPEG encoding (quality
    90) of a stylised image measures about 30.6 dB (starry_night_lite, kodim23), so an fp16
    error within 35 dB is smaller than the reply's own compression noise.

    ``max_abs_error`` 16 levels bounds the worst single value. fp16 rounding moves an output
    by a level or two (PyTorch fp16 against fp32 on this probe, both bundled models: ~60 dB,
    max 1 level); an fp16 overflow or a bad kernel shows as NaN/inf saturated to 0 or 255,
    errors of 100+ levels in a few pixels: a visible blemish, yet a 4x4 block of it still
    passes 35 dB on the 256x256 probe (~36 dB). 16 sits far above the first and far below
    the second."""

    min_psnr_db: float = 35.0
    max_abs_error: int = 16

    def __post_init__(self) -> None:
        if not self.min_psnr_db > 0:
            raise StylecastError(f"min_psnr_db must be > 0 (got {self.min_psnr_db})")
        if not 0 <= self.max_abs_error <= 255:
            raise StylecastError(f"max_abs_error must be in 0..255 (got {self.max_abs_error})")


@dataclass(frozen=True)
class PrecisionReport:
    """One comparison: PSNR in dB (inf for identical outputs), the largest difference in
    levels, and whether both are within the thresholds."""

    psnr_db: float
    max_abs_error: int
    passed: bool

    def summary(self) -> str:
        return f"PSNR {self.psnr_db:.1f} dB, max |diff| {self.max_abs_error} levels"


def compare(
    served: np.ndarray, reference: np.ndarray, thresholds: PrecisionThresholds
) -> PrecisionReport:
    """Compare two uint8 outputs of the same input (shapes must match)."""
    if served.shape != reference.shape:
        raise PrecisionCheckFailed(
            f"output shape {served.shape} differs from the reference's {reference.shape}"
        )
    diff = served.astype(np.int16) - reference.astype(np.int16)
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    psnr = math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
    worst = int(np.abs(diff).max()) if diff.size else 0
    passed = psnr >= thresholds.min_psnr_db and worst <= thresholds.max_abs_error
    return PrecisionReport(psnr, worst, passed)


def probe_image(side: int = PROBE_SIDE, seed: int = PROBE_SEED) -> np.ndarray:
    """A deterministic textured image, uint8 [1, side, side, 3]: smooth gradients (flat
    regions), stripes and a checkerboard (hard edges), and noise (fine texture)."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float64) / max(side - 1, 1)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 6 * (x + 0.5 * y))
    checker = ((np.floor(x * 8) + np.floor(y * 8)) % 2).astype(np.float64)
    image = np.stack([x, 0.6 * y + 0.4 * checker, stripes], axis=-1) * 255.0
    image += np.random.default_rng(seed).normal(0.0, 12.0, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)[None]


def run_probe(
    served: Run, reference: Run, thresholds: PrecisionThresholds, image: np.ndarray | None = None
) -> PrecisionReport:
    """Run ``image`` (default: ``probe_image()``) through both and compare the outputs."""
    probe = probe_image() if image is None else image
    return compare(served(probe), reference(probe), thresholds)
