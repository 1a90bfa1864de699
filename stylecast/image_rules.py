"""Rules about images that every part shares, with no heavy imports: which files count as
images, and the size of an image fitted to a longest side. One definition of each, used by
training, serving, validation and the CLI."""

from __future__ import annotations

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})


def fit_longest_side(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is ``side``, aspect ratio kept, at least 1."""
    if side <= 0:
        raise ValueError(f"side must be > 0 (got {side})")
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))
