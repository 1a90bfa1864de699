"""Execution-provider options, as pure functions of ``RuntimeOptions`` and the graph's SHA-256:
which providers to ask onnxruntime for, best first, and the option dict of each. Nothing here
touches onnxruntime or the disk, so every GPU setting is testable on a CPU-only host.

TensorRT gets one explicit optimisation profile on the graph input (min ``1x8x8x3``, the
configured opt and max shapes), and its engine and timing caches in a folder of their own per
graph: ``<trt_cache_dir>/<sha256[:16]>/`` holds the timing cache (layer timings, reusable by
every build of that graph), and one sub-folder per build setting (precision, opt and max shape,
builder level) holds the engine. A TensorRT engine is only valid for the exact graph, precision
and profile it was built with, so two models, two versions, or an fp16 and an fp32 build never
share one, and changing a setting builds a new engine instead of loading a stale one.

CUDA (alone, or behind TensorRT for the nodes TensorRT does not take): cuDNN's convolution
search, the device, and the arena (grown by what is asked, not to the next power of two, and
capped when ``gpu_mem_limit_mb`` is set)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylecast.errors import StylecastError

from .model_card import INPUT_NAME, MAX_SIDE, MIN_SIDE

if TYPE_CHECKING:
    from .runtime import RuntimeOptions

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDER_PREFERENCE = (TENSORRT, CUDA, CPU)

Shape = tuple[int, int, int, int]  # N, H, W, C of the graph input (NHWC)
ProviderEntry = str | tuple[str, dict[str, Any]]

MIN_SHAPE: Shape = (1, MIN_SIDE, MIN_SIDE, 3)  # the smallest input the exported graphs accept
CUDNN_CONV_ALGO_SEARCHES = ("HEURISTIC", "EXHAUSTIVE", "DEFAULT")
TRT_BUILDER_LEVELS = range(6)  # TensorRT's builder optimisation levels 0..5
ENGINE_SUFFIX = ".engine"
MIB = 1 << 20


# -- shapes ---------------------------------------------------------------------------------


def parse_shape(text: str, what: str = "shape") -> Shape:
    """``NxHxW`` or ``NxHxWx3`` as a shape; StylecastError naming ``what`` otherwise."""
    parts = text.strip().lower().split("x")
    if len(parts) == 3:
        parts.append("3")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts):
        raise StylecastError(f"{what} {text!r} is not NxHxW or NxHxWx3 (e.g. 1x480x640)")
    n, h, w, c = (int(p) for p in parts)
    if c != 3:
        raise StylecastError(f"{what} {text!r}: the graphs take 3 channels (RGB), not {c}")
    if n < 1 or not MIN_SIDE <= min(h, w) <= max(h, w) <= MAX_SIDE:
        raise StylecastError(
            f"{what} {text!r}: batch must be >= 1 and sides within {MIN_SIDE}..{MAX_SIDE}"
        )
    return n, h, w, c


def shape_text(shape: tuple[int, ...]) -> str:
    """``1x480x640x3``: TensorRT's profile notation of a shape."""
    return "x".join(str(d) for d in shape)


def check_profile(min_shape: Shape, opt_shape: Shape, max_shape: Shape) -> None:
    """StylecastError unless min <= opt <= max in every dimension."""
    for lower, upper, names in (
        (min_shape, opt_shape, ("the minimum", "trt_opt_shape")),
        (opt_shape, max_shape, ("trt_opt_shape", "trt_max_shape")),
    ):
        smaller = [axis for axis, a, b in zip("NHWC", lower, upper, strict=True) if b < a]
        if smaller:
            raise StylecastError(
                f"{names[1]} {shape_text(upper)} is smaller than {names[0]} "
                f"{shape_text(lower)} in {', '.join(smaller)}"
            )


def outside(shape: tuple[int, ...], max_shape: Shape, min_shape: Shape = MIN_SHAPE) -> list[str]:
    """The axes (N, H, W) of an NHWC ``shape`` outside [min_shape, max_shape]."""
    return [
        axis
        for axis, size, low, high in zip("NHW", shape[:3], min_shape, max_shape, strict=False)
        if not low <= size <= high
    ]


