"""The model repository's on-disk contract, owned here (read and write). (About 400 lines
on purpose: the card, the version metadata and the multi-style fields are one contract, each
file validated against its schema, and kept in one place so no other module parses them.)

    models/NAME/model.json          the model card: what the model is and how it was made
    models/NAME/config.pbtxt        NVIDIA Triton's config (written by ``triton.py``)
    models/NAME/style.<ext>         the style image the model was trained on (SHA-256 in the
                                    card), so a model folder is self-contained
    models/NAME/styles/<style>.<ext>  a multi-style model's style images, one per style
    models/NAME/<N>/model.onnx      version N's graph (uint8 NHWC RGB in and out)
    models/NAME/<N>/version.json    version N's own metadata: SHA-256, precision, parity, …

Each version folder is self-contained, as in Triton's repository: an exporter writes the
graph and its ``version.json`` into a staging folder and publishes the version with one
atomic rename, so a reader never sees a version without its metadata. Cards written before
``version.json`` existed (metadata in ``model.json``'s "versions") are still read.

Multi-style models (conditional instance norm): the card's ``styles`` lists every style in
the network's order (name, image file name, SHA-256, thumbnail), the graph takes a second
input, ``style_weights`` float32 [N, S] (each row: one weight per style, summing to 1), and
``io`` says so. The first style is also the card's ``style_image``, so a reader that knows
only single-style cards still sees the model's default style. Cards without ``styles`` are
single-style models, as every card written before it existed.

Every file is validated against its schema when read; a bad file raises StylecastError
naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stylecast.errors import StylecastError

CARD_FILE = "model.json"
VERSION_FILE = "version.json"
MODEL_FILE = "model.onnx"
TRITON_CONFIG = "config.pbtxt"
INPUT_NAME = "image"
OUTPUT_NAME = "stylised"
STYLE_WEIGHTS_NAME = "style_weights"  # multi-style graphs' second input, float32 [N, S]
STYLES_DIR = "styles"
MIN_SIDE = 8  # smallest height/width the exported graphs accept (reflection padding)
MAX_SIDE = 8192
MAX_OPSET = 1000  # far above any ONNX opset; keeps the value inside the proto's uint32
MAX_VERSION = 2**32 - 1  # versions travel as uint32
PRECISIONS = ("fp32", "fp16", "int8")  # int8: QDQ graph, float in and out of each conv
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


def io_spec(styles: int = 1) -> dict[str, Any]:
    """The graph's inputs and outputs as the card records them (``styles`` > 1: with the
    ``style_weights`` input)."""
    spec: dict[str, Any] = dict(IO_SPEC)
    if styles > 1:
        spec["style_weights"] = {
            "name": STYLE_WEIGHTS_NAME,
            "dtype": "float32",
            "shape": ["N", styles],
            "layout": "one weight per style, in the card's order; each row sums to 1",
        }
    return spec


def check_style_name(name: str) -> bool:
    """Whether ``name`` can name a style: letters, digits, '-', '_' or '.' (so ``a:0.7,b:0.3``
    mixes parse), not empty."""
    return bool(name) and all(c.isalnum() or c in "-_." for c in name)


@dataclass
class StyleEntry:
    """One style of a multi-style model, in the network's order."""

    name: str  # how requests name it (the style image's file name without extension)
    image: str  # the style image's file name
    sha256: str
    thumbnail: str = ""  # data: URI of a small JPEG, or ""


@dataclass
class VersionInfo:
    """One exported version (``models/NAME/<N>/version.json``)."""

    sha256: str
    precision: str  # one of PRECISIONS
    opset: int
    created: str
    parity: dict[str, Any] = field(default_factory=dict)
    export_command: str = ""

    @property
    def parity_passed(self) -> bool:
        return self.parity.get("passed") is True

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


@dataclass
class ModelCard:
    """Everything a consumer needs to know about a model (``model.json``), with the versions
    found on disk (``versions``, newest ``version``) filled in by ``read_card``."""

    name: str
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
    styles: list[StyleEntry] = field(default_factory=list)  # multi-style models only
    versions: dict[str, VersionInfo] = field(default_factory=dict)  # from the version folders
    version: int = 0  # the newest version with valid metadata (0: none)

    @property
    def style_names(self) -> list[str]:
        """A multi-style model's style names, in order (empty: a single-style model)."""
        return [style.name for style in self.styles]

    def to_json(self) -> str:
        """``model.json``'s text: the model-level fields (versions live in their folders)."""
        data = asdict(self)
        del data["versions"], data["version"]
        if not self.styles:
            del data["styles"]  # single-style cards stay as they always were
        return json.dumps(data, indent=2)


# --- schema -------------------------------------------------------------------------------------

