"""What `validate_model` hands the report writer: the typed summary plus the pictures the
report shows, as uint8 RGB arrays [H, W, 3]. numpy only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .summary import ValidationSummary


@dataclass(frozen=True)
class ImagePictures:
    """The three images of one content image, at the validation size."""

    content: np.ndarray
    iterative: np.ndarray
    fast: np.ndarray


@dataclass(frozen=True)
class VideoFrames:
    """Consecutive video frames and the fast network's output for each."""

    content: list[np.ndarray]
    stylised: list[np.ndarray]


@dataclass(frozen=True)
class Validation:
    """All results of one validation: the figures and the pictures behind them."""

    summary: ValidationSummary
    style: np.ndarray  # the style image at the validation size
    pictures: dict[str, ImagePictures]  # by ImageRecord.name
    video: VideoFrames | None
