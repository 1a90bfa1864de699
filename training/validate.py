"""`stylecast validate`: how close a trained network comes to the Gatys optimisation it
replaces, and at what speed.

For each content image: the fast output (onnxruntime), the iterative output (the same
optimisation as `stylecast iterate`, under the loss network, layers and weights the model
was trained with; cached on disk), both scored by one PerceptualLoss instance, their ratios,
image distances and wall times. Optionally a temporal-stability figure for a video. The report
itself is written by ``report.py``; this module only computes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from stylecast import __version__
from stylecast.errors import Interrupted, StylecastError

from .config import LossConfig, loss_from_dict, require_positive, to_dict
from .image_metrics import Lpips, psnr, ssim
from .images import IMAGE_SUFFIXES, list_images, load_image, to_uint8
from .iterate import IterateConfig, stylise_iteratively
from .losses import PerceptualLoss
from .vgg import LossNetwork, load_loss_network

log = logging.getLogger(__name__)

Stylise = Callable[[np.ndarray], np.ndarray]  # uint8 RGB [H, W, 3] -> uint8 RGB [H, W, 3]
CACHE_FORMAT = 1
LOSS_TERMS = ("content", "style", "tv", "total")


@dataclass(frozen=True)
class ValidateOptions:
    """Settings of one validation; None means "from the model card"."""

    size: int = 512
    iterate_steps: int = 300
    optimizer: str = "lbfgs"
    style: str | None = None
    style_size: int | None = None  # None: ``size``, as `stylecast iterate` does
    vgg_weights: str | None = None
    loss_overrides: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None  # None: OUT/cache
    device: str = "auto"
    fast_repeats: int = 3
    video: str | None = None
    video_frames: int = 24
    progress: bool = True

    def __post_init__(self) -> None:
        require_positive("size", self.size)
        require_positive("iterate steps", self.iterate_steps)
        require_positive("fast repeats", self.fast_repeats)
        if self.video_frames < 2:
            raise StylecastError(f"video frames must be >= 2 (got {self.video_frames})")
        if self.style_size is not None:
            require_positive("style size", self.style_size)


# --- the model and its training settings -------------------------------------------------------


def card_loss(card: Any, overrides: dict[str, Any]) -> LossConfig:
    """The model's training loss settings with the user's overrides; raises if unusable."""
    train = card.train_config if isinstance(card.train_config, dict) else {}
    if not isinstance(train.get("loss"), dict):
        raise StylecastError(
            f"model {card.name!r}: its card has no loss settings (train_config.loss); "
            "re-export it with `stylecast export`"
        )
    try:
        return dataclasses.replace(loss_from_dict(train["loss"]), **overrides)
    except TypeError as exc:
        raise StylecastError(
            f"model {card.name!r}: unusable loss settings in its card ({exc})"
        ) from None


def card_vgg_spec(card: Any, override: str | None) -> str:
    """The --vgg-weights spec to rebuild the model's loss network."""
    if override:
        return override
    spec = card.train_config.get("vgg_weights") if isinstance(card.train_config, dict) else None
    if isinstance(spec, str) and spec:
        return spec
    weights_id = card.vgg_weights or ""
    if weights_id.startswith("imagenet"):
        return "imagenet"
    if weights_id.startswith("random:"):
        return weights_id
    raise StylecastError(
        f"model {card.name!r}: its card does not say which VGG weights it was trained with; "
        "pass --vgg-weights"
    )


def resolve_style(card: Any, override: str | None) -> tuple[Path, str, bool]:
    """Find the model's style image: --style, the training path, then assets/styles/<name>.

    Returns (path, its SHA-256, whether it matches the card). Raises if none exists.
    """
    if override:
        candidates = [Path(override)]
        if not candidates[0].is_file():
            raise StylecastError(f"style image not found: {override}")
    else:
        trained = (
            card.train_config.get("style_image") if isinstance(card.train_config, dict) else ""
        )
        candidates = [Path(p) for p in (trained, f"assets/styles/{card.style_image}") if p]
    for path in candidates:
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            matches = not card.style_sha256 or digest == card.style_sha256
            if not matches:
                log.warning(
                    "style image %s differs from the one model %s was trained on (SHA-256 %s…, "
                    "card says %s…); scores use this file",
                    path,
                    card.name,
                    digest[:12],
                    card.style_sha256[:12],
                )
            return path, digest, matches
    looked = ", ".join(str(p) for p in candidates) or "nowhere"
    raise StylecastError(
        f"style image {card.style_image!r} of model {card.name!r} not found (looked at {looked}); "
        "pass --style PATH"
    )


