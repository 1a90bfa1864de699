"""Content images for training: a recursive folder scan that skips bad files, and random crops."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms import v2

from stylecast.errors import StylecastError

from .images import list_images, load_image

log = logging.getLogger(__name__)

# Smaller content images are skipped: they carry no useful texture at any training size.
MIN_CONTENT_SIDE = 16


def scan_content(folder: str | Path, min_side: int = MIN_CONTENT_SIDE) -> list[Path]:
    """Usable content images under ``folder``. Unreadable or tiny files are skipped, counted and
    reported in one warning; a folder with no usable image is an error."""
    usable: list[Path] = []
    skipped: list[Path] = []
    for path in list_images(folder):
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (OSError, UnidentifiedImageError):
            skipped.append(path)
            continue
        (usable if min(width, height) >= min_side else skipped).append(path)
    if skipped:
        log.warning(
            "skipped %d unreadable or tiny (< %d px) content file(s), e.g. %s",
            len(skipped),
            min_side,
            skipped[0],
        )
    if not usable:
        raise StylecastError(f"no usable content images under {folder} ({len(skipped)} skipped)")
    return usable


class ContentImages(Dataset):
    """Random-resized square crops of content images, as float [3, size, size] in [0, 1].

    A file that fails to decode later (truncated after the scan) is replaced by the next one,
    so a bad file never stops an epoch.
    """

    def __init__(self, files: Sequence[Path], size: int) -> None:
        self.files = list(files)
        self.transform = v2.Compose(
            [
                v2.RandomResizedCrop(size, scale=(0.3, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
            ]
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        for attempt in range(len(self.files)):
            path = self.files[(index + attempt) % len(self.files)]
            try:
                return self.transform(load_image(path))
            except StylecastError:
                log.warning("skipping unreadable content image %s", path)
        raise StylecastError("no content image could be decoded")
