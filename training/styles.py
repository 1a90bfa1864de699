"""The style list of a multi-style run: `--styles DIR` as a list of images, and the config that
adds styles to a trained network (`stylecast train --add-style c.jpg --resume RUN`).

Adding styles follows Dumoulin et al. (2017): the trained network's shared weights and its
styles' instance-norm rows are kept as they are, and only the new styles' rows train
(``module.trainable_parameters``). The new run takes everything that shapes the model
(network, loss, VGG weights, style size) from the base run's record; the base's style images
must still be where its record says (their Grams are rebuilt, and their SHA-256s must match).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from stylecast.errors import StylecastError

from .config import TrainConfig, train_from_dict
from .images import list_images
from .run_folder import read_trained


def folder_styles(folder: str | Path) -> tuple[str, ...]:
    """The style images under ``folder``, sorted by path (that order is the styles' order)."""
    if not Path(folder).is_dir():
        raise StylecastError(f"style folder not found: {folder}")
    return tuple(str(p) for p in list_images(folder))


def add_style_config(
    base: str | Path, new_styles: tuple[str, ...], overrides: dict[str, Any]
) -> TrainConfig:
    """The config that trains ``new_styles`` into the network of ``base`` (a run folder or
    checkpoint), keeping its styles. ``overrides``: TrainConfig fields that do not change the
    model (content folders, batch size, steps' learning rate, ...); None values are ignored."""
    if not new_styles:
        raise StylecastError("--add-style needs at least one style image")
    trained = read_trained(base)
    recorded = train_from_dict(trained.record.train)
    if recorded.frozen_styles or recorded.base_weights:
        recorded = dataclasses.replace(recorded, frozen_styles=0, base_weights=None)
    for path, digest in zip(recorded.styles, trained.record.style_digests, strict=True):
        if not Path(path).is_file():
            raise StylecastError(
                f"style image {path} of {base} not found; it is needed to add styles"
            )
        if hashlib.sha256(Path(path).read_bytes()).hexdigest() != digest:
            raise StylecastError(f"style image {path} changed since {base} was trained")
    kept = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(
        recorded,
        **kept,
        extra_styles=(*recorded.extra_styles, *new_styles),
        frozen_styles=len(recorded.styles),
        base_weights=str(base),
        teacher=None,
    )
