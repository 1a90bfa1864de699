"""Lightning callbacks of a training run: sample images and the run's exported artefacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import make_grid

from .images import save_image
from .module import StyleTransferModule, network_state

TRANSFORM_WEIGHTS = "transform.pt"
RUN_CONFIG = "config.json"


class SampleImages(L.Callback):
    """Every ``every`` steps, stylise fixed content images; log them to TensorBoard and save a
    PNG grid (content row above stylised row) under ``out/samples``."""

    def __init__(self, content: torch.Tensor, out: Path, every: int) -> None:
        self.content = content
        self.out = out
        self.every = every

    @rank_zero_only
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        step = trainer.global_step
        if self.every <= 0 or step % self.every:
            return
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            styled = pl_module(self.content.to(pl_module.device)).float().cpu()
        pl_module.train(was_training)
        grid = make_grid(torch.cat([self.content, styled]), nrow=len(self.content), padding=2)
        save_image(grid, self.out / f"step_{step:06d}.png")
        if isinstance(trainer.logger, TensorBoardLogger):
            trainer.logger.experiment.add_image("samples", grid, global_step=step)


class RunArtifacts(L.Callback):
    """Writes the run's ``config.json`` at the start and the transform weights (+ final losses)
    at the end: everything ``stylecast export`` needs, without the checkpoint's optimiser state."""

    def __init__(self, out: Path, run_options: dict[str, Any]) -> None:
        self.out = out
        self.run_options = run_options
        # A resumed run keeps the commands before it, so its history reproduces it.
        self.commands = _recorded_commands(out / RUN_CONFIG) if run_options.get("resume") else []
        if run_options.get("command"):
            self.commands.append(run_options["command"])

    def _write_config(self, pl_module: StyleTransferModule, extra: dict[str, Any]) -> None:
        payload = {
            "train": pl_module.hparams["config"],
            "vgg_weights": pl_module.hparams["vgg_weights_id"],
            "style_sha256": pl_module.hparams["style_sha256"],
            "run": self.run_options,
            "commands": self.commands,
            "command": " && ".join(self.commands),
            **extra,
        }
        (self.out / RUN_CONFIG).write_text(json.dumps(payload, indent=2))

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: StyleTransferModule) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self._write_config(pl_module, {})

    @rank_zero_only
    def on_train_end(self, trainer: L.Trainer, pl_module: StyleTransferModule) -> None:
        torch.save(network_state(pl_module), self.out / TRANSFORM_WEIGHTS)
        losses = {
            k.removeprefix("train/"): round(float(v), 6)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("train/")
        }
        self._write_config(pl_module, {"steps": trainer.global_step, "final_losses": losses})


def _recorded_commands(config_path: Path) -> list[str]:
    """The command lines an earlier part of this run recorded in its config.json."""
    if not config_path.is_file():
        return []
    data = json.loads(config_path.read_text())
    return data.get("commands") or ([data["command"]] if data.get("command") else [])
