"""ONNX export: checker, parity at odd sizes, fp16, versioning, model card and Triton config."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from model_factory import FIXTURE_COMMAND, make_run
from triton_schema import model_config_module, parse_config

from stylecast.errors import StylecastError
from stylecast.serving.model_card import read_card, style_file
from stylecast.serving.repository import ModelRepository
from stylecast.training.export import UInt8Graph, export_model, load_trained


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, style_image: Path):
    root = tmp_path_factory.mktemp("export")
    run = make_run(root / "run", style_image)
    result = export_model(run, "tiny", root / "models")
    return run, root / "models", result


def test_export_writes_checked_graph_card_and_triton_config(exported) -> None:
    _, models, result = exported
    assert result.model_path == models / "tiny" / "1" / "model.onnx"
    onnx.checker.check_model(onnx.load(str(result.model_path)), full_check=True)
    card = read_card(models / "tiny")
    assert card.version == 1 and card.vgg_weights == "random:0" and card.testing_only
    assert card.versions["1"].parity["passed"] and card.versions["1"].precision == "fp32"
    assert card.style_thumbnail.startswith("data:image/jpeg;base64,")
    assert card.train_command == FIXTURE_COMMAND
    assert (models / "tiny" / "1" / "version.json").is_file()
    style_copy = style_file(models / "tiny", card)
    assert hashlib.sha256(style_copy.read_bytes()).hexdigest() == card.style_sha256
    config = parse_config(models / "tiny" / "config.pbtxt")
    schema = model_config_module()
    assert (config.name, config.backend, config.max_batch_size) == ("tiny", "onnxruntime", 8)
    for tensors, name in ((config.input, "image"), (config.output, "stylised")):
        (tensor,) = tensors
        assert tensor.name == name and tensor.data_type == schema.TYPE_UINT8
        assert list(tensor.dims) == [-1, -1, 3]  # the batch dimension is Triton's
    assert config.HasField("dynamic_batching")


def test_export_records_command_and_returns_parity(exported, tmp_path: Path) -> None:
    run, _, _ = exported
    result = export_model(run, "cmd", tmp_path, command="stylecast export x --name cmd")
    assert result.version == 1
    assert result.card.versions["1"].export_command == "stylecast export x --name cmd"
    assert result.parity["passed"] and result.parity["max_abs"] <= 1


@pytest.mark.slow
def test_version_allocation_retries_on_collision(exported, tmp_path: Path, monkeypatch) -> None:
    """An exporter whose view of the folder is stale (another process, a DDP rank say, has
    just published the number it picked) gets the next number instead of failing or
    overwriting: publishing is one rename that refuses a taken folder."""
    from stylecast.training import export

    run, _, _ = exported
    first = export_model(run, "race", tmp_path)
    stale = iter([[]])  # the first look sees no versions yet
    real = export.version_numbers
    monkeypatch.setattr(export, "version_numbers", lambda d: next(stale, None) or real(d))
    second = export_model(run, "race", tmp_path)
    assert (first.version, second.version) == (1, 2)
    card = read_card(tmp_path / "race")
    assert set(card.versions) == {"1", "2"}
    assert card.versions["1"].sha256 == first.card.versions["1"].sha256
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_graph_io_is_dynamic_uint8_nhwc(exported) -> None:
    _, _, result = exported
    graph = onnx.load(str(result.model_path)).graph
    (inp,), (out,) = graph.input, graph.output
    for value in (inp, out):
        assert value.type.tensor_type.elem_type == onnx.TensorProto.UINT8
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param != "" for d in dims] == [True, True, True, False]
        assert dims[3].dim_value == 3


@pytest.mark.parametrize("size", [(257, 383), (33, 65), (100, 100)])
def test_parity_with_pytorch_at_odd_sizes(exported, size: tuple[int, int]) -> None:
    run, models, _ = exported
    network = load_trained(run).network
    image = np.random.default_rng(1).integers(0, 256, (1, *size, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = UInt8Graph(network)(torch.from_numpy(image)).numpy().astype(int)
    model = ModelRepository(models).get("tiny")
    actual = model.run(image).astype(int)
    assert actual.shape == image.shape
    diff = np.abs(actual - expected)
    assert (diff > 1).mean() < 1e-3


@pytest.mark.slow
def test_fp16_export_loads_and_bumps_version(exported, tmp_path: Path) -> None:
    run, models, _ = exported
    result = export_model(run, "tiny", models, fp16=True)
    assert result.version == result.card.version == 2
    assert set(result.card.versions) == {"1", "2"}
    assert result.parity["precision"] == "fp16" and result.parity["passed"]
    initializers = onnx.load(str(result.model_path)).graph.initializer
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in initializers)
    model = ModelRepository(models).get("tiny")
    assert model.version == 2
    out = model.run(np.full((37, 41, 3), 128, dtype=np.uint8))
    assert out.shape == (37, 41, 3) and out.dtype == np.uint8


def test_export_from_lightning_checkpoint_matches_run_weights(tmp_path: Path, exported) -> None:
    run, _, _ = exported
    trained = load_trained(run)
    state = {f"network.{k}": v for k, v in trained.network.state_dict().items()}
    checkpoint = {
        "state_dict": state,
        "hyper_parameters": {
            "config": trained.record.train, "vgg_weights_id": "random:0", "style_sha256": "cd" * 32,
        },
    }  # fmt: skip
    torch.save(checkpoint, tmp_path / "x.ckpt")
    from_ckpt = load_trained(tmp_path / "x.ckpt")
    for a, b in zip(from_ckpt.network.parameters(), trained.network.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["", "../evil", "a b", ".hidden"])
def test_bad_model_names_are_refused(exported, name: str, tmp_path: Path) -> None:
    run, _, _ = exported
    with pytest.raises(StylecastError, match="bad model name"):
        export_model(run, name, tmp_path)


def test_export_of_missing_or_unfinished_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StylecastError, match="no training run"):
        load_trained(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    with pytest.raises(StylecastError, match="not a finished training run"):
        load_trained(tmp_path / "half")
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(StylecastError, match="cannot read"):
        load_trained(tmp_path / "bad.ckpt")
