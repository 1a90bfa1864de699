"""`stylecast web`: serve the browser camera page (stylecast.serving.web). Its limits, TLS and
token options are `stylecast serve`'s (same flags, same ServerConfig), so a page connection
is held to what a gRPC stream is."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .serving import SERVE_LIMITS, add_security_and_runtime_arguments, server_config

# The `serve` limits that apply to the page (the others keep ServerConfig's defaults).
WEB_LIMITS = ("--max-streams", "--max-concurrent", "--max-queue-wait", "--max-message-bytes",
              "--max-pixels", "--reload-interval")  # fmt: skip
WEB_LIMIT_HELP = {
    "--max-streams": "camera pages connected at once; more are told the server is busy"
}


def _cmd_web(args: argparse.Namespace) -> None:
    from ..serving.readiness import ReadyInfo, remove_ready_file, write_ready_file
    from ..serving.web.config import WebConfig
    from ..serving.web.serve import serve_web

    config = WebConfig(server=server_config(args), port=args.http_port)

    def ready(server: Any) -> None:
        if args.ready_file:
            address = server.url.split("://", 1)[1].rstrip("/")
            write_ready_file(
                args.ready_file, ReadyInfo(address, server.port, server.metrics_port, os.getpid())
            )
        metrics = f" (metrics on :{server.metrics_port}/metrics)" if server.metrics_port else ""
        print(f"stylecast web: camera page at {server.url}{metrics}", flush=True)

    if args.ready_file:
        remove_ready_file(args.ready_file)
    try:
        serve_web(config, on_ready=ready)
    finally:
        if args.ready_file:
            remove_ready_file(args.ready_file)


def register(sub: Any) -> None:
    """Add `web` to the `stylecast` parser."""
    p = sub.add_parser(
        "web",
        help="serve the browser camera page (live stylised webcam)",
        description="Serve a web page that stylises your webcam (or a dropped image or video) "
        "live, over a WebSocket, with the models folder's models. Open the printed URL in a "
        "browser. Limits, TLS and tokens work as for `stylecast serve`. SIGTERM/SIGINT stop "
        "it, SIGHUP rescans the models.",
    )
    p.add_argument("--models-dir", default="models")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", dest="http_port", type=int, default=8080, help="HTTP port (8080; 0: any free)"
    )
    p.add_argument("--metrics-port", type=int, default=0, help="Prometheus port (0: no metrics)")
    limits = p.add_argument_group("limits")
    for flag, field, kind, text in SERVE_LIMITS:
        if flag in WEB_LIMITS:
            metavar = "SECONDS" if kind is float else "N"
            help_text = WEB_LIMIT_HELP.get(flag, text)
            limits.add_argument(flag, dest=field, type=kind, metavar=metavar, help=help_text)
    add_security_and_runtime_arguments(p, peers="browsers")
    p.add_argument(
        "--ready-file",
        metavar="PATH",
        help="once serving, write the address as JSON here (as `serve`); removed on exit",
    )
    # What `serve`'s config builder reads and the page does not offer.
    unset = {field: None for flag, field, _, _ in SERVE_LIMITS if flag not in WEB_LIMITS}
    p.set_defaults(
        handler=_cmd_web,
        port=None,
        drain_refuse_calls=False,
        memory_pattern=False,
        arena_shrink_pixels=None,
        **unset,
    )
