"""Image bytes from and to the paths a command line names, where ``-`` means stdin (reading) or
stdout (writing), as Unix tools do. Reads are bounded: at most ``limit + 1`` bytes are read,
so a huge file or an endless pipe is refused without being held in memory. Writes go to a
temporary file beside the target that is renamed into place, so a failed write never leaves
a truncated image. Every failure is one StylecastError naming the path."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

from stylecast.errors import StylecastError

STDIO = "-"


class InputError(StylecastError):
    """An input could not be read, or is over the byte limit."""


class OutputError(StylecastError):
    """An output could not be written."""


def display_name(path: str, writing: bool = False) -> str:
    """How messages name ``path``: "stdin" or "stdout" for ``-``, else the path."""
    if path == STDIO:
        return "stdout" if writing else "stdin"
    return path


def read_bounded(path: str, limit: int, stdin: BinaryIO | None = None) -> bytes:
    """The bytes of ``path`` (``-``: ``stdin``), refused when there are more than ``limit``."""
    name = display_name(path)
    try:
        if path == STDIO:
            data = _stdio(stdin, name).read(limit + 1)
        else:
            with open(path, "rb") as file:
                data = file.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > limit:
        raise InputError(f"{name} has more than {limit} bytes, the limit for one image")
    return data


def write_atomically(path: str, data: bytes, stdout: BinaryIO | None = None) -> None:
    """Write ``data`` to ``path`` (``-``: ``stdout``), creating missing parent folders."""
    if path == STDIO:
        stream = _stdio(stdout, "stdout")
        try:
            stream.write(data)
            stream.flush()
        except OSError as exc:
            raise OutputError(f"cannot write to stdout: {exc.strerror or exc}") from None
        return
    target = Path(path)
    not_a_folder = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if not_a_folder is not None:
        raise OutputError(f"cannot write {target}: {not_a_folder} is not a folder")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(data)
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise OutputError(f"cannot write {target}: {exc.strerror or type(exc).__name__}") from None


def _stdio(stream: BinaryIO | None, name: str) -> BinaryIO:
    if stream is None:
        raise StylecastError(f"- ({name}) is not available here")
    return stream
