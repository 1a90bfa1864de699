"""The transform network: shapes, output range, presets, and gradient flow through the loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stylecast.errors import StylecastError
from stylecast.training.config import NetworkConfig
from stylecast.training.losses import PerceptualLoss
from stylecast.training.network import TransformNet, count_parameters

PRESETS = ("standard", "lite")


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("shape", [(1, 3, 33, 47), (2, 3, 65, 97), (1, 3, 17, 17)])
def test_output_shape_matches_input_for_odd_sizes(preset, shape) -> None:
    torch.manual_seed(0)
    net = TransformNet(NetworkConfig.preset(preset)).eval()
    x = torch.rand(shape)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert float(y.min()) >= 0.0
    assert float(y.max()) <= 1.0


def test_output_stays_in_range_for_extreme_inputs() -> None:
    torch.manual_seed(0)
    net = TransformNet(NetworkConfig.preset("lite"))
    with torch.no_grad():
        for x in (
            torch.zeros(1, 3, 24, 24),
            torch.ones(1, 3, 24, 24),
            50 * torch.randn(1, 3, 24, 24),
        ):
            y = net(x)
            assert y.shape == x.shape
            assert 0.0 <= float(y.min()) <= float(y.max()) <= 1.0


def test_presets() -> None:
    standard, lite = NetworkConfig.preset("standard"), NetworkConfig.preset("lite")
    assert standard == NetworkConfig() == NetworkConfig(32, 5)
    assert lite == NetworkConfig(16, 3)
    n_standard = count_parameters(TransformNet(standard))
    n_lite = count_parameters(TransformNet(lite))
    assert 0 < n_lite < n_standard
    assert n_lite < n_standard / 3  # half the width, fewer blocks: roughly a quarter
    with pytest.raises(StylecastError, match="preset"):
        NetworkConfig.preset("huge")


@pytest.mark.parametrize(("width", "blocks"), [(0, 5), (-4, 3), (16, -1)])
def test_network_config_rejects_bad_shapes(width, blocks) -> None:
    with pytest.raises(StylecastError):
        NetworkConfig(width, blocks)


def test_network_without_residual_blocks_works() -> None:
    net = TransformNet(NetworkConfig(8, 0))
    assert net(torch.rand(1, 3, 21, 30)).shape == (1, 3, 21, 30)


class _Pair(nn.Module):
    """A parent holding a transform net and a loss, like the LightningModule does."""

    def __init__(self, net: TransformNet, criterion: PerceptualLoss) -> None:
        super().__init__()
        self.net = net
        self.criterion = criterion


def test_gradients_reach_only_the_transform_network(
    random_vgg, loss_config, style_image, small_image
) -> None:
    torch.manual_seed(0)
    net = TransformNet(NetworkConfig.preset("lite"))
    criterion = PerceptualLoss(random_vgg, loss_config, small_image(style_image, 48))
    parent = _Pair(net, criterion).train()
    batch = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    terms = criterion(net(batch), criterion.content_targets(batch))
    terms["total"].backward()

    vgg_params = list(random_vgg.parameters())
    assert vgg_params
    for param in vgg_params:
        assert not param.requires_grad
        assert param.grad is None
    for name, buffer in criterion.named_buffers():
        assert not buffer.requires_grad, name
    for name, param in net.named_parameters():
        assert param.requires_grad, name
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert any(float(p.grad.abs().sum()) > 0 for p in net.parameters())
    # the loss network adds nothing trainable to its parent
    trainable = {id(p) for p in parent.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in net.parameters()}


def test_loss_network_stays_in_eval_mode(random_vgg, loss_config, style_image, small_image) -> None:
    criterion = PerceptualLoss(random_vgg, loss_config, small_image(style_image, 32))
    parent = _Pair(TransformNet(NetworkConfig.preset("lite")), criterion)
    try:
        parent.train()
        assert parent.training
        assert parent.net.training
        assert not random_vgg.training
        assert all(not m.training for m in random_vgg.modules())
        random_vgg.train(True)
        assert not random_vgg.training
    finally:
        parent.eval()
