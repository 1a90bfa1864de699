"""`stylecast export`: a trained network to a versioned ONNX model in the model repository.

The graph is self-contained for clients: uint8 RGB [N, H, W, 3] in, uint8 RGB out, with
scaling, layout change, clamping and rounding inside; N, H and W are dynamic. Every export
is checked with onnx.checker and parity-tested against PyTorch before it is published.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stylecast.errors import StylecastError
from stylecast.serving.model_card import (
    CARD_FILE,
    INPUT_NAME,
    MAX_SIDE,
    MIN_SIDE,
    MODEL_FILE,
    OUTPUT_NAME,
    ModelCard,
    VersionInfo,
    read_card,
    style_file,
    version_numbers,
    write_card,
    write_version_info,
)
from stylecast.serving.triton import write_triton_config

from .config import network_from_dict
from .images import load_image
from .network import build_network
from .quantize import (
    CalibrationSplit,
    Int8Thresholds,
    int8_parity,
    quantize_int8,
    split_calibration_dir,
)
from .run_folder import RunRecord, read_trained
from .vgg import pink_noise
from .vgg_weights import VggWeights

log = logging.getLogger(__name__)

DEFAULT_OPSET = 20
PARITY_SIZES = ((64, 64), (257, 383), (131, 97))
MAX_BAD_FRACTION = {"fp32": 1e-3, "fp16": 2e-2}  # share of values off by more than 1 level
THUMBNAIL_SIDE = 96


class UInt8Graph(nn.Module):
    """uint8 NHWC RGB in, uint8 NHWC RGB out, around a float NCHW [0, 1] network."""

    def __init__(self, network: nn.Module, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.network = network
        self.dtype = dtype

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(self.dtype) / 255.0
        y = self.network(x) * 255.0
        return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


@dataclass
class TrainedModel:
    """A transform network with what its run recorded about it."""

    network: nn.Module
    record: RunRecord


@dataclass
class ExportResult:
    """A published version: where it is, its card, and the parity figures it passed."""

    model_path: Path
    card: ModelCard
    version: int
    parity: dict[str, Any]


def load_trained(path: str | Path) -> TrainedModel:
    """Load a run folder (config.json + transform.pt) or a Lightning checkpoint (.ckpt)."""
    trained = read_trained(path)
    try:
        network = build_network(network_from_dict(trained.record.train["network"]))
        network.load_state_dict(trained.state)
    except (KeyError, TypeError) as exc:
        raise StylecastError(f"{path}: no usable network settings in its record ({exc})") from None
    except RuntimeError as exc:
        raise StylecastError(f"weights in {path} do not fit the network: {exc}") from None
    return TrainedModel(network.eval(), trained.record)


def export_onnx(
    network: nn.Module, path: Path, fp16: bool = False, opset: int = DEFAULT_OPSET
) -> None:
    """Write the uint8 graph of ``network`` to ``path`` (dynamic N, H, W) and check it."""
    import onnx

    dtype = torch.float16 if fp16 else torch.float32
    graph = UInt8Graph(network.to(dtype).eval(), dtype).eval()
    example = torch.zeros(1, 64, 64, 3, dtype=torch.uint8)
    dims = {
        0: torch.export.Dim("batch", max=64),
        1: torch.export.Dim("height", min=MIN_SIDE, max=MAX_SIDE),
        2: torch.export.Dim("width", min=MIN_SIDE, max=MAX_SIDE),
    }
    with torch.no_grad():
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"image": dims},
            opset_version=opset,
            optimize=True,
            verbose=False,
        )
    if program is None:  # only None when asked to write the file itself
        raise StylecastError("torch.onnx.export returned no program")
    program.save(str(path))
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    network.float()


def parity_check(network: nn.Module, model_path: Path, fp16: bool) -> dict[str, Any]:
    """Compare onnxruntime (CPU) with PyTorch fp32 on natural-looking images of several sizes.

    Returns the worst share of values differing by more than one level, and the max difference.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    reference = UInt8Graph(network.float().eval())
    generator = torch.Generator().manual_seed(0)
    worst_fraction, worst_max, per_size = 0.0, 0, {}
    for h, w in PARITY_SIZES:
        side = max(h, w)
        image = (pink_noise(1, side, generator)[:, :, :h, :w] * 255).round().to(torch.uint8)
        nhwc = image.permute(0, 2, 3, 1).contiguous()
        with torch.no_grad():
            expected = reference(nhwc).numpy().astype(np.int16)
        actual = session.run(None, {INPUT_NAME: nhwc.numpy()})[0].astype(np.int16)
        if actual.shape != expected.shape:
            raise StylecastError(f"ONNX output shape {actual.shape} != PyTorch {expected.shape}")
        diff = np.abs(actual - expected)
        fraction = float((diff > 1).mean())
        per_size[f"{h}x{w}"] = {"max_abs": int(diff.max()), "fraction_over_1": fraction}
        worst_fraction, worst_max = max(worst_fraction, fraction), max(worst_max, int(diff.max()))
    precision = "fp16" if fp16 else "fp32"
    return {
        "precision": precision,
        "sizes": per_size,
        "max_abs": worst_max,
        "fraction_over_1": worst_fraction,
        "threshold": MAX_BAD_FRACTION[precision],
        "passed": worst_fraction <= MAX_BAD_FRACTION[precision],
    }


