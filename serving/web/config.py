"""The camera page server's settings (``WebConfig``): the HTTP port, and the gRPC server's own
``ServerConfig`` for everything the two share (models folder, host, limits, TLS, tokens,
metrics port, runtime), so a limit means the same on both."""

from __future__ import annotations

from dataclasses import dataclass, field

from stylecast.errors import StylecastError

from ..config import ServerConfig

DEFAULT_WEB_PORT = 8080
DEFAULT_MAX_SIDE = 640  # the page's initial "max side" choice


@dataclass(frozen=True)
class WebConfig:
    """Every setting of `stylecast web`. ``server.port`` (gRPC) is unused; ``port`` is the
    HTTP port (0: an ephemeral one). A page connection is a stream: at most
    ``server.max_streams`` are open at once, and its frames wait for the same inference
    slots (``max_concurrent_inferences``, ``max_queue_wait_s``) as gRPC calls do."""

    server: ServerConfig = field(default_factory=ServerConfig)
    port: int = DEFAULT_WEB_PORT
    hello_timeout_s: float = 10.0  # a connection that sends no hello in time is closed
    default_max_side: int = DEFAULT_MAX_SIDE

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise StylecastError(f"port must be in [0, 65535] (got {self.port})")
        if self.hello_timeout_s <= 0:
            raise StylecastError(f"hello_timeout_s must be > 0 (got {self.hello_timeout_s})")
        if self.default_max_side < 0:
            raise StylecastError(f"default_max_side must be >= 0 (got {self.default_max_side})")
