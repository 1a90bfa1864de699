"""onnxruntime CPU settings benchmark (not a test): ms per 640×480 frame of a network preset
under each session setting that could matter on a small CPU, measured side by side (every
setting once per round, rounds interleaved, median of per-round medians).

    python benchmarks/bench_ort_settings.py [--network rt] [--int8] [--rounds 3] [--repeats 7]

Settings: intra-op threads (1, 2), thread spinning (on, onnxruntime's default; off), the
memory-pattern planner, graph optimisation (EXTENDED vs ALL, which adds the NCHWc layout
transformer), and flushing denormals to zero. Each row changes one thing from the baseline
the server uses (2 threads, spinning on, memory pattern off, ALL). Weights are random.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from bench_inference import export_graphs, median_ms

Tweak = Callable[[ort.SessionOptions], None]


def baseline(options: ort.SessionOptions) -> None:
    """What the server sets (serving.runtime.session_options) on a 2-core machine."""
    options.intra_op_num_threads = 2
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = False


def _config(key: str, value: str) -> Tweak:
    return lambda options: options.add_session_config_entry(key, value)


def _set(name: str, value: object) -> Tweak:
    return lambda options: setattr(options, name, value)


SETTINGS: dict[str, Tweak] = {
    "baseline: 2 threads, spinning, no memory pattern, ALL": lambda options: None,
    "1 thread": _set("intra_op_num_threads", 1),
    "spinning off": _config("session.intra_op.allow_spinning", "0"),
    "memory pattern on": _set("enable_mem_pattern", True),
    "optimisation EXTENDED (no NCHWc layout)": _set(
        "graph_optimization_level", ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ),
    "denormals as zero": _config("session.set_denormal_as_zero", "1"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="rt")
    parser.add_argument("--int8", action="store_true", help="the int8 graph instead of fp32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    image = np.random.default_rng(0).integers(0, 256, (1, 480, 640, 3), dtype=np.uint8)
    timings: dict[str, list[float]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        graphs = export_graphs([args.network], Path(tmp), gpu=False)
        path = graphs[args.network, "int8" if args.int8 else "fp32"]
        sessions = {}
        for name, tweak in SETTINGS.items():
            options = ort.SessionOptions()
            baseline(options)
            tweak(options)
            sessions[name] = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        for _ in range(args.rounds):
            for name, session in sessions.items():
                run = lambda s=session: s.run(None, {"image": image})  # noqa: E731
                timings[name].append(median_ms(run, args.repeats))
    precision = "int8" if args.int8 else "fp32"
    print(f"\n{args.network} {precision}, 640×480, onnxruntime {ort.__version__}, "
          f"{args.rounds} rounds × {args.repeats} runs\n")  # fmt: skip
    print("| setting | ms/frame | frames/s | vs baseline |")
    print("|---|---|---|---|")
    base = statistics.median(next(iter(timings.values())))
    for name, values in timings.items():
        ms = statistics.median(values)
        print(f"| {name} | {ms:.1f} | {1000 / ms:.1f} | {base / ms:.2f}× |")


if __name__ == "__main__":
    main()
