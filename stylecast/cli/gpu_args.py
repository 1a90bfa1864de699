"""`stylecast serve`'s GPU options (TensorRT and CUDA execution providers): ``add_gpu_arguments``
adds them to a parser, ``runtime_fields`` turns the ones given into RuntimeOptions keyword
arguments (flags left out keep RuntimeOptions' defaults). Imports nothing heavy."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import StylecastError
from ..serving.precision_check import FP16_FALLBACKS, PRECISION_CHECKS
from ..serving.providers import CUDNN_CONV_ALGO_SEARCHES, parse_shape, shape_text

# RuntimeOptions fields these flags set (argparse dests of the same names).
FIELDS = (
    "trt_opt_shape", "trt_max_shape", "trt_cache_dir", "trt_fp16",
    "trt_builder_optimization_level", "precision_check", "fp16_fallback",
    "cudnn_conv_algo_search", "gpu_mem_limit_mb", "device_id",
)  # fmt: skip


def profile_shape(text: str) -> str:
    """argparse type: NxHxW (or NxHxWx3) within the graphs' limits, as ``NxHxWx3``."""
    try:
        return shape_text(parse_shape(text))
    except StylecastError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (got {value})")
    return value


def add_gpu_arguments(parser: argparse.ArgumentParser) -> None:
    """The GPU option group; every default is None (RuntimeOptions' own applies)."""
    group = parser.add_argument_group(
        "GPU", "TensorRT and CUDA execution providers (ignored on a CPU-only onnxruntime)"
    )
    group.add_argument("--trt-opt-shape", dest="trt_opt_shape", type=profile_shape,
                       metavar="NxHxW", help="TensorRT's profile opt shape, also the warm-up "
                       "(default 1x480x640)")  # fmt: skip
    group.add_argument("--trt-max-shape", dest="trt_max_shape", type=profile_shape,
                       metavar="NxHxW", help="TensorRT's profile max shape; larger batches are "
                       "refused with INVALID_ARGUMENT (default 4x2160x3840)")  # fmt: skip
    group.add_argument("--trt-cache-dir", dest="trt_cache_dir", metavar="DIR",
                       help="TensorRT engine and timing caches, one folder per model SHA-256 "
                       "(default .trt-cache)")  # fmt: skip
    group.add_argument(
        "--no-trt-fp16",
        dest="trt_fp16",
        action="store_false",
        default=None,
        help="build TensorRT engines in fp32 (default: fp16, checked at load)",
    )
    group.add_argument("--trt-optimization-level", dest="trt_builder_optimization_level",
                       type=int, choices=range(6), metavar="0-5",
                       help="TensorRT builder optimisation level (default 3)")  # fmt: skip
    group.add_argument("--precision-check", dest="precision_check", choices=PRECISION_CHECKS,
                       help="compare each model with CPU fp32 at load: auto (on a GPU), always, "
                       "never (default auto)")  # fmt: skip
    group.add_argument("--fp16-fallback", dest="fp16_fallback", choices=FP16_FALLBACKS,
                       help="a model failing the fp16 check is rebuilt in fp32, or refused "
                       "(default fp32)")  # fmt: skip
    group.add_argument(
        "--cudnn-conv-algo-search",
        dest="cudnn_conv_algo_search",
        choices=CUDNN_CONV_ALGO_SEARCHES,
        help="cuDNN convolution search on the CUDA provider (default HEURISTIC)",
    )
    group.add_argument(
        "--gpu-mem-limit-mb",
        dest="gpu_mem_limit_mb",
        type=non_negative_int,
        metavar="MB",
        help="cap on the CUDA memory arena (default 0: no cap)",
    )
    group.add_argument(
        "--device-id", dest="device_id", type=non_negative_int, help="GPU to run on (default 0)"
    )


def runtime_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The GPU flags given, as RuntimeOptions keyword arguments."""
    return {name: getattr(args, name) for name in FIELDS if getattr(args, name, None) is not None}
