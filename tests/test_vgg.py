"""The VGG-19 loss network: weight sources, calibration, and offline failure modes."""

from __future__ import annotations

import copy
import urllib.error
from pathlib import Path

import pytest
import torch
from torchvision.models import vgg19

from stylecast.errors import StylecastError
from stylecast.training.config import VGG_LAYER_NAMES
from stylecast.training.vgg import (
    LossNetwork,
    calibrated_random_features,
    load_loss_network,
    pink_noise,
)
from stylecast.training.vgg_weights import VggWeights

SHALLOW = ("relu1_1", "relu2_1")


@pytest.fixture(scope="module")
def vgg_state_files(tmp_path_factory) -> tuple[Path, Path]:
    """A torchvision vgg19 state dict (random init) saved whole, and its ``features`` part
    alone: the two file layouts a user may pass to ``--vgg-weights PATH``."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    state = vgg19(weights=None).state_dict()
    full, features = folder / "vgg19-test.pth", folder / "vgg19-features.pt"
    torch.save(state, full)
    torch.save(
        {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")},
        features,
    )
    return full, features


def _conv_weights(features: torch.nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in features.modules() if isinstance(m, torch.nn.Conv2d)]


# --- VggWeights -------------------------------------------------------------------------------


def test_vgg_weights_parse_specs() -> None:
    assert VggWeights.parse("imagenet") == VggWeights("imagenet")
    assert VggWeights.parse("random:7") == VggWeights("random", seed=7)
    assert VggWeights.parse("weights/vgg.pth") == VggWeights(
        "file", path=Path("weights/vgg.pth"), file_name="vgg.pth"
    )
    assert [VggWeights.parse(s).testing_only for s in ("random:7", "imagenet", "w.pth")] == [
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    "recorded", ["imagenet:IMAGENET1K_V1", "random:3", "file:vgg19.pth sha256:0123456789abcdef"]
)
def test_vgg_weights_recorded_id_round_trips(recorded) -> None:
    """What outputs record parses back to the same source (the one parser of both forms)."""
    weights = VggWeights.parse(recorded)
    assert weights.id == recorded
    assert VggWeights.parse(weights.id) == weights


def test_vgg_weights_spec_rebuilds_except_file_known_by_name() -> None:
    assert VggWeights.parse("imagenet:IMAGENET1K_V1").spec == "imagenet"
    assert VggWeights.parse("random:3").spec == "random:3"
    assert VggWeights.parse("file:vgg19.pth sha256:0123").spec is None


@pytest.mark.parametrize("spec", ["random", "random:abc", "random:", "random:1.5"])
def test_vgg_weights_rejects_bad_random_specs(spec) -> None:
    with pytest.raises(StylecastError, match="random:SEED"):
        VggWeights.parse(spec)


# --- random:SEED ------------------------------------------------------------------------------


def test_random_weights_are_deterministic_per_seed(random_vgg) -> None:
    """Same seed, same weights (whatever the global RNG state); another seed, other weights.
    ``random_vgg`` is ``random:0`` loaded earlier, trimmed to relu5_1."""
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    again = calibrated_random_features(0)
    # calibration forks the RNG: the caller's random stream is left as it was
    torch.testing.assert_close(torch.rand(3), expected_next)
    other = calibrated_random_features(1)
    reference = _conv_weights(random_vgg.features)
    assert len(reference) == 13
    for wa, wb in zip(reference, _conv_weights(again), strict=False):
        assert torch.equal(wa, wb)
    assert len(_conv_weights(again)) == 16
    for wa, wc in zip(_conv_weights(again), _conv_weights(other), strict=True):
        assert not torch.equal(wa, wc)


def test_load_loss_network_random(random_vgg, loss_layers) -> None:
    assert isinstance(random_vgg, LossNetwork)
    assert random_vgg.weights_id == "random:0"
    assert random_vgg.layers == tuple(dict.fromkeys(loss_layers))
    features = random_vgg(torch.rand(1, 3, 40, 40))
    assert set(features) == set(loss_layers)
    # trimmed after the deepest requested layer (relu5_1 is the 13th ReLU)
    relus = [m for m in random_vgg.features if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == VGG_LAYER_NAMES.index("relu5_1") + 1


def test_loss_network_trims_to_deepest_layer(random_vgg) -> None:
    network = LossNetwork(random_vgg.features, SHALLOW, "test")
    assert isinstance(network.features[-1], torch.nn.ReLU)
    assert sum(isinstance(m, torch.nn.ReLU) for m in network.features) == 3
    out = network(torch.rand(2, 3, 32, 32))
    assert out["relu1_1"].shape == (2, 64, 32, 32)
    assert out["relu2_1"].shape == (2, 128, 16, 16)


def test_loss_network_rejects_unknown_layers() -> None:
    with pytest.raises(StylecastError, match="relu9_9"):
        LossNetwork(torch.nn.Sequential(), ("relu1_1", "relu9_9"), "test")


def _torchvision_init(features: torch.nn.Sequential) -> torch.nn.Sequential:
    """A copy of ``features`` re-initialised as torchvision's VGG does (Kaiming normal, fan out,
    zero bias): the plain init that calibration exists to replace."""
    plain = copy.deepcopy(features)
    torch.manual_seed(0)
    for module in plain.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            torch.nn.init.zeros_(module.bias)
    return plain


def _feature_stds(network: LossNetwork, image: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        return {name: float(value.std()) for name, value in network(image[None]).items()}


def test_calibrated_features_have_unit_scale_on_natural_images(
    random_vgg, loss_config, content_images, small_image
) -> None:
    """Calibration on pink noise must carry over to photos: every style layer's ReLU output has
    a std of order 1. torchvision's plain init shrinks activations with depth instead."""
    for path in content_images[:2]:
        stds = _feature_stds(random_vgg, small_image(path, 96))
        for name in loss_config.style_layers:
            assert 0.25 < stds[name] < 5.0, (path.name, name, stds[name])

    plain = LossNetwork(_torchvision_init(random_vgg.features), loss_config.style_layers, "plain")
    plain_stds = _feature_stds(plain, small_image(content_images[0], 96))
    # the band above is meaningful: the uncalibrated network falls out of it
    assert not all(0.25 < plain_stds[name] < 5.0 for name in loss_config.style_layers)
    assert plain_stds["relu5_1"] < 0.25