# -- caches ---------------------------------------------------------------------------------


def model_cache_dir(options: RuntimeOptions, sha256: str) -> Path:
    """The graph's cache folder (its timing cache): ``<trt_cache_dir>/<sha256[:16]>``."""
    return Path(options.trt_cache_dir) / (sha256[:16] or "unhashed")


def engine_dir(options: RuntimeOptions, sha256: str, fp16: bool) -> Path:
    """Where the engine built with these settings lives, e.g.
    ``.trt-cache/3fa9…/fp16-opt1x480x640x3-max4x2160x3840x3-level3``."""
    build = (
        f"{'fp16' if fp16 else 'fp32'}-opt{shape_text(options.opt_shape)}"
        f"-max{shape_text(options.max_shape)}-level{options.trt_builder_optimization_level}"
    )
    return model_cache_dir(options, sha256) / build


def has_engine(folder: Path) -> bool:
    """Whether ``folder`` holds a serialised TensorRT engine (a cache hit when loading)."""
    return folder.is_dir() and any(p.name.endswith(ENGINE_SUFFIX) for p in folder.iterdir())


# -- provider options -----------------------------------------------------------------------


def tensorrt_options(options: RuntimeOptions, sha256: str, fp16: bool) -> dict[str, Any]:
    """TensorRT's options: the profile on the graph input, the caches, the precision."""
    return {
        "device_id": options.device_id,
        "trt_fp16_enable": fp16,
        "trt_profile_min_shapes": f"{INPUT_NAME}:{shape_text(MIN_SHAPE)}",
        "trt_profile_opt_shapes": f"{INPUT_NAME}:{shape_text(options.opt_shape)}",
        "trt_profile_max_shapes": f"{INPUT_NAME}:{shape_text(options.max_shape)}",
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engine_dir(options, sha256, fp16)),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(model_cache_dir(options, sha256)),
        "trt_builder_optimization_level": options.trt_builder_optimization_level,
    }


def cuda_options(options: RuntimeOptions) -> dict[str, Any]:
    """CUDA's options. ``gpu_mem_limit`` is left to onnxruntime (no cap) when
    ``gpu_mem_limit_mb`` is 0; copies stay on the compute stream (the safe default)."""
    settings: dict[str, Any] = {
        "device_id": options.device_id,
        "cudnn_conv_algo_search": options.cudnn_conv_algo_search,
        "arena_extend_strategy": "kSameAsRequested",
        "do_copy_in_default_stream": True,
    }
    if options.gpu_mem_limit_mb:
        settings["gpu_mem_limit"] = options.gpu_mem_limit_mb * MIB
    return settings


def provider_options(
    options: RuntimeOptions, sha256: str, available: Collection[str], fp16: bool | None = None
) -> list[ProviderEntry]:
    """The providers to ask for, best first, with their options: ``options.providers`` (or
    TensorRT → CUDA → CPU) restricted to ``available``. ``fp16`` overrides
    ``options.trt_fp16`` (the fp32 rebuild after a failed precision check). Asking
    explicitly for a provider that is not available raises StylecastError."""
    wanted = options.providers or PROVIDER_PREFERENCE
    missing = [name for name in wanted if name not in available]
    if options.providers and missing:
        raise StylecastError(
            f"execution provider(s) {', '.join(missing)} not available; this onnxruntime has "
            f"{', '.join(sorted(available))}"
        )
    entries: list[ProviderEntry] = []
    for name in wanted:
        if name not in available:
            continue
        if name == TENSORRT:
            half = options.trt_fp16 if fp16 is None else fp16
            entries.append((name, tensorrt_options(options, sha256, half)))
        elif name == CUDA:
            entries.append((name, cuda_options(options)))
        else:
            entries.append(name)
    return entries


def provider_names(entries: list[ProviderEntry]) -> list[str]:
    """The names of ``entries``, without their options."""
    return [entry if isinstance(entry, str) else entry[0] for entry in entries]