_CARD_FIELDS: dict[str, type] = {
    "name": str,
    "style_image": str,
    "style_sha256": str,
    "style_thumbnail": str,
    "vgg_weights": str,
    "train_config": dict,
    "final_losses": dict,
    "train_command": str,
    "exporter": str,
    "io": dict,
    "testing_only": bool,
    "description": str,
    "styles": list,
}
_STYLE_FIELDS: dict[str, type] = {"name": str, "image": str, "sha256": str, "thumbnail": str}
_CARD_REQUIRED = ("name", "style_image", "style_sha256", "vgg_weights", "train_config")
_VERSION_FIELDS: dict[str, type] = {
    "sha256": str,
    "precision": str,
    "opset": int,
    "created": str,
    "parity": dict,
    "export_command": str,
}
_VERSION_REQUIRED = ("sha256", "precision", "opset", "created")


def _checked(data: Any, fields: dict[str, type], required: tuple[str, ...], where: str) -> dict:
    """``data`` restricted to ``fields``, each of the right JSON type; raises naming the field."""
    if not isinstance(data, dict):
        raise StylecastError(f"{where}: expected a JSON object, got {type(data).__name__}")
    missing = [name for name in required if name not in data]
    if missing:
        raise StylecastError(f"{where}: missing field(s) {', '.join(missing)}")
    out = {}
    for name, kind in fields.items():
        if name not in data:
            continue
        value = data[name]
        # bool is an int in Python; a JSON true is no opset.
        wrong_bool = kind is int and isinstance(value, bool)
        if not isinstance(value, kind) or wrong_bool:
            raise StylecastError(
                f"{where}: field {name!r} must be {kind.__name__}, got {type(value).__name__}"
            )
        if isinstance(value, str) and not _encodable(value):
            raise StylecastError(f"{where}: field {name!r} is not valid UTF-8 text")
        out[name] = value
    return out


def _encodable(text: str) -> bool:
    """False for strings holding lone surrogates (JSON "\\ud800"), which protobuf refuses."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_version_info(data: Any, where: str) -> VersionInfo:
    """A validated VersionInfo from JSON data; raises StylecastError naming the problem."""
    values = _checked(data, _VERSION_FIELDS, _VERSION_REQUIRED, where)
    if values["precision"] not in PRECISIONS:
        raise StylecastError(
            f"{where}: precision {values['precision']!r} is not one of {', '.join(PRECISIONS)}"
        )
    if not 1 <= values["opset"] <= MAX_OPSET:
        raise StylecastError(f"{where}: opset {values['opset']} is out of range")
    sha = values["sha256"]
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise StylecastError(f"{where}: sha256 is not 64 lowercase hex digits")
    if "passed" in values.get("parity", {}) and not isinstance(values["parity"]["passed"], bool):
        raise StylecastError(f"{where}: parity.passed must be true or false")
    return VersionInfo(**values)


def _parse_losses(data: dict[str, Any], where: str) -> dict[str, float]:
    losses = {}
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise StylecastError(f"{where}: final_losses[{name!r}] must be a number")
        try:
            losses[name] = float(value)
        except OverflowError:
            raise StylecastError(f"{where}: final_losses[{name!r}] is out of range") from None
        if not _encodable(name):
            raise StylecastError(f"{where}: a final_losses name is not valid UTF-8 text")
    return losses


def _check_io(io: dict[str, Any], where: str, styles: int) -> None:
    for side, expected in IO_SPEC.items():
        spec = io.get(side)
        if not isinstance(spec, dict) or spec.get("name") != expected["name"]:
            raise StylecastError(f"{where}: unsupported io.{side} spec {spec!r}")
        if spec.get("dtype") != "uint8":
            raise StylecastError(f"{where}: io.{side}.dtype must be uint8")
    weights = io.get("style_weights")
    if styles > 1 and weights != io_spec(styles)["style_weights"]:
        raise StylecastError(
            f"{where}: io.style_weights must describe a float32 [N, {styles}] input "
            f"named {STYLE_WEIGHTS_NAME!r} (got {weights!r})"
        )
    if styles <= 1 and weights is not None:
        raise StylecastError(f"{where}: io.style_weights given for a single-style model")


def _parse_styles(data: list[Any], where: str) -> list[StyleEntry]:
    """The card's ``styles``: none, or two or more with distinct, valid names."""
    styles = []
    for index, item in enumerate(data):
        values = _checked(
            item, _STYLE_FIELDS, ("name", "image", "sha256"), f"{where} styles[{index}]"
        )
        if not check_style_name(values["name"]):
            raise StylecastError(
                f"{where}: styles[{index}].name {values['name']!r} must be letters, digits, "
                "'-', '_' or '.'"
            )
        styles.append(StyleEntry(**values))
    names = [style.name for style in styles]
    if len(set(names)) != len(names):
        raise StylecastError(f"{where}: style names repeat ({', '.join(names)})")
    if len(styles) == 1:
        raise StylecastError(f"{where}: a multi-style card needs at least two styles")
    return styles


