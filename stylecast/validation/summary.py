"""The `summary.json` contract of `stylecast validate`: typed records of every figure of one
validation, and the only code that writes them to JSON and reads them back.

Layout: ``ValidationSummary`` holds the model (``ModelInfo``), the settings (``Settings``), the
environment, notes, one ``ImageRecord`` per content image, their ``Aggregate`` (mean, median,
count of each ``Figures`` field) and an optional ``VideoRecord``. Non-finite floats (NaN, ±inf)
are not JSON: they are written as null and read back as None. Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from stylecast.errors import StylecastError

from .files import write_text

SUMMARY_FILE = "summary.json"

T = TypeVar("T")


# --- one content image --------------------------------------------------------------------------


@dataclass(frozen=True)
class LossTerms:
    """The loss of one image: the unweighted terms and the weighted ``total``."""

    content: float
    style: float
    tv: float
    total: float


@dataclass(frozen=True)
class Losses:
    """Loss terms of the three images of one content image, under the training loss."""

    content_image: LossTerms  # no stylisation: where the optimisation starts
    iterative: LossTerms
    fast: LossTerms

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Losses:
        return cls(**{key: LossTerms(**value) for key, value in data.items()})


@dataclass(frozen=True)
class Ratios:
    """fast ÷ iterative per loss term (below 1: the fast network is lower); None: undefined."""

    content: float | None
    style: float | None
    tv: float | None
    total: float | None


@dataclass(frozen=True)
class Distances:
    """How far the fast output is from the iterative one."""

    ssim: float
    psnr_db: float | None  # None: identical images (infinite PSNR)
    lpips: float | None  # None: LPIPS weights not available


@dataclass(frozen=True)
class Seconds:
    """Wall times: the iterative run that made the output (cached: that run's), and the median
    of the timed fast runs."""

    iterative: float
    fast: float


@dataclass(frozen=True)
class ImageRecord:
    """Every figure of one content image. ``grid`` and ``chart`` are the report's pictures of it
    (paths relative to the report folder), set when the report is written."""

    name: str
    path: str
    height: int
    width: int
    cache_key: str
    cached: bool
    losses: Losses
    ratios: Ratios
    distances: Distances
    seconds: Seconds
    speedup: float | None  # iterative ÷ fast seconds
    beats_fast_at_step: int | None  # first iteration at or below the fast total; None: never
    iterative_below_content_baseline: bool
    history: tuple[float, ...]  # total loss after each iteration
    grid: str | None = None
    chart: str | None = None
    # The iteration whose image is reported as "iterative": the best reached (0: the start).
    best_step: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRecord:
        return cls(
            **{
                **data,
                "losses": Losses.from_dict(data["losses"]),
                "ratios": Ratios(**data["ratios"]),
                "distances": Distances(**data["distances"]),
                "seconds": Seconds(**data["seconds"]),
                "history": tuple(data["history"]),
            }
        )


# --- over all images ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures(Generic[T]):
    """One value per figure summarised over images: a mean, a median or a count."""

    content_image_total: T
    iterative_total: T
    fast_total: T
    ratio_content: T
    ratio_style: T
    ratio_tv: T
    ratio_total: T
    ssim: T
    psnr_db: T
    lpips: T
    iterative_seconds: T
    fast_seconds: T
    speedup: T
    beats_fast_at_step: T


def image_figures(record: ImageRecord) -> Figures[float | None]:
    """The summarised figures of one image (None where the image has none)."""
    losses, ratios, step = record.losses, record.ratios, record.beats_fast_at_step
    return Figures(
        content_image_total=losses.content_image.total,
        iterative_total=losses.iterative.total,
        fast_total=losses.fast.total,
        ratio_content=ratios.content,
        ratio_style=ratios.style,
        ratio_tv=ratios.tv,
        ratio_total=ratios.total,
        ssim=record.distances.ssim,
        psnr_db=record.distances.psnr_db,
        lpips=record.distances.lpips,
        iterative_seconds=record.seconds.iterative,
        fast_seconds=record.seconds.fast,
        speedup=record.speedup,
        beats_fast_at_step=None if step is None else float(step),
    )


@dataclass(frozen=True)
class Aggregate:
    """Mean and median of every figure over the images that have it (ratios: of the per-image
    ratios); ``count`` says how many images had each figure."""

    mean: Figures[float | None]
    median: Figures[float | None]
    count: Figures[int]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Aggregate:
        return cls(
            mean=Figures(**data["mean"]),
            median=Figures(**data["median"]),
            count=Figures(**data["count"]),
        )


def aggregate(records: Sequence[ImageRecord]) -> Aggregate:
    """The ``Aggregate`` of some image records."""
    per_image = [image_figures(r) for r in records]
    mean: dict[str, float | None] = {}
    median: dict[str, float | None] = {}
    count: dict[str, int] = {}
    for figure in dataclasses.fields(Figures):
        values = [v for v in (getattr(f, figure.name) for f in per_image) if v is not None]
        mean[figure.name] = statistics.fmean(values) if values else None
        median[figure.name] = statistics.median(values) if values else None
        count[figure.name] = len(values)
    return Aggregate(mean=Figures(**mean), median=Figures(**median), count=Figures(**count))


# --- the video ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoRecord:
    """Temporal stability on consecutive frames: mean absolute change between consecutive
    frames (0-255 levels), stylised and content, and their ratio (1.0 = no flicker added).
    ``flicker_ratio`` is infinite (null in JSON, None read back) when only the content is
    static. ``strip`` is the report's picture of a few frames, set when it is written."""

    frames: int
    height: int
    width: int
    content_change: float
    stylised_change: float
    flicker_ratio: float | None
    content_static: bool
    source: str = ""
    strip: str | None = None


# --- the model, the settings, the machine -------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """The model validated, its style image and the loss network it was scored under."""

    name: str
    version: int
    style_image: str
    style_path: str
    style_sha256: str
    style_sha256_matches_card: bool
    vgg_weights: str  # the weights id used for scoring
    card_vgg_weights: str  # the weights id the model card says it was trained with
    testing_only: bool


@dataclass(frozen=True)
class LossSettings:
    """The perceptual loss settings used (the training ``LossConfig``, as plain data)."""

    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    style_layer_weights: tuple[float, ...] | None
    content_weight: float
    style_weight: float
    tv_weight: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LossSettings:
        weights = data["style_layer_weights"]
        return cls(
            **{
                **data,
                "content_layers": tuple(data["content_layers"]),
                "style_layers": tuple(data["style_layers"]),
                "style_layer_weights": None if weights is None else tuple(weights),
            }
        )


@dataclass(frozen=True)
class Settings:
    """How the validation ran."""

    size: int
    style_size: int
    style_size_source: str  # "training" (the model card's) or "--style-size"
    iterate_steps: int
    optimizer: str
    init: str
    vgg_weights_spec: str
    loss: LossSettings
    fast_timing: str
    content_dir: str | None
    video: str | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        defaults = {"style_size_source": "--size"}  # summaries written before it was recorded
        return cls(**{**defaults, **data, "loss": LossSettings.from_dict(data["loss"])})


@dataclass(frozen=True)
class Environment:
    """Versions and devices behind the timings."""

    stylecast: str
    torch: str
    onnxruntime: str
    fast_provider: str
    torch_device: str
    cpu_threads: str


# --- the whole summary --------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationSummary:
    """Every figure of one validation: what `summary.json` holds."""

    created: str
    model: ModelInfo
    settings: Settings
    environment: Environment
    notes: tuple[str, ...]
    images: tuple[ImageRecord, ...]
    aggregate: Aggregate | None  # None: no content images
    video: VideoRecord | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (NaN and ±inf become None)."""
        return json_safe(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationSummary:
        """Rebuild a summary from its JSON form; raises KeyError/TypeError if it is not one."""
        return cls(
            created=data["created"],
            model=ModelInfo(**data["model"]),
            settings=Settings.from_dict(data["settings"]),
            environment=Environment(**data["environment"]),
            notes=tuple(data["notes"]),
            images=tuple(ImageRecord.from_dict(r) for r in data["images"]),
            aggregate=None if data["aggregate"] is None else Aggregate.from_dict(data["aggregate"]),
            video=None if data["video"] is None else VideoRecord(**data["video"]),
        )

    def to_json(self) -> str:
        """The `summary.json` text."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ValidationSummary:
        """Parse `summary.json` text; raises StylecastError if it is not a summary."""
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StylecastError(f"not a stylecast validation summary ({exc!r})") from None


def json_safe(value: Any) -> Any:
    """Replace NaN and ±inf (invalid JSON) with None, recursively; tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_summary(summary: ValidationSummary, path: str | Path) -> Path:
    """Write `summary.json` (atomically) to ``path``."""
    return write_text(Path(path), summary.to_json())


def read_summary(path: str | Path) -> ValidationSummary:
    """Read a `summary.json` written by ``write_summary``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StylecastError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return ValidationSummary.from_json(text)
    except StylecastError as exc:
        raise StylecastError(f"{path}: {exc}") from None
