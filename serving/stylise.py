"""`stylecast stylise`: stylise image files or folders offline with the onnxruntime path."""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from stylecast.errors import StylecastError

from .imaging import DEFAULT_MAX_PIXELS, ImageError, StyliseOptions, decode
from .repository import ModelRepository

log = logging.getLogger(__name__)

INPUT_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Expand files and folders (recursive) into a sorted list of image paths."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(
                p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES
            )
            if not found:
                raise StylecastError(f"no JPEG, PNG or WebP images under {item}")
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            raise StylecastError(f"input not found: {item}")
    return files


def output_path(source: Path, out: Path | None, many: bool, model: str) -> Path:
    """Where a stylised ``source`` goes: OUT itself for one input with a file suffix, else a
    file named after the source in OUT (default: beside the source)."""
    if out is not None and not many and out.suffix.lower() in INPUT_SUFFIXES:
        return out
    folder = out if out is not None else source.parent
    return folder / f"{source.stem}.{model}.jpg"


def stylise_files(
    inputs: list[str],
    model_name: str,
    models_dir: str = "models",
    out: str | None = None,
    options: StyliseOptions | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    repository: ModelRepository | None = None,
) -> list[Path]:
    """Stylise every input; bad images are reported and skipped, the rest still written.
    Raises StylecastError at the end if any input failed."""
    files = collect_inputs(inputs)
    repository = repository or ModelRepository(models_dir)
    model = repository.get(model_name)
    out_path = Path(out) if out else None
    written, failed = [], []
    for source in tqdm(files, desc="stylise", unit="img", disable=len(files) < 2):
        try:
            image = decode(source.read_bytes(), max_pixels)
        except ImageError as exc:
            log.error("%s: %s", source, exc)
            failed.append(source)
            continue
        target = output_path(source, out_path, len(files) > 1, model_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(model.stylise(image, options)).save(target, quality=92)
        written.append(target)
    if failed:
        raise StylecastError(
            f"{len(failed)} of {len(files)} input(s) could not be read (first: {failed[0]}); "
            f"{len(written)} written"
        )
    return written
