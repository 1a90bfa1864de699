"""Export of a multi-style network: the `style_weights` input blends inside the graph, the
card lists the styles in order, Triton declares the second input; single-style cards and
exports stay as they were."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from model_factory import make_run
from triton_schema import model_config_module, parse_config

from stylecast.errors import StylecastError
from stylecast.serving.model_card import read_card, style_files
from stylecast.training.export import UInt8Graph, export_model, load_trained


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, style_images: list[Path]):
    root = tmp_path_factory.mktemp("multi-export")
    extra = tuple(style_images[1:3])
    run = make_run(root / "run", style_images[0], network="rt", extra_styles=extra)
    result = export_model(run, "trio", root / "models")
    return run, root / "models" / "trio", result


def test_card_lists_the_styles_in_order(exported, style_images) -> None:
    _, model_dir, result = exported
    card = read_card(model_dir)
    assert card.style_names == [p.stem for p in style_images[:3]]
    for entry, path in zip(card.styles, style_images[:3], strict=True):
        assert entry.image == path.name
        assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry.thumbnail.startswith("data:image/jpeg;base64,")
    assert card.style_image == style_images[0].name  # the default style, for old readers
    assert card.io["style_weights"]["shape"] == ["N", 3]
    for entry, copy in zip(card.styles, style_files(model_dir, card), strict=True):
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == entry.sha256
    assert result.parity["passed"]


def test_graph_blends_styles_per_image(exported) -> None:
    run, _, result = exported
    session = ort.InferenceSession(str(result.model_path), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    assert inputs["image"].type == "tensor(uint8)"
    assert inputs["style_weights"].type == "tensor(float)"
    assert inputs["style_weights"].shape[1] == 3
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 37, 45, 3), dtype=np.uint8)
    weights = np.array([[1, 0, 0], [0.2, 0.3, 0.5]], dtype=np.float32)
    out = session.run(None, {"image": images, "style_weights": weights})[0]
    assert out.shape == images.shape and out.dtype == np.uint8
    reference = UInt8Graph(load_trained(run).network)
    with torch.no_grad():
        expected = reference(torch.from_numpy(images), torch.from_numpy(weights)).numpy()
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    # each row is its own mix: the first image alone in style 0 gives the same pixels
    alone = session.run(None, {"image": images[:1], "style_weights": weights[:1]})[0]
    assert np.abs(alone.astype(int) - out[:1].astype(int)).max() <= 1
    other = session.run(None, {"image": images[:1], "style_weights": weights[1:]})[0]
    assert np.abs(other.astype(int) - out[:1].astype(int)).mean() > 1  # the mix matters


def test_triton_config_declares_the_style_weights(exported) -> None:
    _, model_dir, _ = exported
    config = parse_config(model_dir / "config.pbtxt")
    schema = model_config_module()
    image, weights = config.input
    assert image.name == "image" and list(image.dims) == [-1, -1, 3]
    assert weights.name == "style_weights" and weights.data_type == schema.TYPE_FP32
    assert list(weights.dims) == [3]


def test_single_style_card_is_unchanged(tmp_path: Path, style_image: Path) -> None:
    run = make_run(tmp_path / "run", style_image)
    export_model(run, "one", tmp_path / "models")
    data = json.loads((tmp_path / "models" / "one" / "model.json").read_text())
    assert "styles" not in data and set(data["io"]) == {"input", "output"}
    card = read_card(tmp_path / "models" / "one")
    assert card.style_names == [] and card.styles == []
    config = parse_config(tmp_path / "models" / "one" / "config.pbtxt")
    assert [t.name for t in config.input] == ["image"]


def _rewrite(model_dir: Path, change) -> None:
    path = model_dir / "model.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["styles"].__setitem__(1, {**d["styles"][1], "name": "a:b"}), "letters"),
        (lambda d: d["styles"].__setitem__(1, dict(d["styles"][0])), "repeat"),
        (lambda d: d["styles"].__delitem__(slice(1, None)), "at least two"),
        (lambda d: d["io"].pop("style_weights"), "style_weights"),
        (lambda d: d["styles"].pop(), "style_weights"),
    ],
)
def test_bad_style_lists_are_refused(exported, tmp_path: Path, change, message) -> None:
    import shutil

    _, model_dir, _ = exported
    copy = shutil.copytree(model_dir, tmp_path / "trio")
    _rewrite(copy, change)
    with pytest.raises(StylecastError, match=message):
        read_card(copy)


def test_int8_of_a_multistyle_model_is_refused(exported, tmp_path: Path, content_images) -> None:
    run, _, _ = exported
    calibration = tmp_path / "cal"
    calibration.mkdir()
    for path in content_images[:4]:
        (calibration / path.name).write_bytes(path.read_bytes())
    with pytest.raises(StylecastError, match="multi-style"):
        export_model(run, "q", tmp_path / "models", calibration_dir=calibration)
