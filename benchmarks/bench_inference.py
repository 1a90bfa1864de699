"""Inference benchmark (not a test): ms/image and images/second of each network preset in
onnxruntime, fp32 and int8 (and fp16 where a GPU provider is present), at 512×512, 640×480
and 1024×1024, measured side by side: every configuration runs once per round, rounds
interleave, and each row is the median over rounds of per-round medians. Weights are random
(timings do not depend on them); int8 graphs are calibrated on the bundled photos.

    python benchmarks/bench_inference.py [--networks standard,lite,rt] [--threads 2]
                                         [--repeats 5] [--rounds 2] [--torch]

``--torch`` adds PyTorch eager rows (fp32); fair eager timings on the CPU need glibc's
allocator to keep large buffers (see the README), and the script prints the setting it ran
with. The last column compares frames per second with the lite network's at the same size,
runtime and precision fp32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

try:
    from stylecast.serving.providers import PROVIDER_PREFERENCE
except ImportError:  # before serving.providers
    from stylecast.serving.runtime import PROVIDER_PREFERENCE  # type: ignore[attr-defined,no-redef]

SIZES = ((512, 512), (480, 640), (1024, 1024))
REPO_ROOT = Path(__file__).resolve().parent.parent
CALIBRATION_DIR = REPO_ROOT / "assets" / "content"
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (and TensorRT engine build)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - began))
    return statistics.median(times)


def cpu_session(path: Path, threads: int) -> ort.InferenceSession:
    """The session the server would open on the CPU (graph optimisation ALL)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_graphs(names: list[str], folder: Path, gpu: bool) -> dict[tuple[str, str], Path]:
    """Random-weight exports of each preset: fp32, int8 (and fp16 for GPU providers)."""
    import torch

    from stylecast.training.config import NetworkConfig
    from stylecast.training.export import export_onnx
    from stylecast.training.network import build_network
    from stylecast.training.quantize import quantize_int8

    calibration = sorted(CALIBRATION_DIR.glob("*.jpg"))[:8]
    graphs = {}
    for name in names:
        torch.manual_seed(0)
        network = build_network(NetworkConfig.preset(name)).eval()
        fp32 = folder / f"{name}.fp32.onnx"
        export_onnx(network, fp32)
        graphs[name, "fp32"] = fp32
        graphs[name, "int8"] = folder / f"{name}.int8.onnx"
        quantize_int8(fp32, graphs[name, "int8"], calibration)
        if gpu:
            graphs[name, "fp16"] = folder / f"{name}.fp16.onnx"
            export_onnx(network, graphs[name, "fp16"], fp16=True)
    return graphs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="standard,lite,rt", help="comma-separated presets")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--torch", action="store_true", help="add PyTorch eager fp32 rows")
    args = parser.parse_args()
    names = args.networks.split(",")

    providers = [p for p in PROVIDER_PREFERENCE if p in ort.get_available_providers()]
    gpu = any(p in GPU_PROVIDERS for p in providers)
    timings: dict[tuple[str, str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        graphs = export_graphs(names, Path(tmp), gpu)
        runners: dict[tuple[str, str, str], Callable[[np.ndarray], object]] = {}
        for (name, precision), path in graphs.items():
            for provider in providers:
                if precision == "fp16" and provider not in GPU_PROVIDERS:
                    continue
                try:
                    if provider == "CPUExecutionProvider":
                        session = cpu_session(path, args.threads)
                    else:
                        session = ort.InferenceSession(str(path), providers=[provider])
                except Exception as exc:  # a provider may refuse a graph; report and go on
                    print(f"skip {name} {precision} on {provider}: {exc}")
                    continue
                runners[name, f"onnxruntime {provider}", precision] = lambda image, s=session: (
                    s.run(None, {"image": image})
                )
        if args.torch:
            runners.update(torch_runners(names, args.threads))
        for _ in range(args.rounds):
            for h, w in SIZES:
                image = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
                for (name, runtime, precision), run in runners.items():
                    ms = median_ms(lambda r=run, i=image: r(i), args.repeats)
                    timings.setdefault((f"{w}×{h}", name, runtime, precision), []).append(ms)
    print_table(timings, args)


def torch_runners(names: list[str], threads: int) -> dict[tuple[str, str, str], Callable]:
    import torch

    from stylecast.training.config import NetworkConfig
    from stylecast.training.export import UInt8Graph
    from stylecast.training.network import build_network

    torch.set_num_threads(threads)
    runners = {}
    for name in names:
        torch.manual_seed(0)
        graph = UInt8Graph(build_network(NetworkConfig.preset(name)).eval())

        def eager(image: np.ndarray, graph: UInt8Graph = graph) -> None:
            with torch.inference_mode():
                graph(torch.from_numpy(image))

        runners[name, "torch eager (cpu)", "fp32"] = eager
    return runners


def print_table(timings: dict[tuple[str, str, str, str], list[float]], args) -> None:
    print(
        f"\nthreads={args.threads} repeats={args.repeats} rounds={args.rounds} "
        f"onnxruntime {ort.__version__} "
        f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}\n"
    )
    print("| size | network | runtime | precision | ms/image | images/s | × lite fps |")
    print("|---|---|---|---|---|---|---|")
    medians = {key: statistics.median(values) for key, values in timings.items()}
    for (size, name, runtime, precision), ms in medians.items():
        lite = medians.get((size, "lite", runtime, "fp32"))
        ratio = f"{lite / ms:.2f}" if lite else "–"
        cells = (size, name, runtime, precision, f"{ms:.1f}", f"{1000 / ms:.2f}", ratio)
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
