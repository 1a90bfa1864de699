"""Perceptual losses (Gatys et al. 2016; Johnson et al. 2016): content, Gram-matrix style and
total variation. One implementation, used by training, iteration and validation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import LossConfig
from .vgg import LossNetwork

LossTerms = dict[str, torch.Tensor]  # keys: content, style, tv, total (+ distill in training)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices of [N, C, H, W] features, normalised by C·H·W; returns [N, C, C]."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels, horizontally plus vertically."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()


class PerceptualLoss(nn.Module):
    """Weighted content + style + TV loss under a frozen VGG loss network.

    The style images' Gram matrices are computed once (``set_style``) and kept as buffers
    ``gram_<layer>`` [S, C, C], one row per style (S = 1: one style image).
    """

    def __init__(
        self,
        network: LossNetwork,
        config: LossConfig,
        style: torch.Tensor | list[torch.Tensor],
    ) -> None:
        super().__init__()
        self.network = network
        self.config = config
        self.style_weights = config.layer_weights
        self.set_style(style)

    @torch.no_grad()
    def set_style(self, style: torch.Tensor | list[torch.Tensor]) -> None:
        """Encode the style image ([3, H, W] or [1, 3, H, W], in [0, 1]), or each of a list of
        them (any sizes), and cache their Grams."""
        images = style if isinstance(style, list) else [style]
        grams: dict[str, list[torch.Tensor]] = {name: [] for name in self.config.style_layers}
        for image in images:
            image = image.unsqueeze(0) if image.dim() == 3 else image
            features = self.network(image.to(self.network.mean.device))
            for name in self.config.style_layers:
                grams[name].append(gram_matrix(features[name].float()))
        for name, rows in grams.items():
            self.register_buffer(f"gram_{name}", torch.cat(rows))

    def _style_targets(self, name: str, count: int, styles: torch.Tensor | None) -> torch.Tensor:
        """[count, C, C] Gram targets: row ``styles[i]`` for image i (None: the first)."""
        grams = getattr(self, f"gram_{name}")
        return grams[:1].expand(count, -1, -1) if styles is None else grams[styles]

    def content_targets(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """Content-layer activations of ``content`` (no gradient), reusable across steps."""
        with torch.no_grad():
            features = self.network(content)
        return {name: features[name].detach() for name in self.config.content_layers}

    def forward(
        self,
        output: torch.Tensor,
        content_targets: dict[str, torch.Tensor],
        styles: torch.Tensor | None = None,
    ) -> LossTerms:
        """Loss terms of ``output`` against cached content targets and the style Grams
        (``styles`` [N]: each image's style index; None: the first style for all)."""
        cfg = self.config
        features = self.network(output)
        with torch.autocast(device_type=output.device.type, enabled=False):
            zero = output.new_zeros((), dtype=torch.float32)
            content = sum(
                (
                    F.mse_loss(features[name].float(), content_targets[name].float())
                    for name in cfg.content_layers
                ),
                zero,
            )
            style = sum(
                (
                    weight
                    * F.mse_loss(
                        gram_matrix(features[name].float()),
                        self._style_targets(name, output.shape[0], styles),
                    )
                    for name, weight in self.style_weights.items()
                ),
                zero,
            )
            tv = total_variation(output.float())
            total = cfg.content_weight * content + cfg.style_weight * style + cfg.tv_weight * tv
        return {"content": content, "style": style, "tv": tv, "total": total}
