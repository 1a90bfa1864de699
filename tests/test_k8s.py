"""The Kubernetes manifests (deploy/k8s/): every YAML file parses; the overlays render with
kustomize semantics (a small renderer below, compared with `kubectl kustomize` where kubectl is
installed); every rendered object validates offline against the Kubernetes API schemas
(kubernetes-validate, strict: unknown fields fail); and the Deployment agrees with the server's
own flags, parsed by the real CLI parser. Plus the client's ``dns:///`` round-robin option
against a live server."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from stylecast.cli import build_parser
from stylecast.cli.serving import server_config
from stylecast.serving.client import StylecastClient

pytest_plugins = ("serving_fixtures",)

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")
# gRPC probes are GA from 1.27; check the oldest version the manifests target and the newest
# schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.27", kubernetes_validate.latest_version())
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "images", "patches"}


# -- a renderer for the subset of kustomize the manifests use ---------------------------------


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _matches(obj: dict[str, Any], target: dict[str, Any]) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    actual = {"group": group, "version": version, "kind": obj["kind"]}
    actual["name"] = obj["metadata"]["name"]
    return all(actual[key] == value for key, value in target.items())


def render(folder: Path) -> list[dict[str, Any]]:
    """``kustomize build folder`` for what these manifests use: resources (files and folders),
    ``images`` (newName/newTag) and ``patches`` of JSON 6902 operations with a target. Any
    other kustomization field fails, so the renderer cannot silently diverge."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    assert not unknown, f"{folder}: the test renderer does not support {sorted(unknown)}"
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = folder / resource
        objects += render(path) if path.is_dir() else _load_all(path)
    for image in kustomization.get("images", []):
        for obj in objects:
            for container in _containers(obj):
                name = _image_name(container["image"])
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"path", "target"}, patch
        operations = yaml.safe_load((folder / patch["path"]).read_text())
        assert isinstance(operations, list), "patches must be JSON 6902 operation lists"
        hits = [i for i, obj in enumerate(objects) if _matches(obj, patch["target"])]
        assert len(hits) == 1, f"{patch['target']} matches {len(hits)} objects"
        objects[hits[0]] = jsonpatch.apply_patch(objects[hits[0]], operations)
    return objects


def _by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def _deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = _by_kind(objects, "Deployment")
    return deployment


def _quantity(text: str | int) -> float:
    """A Kubernetes resource quantity in base units (bytes for memory)."""
    match = re.fullmatch(r"([0-9.]+)([KMGTE]i?|[km])?", str(text))
    assert match, text
    value, suffix = float(match[1]), match[2] or ""
    scale = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "E": 1e18, "m": 1e-3}
    binary = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Ei": 2**60}
    return value * (binary[suffix] if suffix in binary else scale[suffix])


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(K8S / "overlays" / request.param)


# -- the files ---------------------------------------------------------------------------------


