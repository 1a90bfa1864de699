"""The model card an export writes for a trained run, and the style images kept with the
model: one style (``style_image``, its SHA-256 and thumbnail) or, for a multi-style network,
every style in order (``ModelCard.styles``; the first is also ``style_image``). The card's
schema is serving.model_card's; this module fills it from a run's record."""

from __future__ import annotations

import base64
import logging
import os
import shutil
from pathlib import Path

import torch

from stylecast.errors import StylecastError
from stylecast.serving.model_card import (
    STYLES_DIR,
    ModelCard,
    StyleEntry,
    io_spec,
    style_file,
    style_files,
)

from .config import style_name, train_from_dict
from .images import load_image
from .run_folder import RunRecord
from .vgg_weights import VggWeights

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 96


def _thumbnail(style_path: Path) -> str:
    if not style_path.is_file():
        log.warning("style image %s not found; the model card will have no thumbnail", style_path)
        return ""
    from torchvision.io import encode_jpeg

    image = load_image(style_path, THUMBNAIL_SIDE)
    data = encode_jpeg((image * 255).round().to(torch.uint8), quality=85).numpy().tobytes()
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def style_paths(record: RunRecord) -> tuple[str, ...]:
    """Every style image the run trained on, in order."""
    try:
        return train_from_dict(record.train).styles
    except (StylecastError, TypeError, KeyError):  # an old or partial record: one style
        return (str(record.train["style_image"]),)


def model_card(name: str, record: RunRecord, description: str) -> ModelCard:
    paths = [Path(p) for p in style_paths(record)]
    style_path = paths[0]
    thumbnails = [_thumbnail(p) for p in paths]
    styles = []
    if len(paths) > 1:
        styles = [
            StyleEntry(style_name(path), path.name, digest, thumbnail)
            for path, digest, thumbnail in zip(paths, record.style_digests, thumbnails, strict=True)
        ]
    return ModelCard(
        name=name,
        style_image=style_path.name,
        style_sha256=record.style_sha256,
        style_thumbnail=thumbnails[0],
        vgg_weights=record.vgg_weights,
        train_config=record.train,
        final_losses=record.final_losses,
        train_command=record.command,
        exporter=f"torch {torch.__version__} torch.onnx.export(dynamo=True)",
        testing_only=VggWeights.parse(record.vgg_weights).testing_only,
        description=description,
        io=io_spec(len(paths)),
        styles=styles,
    )


def copy_styles(sources: list[Path], model_dir: Path, card: ModelCard) -> None:
    """Keep the style images with the model (validation reads them from there): the first
    as ``style.<ext>``, and with several styles each under ``styles/``."""
    targets = [style_file(model_dir, card)]
    if card.styles:
        targets += style_files(model_dir, card)
        (model_dir / STYLES_DIR).mkdir(exist_ok=True)
    for source, target in zip([sources[0], *sources] if card.styles else sources, targets,
                              strict=True):  # fmt: skip
        if not source.is_file():
            continue  # already warned about by the thumbnail
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
