"""Subcommands of the serving side (never import torch): `serve`, `client` and `camera`
(`stylise` is in cli/stylise.py). Each parses its arguments and delegates to
stylecast.serving."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .args import add_stylise_options, positive_int, style_mix
from .gpu_args import add_gpu_arguments, runtime_fields
from .stylise import OUTPUT_FORMATS, binary_stream, refuse_terminals, unit_float

DEFAULT_SERVER = "localhost:50051"


# -- serve ----------------------------------------------------------------------------------

# (flag, ServerConfig field, type, help); unset flags keep ServerConfig's defaults.
SERVE_LIMITS = (
    ("--workers", "workers", positive_int, "gRPC handler threads (= concurrent RPC limit)"),
    ("--max-streams", "max_streams", positive_int, "open StyliseStream calls"),
    ("--max-concurrent", "max_concurrent_inferences", positive_int, "inferences (batches) at once"),
    ("--max-queue", "max_queue", int, "calls waiting for an inference slot; more are refused"),
    ("--max-queue-wait", "max_queue_wait_s", float, "seconds a call may wait for a slot"),
    ("--max-batch", "max_batch", positive_int,
     "run up to N same-shape images as one batch (1: no batching; pays on a GPU, not a CPU)"),
    ("--batch-window-ms", "batch_window_ms", float,
     "milliseconds an image waits for others to batch with (0 to 100; default 2)"),
    ("--max-message-bytes", "max_message_bytes", positive_int, "largest request or reply"),
    ("--max-pixels", "max_pixels", positive_int, "largest input image, in pixels"),
    ("--stream-max-pending", "stream_max_pending", positive_int, "cap on a stream's buffer"),
    ("--reload-interval", "reload_interval_s", float, "seconds between model rescans (0: off)"),
    ("--drain-seconds", "drain_s", float,
     "on SIGTERM: seconds health says NOT_SERVING with the port still open (0: no drain)"),
    ("--grace", "grace_s", float, "seconds in-flight calls get on shutdown, after the drain"),
)  # fmt: skip


def add_security_and_runtime_arguments(
    parser: argparse.ArgumentParser, peers: str = "clients"
) -> Any:
    """TLS, token and onnxruntime flags shared by `serve` and `web`; returns the runtime group."""
    security = parser.add_argument_group("security")
    security.add_argument("--tls-cert", help="PEM certificate chain (enables TLS)")
    security.add_argument("--tls-key", help="PEM private key of --tls-cert")
    security.add_argument("--tls-client-ca", help=f"PEM CA; {peers} must present a cert it signed")
    security.add_argument(
        "--auth-token-file", help="require 'authorization: Bearer <token>'; one token per line"
    )
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument(
        "--providers", help="onnxruntime providers, comma-separated (default: best)"
    )
    runtime.add_argument("--intra-op-threads", type=int, default=0, help="0: onnxruntime default")
    return runtime


def server_config(args: argparse.Namespace) -> Any:
    from ..serving.auth import read_tokens
    from ..serving.config import ServerConfig
    from ..serving.runtime import RuntimeOptions

    settings: dict[str, Any] = {
        field: getattr(args, field)
        for _, field, _, _ in SERVE_LIMITS
        if getattr(args, field) is not None
    }
    if args.port is not None:
        settings["port"] = args.port
    memory: dict[str, Any] = {"memory_pattern": args.memory_pattern}
    if args.arena_shrink_pixels is not None:
        memory["arena_shrink_pixels"] = args.arena_shrink_pixels
    runtime = RuntimeOptions(
        providers=tuple(args.providers.split(",")) if args.providers else None,
        intra_op_threads=args.intra_op_threads,
        **memory,
        **runtime_fields(args),
    )
    return ServerConfig(
        models_dir=args.models_dir,
        host=args.host,
        metrics_port=args.metrics_port or None,
        drain_refuse_calls=args.drain_refuse_calls,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        auth_tokens=read_tokens(args.auth_token_file) if args.auth_token_file else (),
        runtime=runtime,
        **settings,
    )


def _cmd_serve(args: argparse.Namespace) -> None:
    import dataclasses
    import os

    config = server_config(args)
    if args.print_config:
        settings = dataclasses.asdict(config)
        settings["auth_tokens"] = f"<{len(config.auth_tokens)} token(s)>"
        settings["derived"] = {
            "grpc_message_limit": config.grpc_message_limit,
            "memory_bound_bytes": config.memory_bound,
        }
        print(json.dumps(settings, indent=2, default=str))
        return
    from ..serving.readiness import ReadyInfo, remove_ready_file, write_ready_file
    from ..serving.server import serve

    def ready(server: Any) -> None:
        info = ReadyInfo(server.address, server.port, server.metrics_port, os.getpid())
        if args.ready_file:
            write_ready_file(args.ready_file, info)
        metrics = f", metrics on :{info.metrics_port}/metrics" if info.metrics_port else ""
        print(f"stylecast serve: listening on {info.address}{metrics}", flush=True)

    if args.ready_file:
        remove_ready_file(args.ready_file)  # a stale one would tell a reader we are up
    try:
        serve(config, on_ready=ready)
    finally:
        if args.ready_file:
            remove_ready_file(args.ready_file)


def _add_serve(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the models folder over gRPC",
        description="Serve the models folder over gRPC (stylecast.v1), with health, reflection, "
        "Prometheus metrics and hot reload. Unset limits keep their defaults; see them with "
        "--print-config. SIGTERM/SIGINT shut down gracefully, SIGHUP rescans the models.",
    )
    p.add_argument("--models-dir", default="models")
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="gRPC port (default 50051; 0: any free port)")
    p.add_argument("--metrics-port", type=int, default=0, help="Prometheus port (0: no metrics)")
    p.add_argument(
        "--drain-refuse-calls",
        action="store_true",
        help="during the drain, answer new calls UNAVAILABLE (health checks are still answered)",
    )
    add_gpu_arguments(p)
    limits = p.add_argument_group("limits")
    for flag, field, kind, text in SERVE_LIMITS:
        metavar = "MS" if flag.endswith("-ms") else "SECONDS" if kind is float else "N"
        limits.add_argument(flag, dest=field, type=kind, metavar=metavar, help=text)
    runtime = add_security_and_runtime_arguments(p)
    runtime.add_argument(
        "--arena-shrink-pixels",
        type=int,
        metavar="N",
        help="give the CPU arena back after inferences over N pixels (default 307200, "
        "640×480; 0: after every one; --max-pixels or more: never)",
    )
    runtime.add_argument(
        "--memory-pattern",
        action="store_true",
        help="onnxruntime's memory-pattern planning (faster on no measured case; keeps about "
        "twice the memory with varying image sizes)",
    )
    p.add_argument(
        "--ready-file",
        metavar="PATH",
        help="once serving, write the address (and metrics port) here as JSON; removed on exit",
    )
    p.add_argument("--print-config", action="store_true", help="print the settings and exit")
    p.set_defaults(handler=_cmd_serve)


# -- client and camera ---------------------------------------------------------------------


def _add_connection_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("connection")
    group.add_argument("--server", default=DEFAULT_SERVER, help=f"HOST:PORT ({DEFAULT_SERVER})")
    group.add_argument("--tls", action="store_true", help="use TLS with the system's CAs")
    group.add_argument("--tls-ca", help="use TLS, trusting this PEM CA or certificate")
    group.add_argument("--token-file", help="bearer token file (default: $STYLECAST_TOKEN)")
    group.add_argument("--timeout", type=float, default=60.0, help="seconds per call (60)")


def _client(args: argparse.Namespace) -> Any:
    from ..errors import StylecastError
    from ..serving.auth import client_token
    from ..serving.client import StylecastClient

    root = None
    if args.tls_ca:
        try:
            root = Path(args.tls_ca).read_bytes()
        except OSError as exc:
            raise StylecastError(f"cannot read {args.tls_ca}: {exc.strerror}") from None
    return StylecastClient(
        args.server,
        token=client_token(args.token_file),
        tls=args.tls,
        root_certificates=root,
        timeout=args.timeout,
    )


def _request_options(args: argparse.Namespace, encoding: str = "jpeg", quality: int = 0) -> Any:
    from ..serving.codec import request_options

    return request_options(
        args.strength, args.preserve_color, args.max_side, encoding, quality,
        style=args.style, mix=style_mix(args),
    )  # fmt: skip


def _cmd_client_models(args: argparse.Namespace) -> None:
    from google.protobuf.json_format import MessageToDict

    with _client(args) as client:
        cards = client.models()
    if args.json:
        print(json.dumps([MessageToDict(card) for card in cards], indent=2))
        return
    from .models import aligned_table, styles_cell

    rows = [("NAME", "VERSION", "PRECISION", "PROVIDER", "TESTING", "STYLES", "DESCRIPTION")]
    for card in cards:
        precision = next((v.precision for v in card.versions if v.version == card.version), "?")
        styles = styles_cell([style.name for style in card.styles])
        rows.append((card.name, str(card.version), precision, card.provider,
                     "yes" if card.testing_only else "no", styles, card.description))  # fmt: skip
    print(aligned_table(rows))


def _cmd_client_stylise(args: argparse.Namespace) -> None:
    import sys

    from ..serving.client import DEFAULT_MAX_MESSAGE_BYTES
    from ..serving.image_files import STDIO, display_name, read_bounded, write_atomically
    from ..serving.imaging import DEFAULT_ENCODING, sniff_encoding
    from ..serving.stylise import output_encoding

    reads_stdin, writes_stdout = args.input == STDIO, args.output == STDIO
    encoding = output_encoding(args.output, args.format)
    refuse_terminals(reads_stdin, writes_stdout)
    stdin = binary_stream(sys.stdin) if reads_stdin else None
    data = read_bounded(args.input, DEFAULT_MAX_MESSAGE_BYTES, stdin)
    encoding = encoding or sniff_encoding(data) or DEFAULT_ENCODING
    with _client(args) as client:
        reply = client.stylise(data, args.model, _request_options(args, encoding, args.quality))
    write_atomically(
        args.output, reply.image.data, binary_stream(sys.stdout) if writes_stdout else None
    )
    t = reply.timings
    print(
        f"{display_name(args.output, writing=True)}: {reply.image.width}x{reply.image.height}, "
        f"{reply.model} v{reply.model_version}; server {t.total_ms:.0f} ms (decode "
        f"{t.decode_ms:.0f}, queue {t.queue_ms:.0f}, inference {t.inference_ms:.0f}, encode "
        f"{t.encode_ms:.0f})",
        file=sys.stderr if writes_stdout else sys.stdout,
    )


def _cmd_client_health(args: argparse.Namespace) -> None:
    from ..errors import ServerFailed
    from ..serving.client import ServerError
    from ..serving.health import model_health_name

    service = model_health_name(args.model) if args.model else ""
    with _client(args) as client:
        try:
            status = client.health(service)
        except ServerError as exc:
            if exc.code.name != "NOT_FOUND":
                raise
            status = "SERVICE_UNKNOWN"
    print(f"{service or 'server'}: {status}")
    if status != "SERVING":
        raise ServerFailed(f"{service or 'server'} is {status}")


def _add_client(sub: Any) -> None:
    p = sub.add_parser("client", help="call a Stylecast gRPC server")
    client_sub = p.add_subparsers(dest="client_command", required=True, metavar="ACTION")
    models = client_sub.add_parser("models", help="list the server's models")
    models.add_argument("--json", action="store_true", help="full model cards as JSON")
    models.set_defaults(handler=_cmd_client_models)
    stylise = client_sub.add_parser("stylise", aliases=["stylize"], help="stylise one image")
    stylise.add_argument("input", metavar="IN", help="JPEG, PNG or WebP file, or - (stdin)")
    stylise.add_argument(
        "output", metavar="OUT", help="output file (.jpg, .png or .webp), or - (stdout)"
    )
    stylise.add_argument("--model", required=True)
    stylise.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        help="reply format (default: OUT's suffix; for - or no suffix: the input's, else JPEG)",
    )
    stylise.add_argument("--quality", type=int, default=0, help="JPEG/WebP quality (server: 90)")
    add_stylise_options(stylise)
    stylise.set_defaults(handler=_cmd_client_stylise)
    health = client_sub.add_parser("health", help="standard health check (exit 4 if not SERVING)")
    health.add_argument("--model", help="check one model instead of the server")
    health.set_defaults(handler=_cmd_client_health)
    for action in (models, stylise, health):
        _add_connection_options(action)


def _cmd_camera(args: argparse.Namespace) -> None:
    from ..errors import StylecastError

    source = {"camera": args.camera, "video": args.video, "out": args.out,
              "show": False if args.no_show else None, "max_frames": args.max_frames,
              "overlay": not args.no_overlay}  # fmt: skip
    if args.local:
        from ..serving.camera import run_local_camera
        from ..serving.imaging import StyliseOptions
        from ..serving.runtime import RuntimeOptions
        from ..serving.stylise import load_model

        # Frames share one size: the arena is never given back between them.
        runtime = RuntimeOptions(warmup=False, arena_shrink_pixels=args.max_pixels + 1)
        model = load_model(args.models_dir, args.model, runtime)
        options = StyliseOptions(args.strength, args.preserve_color, args.max_side)
        stats = run_local_camera(
            model, options=options, smooth=args.smooth, max_pixels=args.max_pixels, **source
        )
    else:
        if args.smooth:
            raise StylecastError("--smooth needs --local (smoothing runs in this process)")
        from ..serving.camera import run_camera

        with _client(args) as client:
            stats = run_camera(client, args.model, options=_request_options(args), **source)
    print(stats.summary())


def _add_camera(sub: Any) -> None:
    p = sub.add_parser(
        "camera",
        help="stylise a camera or video live, through a server or --local",
        description="Read frames with OpenCV, stylise them through a server's StyliseStream "
        "or, with --local, in this process (no server), and show the stylised video with its "
        "frame rate (q or Esc quits), or write it to --out (always when there is no screen). "
        "Ctrl-C stops a live camera and keeps its recording.",
    )
    p.add_argument("--model", required=True)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, default=0, help="camera index (default 0)")
    source.add_argument("--video", help="a video file instead of a camera")
    p.add_argument("--out", help="write the stylised video here (.mp4, .m4v, .mov, .avi, .mkv)")
    p.add_argument("--no-show", action="store_true", help="do not open a window")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: no limit)")
    p.add_argument("--no-overlay", action="store_true", help="no fps/latency text on the video")
    add_stylise_options(p)
    local = p.add_argument_group("local (no server)")
    local.add_argument(
        "--local", action="store_true", help="stylise in this process with onnxruntime"
    )
    local.add_argument("--models-dir", default="models", help="with --local (default models)")
    local.add_argument(
        "--smooth", type=unit_float, default=0.0, metavar="0..1",
        help="with --local: temporal smoothing, as in `stylecast stylise` (0: off)",
    )  # fmt: skip
    local.add_argument(
        "--max-pixels", type=positive_int, default=4096 * 4096,
        help="with --local: largest frame, in pixels",
    )  # fmt: skip
    _add_connection_options(p)
    p.set_defaults(handler=_cmd_camera)


def register(sub: Any) -> None:
    """Add the serving-side subcommands to the `stylecast` parser."""
    for add in (_add_serve, _add_client, _add_camera):
        add(sub)
