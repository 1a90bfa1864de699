"""The model under validation and what its card says about its training: the loss settings, the
VGG weights spec and the style image, each found or refused with a clear error."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylecast.errors import StylecastError
from stylecast.serving.model_card import style_files

from .config import LossConfig, loss_from_dict
from .vgg_weights import VggWeights

if TYPE_CHECKING:
    from stylecast.serving.runtime import StyleModel

log = logging.getLogger(__name__)


def card_loss(card: Any, overrides: dict[str, Any]) -> LossConfig:
    """The model's training loss settings with the user's overrides; raises if unusable."""
    train = card.train_config if isinstance(card.train_config, dict) else {}
    if not isinstance(train.get("loss"), dict):
        raise StylecastError(
            f"model {card.name!r}: its card has no loss settings (train_config.loss); "
            "re-export it with `stylecast export`"
        )
    try:
        return dataclasses.replace(loss_from_dict(train["loss"]), **overrides)
    except TypeError as exc:
        raise StylecastError(
            f"model {card.name!r}: unusable loss settings in its card ({exc})"
        ) from None


def trained_style_size(card: Any) -> int:
    """The longer side the style image had when the model was trained: its Gram targets are
    only comparable at that scale (the training config's style_size, else its image_size)."""
    train = card.train_config if isinstance(card.train_config, dict) else {}
    for key in ("style_size", "image_size"):
        value = train.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    raise StylecastError(
        f"model {card.name!r}: its card does not record the training style size; pass --style-size"
    )


def card_vgg_spec(card: Any, override: str | None) -> str:
    """The --vgg-weights spec to rebuild the model's loss network."""
    if override:
        VggWeights.parse(override)  # malformed: a clear error now, not after loading
        return override
    spec = card.train_config.get("vgg_weights") if isinstance(card.train_config, dict) else None
    if isinstance(spec, str) and spec:
        return spec
    recorded = VggWeights.parse(card.vgg_weights).spec if card.vgg_weights else None
    if recorded is not None:
        return recorded
    raise StylecastError(
        f"model {card.name!r}: its card does not say which VGG weights it was trained with; "
        "pass --vgg-weights"
    )


def resolve_style(
    card: Any, override: str | None, model_dir: Path, index: int = 0
) -> tuple[Path, str, bool]:
    """Find the model's style image (style ``index`` of a multi-style model): --style, else
    the copy kept in the model folder, else the path it was trained from (older model folders
    have no copy).

    Returns (path, its SHA-256, whether it matches the card). Raises if none exists.
    """
    expected = card.styles[index].sha256 if card.styles else card.style_sha256
    if override:
        candidates = [Path(override)]
        if not candidates[0].is_file():
            raise StylecastError(f"style image not found: {override}")
    else:
        trained = _trained_styles(card)
        candidates = [
            style_files(model_dir, card)[index],
            *([Path(trained[index])] if index < len(trained) else []),
        ]
    for path in candidates:
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            matches = not expected or digest == expected
            if not matches:
                log.warning(
                    "style image %s differs from the one model %s was trained on (SHA-256 %s…, "
                    "card says %s…); scores use this file",
                    path,
                    card.name,
                    digest[:12],
                    expected[:12],
                )
            return path, digest, matches
    looked = ", ".join(str(p) for p in candidates) or "nowhere"
    raise StylecastError(
        f"style image {card.style_image!r} of model {card.name!r} not found (looked at {looked}); "
        "pass --style PATH"
    )


def _trained_styles(card: Any) -> list[str]:
    """The style image paths the card's training config names, in order."""
    config = card.train_config if isinstance(card.train_config, dict) else {}
    first = config.get("style_image")
    extra = config.get("extra_styles") or []
    return [str(p) for p in ([first] if first else []) + list(extra)]


def load_style_model(models_dir: str | Path, name: str) -> StyleModel:
    """The newest loadable version of ``models_dir/name`` (onnxruntime, best provider)."""
    from stylecast.serving.repository import load_model_dir
    from stylecast.serving.runtime import RuntimeOptions

    root = Path(models_dir)
    if not root.is_dir():
        raise StylecastError(f"models folder not found: {root}")
    model_dir = root / name
    if not name or not model_dir.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise StylecastError(f"no model {name!r} in {root} (found: {', '.join(known) or 'none'})")
    model, newer_broken = load_model_dir(model_dir, RuntimeOptions())
    for problem in newer_broken:
        log.warning("model %s: skipped a newer version: %s", name, problem)
    return model