def _thumbnail(style_path: Path) -> str:
    if not style_path.is_file():
        log.warning("style image %s not found; the model card will have no thumbnail", style_path)
        return ""
    from torchvision.io import encode_jpeg

    image = load_image(style_path, THUMBNAIL_SIDE)
    data = encode_jpeg((image * 255).round().to(torch.uint8), quality=85).numpy().tobytes()
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def _next_version(model_dir: Path) -> int:
    return max(version_numbers(model_dir), default=0) + 1


def _publish_version(model_dir: Path, staged: Path) -> int:
    """Rename the staged version folder to the next free number; returns that number.

    ``rename`` onto a version folder that another exporter has just published fails (the
    folder is not empty), so concurrent exporters each get their own number."""
    for _ in range(100):
        version = _next_version(model_dir)
        try:
            os.rename(staged, model_dir / str(version))
            return version
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    raise StylecastError(f"{model_dir}: could not allocate a version number")


def _previous_card(model_dir: Path) -> ModelCard | None:
    try:
        return read_card(model_dir) if (model_dir / CARD_FILE).is_file() else None
    except StylecastError as exc:
        log.warning("ignoring the unreadable card of the previous versions: %s", exc)
        return None


def check_model_name(name: str) -> None:
    """Model names become folder names: letters, digits, '-', '_' or '.', not leading '.'."""
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise StylecastError(f"bad model name {name!r}: use letters, digits, '-', '_' or '.'")


def export_model(
    source: str | Path,
    name: str,
    models_dir: str | Path = "models",
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    description: str = "",
    command: str = "",
    calibration_dir: str | Path | None = None,
) -> ExportResult:
    """Export a run or checkpoint as the next version of ``models_dir/name``.

    ``calibration_dir`` given: the version is int8 (training.quantize), calibrated on most of
    its images and checked against the fp32 export on the rest.

    The graph and its ``version.json`` are written aside, checked and parity-tested, then
    published with one rename (a new model's whole folder at once), so a server watching
    the repository never sees a half-written version. ``command`` is recorded in the card.
    Raises StylecastError if the export fails its parity test."""
    check_model_name(name)
    if fp16 and calibration_dir is not None:
        raise StylecastError("choose one precision: fp16 or int8, not both")
    split = split_calibration_dir(calibration_dir) if calibration_dir is not None else None
    trained = load_trained(source)
    models_root = Path(models_dir)
    models_root.mkdir(parents=True, exist_ok=True)
    model_dir = models_root / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.export-", dir=models_root))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; what is published is not
        staged_version = staging / "version"
        staged_version.mkdir()
        parity = _write_version(trained.network, staged_version, fp16, opset, command, split)
        previous = _previous_card(model_dir)
        card = _card(
            name, trained.record, description or (previous.description if previous else "")
        )
        style_source = Path(trained.record.train["style_image"])
        version = _publish(models_root, model_dir, staging, staged_version, card, style_source)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    published = read_card(model_dir)
    return ExportResult(model_dir / str(version) / MODEL_FILE, published, version, parity)


