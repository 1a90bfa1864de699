"""Multi-style benchmark (not a test): ms per 640×480 frame of a 4-style network against a
1-style network of the same preset, in onnxruntime on the CPU, measured side by side (every
graph runs once per round, rounds interleave; each figure is the median over rounds of
per-round medians). The 4-style graph is fed a blend of all four styles, the heaviest case
(a one-hot row costs the same: the mix is a [N, S] × [S, C] product per instance norm).
Weights are random: timings do not depend on them.

    python benchmarks/bench_multistyle.py [--networks rt,lite] [--threads 2]
                                          [--repeats 5] [--rounds 3] [--styles 4]

The issue's target: the multi-style network within 10% of the single-style one.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from bench_inference import cpu_session, median_ms

HEIGHT, WIDTH = 480, 640


def export(preset: str, styles: int, path: Path) -> Path:
    """A random-weight export of ``preset`` with ``styles`` styles."""
    import dataclasses

    import torch

    from stylecast.training.config import NetworkConfig
    from stylecast.training.export import export_onnx
    from stylecast.training.network import build_network

    torch.manual_seed(0)
    config = dataclasses.replace(NetworkConfig.preset(preset), styles=styles)
    export_onnx(build_network(config).eval(), path)
    return path


def feeds(styles: int) -> dict[str, np.ndarray]:
    frame = np.random.default_rng(0).integers(0, 256, (1, HEIGHT, WIDTH, 3), dtype=np.uint8)
    inputs = {"image": frame}
    if styles > 1:
        inputs["style_weights"] = np.full((1, styles), 1.0 / styles, dtype=np.float32)
    return inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="rt,lite", help="comma-separated presets")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--styles", type=int, default=4)
    args = parser.parse_args()
    presets = [name.strip() for name in args.networks.split(",") if name.strip()]
    with tempfile.TemporaryDirectory() as folder:
        runs = {}
        for preset in presets:
            for styles in (1, args.styles):
                path = export(preset, styles, Path(folder) / f"{preset}-{styles}.onnx")
                runs[preset, styles] = (cpu_session(path, args.threads), feeds(styles))
        rounds: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
        for _ in range(args.rounds):
            for key, (run, inputs) in runs.items():
                rounds[key].append(median_ms(lambda r=run, i=inputs: r.run(None, i), args.repeats))
    print(f"ms per {WIDTH}x{HEIGHT} frame, onnxruntime CPU, {args.threads} thread(s), "
          f"median of {args.rounds} round(s) x {args.repeats} run(s)")  # fmt: skip
    print(f"{'preset':<10}{'1 style':>10}{f'{args.styles} styles':>11}{'ratio':>8}")
    for preset in presets:
        one = statistics.median(rounds[preset, 1])
        many = statistics.median(rounds[preset, args.styles])
        print(f"{preset:<10}{one:>10.1f}{many:>11.1f}{many / one:>8.3f}")


if __name__ == "__main__":
    main()
