"""Content images for training: folder scans that skip bad files, the held-aside validation
split, random multi-scale crops for training and centre crops for validation."""

from __future__ import annotations

import hashlib
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


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes: the identity of an image, wherever it is copied."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def scan_folders(
    folders: Sequence[str | Path],
    min_side: int = MIN_CONTENT_SIDE,
    exclude: Sequence[str | Path] = (),
) -> list[Path]:
    """``scan_content`` over several folders, in order. A file whose bytes were already seen
    (the same photo in two folders) is kept once, and a file whose bytes match any image
    under an ``exclude`` folder (a test set) is dropped, wherever it lies."""
    excluded = {file_digest(path) for folder in exclude for path in list_images(folder)}
    seen: set[str] = set()
    files: list[Path] = []
    for folder in folders:
        for path in scan_content(folder, min_side):
            digest = file_digest(path)
            if digest not in seen and digest not in excluded:
                seen.add(digest)
                files.append(path)
    if not files:
        raise StylecastError("every content image is excluded (it is also in an --exclude-dir)")
    return files


def hold_out(files: Sequence[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """Split ``files`` into (training, held-aside validation) files.

    A file is held aside when the hash of its name falls in the lowest ``fraction`` of the
    hash range, so the choice is the same on every run, rank and machine, and adding files
    never moves the others between the sets. With two or more files and ``fraction`` > 0, at
    least one is held aside and at least one kept for training."""
    if fraction <= 0 or len(files) < 2:
        return list(files), []

    def position(path: Path) -> float:
        return int(hashlib.sha256(path.name.encode()).hexdigest()[:12], 16) / 16**12

    held = {f for f in files if position(f) < fraction}
    if not held:
        held = {min(files, key=position)}
    if len(held) == len(files):
        held.discard(max(files, key=position))
    return [f for f in files if f not in held], [f for f in files if f in held]


class ContentImages(Dataset):
    """Random-resized square crops of content images, as float [3, size, size] in [0, 1]:
    each crop covers between ``scale_min`` and all of an image's area, so the network sees
    content at many scales.

    A file that fails to decode later (truncated after the scan) is replaced by the next one,
    so a bad file never stops an epoch.
    """

    def __init__(self, files: Sequence[Path], size: int, scale_min: float = 0.3) -> None:
        self.files = list(files)
        self.transform = v2.Compose(
            [
                v2.RandomResizedCrop(size, scale=(scale_min, 1.0), antialias=True),
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


class ValidationImages(Dataset):
    """Held-aside images as deterministic centre crops, float [3, size, size] in [0, 1]."""

    def __init__(self, files: Sequence[Path], size: int) -> None:
        self.files = list(files)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = v2.functional.resize(load_image(self.files[index]), self.size, antialias=True)
        return v2.functional.center_crop(image, [self.size, self.size])  # shorter side = size
