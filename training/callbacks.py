"""Lightning callbacks of a training run: sample images, and the run record and weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import make_grid

from .images import save_image
from .module import StyleTransferModule, network_state
from .run_folder import (
    HPARAM_CONFIG,
    HPARAM_STYLE_SHA256,
    HPARAM_STYLES_SHA256,
    HPARAM_VGG_WEIGHTS,
    RunFolder,
    RunRecord,
)


class SampleImages(L.Callback):
    """Every ``every`` steps, stylise fixed content images; log them to TensorBoard and save a
    PNG grid (content row above a stylised row per style) under ``out/samples``."""

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
        assert isinstance(pl_module, StyleTransferModule)
        content = self.content.to(pl_module.device)
        styles = pl_module.cfg.network.styles
        with torch.no_grad():
            if styles == 1:
                rows = [pl_module(content).float().cpu()]
            else:  # one row per style
                eye = torch.eye(styles, device=pl_module.device)
                rows = [
                    pl_module(content, eye[s].expand(len(content), -1)).float().cpu()
                    for s in range(styles)
                ]
        pl_module.train(was_training)
        grid = make_grid(torch.cat([self.content, *rows]), nrow=len(self.content), padding=2)
        save_image(grid, self.out / f"step_{step:06d}.png")
        if isinstance(trainer.logger, TensorBoardLogger):
            trainer.logger.experiment.add_image("samples", grid, global_step=step)


class RunArtifacts(L.Callback):
    """Writes the run's record (``config.json``) at the start and the transform weights with
    the final losses at the end: everything ``stylecast export`` needs, without the
    checkpoint's optimiser state. The folder's layout belongs to ``run_folder``."""

    def __init__(self, folder: RunFolder, run_options: dict[str, Any]) -> None:
        self.folder = folder
        self.run_options = run_options
        # A resumed run keeps the commands before it, so its history reproduces it.
        self.commands = folder.recorded_commands() if run_options.get("resume") else []
        if run_options.get("command"):
            self.commands.append(run_options["command"])

    def _record(self, pl_module: L.LightningModule) -> RunRecord:
        return RunRecord(
            train=pl_module.hparams[HPARAM_CONFIG],
            vgg_weights=pl_module.hparams[HPARAM_VGG_WEIGHTS],
            style_sha256=pl_module.hparams[HPARAM_STYLE_SHA256],
            run=self.run_options,
            commands=list(self.commands),
            styles_sha256=list(pl_module.hparams.get(HPARAM_STYLES_SHA256) or []),
        )

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder.write_record(self._record(pl_module))

    @rank_zero_only
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert isinstance(pl_module, StyleTransferModule)
        self.folder.save_weights(network_state(pl_module))
        record = self._record(pl_module)
        record.steps = trainer.global_step
        # Full precision: style terms of order 1e-6 must not round to 0.
        # train/x → x (the last training batch), val/x → val_x (the last validation).
        record.final_losses = {
            k.removeprefix("train/").replace("val/", "val_"): float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith(("train/", "val/"))
        }
        self.folder.write_record(record)
