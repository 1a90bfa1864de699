"""Prometheus metrics of one server, in their own registry (several servers can live in one
process, as in the tests). Served over HTTP by ``start_http`` when a metrics port is set.

Model labels only ever hold names of model folders in the repository (loaded ones, or "" before
the model is known; failed ones in ``stylecast_model_load_failures_total``), so a client sending
random model names cannot grow the label set without bound.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from .runtime import LoadReport

log = logging.getLogger(__name__)

BATCH_SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Model loads: milliseconds on the CPU, seconds from a TensorRT cache, minutes for a build.
BUILD_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)


class ServerMetrics:
    """Every metric the server records. Names are prefixed ``stylecast_``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "stylecast_requests",
            "Finished RPCs by method, model and gRPC status code.",
            ["method", "model", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "stylecast_request_duration_seconds",
            "RPC handler latency, by method and model.",
            ["method", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "stylecast_requests_in_flight",
            "RPCs being handled now, by method.",
            ["method"],
            registry=r,
        )
        self.inference_latency = Histogram(
            "stylecast_inference_duration_seconds",
            "Network run plus blend, by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inferences = Counter(
            "stylecast_inferences",
            "Inferences by model and outcome (ok, terminated, failed).",
            ["model", "outcome"],
            registry=r,
        )
        self.inferences_running = Gauge(
            "stylecast_inferences_running",
            "Images being run through a network now (with --max-batch, across batches).",
            registry=r,
        )
        self.inference_queue = Gauge(
            "stylecast_inference_queue_depth",
            "Images waiting for an inference slot (with --max-batch, in open batches too).",
            registry=r,
        )
        self.batch_size = Histogram(
            "stylecast_batch_size",
            "Images per batched inference, by model (recorded with --max-batch > 1).",
            ["model"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.abandoned = Counter(
            "stylecast_abandoned",
            "Calls whose client cancelled or whose deadline passed "
            "before or during inference, by method and stage (queue, inference).",
            ["method", "stage"],
            registry=r,
        )
        self.frames = Counter(
            "stylecast_stream_frames",
            "Stream frames answered, by model and result (ok, error).",
            ["model", "result"],
            registry=r,
        )
        self.frames_dropped = Counter(
            "stylecast_stream_frames_dropped",
            "Stream frames dropped because newer ones came.",
            ["model"],
            registry=r,
        )
        self.models_loaded = Gauge(
            "stylecast_models_loaded", "Models loaded and serving.", registry=r
        )
        self.models_failed = Gauge(
            "stylecast_models_failed",
            "Models whose newest version did not load (not served, or an older version is).",
            registry=r,
        )
        self.reloads = Counter(
            "stylecast_model_reload_events",
            "Models loaded, removed or failed on a scan of the repository (the first included).",
            ["event"],
            registry=r,
        )
        self.load_failures = Counter(
            "stylecast_model_load_failures",
            "Failed loads by model: a bad card, or no working version, or a broken newer one "
            "(counted once per change on disk, not per rescan).",
            ["model"],
            registry=r,
        )
        self.rescan_errors = Counter(
            "stylecast_model_rescan_errors",
            "Rescans of the repository that could not read the models folder.",
            registry=r,
        )
        self.engine_build = Histogram(
            "stylecast_engine_build_seconds",
            "Session creation plus warm-up at model load, by model and provider (on TensorRT: "
            "the engine build, or its load from the engine cache).",
            ["model", "provider"],
            buckets=BUILD_BUCKETS,
            registry=r,
        )
        self.engine_cache_hits = Counter(
            "stylecast_engine_cache_hits",
            "TensorRT loads whose engine was already in the engine cache, by model.",
            ["model"],
            registry=r,
        )
        self.engine_cache_misses = Counter(
            "stylecast_engine_cache_misses",
            "TensorRT loads that had to build their engine, by model.",
            ["model"],
            registry=r,
        )
        self.fp16_fallbacks = Counter(
            "stylecast_fp16_fallbacks",
            "Loads whose fp16 engine failed the check against CPU fp32 and are served in fp32.",
            ["model"],
            registry=r,
        )
        # The camera page (`stylecast web`): its connections are also counted as method
        # "WebStream" in stylecast_requests_total and its frames in stylecast_stream_frames.
        self.web_connections = Gauge(
            "stylecast_web_connections",
            "Camera page WebSocket connections open now.",
            registry=r,
        )
        self.web_frame_seconds = Histogram(
            "stylecast_web_frame_duration_seconds",
            "Camera page frames: server time from frame received to reply ready, by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def record_load(self, model: str, load: LoadReport) -> None:
        """Count one model load (``StyleModel.load``): its build time and engine cache use."""
        self.engine_build.labels(model, load.provider).observe(load.build_s)
        if load.cache_hit is not None:
            counter = self.engine_cache_hits if load.cache_hit else self.engine_cache_misses
            counter.labels(model).inc()
        if load.fp16_fallback:
            self.fp16_fallbacks.labels(model).inc()

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value (0 when absent); for tests and the benchmark."""
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def start_http(self, host: str, port: int) -> Any:
        """Serve /metrics on ``host:port``; returns a handle for ``stop_http`` (or None)."""
        handle = start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, port)
        return handle

    def serve_http(self, host: str, port: int) -> tuple[Any, int]:
        """``start_http``, and the port it bound (``port`` 0: an ephemeral one)."""
        handle = self.start_http(host, port)
        bound = handle[0].server_port if isinstance(handle, tuple) and handle else port
        return handle, bound

    @staticmethod
    def stop_http(handle: Any) -> None:
        """Stop a server started by ``start_http`` (prometheus-client >= 0.20 returns one)."""
        if isinstance(handle, tuple) and handle:
            handle[0].shutdown()
            handle[0].server_close()