def load_style_model(models_dir: str | Path, name: str) -> Any:
    """The newest loadable version of ``models_dir/name`` (onnxruntime, best provider)."""
    from stylecast.serving.repository import load_model_dir
    from stylecast.serving.runtime import RuntimeOptions

    root = Path(models_dir)
    if not root.is_dir():
        raise StylecastError(f"models folder not found: {root}")
    model_dir = root / name
    if not name or not model_dir.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise StylecastError(f"no model {name!r} in {root} (found: {', '.join(known) or 'none'})")
    model, newer_broken = load_model_dir(model_dir, RuntimeOptions())
    for problem in newer_broken:
        log.warning("model %s: skipped a newer version: %s", name, problem)
    return model


# --- scoring ------------------------------------------------------------------------------------


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [H, W, 3] to a contiguous float [3, H, W] in [0, 1]."""
    pixels = torch.tensor(image, dtype=torch.uint8).permute(2, 0, 1)  # a copy: may be read-only
    return pixels.float().div(255).contiguous().to(device)


def to_array(image: torch.Tensor) -> np.ndarray:
    """float [3, H, W] in [0, 1] to uint8 [H, W, 3] (rounded, as saved to PNG)."""
    return to_uint8(image).permute(1, 2, 0).contiguous().numpy()


@functools.lru_cache(maxsize=2)
def _loss_network(spec: str, layers: tuple[str, ...]) -> LossNetwork:
    """The frozen loss network, built once per process (the random one takes seconds)."""
    return load_loss_network(spec, layers)


def build_scorer(
    style_path: Path, style_size: int, loss: LossConfig, vgg_spec: str, device: torch.device
) -> PerceptualLoss:
    """The one PerceptualLoss that drives the iterative run and scores every output."""
    network = _loss_network(vgg_spec, (*loss.content_layers, *loss.style_layers))
    style = load_image(style_path, style_size)
    return PerceptualLoss(network, loss, style).to(device)


def score(
    criterion: PerceptualLoss, image: np.ndarray, targets: dict[str, torch.Tensor]
) -> dict[str, float]:
    """Loss terms (content, style, tv, total) of a uint8 image against content targets."""
    device = criterion.network.mean.device
    with torch.no_grad():
        terms = criterion(to_tensor(image, device)[None], targets)
    return {name: float(terms[name]) for name in LOSS_TERMS}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator; 1.0 for 0/0, None when undefined."""
    if numerator is None or denominator is None:
        return None
    if denominator == 0:
        return 1.0 if numerator == 0 else None
    return numerator / denominator


def first_step_below(history: Sequence[float], threshold: float) -> int | None:
    """The first step (1-based) whose loss is <= ``threshold``, or None if none is."""
    for step, value in enumerate(history, start=1):
        if value <= threshold:
            return step
    return None


def time_fast(stylise: Stylise, image: np.ndarray, repeats: int) -> tuple[np.ndarray, float]:
    """Stylise once to warm up for this shape, then return the output and median seconds."""
    output = stylise(image)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        output = stylise(image)
        times.append(time.perf_counter() - began)
    return output, statistics.median(times)


# --- the iterative cache ------------------------------------------------------------------------


def cache_key(content_bytes: bytes, fields: dict[str, Any]) -> str:
    """SHA-256 of the content file's bytes and every setting that changes the iterative output."""
    digest = hashlib.sha256(content_bytes)
    digest.update(json.dumps(fields, sort_keys=True).encode())
    return digest.hexdigest()


@dataclass
class CachedRun:
    image: np.ndarray
    record: dict[str, Any]


