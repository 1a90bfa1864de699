"""onnxruntime inference for one exported model: execution-provider choice, session options,
warm-up, and the raw run (uint8 RGB in, uint8 RGB out). Everything around the run (decoding,
downscaling, the minimum side, blending, encoding) is serving.pipeline's.

Memory: onnxruntime's CPU arena keeps what the largest run needed. So the arena is given back
to the system after a run of more than ``RuntimeOptions.arena_shrink_pixels`` pixels, and
kept warm for smaller ones (camera frames), which would otherwise pay for re-allocating it.
The memory-pattern planner is off by default: with images of varying size it made the arena
keep about twice a run's working set, for no measured speed gain
(benchmarks/bench_memory.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from stylecast.errors import StylecastError

from .model_card import INPUT_NAME, ModelCard

log = logging.getLogger(__name__)

PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
WARMUP_SHAPE = (1, 64, 64, 3)
ARENA_SHRINK_KEY = "memory.enable_memory_arena_shrinkage"
ARENA_SHRINK_DEVICES = "cpu:0"


@dataclass(frozen=True)
class RuntimeOptions:
    """How sessions are created. ``providers`` None: the best of TensorRT → CUDA → CPU."""

    providers: tuple[str, ...] | None = None
    intra_op_threads: int = 0  # 0: onnxruntime's default (one per physical core)
    inter_op_threads: int = 1
    trt_fp16: bool = True
    trt_cache_dir: str = ".trt-cache"
    warmup: bool = True
    arena_shrink_pixels: int = 640 * 480  # shrink the CPU arena after larger runs (0: always)
    memory_pattern: bool = False  # onnxruntime's memory-pattern planning (see the module doc)

    def __post_init__(self) -> None:
        if self.arena_shrink_pixels < 0:
            raise StylecastError(
                f"arena_shrink_pixels must be >= 0 (got {self.arena_shrink_pixels})"
            )


def select_providers(options: RuntimeOptions) -> list[Any]:
    """Providers to ask for, best first, with their options; only those this build has."""
    available = set(ort.get_available_providers())
    wanted = options.providers or PROVIDER_PREFERENCE
    unknown = [p for p in wanted if p not in available]
    if options.providers and unknown:
        raise StylecastError(
            f"execution provider(s) {', '.join(unknown)} not available; this onnxruntime has "
            f"{', '.join(sorted(available))}"
        )
    chosen: list[Any] = []
    for name in wanted:
        if name not in available:
            continue
        if name == "TensorrtExecutionProvider":
            Path(options.trt_cache_dir).mkdir(parents=True, exist_ok=True)
            chosen.append(
                (
                    name,
                    {
                        "trt_fp16_enable": options.trt_fp16,
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": options.trt_cache_dir,
                    },
                )
            )
        else:
            chosen.append(name)
    return chosen


class StyleModel:
    """One loaded model version: an onnxruntime session plus its card."""

    def __init__(self, path: Path, card: ModelCard, version: int, options: RuntimeOptions) -> None:
        self.path = path
        self.card = card
        self.name = card.name
        self.version = version
        self.arena_shrink_pixels = options.arena_shrink_pixels
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.intra_op_num_threads = options.intra_op_threads
        session_options.inter_op_num_threads = options.inter_op_threads
        session_options.log_severity_level = 3
        session_options.enable_mem_pattern = options.memory_pattern
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=session_options, providers=select_providers(options)
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/… types
            raise StylecastError(f"{path}: onnxruntime cannot load it ({exc})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME or inputs[0].type != "tensor(uint8)":
            raise StylecastError(f"{path}: graph input does not match the model card's spec")
        self.provider = self.session.get_providers()[0]
        if options.warmup:
            self.run(np.zeros(WARMUP_SHAPE, dtype=np.uint8))
        log.info("loaded model %s v%d on %s", self.name, version, self.provider)

    def run(self, batch: np.ndarray, run_options: ort.RunOptions | None = None) -> np.ndarray:
        """Raw inference: uint8 [N, H, W, 3] (or [H, W, 3]) in, same shape out. The caller
        sends images the graph accepts (serving.pipeline checks the minimum side).

        ``run_options`` (one per run) lets another thread stop the run
        (``run_options.terminate = True``), as the gRPC server does when a call is cancelled
        or its deadline passes. After a run over ``arena_shrink_pixels`` pixels the CPU arena
        is shrunk (an entry added to ``run_options``)."""
        single = batch.ndim == 3
        if single:
            batch = batch[None]
        if batch.shape[0] * batch.shape[1] * batch.shape[2] > self.arena_shrink_pixels:
            run_options = run_options or ort.RunOptions()
            if not asks_arena_shrink(run_options):
                run_options.add_run_config_entry(ARENA_SHRINK_KEY, ARENA_SHRINK_DEVICES)
        out = self.session.run(None, {INPUT_NAME: np.ascontiguousarray(batch)}, run_options)[0]
        return out[0] if single else out


def asks_arena_shrink(run_options: ort.RunOptions) -> bool:
    """Whether ``run_options`` already asks for the arena to be shrunk after the run."""
    try:
        return bool(run_options.get_run_config_entry(ARENA_SHRINK_KEY))
    except RuntimeError:  # no such entry
        return False
