"""The real-time CPU tier: the `rt` network preset, int8 export and distillation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from model_factory import make_run
from PIL import Image

from stylecast.cli import main
from stylecast.errors import StylecastError
from stylecast.serving.catalog import network_label
from stylecast.serving.codec import card_message
from stylecast.serving.model_card import read_card
from stylecast.serving.repository import ModelRepository
from stylecast.training.config import NetworkConfig, TrainConfig, network_from_dict, to_dict
from stylecast.training.export import export_model, export_onnx, parity_check
from stylecast.training.module import StyleTransferModule
from stylecast.training.network import (
    QuarterNet,
    TransformNet,
    build_network,
    depth_to_space,
    space_to_depth,
)
from stylecast.training.quantize import Int8Thresholds, psnr, split_calibration_dir


def test_rt_preset_builds_the_quarter_resolution_network() -> None:
    config = NetworkConfig.preset("rt")
    assert (config.width, config.residual_blocks, config.architecture) == (48, 5, "quarter")
    assert isinstance(build_network(config), QuarterNet)
    assert isinstance(build_network(NetworkConfig.preset("lite")), TransformNet)
    # Runs recorded before the architecture field existed are Johnson networks.
    assert network_from_dict({"width": 16, "residual_blocks": 3}).architecture == "johnson"
    with pytest.raises(StylecastError, match="unknown network architecture 'wide'"):
        NetworkConfig(8, 1, "wide")
    assert network_label(to_dict(config)) == "rt"
    assert network_label(to_dict(NetworkConfig(16, 3))) == "lite"
    assert network_label(to_dict(NetworkConfig(32, 2, "quarter"))) == "quarter, width 32, 2 blocks"


@pytest.mark.parametrize("size", [(8, 8), (9, 13), (37, 53), (64, 64), (97, 131)])  # MIN_SIDE 8
def test_rt_output_has_the_input_size_and_range(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = build_network(NetworkConfig.preset("rt")).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, *size)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_rt_pixels_have_their_own_outputs_within_a_fold_block() -> None:
    """Pixel-shuffle gives each pixel of a 4×4 block its own weights: a change to one input
    pixel changes output pixels around it, not the block as one flat patch."""
    torch.manual_seed(0)
    net = build_network(NetworkConfig.preset("rt")).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        block = net(x)[0, :, 8:12, 8:12]
    assert float(block.std(dim=(1, 2)).min()) > 0  # not constant over the block


def test_folds_match_torch_pixel_shuffles() -> None:
    x = torch.rand(2, 3, 16, 12)
    assert torch.equal(space_to_depth(x, 4), torch.nn.functional.pixel_unshuffle(x, 4))
    y = torch.rand(2, 48, 3, 5)
    assert torch.equal(depth_to_space(y, 4), torch.nn.functional.pixel_shuffle(y, 4))


def test_rt_exports_with_exact_sizes_and_passes_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_network(NetworkConfig.preset("rt")).eval()
    path = tmp_path / "rt.onnx"
    export_onnx(net, path)
    parity = parity_check(net, path, fp16=False)
    assert parity["passed"], parity
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n, h, w in ((1, 17, 23), (3, 64, 48)):  # any batch, any size
        image = np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        (out,) = session.run(None, {"image": image})
        assert out.shape == (n, h, w, 3) and out.dtype == np.uint8


# --- int8 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory: pytest.TempPathFactory, content_images) -> Path:
    """Eight small real photos (six calibrate, two are held aside)."""
    folder = tmp_path_factory.mktemp("calibration")
    for i, path in enumerate(content_images[:8]):
        with Image.open(path) as image:
            image.convert("RGB").resize((96, 64)).save(folder / f"{i:02d}.jpg")
    return folder


@pytest.fixture(scope="module")
def int8_models(tmp_path_factory, style_image, calibration_dir):
    root = tmp_path_factory.mktemp("int8")
    run = make_run(root / "run", style_image, network="rt")
    result = export_model(run, "rt_int8", root / "models", calibration_dir=calibration_dir)
    export_model(run, "rt_fp32", root / "models")
    return run, root / "models", result


def test_split_holds_one_in_four_aside(calibration_dir: Path, tmp_path: Path) -> None:
    split = split_calibration_dir(calibration_dir)
    assert [p.name for p in split.holdout] == ["03.jpg", "07.jpg"]
    assert len(split.calibration) == 6 and not set(split.calibration) & set(split.holdout)
    (tmp_path / "one.jpg").write_bytes((calibration_dir / "00.jpg").read_bytes())
    with pytest.raises(StylecastError, match="holds 1 image"):
        split_calibration_dir(tmp_path)
    with pytest.raises(StylecastError, match="calibration folder not found"):
        split_calibration_dir(tmp_path / "missing")


def test_int8_export_records_its_parity_against_fp32(int8_models) -> None:
    _, models, result = int8_models
    info = read_card(models / "rt_int8").versions["1"]
    assert info.precision == "int8" and info.parity_passed
    parity = info.parity
    assert parity["reference"] == "this model's fp32 export"
    assert set(parity["images"]) == {"03.jpg", "07.jpg"}
    assert parity["psnr_db"] >= Int8Thresholds().min_psnr_db
    assert parity["mean_abs"] <= Int8Thresholds().max_mean_abs
    assert parity["fp32_vs_torch"]["passed"]  # the graph it was quantised from was checked
    assert not (models / "rt_int8" / "1" / "fp32.onnx").exists()
    assert result.parity == parity


def test_int8_graph_is_quantised_and_close_to_fp32(int8_models, calibration_dir) -> None:
    import onnx

    _, models, _ = int8_models
    graph = onnx.load(str(models / "rt_int8" / "1" / "model.onnx")).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("QuantizeLinear") >= 7 and ops.count("DequantizeLinear") >= 7
    image = np.asarray(Image.open(calibration_dir / "03.jpg"))[None]
    outputs = [
        ort.InferenceSession(
            str(models / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
        ).run(None, {"image": image})[0]
        for name in ("rt_int8", "rt_fp32")
    ]
    assert outputs[0].shape == outputs[1].shape == image.shape
    diff = outputs[0].astype(float) - outputs[1].astype(float)
    assert 0 < np.abs(diff).mean() <= Int8Thresholds().max_mean_abs  # quantised, yet close


def test_int8_model_loads_serves_and_reports_its_precision(int8_models) -> None:
    _, models, _ = int8_models
    repository = ModelRepository(models)
    model = repository.get("rt_int8")
    assert model.served_precision == "int8"
    out = model.run(np.full((1, 33, 47, 3), 128, dtype=np.uint8))
    assert out.shape == (1, 33, 47, 3)
    (version,) = card_message(model).versions
    assert version.precision == "int8" and version.parity_passed


def test_int8_below_its_thresholds_is_refused_and_not_published(
    int8_models, calibration_dir, tmp_path, monkeypatch
) -> None:
    run, _, _ = int8_models
    monkeypatch.setattr(
        "stylecast.training.export.Int8Thresholds", lambda: Int8Thresholds(min_psnr_db=99.0)
    )
    with pytest.raises(StylecastError, match=r"int8 export failed its parity test.*needs >= 99"):
        export_model(run, "bad", tmp_path, calibration_dir=calibration_dir)
    assert not (tmp_path / "bad").exists()


def test_export_cli_int8_flags(int8_models, calibration_dir, tmp_path, capsys) -> None:
    run, _, _ = int8_models
    assert main(["export", str(run), "--name", "x", "--models-dir", str(tmp_path), "--int8"]) == 1
    assert "--int8 needs --calibration-dir" in capsys.readouterr().err
    args = ["export", str(run), "--name", "x", "--models-dir", str(tmp_path)]
    assert main([*args, "--calibration-dir", str(calibration_dir)]) == 1
    assert "only used with --int8" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--int8", "--fp16", "--calibration-dir", str(calibration_dir)])
    assert exit_info.value.code == 2
    assert main([*args, "--int8", "--calibration-dir", str(tmp_path / "none")]) == 1
    assert "calibration folder not found" in capsys.readouterr().err


def test_psnr_is_capped_for_identical_images() -> None:
    assert psnr(0.0) == 100.0
    assert psnr(255.0**2) == pytest.approx(0.0)


# --- distillation ---------------------------------------------------------------------------


def _module(style_image: Path, content_dir: Path, **overrides) -> StyleTransferModule:
    config = TrainConfig(
        style_image=str(style_image), content_dirs=(str(content_dir),), image_size=32,
        vgg_weights="random:0", network=NetworkConfig.preset("rt"), **overrides,
    )  # fmt: skip
    return StyleTransferModule(to_dict(config))


@pytest.mark.parametrize("teacher_kind", ["run", "model"])
def test_teacher_adds_a_distillation_term_to_the_loss(
    teacher_kind, int8_models, style_image, content_dir, tmp_path
) -> None:
    """--teacher (a run folder or an exported model folder) pulls the output toward the
    teacher's: the loss gains ``teacher_weight`` × the mean squared difference."""
    teacher_run, models, _ = int8_models
    teacher = teacher_run if teacher_kind == "run" else models / "rt_fp32"
    torch.manual_seed(1)  # the teacher is seed 0
    plain = _module(style_image, content_dir)
    torch.manual_seed(1)
    taught = _module(style_image, content_dir, teacher=str(teacher), teacher_weight=5.0)
    batch = torch.rand(2, 3, 32, 32)
    plain_terms, taught_terms = plain._terms(batch), taught._terms(batch)
    assert "distill" not in plain_terms
    distill = taught_terms["distill"].detach()
    with torch.no_grad():
        expected = torch.mean((taught.network(batch) - build_network_from(teacher_run)(batch)) ** 2)
    tolerance = 1e-6 if teacher_kind == "run" else 1e-3  # the model's targets are uint8
    assert float(distill) == pytest.approx(float(expected), abs=tolerance)
    assert float(distill) > 0
    assert float(taught_terms["total"]) == pytest.approx(
        float(plain_terms["total"]) + 5.0 * float(distill), rel=1e-5
    )
    taught_terms["total"].backward()  # the gradient reaches the student, never the teacher
    assert all(p.grad is not None for p in taught.network.parameters())
    assert all(p.grad is None for p in taught.teacher.parameters())  # type: ignore[union-attr]
    checkpoint = {"state_dict": taught.state_dict()}
    taught.on_save_checkpoint(checkpoint)
    assert not [k for k in checkpoint["state_dict"] if not k.startswith("network.")]


