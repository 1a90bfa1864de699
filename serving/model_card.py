"""The model card (`models/NAME/model.json`): what a model is, how it was made, and the I/O
contract of its ONNX graph. Written by `stylecast export`, validated by the repository."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stylecast.errors import StylecastError

CARD_FILE = "model.json"
MODEL_FILE = "model.onnx"
TRITON_CONFIG = "config.pbtxt"
INPUT_NAME = "image"
OUTPUT_NAME = "stylised"
MIN_SIDE = 8  # smallest height/width the exported graphs accept (reflection padding)
MAX_SIDE = 8192
IO_SPEC = {
    "input": {
        "name": INPUT_NAME,
        "dtype": "uint8",
        "shape": ["N", "H", "W", 3],
        "layout": "NHWC RGB",
    },
    "output": {
        "name": OUTPUT_NAME,
        "dtype": "uint8",
        "shape": ["N", "H", "W", 3],
        "layout": "NHWC RGB",
    },
}


@dataclass
class VersionInfo:
    """One exported version (`models/NAME/<version>/model.onnx`)."""

    sha256: str
    precision: str  # "fp32" | "fp16"
    opset: int
    created: str
    parity: dict[str, Any] = field(default_factory=dict)
    export_command: str = ""


@dataclass
class ModelCard:
    """Everything a consumer needs to know about a model, newest version first in importance."""

    name: str
    version: int
    versions: dict[str, VersionInfo]
    style_image: str
    style_sha256: str
    style_thumbnail: str  # data: URI of a small JPEG, or "" if the style file was unavailable
    vgg_weights: str
    train_config: dict[str, Any]
    final_losses: dict[str, float]
    train_command: str
    exporter: str
    io: dict[str, Any] = field(default_factory=lambda: dict(IO_SPEC))
    testing_only: bool = False
    description: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def write(self, model_dir: Path) -> Path:
        path = model_dir / CARD_FILE
        path.write_text(self.to_json() + "\n")
        return path

    def summary(self) -> dict[str, Any]:
        """The card without its bulky fields, for listings."""
        data = asdict(self)
        data.pop("style_thumbnail")
        return data


def read_card(model_dir: Path) -> ModelCard:
    """Load and validate `model_dir/model.json`; raises StylecastError naming the problem."""
    path = model_dir / CARD_FILE
    if not path.is_file():
        raise StylecastError(f"{path}: model card missing")
    try:
        data = json.loads(path.read_text())
        versions = {k: VersionInfo(**v) for k, v in data.pop("versions").items()}
        card = ModelCard(versions=versions, **data)
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise StylecastError(f"{path}: not a valid model card ({exc})") from None
    if card.name != model_dir.name:
        raise StylecastError(
            f"{path}: card names model {card.name!r}, folder is {model_dir.name!r}"
        )
    if card.io.get("input", {}).get("name") != INPUT_NAME:
        raise StylecastError(f"{path}: unsupported input spec {card.io.get('input')}")
    return card