class IterativeCache:
    """Iterative outputs on disk: ``KEY.png`` + ``KEY.json``, each written to a temporary file
    and renamed, JSON last, so an interrupted run never leaves an entry that looks complete."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def get(self, key: str, shape: tuple[int, ...]) -> CachedRun | None:
        png, meta = self.folder / f"{key}.png", self.folder / f"{key}.json"
        if not (png.is_file() and meta.is_file()):
            return None
        try:
            record = json.loads(meta.read_text())
            with Image.open(png) as file:
                image = np.asarray(file.convert("RGB"))
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable cache entry %s: %s", key[:12], exc)
            return None
        if record.get("format") != CACHE_FORMAT or image.shape != shape:
            return None
        return CachedRun(image, record)

    def put(self, key: str, image: np.ndarray, record: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        png, meta = self.folder / f"{key}.png", self.folder / f"{key}.json"
        tmp_png = png.with_name(f".{key}.{os.getpid()}.png.tmp")
        tmp_meta = meta.with_name(f".{key}.{os.getpid()}.json.tmp")
        try:
            Image.fromarray(image).save(tmp_png, format="PNG")
            os.replace(tmp_png, png)
            tmp_meta.write_text(json.dumps({"format": CACHE_FORMAT, **record}, indent=1))
            os.replace(tmp_meta, meta)
        finally:
            tmp_png.unlink(missing_ok=True)
            tmp_meta.unlink(missing_ok=True)


# --- one content image --------------------------------------------------------------------------


@dataclass
class ImageOutcome:
    """One content image: the three pictures and every figure (``record`` is JSON-ready)."""

    name: str
    content: np.ndarray
    iterative: np.ndarray
    fast: np.ndarray
    record: dict[str, Any]


@dataclass
class Validator:
    """Everything shared by the content images of one validation."""

    stylise: Stylise
    criterion: PerceptualLoss
    iterate: IterateConfig
    cache: IterativeCache
    key_fields: dict[str, Any]
    lpips: Lpips
    fast_repeats: int = 3
    progress: bool = True

    def iterative(self, content: np.ndarray, key: str) -> tuple[np.ndarray, dict[str, Any], bool]:
        """The iterative output of ``content`` (from the cache when there); returns
        (image, record with seconds and history, whether it came from the cache)."""
        hit = self.cache.get(key, content.shape)
        if hit is not None:
            return hit.image, hit.record, True
        device = self.criterion.network.mean.device
        result = stylise_iteratively(
            to_tensor(content, device), self.criterion, self.iterate, progress=self.progress
        )
        image = to_array(result.image)
        record = {
            "seconds": result.seconds,
            "steps": result.steps,
            "history": result.history,
            "losses_unrounded": result.losses,
            "settings": self.key_fields,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.cache.put(key, image, record)
        return image, record, False

    def run(self, path: Path, name: str) -> ImageOutcome:
        """Validate one content image file."""
        content = to_array(load_image(path, self.iterate.size))
        device = self.criterion.network.mean.device
        targets = self.criterion.content_targets(to_tensor(content, device)[None])
        key = cache_key(path.read_bytes(), self.key_fields)
        iterative, cached_record, cached = self.iterative(content, key)
        fast, fast_seconds = time_fast(self.stylise, content, self.fast_repeats)
        losses = {
            "content_image": score(self.criterion, content, targets),
            "iterative": score(self.criterion, iterative, targets),
            "fast": score(self.criterion, fast, targets),
        }
        iterative_seconds = float(cached_record["seconds"])
        history = [float(v) for v in cached_record["history"]]
        record = {
            "name": name,
            "path": str(path),
            "height": int(content.shape[0]),
            "width": int(content.shape[1]),
            "cache_key": key,
            "cached": cached,
            "losses": losses,
            "ratios": {
                term: ratio(losses["fast"][term], losses["iterative"][term]) for term in LOSS_TERMS
            },
            "distances": {
                "ssim": ssim(fast, iterative),
                "psnr_db": psnr(fast, iterative),
                "lpips": self.lpips(fast, iterative),
            },
            "seconds": {"iterative": iterative_seconds, "fast": fast_seconds},
            "speedup": ratio(iterative_seconds, fast_seconds),
            "beats_fast_at_step": first_step_below(history, losses["fast"]["total"]),
            "iterative_below_content_baseline": (
                losses["iterative"]["total"] < losses["content_image"]["total"]
            ),
            "history": history,
        }
        return ImageOutcome(name, content, iterative, fast, record)


# --- aggregates ---------------------------------------------------------------------------------

#: Figures summarised over images (mean and median): name -> path into an image record.
FIGURES: dict[str, tuple[str, ...]] = {
    "content_image_total": ("losses", "content_image", "total"),
    "iterative_total": ("losses", "iterative", "total"),
    "fast_total": ("losses", "fast", "total"),
    **{f"ratio_{term}": ("ratios", term) for term in LOSS_TERMS},
    "ssim": ("distances", "ssim"),
    "psnr_db": ("distances", "psnr_db"),
    "lpips": ("distances", "lpips"),
    "iterative_seconds": ("seconds", "iterative"),
    "fast_seconds": ("seconds", "fast"),
    "speedup": ("speedup",),
    "beats_fast_at_step": ("beats_fast_at_step",),
}


def figure(record: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = record
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else float(value)


def aggregate(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Mean and median of every figure over the images that have it (ratios: of the
    per-image ratios). ``count`` says how many images had each figure."""
    out: dict[str, dict[str, Any]] = {"mean": {}, "median": {}, "count": {}}
    for name, path in FIGURES.items():
        values = [v for v in (figure(r, path) for r in records) if v is not None]
        out["mean"][name] = statistics.fmean(values) if values else None
        out["median"][name] = statistics.median(values) if values else None
        out["count"][name] = len(values)
    return out


