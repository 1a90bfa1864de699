"""The gRPC server process (`stylecast serve`): ``StylecastServer`` puts the Stylecast servicer,
standard health and reflection on one port (optionally with TLS and bearer tokens), runs the
model watcher and the Prometheus endpoint, and stops gracefully; ``serve()`` runs one until
SIGTERM or SIGINT and reloads the models on SIGHUP.

Shutdown (``shutdown``), as Kubernetes and load balancers expect: first a drain of
``drain_s`` seconds, in which every health service says NOT_SERVING while the port stays open
(probes see it; calls are still served unless ``drain_refuse_calls``); then the port closes
and in-flight calls get ``grace_s`` seconds to finish. A second signal ends it at once.

Its parts: settings in ``config``, the handlers and their status codes in ``servicer``, one
image's work in ``pipeline``, message conversion in ``codec``, health names in ``health``.
"""

from __future__ import annotations

import logging
import signal
import ssl
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
    """A configured server: ``start()``, then ``port``/``address``; ``shutdown()`` (drain,
    then grace) or ``stop(grace)`` to end."""

    def __init__(self, config: ServerConfig, repository: ModelRepository | None = None) -> None:
        if config.tls_cert:  # before loading any model: a bad pair is found at once
            check_tls_files(config.tls_cert, config.tls_key or "", config.tls_client_ca)
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
        """Keep health statuses and model metrics in step with the repository. (Failures are
        logged by the repository, once per change on disk.)"""
        for event, names in (
            ("loaded", report.loaded),
            ("removed", report.removed),
            ("failed", report.failed),
        ):
            if names:
                self.metrics.reloads.labels(event).inc(len(names))
        for name in report.failed:
            self.metrics.load_failures.labels(name).inc()
        if report.scan_error:
            self.metrics.rescan_errors.inc()
        served = {model.name: model for model in self.repository.models()}
        for name in report.loaded:  # engine build time, cache hits, fp16 fallbacks
            if name in served:
                self.metrics.record_load(name, served[name].load)
        loaded = set(served)
        errors = set(self.repository.errors)
        self.metrics.models_loaded.set(len(loaded))
        self.metrics.models_failed.set(len(errors))
        self.health.update(loaded, failed=errors - loaded)

    def _first_scan(self) -> ReloadReport:
        """What the repository's first scan (when it was made) loaded and failed to load."""
        return ReloadReport(
            loaded=[model.name for model in self.repository.models()],
            failed=dict(self.repository.errors),
        )

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
                ("grpc.max_receive_message_length", config.grpc_message_limit),
                ("grpc.max_send_message_length", config.grpc_message_limit),
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
        self._on_reload(self._first_scan())
        server.start()
        self._grpc = server
        self.watcher.start()
        if config.metrics_port is not None:
            self._metrics_http = self.metrics.start_http(config.host, config.metrics_port)
            if isinstance(self._metrics_http, tuple):
                self.metrics_port = self._metrics_http[0].server_port
            else:
                self.metrics_port = config.metrics_port
        log.info(
            "serving %d model(s) on %s%s%s",
            len(self.repository.models()),
            self.address,
            " with TLS" if credentials else "",
            " with token auth" if interceptors else "",
        )
        log.info(
            "limits: %d inference(s) at once, each a batch of up to %d image(s) of up to %d "
            "pixels: peak memory about %.1f GB (standard network)",
            config.max_concurrent_inferences,
            config.max_batch,
            config.max_pixels,
            config.memory_bound / 1e9,
        )
        return self

    def drain(self) -> None:
        """Begin shutdown without closing the port: every health service NOT_SERVING at once,
        model rescans stopped, new calls refused (UNAVAILABLE) if ``drain_refuse_calls``."""
        self.health.shutdown()
        self.watcher.stop()
        if self.config.drain_refuse_calls:
            self.servicer.refuse_calls()

    def shutdown(self, force: threading.Event | None = None) -> None:
        """Drain for ``drain_s`` seconds, then ``stop(grace_s)``; when ``force`` is set (a
        second signal) the drain ends and in-flight calls are ended at once."""
        force = force or threading.Event()
        if self.config.drain_s > 0 and self._grpc is not None:
            self.drain()
            log.info(
                "draining for %.0f s: health says NOT_SERVING, %s still on %s",
                self.config.drain_s,
                "health checks" if self.config.drain_refuse_calls else "calls and health checks",
                self.address,
            )
            force.wait(self.config.drain_s)
        self.stop(0 if force.is_set() else self.config.grace_s)

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
    """Run a server until SIGTERM or SIGINT, then shut down gracefully (drain, then grace;
    a second signal ends it at once). SIGHUP reloads models. ``on_ready(server)`` is called
    once it serves.

    Must run in the main thread (it installs signal handlers)."""
    server = StylecastServer(config).start()
    stop, force = threading.Event(), threading.Event()

    def on_stop(signum: int, _frame: Any) -> None:
        if stop.is_set():
            log.warning("second %s: ending in-flight calls now", signal.Signals(signum).name)
            force.set()
            threading.Thread(target=server.force_stop, daemon=True).start()
            return
        log.info(
            "%s: shutting down (drain %.0f s, then in-flight calls get %.0f s)",
            signal.Signals(signum).name,
            config.drain_s,
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
        server.shutdown(force)
    finally:
        server.stop(0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("server stopped")


def check_tls_files(cert: str, key: str, client_ca: str | None = None) -> None:
    """Refuse, in the user's terms, TLS files gRPC would only call "Failed to bind": a key
    that does not match its certificate, unreadable or non-PEM files, an encrypted key."""

    def no_password() -> bytes:
        raise StylecastError(f"TLS key {key} is encrypted; gRPC needs an unencrypted key")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=no_password)
        if client_ca:
            context.load_verify_locations(cafile=client_ca)
    except OSError as exc:  # ssl.SSLError is an OSError
        if isinstance(exc, ssl.SSLError) and exc.reason == "KEY_VALUES_MISMATCH":
            raise StylecastError(f"TLS key does not match certificate ({key}, {cert})") from None
        if not isinstance(exc, ssl.SSLError):
            raise StylecastError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
        files = f"{cert}, {key}" + (f", {client_ca}" if client_ca else "")
        raise StylecastError(f"cannot use TLS files ({files}): {exc.reason or exc}") from None
