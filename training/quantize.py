"""int8 export: static QDQ quantisation of an fp32 export with onnxruntime's tools, and its
parity against that fp32 graph.

Weights are quantised per output channel (int8), activations per tensor (uint8) from ranges
seen on real content images. The calibration folder is split: every ``HOLDOUT_EVERY``-th
image (sorted by name) is held aside and never calibrates; int8 is scored against the fp32
export on those images as PSNR and mean absolute difference, and the version is refused
below ``Int8Thresholds``. Only convolutions are quantised: the uint8 pre- and post-processing
and the instance norms stay in float, as quantising them costs accuracy and saves nothing.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stylecast.errors import StylecastError
from stylecast.image_rules import IMAGE_SUFFIXES
from stylecast.serving.model_card import INPUT_NAME

HOLDOUT_EVERY = 4  # one image in four is held aside for parity
CALIBRATION_SIDE = 320  # longer side the images are resized to for calibration and parity
MAX_CALIBRATION_IMAGES = 64


@dataclass(frozen=True)
class Int8Thresholds:
    """What an int8 version must reach against its own fp32 export on held-aside images."""

    min_psnr_db: float = 30.0
    max_mean_abs: float = 4.0  # in 0–255 levels


@dataclass(frozen=True)
class CalibrationSplit:
    """Images that calibrate the activation ranges, and images held aside for parity."""

    calibration: list[Path]
    holdout: list[Path]


def split_calibration_dir(folder: str | Path) -> CalibrationSplit:
    """Every image under ``folder`` (recursive), split into calibration and held-aside sets."""
    root = Path(folder)
    if not root.is_dir():
        raise StylecastError(f"calibration folder not found: {root}")
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(images) < 2:
        raise StylecastError(
            f"calibration folder {root} holds {len(images)} image(s); int8 export needs at "
            "least 2 (one in four is held aside to measure the int8 model against fp32)"
        )
    holdout = images[HOLDOUT_EVERY - 1 :: HOLDOUT_EVERY] or images[-1:]
    calibration = [p for p in images if p not in holdout][:MAX_CALIBRATION_IMAGES]
    return CalibrationSplit(calibration, holdout)


def load_uint8(path: Path, side: int = CALIBRATION_SIDE) -> np.ndarray:
    """``path`` as a [1, H, W, 3] uint8 batch, its longer side at most ``side``."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise StylecastError(f"calibration image {path} cannot be read: {exc}") from None
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)[None]


class _ImageReader:
    """onnxruntime's CalibrationDataReader protocol over a list of image files."""

    def __init__(self, paths: list[Path]) -> None:
        self._batches: Iterator[np.ndarray] = (load_uint8(p) for p in paths)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(fp32_path: Path, int8_path: Path, calibration: list[Path]) -> None:
    """Write the QDQ int8 graph of ``fp32_path`` to ``int8_path``, calibrated on the images."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_ImageReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="stylecast-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(int8_path),
            Reader(calibration),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_providers=["CPUExecutionProvider"],
        )


def int8_parity(
    fp32_path: Path, int8_path: Path, holdout: list[Path], thresholds: Int8Thresholds
) -> dict[str, Any]:
    """PSNR and mean absolute difference of int8 against fp32 on the held-aside images."""
    import onnxruntime as ort

    sessions = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        for p in (fp32_path, int8_path)
    ]
    per_image: dict[str, dict[str, float]] = {}
    squared, absolute, count = 0.0, 0.0, 0
    for path in holdout:
        batch = load_uint8(path)
        reference, quantised = (
            s.run(None, {INPUT_NAME: batch})[0].astype(np.float64) for s in sessions
        )
        diff = quantised - reference
        per_image[path.name] = {
            "psnr_db": round(psnr(float(np.mean(diff**2))), 2),
            "mean_abs": round(float(np.mean(np.abs(diff))), 3),
        }
        squared += float(np.sum(diff**2))
        absolute += float(np.sum(np.abs(diff)))
        count += diff.size
    overall_psnr, mean_abs = psnr(squared / count), absolute / count
    return {
        "precision": "int8",
        "reference": "this model's fp32 export",
        "images": per_image,
        "psnr_db": round(overall_psnr, 2),
        "mean_abs": round(mean_abs, 3),
        "thresholds": asdict(thresholds),
        "passed": overall_psnr >= thresholds.min_psnr_db and mean_abs <= thresholds.max_mean_abs,
    }


PSNR_CAP_DB = 100.0  # identical images: recorded as this rather than infinity (not JSON)


def psnr(mean_squared: float) -> float:
    """Peak signal-to-noise ratio in dB for 8-bit images, at most ``PSNR_CAP_DB``."""
    if mean_squared == 0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10 * math.log10(255.0**2 / mean_squared))
