"""`stylecast stylise`: stylise image files or folders offline, with no server, through the
same pipeline the server runs (serving.pipeline)."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm.auto import tqdm

from stylecast.errors import StylecastError
from stylecast.image_rules import IMAGE_SUFFIXES

from .imaging import (
    DEFAULT_MAX_PIXELS,
    EncodedImage,
    ImageError,
    OutputFormat,
    StyliseOptions,
    encoding_for_suffix,
)
from .pipeline import stylise
from .repository import ModelRepository

log = logging.getLogger(__name__)

OUTPUT_QUALITY = 92  # JPEG/WebP quality of the files written


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Expand files and folders (recursive) into a sorted list of image paths."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(
                p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
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
    """Where a stylised ``source`` goes: OUT itself for one input with an image suffix, else
    a JPEG named after the source in OUT (default: beside the source)."""
    if out is not None and not many and out.suffix.lower() in IMAGE_SUFFIXES:
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
    progress: bool = False,
) -> list[Path]:
    """Stylise every input, each written in the encoding its suffix names; ``progress`` shows
    a progress bar for several inputs. Bad images are logged and skipped, the rest still
    written; raises StylecastError at the end if any input failed."""
    files = collect_inputs(inputs)
    repository = repository or ModelRepository(models_dir)
    model = repository.get(model_name)
    out_path = Path(out) if out else None
    written, failed = [], []
    bar = tqdm(files, desc="stylise", unit="img", disable=not progress or len(files) < 2)
    for source in bar:
        target = output_path(source, out_path, len(files) > 1, model_name)
        output = OutputFormat(encoding_for_suffix(target.suffix), OUTPUT_QUALITY)
        try:
            result = stylise(
                model, EncodedImage(source.read_bytes()), options, output, max_pixels=max_pixels
            )
        except ImageError as exc:
            log.error("%s: %s", source, exc)
            failed.append(source)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(result.image.data)
        written.append(target)
    if failed:
        raise StylecastError(
            f"{len(failed)} of {len(files)} input(s) could not be stylised (first: {failed[0]}); "
            f"{len(written)} written"
        )
    return written
