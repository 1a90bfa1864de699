"""Gram matrices, total variation, the perceptual loss and LossConfig validation."""

from __future__ import annotations

import json

import pytest
import torch

from stylecast.errors import StylecastError
from stylecast.training.config import LossConfig, loss_from_dict, to_dict
from stylecast.training.losses import PerceptualLoss, gram_matrix, total_variation

# --- gram_matrix ------------------------------------------------------------------------------


def test_gram_matrix_hand_computed() -> None:
    # channel 0 flattens to [1, 2, 3, 4], channel 1 to [0, 1, 0, -1]
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, -1.0]]]])
    assert features.shape == (1, 2, 2, 2)
    # <c0,c0> = 30, <c0,c1> = 2 - 4 = -2, <c1,c1> = 2; divided by C*H*W = 8
    expected = torch.tensor([[[30.0, -2.0], [-2.0, 2.0]]]) / 8
    gram = gram_matrix(features)
    assert gram.shape == (1, 2, 2)
    torch.testing.assert_close(gram, expected)


def test_gram_matrix_is_per_sample_and_symmetric() -> None:
    a = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, -1.0]]])
    b = torch.ones(2, 2, 2)  # every entry 1: each inner product is 4, / 8
    gram = gram_matrix(torch.stack([a, b]))
    assert gram.shape == (2, 2, 2)
    torch.testing.assert_close(gram[0], torch.tensor([[30.0, -2.0], [-2.0, 2.0]]) / 8)
    torch.testing.assert_close(gram[1], torch.full((2, 2), 0.5))
    features = torch.randn(3, 5, 4, 6)
    gram = gram_matrix(features)
    torch.testing.assert_close(gram, gram.transpose(1, 2))
    # the normalisation makes Grams independent of spatial size for a tiled pattern
    torch.testing.assert_close(gram_matrix(features.repeat(1, 1, 2, 2)), gram)


# --- total_variation --------------------------------------------------------------------------


def test_total_variation_hand_computed() -> None:
    image = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])  # [1, 1, 2, 3]
    # vertical differences: 2, 1, -1 -> mean square (4 + 1 + 1) / 3 = 2
    # horizontal differences: 1, 2 | 0, 0 -> mean square (1 + 4) / 4 = 1.25
    torch.testing.assert_close(total_variation(image), torch.tensor(3.25))


def test_total_variation_of_constant_image_is_zero() -> None:
    assert float(total_variation(torch.full((2, 3, 7, 5), 0.3))) == 0.0


# --- PerceptualLoss ---------------------------------------------------------------------------


def test_identical_images_give_zero_content_and_style(
    random_vgg, loss_config, content_image, small_image
) -> None:
    image = small_image(content_image, 64)[None]
    criterion = PerceptualLoss(random_vgg, loss_config, image)
    terms = criterion(image, criterion.content_targets(image))
    assert set(terms) == {"content", "style", "tv", "total"}
    assert float(terms["content"]) == 0.0
    assert float(terms["style"]) < 1e-10
    torch.testing.assert_close(terms["tv"], total_variation(image))
    expected = loss_config.style_weight * terms["style"] + loss_config.tv_weight * terms["tv"]
    torch.testing.assert_close(terms["total"], expected)


def test_constant_image_gives_zero_loss(random_vgg, loss_config) -> None:
    image = torch.full((1, 3, 48, 48), 0.4)
    criterion = PerceptualLoss(random_vgg, loss_config, image[0])  # [3, H, W] style is accepted
    terms = criterion(image, criterion.content_targets(image))
    for name in ("content", "style", "tv", "total"):
        assert float(terms[name]) == pytest.approx(0.0, abs=1e-10), name


def test_batched_output_against_single_style(
    random_vgg, loss_config, content_image, small_image
) -> None:
    image = small_image(content_image, 48)[None]
    criterion = PerceptualLoss(random_vgg, loss_config, image)
    batch = image.expand(3, -1, -1, -1).contiguous()
    terms = criterion(batch, criterion.content_targets(batch))
    assert float(terms["content"]) == 0.0
    assert float(terms["style"]) < 1e-10


def test_different_images_give_positive_terms(
    random_vgg, loss_config, content_image, style_image, small_image
) -> None:
    content = small_image(content_image, 64)[None]
    style = small_image(style_image, 64)
    criterion = PerceptualLoss(random_vgg, loss_config, style)
    output = torch.rand(1, 3, *content.shape[-2:], generator=torch.Generator().manual_seed(0))
    terms = criterion(output, criterion.content_targets(content))
    for name in ("content", "style", "tv", "total"):
        assert float(terms[name]) > 0, name
        assert torch.isfinite(terms[name]), name
    expected = (
        loss_config.content_weight * terms["content"]
        + loss_config.style_weight * terms["style"]
        + loss_config.tv_weight * terms["tv"]
    )
    torch.testing.assert_close(terms["total"], expected)
    # the content image itself is closer in content, and smoother, than noise
    own = criterion(content, criterion.content_targets(content))
    assert float(own["content"]) == 0.0
    assert float(own["tv"]) < float(terms["tv"])


def test_style_layer_weights_scale_the_style_term(
    random_vgg, content_image, style_image, small_image
) -> None:
    content = small_image(content_image, 48)[None]
    style = small_image(style_image, 48)
    base = LossConfig(style_layers=("relu1_1", "relu2_1"), style_weight=1.0)
    doubled = LossConfig(style_layers=("relu1_1", "relu2_1"), style_layer_weights=(2.0, 2.0))
    targets = None
    values = []
    for config in (base, doubled):
        criterion = PerceptualLoss(random_vgg, config, style)
        targets = targets or criterion.content_targets(content)
        values.append(criterion(content, targets)["style"])
    torch.testing.assert_close(values[1], 2 * values[0])


# --- LossConfig -------------------------------------------------------------------------------


def test_loss_config_defaults_and_equal_layer_weights() -> None:
    config = LossConfig()
    assert config.layer_weights == dict.fromkeys(config.style_layers, 1.0)


def test_loss_config_json_round_trip() -> None:
    config = LossConfig(style_layers=("relu1_1", "relu3_1"), style_layer_weights=(0.5, 2.0))
    again = loss_from_dict(json.loads(json.dumps(to_dict(config))))
    assert again == config
    assert isinstance(again.style_layers, tuple)
    assert isinstance(again.style_layer_weights, tuple)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"content_layers": ("relu4_5",)}, "relu4_5"),
        ({"style_layers": ("relu1_1", "conv2_1")}, "conv2_1"),
        ({"style_layers": ("relu1_1", "relu2_1"), "style_layer_weights": (1.0,)}, "style layer"),
        ({"style_layer_weights": (1.0, 2.0)}, "style layer"),
        ({"content_weight": -1.0}, "content weight"),
        ({"style_weight": -1e-3}, "style weight"),
        ({"tv_weight": -5.0}, "tv weight"),
        ({"content_layers": (), "style_layers": ()}, "at least one"),
    ],
)
def test_loss_config_rejects_bad_values(kwargs, message) -> None:
    with pytest.raises(StylecastError, match=message):
        LossConfig(**kwargs)


def test_loss_config_accepts_zero_weights() -> None:
    config = LossConfig(content_weight=0.0, style_weight=0.0, tv_weight=0.0)
    assert config.tv_weight == 0.0
