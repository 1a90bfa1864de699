"""Regenerate the checked-in Python gRPC stubs (stylecast/v1/) from proto/.

    python scripts/gen_proto.py            # rewrite stylecast/v1/stylise_pb2*.py(i)
    python scripts/gen_proto.py --out DIR  # write them under DIR instead (the staleness test)

Needs grpcio-tools (the `dev` extra). Run from anywhere; paths are relative to the repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "proto"
PROTO_FILES = ("stylecast/v1/stylise.proto",)
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generated_files(out: Path) -> list[Path]:
    """The files generation writes under ``out``."""
    return [
        out / f"{proto.removesuffix('.proto')}{suffix}"
        for proto in PROTO_FILES
        for suffix in GENERATED_SUFFIXES
    ]


def generate(out: Path = REPO_ROOT) -> list[Path]:
    """Run protoc (grpcio-tools) on every proto file, writing the stubs under ``out``."""
    try:
        from grpc_tools import protoc
    except ImportError:
        raise SystemExit("grpcio-tools is missing: pip install 'stylecast[dev]'") from None
    import importlib.resources

    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    for proto in PROTO_FILES:
        (out / proto).parent.mkdir(parents=True, exist_ok=True)
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"-I{well_known}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                str(PROTO_ROOT / proto),
            ]
        )
        if status != 0:
            raise SystemExit(f"protoc failed on {proto} (exit {status})")
    return generated_files(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="output root (default: repo)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
