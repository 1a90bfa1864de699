"""onnxruntime inference for one exported model: execution-provider choice, session options,
warm-up, and the raw run (uint8 RGB in, uint8 RGB out). Everything around the run (decoding,
downscaling, the minimum side, blending, encoding) is serving.pipeline's.

Memory: onnxruntime's CPU arena keeps what the largest run needed. So the arena is given back
to the system after a run of more than ``RuntimeOptions.arena_shrink_pixels`` pixels, and
kept warm for smaller ones (camera frames), which would otherwise pay for re-allocating it.
The memory-pattern planner is off by default: with images of varying size it made the arena
keep about twice a run's working set, for no measured speed gain
(benchmarks/bench_memory.py).

GPU (provider options in serving.providers): TensorRT builds an engine for one optimisation
profile, or loads it from its cache; the load warms it up at the profile's opt shape and times
it (``StyleModel.load``), and a batch beyond the profile's max is refused before it reaches
the engine (``ShapeOutsideProfile``). A session that is not the CPU's is compared with a CPU
fp32 session of the same graph at load (serving.precision_check); a TensorRT fp16 engine that
fails is rebuilt in fp32 or refused (``fp16_fallback``). ``StyleModel.served_precision`` says
which precision is really served.

Multi-style models (the card lists ``styles``): the graph's second input, ``style_weights``,
gets one row of weights per image (``run``'s ``style_weights``; None: the first style), for
warm-up and the precision check too."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from stylecast.errors import StylecastError

from .model_card import INPUT_NAME, MIN_SIDE, STYLE_WEIGHTS_NAME, ModelCard
from .precision_check import (
    FP16_FALLBACKS,
    PRECISION_CHECKS,
    PROBE_SIDE,
    PrecisionCheckFailed,
    PrecisionReport,
    PrecisionThresholds,
    probe_image,
    run_probe,
)
from .providers import (
    CPU,
    CUDNN_CONV_ALGO_SEARCHES,
    MIN_SHAPE,
    TENSORRT,
    TRT_BUILDER_LEVELS,
    ProviderEntry,
    Shape,
    check_profile,
    has_engine,
    outside,
    parse_shape,
    provider_options,
)

log = logging.getLogger(__name__)

WARMUP_SHAPE = (1, 64, 64, 3)  # CPU and CUDA: a small run allocates the first buffers
ARENA_SHRINK_KEY = "memory.enable_memory_arena_shrinkage"
ARENA_SHRINK_DEVICES = "cpu:0"


class ShapeOutsideProfile(StylecastError):
    """A batch outside the TensorRT profile its engine was built for (INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class RuntimeOptions:
    """How sessions are created. ``providers`` None: the best of TensorRT → CUDA → CPU.

    GPU settings (serving.providers): TensorRT's profile (``trt_opt_shape``,
    ``trt_max_shape``: NxHxW or NxHxWx3), caches, fp16 and builder level; CUDA's cuDNN search,
    arena cap (``gpu_mem_limit_mb``, 0: no cap, as the right one depends on the card and what
    else shares it; the arena grows only by what is asked) and device. ``precision_check``
    and ``fp16_fallback``: see the module doc."""

    providers: tuple[str, ...] | None = None
    intra_op_threads: int = 0  # 0: onnxruntime's default (one per physical core)
    inter_op_threads: int = 1
    trt_fp16: bool = True
    trt_cache_dir: str = ".trt-cache"
    trt_opt_shape: str = "1x480x640x3"
    trt_max_shape: str = "4x2160x3840x3"
    trt_builder_optimization_level: int = 3  # onnxruntime's default; 0..5
    precision_check: Literal["auto", "always", "never"] = "auto"
    fp16_fallback: Literal["fp32", "refuse"] = "fp32"
    precision_thresholds: PrecisionThresholds = field(default_factory=PrecisionThresholds)
    cudnn_conv_algo_search: Literal["HEURISTIC", "EXHAUSTIVE", "DEFAULT"] = "HEURISTIC"
    gpu_mem_limit_mb: int = 0
    device_id: int = 0
    warmup: bool = True
    arena_shrink_pixels: int = 640 * 480  # shrink the CPU arena after larger runs (0: always)
    memory_pattern: bool = False  # onnxruntime's memory-pattern planning (see the module doc)

    def __post_init__(self) -> None:
        for name in ("arena_shrink_pixels", "gpu_mem_limit_mb", "device_id"):
            if getattr(self, name) < 0:
                raise StylecastError(f"{name} must be >= 0 (got {getattr(self, name)})")
        check_profile(MIN_SHAPE, self.opt_shape, self.max_shape)
        _check_one_of("precision_check", self.precision_check, PRECISION_CHECKS)
        _check_one_of("fp16_fallback", self.fp16_fallback, FP16_FALLBACKS)
        _check_one_of(
            "cudnn_conv_algo_search", self.cudnn_conv_algo_search, CUDNN_CONV_ALGO_SEARCHES
        )
        _check_one_of(
            "trt_builder_optimization_level",
            self.trt_builder_optimization_level,
            TRT_BUILDER_LEVELS,
        )

    @property
    def opt_shape(self) -> Shape:
        """TensorRT's opt shape (the warm-up shape on TensorRT), NHWC."""
        return parse_shape(self.trt_opt_shape, "trt_opt_shape")

    @property
    def max_shape(self) -> Shape:
        """TensorRT's max shape, NHWC: larger batches are refused on TensorRT."""
        return parse_shape(self.trt_max_shape, "trt_max_shape")


def _check_one_of(name: str, value: object, allowed: Collection[Any]) -> None:
    if value not in allowed:
        raise StylecastError(
            f"{name} must be one of {', '.join(map(str, allowed))} (got {value!r})"
        )


def select_providers(options: RuntimeOptions, sha256: str = "") -> list[ProviderEntry]:
    """Providers to ask for, best first, with their options; only those this build has."""
    return provider_options(options, sha256, ort.get_available_providers())


def session_options(options: RuntimeOptions) -> Any:
    """onnxruntime SessionOptions for ``options`` (threads, optimisation, memory pattern)."""
    settings = ort.SessionOptions()
    settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    settings.intra_op_num_threads = options.intra_op_threads
    settings.inter_op_num_threads = options.inter_op_threads
    settings.log_severity_level = 3
    settings.enable_mem_pattern = options.memory_pattern
    return settings


class SessionFactory:
    """Creates onnxruntime sessions; tests substitute one that stands in for a GPU."""

    def available_providers(self) -> list[str]:
        return list(ort.get_available_providers())

    def create(self, path: Path, settings: Any, providers: list[ProviderEntry]) -> Any:
        return ort.InferenceSession(str(path), sess_options=settings, providers=providers)


@dataclass(frozen=True)
class LoadReport:
    """How a model's load went. ``build_s``: session creation plus warm-up of the served
    session (on TensorRT, the engine build or its load from the cache); ``cache_hit``: the
    engine cache held an engine before the load (None: not TensorRT); ``precision``: the
    check against CPU fp32 (None: not run); ``fp16_fallback``: fp16 failed, fp32 is served."""

    provider: str
    build_s: float
    cache_hit: bool | None
    precision: PrecisionReport | None
    fp16_fallback: bool = False


@dataclass(frozen=True)
class _Opened:
    session: Any
    provider: str
    fp16: bool  # TensorRT with fp16 enabled
    cache_hit: bool | None
    build_s: float


class StyleModel:
    """One loaded model version: an onnxruntime session plus its card."""

    def __init__(
        self,
        path: Path,
        card: ModelCard,
        version: int,
        options: RuntimeOptions,
        sessions: SessionFactory | None = None,
    ) -> None:
        self.path = path
        self.card = card
        self.name = card.name
        self.version = version
        self.style_names = card.style_names  # empty: a single-style model
        self.arena_shrink_pixels = options.arena_shrink_pixels
        info = card.versions[str(version)]
        self.sha256 = info.sha256
        self._options = options
        self._sessions = sessions or SessionFactory()
        opened = self._open(fp16=None)
        check, fell_back = None, False
        if options.precision_check == "always" or (
            options.precision_check == "auto" and opened.provider != CPU
        ):
            check = self._check(opened.session)
            if not check.passed:
                opened, check = self._after_failed_check(opened, check)
                fell_back = True
        self.session = opened.session
        self.provider = opened.provider
        self.served_precision = "fp16" if opened.fp16 else info.precision
        self.max_shape: Shape | None = options.max_shape if self.provider == TENSORRT else None
        self.load = LoadReport(opened.provider, opened.build_s, opened.cache_hit, check, fell_back)
        notes = [self.served_precision]
        if opened.cache_hit is not None:
            notes.append("engine from cache" if opened.cache_hit else "engine built")
        if check is not None:
            notes.append(f"{check.summary()} against CPU fp32")
        log.info("loaded model %s v%d on %s in %.2fs (%s)", self.name, version, self.provider,
                 opened.build_s, ", ".join(notes))  # fmt: skip

    def _open(self, fp16: bool | None) -> _Opened:
        """A session (``fp16`` None: as the options say), timed from creation to warm-up."""
        options = self._options
        available = self._sessions.available_providers()
        entries = provider_options(options, self.sha256, available, fp16)
        trt = next((e[1] for e in entries if isinstance(e, tuple) and e[0] == TENSORRT), None)
        cached = None
        if trt is not None:
            folder = Path(trt["trt_engine_cache_path"])
            cached = has_engine(folder)
            folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        try:
            session = self._sessions.create(self.path, session_options(options), entries)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/… types
            raise StylecastError(f"{self.path}: onnxruntime cannot load it ({exc})") from None
        self._check_inputs(session)
        provider = session.get_providers()[0]
        on_trt = provider == TENSORRT and trt is not None
        if options.warmup:
            shape = options.opt_shape if on_trt else WARMUP_SHAPE
            try:
                session.run(None, self.feeds(np.zeros(shape, dtype=np.uint8)))
            except Exception as exc:  # TensorRT may build its engine only now
                raise StylecastError(f"{self.path}: warm-up on {provider} failed ({exc})") from None
        build_s = time.perf_counter() - start
        fp16_on = on_trt and bool(trt and trt["trt_fp16_enable"])
        return _Opened(session, provider, fp16_on, cached if on_trt else None, build_s)

    def _check_inputs(self, session: Any) -> None:
        """The graph's inputs must be the card's: the image, and the style weights of a
        multi-style model."""
        inputs = session.get_inputs()
        expected = [(INPUT_NAME, "tensor(uint8)")]
        if self.style_names:
            expected.append((STYLE_WEIGHTS_NAME, "tensor(float)"))
        found = [(i.name, i.type) for i in inputs]
        styles = inputs[1].shape[1] if len(inputs) == 2 and len(inputs[1].shape) == 2 else None
        if found != expected or (self.style_names and styles != len(self.style_names)):
            raise StylecastError(f"{self.path}: graph input does not match the model card's spec")

    def feeds(self, batch: np.ndarray, style_weights: np.ndarray | None = None) -> dict:
        """The graph's inputs for a uint8 [N, H, W, 3] ``batch``: with a multi-style model,
        ``style_weights`` as [N, S] float32 (a [S] row is used for every image; None: the
        first style)."""
        feeds: dict[str, np.ndarray] = {INPUT_NAME: np.ascontiguousarray(batch)}
        if self.style_names:
            if style_weights is None:
                style_weights = np.eye(len(self.style_names), dtype=np.float32)[0]
            weights = np.asarray(style_weights, dtype=np.float32)
            if weights.ndim == 1:
                weights = np.broadcast_to(weights, (batch.shape[0], weights.shape[0]))
            feeds[STYLE_WEIGHTS_NAME] = np.ascontiguousarray(weights)
        return feeds

    def _check(self, session: Any) -> PrecisionReport:
        """Compare ``session`` with a CPU fp32 session of the same graph on the probe image."""
        options = self._options
        reference = self._sessions.create(self.path, session_options(options), [CPU])
        _, max_h, max_w, _ = options.max_shape
        probe = probe_image(min(PROBE_SIDE, max_h, max_w))

        def served(image: np.ndarray) -> np.ndarray:
            return np.asarray(session.run(None, self.feeds(image))[0])

        def cpu(image: np.ndarray) -> np.ndarray:
            return np.asarray(reference.run(None, self.feeds(image))[0])

        return run_probe(served, cpu, options.precision_thresholds, probe)

    def _after_failed_check(
        self, opened: _Opened, check: PrecisionReport
    ) -> tuple[_Opened, PrecisionReport]:
        """fp16 that failed: rebuilt in fp32 (checked again) or refused, as configured. Any
        other failure (fp32 on a GPU, or a forced check on the CPU) is refused."""
        thresholds = self._options.precision_thresholds
        what = (
            f"model {self.name} v{self.version} on {opened.provider}"
            f"{' (fp16)' if opened.fp16 else ''} differs from CPU fp32: {check.summary()} "
            f"(needs >= {thresholds.min_psnr_db} dB and <= {thresholds.max_abs_error} levels)"
        )
        if not opened.fp16:
            raise PrecisionCheckFailed(what)
        if self._options.fp16_fallback == "refuse":
            raise PrecisionCheckFailed(f"{what}; not served (fp16_fallback is 'refuse')")
        log.warning("%s; rebuilding it in fp32", what)
        opened = self._open(fp16=False)
        check = self._check(opened.session)
        if not check.passed:
            raise PrecisionCheckFailed(
                f"model {self.name} v{self.version} on {opened.provider} differs from CPU "
                f"fp32 in fp32 too: {check.summary()}"
            )
        return opened, check

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """ShapeOutsideProfile when a batch ``[N, H, W, 3]`` is outside the TensorRT
        profile this model's engine was built for (nothing to check on other providers)."""
        if self.max_shape is None or not outside(shape, self.max_shape):
            return
        n, h, w = shape[:3]
        most_n, most_h, most_w, _ = self.max_shape
        raise ShapeOutsideProfile(
            f"a batch of {n} image(s) of {h}x{w} (HxW) is outside what model {self.name} is "
            f"built for on TensorRT: 1 to {most_n} image(s), {MIN_SIDE}x{MIN_SIDE} to "
            f"{most_h}x{most_w}; send a smaller image (or ask for max_side)"
        )

    def run(
        self,
        batch: np.ndarray,
        run_options: ort.RunOptions | None = None,
        style_weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """Raw inference: uint8 [N, H, W, 3] (or [H, W, 3]) in, same shape out. The caller
        sends images the graph accepts (serving.pipeline checks the minimum side); a batch
        beyond the TensorRT profile raises ShapeOutsideProfile before any work.
        ``style_weights`` (multi-style models): see ``feeds``.

        ``run_options`` (one per run) lets another thread stop the run
        (``run_options.terminate = True``), as the gRPC server does when a call is cancelled
        or its deadline passes. After a run over ``arena_shrink_pixels`` pixels the CPU arena
        is shrunk (an entry added to ``run_options``)."""
        single = batch.ndim == 3
        if single:
            batch = batch[None]
        self.check_shape(batch.shape)
        if batch.shape[0] * batch.shape[1] * batch.shape[2] > self.arena_shrink_pixels:
            run_options = run_options or ort.RunOptions()
            if not asks_arena_shrink(run_options):
                run_options.add_run_config_entry(ARENA_SHRINK_KEY, ARENA_SHRINK_DEVICES)
        out = self.session.run(None, self.feeds(batch, style_weights), run_options)[0]
        return out[0] if single else out


def asks_arena_shrink(run_options: ort.RunOptions) -> bool:
    """Whether ``run_options`` already asks for the arena to be shrunk after the run."""
    try:
        return bool(run_options.get_run_config_entry(ARENA_SHRINK_KEY))
    except RuntimeError:  # no such entry
        return False
