"""The feed-forward transform network of Johnson et al. (2016), as the field settled on it.

Reflection padding, instance normalisation, residual blocks and a nearest-upsample + conv
decoder (no transposed convolutions, so no checkerboard artefacts). Input and output are RGB
in [0, 1], shape [N, 3, H, W]; any H and W work and the output has the input's size, because
each decoder stage upsamples to the exact size of the matching encoder stage.
This module is the single definition used by training, export and validation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import NetworkConfig


class ConvNormAct(nn.Sequential):
    """Reflection-padded convolution, optional instance norm, optional ReLU."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, norm: bool = True, act: bool = True
    ) -> None:
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(cin, cout, kernel, stride=stride),
        ]
        if norm:
            layers.append(nn.InstanceNorm2d(cout, affine=True))
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3×3 conv layers with an identity shortcut (He et al. 2016, as in Johnson et al.)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(channels, channels, 3),
            ConvNormAct(channels, channels, 3, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TransformNet(nn.Module):
    """Image-to-image style network: encoder (×1/4), residual blocks, decoder back to input size."""

    def __init__(self, config: NetworkConfig | None = None) -> None:
        super().__init__()
        self.config = config or NetworkConfig()
        w = self.config.width
        self.stem = ConvNormAct(3, w, 9)
        self.down1 = ConvNormAct(w, 2 * w, 3, stride=2)
        self.down2 = ConvNormAct(2 * w, 4 * w, 3, stride=2)
        self.residuals = nn.Sequential(
            *(ResidualBlock(4 * w) for _ in range(self.config.residual_blocks))
        )
        self.up1 = ConvNormAct(4 * w, 2 * w, 3)
        self.up2 = ConvNormAct(2 * w, w, 3)
        self.head = ConvNormAct(w, 3, 9, norm=False, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stylise ``x`` (RGB in [0, 1], [N, 3, H, W]); returns the same shape, values in [0, 1]."""
        full = self.stem(x)
        half = self.down1(full)
        y = self.residuals(self.down2(half))
        y = self.up1(F.interpolate(y, size=half.shape[-2:], mode="nearest"))
        y = self.up2(F.interpolate(y, size=full.shape[-2:], mode="nearest"))
        return torch.sigmoid(self.head(y))


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
