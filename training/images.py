"""Image I/O for the training side: files to float tensors in [0, 1] and back, via torchvision."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image, encode_jpeg, write_file, write_png
from torchvision.transforms.v2 import functional as TF

from stylecast.errors import StylecastError
from stylecast.image_rules import IMAGE_SUFFIXES, fit_longest_side


def load_image(path: str | Path, max_side: int | None = None) -> torch.Tensor:
    """Read an RGB image as a float tensor [3, H, W] in [0, 1], optionally shrunk so its
    longer side is ``max_side``. Raises StylecastError for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise StylecastError(f"image not found: {path}")
    try:
        data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
        image = decode_image(data, mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError) as exc:
        raise StylecastError(f"cannot read image {path}: not a valid JPEG, PNG or WebP") from exc
    if image.shape[-1] < 1 or image.shape[-2] < 1:
        raise StylecastError(f"image {path} is empty")
    image = TF.to_dtype(image, torch.float32, scale=True)
    if max_side is not None:
        image = resize_max_side(image, max_side)
    return image.contiguous()


def resize_max_side(image: torch.Tensor, max_side: int) -> torch.Tensor:
    """Resize so the longer side equals ``max_side``, keeping the aspect ratio."""
    if max_side <= 0:
        raise StylecastError(f"image size must be > 0 (got {max_side})")
    height, width = image.shape[-2:]
    new_width, new_height = fit_longest_side(width, height, max_side)
    return TF.resize(image, [new_height, new_width], antialias=True)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """Float [.., 3, H, W] in [0, 1] to uint8, rounded."""
    return (image.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def save_image(image: torch.Tensor, path: str | Path, quality: int = 92) -> Path:
    """Write a float [3, H, W] image in [0, 1]; the format follows the suffix (.png or .jpg)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = to_uint8(image)
    suffix = path.suffix.lower()
    if suffix == ".png":
        write_png(pixels, str(path))
    elif suffix in {".jpg", ".jpeg"}:
        write_file(str(path), encode_jpeg(pixels, quality=quality))
    else:
        raise StylecastError(f"cannot write {path}: use a .png or .jpg file name")
    return path


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted; raises if the folder has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StylecastError(f"content folder not found: {folder}")
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise StylecastError(f"no JPEG, PNG or WebP images found under {folder}")
    return files
