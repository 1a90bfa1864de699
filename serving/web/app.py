"""The camera page server (`stylecast web`), on aiohttp: the page and its assets, a small
JSON API and the frame WebSocket, over the shared repository, pipeline, limits, token check
and metrics of the gRPC server. Torch-free, like the rest of serving/.

Routes: ``/`` the page; ``/static/*`` its script and style sheet (all from the package, no
CDN); ``/api/info`` what the page must know before it starts (is a token needed?);
``/api/models`` the loaded models and their styles (bearer token when the server has one);
``/api/health``; ``/api/stream`` the WebSocket (serving.web.protocol).

Limits as on gRPC: at most ``max_streams`` page connections (more get "server busy" and are
closed), frames wait for the same inference slots up to ``max_queue_wait_s``, frames over
``max_message_bytes`` are refused with an error (over that plus a 1 MiB margin, aiohttp
closes the connection with code 1009), images over ``max_pixels`` are refused by the
pipeline. A page that goes away stops its running inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from stylecast import __version__
from stylecast.errors import StylecastError

from ..auth import AUTH_HEADER, TokenAuthInterceptor
from ..codec import BadRequest
from ..inference import ServerInference
from ..metrics import ServerMetrics
from ..repository import ModelRepository, ReloadReport
from ..server import WILDCARD_HOSTS, check_tls_files
from ..watcher import ModelWatcher
from .config import WebConfig
from .protocol import MAX_IN_FLIGHT, error_message, parse_hello
from .session import METHOD, PageStream

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
UNAUTHENTICATED = "missing or invalid token: enter the server's access token"
# The page loads nothing from elsewhere; camera frames and snapshots are blob: URLs.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _server_ssl_context(config: WebConfig) -> ssl.SSLContext | None:
    """The TLS context of ``config`` (None: plain HTTP), the same files as gRPC's TLS."""
    server = config.server
    if not server.tls_cert:
        return None
    check_tls_files(server.tls_cert, server.tls_key or "", server.tls_client_ca)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server.tls_cert, server.tls_key)
    if server.tls_client_ca:
        context.load_verify_locations(cafile=server.tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@web.middleware
async def _security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    if not isinstance(response, web.WebSocketResponse):
        response.headers.update(SECURITY_HEADERS)
    return response


def _json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class WebServer:
    """The page server on the running event loop: ``await start()``, then ``port``/``url``;
    ``await stop()`` closes the page connections and the port."""

    def __init__(self, config: WebConfig, repository: ModelRepository | None = None) -> None:
        self.config = config
        server = config.server
        self.ssl_context = _server_ssl_context(config)  # before loading models: fail fast
        self.repository = repository or ModelRepository(server.models_dir, server.runtime)
        self.metrics = ServerMetrics()
        self.inference = ServerInference(server, self.metrics)
        self.watcher = ModelWatcher(self.repository, server.reload_interval_s, self._on_reload)
        self._auth = TokenAuthInterceptor(server.auth_tokens) if server.auth_tokens else None
        self._open = 0  # page connections holding a stream slot (only touched on the loop)
        self._sockets: set[web.WebSocketResponse] = set()
        self._executor = ThreadPoolExecutor(server.max_streams, thread_name_prefix="web-stream")
        self._runner: web.AppRunner | None = None
        self._metrics_http: Any = None
        self.port: int | None = None
        self.metrics_port: int | None = None

    @property
    def url(self) -> str:
        """The page's address (loopback when bound to every interface)."""
        host = self.config.server.host
        host = "127.0.0.1" if host in WILDCARD_HOSTS else host
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{host}:{self.port}/"

    def application(self) -> web.Application:
        """The aiohttp application: page, assets, API and WebSocket."""
        app = web.Application(middlewares=[_security_headers])
        app.router.add_get("/", self._page)
        app.router.add_static("/static", STATIC_DIR, append_version=False)
        app.router.add_get("/api/info", self._info)
        app.router.add_get("/api/health", self._health)
        app.router.add_get("/api/models", self._models)
        app.router.add_get("/api/stream", self._stream)
        return app

    # -- lifecycle ------------------------------------------------------------------------

    def _on_reload(self, report: ReloadReport) -> None:
        self.metrics.models_loaded.set(len(self.repository.models()))
        self.metrics.models_failed.set(len(self.repository.errors))
        for name in report.failed:
            self.metrics.load_failures.labels(name).inc()

    async def start(self) -> WebServer:
        """Bind and serve; start the model watcher and the metrics endpoint."""
        server = self.config.server
        self._on_reload(ReloadReport(failed=dict(self.repository.errors)))
        runner = web.AppRunner(self.application(), access_log=None)
        await runner.setup()
        site = web.TCPSite(
            runner, server.host, self.config.port, ssl_context=self.ssl_context, reuse_port=False
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise StylecastError(
                f"cannot listen on {server.host}:{self.config.port}: {exc.strerror}"
            ) from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.watcher.start()
        if server.metrics_port is not None:
            self._metrics_http, self.metrics_port = self.metrics.serve_http(
                server.host, server.metrics_port
            )
        log.info(
            "camera page on %s (%d model(s)%s)",
            self.url,
            len(self.repository.models()),
            ", token required" if self._auth else "",
        )
        return self

    async def stop(self) -> None:
        """Close every page connection (going away), then the port."""
        for socket in list(self._sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
        self.watcher.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._metrics_http is not None:
            ServerMetrics.stop_http(self._metrics_http)
            self._metrics_http = None

    # -- HTTP -------------------------------------------------------------------------------

    def _authorised(self, authorization: str) -> bool:
        """Whether an ``Authorization`` value carries a valid token (the gRPC check itself)."""
        if self._auth is None:
            return True
        return self._auth.authorised([(AUTH_HEADER, authorization)])

    async def _page(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def _info(self, _request: web.Request) -> web.Response:
        server = self.config.server
        return web.json_response(
            {
                "version": __version__,
                "auth": self._auth is not None,
                "max_in_flight": MAX_IN_FLIGHT,
                "default_max_side": self.config.default_max_side,
                "max_pixels": server.max_pixels,
                "max_message_bytes": server.max_message_bytes,
            }
        )

    async def _health(self, _request: web.Request) -> web.Response:
        models = len(self.repository.models())
        return web.json_response({"status": "SERVING" if models else "NOT_SERVING"})

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorised(request.headers.get("Authorization", "")):
            self.metrics.requests.labels("WebModels", "", "UNAUTHENTICATED").inc()
            return _json_error(401, "UNAUTHENTICATED", UNAUTHENTICATED)
        models = [
            {
                "name": model.name,
                "version": model.version,
                "styles": list(model.style_names),
                "description": model.card.description,
                "testing_only": model.card.testing_only,
            }
            for model in sorted(self.repository.models(), key=lambda m: m.name)
        ]
        self.metrics.requests.labels("WebModels", "", "OK").inc()
        return web.json_response({"models": models})

    # -- WebSocket ----------------------------------------------------------------------------

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse(
            max_msg_size=self.config.server.grpc_message_limit, heartbeat=30.0
        )
        await socket.prepare(request)
        self._sockets.add(socket)
        self.metrics.in_flight.labels(METHOD).inc()
        start, code, model = time.perf_counter(), "OK", ""
        try:
            code, model = await self._converse(socket)
        finally:
            self._sockets.discard(socket)
            self.metrics.in_flight.labels(METHOD).dec()
            self.metrics.requests.labels(METHOD, model, code).inc()
            self.metrics.latency.labels(METHOD, model).observe(time.perf_counter() - start)
            await socket.close()
        return socket

    async def _refuse(self, socket: web.WebSocketResponse, code: str, message: str) -> str:
        """Send a fatal error and close; returns ``code``."""
        with contextlib.suppress(ConnectionError):
            await socket.send_str(error_message(code, message, fatal=True))
        await socket.close(code=WSCloseCode.POLICY_VIOLATION, message=code.encode())
        return code

    async def _hello(self, socket: web.WebSocketResponse) -> str:
        """The hello's token; BadRequest when the first message is not a hello in time."""
        try:
            message = await socket.receive(timeout=self.config.hello_timeout_s)
        except TimeoutError:
            raise BadRequest("no hello within the time allowed") from None
        if message.type != WSMsgType.TEXT:
            raise BadRequest('the first message must be a hello: {"type": "hello", ...}')
        return parse_hello(message.data)

    async def _converse(self, socket: web.WebSocketResponse) -> tuple[str, str]:
        """One connection: hello, token, stream slot, then frames until the page leaves;
        returns the status name and the last model (for the metrics)."""
        server = self.config.server
        try:
            token = await self._hello(socket)
        except BadRequest as exc:
            return await self._refuse(socket, "INVALID_ARGUMENT", str(exc)), ""
        if not self._authorised(f"Bearer {token}"):
            return await self._refuse(socket, "UNAUTHENTICATED", UNAUTHENTICATED), ""
        if self._open >= server.max_streams:
            message = f"server busy: {server.max_streams} camera pages connected; retry later"
            return await self._refuse(socket, "RESOURCE_EXHAUSTED", message), ""
        self._open += 1
        self.metrics.web_connections.inc()
        stream = PageStream(self.repository, self.inference, server, self.metrics)
        try:
            await socket.send_str(json.dumps({"type": "hello", "max_in_flight": MAX_IN_FLIGHT}))
            await self._frames(socket, stream)
        finally:
            self._open -= 1
            self.metrics.web_connections.dec()
        return "OK", stream.model

    async def _frames(self, socket: web.WebSocketResponse, stream: PageStream) -> None:
        """Read frames into ``stream`` while its worker thread answers them."""
        loop = asyncio.get_running_loop()

        def send(reply: bytes | str) -> None:  # on the worker thread
            sending = (
                socket.send_bytes(reply) if isinstance(reply, bytes) else socket.send_str(reply)
            )
            asyncio.run_coroutine_threadsafe(sending, loop).result()

        worker = loop.run_in_executor(self._executor, stream.run, send)
        try:
            async for message in socket:
                if message.type == WSMsgType.BINARY:
                    error = stream.put(message.data)
                elif message.type == WSMsgType.TEXT:
                    error = error_message(
                        "INVALID_ARGUMENT", "after the hello, send frames as binary messages"
                    )
                else:
                    continue
                if error is not None:
                    await socket.send_str(error)
        finally:
            stream.close(vanished=True)  # the page left (or we stop): stop its inference
            try:
                await worker
            except Exception as exc:  # the page went away while a reply was being sent
                log.debug("page connection ended while sending: %s", exc)
