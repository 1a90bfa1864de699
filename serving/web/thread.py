"""A camera page server on its own event loop in a daemon thread, for tests, benchmarks and
programs that embed it (`stylecast web` itself runs in the foreground: serving.web.serve)."""

from __future__ import annotations

import asyncio
import threading

from ..repository import ModelRepository
from .app import WebServer
from .config import WebConfig


class WebServerThread:
    """A WebServer on its own event loop in a daemon thread (tests, benchmarks, embedding):
    ``start()`` returns once it serves; ``stop()`` ends it."""

    def __init__(self, config: WebConfig, repository: ModelRepository | None = None) -> None:
        self._config = config
        self._repository = repository
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="web-server")
        self.server: WebServer | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.server = WebServer(self._config, self._repository)
            self._loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> WebServer:
        """Start serving; re-raises what stopped the server from starting."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        assert self.server is not None
        return self.server

    def stop(self) -> None:
        """Close the connections and the port, and end the thread."""
        if self.server is None or not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
