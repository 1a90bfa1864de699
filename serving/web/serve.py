"""Run the camera page server in the foreground (`stylecast web`) until SIGTERM or SIGINT;
SIGHUP rescans the models. Must run in the main thread (it installs signal handlers)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from .app import WebServer
from .config import WebConfig

log = logging.getLogger(__name__)


async def _serve(config: WebConfig, on_ready: Callable[[WebServer], None] | None) -> None:
    server = await WebServer(config).start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: loop.run_in_executor(None, server.watcher.reload)
    )
    try:
        if on_ready is not None:
            on_ready(server)
        await stop.wait()
        log.info("shutting down: closing camera page connections")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await server.stop()


def serve_web(config: WebConfig, on_ready: Callable[[WebServer], None] | None = None) -> None:
    """Serve the page until SIGTERM or SIGINT; ``on_ready(server)`` once it serves."""
    asyncio.run(_serve(config, on_ready))
    log.info("camera page server stopped")
