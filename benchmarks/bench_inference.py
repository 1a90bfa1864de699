"""Inference benchmark (not a test): images/second and ms/image for PyTorch eager and
onnxruntime, for every execution provider present, fp32 and fp16, at 256×256, 640×480 and
1280×720. Weights are random (timings do not depend on them).

    python benchmarks/bench_inference.py [--network standard|lite] [--threads 2] [--repeats 5]

On the CPU, fair eager timings need glibc's allocator to keep large buffers
(see the README); this script reports the setting it ran with.
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

SIZES = ((256, 256), (480, 640), (720, 1280))


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (and TensorRT engine build)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - began))
    return statistics.median(times)


def main() -> None:
    import torch  # here, so that median_ms can be imported without torch

    from stylecast.training.config import NetworkConfig
    from stylecast.training.export import UInt8Graph, export_onnx
    from stylecast.training.network import TransformNet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=("standard", "lite"), default="standard")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-torch-fp16", action="store_true", help="skip torch fp16 on CPU")
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    network = TransformNet(NetworkConfig.preset(args.network)).eval()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows: list[tuple[str, str, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {p: Path(tmp) / f"{p}.onnx" for p in ("fp32", "fp16")}
        export_onnx(network, paths["fp32"], fp16=False)
        export_onnx(network, paths["fp16"], fp16=True)
        providers = [p for p in PROVIDER_PREFERENCE if p in ort.get_available_providers()]
        for h, w in SIZES:
            image = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
            size = f"{w}×{h}"
            for precision, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
                if precision == "fp16" and device == "cpu" and args.no_torch_fp16:
                    continue
                graph = UInt8Graph(network.to(device, dtype), dtype)
                batch = torch.from_numpy(image).to(device)

                def eager(graph: UInt8Graph = graph, batch: torch.Tensor = batch) -> None:
                    with torch.inference_mode():
                        graph(batch).cpu()

                ms = median_ms(eager, args.repeats)
                rows.append((size, f"torch eager ({device})", precision, ms))
                network.float()
            for provider in providers:
                for precision, path in paths.items():
                    options = ort.SessionOptions()
                    options.intra_op_num_threads = args.threads
                    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                    try:
                        session = ort.InferenceSession(str(path), options, providers=[provider])
                    except Exception as exc:  # a provider may refuse a graph; report and go on
                        print(f"skip {provider} {precision}: {exc}")
                        continue
                    feed = {"image": image}
                    ms = median_ms(lambda s=session, f=feed: s.run(None, f), args.repeats)
                    rows.append((size, f"onnxruntime {provider}", precision, ms))
    print(
        f"\nnetwork={args.network} threads={args.threads} repeats={args.repeats} "
        f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}\n"
    )
    print("| size | runtime | precision | ms/image | images/s |")
    print("|---|---|---|---|---|")
    for size, runtime, precision, ms in rows:
        print(f"| {size} | {runtime} | {precision} | {ms:.1f} | {1000 / ms:.2f} |")


if __name__ == "__main__":
    main()
