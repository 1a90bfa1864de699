"""The feed-forward transform networks: Johnson et al. (2016), as the field settled on it, and
the real-time ``QuarterNet``. ``build_network`` picks one from a ``NetworkConfig``.

Johnson: reflection padding, instance normalisation, residual blocks and a nearest-upsample + conv
decoder (no transposed convolutions, so no checkerboard artefacts). Input and output are RGB
in [0, 1], shape [N, 3, H, W]; any H and W work and the output has the input's size, because
each decoder stage upsamples to the exact size of the matching encoder stage.
This module is the single definition used by training, export and validation.

Several styles in one network (Dumoulin, Shlens and Kudlur 2017, conditional instance
normalisation): with ``NetworkConfig.styles`` = S > 1 every instance norm holds one scale
and shift per style (``weight``/``bias`` [S, C], same state-dict keys as the single-style
net's [C]), and ``forward(x, style_weights)`` takes a row of S weights per image that mixes
them (one-hot: one style; None: the first). Everything else is shared. One style builds
exactly the single-style network (``nn.InstanceNorm2d``), so its runs and exports are
unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import NetworkConfig


class ConditionalInstanceNorm(nn.Module):
    """Instance norm with one scale and shift per style: ``weight`` and ``bias`` [S, C].

    ``style_weights`` [N, S] mixes the styles' parameters for each image (a one-hot row
    selects one style exactly: 1·γ + 0·γ' is γ bit for bit); None uses the first style."""

    def __init__(self, channels: int, styles: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(styles, channels))
        self.bias = nn.Parameter(torch.zeros(styles, channels))

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        if style_weights is None:
            gamma, beta = self.weight[:1], self.bias[:1]
        else:
            mix = style_weights.to(self.weight.dtype)
            gamma, beta = mix @ self.weight, mix @ self.bias
        normalised = F.instance_norm(x, eps=self.eps)
        return normalised * gamma[:, :, None, None] + beta[:, :, None, None]


def instance_norm(channels: int, styles: int) -> nn.Module:
    """The single-style net's affine instance norm, or a conditional one for several styles."""
    if styles == 1:
        return nn.InstanceNorm2d(channels, affine=True)
    return ConditionalInstanceNorm(channels, styles)


class ConvNormAct(nn.Sequential):
    """Reflection-padded convolution, optional instance norm (per style: see the module
    doc), optional ReLU. Its state-dict keys do not depend on the number of styles."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        norm: bool = True,
        act: bool = True,
        styles: int = 1,
    ) -> None:
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(cin, cout, kernel, stride=stride),
        ]
        if norm:
            layers.append(instance_norm(cout, styles))
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            x = layer(x, style_weights) if isinstance(layer, ConditionalInstanceNorm) else layer(x)
        return x


class ResidualBlock(nn.Module):
    """Two 3×3 conv layers with an identity shortcut (He et al. 2016, as in Johnson et al.)."""

    def __init__(self, channels: int, styles: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(channels, channels, 3, styles=styles),
            ConvNormAct(channels, channels, 3, act=False, styles=styles),
        )

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        y = x
        for layer in self.body:
            y = layer(y, style_weights)
        return x + y


def _residuals(
    x: torch.Tensor, blocks: nn.Sequential, style_weights: torch.Tensor | None
) -> torch.Tensor:
    for block in blocks:
        x = block(x, style_weights)
    return x


class TransformNet(nn.Module):
    """Image-to-image style network: encoder (×1/4), residual blocks, decoder back to input size."""

    def __init__(self, config: NetworkConfig | None = None) -> None:
        super().__init__()
        self.config = config or NetworkConfig()
        w, s = self.config.width, self.config.styles
        self.stem = ConvNormAct(3, w, 9, styles=s)
        self.down1 = ConvNormAct(w, 2 * w, 3, stride=2, styles=s)
        self.down2 = ConvNormAct(2 * w, 4 * w, 3, stride=2, styles=s)
        self.residuals = nn.Sequential(
            *(ResidualBlock(4 * w, s) for _ in range(self.config.residual_blocks))
        )
        self.up1 = ConvNormAct(4 * w, 2 * w, 3, styles=s)
        self.up2 = ConvNormAct(2 * w, w, 3, styles=s)
        self.head = ConvNormAct(w, 3, 9, norm=False, act=False)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Stylise ``x`` (RGB in [0, 1], [N, 3, H, W]); returns the same shape, values in [0, 1].
        ``style_weights`` [N, S]: the mix of styles per image (None: the first style)."""
        full = self.stem(x, style_weights)
        half = self.down1(full, style_weights)
        y = _residuals(self.down2(half, style_weights), self.residuals, style_weights)
        y = self.up1(F.interpolate(y, size=half.shape[-2:], mode="nearest"), style_weights)
        y = self.up2(F.interpolate(y, size=full.shape[-2:], mode="nearest"), style_weights)
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
        self.stem = ConvNormAct(folded, config.width, 3, styles=config.styles)
        self.residuals = nn.Sequential(
            *(ResidualBlock(config.width, config.styles) for _ in range(config.residual_blocks))
        )
        self.head = ConvNormAct(config.width, folded, 3, norm=False, act=False)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Stylise ``x`` (RGB in [0, 1], [N, 3, H, W]); returns the same shape, values in [0, 1].
        ``style_weights`` [N, S]: the mix of styles per image (None: the first style)."""
        height, width = x.shape[-2:]
        # Replicate, not reflect: reflection cannot pad a side by more than its length.
        padded = F.pad(x, (0, -width % self.FOLD, 0, -height % self.FOLD), mode="replicate")
        stem = self.stem(space_to_depth(padded, self.FOLD), style_weights)
        y = _residuals(stem, self.residuals, style_weights)
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


def style_norms(net: nn.Module) -> list[ConditionalInstanceNorm]:
    """The per-style instance norms of ``net`` (empty for a single-style network)."""
    return [m for m in net.modules() if isinstance(m, ConditionalInstanceNorm)]


def grow_styles(state: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """``state`` (a network with fewer styles) fitted to ``net``'s shapes: each instance
    norm's rows are kept and the new styles' rows start at the mean of the old ones; every
    other tensor is taken as it is."""
    grown = {}
    for key, target in net.state_dict().items():
        old = state[key]
        if old.shape != target.shape and target.dim() == 2 and old.shape[-1] == target.shape[-1]:
            rows = old.reshape(-1, target.shape[-1])
            fill = rows.mean(0, keepdim=True).expand(target.shape[0] - rows.shape[0], -1)
            old = torch.cat([rows, fill])
        grown[key] = old
    return grown


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
