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

    The style image's Gram matrices are computed once (``set_style``) and kept as buffers.
    """

    def __init__(self, network: LossNetwork, config: LossConfig, style: torch.Tensor) -> None:
        super().__init__()
        self.network = network
        self.config = config
        self.style_weights = config.layer_weights
        self.set_style(style)

    @torch.no_grad()
    def set_style(self, style: torch.Tensor) -> None:
        """Encode the style image ([3, H, W] or [1, 3, H, W], in [0, 1]) and cache its Grams."""
        style = style.unsqueeze(0) if style.dim() == 3 else style
        features = self.network(style.to(self.network.mean.device))
        for name in self.config.style_layers:
            self.register_buffer(f"gram_{name}", gram_matrix(features[name].float()))

    def content_targets(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """Content-layer activations of ``content`` (no gradient), reusable across steps."""
        with torch.no_grad():
            features = self.network(content)
        return {name: features[name].detach() for name in self.config.content_layers}

    def forward(self, output: torch.Tensor, content_targets: dict[str, torch.Tensor]) -> LossTerms:
        """Loss terms of ``output`` against cached content targets and the style Grams."""
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
                        getattr(self, f"gram_{name}").expand(output.shape[0], -1, -1),
                    )
                    for name, weight in self.style_weights.items()
                ),
                zero,
            )
            tv = total_variation(output.float())
            total = cfg.content_weight * content + cfg.style_weight * style + cfg.tv_weight * tv
        return {"content": content, "style": style, "tv": tv, "total": total}