# --- reading ------------------------------------------------------------------------------------


def version_numbers(model_dir: Path) -> list[int]:
    """Version folder numbers (plain ASCII digits only), newest first."""
    return sorted(
        (
            int(p.name)
            for p in model_dir.iterdir()
            if p.is_dir() and p.name.isascii() and p.name.isdigit() and int(p.name) <= MAX_VERSION
        ),
        reverse=True,
    )


def read_version_info(version_dir: Path) -> VersionInfo:
    """Validated ``version_dir/version.json``."""
    path = version_dir / VERSION_FILE
    return parse_version_info(_read_json(path, "version metadata"), str(path))


def read_card(model_dir: Path) -> ModelCard:
    """Load and validate ``model_dir/model.json`` and the metadata of every version folder.

    A version folder whose metadata is missing or invalid is left out of ``versions``
    (``version_errors`` says why); a bad ``model.json`` raises StylecastError."""
    card, _ = read_card_and_errors(model_dir)
    return card


def read_card_and_errors(model_dir: Path) -> tuple[ModelCard, dict[int, str]]:
    """``read_card`` plus, per version folder that was left out, the reason."""
    path = model_dir / CARD_FILE
    data = _read_json(path, "model card")
    where = str(path)
    values = _checked(data, _CARD_FIELDS, _CARD_REQUIRED, where)
    values["final_losses"] = _parse_losses(values.get("final_losses", {}), where)
    values["styles"] = _parse_styles(values.get("styles", []), where)
    card = ModelCard(**_with_defaults(values))
    if card.name != model_dir.name:
        raise StylecastError(
            f"{path}: card names model {card.name!r}, folder is {model_dir.name!r}"
        )
    _check_io(card.io, where, len(card.styles))
    legacy = data.get("versions") if isinstance(data, dict) else None
    errors: dict[int, str] = {}
    for number in version_numbers(model_dir):
        version_dir = model_dir / str(number)
        try:
            if (version_dir / VERSION_FILE).is_file() or not isinstance(legacy, dict):
                info = read_version_info(version_dir)
            elif str(number) in legacy:
                info = parse_version_info(legacy[str(number)], f"{where} versions[{number}]")
            else:
                raise StylecastError(f"{version_dir / VERSION_FILE}: version metadata missing")
        except StylecastError as exc:
            errors[number] = str(exc)
            continue
        card.versions[str(number)] = info
    card.version = max((int(v) for v in card.versions), default=0)
    return card, errors


def _with_defaults(values: dict[str, Any]) -> dict[str, Any]:
    defaults = {"style_thumbnail": "", "final_losses": {}, "train_command": "", "exporter": ""}
    return {**defaults, **values}


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise StylecastError(f"{path}: {what} missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StylecastError(f"{path}: not a valid {what} (not JSON: {exc})") from None
    except OSError as exc:
        raise StylecastError(f"{path}: cannot read ({exc.strerror})") from None


def check_graph_file(model_dir: Path, card: ModelCard, version: int) -> Path:
    """The path of ``version``'s graph; StylecastError when it is missing or its bytes do not
    match the SHA-256 its version.json records (a partial copy, a hand edit)."""
    path = model_dir / str(version) / MODEL_FILE
    if not path.is_file():
        raise StylecastError(f"{path}: missing")
    if hashlib.sha256(path.read_bytes()).hexdigest() != card.versions[str(version)].sha256:
        raise StylecastError(f"{path}: file does not match its version's SHA-256")
    return path


def style_file(model_dir: Path, card: ModelCard) -> Path:
    """Where the model's copy of its style image is (it may be absent in older folders)."""
    return model_dir / f"style{Path(card.style_image).suffix.lower() or '.jpg'}"


def style_files(model_dir: Path, card: ModelCard) -> list[Path]:
    """Where the model keeps each style's image, in the styles' order (one: ``style_file``)."""
    if not card.styles:
        return [style_file(model_dir, card)]
    return [
        model_dir / STYLES_DIR / f"{s.name}{Path(s.image).suffix.lower() or '.jpg'}"
        for s in card.styles
    ]


# --- writing ------------------------------------------------------------------------------------


def write_version_info(version_dir: Path, info: VersionInfo) -> Path:
    """Write ``version.json`` into a (staging) version folder."""
    path = version_dir / VERSION_FILE
    path.write_text(info.to_json() + "\n", encoding="utf-8")
    return path


def write_card(model_dir: Path, card: ModelCard) -> Path:
    """Write ``model.json`` atomically (temporary file, then rename)."""
    path = model_dir / CARD_FILE
    tmp = path.with_name(f".{CARD_FILE}.{os.getpid()}.tmp")
    tmp.write_text(card.to_json() + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