def build_network_from(run: Path):
    from stylecast.training.export import load_trained

    return load_trained(run).network


def test_bad_teacher_is_a_clear_error(style_image, content_dir, tmp_path) -> None:
    with pytest.raises(StylecastError, match=r"--teacher .*nowhere: not found"):
        _module(style_image, content_dir, teacher=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StylecastError, match=r"--teacher .*empty: .*not a finished training run"):
        _module(style_image, content_dir, teacher=str(tmp_path / "empty"))
    with pytest.raises(StylecastError, match="teacher weight must be >= 0"):
        _module(style_image, content_dir, teacher_weight=-1.0)


def test_train_cli_records_the_teacher(int8_models, style_image, content_dir, tmp_path) -> None:
    teacher_run, _, _ = int8_models
    out = tmp_path / "student"
    code = main([
        "train", "--style", str(style_image), "--content-dir", str(content_dir),
        "--out", str(out), "--network", "rt", "--image-size", "32", "--batch-size", "1",
        "--max-steps", "2", "--vgg-weights", "random:0", "--val-fraction", "0",
        "--teacher", str(teacher_run), "--teacher-weight", "3", "--no-export",
    ])  # fmt: skip
    assert code == 0
    record = json.loads((out / "config.json").read_text())
    assert record["train"]["teacher"] == str(teacher_run)
    assert record["train"]["teacher_weight"] == 3.0
    assert record["train"]["network"]["architecture"] == "quarter"
    assert "distill" in record["final_losses"]