def test_every_yaml_file_parses() -> None:
    files = sorted(K8S.rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        documents = _load_all(path)
        assert documents, path
        assert all(isinstance(doc, dict | list) for doc in documents), path


def test_overlays_render_the_expected_objects(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = overlay
    kinds = sorted((obj["kind"], obj["metadata"]["name"]) for obj in objects)
    assert kinds == [
        ("Deployment", "stylecast"),
        ("HorizontalPodAutoscaler", "stylecast"),
        ("PersistentVolumeClaim", "stylecast-models"),
        ("PodDisruptionBudget", "stylecast"),
        ("Service", "stylecast"),
        ("Service", "stylecast-headless"),
    ]
    services = {obj["metadata"]["name"]: obj for obj in _by_kind(objects, "Service")}
    assert services["stylecast-headless"]["spec"]["clusterIP"] == "None"
    assert "clusterIP" not in services["stylecast"]["spec"]
    pod = _deployment(objects)["spec"]["template"]
    for obj in [*services.values(), *_by_kind(objects, "PodDisruptionBudget")]:
        selector = obj["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= pod["metadata"]["labels"].items(), obj["metadata"]["name"]
    (container,) = pod["spec"]["containers"]
    if name == "gpu":
        assert container["image"] == "stylecast-serve-gpu:latest"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["trt-cache"] == "/trt-cache"
        assert "trt-cache" in {v["name"] for v in pod["spec"]["volumes"]}
    else:
        assert container["image"] == "stylecast-serve:latest"
        assert "nvidia.com/gpu" not in container["resources"]["limits"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_renderer_agrees_with_kubectl_kustomize(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = overlay
    built = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / name)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout

    def key(obj: dict[str, Any]) -> tuple[str, str]:
        return obj["kind"], obj["metadata"]["name"]

    assert sorted(yaml.safe_load_all(built), key=key) == sorted(objects, key=key)


# -- schemas -----------------------------------------------------------------------------------


def _validate(obj: dict[str, Any]) -> None:
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(copy.deepcopy(obj), version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(
                f"{obj['kind']}/{obj['metadata']['name']} on {version}: {exc}"
            ) from None


def test_rendered_objects_validate_against_the_api_schemas(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    for obj in overlay[1]:
        _validate(obj)


def test_examples_validate_against_the_api_schemas() -> None:
    examples = sorted((K8S / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        for obj in _load_all(path):
            _validate(obj)
    (hpa,) = _load_all(K8S / "examples" / "hpa-queue-depth.yaml")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "stylecast_inference_queue_depth"


def test_schema_validation_catches_a_mistake() -> None:
    deployment = _deployment(render(K8S / "overlays" / "cpu"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpc"]["port"] = "x"
    with pytest.raises(AssertionError, match="Deployment/stylecast"):
        _validate(deployment)
    deployment = _deployment(render(K8S / "overlays" / "cpu"))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 60  # misspelt
    with pytest.raises(AssertionError):
        _validate(deployment)


# -- agreement with the server's flags -----------------------------------------------------------


def test_deployment_agrees_with_the_server_flags(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    deployment = _deployment(overlay[1])
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["command"][0] == "stylecast"
    args = build_parser().parse_args([*container["command"][1:], *container["args"]])
    assert args.handler.__name__ == "_cmd_serve"
    config = server_config(args)

    assert config.models_dir == "/models"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/models"]["name"] == "models"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": config.port, "metrics": config.metrics_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == config.port, probe
    assert container["readinessProbe"]["grpc"].get("service", "") == ""
    # Liveness never fails within the drain (health is NOT_SERVING all through it).
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > config.drain_s

    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == config.metrics_port

    assert config.drain_s > 0
    assert pod["spec"]["terminationGracePeriodSeconds"] > config.drain_s + config.grace_s

    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert _quantity(limits["memory"]) >= config.memory_bound
    # The worst case with every message in transit too (README): still within the limit.
    in_transit = (
        config.workers + config.max_streams * (config.stream_max_pending + 2)
    ) * config.grpc_message_limit
    assert _quantity(limits["memory"]) >= config.memory_bound + in_transit
    assert _quantity(requests["memory"]) >= config.memory_bound
    assert _quantity(requests["cpu"]) > 0  # the CPU autoscaler measures against it

    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    if overlay[0] == "gpu":
        assert config.runtime.trt_cache_dir == "/trt-cache"


def test_services_and_autoscalers_point_at_the_deployment(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    objects = overlay[1]
    deployment = _deployment(objects)
    for service in _by_kind(objects, "Service"):
        grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
        assert grpc_port["port"] == 50051 and grpc_port["targetPort"] == "grpc"
    (hpa,) = _by_kind(objects, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2  # the PodDisruptionBudget can always evict one
    (pdb,) = _by_kind(objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1


# -- client-side per-call balancing ----------------------------------------------------------------


def test_client_load_balancing_option() -> None:
    policy = ("grpc.lb_policy_name", "round_robin")
    with StylecastClient("dns:///stylecast-headless.default.svc:50051") as client:
        assert policy in client.channel_options
    with StylecastClient("localhost:50051") as client:
        assert not any(key == "grpc.lb_policy_name" for key, _ in client.channel_options)
    with StylecastClient("localhost:50051", load_balancing="round_robin") as client:
        assert policy in client.channel_options
    with StylecastClient("dns:///localhost:50051", load_balancing="pick_first") as client:
        assert ("grpc.lb_policy_name", "pick_first") in client.channel_options
        assert policy not in client.channel_options


def test_dns_round_robin_target_reaches_a_live_server(shared_server: Any) -> None:
    target = f"dns:///127.0.0.1:{shared_server.port}"
    with StylecastClient(target, timeout=30) as client:
        assert ("grpc.lb_policy_name", "round_robin") in client.channel_options
        client.wait_ready(timeout=20)
        assert client.health() == "SERVING"
        assert [card.name for card in client.models()]
