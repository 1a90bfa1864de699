"""`stylecast export`: a trained network to a versioned ONNX model in the model repository.

The graph is self-contained for clients: uint8 RGB [N, H, W, 3] in, uint8 RGB out, with
scaling, layout change, clamping and rounding inside; N, H and W are dynamic. Every export
is checked with onnx.checker and parity-tested against PyTorch before it is published.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shlex
import shutil
import sys
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
    INPUT_NAME,
    MAX_SIDE,
    MIN_SIDE,
    MODEL_FILE,
    OUTPUT_NAME,
    ModelCard,
    VersionInfo,
    read_card,
)
from stylecast.serving.triton import write_triton_config

from .callbacks import RUN_CONFIG, TRANSFORM_WEIGHTS
from .config import network_from_dict
from .images import load_image
from .network import TransformNet
from .vgg import pink_noise

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

    network: TransformNet
    train_config: dict[str, Any]
    vgg_weights: str
    style_sha256: str
    final_losses: dict[str, float]
    train_command: str


@dataclass
class ExportResult:
    model_path: Path
    card: ModelCard
    parity: dict[str, Any]


def load_trained(path: str | Path) -> TrainedModel:
    """Load a run folder (config.json + transform.pt) or a Lightning checkpoint (.ckpt)."""
    path = Path(path)
    if path.is_dir():
        config_path, weights_path = path / RUN_CONFIG, path / TRANSFORM_WEIGHTS
        if not config_path.is_file() or not weights_path.is_file():
            raise StylecastError(
                f"{path} is not a finished training run (needs {RUN_CONFIG} and "
                f"{TRANSFORM_WEIGHTS}); export one of its checkpoints/*.ckpt instead"
            )
        meta = json.loads(config_path.read_text())
        state = _torch_load(weights_path)
        config, losses = meta["train"], meta.get("final_losses", {})
        vgg, style_sha, command = meta["vgg_weights"], meta["style_sha256"], meta.get("command", "")
    elif path.is_file():
        checkpoint = _torch_load(path)
        try:
            hparams = checkpoint["hyper_parameters"]
            config, vgg, style_sha = (
                hparams["config"],
                hparams["vgg_weights_id"],
                hparams["style_sha256"],
            )
            prefix = "network."
            state = {
                k.removeprefix(prefix): v
                for k, v in checkpoint["state_dict"].items()
                if k.startswith(prefix)
            }
        except (KeyError, TypeError):
            raise StylecastError(f"{path} is not a Stylecast training checkpoint") from None
        losses, command = {}, ""
    else:
        raise StylecastError(f"no training run or checkpoint at {path}")
    network = TransformNet(network_from_dict(config["network"]))
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise StylecastError(f"weights in {path} do not fit the network: {exc}") from None
    return TrainedModel(network.eval(), config, vgg, style_sha, losses, command)


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for bad files
        raise StylecastError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}") from None


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
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def export_model(
    source: str | Path,
    name: str,
    models_dir: str | Path = "models",
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    description: str = "",
) -> ExportResult:
    """Export a run or checkpoint as the next version of ``models_dir/name``; returns the result.

    The new version appears atomically (written aside, checked, parity-tested, then renamed),
    so a server watching the repository never sees a half-written model.
    """
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise StylecastError(f"bad model name {name!r}: use letters, digits, '-', '_' or '.'")
    trained = load_trained(source)
    model_dir = Path(models_dir) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    previous = read_card(model_dir) if (model_dir / "model.json").is_file() else None
    version = _next_version(model_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".export-{version}-", dir=model_dir))
    try:
        model_path = staging / MODEL_FILE
        export_onnx(trained.network, model_path, fp16=fp16, opset=opset)
        parity = parity_check(trained.network, model_path, fp16)
        print(
            f"parity ({parity['precision']}, onnxruntime vs PyTorch fp32): max |diff| "
            f"{parity['max_abs']}, {100 * parity['fraction_over_1']:.4f}% of values off by > 1 "
            f"level (limit {100 * parity['threshold']:.2f}%)"
        )
        if not parity["passed"]:
            raise StylecastError(f"export failed the parity test: {parity}")
        staging.chmod(0o755)  # mkdtemp makes it private; the published folder is not
        os.replace(staging, model_dir / str(version))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    final_path = model_dir / str(version) / MODEL_FILE
    info = VersionInfo(
        sha256=hashlib.sha256(final_path.read_bytes()).hexdigest(),
        precision="fp16" if fp16 else "fp32",
        opset=opset,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        parity=parity,
        export_command=shlex.join(["stylecast", *sys.argv[1:]]) if sys.argv[1:] else "",
    )
    style_path = Path(trained.train_config["style_image"])
    card = ModelCard(
        name=name,
        version=version,
        versions={**(previous.versions if previous else {}), str(version): info},
        style_image=style_path.name,
        style_sha256=trained.style_sha256,
        style_thumbnail=_thumbnail(style_path),
        vgg_weights=trained.vgg_weights,
        train_config=trained.train_config,
        final_losses=trained.final_losses,
        train_command=trained.train_command,
        exporter=f"torch {torch.__version__} torch.onnx.export(dynamo=True)",
        testing_only=trained.vgg_weights.startswith("random:"),
        description=description or (previous.description if previous else ""),
    )
    _write_atomically(model_dir / "model.json", card.to_json() + "\n")
    write_triton_config(model_dir, name)
    return ExportResult(final_path, card, parity)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
