"""The LightningModule: the transform network, the perceptual loss and the optimiser.
Lightning's Trainer owns the loop, devices, precision, checkpoints and logging."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from stylecast.errors import StylecastError

from .config import train_from_dict
from .images import load_image
from .losses import PerceptualLoss
from .network import build_network
from .run_folder import HPARAM_CONFIG, HPARAM_STYLE_SHA256, HPARAM_VGG_WEIGHTS
from .teacher import load_teacher
from .vgg import load_loss_network


class StyleTransferModule(L.LightningModule):
    """Trains a transform network for one style image; hyper-parameters: the TrainConfig dict."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        cfg = train_from_dict(config)
        style_path = Path(cfg.style_image)
        if not style_path.is_file():
            raise StylecastError(f"style image not found: {style_path}")
        style = load_image(style_path, cfg.style_size or cfg.image_size)
        loss_network = load_loss_network(
            cfg.vgg_weights, (*cfg.loss.content_layers, *cfg.loss.style_layers)
        )
        self.save_hyperparameters(
            {
                HPARAM_CONFIG: config,
                HPARAM_VGG_WEIGHTS: loss_network.weights_id,
                HPARAM_STYLE_SHA256: hashlib.sha256(style_path.read_bytes()).hexdigest(),
            }
        )
        self.cfg = cfg
        # Checkpoint keys of this attribute are run_folder.NETWORK_PREFIX ("network.").
        self.network = build_network(cfg.network)
        self.criterion = PerceptualLoss(loss_network, cfg.loss, style)
        # Frozen, and like the criterion rebuilt from the config rather than checkpointed.
        self.teacher = load_teacher(cfg.teacher) if cfg.teacher else None
        # The frozen VGG and the style Grams are rebuilt from the config, never checkpointed.
        self.strict_loading = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def _terms(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """The perceptual loss terms, plus ``distill`` (already in ``total``) with a teacher."""
        output = self.network(batch)
        terms = self.criterion(output, self.criterion.content_targets(batch))
        if self.teacher is not None:
            target = self.teacher(batch)
            terms["distill"] = F.mse_loss(output.float(), target.float())
            terms["total"] = terms["total"] + self.cfg.teacher_weight * terms["distill"]
        return terms

    def _log_terms(self, stage: str, terms: dict[str, torch.Tensor]) -> None:
        # sync_dist: under DDP the figures (and the checkpoint chosen by them) are the mean
        # over every rank's batch, not rank zero's alone.
        self.log(f"{stage}/loss", terms["total"], prog_bar=True, sync_dist=True)
        named = {f"{stage}/{name}": value for name, value in terms.items() if name != "total"}
        self.log_dict(named, sync_dist=True)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        terms = self._terms(batch)
        self._log_terms("train", terms)
        return terms["total"]

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        """Loss terms on held-aside images (averaged over the validation set by Lightning)."""
        self._log_terms("val", self._terms(batch))

    def on_train_start(self) -> None:
        # Every rank starts from the same seed (same initial weights); from here on each rank
        # draws its own crops and flips, or all ranks would augment in lockstep.
        torch.manual_seed(self.cfg.seed + 7919 * self.global_rank)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.network.parameters(), lr=self.cfg.lr)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(("criterion.", "teacher."))]:
            del state[key]


def network_state(module: StyleTransferModule) -> dict[str, torch.Tensor]:
    """The transform network's weights alone, on the CPU."""
    return {k: v.detach().cpu() for k, v in module.network.state_dict().items()}
