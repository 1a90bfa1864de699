"""The gRPC server process (`stylecast serve`): ``StylecastServer`` puts the Stylecast servicer,
standard health and reflection on one port (optionally with TLS and bearer tokens), runs the
model watcher and the Prometheus endpoint, and stops gracefully; ``serve()`` runs one until
SIGTERM or SIGINT and reloads the models on SIGHUP.

Its parts: settings in ``config``, the handlers and their status codes in ``servicer``, one
image's work in ``pipeline``, message conversion in ``codec``, health names in ``health``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from stylecast.errors import StylecastError
from stylecast.v1 import stylise_pb2_grpc as pb_grpc

from .auth import TokenAuthInterceptor
from .config import ServerConfig
from .health import HEALTH_SERVICE_NAME, SERVICE_NAME, ModelHealth
from .metrics import ServerMetrics
from .repository import ModelRepository, ReloadReport
from .servicer import StylecastServicer
from .watcher import ModelWatcher

log = logging.getLogger(__name__)

WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


class StylecastServer:
    """A configured server: ``start()``, then ``port``/``address``; ``stop(grace)`` to end."""

    def __init__(self, config: ServerConfig, repository: ModelRepository | None = None) -> None:
        self.config = config
        self.repository = repository or ModelRepository(config.models_dir, config.runtime)
        self.metrics = ServerMetrics()
        self.health = ModelHealth()
        self.watcher = ModelWatcher(self.repository, config.reload_interval_s, self._on_reload)
        self.servicer = StylecastServicer(self.repository, self.watcher, config, self.metrics)
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._grpc: grpc.Server | None = None
        self._metrics_http: Any = None

    @property
    def address(self) -> str:
        """``host:port`` for clients (loopback when bound to every interface)."""
        host = "127.0.0.1" if self.config.host in WILDCARD_HOSTS else self.config.host
        return f"{host}:{self.port}"

    def _credentials(self) -> grpc.ServerCredentials | None:
        config = self.config
        if not config.tls_cert:
            return None
        try:
            key = Path(config.tls_key or "").read_bytes()
            cert = Path(config.tls_cert).read_bytes()
            ca = Path(config.tls_client_ca).read_bytes() if config.tls_client_ca else None
        except OSError as exc:
            raise StylecastError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )

    def _on_auth_reject(self, method: str) -> None:
        self.metrics.requests.labels(method.rsplit("/", 1)[-1], "", "UNAUTHENTICATED").inc()

    def _on_reload(self, report: ReloadReport) -> None:
        """Keep health statuses and model metrics in step with the repository."""
        for event, names in (
            ("loaded", report.loaded),
            ("removed", report.removed),
            ("failed", report.failed),
        ):
            if names:
                self.metrics.reloads.labels(event).inc(len(names))
        loaded = {model.name for model in self.repository.models()}
        self.metrics.models_loaded.set(len(loaded))
        self.health.update(loaded)

    def start(self) -> StylecastServer:
        """Bind, start serving, start the model watcher and the metrics endpoint."""
        config = self.config
        interceptors = (
            [TokenAuthInterceptor(config.auth_tokens, self._on_auth_reject)]
            if config.auth_tokens
            else []
        )
        server = grpc.server(
            ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="grpc-handler"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", config.max_message_bytes),
                ("grpc.max_send_message_length", config.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=config.workers,
        )
        pb_grpc.add_StylecastServicer_to_server(self.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        bind = f"{config.host}:{config.port}"
        credentials = self._credentials()
        try:
            if credentials is None:
                port = server.add_insecure_port(bind)
            else:
                port = server.add_secure_port(bind, credentials)
        except RuntimeError as exc:
            raise StylecastError(f"cannot listen on {bind}: {exc}") from None
        if not port:
            raise StylecastError(f"cannot listen on {bind} (address in use?)")
        self.port = port
        self._on_reload(ReloadReport())
        server.start()
        self._grpc = server
        self.watcher.start()
        if config.metrics_port is not None:
            self._metrics_http = self.metrics.start_http(config.host, config.metrics_port)
            if isinstance(self._metrics_http, tuple):
                self.metrics_port = self._metrics_http[0].server_port
            else:
                self.metrics_port = config.metrics_port
        for name, error in sorted(self.repository.errors.items()):
            log.warning("model %s: %s", name, error)
        log.info(
            "serving %d model(s) on %s%s%s",
            len(self.repository.models()),
            self.address,
            " with TLS" if credentials else "",
            " with token auth" if interceptors else "",
        )
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, give in-flight ones ``grace`` seconds, then end them all."""
        if self._grpc is None:
            return
        self.health.shutdown()
        self.watcher.stop()
        grace = self.config.grace_s if grace is None else grace
        self._grpc.stop(grace).wait()
        self._grpc = None
        if self._metrics_http is not None:
            ServerMetrics.stop_http(self._metrics_http)
            self._metrics_http = None

    def force_stop(self) -> None:
        """End every call now (a second Ctrl-C)."""
        if self._grpc is not None:
            self._grpc.stop(0)

    def __enter__(self) -> StylecastServer:
        return self.start() if self._grpc is None else self

    def __exit__(self, *_: object) -> None:
        self.stop(0)


def serve(config: ServerConfig, on_ready: Callable[[StylecastServer], None] | None = None) -> None:
    """Run a server until SIGTERM or SIGINT, then shut down gracefully. SIGHUP reloads models.
    ``on_ready(server)`` is called once it serves.

    Must run in the main thread (it installs signal handlers)."""
    server = StylecastServer(config).start()
    stop = threading.Event()

    def on_stop(signum: int, _frame: Any) -> None:
        if stop.is_set():
            log.warning("second %s: ending in-flight calls now", signal.Signals(signum).name)
            threading.Thread(target=server.force_stop, daemon=True).start()
            return
        log.info(
            "%s: shutting down (in-flight calls get %.0f s)",
            signal.Signals(signum).name,
            config.grace_s,
        )
        stop.set()

    def on_hangup(_signum: int, _frame: Any) -> None:
        threading.Thread(target=server.watcher.reload, daemon=True, name="sighup-reload").start()

    handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_hangup}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        if on_ready is not None:
            on_ready(server)
        while not stop.wait(1.0):
            pass
        server.stop(config.grace_s)
    finally:
        server.stop(0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("server stopped")
