"""Configuration dataclasses for the transform network, the perceptual loss, training and iteration.

Every run serialises these to JSON, so a model can be rebuilt, exported or validated
with exactly the settings it was trained with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylecast.errors import StylecastError

from .vgg_weights import VggWeights

VGG_LAYER_NAMES: tuple[str, ...] = (
    "relu1_1", "relu1_2",
    "relu2_1", "relu2_2",
    "relu3_1", "relu3_2", "relu3_3", "relu3_4",
    "relu4_1", "relu4_2", "relu4_3", "relu4_4",
    "relu5_1", "relu5_2", "relu5_3", "relu5_4",
)  # fmt: skip


ARCHITECTURES = ("johnson", "quarter")


@dataclass(frozen=True)
class NetworkConfig:
    """Shape of the transform network.

    ``johnson``: Johnson et al.'s encoder/residual/decoder net (``width`` channels at full
    resolution, doubling twice). ``quarter``: the real-time design, all work at ¼ resolution
    (pixel-unshuffle in, ``width`` channels, pixel-shuffle out); see ``network.QuarterNet``.
    """

    width: int = 32
    residual_blocks: int = 5
    architecture: str = "johnson"
    styles: int = 1  # > 1: per-style instance-norm scale and shift (network module doc)

    @classmethod
    def preset(cls, name: str) -> NetworkConfig:
        """`standard` (32/64/128 channels, 5 blocks), `lite` (16/32/64, 3 blocks) or `rt`
        (real-time CPU tier: 48 channels at ¼ resolution, 5 blocks)."""
        if name not in NETWORK_PRESETS:
            raise StylecastError(
                f"unknown network preset {name!r}; choose from {sorted(NETWORK_PRESETS)}"
            )
        return NETWORK_PRESETS[name]

    def __post_init__(self) -> None:
        if self.width <= 0 or self.residual_blocks < 0:
            raise StylecastError(
                f"network width must be > 0 and residual blocks >= 0 "
                f"(got width={self.width}, residual_blocks={self.residual_blocks})"
            )
        if self.styles < 1:
            raise StylecastError(f"a network needs at least one style (got {self.styles})")
        if self.architecture not in ARCHITECTURES:
            raise StylecastError(
                f"unknown network architecture {self.architecture!r}; "
                f"choose from {', '.join(ARCHITECTURES)}"
            )


NETWORK_PRESETS: dict[str, NetworkConfig] = {
    "standard": NetworkConfig(32, 5),
    "lite": NetworkConfig(16, 3),
    "rt": NetworkConfig(48, 5, "quarter"),
}


@dataclass(frozen=True)
class LossConfig:
    """Weights and layers of the perceptual loss shared by training and iteration.

    The defaults suit torchvision's ImageNet VGG-19. A calibrated random VGG
    (``random:SEED``) has different feature scales; pass explicit weights for it.
    """

    content_layers: tuple[str, ...] = ("relu4_2",)
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    style_layer_weights: tuple[float, ...] | None = None  # None: equal weights
    content_weight: float = 1.0
    style_weight: float = 1e6
    tv_weight: float = 1e-5

    def __post_init__(self) -> None:
        # JSON round trips give lists; keep tuples so configs stay hashable and comparable.
        object.__setattr__(self, "content_layers", tuple(self.content_layers))
        object.__setattr__(self, "style_layers", tuple(self.style_layers))
        if self.style_layer_weights is not None:
            object.__setattr__(self, "style_layer_weights", tuple(self.style_layer_weights))
        for name in (*self.content_layers, *self.style_layers):
            if name not in VGG_LAYER_NAMES:
                raise StylecastError(
                    f"unknown VGG-19 layer {name!r}; valid names: {', '.join(VGG_LAYER_NAMES)}"
                )
        if not self.content_layers and not self.style_layers:
            raise StylecastError("at least one content or style layer is needed")
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(
            self.style_layers
        ):
            raise StylecastError(
                f"{len(self.style_layer_weights)} style layer weights given for "
                f"{len(self.style_layers)} style layers"
            )
        for label, value in (
            ("content weight", self.content_weight),
            ("style weight", self.style_weight),
            ("tv weight", self.tv_weight),
        ):
            if value < 0:
                raise StylecastError(f"{label} must be >= 0 (got {value})")

    @property
    def layer_weights(self) -> dict[str, float]:
        """Per-style-layer weights, equal when none were given."""
        weights = self.style_layer_weights or (1.0,) * len(self.style_layers)
        return dict(zip(self.style_layers, weights, strict=True))


STYLE_SAMPLING = ("sample", "batch")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything `stylecast train` needs besides devices, precision and logging cadence.

    Several styles: ``style_image`` is the first, ``extra_styles`` the others, in order; the
    network gets one instance-norm scale and shift per style (``network.styles`` is set to
    their number). Adding styles to a trained network: ``base_weights`` names the run or
    checkpoint it starts from, whose first ``frozen_styles`` styles (and all shared weights)
    stay as they are; only the later styles' scales and shifts train."""

    style_image: str
    content_dirs: tuple[str, ...]  # one or more folders of content images (recursive)
    image_size: int = 256
    style_size: int | None = None  # longer side of the style image; None: image_size
    batch_size: int = 4
    lr: float = 1e-3
    vgg_weights: str = "imagenet"
    seed: int = 0
    network: NetworkConfig = field(default_factory=NetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    # Validation: images held aside from training. ``val_dir`` names a folder of them;
    # otherwise ``val_fraction`` of the content images are held aside (0: no validation).
    val_dir: str | None = None
    val_fraction: float = 0.1
    # Folders of images never used for training or validation (a test set), matched by content.
    exclude_dirs: tuple[str, ...] = ()
    crop_scale_min: float = 0.3  # random crops cover this much of an image's area, up to all
    # Distillation (training.teacher): a trained network whose output on the same crop the
    # student is pulled toward, by ``teacher_weight`` × mean squared pixel difference.
    teacher: str | None = None
    teacher_weight: float = 10.0
    extra_styles: tuple[str, ...] = ()
    frozen_styles: int = 0
    base_weights: str | None = None
    # Several styles: "sample" draws a style for every image of a batch, "batch" one style for
    # the whole batch (docs/multistyle.md has the side-by-side measurement behind the default).
    style_sampling: str = "sample"
    # "cosine": the learning rate falls from ``lr`` to ``lr * lr_final_fraction`` along half a
    # cosine over the run's steps (docs/validation/README.md has the measurement behind it).
    lr_schedule: str = "constant"
    lr_final_fraction: float = 0.01

    @property
    def styles(self) -> tuple[str, ...]:
        """Every style image, in order (the network's style indices)."""
        return (self.style_image, *self.extra_styles)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_styles", tuple(self.extra_styles))
        if self.network.styles != len(self.styles):
            object.__setattr__(
                self, "network", dataclasses.replace(self.network, styles=len(self.styles))
            )
        if len(self.styles) > 1:
            check_style_names(self.styles)
        if not 0 <= self.frozen_styles < len(self.styles):
            raise StylecastError(
                f"frozen styles must be in [0, {len(self.styles)}) (got {self.frozen_styles})"
            )
        if (self.frozen_styles > 0) != (self.base_weights is not None):
            raise StylecastError("frozen styles need the base weights they come from")
        if self.style_sampling not in STYLE_SAMPLING:
            raise StylecastError(
                f"style sampling must be one of {', '.join(STYLE_SAMPLING)} "
                f"(got {self.style_sampling!r})"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise StylecastError(
                f"learning-rate schedule must be one of {', '.join(LR_SCHEDULES)} "
                f"(got {self.lr_schedule!r})"
            )
        if not 0.0 <= self.lr_final_fraction <= 1.0:
            raise StylecastError(
                f"final learning-rate fraction must be in [0, 1] (got {self.lr_final_fraction})"
            )
        if self.teacher is not None and len(self.styles) > 1:
            raise StylecastError("distillation (--teacher) trains one style at a time")
        if isinstance(self.content_dirs, str):  # one folder given as a plain string
            object.__setattr__(self, "content_dirs", (self.content_dirs,))
        object.__setattr__(self, "content_dirs", tuple(self.content_dirs))
        object.__setattr__(self, "exclude_dirs", tuple(self.exclude_dirs))
        if not self.content_dirs:
            raise StylecastError("at least one content folder is needed")
        if not 0.0 <= self.val_fraction < 1.0:
            raise StylecastError(f"validation fraction must be in [0, 1) (got {self.val_fraction})")
        if not 0.0 < self.crop_scale_min <= 1.0:
            raise StylecastError(f"crop scale must be in (0, 1] (got {self.crop_scale_min})")
        require_positive("image size", self.image_size)
        require_positive("batch size", self.batch_size)
        VggWeights.parse(self.vgg_weights)  # a malformed spec fails before any work
        if self.lr <= 0:
            raise StylecastError(f"learning rate must be > 0 (got {self.lr})")
        if self.teacher_weight < 0:
            raise StylecastError(f"teacher weight must be >= 0 (got {self.teacher_weight})")


def style_name(path: str | Path) -> str:
    """A style's name: its image's file name without the extension."""
    return Path(path).stem


def check_style_names(paths: tuple[str, ...]) -> None:
    """Styles are addressed by name (``starry_night``; ``a:0.7,b:0.3`` mixes), so names must
    be distinct, and made of letters, digits, '-', '_' and '.'."""
    seen: dict[str, str] = {}
    for path in paths:
        name = style_name(path)
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise StylecastError(
                f"style image {path}: its name {name!r} must be letters, digits, '-', '_' or '.'"
            )
        if name in seen:
            raise StylecastError(
                f"style images {seen[name]} and {path} share the name {name!r}; rename one"
            )
        seen[name] = path


def require_positive(label: str, value: int | float) -> None:
    """Raise a user-facing error unless ``value`` > 0."""
    if value <= 0:
        raise StylecastError(f"{label} must be > 0 (got {value})")


# Fields a single-style config leaves out of its dict, so its records, checkpoints and model
# cards read exactly as before several styles existed.
_SINGLE_STYLE_DEFAULTS: dict[str, Any] = {"extra_styles": (), "frozen_styles": 0,
                                          "base_weights": None,
                                          "style_sampling": "sample"}  # fmt: skip


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass (single-style settings left out)."""
    data = dataclasses.asdict(config)
    network = data if isinstance(config, NetworkConfig) else data.get("network")
    if isinstance(network, dict) and network.get("styles") == 1:
        del network["styles"]
    if isinstance(config, TrainConfig):
        for key, default in _SINGLE_STYLE_DEFAULTS.items():
            if data[key] == default:
                del data[key]
    return data


def network_from_dict(data: dict[str, Any]) -> NetworkConfig:
    return NetworkConfig(**data)


def loss_from_dict(data: dict[str, Any]) -> LossConfig:
    return LossConfig(**data)


def train_from_dict(data: dict[str, Any]) -> TrainConfig:
    data = dict(data)
    if "content_dir" in data:  # runs recorded before several content folders were allowed
        data["content_dirs"] = (data.pop("content_dir"),)
    data["network"] = network_from_dict(data.get("network", {}))
    data["loss"] = loss_from_dict(data.get("loss", {}))
    data["extra_styles"] = tuple(data.get("extra_styles", ()))
    return TrainConfig(**data)
