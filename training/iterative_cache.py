"""The on-disk cache of iterative outputs for `stylecast validate`: ``KEY.png`` + ``KEY.json``
per run, keyed by the content file's bytes and every setting that changes the output, so a
re-run (or one after Ctrl-C) skips the slow optimisation."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def cache_key(content_bytes: bytes, fields: dict[str, Any]) -> str:
    """SHA-256 of the content file's bytes and every setting that changes the iterative output."""
    digest = hashlib.sha256(content_bytes)
    digest.update(json.dumps(fields, sort_keys=True).encode())
    return digest.hexdigest()


@dataclass
class CachedRun:
    """One cache entry: the output image and its record (seconds, history, settings…)."""

    image: np.ndarray
    record: dict[str, Any]


class IterativeCache:
    """Iterative outputs on disk: ``KEY.png`` + ``KEY.json``, each written to a temporary file
    and renamed, JSON last, so an interrupted run never leaves an entry that looks complete."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def get(self, key: str, shape: tuple[int, ...]) -> CachedRun | None:
        """The entry for ``key`` if it is complete, readable and of image ``shape``."""
        png, meta = self.folder / f"{key}.png", self.folder / f"{key}.json"
        if not (png.is_file() and meta.is_file()):
            return None
        try:
            record = json.loads(meta.read_text())
            with Image.open(png) as file:
                image = np.asarray(file.convert("RGB"))
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable cache entry %s: %s", key[:12], exc)
            return None
        if record.get("format") != CACHE_FORMAT or image.shape != shape:
            return None
        return CachedRun(image, record)

    def put(self, key: str, image: np.ndarray, record: dict[str, Any]) -> None:
        """Store an entry: the PNG first, then the JSON that makes it complete."""
        self.folder.mkdir(parents=True, exist_ok=True)
        png, meta = self.folder / f"{key}.png", self.folder / f"{key}.json"
        tmp_png = png.with_name(f".{key}.{os.getpid()}.png.tmp")
        tmp_meta = meta.with_name(f".{key}.{os.getpid()}.json.tmp")
        try:
            Image.fromarray(image).save(tmp_png, format="PNG")
            os.replace(tmp_png, png)
            tmp_meta.write_text(json.dumps({"format": CACHE_FORMAT, **record}, indent=1))
            os.replace(tmp_meta, meta)
        finally:
            tmp_png.unlink(missing_ok=True)
            tmp_meta.unlink(missing_ok=True)
