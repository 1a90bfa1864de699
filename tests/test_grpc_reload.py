"""Hot reload: models added, replaced or removed in models/ are picked up without a restart,
and a broken new version leaves the old one serving."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import grpc
import pytest
from serving_fixtures import TINY_MODEL, encoded_image, wait_for

from stylecast.serving.client import ServerError, StylecastClient
from stylecast.serving.health import SERVICE_NAME, model_health_name

pytest_plugins = ("serving_fixtures",)


def edit_card(model_dir: Path, **changes: object) -> dict:
    path = model_dir / "model.json"
    card = json.loads(path.read_text())
    card.update(changes)
    path.write_text(json.dumps(card))
    return card


def add_model(models: Path, name: str) -> Path:
    """A copy of the tiny model under a new name."""
    target = models / name
    shutil.copytree(models / TINY_MODEL, target)
    edit_card(target, name=name)
    return target


def add_version(model_dir: Path, version: int, data: bytes) -> None:
    """Publish ``data`` as ``version`` of the model, with its own version.json."""
    (model_dir / str(version)).mkdir()
    (model_dir / str(version) / "model.onnx").write_bytes(data)
    info = json.loads((model_dir / "1" / "version.json").read_text())
    info["sha256"] = hashlib.sha256(data).hexdigest()
    (model_dir / str(version) / "version.json").write_text(json.dumps(info))


def stylised_version(client: StylecastClient, model: str) -> int:
    return client.stylise(encoded_image(64), model).model_version


def test_new_model_is_picked_up_by_polling(start_server, models_copy):
    server = start_server(models_copy, reload_interval_s=0.1)
    with StylecastClient(server.address) as client:
        add_model(models_copy, "second")
        assert wait_for(lambda: "second" in [m.name for m in client.models()], timeout=5)
        assert client.health(model_health_name("second")) == "SERVING"
        assert stylised_version(client, "second") == 1
    assert server.metrics.value("stylecast_model_reload_events_total", {"event": "loaded"}) >= 1
    assert server.metrics.value("stylecast_models_loaded") == 2


def test_new_version_replaces_and_broken_versions_leave_the_old_one_serving(
    start_server, models_copy
):
    server = start_server(models_copy)
    model_dir = models_copy / TINY_MODEL
    onnx_bytes = (model_dir / "1" / "model.onnx").read_bytes()
    with StylecastClient(server.address) as client:
        add_version(model_dir, 2, onnx_bytes)
        assert list(client.reload().loaded) == [TINY_MODEL]
        assert stylised_version(client, TINY_MODEL) == 2
        # A newer version that onnxruntime cannot load: version 2 keeps serving.
        add_version(model_dir, 3, b"definitely not an onnx graph")
        client.reload()
        assert stylised_version(client, TINY_MODEL) == 2
        card = client.model(TINY_MODEL)
        assert (card.version, card.latest_version) == (2, 3)
        # A model card broken outright: the loaded version still serves.
        good_card = (model_dir / "model.json").read_text()
        (model_dir / "model.json").write_text("{ not json")
        report = client.reload()
        assert TINY_MODEL in report.failed and "not a valid model card" in report.failed[TINY_MODEL]
        assert stylised_version(client, TINY_MODEL) == 2
        assert client.health(model_health_name(TINY_MODEL)) == "SERVING"
        (model_dir / "model.json").write_text(good_card)
        # Card fixed, but version 3 is still broken: v2 serves on, and that is no success.
        report = client.reload()
        assert list(report.loaded) == [] and "SHA-256" not in report.failed[TINY_MODEL]
        assert stylised_version(client, TINY_MODEL) == 2
        # A new model with no working version is reported and not served.
        broken = add_model(models_copy, "broken")
        for graph in broken.glob("*/model.onnx"):
            graph.write_bytes(b"garbage")
        report = client.reload()
        assert "broken" in report.failed
        with pytest.raises(ServerError) as info:
            client.stylise(encoded_image(64), "broken")
        assert info.value.code == grpc.StatusCode.NOT_FOUND


def test_removed_models_stop_serving(start_server, models_copy):
    add_model(models_copy, "extra")
    server = start_server(models_copy)
    with StylecastClient(server.address) as client:
        assert client.health(model_health_name("extra")) == "SERVING"
        shutil.rmtree(models_copy / "extra")
        assert list(client.reload().removed) == ["extra"]
        with pytest.raises(ServerError) as info:
            client.stylise(encoded_image(64), "extra")
        assert info.value.code == grpc.StatusCode.NOT_FOUND
        assert client.health(model_health_name("extra")) == "NOT_SERVING"
        assert client.health() == "SERVING"
        shutil.rmtree(models_copy / TINY_MODEL)
        client.reload()
        assert client.health() == "NOT_SERVING"
        assert client.health(SERVICE_NAME) == "NOT_SERVING"
        assert client.models() == []


def failures(server, model: str) -> float:
    return server.metrics.value("stylecast_model_load_failures_total", {"model": model})


def test_a_bad_model_is_counted_once_and_not_serving_while_others_serve(start_server, models_copy):
    bad = add_model(models_copy, "bad")
    good_card = (bad / "model.json").read_text()
    (bad / "model.json").write_text("{ not json")
    server = start_server(models_copy)
    metrics = server.metrics
    with StylecastClient(server.address) as client:
        # Found bad at start-up: counted, its health NOT_SERVING; the others serve.
        assert failures(server, "bad") == 1
        assert metrics.value("stylecast_models_failed") == 1
        assert metrics.value("stylecast_models_loaded") == 1
        assert client.health(model_health_name("bad")) == "NOT_SERVING"
        assert client.health(model_health_name(TINY_MODEL)) == "SERVING"
        assert client.health() == "SERVING"
        assert [m.name for m in client.models()] == [TINY_MODEL]
        # Rescans that find it unchanged count (and log) nothing more.
        for _ in range(3):
            assert dict(client.reload().failed) == {}
        assert failures(server, "bad") == 1
        # Fixed on disk: it loads and serves.
        (bad / "model.json").write_text(good_card)
        assert list(client.reload().loaded) == ["bad"]
        assert client.health(model_health_name("bad")) == "SERVING"
        assert metrics.value("stylecast_models_failed") == 0
        # A broken newer version of a served model is a failure, not a load.
        loaded_before = metrics.value("stylecast_model_reload_events_total", {"event": "loaded"})
        add_version(models_copy / TINY_MODEL, 2, b"not an onnx graph")
        report = client.reload()
        assert list(report.loaded) == [] and TINY_MODEL in report.failed
        assert failures(server, TINY_MODEL) == 1
        assert metrics.value("stylecast_model_reload_events_total", {"event": "failed"}) == 2
        assert (
            metrics.value("stylecast_model_reload_events_total", {"event": "loaded"})
            == loaded_before
        )
        assert client.health(model_health_name(TINY_MODEL)) == "SERVING"  # v1 serves on
        assert metrics.value("stylecast_models_failed") == 1


def test_an_unreadable_models_folder_is_reported_and_counted(start_server, models_copy):
    server = start_server(models_copy)
    with StylecastClient(server.address) as client:
        moved = models_copy.rename(models_copy.with_name("moved-away"))
        try:
            with pytest.raises(ServerError) as info:
                client.reload()
            assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert "cannot list" in info.value.details and "keep serving" in info.value.details
        finally:
            moved.rename(models_copy)
        assert server.metrics.value("stylecast_model_rescan_errors_total") == 1
        assert stylised_version(client, TINY_MODEL) == 1


def test_odd_card_values_never_fail_a_listing(start_server, models_copy):
    """Valid JSON and the right types, but values a ModelCard message cannot hold (an opset
    out of uint32's range, a lone surrogate in the description): the repository rejects that
    model when it reads the card, it shows NOT_SERVING, and listings of the others work."""
    odd = add_model(models_copy, "odd")
    info = json.loads((odd / "1" / "version.json").read_text())
    (odd / "1" / "version.json").write_text(json.dumps({**info, "opset": 2**40}))
    card = (odd / "model.json").read_text().replace('"description": "', '"description": "\\ud800')
    assert "\\ud800" in card
    (odd / "model.json").write_text(card)
    server = start_server(models_copy)
    with StylecastClient(server.address) as client:
        cards = {card.name: card for card in client.models(include_thumbnails=True)}
        assert sorted(cards) == [TINY_MODEL]
        assert cards[TINY_MODEL].versions[0].opset > 0  # the others are untouched
        assert client.health(model_health_name("odd")) == "NOT_SERVING"
        assert "not valid UTF-8" in server.repository.errors["odd"]
        assert server.metrics.value("stylecast_model_load_failures_total", {"model": "odd"}) == 1
