"""The API definition: the checked-in stubs match the .proto, every element of the .proto is
documented, and the stubs' version guards agree with the dependency bounds in pyproject.toml."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO = REPO_ROOT / "proto" / "stylecast" / "v1" / "stylise.proto"
STUBS = REPO_ROOT / "stylecast" / "v1"
HEADER = re.compile(r"^# Protobuf Python Version: (\S+)$", re.MULTILINE)


def load_gen_proto() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_proto", REPO_ROOT / "scripts" / "gen_proto.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def serve_requirements() -> dict[str, str]:
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    extras = data["project"]["optional-dependencies"]
    requirements = {}
    for extra in ("serve", "dev"):
        for requirement in extras[extra]:
            name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
            requirements[name] = requirement[len(name) :]
    return requirements


def test_checked_in_stubs_match_the_proto(tmp_path):
    pytest.importorskip("grpc_tools")
    gen_proto = load_gen_proto()
    fresh = gen_proto.generate(tmp_path)
    assert fresh, "nothing generated"
    checked_in_version = HEADER.search((STUBS / "stylise_pb2.py").read_text()).group(1)
    fresh_version = HEADER.search((tmp_path / "stylecast/v1/stylise_pb2.py").read_text()).group(1)
    if fresh_version != checked_in_version:
        pytest.skip(
            f"installed grpcio-tools writes protobuf {fresh_version} gencode; the stubs are "
            f"{checked_in_version}: install the dev extra's pinned grpcio-tools to compare"
        )
    for path in fresh:
        relative = path.relative_to(tmp_path)
        checked_in = REPO_ROOT / relative
        assert checked_in.is_file(), f"{relative} is not checked in: run scripts/gen_proto.py"
        assert checked_in.read_bytes() == path.read_bytes(), (
            f"{relative} is stale: run `python scripts/gen_proto.py` and commit the result"
        )


def test_every_element_of_the_proto_is_documented(tmp_path):
    pytest.importorskip("grpc_tools")
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    out = tmp_path / "stylise.desc"
    status = protoc.main(["protoc", f"-I{REPO_ROOT / 'proto'}", "--include_source_info",
                          f"--descriptor_set_out={out}", str(PROTO)])  # fmt: skip
    assert status == 0
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (file,) = descriptor_set.file
    comments = {
        tuple(location.path): location.leading_comments.strip()
        for location in file.source_code_info.location
    }
    missing: list[str] = []

    def need(path: tuple[int, ...], what: str) -> None:
        if not comments.get(path):
            missing.append(what)

    def walk_message(message, path: tuple[int, ...], prefix: str) -> None:
        if message.options.map_entry:
            return
        need(path, f"message {prefix}{message.name}")
        for index, field in enumerate(message.field):
            need((*path, 2, index), f"field {prefix}{message.name}.{field.name}")
        for index, nested in enumerate(message.nested_type):
            walk_message(nested, (*path, 3, index), f"{prefix}{message.name}.")

    for index, message in enumerate(file.message_type):
        walk_message(message, (4, index), "")
    for index, enum in enumerate(file.enum_type):
        need((5, index), f"enum {enum.name}")
        for value_index, value in enumerate(enum.value):
            need((5, index, 2, value_index), f"enum value {value.name}")
    for index, service in enumerate(file.service):
        need((6, index), f"service {service.name}")
        for method_index, method in enumerate(service.method):
            need((6, index, 2, method_index), f"rpc {service.name}.{method.name}")
    assert not missing, f"undocumented in {PROTO.name}: {', '.join(missing)}"
    assert file.package == "stylecast.v1"


def test_stub_version_guards_agree_with_pyproject():
    import google.protobuf
    import grpc

    from stylecast.v1 import stylise_pb2_grpc

    pb2_source = (STUBS / "stylise_pb2.py").read_text()
    gencode = version_tuple(HEADER.search(pb2_source).group(1))
    grpc_generated = version_tuple(stylise_pb2_grpc.GRPC_GENERATED_VERSION)
    requirements = serve_requirements()

    protobuf_floor = re.search(r">=([\d.]+)", requirements["protobuf"]).group(1)
    assert version_tuple(protobuf_floor) >= gencode, (
        f"serve extra allows protobuf {protobuf_floor}, older than the stubs' gencode {gencode}"
    )
    protobuf_ceiling = re.search(r"<([\d.]+)", requirements["protobuf"]).group(1)
    assert version_tuple(protobuf_ceiling)[0] == gencode[0] + 1, "protobuf capped at next major"
    for package in ("grpcio", "grpcio-health-checking", "grpcio-reflection"):
        floor = re.search(r">=([\d.]+)", requirements[package]).group(1)
        assert version_tuple(floor) >= grpc_generated, f"{package} floor below the stubs' grpc"
    pinned_tools = re.search(r"==([\d.]+)", requirements["grpcio-tools"]).group(1)
    assert version_tuple(pinned_tools) == grpc_generated, (
        "regenerate the stubs with the pinned grpcio-tools (or update the pin)"
    )
    # The installed runtime passes the guards (importing the stubs ran them).
    assert version_tuple(google.protobuf.__version__) >= gencode
    assert version_tuple(grpc.__version__) >= grpc_generated
