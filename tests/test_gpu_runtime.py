"""The GPU path without a GPU: TensorRT/CUDA provider options as pure data, the precision check
against CPU fp32, the fp16 fallback, the TensorRT profile bound, load metrics, and the `serve`
GPU flags. TensorRT loads run the tiny model on real CPU sessions behind ``PretendGpu``, a
session factory that says "TensorRT", writes an engine file where TensorRT would, and (when
asked) degrades what its "fp16 engine" computes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from serving_fixtures import TINY_MODEL

from stylecast.cli.gpu_args import add_gpu_arguments, runtime_fields
from stylecast.errors import StylecastError
from stylecast.serving.calls import status_of
from stylecast.serving.codec import card_message
from stylecast.serving.metrics import ServerMetrics
from stylecast.serving.model_card import INPUT_NAME, check_graph_file, read_card
from stylecast.serving.precision_check import (
    PrecisionCheckFailed,
    PrecisionThresholds,
    compare,
    probe_image,
    run_probe,
)
from stylecast.serving.providers import (
    CPU,
    CUDA,
    TENSORRT,
    ProviderEntry,
    engine_dir,
    model_cache_dir,
    provider_names,
    provider_options,
)
from stylecast.serving.runtime import (
    RuntimeOptions,
    SessionFactory,
    ShapeOutsideProfile,
    StyleModel,
)

pytest_plugins = ("serving_fixtures",)

SHA_A = "a" * 64
SHA_B = "b" * 64
EVERY_PROVIDER = (TENSORRT, CUDA, CPU)


def entry_options(entries: list[ProviderEntry], name: str) -> dict[str, Any]:
    """The options of provider ``name`` in ``entries``."""
    for entry in entries:
        if isinstance(entry, tuple) and entry[0] == name:
            return entry[1]
    raise AssertionError(f"{name} not in {entries}")


# -- provider options (pure) ------------------------------------------------------------------


def test_tensorrt_options_carry_profile_caches_and_precision(tmp_path: Path) -> None:
    options = RuntimeOptions(
        trt_cache_dir=str(tmp_path / "cache"),
        trt_opt_shape="2x256x320",
        trt_max_shape="4x1080x1920x3",
        trt_fp16=False,
        trt_builder_optimization_level=5,
        device_id=1,
    )
    entries = provider_options(options, SHA_A, EVERY_PROVIDER)
    assert provider_names(entries) == list(EVERY_PROVIDER)
    trt = entry_options(entries, TENSORRT)
    assert trt["trt_profile_min_shapes"] == f"{INPUT_NAME}:1x8x8x3"
    assert trt["trt_profile_opt_shapes"] == f"{INPUT_NAME}:2x256x320x3"
    assert trt["trt_profile_max_shapes"] == f"{INPUT_NAME}:4x1080x1920x3"
    assert trt["trt_fp16_enable"] is False and trt["device_id"] == 1
    assert trt["trt_builder_optimization_level"] == 5
    assert trt["trt_engine_cache_enable"] is True and trt["trt_timing_cache_enable"] is True
    model_dir = tmp_path / "cache" / SHA_A[:16]
    assert trt["trt_timing_cache_path"] == str(model_dir)
    assert Path(trt["trt_engine_cache_path"]).parent == model_dir
    assert Path(trt["trt_engine_cache_path"]).name.startswith("fp32-")
    # The fp32 rebuild after a failed check overrides the options' fp16 setting both ways.
    forced = entry_options(provider_options(options, SHA_A, EVERY_PROVIDER, fp16=True), TENSORRT)
    assert forced["trt_fp16_enable"] is True


def test_cuda_options_search_arena_and_device() -> None:
    default = entry_options(provider_options(RuntimeOptions(), SHA_A, EVERY_PROVIDER), CUDA)
    assert default == {
        "device_id": 0,
        "cudnn_conv_algo_search": "HEURISTIC",
        "arena_extend_strategy": "kSameAsRequested",
        "do_copy_in_default_stream": True,
    }  # no gpu_mem_limit: onnxruntime's own (no cap)
    options = RuntimeOptions(cudnn_conv_algo_search="EXHAUSTIVE", gpu_mem_limit_mb=512, device_id=2)
    cuda = entry_options(provider_options(options, SHA_A, (CUDA, CPU)), CUDA)
    assert cuda["gpu_mem_limit"] == 512 * 1024 * 1024
    assert cuda["cudnn_conv_algo_search"] == "EXHAUSTIVE" and cuda["device_id"] == 2


def test_providers_follow_what_the_build_has() -> None:
    assert provider_options(RuntimeOptions(), SHA_A, (CPU,)) == [CPU]
    assert provider_names(provider_options(RuntimeOptions(), SHA_A, (CUDA, CPU))) == [CUDA, CPU]
    with pytest.raises(StylecastError, match=r"TensorrtExecutionProvider.*not available"):
        provider_options(RuntimeOptions(providers=(TENSORRT,)), SHA_A, (CPU,))


def test_engine_caches_never_shared_between_graphs_or_builds(tmp_path: Path) -> None:
    options = RuntimeOptions(trt_cache_dir=str(tmp_path))
    wider = RuntimeOptions(trt_cache_dir=str(tmp_path), trt_max_shape="4x3840x3840")
    folders = {
        engine_dir(options, SHA_A, fp16=True),
        engine_dir(options, SHA_B, fp16=True),
        engine_dir(options, SHA_A, fp16=False),
        engine_dir(wider, SHA_A, fp16=True),
    }
    assert len(folders) == 4
    assert model_cache_dir(options, SHA_A) == tmp_path / SHA_A[:16]
    same = RuntimeOptions(trt_cache_dir=str(tmp_path))
    assert engine_dir(same, SHA_A, fp16=True) == engine_dir(options, SHA_A, fp16=True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"trt_opt_shape": "1x480"}, "not NxHxW"),
        ({"trt_opt_shape": "1xabcx640"}, "not NxHxW"),
        ({"trt_max_shape": "4x2160x3840x4"}, "3 channels"),
        ({"trt_max_shape": "0x2160x3840"}, "batch must be >= 1"),
        ({"trt_max_shape": "4x4x3840"}, "sides within"),
        ({"trt_max_shape": "1x240x320"}, "smaller than trt_opt_shape .* in H, W"),
        ({"trt_opt_shape": "8x480x640"}, "smaller than trt_opt_shape .* in N"),
        ({"trt_builder_optimization_level": 9}, "trt_builder_optimization_level"),
        ({"fp16_fallback": "fp8"}, "fp16_fallback"),
        ({"precision_check": "sometimes"}, "precision_check"),
        ({"cudnn_conv_algo_search": "FAST"}, "cudnn_conv_algo_search"),
        ({"gpu_mem_limit_mb": -1}, "gpu_mem_limit_mb"),
        ({"device_id": -1}, "device_id"),
    ],
)
def test_options_refuse_nonsense(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(StylecastError, match=message):
        RuntimeOptions(**overrides)


def test_thresholds_refuse_nonsense() -> None:
    with pytest.raises(StylecastError, match="min_psnr_db"):
        PrecisionThresholds(min_psnr_db=0)
    with pytest.raises(StylecastError, match="max_abs_error"):
        PrecisionThresholds(max_abs_error=300)


# -- the precision check (pure) -------------------------------------------------------------


def test_compare_passes_close_outputs_and_fails_degraded_ones() -> None:
    thresholds = PrecisionThresholds()
    reference = probe_image()
    same = compare(reference.copy(), reference, thresholds)
    assert same.passed and same.psnr_db == float("inf") and same.max_abs_error == 0
    jitter = np.random.default_rng(1).integers(-1, 2, reference.shape)
    close = compare(np.clip(reference + jitter, 0, 255).astype(np.uint8), reference, thresholds)
    assert close.passed and close.max_abs_error == 1 and close.psnr_db > 45
    three_bits = compare(reference & 0xE0, reference, thresholds)
    assert not three_bits.passed and three_bits.psnr_db < thresholds.min_psnr_db
    offset = np.clip(reference.astype(np.int16) + 20, 0, 255).astype(np.uint8)
    assert not compare(offset, reference, thresholds).passed
    blemish = reference.copy()  # a 4x4 block gone to 0 or 255: fine PSNR, caught by the max
    blemish[0, :4, :4] = 255 - (reference[0, :4, :4] > 127) * 255
    spot = compare(blemish, reference, thresholds)
    assert spot.psnr_db > thresholds.min_psnr_db and not spot.passed
    with pytest.raises(PrecisionCheckFailed, match="shape"):
        compare(reference[:, :8], reference, thresholds)


def test_probe_runner_takes_two_callables() -> None:
    thresholds = PrecisionThresholds()
    calls: list[tuple[int, ...]] = []

    def reference(image: np.ndarray) -> np.ndarray:
        calls.append(image.shape)
        return 255 - image

    assert run_probe(reference, reference, thresholds).passed
    assert not run_probe(lambda image: (255 - image) & 0xC0, reference, thresholds).passed
    assert calls[0] == (1, 256, 256, 3)
    probe = probe_image()
    assert np.array_equal(probe, probe_image()) and probe.dtype == np.uint8
    assert probe.std() > 40  # textured, not flat


# -- loading: CPU for real, TensorRT pretended ------------------------------------------------


class PretendSession:
    """A real CPU session that reports TensorRT; records input shapes; may degrade output."""

    def __init__(self, session: Any, degrade: bool, shapes: list[tuple[int, ...]]) -> None:
        self.session, self.degrade, self.shapes = session, degrade, shapes

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_providers(self) -> list[str]:
        return [TENSORRT, CPU]

    def run(self, outputs: Any, feeds: dict[str, np.ndarray], run_options: Any = None) -> Any:
        self.shapes.append(feeds[INPUT_NAME].shape)
        out = self.session.run(outputs, feeds, run_options)
        return [value & 0xE0 for value in out] if self.degrade else out


class PretendGpu(SessionFactory):
    """Sessions as if TensorRT were there; ``bad_fp16``: fp16 engines keep 3 bits a value."""

    def __init__(self, bad_fp16: bool = False) -> None:
        self.bad_fp16 = bad_fp16
        self.created: list[list[ProviderEntry]] = []
        self.shapes: list[tuple[int, ...]] = []

    def available_providers(self) -> list[str]:
        return list(EVERY_PROVIDER)

    def create(self, path: Path, settings: Any, providers: list[ProviderEntry]) -> Any:
        self.created.append(providers)
        session = super().create(path, settings, [CPU])
        first = providers[0]
        if isinstance(first, str):
            return session  # the CPU fp32 reference of the precision check
        trt = first[1]
        Path(trt["trt_engine_cache_path"], "TensorrtExecutionProvider_tiny.engine").touch()
        return PretendSession(session, self.bad_fp16 and trt["trt_fp16_enable"], self.shapes)


def gpu_options(tmp_path: Path, **overrides: Any) -> RuntimeOptions:
    settings: dict[str, Any] = {
        "intra_op_threads": 1,
        "trt_cache_dir": str(tmp_path / "trt"),
        "trt_opt_shape": "1x48x64",
        "trt_max_shape": "2x96x128",
    }
    return RuntimeOptions(**{**settings, **overrides})


def load_tiny(models: Path, options: RuntimeOptions, sessions: Any = None) -> StyleModel:
    model_dir = models / TINY_MODEL
    card = read_card(model_dir)
    return StyleModel(check_graph_file(model_dir, card, 1), card, 1, options, sessions)


def served_version_precision(model: StyleModel) -> str:
    card = card_message(model, thumbnail=False)
    return next(v.precision for v in card.versions if v.version == model.version)


def test_cpu_load_checks_when_forced_and_counts_its_build(tiny_models_dir: Path) -> None:
    plain = load_tiny(tiny_models_dir, RuntimeOptions(intra_op_threads=1))
    assert plain.load.precision is None  # auto: the CPU is the reference itself
    model = load_tiny(tiny_models_dir, RuntimeOptions(intra_op_threads=1, precision_check="always"))
    assert model.provider == CPU and model.served_precision == "fp32"
    assert model.load.precision is not None and model.load.precision.passed
    assert model.load.precision.psnr_db == float("inf")
    assert model.load.cache_hit is None and model.max_shape is None
    assert model.run(np.zeros((1, 97, 130, 3), np.uint8)).shape == (1, 97, 130, 3)  # no profile
    metrics = ServerMetrics()
    metrics.record_load(model.name, model.load)
    labels = {"model": TINY_MODEL, "provider": CPU}
    assert metrics.value("stylecast_engine_build_seconds_count", labels) == 1
    assert metrics.value("stylecast_engine_build_seconds_sum", labels) == pytest.approx(
        model.load.build_s
    )
    assert metrics.value("stylecast_engine_cache_misses_total", {"model": TINY_MODEL}) == 0


def test_tensorrt_load_warms_up_at_opt_shape_and_caches_by_sha(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    options = gpu_options(tmp_path)
    gpu = PretendGpu()
    model = load_tiny(tiny_models_dir, options, gpu)
    assert model.provider == TENSORRT and model.served_precision == "fp16"
    assert gpu.shapes[0] == (1, 48, 64, 3)  # the warm-up, at the opt shape
    assert model.load.precision is not None and model.load.precision.passed
    assert model.load.cache_hit is False and not model.load.fp16_fallback
    trt = entry_options(gpu.created[0], TENSORRT)
    assert Path(trt["trt_engine_cache_path"]).parent == tmp_path / "trt" / model.sha256[:16]
    assert served_version_precision(model) == "fp16"  # not the export's fp32

    again = load_tiny(tiny_models_dir, options, PretendGpu())
    assert again.load.cache_hit is True
    metrics = ServerMetrics()
    for loaded in (model, again):
        metrics.record_load(loaded.name, loaded.load)
    assert metrics.value("stylecast_engine_cache_misses_total", {"model": TINY_MODEL}) == 1
    assert metrics.value("stylecast_engine_cache_hits_total", {"model": TINY_MODEL}) == 1
    labels = {"model": TINY_MODEL, "provider": TENSORRT}
    assert metrics.value("stylecast_engine_build_seconds_count", labels) == 2


def test_failed_fp16_is_served_in_fp32(
    tiny_models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gpu = PretendGpu(bad_fp16=True)
    with caplog.at_level(logging.WARNING):
        model = load_tiny(tiny_models_dir, gpu_options(tmp_path), gpu)
    assert model.served_precision == "fp32" and model.load.fp16_fallback
    assert model.load.precision is not None and model.load.precision.passed
    built = [entry_options(c, TENSORRT)["trt_fp16_enable"] for c in gpu.created if c != [CPU]]
    assert built == [True, False]  # fp16 engine, then the fp32 rebuild
    assert "rebuilding it in fp32" in caplog.text
    assert served_version_precision(model) == "fp32"
    metrics = ServerMetrics()
    metrics.record_load(model.name, model.load)
    assert metrics.value("stylecast_fp16_fallbacks_total", {"model": TINY_MODEL}) == 1


def test_failed_fp16_is_refused_when_configured(tiny_models_dir: Path, tmp_path: Path) -> None:
    options = gpu_options(tmp_path, fp16_fallback="refuse")
    with pytest.raises(PrecisionCheckFailed, match=r"differs from CPU fp32.*refuse"):
        load_tiny(tiny_models_dir, options, PretendGpu(bad_fp16=True))


def test_batch_beyond_the_profile_is_refused_up_front(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    gpu = PretendGpu()
    model = load_tiny(tiny_models_dir, gpu_options(tmp_path), gpu)
    assert model.max_shape == (2, 96, 128, 3)
    runs = len(gpu.shapes)
    for shape in ((1, 97, 64, 3), (1, 64, 129, 3), (3, 32, 32, 3)):
        with pytest.raises(ShapeOutsideProfile, match="96x128") as caught:
            model.run(np.zeros(shape, np.uint8))
        assert status_of(caught.value)[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert len(gpu.shapes) == runs  # refused before the engine saw it
    assert model.run(np.zeros((96, 128, 3), np.uint8)).shape == (96, 128, 3)


# -- `stylecast serve` flags ----------------------------------------------------------------


def test_gpu_flags_become_runtime_options() -> None:
    parser = argparse.ArgumentParser()
    add_gpu_arguments(parser)
    assert runtime_fields(parser.parse_args([])) == {}
    args = parser.parse_args(
        [
            *("--trt-opt-shape", "1x240x320", "--trt-max-shape", "2x1080x1920x3"),
            *("--trt-cache-dir", "/c", "--no-trt-fp16", "--trt-optimization-level", "4"),
            *("--precision-check", "always", "--fp16-fallback", "refuse"),
            *("--cudnn-conv-algo-search", "EXHAUSTIVE", "--gpu-mem-limit-mb", "2048"),
            *("--device-id", "1"),
        ]
    )
    fields = runtime_fields(args)
    assert fields == {
        "trt_opt_shape": "1x240x320x3",
        "trt_max_shape": "2x1080x1920x3",
        "trt_cache_dir": "/c",
        "trt_fp16": False,
        "trt_builder_optimization_level": 4,
        "precision_check": "always",
        "fp16_fallback": "refuse",
        "cudnn_conv_algo_search": "EXHAUSTIVE",
        "gpu_mem_limit_mb": 2048,
        "device_id": 1,
    }
    assert RuntimeOptions(**fields).max_shape == (2, 1080, 1920, 3)
    for bad in (["--trt-max-shape", "4x2160"], ["--gpu-mem-limit-mb", "-1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