def _write_version(
    network: nn.Module,
    folder: Path,
    fp16: bool,
    opset: int,
    command: str,
    int8: CalibrationSplit | None = None,
) -> dict[str, Any]:
    """Export, parity-test and describe one version inside ``folder``; returns the parity.
    With ``int8``, the checked fp32 graph is quantised and the int8 one must pass its own
    parity against it (its record keeps the fp32 graph's parity against PyTorch)."""
    model_path = folder / MODEL_FILE
    float_path = folder / "fp32.onnx" if int8 else model_path
    export_onnx(network, float_path, fp16=fp16, opset=opset)
    parity = parity_check(network, float_path, fp16)
    if not parity["passed"]:
        raise StylecastError(
            f"export failed the parity test: {100 * parity['fraction_over_1']:.4f}% of values "
            f"off by more than 1 level (limit {100 * parity['threshold']:.2f}%), "
            f"max |diff| {parity['max_abs']}"
        )
    precision = "fp16" if fp16 else "fp32"
    if int8:
        quantize_int8(float_path, model_path, int8.calibration)
        parity = {**int8_parity(float_path, model_path, int8.holdout, Int8Thresholds()),
                  "fp32_vs_torch": parity}  # fmt: skip
        float_path.unlink()
        if not parity["passed"]:
            limits = parity["thresholds"]
            raise StylecastError(
                f"int8 export failed its parity test against fp32 on {len(int8.holdout)} "
                f"held-aside image(s): PSNR {parity['psnr_db']} dB (needs >= "
                f"{limits['min_psnr_db']}), mean |diff| {parity['mean_abs']} levels (needs <= "
                f"{limits['max_mean_abs']}); calibrate on more, and more varied, images"
            )
        precision = "int8"
    info = VersionInfo(
        sha256=hashlib.sha256(model_path.read_bytes()).hexdigest(),
        precision=precision,
        opset=opset,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        parity=parity,
        export_command=command,
    )
    write_version_info(folder, info)
    return parity


def _card(name: str, record: RunRecord, description: str) -> ModelCard:
    style_path = Path(record.train["style_image"])
    return ModelCard(
        name=name,
        style_image=style_path.name,
        style_sha256=record.style_sha256,
        style_thumbnail=_thumbnail(style_path),
        vgg_weights=record.vgg_weights,
        train_config=record.train,
        final_losses=record.final_losses,
        train_command=record.command,
        exporter=f"torch {torch.__version__} torch.onnx.export(dynamo=True)",
        testing_only=VggWeights.parse(record.vgg_weights).testing_only,
        description=description,
    )


def _publish(
    models_root: Path,
    model_dir: Path,
    staging: Path,
    staged_version: Path,
    card: ModelCard,
    style_source: Path,
) -> int:
    """Publish a staged version; returns its number. A new model appears whole (card,
    Triton config and version 1 in one rename); an existing one gets the next version
    folder, then its card is replaced atomically."""
    if not model_dir.exists():
        os.rename(staged_version, staging / "1")
        write_card(staging, card)
        write_triton_config(staging, card.name)
        _copy_style(style_source, staging, card)
        try:
            os.rename(staging, model_dir)
            return 1
        except OSError as exc:  # another exporter created the model meanwhile
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            staged_version = staging / "1"
    version = _publish_version(model_dir, staged_version)
    write_card(model_dir, card)
    write_triton_config(model_dir, card.name)
    _copy_style(style_source, model_dir, card)
    return version


def _copy_style(source: Path, model_dir: Path, card: ModelCard) -> None:
    """Keep the style image with the model (validation reads it from there)."""
    if not source.is_file():
        return  # already warned about by the thumbnail
    target = style_file(model_dir, card)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
