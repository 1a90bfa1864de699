"""Shutdown that Kubernetes and load balancers can drain: on SIGTERM every health service says
NOT_SERVING at once while the port stays open (new connections still get answers), calls are
still served (or refused with UNAVAILABLE when configured), then the port closes and in-flight
calls get their grace period; a second signal ends it at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import grpc
import pytest
from serving_fixtures import TINY_MODEL, encoded_image, wait_for

from stylecast.serving.client import ServerError, StylecastClient
from stylecast.serving.health import SERVICE_NAME, model_health_name
from stylecast.serving.readiness import wait_for_ready_file

pytest_plugins = ("serving_fixtures",)


def fresh_health(address: str, service: str = "") -> str:
    """The health status seen by a new connection, as a Kubernetes probe sees it."""
    with StylecastClient(address, timeout=10) as probe:
        return probe.health(service)


def start_shutdown(server) -> tuple[threading.Thread, threading.Event]:
    force = threading.Event()
    thread = threading.Thread(target=server.shutdown, args=(force,), daemon=True)
    thread.start()
    return thread, force


def test_drain_says_not_serving_and_still_serves(start_server):
    server = start_server(drain_s=600)
    address = server.address
    assert fresh_health(address) == "SERVING"
    thread, force = start_shutdown(server)
    assert wait_for(lambda: fresh_health(address) == "NOT_SERVING", timeout=10)
    assert fresh_health(address, SERVICE_NAME) == "NOT_SERVING"
    assert fresh_health(address, model_health_name(TINY_MODEL)) == "NOT_SERVING"
    with StylecastClient(address, timeout=30) as client:
        assert client.stylise(encoded_image(64), TINY_MODEL).image.width == 64
        assert [r.sequence for r in client.stream([(1, encoded_image(64))], TINY_MODEL)] == [1]
        client.reload()  # a rescan during the drain cannot turn health back to SERVING
    assert fresh_health(address) == "NOT_SERVING"
    assert thread.is_alive()  # still draining
    force.set()  # as a second SIGTERM does: the drain ends now
    thread.join(timeout=30)
    assert not thread.is_alive()
    with pytest.raises(ServerError) as info, StylecastClient(address, timeout=3) as late:
        late.health()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE  # the port is closed


def test_drain_can_refuse_calls_and_counts_them(start_server):
    server = start_server(drain_s=600, drain_refuse_calls=True)
    thread, force = start_shutdown(server)
    try:
        assert wait_for(lambda: fresh_health(server.address) == "NOT_SERVING", timeout=10)
        with StylecastClient(server.address, timeout=10) as client:
            for call in (
                lambda: client.stylise(encoded_image(64), TINY_MODEL),
                lambda: list(client.stream([(1, encoded_image(64))], TINY_MODEL)),
                client.models,
            ):
                with pytest.raises(ServerError) as info:
                    call()
                assert info.value.code == grpc.StatusCode.UNAVAILABLE
                assert "shutting down" in info.value.details
    finally:
        force.set()
        thread.join(timeout=30)
    for method in ("Stylise", "StyliseStream", "ListModels"):
        labels = {"method": method, "model": "", "code": "UNAVAILABLE"}
        assert server.metrics.value("stylecast_requests_total", labels) == 1


def test_no_drain_closes_the_port_at_once(start_server):
    server = start_server(drain_s=0)
    address = server.address
    server.shutdown()
    with pytest.raises(ServerError) as info, StylecastClient(address, timeout=3) as late:
        late.health()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_serve_drains_on_sigterm_and_a_second_signal_ends_it(tiny_models_dir, tmp_path):
    ready_file = tmp_path / "ready.json"
    command = [
        sys.executable, "-m", "stylecast", "serve", "--models-dir", str(tiny_models_dir),
        "--host", "127.0.0.1", "--port", "0", "--reload-interval", "0",
        "--intra-op-threads", "1", "--drain-seconds", "600", "--ready-file", str(ready_file),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        address = wait_for_ready_file(ready_file, process, timeout=60).address
        assert fresh_health(address) == "SERVING"
        process.send_signal(signal.SIGTERM)
        # A new connection (a readiness probe) gets NOT_SERVING, not "connection refused".
        assert wait_for(lambda: fresh_health(address) == "NOT_SERVING", timeout=20)
        with StylecastClient(address, timeout=30) as client:
            assert client.stylise(encoded_image(64), TINY_MODEL).image.width == 64
        assert process.poll() is None  # draining: 600 s unless told again
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = process.stderr.read().decode()
    assert "SIGTERM: shutting down (drain 600 s" in log and "draining for 600 s" in log
    assert "second SIGTERM" in log and "server stopped" in log
    assert "Traceback" not in log
    assert not ready_file.exists()
