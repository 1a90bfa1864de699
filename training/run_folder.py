"""The training run folder: the one owner of its layout, its ``config.json`` record and its
weights file (writer and reader), and of the checkpoint fields export reads back.

    RUN/config.json      RunRecord: training config, VGG weights id, style SHA-256, run
                         options, the command lines that made it, steps and final losses
    RUN/transform.pt     the transform network's state dict alone (what export needs)
    RUN/checkpoints/     Lightning checkpoints (last.ckpt, best-stepNNNNNN.ckpt, interrupted.ckpt)
    RUN/samples/         PNG grids of sample images
    RUN/tensorboard/     TensorBoard logs
    RUN/models/          where `stylecast train` exports unless told another models folder

Torch is imported for the weights file only; Lightning never is, so export stays light.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from stylecast.errors import StylecastError

RUN_CONFIG = "config.json"
TRANSFORM_WEIGHTS = "transform.pt"
CHECKPOINTS = "checkpoints"
BEST_CHECKPOINT_PREFIX = "best-step"  # then the zero-padded global step, e.g. best-step000800
BEST_CHECKPOINT_NAME = BEST_CHECKPOINT_PREFIX + "{step:06d}"  # as a Lightning filename template
SAMPLES = "samples"
TENSORBOARD = "tensorboard"
MODELS = "models"

# Hyper-parameters the LightningModule saves into every checkpoint.
HPARAM_CONFIG = "config"
HPARAM_VGG_WEIGHTS = "vgg_weights_id"
HPARAM_STYLE_SHA256 = "style_sha256"
HPARAM_STYLES_SHA256 = "styles_sha256"  # every style's, in order (several styles only)
NETWORK_PREFIX = "network."  # the transform network's keys in a checkpoint's state_dict


@dataclass
class RunRecord:
    """What ``config.json`` holds: enough to rebuild, export and reproduce the run."""

    train: dict[str, Any]  # TrainConfig as a dict
    vgg_weights: str  # VggWeights.id
    style_sha256: str
    run: dict[str, Any] = field(default_factory=dict)  # RunOptions as a dict
    commands: list[str] = field(default_factory=list)  # every command line, resumes included
    steps: int | None = None  # set when training ends
    final_losses: dict[str, float] = field(default_factory=dict)
    styles_sha256: list[str] = field(default_factory=list)  # several styles: each, in order

    @property
    def style_digests(self) -> list[str]:
        """Every style image's SHA-256, in order (one for a single-style run)."""
        return list(self.styles_sha256) or [self.style_sha256]

    @property
    def command(self) -> str:
        """The command lines joined as one shell line that reproduces the run."""
        return " && ".join(self.commands)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "command": self.command}, indent=2)

    @classmethod
    def from_json(cls, text: str, source: Path) -> RunRecord:
        try:
            data = json.loads(text)
            commands = data.get("commands") or ([data["command"]] if data.get("command") else [])
            return cls(
                train=dict(data["train"]),
                vgg_weights=str(data["vgg_weights"]),
                style_sha256=str(data["style_sha256"]),
                run=dict(data.get("run") or {}),
                commands=[str(c) for c in commands],
                steps=data.get("steps"),
                final_losses={k: float(v) for k, v in (data.get("final_losses") or {}).items()},
                styles_sha256=[str(d) for d in data.get("styles_sha256") or []],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StylecastError(f"{source}: not a valid run record ({exc})") from None


@dataclass(frozen=True)
class RunFolder:
    """A training run folder (see the module docstring for its layout)."""

    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / RUN_CONFIG

    @property
    def weights_path(self) -> Path:
        return self.path / TRANSFORM_WEIGHTS

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def samples_dir(self) -> Path:
        return self.path / SAMPLES

    @property
    def models_dir(self) -> Path:
        return self.path / MODELS

    def checkpoints(self) -> list[Path]:
        return sorted(self.checkpoint_dir.glob("*.ckpt")) if self.checkpoint_dir.is_dir() else []

    def best_checkpoint(self) -> Path:
        """The run's best checkpoint (by validation loss, or training loss without validation).
        A new best is written only when it beats the last, so the latest step is the best."""
        found = sorted(self.checkpoint_dir.glob(f"{BEST_CHECKPOINT_PREFIX}*.ckpt"))
        if not found:
            raise StylecastError(f"{self.path} has no {BEST_CHECKPOINT_PREFIX}*.ckpt checkpoint")
        return found[-1]  # zero-padded steps sort in order

    def is_finished(self) -> bool:
        """Training ended normally: the record and the weights are both there."""
        return self.config_path.is_file() and self.weights_path.is_file()

    def write_record(self, record: RunRecord) -> None:
        """Write ``config.json`` atomically (a reader never sees half a file)."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.config_path.with_name(f".{RUN_CONFIG}.{os.getpid()}.tmp")
        tmp.write_text(record.to_json() + "\n")
        os.replace(tmp, self.config_path)

    def read_record(self) -> RunRecord:
        if not self.config_path.is_file():
            raise StylecastError(f"{self.config_path}: run record missing")
        return RunRecord.from_json(self.config_path.read_text(), self.config_path)

    def recorded_commands(self) -> list[str]:
        """The command lines an earlier part of this run recorded (empty for a new run)."""
        return self.read_record().commands if self.config_path.is_file() else []

    def save_weights(self, state: dict[str, torch.Tensor]) -> None:
        torch.save(state, self.weights_path)

    def load_weights(self) -> dict[str, torch.Tensor]:
        return torch_load(self.weights_path)


@dataclass
class TrainedWeights:
    """A transform network's weights with what its run recorded about them."""

    state: dict[str, torch.Tensor]
    record: RunRecord


def read_trained(path: str | Path, best: bool = False) -> TrainedWeights:
    """The weights and record of a finished run folder or of a Lightning checkpoint (.ckpt).

    ``best``: a run folder's best checkpoint instead of its final weights, with the folder's
    record (its commands), the best checkpoint's step, and no final losses (they were not
    measured at that step)."""
    path = Path(path)
    if best:
        folder = RunFolder(path)
        if not path.is_dir():
            raise StylecastError(f"the best checkpoint is chosen from a run folder, not {path}")
        chosen = _read_checkpoint(folder.best_checkpoint())
        if folder.config_path.is_file():
            chosen.record = replace(
                folder.read_record(), steps=chosen.record.steps, final_losses={}
            )
        return chosen
    if path.is_dir():
        folder = RunFolder(path)
        if not folder.is_finished():
            raise StylecastError(
                f"{path} is not a finished training run (needs {RUN_CONFIG} and "
                f"{TRANSFORM_WEIGHTS}); export one of its {CHECKPOINTS}/*.ckpt instead"
            )
        return TrainedWeights(folder.load_weights(), folder.read_record())
    if path.is_file():
        return _read_checkpoint(path)
    raise StylecastError(f"no training run or checkpoint at {path}")


def _read_checkpoint(path: Path) -> TrainedWeights:
    checkpoint = torch_load(path)
    try:
        hparams = checkpoint["hyper_parameters"]
        record = RunRecord(
            train=hparams[HPARAM_CONFIG],
            vgg_weights=hparams[HPARAM_VGG_WEIGHTS],
            style_sha256=hparams[HPARAM_STYLE_SHA256],
            steps=checkpoint.get("global_step"),
            styles_sha256=list(hparams.get(HPARAM_STYLES_SHA256) or []),
        )
        state = {
            k.removeprefix(NETWORK_PREFIX): v
            for k, v in checkpoint["state_dict"].items()
            if k.startswith(NETWORK_PREFIX)
        }
    except (KeyError, TypeError, AttributeError):
        raise StylecastError(f"{path} is not a Stylecast training checkpoint") from None
    return TrainedWeights(state, record)


def torch_load(path: Path) -> Any:
    """``torch.load`` of tensors only, with a one-line error for a bad file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for bad files
        raise StylecastError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}") from None
