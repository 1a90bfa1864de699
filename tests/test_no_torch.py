"""The serving side never imports torch: each check runs in a fresh interpreter whose imports of
torch (and the packages built on it) fail, as on a host with only `stylecast[serve]`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from serving_fixtures import TINY_MODEL, encoded_image

pytest_plugins = ("serving_fixtures",)

BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc
    import sys

    BLOCKED = {"torch", "torchvision", "lightning", "pytorch_lightning", "torchmetrics"}

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, BlockTorch())
    """
)
NO_TORCH_LOADED = textwrap.dedent(
    """
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
    assert not loaded, f"torch-family modules loaded: {loaded}"
    print("NO-TORCH-OK")
    """
)


def run_without_torch(code: str, *args: str) -> subprocess.CompletedProcess:
    script = BLOCK_TORCH + textwrap.dedent(code) + NO_TORCH_LOADED
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120
    )


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0 and "NO-TORCH-OK" in result.stdout, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


def test_the_blocker_blocks():
    result = run_without_torch("import torch")
    assert result.returncode != 0 and "blocked by the test" in result.stderr


def test_serving_modules_import_without_torch():
    assert_ok(
        run_without_torch(
            """
            import stylecast.serving.server
            import stylecast.serving.servicer
            import stylecast.serving.pipeline
            import stylecast.serving.codec
            import stylecast.serving.config
            import stylecast.serving.health
            import stylecast.serving.readiness
            import stylecast.serving.client
            import stylecast.serving.repository
            import stylecast.serving.stylise
            import stylecast.serving.camera
            import stylecast.serving.demo
            import stylecast.serving.watcher
            from stylecast.cli import build_parser
            build_parser().parse_args(["serve", "--port", "0"])
            """
        )
    )


def test_stylise_command_end_to_end_without_torch(tiny_models_dir: Path, tmp_path: Path):
    source = tmp_path / "photo.jpg"
    source.write_bytes(encoded_image(80))
    out = tmp_path / "styled.png"
    result = run_without_torch(
        """
        from stylecast.cli import main
        code = main(["stylise", sys.argv[1], "--model", sys.argv[2], "--models-dir", sys.argv[3],
                     "--out", sys.argv[4]])
        assert code == 0, code
        """,
        str(source), TINY_MODEL, str(tiny_models_dir), str(out),
    )  # fmt: skip
    assert_ok(result)
    assert out.is_file() and out.stat().st_size > 0


def test_grpc_server_and_client_round_trip_without_torch(tiny_models_dir: Path, tmp_path: Path):
    source = tmp_path / "photo.jpg"
    source.write_bytes(encoded_image(64))
    result = run_without_torch(
        """
        from stylecast.serving.client import StylecastClient
        from stylecast.serving.config import ServerConfig
        from stylecast.serving.server import StylecastServer
        config = ServerConfig(models_dir=sys.argv[1], host="127.0.0.1", port=0,
                              reload_interval_s=0)
        image = open(sys.argv[3], "rb").read()
        with StylecastServer(config) as server, StylecastClient(server.address) as client:
            assert client.stylise(image, sys.argv[2]).model == sys.argv[2]
            replies = list(client.stream([(1, image), (2, image)], sys.argv[2], max_pending=2,
                                         max_in_flight=2))
            assert [r.sequence for r in replies] == [1, 2]
        """,
        str(tiny_models_dir), TINY_MODEL, str(source),
    )  # fmt: skip
    assert_ok(result)
