"""Readiness of a `stylecast serve` process, for whatever starts one (the demo, tests,
benchmarks, scripts). Once it serves, `stylecast serve --ready-file PATH` writes where it
listens to PATH, atomically (a temporary file renamed into place), as JSON:

    {"address": "127.0.0.1:50051", "port": 50051, "metrics_port": 9090, "pid": 1234}

and removes the file when it stops. ``wait_for_ready_file`` is the one reader. Give each
server a fresh path (e.g. in a temporary folder)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from stylecast.errors import StylecastError

POLL_S = 0.05


@dataclass(frozen=True)
class ReadyInfo:
    """Where a ready server listens."""

    address: str  # host:port for clients (loopback when bound to every interface)
    port: int
    metrics_port: int | None = None  # None: no metrics endpoint
    pid: int = 0  # the server process

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str, where: str = "ready file") -> ReadyInfo:
        """Parse a ready file's text; StylecastError if it is not one."""
        try:
            data = json.loads(text)
            metrics_port = data.get("metrics_port")
            return cls(
                address=str(data["address"]),
                port=int(data["port"]),
                metrics_port=None if metrics_port is None else int(metrics_port),
                pid=int(data.get("pid", 0)),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise StylecastError(f"{where} is not a stylecast ready file ({exc})") from None


def write_ready_file(path: str | Path, info: ReadyInfo) -> None:
    """Write ``info`` to ``path`` atomically: a reader sees the whole file or none."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(info.to_json())
    os.replace(temporary, path)


def remove_ready_file(path: str | Path) -> None:
    """Remove a ready file (the server stopped, or a stale one from an earlier run)."""
    Path(path).unlink(missing_ok=True)


def wait_for_ready_file(
    path: str | Path, process: subprocess.Popen | None = None, timeout: float = 60.0
) -> ReadyInfo:
    """Wait until the server writes ``path`` and return what it says. Raises StylecastError
    when ``process`` (the server, if given) exits first or ``timeout`` seconds pass."""
    path = Path(path)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ReadyInfo.from_json(path.read_text(), str(path))
        except FileNotFoundError:
            pass
        if process is not None and process.poll() is not None:
            raise StylecastError(
                f"the server exited with code {process.returncode} before it was ready"
            )
        if time.monotonic() >= deadline:
            raise StylecastError(f"the server was not ready within {timeout:.0f} s (no {path})")
        time.sleep(POLL_S)
