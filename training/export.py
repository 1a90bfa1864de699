"""`stylecast export`: a trained network to a versioned ONNX model in the model repository.

The graph is self-contained for clients: uint8 RGB [N, H, W, 3] in, uint8 RGB out, with
scaling, layout change, clamping and rounding inside; N, H and W are dynamic. Every export
is checked with onnx.checker and parity-tested against PyTorch before it is published.

A multi-style network (``NetworkConfig.styles`` > 1) exports with a second input,
``style_weights`` float32 [N, S]: the mix of styles per image, blended inside the graph by
mixing the instance norms' scales and shifts; its card lists the styles in order.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import tempfile
import warnings
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
    STYLE_WEIGHTS_NAME,
    ModelCard,
    VersionInfo,
    read_card,
    version_numbers,
    write_card,
    write_version_info,
)
from stylecast.serving.triton import write_triton_config

from .config import network_from_dict
from .export_card import copy_styles, model_card, style_paths
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

log = logging.getLogger(__name__)

DEFAULT_OPSET = 20
PARITY_SIZES = ((64, 64), (257, 383), (131, 97))
MAX_BAD_FRACTION = {"fp32": 1e-3, "fp16": 2e-2}  # share of values off by more than 1 level


class UInt8Graph(nn.Module):
    """uint8 NHWC RGB in, uint8 NHWC RGB out, around a float NCHW [0, 1] network; a
    multi-style network also takes ``style_weights`` [N, S] (float32)."""

    def __init__(self, network: nn.Module, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.network = network
        self.dtype = dtype

    def forward(
        self, image: torch.Tensor, style_weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(self.dtype) / 255.0
        if style_weights is None:
            y = self.network(x) * 255.0
        else:
            y = self.network(x, style_weights.to(self.dtype)) * 255.0
        return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def style_count(network: nn.Module) -> int:
    """How many styles ``network`` holds (its NetworkConfig's ``styles``)."""
    return int(getattr(getattr(network, "config", None), "styles", 1))


def parity_weights(styles: int, index: int) -> np.ndarray:
    """The style mix of the ``index``-th parity image: each style alone in turn, then an
    uneven blend of all of them; float32 [1, S]."""
    if index < styles and index < len(PARITY_SIZES) - 1:
        return np.eye(styles, dtype=np.float32)[index : index + 1]
    weights = np.arange(1, styles + 1, dtype=np.float32)
    return (weights / weights.sum())[None]


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


def load_trained(path: str | Path, best: bool = False) -> TrainedModel:
    """Load a run folder (config.json + transform.pt) or a Lightning checkpoint (.ckpt);
    ``best``: the run folder's best checkpoint (run_folder.read_trained)."""
    trained = read_trained(path, best)
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
    batch = torch.export.Dim("batch", max=64)
    dims = {
        0: batch,
        1: torch.export.Dim("height", min=MIN_SIDE, max=MAX_SIDE),
        2: torch.export.Dim("width", min=MIN_SIDE, max=MAX_SIDE),
    }
    styles = style_count(network)
    args: tuple[torch.Tensor, ...] = (example,)
    names, shapes = [INPUT_NAME], {"image": dims}
    if styles > 1:  # the mix: one row of S weights per image, batched with the images
        args = (example, torch.full((1, styles), 1.0 / styles))
        names.append(STYLE_WEIGHTS_NAME)
        shapes["style_weights"] = {0: batch}
    with torch.no_grad(), warnings.catch_warnings():
        # Both inputs share the batch dimension; the exporter says it names it once.
        warnings.filterwarnings("ignore", message=".*shares the same shape constraints")
        program = torch.onnx.export(
            graph,
            args,
            dynamo=True,
            input_names=names,
            output_names=[OUTPUT_NAME],
            dynamic_shapes=shapes,
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
    styles = style_count(network)
    generator = torch.Generator().manual_seed(0)
    worst_fraction, worst_max, per_size = 0.0, 0, {}
    for index, (h, w) in enumerate(PARITY_SIZES):
        side = max(h, w)
        image = (pink_noise(1, side, generator)[:, :, :h, :w] * 255).round().to(torch.uint8)
        nhwc = image.permute(0, 2, 3, 1).contiguous()
        feeds = {INPUT_NAME: nhwc.numpy()}
        mix = None
        if styles > 1:
            feeds[STYLE_WEIGHTS_NAME] = parity_weights(styles, index)
            mix = torch.from_numpy(feeds[STYLE_WEIGHTS_NAME])
        with torch.no_grad():
            expected = reference(nhwc, mix).numpy().astype(np.int16)
        actual = session.run(None, feeds)[0].astype(np.int16)
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
    best: bool = False,
) -> ExportResult:
    """Export a run or checkpoint as the next version of ``models_dir/name`` (its card:
    training.export_card).

    ``calibration_dir`` given: the version is int8 (training.quantize), calibrated on most of
    its images and checked against the fp32 export on the rest. ``best``: export a run
    folder's best checkpoint (by validation loss) rather than its final weights.

    The graph and its ``version.json`` are written aside, checked and parity-tested, then
    published with one rename (a new model's whole folder at once), so a server watching
    the repository never sees a half-written version. ``command`` is recorded in the card.
    Raises StylecastError if the export fails its parity test."""
    check_model_name(name)
    if fp16 and calibration_dir is not None:
        raise StylecastError("choose one precision: fp16 or int8, not both")
    split = split_calibration_dir(calibration_dir) if calibration_dir is not None else None
    trained = load_trained(source, best)
    if split is not None and style_count(trained.network) > 1:
        raise StylecastError("int8 export of a multi-style model is not supported yet")
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
        card = model_card(
            name, trained.record, description or (previous.description if previous else "")
        )
        sources = [Path(p) for p in style_paths(trained.record)]
        version = _publish(models_root, model_dir, staging, staged_version, card, sources)
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


def _publish(
    models_root: Path,
    model_dir: Path,
    staging: Path,
    staged_version: Path,
    card: ModelCard,
    style_sources: list[Path],
) -> int:
    """Publish a staged version; returns its number. A new model appears whole (card,
    Triton config and version 1 in one rename); an existing one gets the next version
    folder, then its card is replaced atomically."""
    if not model_dir.exists():
        os.rename(staged_version, staging / "1")
        write_card(staging, card)
        write_triton_config(staging, card.name, styles=max(1, len(card.styles)))
        copy_styles(style_sources, staging, card)
        try:
            os.rename(staging, model_dir)
            return 1
        except OSError as exc:  # another exporter created the model meanwhile
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            staged_version = staging / "1"
    version = _publish_version(model_dir, staged_version)
    write_card(model_dir, card)
    write_triton_config(model_dir, card.name, styles=max(1, len(card.styles)))
    copy_styles(style_sources, model_dir, card)
    return version
