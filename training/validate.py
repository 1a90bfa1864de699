"""`stylecast validate`: how close a trained network comes to the Gatys optimisation it
replaces, and at what speed. ``validate_model`` runs it all and returns a ``Validation``.

For each content image (``validate_image``): the fast output (onnxruntime), the iterative
output (the same optimisation as `stylecast iterate`, under the loss network, layers and
weights the model was trained with; cached on disk by ``iterative_cache``), both scored by one
PerceptualLoss (``scoring``), their ratios, image distances and wall times. Optionally the
temporal stability of a video (``temporal``). The model's training settings come from its card
(``card_settings``). Figures are typed by ``stylecast.validation.summary``; the report is
written by ``stylecast.validation.report``. This module computes and writes nothing but the
cache.

A multi-style model is validated one style at a time (``ValidateOptions.model_style``, by
name; `stylecast validate` runs every style): the fast output is the network with that style
alone, scored against the iterative optimum of that style's image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from stylecast import __version__
from stylecast.errors import Interrupted, StylecastError
from stylecast.progress import show_progress
from stylecast.serving.styles import style_weights
from stylecast.validation.results import Validation
from stylecast.validation.summary import (
    Environment,
    LossSettings,
    ModelInfo,
    Settings,
    ValidationSummary,
    aggregate,
)

from .card_settings import (
    card_loss,
    card_vgg_spec,
    load_style_model,
    resolve_style,
    trained_style_size,
)
from .config import require_positive, to_dict
from .devices import pick_device
from .image_metrics import Lpips
from .images import list_images, load_image
from .iterate import IterateConfig
from .iterative_cache import IterativeCache
from .scoring import build_scorer, to_array
from .temporal import read_frames, temporal_stability
from .validate_image import ImageOutcome, ImageValidator
from .vgg_weights import VggWeights

if TYPE_CHECKING:
    from stylecast.serving.runtime import StyleModel


@dataclass(frozen=True)
class ValidateOptions:
    """Settings of one validation; None means "from the model card"."""

    size: int = 512
    iterate_steps: int = 300
    optimizer: str = "lbfgs"
    style: str | None = None
    style_size: int | None = None  # None: the style size the model was trained with
    vgg_weights: str | None = None
    loss_overrides: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None  # None: OUT/cache
    device: str = "auto"
    fast_repeats: int = 3
    video: str | None = None
    video_frames: int = 24
    progress: bool = True
    model_style: str | None = None  # a multi-style model's style to score (None: its first)

    def __post_init__(self) -> None:
        require_positive("size", self.size)
        require_positive("iterate steps", self.iterate_steps)
        require_positive("fast repeats", self.fast_repeats)
        if self.video_frames < 2:
            raise StylecastError(f"video frames must be >= 2 (got {self.video_frames})")
        if self.style_size is not None:
            require_positive("style size", self.style_size)


def content_name(path: Path, root: Path) -> str:
    """A file-name-safe, unique label: the path under ``root`` without suffix, '/' -> '__'."""
    return "__".join(path.relative_to(root).with_suffix("").parts)


def validate_model(
    model_name: str,
    content_dir: str | Path | None,
    out: str | Path,
    models_dir: str | Path = "models",
    options: ValidateOptions | None = None,
) -> Validation:
    """Run the whole validation (no files but the cache are written; see
    ``stylecast.validation.report.write_report``)."""
    options = options or ValidateOptions()
    if content_dir is None and options.video is None:
        raise StylecastError("nothing to validate: give --content-dir, --video or both")
    contents = list_images(content_dir) if content_dir is not None else []
    frames = read_frames(options.video, options.size, options.video_frames) if options.video else []
    model = load_style_model(models_dir, model_name)
    card = model.card
    loss = card_loss(card, options.loss_overrides)
    vgg_spec = card_vgg_spec(card, options.vgg_weights)
    weights = style_weights(model.style_names, options.model_style or "", model=card.name)
    index = 0 if weights is None else int(weights.argmax())
    stylise = partial(model.run, style_weights=weights)
    style_path, style_sha, style_matches = resolve_style(
        card, options.style, model.path.parent.parent, index
    )
    device = pick_device(options.device)
    style_size, style_size_source = options.style_size, "--style-size"
    if style_size is None:
        style_size, style_size_source = trained_style_size(card), "training"
    criterion = build_scorer(style_path, style_size, loss, vgg_spec, device)
    weights_id = criterion.network.weights_id
    iterate = IterateConfig(
        size=options.size,
        steps=options.iterate_steps,
        optimizer=options.optimizer,
        vgg_weights=vgg_spec,
        loss=loss,
    )
    key_fields = {
        "style_sha256": style_sha,
        "size": options.size,
        "style_size": style_size,
        "iterate": {k: v for k, v in to_dict(iterate).items() if k not in ("vgg_weights", "size")},
        "vgg_weights": weights_id,
        "device": device.type,
    }
    notes = _notes(card, weights_id, style_matches)
    lpips = Lpips()
    if not lpips.available:
        notes.append(f"LPIPS not computed: {lpips.reason}.")
    validator = ImageValidator(
        stylise=stylise,
        criterion=criterion,
        iterate=iterate,
        cache=IterativeCache(options.cache_dir or Path(out) / "cache"),
        key_fields=key_fields,
        lpips=lpips,
        fast_repeats=options.fast_repeats,
        progress=options.progress,
    )
    outcomes: list[ImageOutcome] = []
    try:
        shown = show_progress(options.progress)
        bar = tqdm(contents, desc="validate", unit="image", disable=not shown)
        for path in bar:
            bar.set_postfix_str(path.name)
            outcomes.append(validator.run(path, content_name(path, Path(content_dir or "."))))
        temporal = (
            temporal_stability(frames, stylise, options.progress, str(options.video))
            if frames
            else None
        )
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted after {len(outcomes)} of {len(contents)} images; finished iterative "
            f"runs are cached in {validator.cache.folder}, so a re-run continues from there"
        ) from None
    records = tuple(o.record for o in outcomes)
    summary = ValidationSummary(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        model=ModelInfo(
            name=card.name if weights is None else f"{card.name}/{card.styles[index].name}",
            version=model.version,
            style_image=card.styles[index].image if card.styles else card.style_image,
            style_path=str(style_path),
            style_sha256=style_sha,
            style_sha256_matches_card=style_matches,
            vgg_weights=weights_id,
            card_vgg_weights=card.vgg_weights,
            testing_only=bool(card.testing_only or VggWeights.parse(weights_id).testing_only),
        ),
        settings=Settings(
            size=options.size,
            style_size=style_size,
            style_size_source=style_size_source,
            iterate_steps=options.iterate_steps,
            optimizer=options.optimizer,
            init=iterate.init,
            vgg_weights_spec=vgg_spec,
            loss=LossSettings(**to_dict(loss)),
            fast_timing=f"median of {options.fast_repeats} runs after one warm-up run",
            content_dir=None if content_dir is None else str(content_dir),
            video=options.video,
        ),
        environment=_environment(model, device),
        notes=tuple(notes),
        images=records,
        aggregate=aggregate(records) if records else None,
        video=temporal.record if temporal else None,
    )
    return Validation(
        summary=summary,
        style=to_array(load_image(style_path, options.size)),
        pictures={o.record.name: o.pictures for o in outcomes},
        video=temporal.frames if temporal else None,
    )


def _environment(model: StyleModel, device: torch.device) -> Environment:
    import onnxruntime

    return Environment(
        stylecast=__version__,
        torch=torch.__version__,
        onnxruntime=onnxruntime.__version__,
        fast_provider=model.provider,
        torch_device=str(device),
        cpu_threads=str(torch.get_num_threads()),
    )


def _notes(card: Any, weights_id: str, style_matches: bool) -> list[str]:
    notes = []
    if VggWeights.parse(weights_id).testing_only:
        notes.append(
            f"The loss network is a RANDOM VGG ({weights_id}): figures are for testing only."
        )
    if card.vgg_weights and weights_id != card.vgg_weights:
        notes.append(
            f"Scored under VGG weights {weights_id}, not the {card.vgg_weights} the model was "
            "trained with."
        )
    if not style_matches:
        notes.append("The style image differs from the one the model was trained on (SHA-256).")
    return notes
