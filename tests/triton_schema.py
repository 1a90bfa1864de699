"""Triton's own ``ModelConfig`` schema, to parse ``config.pbtxt`` files strictly in tests.

The schema ships in the ``tritonclient`` wheel (``tritonclient/grpc/model_config_pb2.py``).
Its ``grpc`` extra pins protobuf < 7, which this project's stubs cannot use, so the Makefile
installs the wheel without dependencies and this helper loads the schema module by path,
without the package's ``__init__`` (which insists on that extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any


def model_config_module() -> ModuleType:
    """``tritonclient.grpc.model_config_pb2``, loaded on its own."""
    spec = importlib.util.find_spec("tritonclient")
    assert spec is not None and spec.submodule_search_locations, "tritonclient is not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def parse_config(path: Path) -> Any:
    """A ``config.pbtxt`` parsed strictly as Triton's ModelConfig (unknown fields raise)."""
    from google.protobuf import text_format

    schema = model_config_module()
    return text_format.Parse(path.read_text(), schema.ModelConfig())
