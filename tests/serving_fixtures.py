"""Fixtures for serving tests: a tiny model repository and in-process gRPC servers.

A test module enables them with ``pytest_plugins = ("serving_fixtures",)`` (and may import the
helpers below directly). The repository is built once per session (the tiny random ``lite``
network, exported through the real ``stylecast export`` path), so it costs seconds in total.

Fixtures:

- ``tiny_models_dir``: a models folder with one model, ``tiny`` (version 1, fp32). Read-only:
  copy it (``models_copy``) before changing it.
- ``models_copy``: a per-test writable copy of that folder.
- ``duo_models_dir``: ``tiny`` plus ``duo``, a two-style model (``DUO_STYLES``). Read-only.
- ``start_server``: ``start_server(models_dir=None, **ServerConfig overrides)`` starts a server
  on 127.0.0.1 and an ephemeral port; every server is stopped at the end of the test.
- ``shared_server`` (module scope): one default server, with a metrics endpoint, for tests that
  do not change its state; ``client``: a StylecastClient connected to it.
- ``sample_image``: ``sample_image(side=96, fmt="JPEG")`` → encoded bytes of a bundled photo.

Helpers: ``server_config``, ``encoded_image``, ``wait_for``.

(PYTEST_DONT_REWRITE: test modules import the helpers before pytest loads this as a plugin.)
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from model_factory import make_run
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
STYLE_IMAGE = REPO_ROOT / "assets" / "styles" / "starry_night.jpg"
CONTENT_IMAGE = REPO_ROOT / "assets" / "content" / "kodim23.jpg"
TINY_MODEL = "tiny"
DUO_MODEL = "duo"  # two styles: starry_night (the default), great_wave
DUO_STYLES = ["starry_night", "great_wave"]

_built: dict[str, Path] = {}


def build_tiny_repository(root: Path, name: str = TINY_MODEL, seed: int = 0) -> Path:
    """Export a seeded random ``lite`` TransformNet as ``root/models/<name>``; returns the
    models folder. Needs torch (the test process has it; servers under test do not)."""
    from stylecast.training.export import export_model

    run = make_run(root / "run", STYLE_IMAGE, seed=seed)
    models = root / "models"
    export_model(run, name, models, description="tiny random network for tests")
    return models


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the ``tiny`` model (built once per session)."""
    if "models" not in _built:
        _built["models"] = build_tiny_repository(tmp_path_factory.mktemp("tiny-repo"))
    return _built["models"]


@pytest.fixture(scope="session")
def duo_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding ``tiny`` (one style) and ``duo`` (two styles, random weights,
    the lite preset), built once per session."""
    if "duo" not in _built:
        from stylecast.training.export import export_model

        root = tmp_path_factory.mktemp("duo-repo")
        models = build_tiny_repository(root / "tiny")
        extra = (STYLE_IMAGE.parent / "great_wave.jpg",)
        export_model(make_run(root / "duo-run", STYLE_IMAGE, extra_styles=extra), DUO_MODEL, models)
        _built["duo"] = models
    return _built["duo"]


@pytest.fixture
def models_copy(tiny_models_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of ``tiny_models_dir`` for tests that add, change or remove models."""
    target = tmp_path / "models"
    shutil.copytree(tiny_models_dir, target)
    return target


def server_config(models_dir: Path, **overrides: Any) -> Any:
    """A ServerConfig for tests: loopback, ephemeral port, no polling, one thread per session."""
    from stylecast.serving.config import ServerConfig
    from stylecast.serving.runtime import RuntimeOptions

    settings: dict[str, Any] = {
        "models_dir": str(models_dir),
        "host": "127.0.0.1",
        "port": 0,
        "reload_interval_s": 0,
        "grace_s": 1.0,
        "runtime": RuntimeOptions(intra_op_threads=1),
    }
    settings.update(overrides)
    return ServerConfig(**settings)


@pytest.fixture
def start_server(tiny_models_dir: Path) -> Iterator[Callable[..., Any]]:
    """``start_server(models_dir=None, **overrides)`` → a started StylecastServer on loopback."""
    from stylecast.serving.server import StylecastServer

    servers: list[StylecastServer] = []

    def start(models_dir: Path | None = None, **overrides: Any) -> StylecastServer:
        server = StylecastServer(server_config(models_dir or tiny_models_dir, **overrides))
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop(0)


@pytest.fixture(scope="module")
def shared_server(tiny_models_dir: Path) -> Iterator[Any]:
    """One server per test module (metrics endpoint on an ephemeral port); do not change it."""
    from stylecast.serving.server import StylecastServer

    server = StylecastServer(server_config(tiny_models_dir, metrics_port=0)).start()
    yield server
    server.stop(0)


@pytest.fixture
def client(shared_server: Any) -> Iterator[Any]:
    """A client of ``shared_server``."""
    from stylecast.serving.client import StylecastClient

    with StylecastClient(shared_server.address, timeout=30) as connection:
        yield connection


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def encoded_image(side: int = 96, fmt: str = "JPEG", source: Path = CONTENT_IMAGE) -> bytes:
    """A bundled photo, longer side ``side``, encoded as ``fmt`` (JPEG, PNG or WEBP)."""
    with Image.open(source) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, quality=90)
    return buffer.getvalue()


@pytest.fixture
def sample_image() -> Callable[..., bytes]:
    """``sample_image(side=96, fmt="JPEG")`` → encoded bytes of a bundled photo."""
    return encoded_image
