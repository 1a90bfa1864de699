"""What a local models folder holds, read from the model cards (``model_card``) with no graph
loaded, no server and no torch: one ``ModelEntry`` per model folder, broken ones included
with the reason, for `stylecast models`.

The version an entry names is the one the server would serve: the newest whose metadata is
valid and whose ``model.onnx`` is present and matches its SHA-256 (as ``repository`` picks it;
the graph itself is not loaded). Version folders that fail are in ``version_errors``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from stylecast.errors import StylecastError

from .model_card import MODEL_FILE, ModelCard, check_graph_file, read_card_and_errors
from .stylise import model_names

# The network presets of training.config.NetworkConfig (width, residual blocks, architecture),
# spelled here so that serving needs nothing from training; a test keeps the two in step.
NETWORK_PRESETS = {
    (32, 5, "johnson"): "standard",
    (16, 3, "johnson"): "lite",
    (48, 5, "quarter"): "rt",
}


@dataclass(frozen=True)
class ModelEntry:
    """One model folder. ``error`` set: the model cannot be served (the other fields say what
    could still be read)."""

    name: str
    version: int | None = None  # the version that would serve
    versions: list[int] = field(default_factory=list)  # every version with valid metadata
    network: str | None = None  # a preset name, or "[ARCHITECTURE, ]width W, B blocks"
    network_config: dict[str, Any] | None = None  # the card's train_config.network
    precision: str | None = None  # of ``version``
    size_bytes: int | None = None  # of ``version``'s model.onnx
    testing_only: bool | None = None
    description: str = ""
    styles: list[str] = field(default_factory=list)  # a multi-style model's, in order
    error: str | None = None
    version_errors: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (version numbers as keys become strings)."""
        data = asdict(self)
        data["version_errors"] = {str(k): v for k, v in self.version_errors.items()}
        return data


def network_label(network: Any) -> str | None:
    """The card's ``train_config.network`` in words: a preset name, or width and blocks."""
    if not isinstance(network, dict):
        return None
    width, blocks = network.get("width"), network.get("residual_blocks")
    architecture = network.get("architecture", "johnson")
    if not isinstance(width, int) or not isinstance(blocks, int):
        return None
    described = f"width {width}, {blocks} blocks"
    if architecture != "johnson":
        described = f"{architecture}, {described}"
    return NETWORK_PRESETS.get((width, blocks, architecture), described)


def _serving_version(model_dir: Path, card: ModelCard, errors: dict[int, str]) -> int | None:
    """The newest version whose graph file is present and matches its SHA-256; records the
    reason of each newer one that is not in ``errors``."""
    for number in sorted(map(int, card.versions), reverse=True):
        try:
            check_graph_file(model_dir, card, number)
        except StylecastError as exc:
            errors[number] = str(exc)
        else:
            return number
    return None


def read_entry(model_dir: Path) -> ModelEntry:
    """The entry of one model folder; never raises for a broken model (``error`` says why)."""
    try:
        card, errors = read_card_and_errors(model_dir)
        version = _serving_version(model_dir, card, errors)
    except (StylecastError, OSError) as exc:
        return ModelEntry(model_dir.name, error=str(exc))
    network = card.train_config.get("network")
    entry = ModelEntry(
        name=card.name,
        versions=sorted(map(int, card.versions)),
        network=network_label(network),
        network_config=network if isinstance(network, dict) else None,
        testing_only=card.testing_only,
        description=card.description,
        styles=list(card.style_names),
        version_errors=dict(sorted(errors.items())),
    )
    if version is None:
        reasons = "; ".join(errors.values()) or f"expected {model_dir}/1/{MODEL_FILE}"
        return replace(entry, error=f"no usable version ({reasons})")
    path = model_dir / str(version) / MODEL_FILE
    precision = card.versions[str(version)].precision
    return replace(entry, version=version, precision=precision, size_bytes=path.stat().st_size)


def list_models(models_dir: str | Path) -> list[ModelEntry]:
    """Every model folder in ``models_dir``, by name."""
    root = Path(models_dir)
    if not root.is_dir():
        raise StylecastError(f"models folder not found: {root}")
    return [read_entry(root / name) for name in model_names(root)]