# --- temporal stability -------------------------------------------------------------------------


@dataclass
class TemporalOutcome:
    content_frames: list[np.ndarray]
    stylised_frames: list[np.ndarray]
    record: dict[str, Any]


def mean_abs_change(frames: Sequence[np.ndarray]) -> float:
    """Mean absolute difference between consecutive frames, in 0-255 levels."""
    if len(frames) < 2:
        raise StylecastError("temporal stability needs at least 2 frames")
    diffs = [
        float(np.abs(b.astype(np.int16) - a.astype(np.int16)).mean())
        for a, b in itertools.pairwise(frames)
    ]
    return statistics.fmean(diffs)


def flicker_ratio(stylised_change: float, content_change: float) -> float:
    """stylised ÷ content change; 1.0 when both are 0, infinite when only the content is."""
    if content_change == 0:
        return 1.0 if stylised_change == 0 else math.inf
    return stylised_change / content_change


def temporal_stability(
    frames: Sequence[np.ndarray], stylise: Stylise, progress: bool = False
) -> TemporalOutcome:
    """Stylise consecutive frames; the figure is the mean absolute change between stylised
    frames over that between content frames (1.0 = no added flicker; higher = more). For a
    perfectly static video it is 1.0 if the stylised frames are static too, else infinite
    (stored as null in summary.json, with ``content_static`` true)."""
    stylised = [stylise(f) for f in tqdm(frames, desc="video", unit="frame", disable=not progress)]
    content_change = mean_abs_change(frames)
    stylised_change = mean_abs_change(stylised)
    record = {
        "frames": len(frames),
        "height": int(frames[0].shape[0]),
        "width": int(frames[0].shape[1]),
        "content_change": content_change,
        "stylised_change": stylised_change,
        "flicker_ratio": flicker_ratio(stylised_change, content_change),
        "content_static": content_change == 0,
    }
    return TemporalOutcome(list(frames), stylised, record)


def fit_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB frame so its longer side is ``size``."""
    h, w = frame.shape[:2]
    scale = size / max(h, w)
    if scale == 1:
        return frame
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(frame).resize(new, Image.Resampling.LANCZOS))


def read_frames(source: str | Path, size: int, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` consecutive RGB frames of a video file or a folder of frame images."""
    source = Path(source)
    if source.is_dir():
        frames = []
        for path in list_images(source)[:limit]:
            with Image.open(path) as file:
                frames.append(np.asarray(file.convert("RGB")))
    elif source.is_file():
        if source.suffix.lower() in IMAGE_SUFFIXES:
            raise StylecastError(f"--video {source}: a single image is not a video")
        frames = _read_video(source, limit)
    else:
        raise StylecastError(f"video not found: {source}")
    frames = [fit_frame(f, size) for f in frames]
    if len(frames) < 2:
        raise StylecastError(f"--video {source}: needs at least 2 frames, found {len(frames)}")
    if len({f.shape for f in frames}) > 1:
        raise StylecastError(f"--video {source}: frames differ in size")
    return frames


