"""benchmarks/gpu_check.py, the one-script GPU check, on its CPU path: --quick (tiny sizes, the
bundled lite model) prints one table with the CPU rows measured and every GPU row marked
"no GPU"; and the TensorRT wheel its installer picks from the provider library's links."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.py"
HEADER = "| section | item | setting | result | status |"


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def table_rows(text: str) -> list[list[str]]:
    lines = text.splitlines()
    assert lines.count(HEADER) == 1, text
    start = lines.index(HEADER) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_trt_requirement_follows_the_provider_links(tmp_path):
    gpu_check = load_gpu_check()
    library = tmp_path / "libonnxruntime_providers_tensorrt.so"
    library.write_bytes(b"\0libcublas.so.13\0libnvinfer.so.10\0libcudart.so.13\0libcudnn.so.9\0")
    assert gpu_check.trt_requirement(library) == "tensorrt-cu13-libs==10.*"
    assert gpu_check.trt_requirement(tmp_path / "missing.so") == ""


@pytest.mark.slow
def test_quick_cpu_run_prints_one_table_with_gpu_rows_unavailable(tmp_path):
    gpu_check = load_gpu_check()
    if gpu_check.gpus():
        pytest.skip("a GPU is present: this test covers the CPU path")
    out = tmp_path / "report.md"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--budget", "100", "--out", str(out)],
        capture_output=True, text=True, timeout=170, cwd=REPO_ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_text() in done.stdout
    assert "GPU: none found" in done.stdout
    rows = table_rows(done.stdout)
    by_item = {(r[0], r[1], r[2]): r for r in rows}
    assert all(len(r) == 5 for r in rows), rows

    for label in ("TensorRT fp16", "TensorRT fp32", "CUDA"):
        assert by_item[("inference", f"{label} · lite", "all")][4] == "no GPU"
    assert by_item[("ddp", "all", "")][4].startswith("no GPU")

    cpu = [r for r in rows if r[1] == "CPU · lite"]
    assert cpu[0][2].startswith("parity vs CPU fp32") and "max abs diff 0 levels" in cpu[0][3]
    timed = [r for r in cpu[1:] if re.fullmatch(r"\d+×\d+ batch \d+", r[2])]
    assert len(timed) == 4, cpu  # 2 sizes × batch 1 and 2
    assert all(re.search(r"ms/batch, [\d.]+ images/s", r[3]) for r in timed), timed

    servers = [r for r in rows if r[0] == "server"]
    assert [r[1] for r in servers] == ["1 streams", "8 streams", "32 streams"]
    assert all("images/s" in r[3] and r[4] == "ok" for r in servers), servers

    training = {r[1]: r for r in rows if r[0] == "training"}
    assert set(training) == {"precision 32", "precision bf16-mixed", "bf16 vs fp32"}
    assert all(r[4].startswith("no GPU") for r in training.values())

    statuses = " ".join(r[4] for r in rows)
    for word in ("error", "failed", "crashed", "timed out"):
        assert word not in statuses, rows
