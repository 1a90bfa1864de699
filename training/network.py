"""The feed-forward transform networks: Johnson et al. (2016), as the field settled on it, and
the real-time ``QuarterNet``. ``build_network`` picks one from a ``NetworkConfig``.

Johnson: reflection padding, instance normalisation, residual blocks and a nearest-upsample + conv
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


class QuarterNet(nn.Module):
    """The real-time CPU design: every convolution runs at ¼ resolution.

    Pixel-unshuffle folds each 4×4 block of the (replicate-padded) input into 48 channels, a
    3×3 stem maps them to ``width`` channels, residual blocks follow, a 3×3 head maps back to
    48 channels and pixel-shuffle unfolds them into full-resolution RGB. Both folds are
    lossless rearrangements, so nothing is thrown away on the way in and every output pixel
    still has its own weights; but no layer touches a full- or half-resolution tensor, which
    dominate the cost of the Johnson net on a CPU (the 9×9 head to 3 channels alone is a fifth
    of it). It costs 15.6 k multiply-adds a pixel, against the lite net's 33 k and the
    standard's 154 k.
    The output is cropped back to the input's exact size.
    """

    FOLD = 4

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        folded = 3 * self.FOLD * self.FOLD
        self.stem = ConvNormAct(folded, config.width, 3)
        self.residuals = nn.Sequential(
            *(ResidualBlock(config.width) for _ in range(config.residual_blocks))
        )
        self.head = ConvNormAct(config.width, folded, 3, norm=False, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stylise ``x`` (RGB in [0, 1], [N, 3, H, W]); returns the same shape, values in [0, 1]."""
        height, width = x.shape[-2:]
        # Replicate, not reflect: reflection cannot pad a side by more than its length.
        padded = F.pad(x, (0, -width % self.FOLD, 0, -height % self.FOLD), mode="replicate")
        y = self.residuals(self.stem(space_to_depth(padded, self.FOLD)))
        y = depth_to_space(self.head(y), self.FOLD)
        return torch.sigmoid(y[..., :height, :width])


# F.pixel_unshuffle / F.pixel_shuffle, spelled with reshapes over a -1 batch: torch.export
# fixes the batch dimension of the built-ins to the example's size, and the graph must
# take any batch.
def space_to_depth(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``F.pixel_unshuffle(x, factor)``: [N, C, H, W] to [N, C·f², H/f, W/f]."""
    _, channels, height, width = x.shape
    blocks = x.reshape(-1, channels, height // factor, factor, width // factor, factor)
    return blocks.permute(0, 1, 3, 5, 2, 4).reshape(
        -1, channels * factor * factor, height // factor, width // factor
    )


def depth_to_space(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``F.pixel_shuffle(x, factor)``: [N, C·f², H, W] to [N, C, H·f, W·f]."""
    _, channels, height, width = x.shape
    out_channels = channels // (factor * factor)
    blocks = x.reshape(-1, out_channels, factor, factor, height, width)
    return blocks.permute(0, 1, 4, 2, 5, 3).reshape(
        -1, out_channels, height * factor, width * factor
    )


def build_network(config: NetworkConfig | None = None) -> nn.Module:
    """The transform network ``config`` describes (the Johnson net by default)."""
    config = config or NetworkConfig()
    if config.architecture == "quarter":
        return QuarterNet(config)
    return TransformNet(config)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
