"""The LightningModule: the transform network, the perceptual loss and the optimiser.
Lightning's Trainer owns the loop, devices, precision, checkpoints and logging.

Several styles: each training image gets a style drawn at random (one per sample, so every
batch sees several styles against their own Gram targets, computed once; or, with
``style_sampling="batch"``, one per batch); validation cycles through them. Adding styles
(``TrainConfig.frozen_styles``): the network starts from ``base_weights`` and only the new
styles' instance-norm rows train; the shared weights are not given to the optimiser and the
old rows' gradients are zeroed, so the old styles stay bit for bit as they were."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from stylecast.errors import StylecastError

from .config import TrainConfig, train_from_dict
from .images import load_image
from .losses import PerceptualLoss
from .network import build_network, grow_styles, style_norms
from .run_folder import (
    HPARAM_CONFIG,
    HPARAM_STYLE_SHA256,
    HPARAM_STYLES_SHA256,
    HPARAM_VGG_WEIGHTS,
    read_trained,
)
from .teacher import load_teacher
from .vgg import load_loss_network


class StyleTransferModule(L.LightningModule):
    """Trains a transform network for one or several style images; hyper-parameters: the
    TrainConfig dict."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        cfg = train_from_dict(config)
        paths = [Path(p) for p in cfg.styles]
        for path in paths:
            if not path.is_file():
                raise StylecastError(f"style image not found: {path}")
        styles = [load_image(p, cfg.style_size or cfg.image_size) for p in paths]
        loss_network = load_loss_network(
            cfg.vgg_weights, (*cfg.loss.content_layers, *cfg.loss.style_layers)
        )
        digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
        hparams = {
            HPARAM_CONFIG: config,
            HPARAM_VGG_WEIGHTS: loss_network.weights_id,
            HPARAM_STYLE_SHA256: digests[0],
        }
        if len(digests) > 1:
            hparams[HPARAM_STYLES_SHA256] = digests
        self.save_hyperparameters(hparams)
        self.cfg = cfg
        # Checkpoint keys of this attribute are run_folder.NETWORK_PREFIX ("network.").
        self.network = build_network(cfg.network)
        if cfg.base_weights is not None:
            self.network.load_state_dict(base_state(cfg, self.network))
        self.criterion = PerceptualLoss(loss_network, cfg.loss, styles)
        # Frozen, and like the criterion rebuilt from the config rather than checkpointed.
        self.teacher = load_teacher(cfg.teacher) if cfg.teacher else None
        # The frozen VGG and the style Grams are rebuilt from the config, never checkpointed.
        self.strict_loading = False

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.network(x, style_weights)

    def _styles(self, count: int, offset: int | None) -> torch.Tensor | None:
        """Style indices for ``count`` images: drawn at random among the trained styles
        (``offset`` None), or cycling through them from ``offset``; None for one style."""
        first, total = self.cfg.frozen_styles, self.cfg.network.styles
        if total == 1:
            return None
        if offset is None:
            draws = 1 if self.cfg.style_sampling == "batch" else count
            return torch.randint(first, total, (draws,), device=self.device).expand(count)
        cycle = (torch.arange(count, device=self.device) + offset) % (total - first)
        return cycle + first

    def _terms(self, batch: torch.Tensor, offset: int | None = None) -> dict[str, torch.Tensor]:
        """The perceptual loss terms, plus ``distill`` (already in ``total``) with a teacher."""
        styles = self._styles(batch.shape[0], offset)
        if styles is None:
            output = self.network(batch)
        else:
            mix = F.one_hot(styles, self.cfg.network.styles).to(batch.dtype)
            output = self.network(batch, mix)
        terms = self.criterion(output, self.criterion.content_targets(batch), styles)
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
        self._log_terms("val", self._terms(batch, offset=batch_idx * batch.shape[0]))

    def on_train_start(self) -> None:
        # Every rank starts from the same seed (same initial weights); from here on each rank
        # draws its own crops and flips, or all ranks would augment in lockstep.
        torch.manual_seed(self.cfg.seed + 7919 * self.global_rank)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(trainable_parameters(self.network, self.cfg), lr=self.cfg.lr)
        if self.cfg.lr_schedule == "constant":
            return optimizer
        # The run's length as Lightning counts it (max_steps, or epochs × batches); a resume
        # with a larger --max-steps stretches the remaining curve. The factor follows the
        # global step, not the scheduler's own count, so resuming a checkpoint that had no
        # schedule (older, or constant) continues the curve where the run stands (from the
        # second step: the first keeps the rate restored with the optimiser's state).
        total = max(1, int(self.trainer.estimated_stepping_batches))
        floor = self.cfg.lr_final_fraction
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda _: cosine_factor(self.trainer.global_step, total, floor)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(("criterion.", "teacher."))]:
            del state[key]


def cosine_factor(step: int, total: int, floor: float) -> float:
    """The cosine schedule's multiple of the base learning rate at ``step`` of ``total``: 1 at
    the start, ``floor`` at the end and after it."""
    progress = min(step, total) / total
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def network_state(module: StyleTransferModule) -> dict[str, torch.Tensor]:
    """The transform network's weights alone, on the CPU."""
    return {k: v.detach().cpu() for k, v in module.network.state_dict().items()}


def base_state(cfg: TrainConfig, network: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights of ``cfg.base_weights`` (its first ``cfg.frozen_styles`` styles), grown to
    ``network``'s styles; StylecastError when they do not fit."""
    assert cfg.base_weights is not None
    base = read_trained(cfg.base_weights)
    base_styles = len(base.record.style_digests)
    if base_styles != cfg.frozen_styles:
        raise StylecastError(
            f"{cfg.base_weights} holds {base_styles} style(s), the config keeps {cfg.frozen_styles}"
        )
    try:
        return grow_styles(base.state, network)
    except (KeyError, RuntimeError) as exc:
        raise StylecastError(
            f"weights in {cfg.base_weights} do not fit the network: {exc}"
        ) from None


def trainable_parameters(network: torch.nn.Module, cfg: TrainConfig) -> list[torch.nn.Parameter]:
    """What the optimiser trains: everything, or, when styles are being added, the
    instance-norm rows of the new styles alone (the rest is frozen: no gradient reaches
    the shared weights, and the old styles' rows get a zero gradient, so Adam leaves them
    bit-identical)."""
    if cfg.frozen_styles == 0:
        return list(network.parameters())
    for param in network.parameters():
        param.requires_grad_(False)
    keep = torch.ones(cfg.network.styles, 1)
    keep[: cfg.frozen_styles] = 0
    trained = []
    for norm in style_norms(network):
        for param in (norm.weight, norm.bias):
            param.requires_grad_(True)
            param.register_hook(lambda grad: grad * keep.to(grad.device, grad.dtype))
            trained.append(param)
    return trained
