"""The server's settings (``ServerConfig``): one frozen dataclass with safe defaults, checked
when it is made. `stylecast serve --help` lists the flags; `--print-config` shows the values.

Memory is bounded by the limits (measured with benchmarks/bench_memory.py): one inference
holds at most about ``BYTES_PER_PIXEL`` bytes per input pixel (the standard network; the lite
one about 750), and a batched one (``max_batch``) that much per image, so the server's peak is
about

    idle + max_concurrent_inferences × max_batch × BYTES_PER_PIXEL × max_pixels

(``memory_bound``), plus, in the worst case, the messages being received
(``grpc_message_limit`` each). The defaults (2 × 1024×1024) keep it under 3 GB with the
standard network: safe in a 2-core, 4 GB container. After an inference over
``RuntimeOptions.arena_shrink_pixels`` pixels the memory goes back near idle."""

from __future__ import annotations

from dataclasses import dataclass, field

from stylecast.errors import StylecastError

from .imaging import DEFAULT_QUALITY
from .runtime import RuntimeOptions

MESSAGE_MARGIN_BYTES = 1024 * 1024
BYTES_PER_PIXEL = 1250  # peak of one inference, standard network, onnxruntime CPU (measured)
IDLE_BYTES = 150 * 1024 * 1024  # a served process with one model, before any request
MAX_BATCH = 64  # the exported graphs' largest batch (training/export.py)
MAX_BATCH_WINDOW_MS = 100.0


@dataclass(frozen=True)
class ServerConfig:
    """Every server setting, with safe defaults. The smallest image side accepted is no
    setting: it is the exported graphs' (``model_card.MIN_SIDE``, checked by the pipeline)."""

    models_dir: str = "models"
    host: str = "0.0.0.0"
    port: int = 50051  # 0: an ephemeral port (read StylecastServer.port)
    workers: int = 32  # gRPC handler threads; also the limit on concurrent RPCs
    max_streams: int = 8  # open StyliseStream calls (each holds a handler thread)
    max_concurrent_inferences: int = 2
    max_queue: int = 16  # calls waiting for an inference slot; more get RESOURCE_EXHAUSTED
    max_queue_wait_s: float = 30.0
    max_batch: int = 1  # images per batched inference (serving.batcher); 1: no batching
    batch_window_ms: float = 2.0  # how long an image waits for others to batch with
    max_message_bytes: int = 4 * 1024 * 1024  # holds a raw RGB image of max_pixels
    max_pixels: int = 1024 * 1024  # per input image; sized for 4 GB (see the module doc)
    stream_max_pending: int = 4  # cap on a stream's max_pending
    default_quality: int = DEFAULT_QUALITY
    reload_interval_s: float = 5.0  # 0: reload only on ReloadModels / SIGHUP
    drain_s: float = 5.0  # shutdown: health NOT_SERVING, port still open (0: no drain)
    drain_refuse_calls: bool = False  # during the drain, answer new calls UNAVAILABLE
    grace_s: float = 10.0  # shutdown: time for in-flight calls to finish
    metrics_port: int | None = None  # None: no metrics endpoint; 0: an ephemeral port
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None  # set: clients must present a certificate it signed
    auth_tokens: tuple[str, ...] = ()  # empty: no authentication
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)

    def __post_init__(self) -> None:
        positive = (
            "workers",
            "max_streams",
            "max_concurrent_inferences",
            "max_message_bytes",
            "max_pixels",
            "stream_max_pending",
            "max_queue_wait_s",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise StylecastError(f"{name} must be > 0 (got {getattr(self, name)})")
        if min(self.max_queue, self.reload_interval_s, self.drain_s, self.grace_s) < 0:
            raise StylecastError("max_queue, reload_interval_s, drain_s and grace_s must be >= 0")
        if not 1 <= self.max_batch <= MAX_BATCH:
            raise StylecastError(f"max_batch must be in [1, {MAX_BATCH}] (got {self.max_batch})")
        if not 0 <= self.batch_window_ms <= MAX_BATCH_WINDOW_MS:
            raise StylecastError(
                f"batch_window_ms must be in [0, {MAX_BATCH_WINDOW_MS:g}] "
                f"(got {self.batch_window_ms})"
            )
        if self.max_streams >= self.workers:
            raise StylecastError(
                f"max_streams ({self.max_streams}) must be below workers ({self.workers}) so "
                "single-image calls and health checks always find a thread"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise StylecastError("TLS needs both a certificate and a key file")
        if self.tls_client_ca and not self.tls_cert:
            raise StylecastError("a client CA (mutual TLS) needs a server certificate and key")
        if not 1 <= self.default_quality <= 100:
            raise StylecastError(
                f"default_quality must be in [1, 100] (got {self.default_quality})"
            )

    @property
    def grpc_message_limit(self) -> int:
        """gRPC's own limit on a message: ``max_message_bytes`` plus a margin, so the handlers
        see (and count) messages a little over ``max_message_bytes`` and refuse them
        themselves; gRPC refuses larger ones before any handler runs."""
        return self.max_message_bytes + MESSAGE_MARGIN_BYTES

    @property
    def memory_bound(self) -> int:
        """About the most memory inference takes with these limits (bytes): see the module
        doc; the standard network's bytes per pixel, so a bound for the lite one too. A
        batch of ``max_batch`` images holds ``max_batch`` times one image's memory."""
        images = self.max_concurrent_inferences * self.max_batch
        inference = images * BYTES_PER_PIXEL * self.max_pixels
        return IDLE_BYTES + inference
