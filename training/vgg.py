"""VGG-19 loss network: frozen torchvision features addressed by layer name (relu1_1 … relu5_4).

Weights come from one of three explicit sources (``vgg_weights.VggWeights``), recorded in
every output; nothing ever falls back from one source to another.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from torch import nn
from torchvision.models import VGG19_Weights, vgg19
from torchvision.models.vgg import cfgs, make_layers

from stylecast.errors import StylecastError

from .config import VGG_LAYER_NAMES
from .vgg_weights import VggWeights

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CALIBRATION_SIZE = 128
CALIBRATION_IMAGES = 4


class LossNetwork(nn.Module):
    """Frozen VGG-19 features up to the deepest requested layer; ImageNet normalisation inside.

    ``forward(x)`` takes RGB in [0, 1] and returns {layer name: activation} for ``layers``.
    """

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(
        self, features: nn.Sequential, layers: tuple[str, ...], weights: VggWeights
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG_LAYER_NAMES]
        if unknown:
            raise StylecastError(f"unknown VGG-19 layer(s): {', '.join(unknown)}")
        self.layers = tuple(dict.fromkeys(layers))
        self.weights = weights
        deepest = max(VGG_LAYER_NAMES.index(name) for name in self.layers)
        self.features, self.index_to_name = _trim(features, deepest)
        # Each 2×2 max-pool before the deepest layer halves the image; below this it vanishes.
        pools = sum(isinstance(m, nn.MaxPool2d) for m in self.features)
        self.min_side = 2**pools
        self.deepest = VGG_LAYER_NAMES[deepest]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @property
    def weights_id(self) -> str:
        """The recorded id of the weights (``VggWeights.id``)."""
        return self.weights.id

    def train(self, mode: bool = True) -> LossNetwork:
        # Always eval: the loss network is frozen, whatever Lightning asks of its parent.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if min(x.shape[-2:]) < self.min_side:
            raise StylecastError(
                f"image of {x.shape[-2]}x{x.shape[-1]} px is too small for the loss network: "
                f"layer {self.deepest} needs at least {self.min_side} px per side; "
                "use a larger size (--size, --image-size or --style-size)"
            )
        out: dict[str, torch.Tensor] = {}
        x = (x - self.mean) / self.std
        for index, layer in enumerate(self.features):
            x = layer(x)
            name = self.index_to_name.get(index)
            if name in self.layers:
                out[name] = x
        return out


def load_loss_network(weights: VggWeights | str, layers: tuple[str, ...]) -> LossNetwork:
    """Build the frozen loss network from a weight source (or its spec) for the given layers."""
    source = VggWeights.parse(weights) if isinstance(weights, str) else weights
    if source.kind == "imagenet":
        features = _imagenet_features()
    elif source.kind == "file":
        features, source = _file_features(source)
    else:
        assert source.seed is not None
        features = calibrated_random_features(source.seed)
        log.warning(
            "\n%s\nVGG-19 weights are RANDOM (%s, variance-calibrated). Losses and any model\n"
            "trained with them are for TESTING ONLY, not gallery quality. Use\n"
            "--vgg-weights imagenet (default) or --vgg-weights PATH for real results.\n%s",
            "!" * 72,
            source.id,
            "!" * 72,
        )
    return LossNetwork(features, layers, source)


def _vgg_features(initialise: bool = True) -> nn.Sequential:
    """VGG-19's feature layers. ``initialise=False`` skips torchvision's full-model init
    (classifier included, ~0.5 GB), for weights that are loaded right after."""
    features = vgg19(weights=None).features if initialise else make_layers(cfgs["E"])
    for module in features:
        if isinstance(module, nn.ReLU):
            module.inplace = False  # activations are collected, so they must not be overwritten
    return features


def _trim(features: nn.Sequential, deepest: int) -> tuple[nn.Sequential, dict[int, str]]:
    """Keep layers up to the ReLU named VGG_LAYER_NAMES[deepest]; map their indices to names."""
    index_to_name: dict[int, str] = {}
    relu_count = 0
    for index, module in enumerate(features):
        if isinstance(module, nn.ReLU):
            index_to_name[index] = VGG_LAYER_NAMES[relu_count]
            if relu_count == deepest:
                return nn.Sequential(*list(features)[: index + 1]), index_to_name
            relu_count += 1
    raise AssertionError("VGG-19 has 16 ReLU layers")


def _imagenet_features() -> nn.Sequential:
    weights = VGG19_Weights.IMAGENET1K_V1
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        state = torch.hub.load_state_dict_from_url(weights.url, progress=True, check_hash=True)
    except Exception as exc:  # network errors come in many types (URLError, OSError, HTTPError…)
        raise StylecastError(
            f"could not get the ImageNet VGG-19 weights ({type(exc).__name__}: {exc}). "
            f"Download {weights.url} on a machine with internet access and either place it at "
            f"{cache} or pass --vgg-weights /path/to/{cache.name}. "
            "For tests and offline demos only: --vgg-weights random:SEED."
        ) from None
    features = _vgg_features(initialise=False)
    features.load_state_dict(_features_state(state))
    return features


def _file_features(source: VggWeights) -> tuple[nn.Sequential, VggWeights]:
    path = source.path
    if path is None:
        raise StylecastError(
            f"the VGG-19 weights file {source.file_name!r} was recorded by name only; "
            "pass --vgg-weights PATH to that file"
        )
    if not path.is_file():
        raise StylecastError(
            f"VGG-19 weights file not found: {path} (expected a torchvision vgg19 state dict, "
            "or use --vgg-weights imagenet | random:SEED)"
        )
    data = path.read_bytes()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        features = _vgg_features(initialise=False)
        features.load_state_dict(_features_state(state))
    except Exception as exc:  # torch.load raises many types for bad files
        raise StylecastError(
            f"{path} is not a VGG-19 state dict ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]})"
        ) from None
    return features, source.with_sha256(hashlib.sha256(data).hexdigest()[:16])


def _features_state(state: object) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict):
        raise StylecastError("weights file does not hold a state dict")
    if any(key.startswith("features.") for key in state):
        return {
            k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
        }
    return state


def calibrated_random_features(seed: int) -> nn.Sequential:
    """Seeded random VGG-19 whose every conv outputs unit std per channel on a calibration batch.

    torchvision's default init gives vanishing activations (losses ~1e-10, flat), useless as a
    loss network. Zeroing biases and rescaling each conv layer by layer (as in LSUV init) keeps
    feature magnitudes stable with depth. The calibration batch is seeded 1/f ("pink") noise,
    whose spectrum resembles natural images, so the network depends on the seed alone.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        features = _vgg_features()
    x = pink_noise(CALIBRATION_IMAGES, CALIBRATION_SIZE, generator)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        for module in features:
            if isinstance(module, nn.Conv2d):
                assert module.bias is not None  # VGG's convs have biases
                module.bias.zero_()
                std = module(x).std(dim=(0, 2, 3)).clamp_min(1e-8)
                module.weight.div_(std.view(-1, 1, 1, 1))
            x = module(x)
    return features


def pink_noise(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` seeded RGB images [n, 3, size, size] in [0, 1] with a 1/f amplitude spectrum."""
    fy = torch.fft.fftfreq(size).view(-1, 1)
    fx = torch.fft.rfftfreq(size).view(1, -1)
    amplitude = 1.0 / (fx**2 + fy**2).sqrt().clamp_min(1.0 / size)
    # A shared luminance field plus weaker per-channel fields gives correlated colour.
    white = torch.randn(n, 4, size, size, generator=generator)
    field = torch.fft.irfft2(torch.fft.rfft2(white) * amplitude, s=(size, size))
    rgb = field[:, :1] + 0.5 * field[:, 1:]
    low = rgb.amin(dim=(1, 2, 3), keepdim=True)
    high = rgb.amax(dim=(1, 2, 3), keepdim=True)
    return (rgb - low) / (high - low)
