"""The server's settings (``ServerConfig``): one frozen dataclass with safe defaults, checked
when it is made. `stylecast serve --help` lists the flags; `--print-config` shows the values."""

from __future__ import annotations

from dataclasses import dataclass, field

from stylecast.errors import StylecastError

from .imaging import DEFAULT_QUALITY
from .runtime import RuntimeOptions


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
    max_message_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 3840 * 2160  # per input image (4K UHD)
    stream_max_pending: int = 4  # cap on a stream's max_pending
    default_quality: int = DEFAULT_QUALITY
    reload_interval_s: float = 5.0  # 0: reload only on ReloadModels / SIGHUP
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
        if self.max_queue < 0 or self.reload_interval_s < 0 or self.grace_s < 0:
            raise StylecastError("max_queue, reload_interval_s and grace_s must be >= 0")
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