def _read_video(path: Path, limit: int) -> list[np.ndarray]:
    try:
        import cv2
    except ImportError:
        raise StylecastError(
            "reading video files needs OpenCV (pip install 'stylecast[camera]'); "
            "or pass a folder of frame images"
        ) from None
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while capture.isOpened() and len(frames) < limit:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise StylecastError(f"cannot read video {path}: no decodable frames")
    return frames


# --- the whole validation -----------------------------------------------------------------------


@dataclass
class Validation:
    """All results: ``summary`` is JSON-ready; the arrays are for the report's pictures."""

    summary: dict[str, Any]
    style: np.ndarray
    images: list[ImageOutcome]
    temporal: TemporalOutcome | None


def content_name(path: Path, root: Path) -> str:
    """A file-name-safe, unique label: the path under ``root`` without suffix, '/' -> '__'."""
    return "__".join(path.relative_to(root).with_suffix("").parts)


def _environment(model: Any, device: torch.device) -> dict[str, str]:
    import onnxruntime

    return {
        "stylecast": __version__,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "fast_provider": model.provider,
        "torch_device": str(device),
        "cpu_threads": str(torch.get_num_threads()),
    }


def validate_model(
    model_name: str,
    content_dir: str | Path | None,
    out: str | Path,
    models_dir: str | Path = "models",
    options: ValidateOptions | None = None,
) -> Validation:
    """Run the whole validation (no files but the cache are written; see report.write_report)."""
    options = options or ValidateOptions()
    if content_dir is None and options.video is None:
        raise StylecastError("nothing to validate: give --content-dir, --video or both")
    contents = list_images(content_dir) if content_dir is not None else []
    frames = read_frames(options.video, options.size, options.video_frames) if options.video else []
    model = load_style_model(models_dir, model_name)
    card = model.card
    loss = card_loss(card, options.loss_overrides)
    vgg_spec = card_vgg_spec(card, options.vgg_weights)
    style_path, style_sha, style_matches = resolve_style(card, options.style)
    device = pick_device(options.device)
    style_size = options.style_size or options.size
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
    validator = Validator(
        stylise=model.run,
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
        bar = tqdm(contents, desc="validate", unit="image", disable=not options.progress)
        for path in bar:
            bar.set_postfix_str(path.name)
            outcomes.append(validator.run(path, content_name(path, Path(content_dir or "."))))
        temporal = temporal_stability(frames, model.run, options.progress) if frames else None
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted after {len(outcomes)} of {len(contents)} images; finished iterative "
            f"runs are cached in {validator.cache.folder}, so a re-run continues from there"
        ) from None
    records = [o.record for o in outcomes]
    summary = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {
            "name": card.name,
            "version": model.version,
            "style_image": card.style_image,
            "style_path": str(style_path),
            "style_sha256": style_sha,
            "style_sha256_matches_card": style_matches,
            "vgg_weights": weights_id,
            "card_vgg_weights": card.vgg_weights,
            "testing_only": bool(card.testing_only or weights_id.startswith("random:")),
        },
        "settings": {
            "size": options.size,
            "style_size": style_size,
            "iterate_steps": options.iterate_steps,
            "optimizer": options.optimizer,
            "init": iterate.init,
            "vgg_weights_spec": vgg_spec,
            "loss": to_dict(loss),
            "fast_timing": f"median of {options.fast_repeats} runs after one warm-up run",
            "content_dir": None if content_dir is None else str(content_dir),
            "video": options.video,
        },
        "environment": _environment(model, device),
        "notes": notes,
        "images": records,
        "aggregate": aggregate(records) if records else None,
        "video": temporal.record | {"source": str(options.video)} if temporal else None,
    }
    style = to_array(load_image(style_path, options.size))
    return Validation(summary, style, outcomes, temporal)


def _notes(card: Any, weights_id: str, style_matches: bool) -> list[str]:
    notes = []
    if weights_id.startswith("random:"):
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
