"""Stylecast: real-time neural style transfer that you train, ship and serve.

This package holds what every part shares without heavy imports: the CLI,
the user-facing error type and the generated gRPC API (``stylecast.v1``).
``stylecast.training`` needs torch; ``stylecast.serving`` never imports it.

The Python API, imported on first use so that ``import stylecast`` stays light:

    model = stylecast.load("starry_night_lite", models_dir="models")   # stylecast.api
    picture = model.stylise("photo.jpg", strength=0.8)
    server = stylecast.connect("localhost:50051")                     # stylecast.remote
    picture = server.model("starry_night_lite").stylise("photo.jpg")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stylecast.errors import StylecastError

if TYPE_CHECKING:
    from stylecast.api import Model, load, models
    from stylecast.remote import Connection, RemoteModel, connect

__version__ = "0.1.0"
__all__ = [
    "Connection",
    "Model",
    "RemoteModel",
    "StylecastError",
    "connect",
    "load",
    "models",
]

# name → the module that defines it: onnxruntime (api) and grpc (remote) load on first use.
_LAZY = {
    "load": "stylecast.api",
    "models": "stylecast.api",
    "Model": "stylecast.api",
    "connect": "stylecast.remote",
    "Connection": "stylecast.remote",
    "RemoteModel": "stylecast.remote",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stylecast' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