def test_pink_noise_is_seeded_and_in_range() -> None:
    a = pink_noise(2, 32, torch.Generator().manual_seed(3))
    b = pink_noise(2, 32, torch.Generator().manual_seed(3))
    assert a.shape == (2, 3, 32, 32)
    assert torch.equal(a, b)
    assert float(a.min()) == pytest.approx(0.0, abs=1e-6)
    assert float(a.max()) == pytest.approx(1.0, abs=1e-6)


# --- local files ------------------------------------------------------------------------------


def test_load_from_state_dict_file(vgg_state_files) -> None:
    vgg_state_file, _ = vgg_state_files
    network = load_loss_network(str(vgg_state_file), SHALLOW)
    assert network.weights_id.startswith(f"file:{vgg_state_file.name} sha256:")
    expected = torch.load(vgg_state_file, weights_only=True)["features.0.weight"]
    torch.testing.assert_close(network.features[0].weight, expected)
    assert not any(p.requires_grad for p in network.parameters())
    assert not network.training


def test_load_from_features_only_state_dict(vgg_state_files) -> None:
    _, features_only = vgg_state_files
    network = load_loss_network(str(features_only), SHALLOW)
    expected = torch.load(features_only, weights_only=True)["2.weight"]
    torch.testing.assert_close(network.features[2].weight, expected)
    # the id names the file and a hash of its bytes
    assert network.weights_id.startswith(f"file:{features_only.name} sha256:")
    assert network.weights_id.split("sha256:")[1] != "0" * 16


def test_missing_weights_file(tmp_path) -> None:
    with pytest.raises(StylecastError, match="not found"):
        load_loss_network(str(tmp_path / "nope.pth"), SHALLOW)


def test_garbage_weights_file(tmp_path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a torch file\x00\x01\x02" * 10)
    with pytest.raises(StylecastError, match="not a VGG-19 state dict"):
        load_loss_network(str(path), SHALLOW)


def test_wrong_state_dict_file(tmp_path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(StylecastError, match="not a VGG-19 state dict"):
        load_loss_network(str(path), SHALLOW)


# --- imagenet, offline ------------------------------------------------------------------------


def test_imagenet_offline_names_the_option(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(StylecastError) as info:
        load_loss_network("imagenet", SHALLOW)
    message = str(info.value)
    assert calls and calls[0].endswith(".pth")
    assert "--vgg-weights" in message
    assert "random:SEED" in message
    assert str(tmp_path / "torch-home") in message  # tells where to place the file
    assert "\n" not in message
