"""The torch-free runtime: model repository (failure isolation, versions, reload) and the
per-request image options."""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from model_factory import make_run
from PIL import Image

from stylecast.errors import StylecastError
from stylecast.serving import imaging, pipeline
from stylecast.serving.imaging import (
    ImageError,
    ImageTooLarge,
    OutputFormat,
    StyliseOptions,
    raw_image,
)
from stylecast.serving.repository import ModelNotFound, ModelRepository
from stylecast.serving.runtime import RuntimeOptions, select_providers
from stylecast.training.export import export_model


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory, style_image: Path):
    root = tmp_path_factory.mktemp("repo")
    run = make_run(root / "run", style_image)
    export_model(run, "good", root / "models")
    return root / "models" / "good"


def copy_model(source: Path, models: Path, name: str) -> Path:
    target = models / name
    shutil.copytree(source, target)
    card = json.loads((target / "model.json").read_text())
    card["name"] = name
    (target / "model.json").write_text(json.dumps(card))
    return target


def test_corrupt_and_mismatched_models_are_skipped_others_load(good_model, tmp_path) -> None:
    copy_model(good_model, tmp_path, "ok")
    truncated = copy_model(good_model, tmp_path, "truncated")
    onnx_path = truncated / "1" / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes()[:1000])
    mismatched = copy_model(good_model, tmp_path, "mismatched")
    card = json.loads((mismatched / "model.json").read_text())
    card["name"] = "someone-else"
    (mismatched / "model.json").write_text(json.dumps(card))
    (tmp_path / "nocard").mkdir()
    repo = ModelRepository(tmp_path)
    assert [m.name for m in repo.models()] == ["ok"]
    assert "SHA-256" in repo.errors["truncated"]
    assert "card names model" in repo.errors["mismatched"]
    assert "model card missing" in repo.errors["nocard"]


def test_sha_matching_but_invalid_onnx_is_reported(good_model, tmp_path) -> None:
    import hashlib

    broken = copy_model(good_model, tmp_path, "broken")
    (broken / "1" / "model.onnx").write_bytes(b"garbage")
    info = json.loads((broken / "1" / "version.json").read_text())
    info["sha256"] = hashlib.sha256(b"garbage").hexdigest()
    (broken / "1" / "version.json").write_text(json.dumps(info))
    repo = ModelRepository(tmp_path)
    assert repo.models() == []
    assert "onnxruntime cannot load" in repo.errors["broken"]


def test_missing_folder_and_unknown_model(tmp_path, good_model) -> None:
    with pytest.raises(StylecastError, match="models folder not found"):
        ModelRepository(tmp_path / "absent")
    copy_model(good_model, tmp_path, "only")
    with pytest.raises(ModelNotFound, match=r"unknown model 'nope'.*only"):
        ModelRepository(tmp_path).get("nope")


def test_broken_new_version_keeps_old_one_serving_and_reload_tracks_changes(
    good_model, tmp_path
) -> None:
    model_dir = copy_model(good_model, tmp_path, "m")
    repo = ModelRepository(tmp_path)
    assert repo.get("m").version == 1
    # A version 2 half-copied by hand (graph truncated) must not replace v1, nor one
    # without its version.json, nor a folder that is no version number at all.
    shutil.copytree(model_dir / "1", model_dir / "2")
    (model_dir / "2" / "model.onnx").write_bytes(b"partial")
    (model_dir / "3").mkdir()
    (model_dir / "3" / "model.onnx").write_bytes(b"no metadata")
    (model_dir / "²").mkdir()
    report = repo.reload()
    assert repo.get("m").version == 1
    assert "2/model.onnx: file does not match its version's SHA-256" in repo.errors["m"]
    assert "3/version.json: version metadata missing" in repo.errors["m"]
    # Broken newer versions change nothing that is served: a failure, not a reload success.
    assert report.loaded == [] and set(report.failed) == {"m"}
    # A new model appears; a removed one disappears.
    copy_model(good_model, tmp_path, "new")
    shutil.rmtree(model_dir)
    report = repo.reload()
    assert report.loaded == ["new"] and report.removed == ["m"]
    assert [m.name for m in repo.models()] == ["new"]
    assert repo.reload().loaded == []  # nothing changed: nothing reloaded


def test_cpu_provider_always_available_and_unknown_provider_refused() -> None:
    assert "CPUExecutionProvider" in select_providers(RuntimeOptions())
    with pytest.raises(StylecastError, match="not available"):
        select_providers(RuntimeOptions(providers=("NoSuchExecutionProvider",)))


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_strength_zero_returns_the_content_and_one_the_stylised() -> None:
    content, stylised = rgb(20, 30, 1), rgb(20, 30, 2)
    assert np.array_equal(imaging.blend(content, stylised, StyliseOptions(strength=0.0)), content)
    assert np.array_equal(imaging.blend(content, stylised, StyliseOptions()), stylised)
    half = imaging.blend(content, stylised, StyliseOptions(strength=0.5)).astype(int)
    assert np.abs(half - (content.astype(int) + stylised) / 2).max() <= 1


def test_preserve_color_keeps_content_chroma_and_stylised_luma() -> None:
    # Mid-range colours, so that mixing luma and chroma stays inside the RGB gamut.
    content, stylised = rgb(32, 32, 3) // 2 + 64, rgb(32, 32, 4) // 2 + 64
    out = imaging.blend(content, stylised, StyliseOptions(preserve_color=True))

    def ycbcr(a: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(a).convert("YCbCr")).astype(int)

    # One RGB round trip costs a level or two; chroma must follow the content, luma the style.
    assert np.abs(ycbcr(out)[..., 1:] - ycbcr(content)[..., 1:]).mean() < 2
    assert np.abs(ycbcr(out)[..., 0] - ycbcr(stylised)[..., 0]).mean() < 2
    assert np.abs(ycbcr(out)[..., 1:] - ycbcr(stylised)[..., 1:]).mean() > 5


def test_max_side_downscales_keeping_aspect(good_model, tmp_path) -> None:
    copy_model(good_model, tmp_path, "m")
    model = ModelRepository(tmp_path).get("m")

    def stylised_shape(height: int, width: int) -> tuple[int, int]:
        options, raw = StyliseOptions(max_side=50), OutputFormat("raw")
        out = pipeline.stylise(model, raw_image(rgb(height, width)), options, raw).image
        return out.height, out.width

    assert stylised_shape(100, 200) == (25, 50)
    assert stylised_shape(30, 40) == (30, 40)


def test_images_below_the_graphs_minimum_side_are_a_clear_error(good_model, tmp_path) -> None:
    copy_model(good_model, tmp_path, "m")
    model = ModelRepository(tmp_path).get("m")
    for shape in ((3, 3, 3), (4, 40, 3)):
        with pytest.raises(ImageError, match="at least 8 pixels"):
            pipeline.stylise(model, raw_image(np.zeros(shape, dtype=np.uint8)))
    assert model.run(np.zeros((8, 9, 3), dtype=np.uint8)).shape == (8, 9, 3)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size (a decompression bomb's header) with no real pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decode_rejects_bombs_garbage_truncation_and_bad_raw() -> None:
    with pytest.raises(ImageTooLarge, match="over the limit"):
        imaging.decode(png_header_only(5000, 5000))  # over our 4096² default
    with pytest.raises(ImageTooLarge):
        imaging.decode(png_header_only(100_000, 100_000))  # over Pillow's own bomb guard
    with pytest.raises(ImageError, match="not a decodable"):
        imaging.decode(b"definitely not an image")
    with pytest.raises(ImageError, match="empty"):
        imaging.decode(b"")
    buffer = io.BytesIO()
    Image.fromarray(rgb(64, 64)).save(buffer, format="PNG")
    with pytest.raises(ImageError):
        imaging.decode(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match="needs 12"):
        imaging.from_raw(b"\x00" * 11, 2, 2)
    with pytest.raises(ImageError, match="no pixels"):
        imaging.from_raw(b"", 0, 5)
    with pytest.raises(ImageError, match="strength"):
        StyliseOptions(strength=1.5)


@pytest.mark.parametrize("encoding", imaging.FILE_ENCODINGS)
def test_encode_decode_round_trip(encoding: str) -> None:
    image = np.zeros((16, 24, 3), dtype=np.uint8)
    image[:, 12:] = 200
    back = imaging.decode(imaging.encode(image, encoding, quality=95))
    assert back.shape == image.shape
    assert np.abs(back.astype(int) - image).mean() < 4


@pytest.mark.parametrize(
    "edit, fragment",
    [
        ({"io": []}, "field 'io' must be dict"),
        ({"train_config": "x"}, "field 'train_config' must be dict"),
        ({"final_losses": {"style": "low"}}, "final_losses['style'] must be a number"),
        ({"testing_only": "yes"}, "field 'testing_only' must be bool"),
        ({"name": None}, "field 'name' must be str"),
    ],
)
def test_a_card_of_the_wrong_shape_rejects_that_model_only(good_model, tmp_path, edit, fragment):
    """A card that parses as JSON but breaks the schema rejects its model with the field named,
    never a traceback; the other models load."""
    copy_model(good_model, tmp_path, "fine")
    bad = copy_model(good_model, tmp_path, "bad")
    card = json.loads((bad / "model.json").read_text())
    (bad / "model.json").write_text(json.dumps({**card, **edit}))
    repo = ModelRepository(tmp_path)
    assert [m.name for m in repo.models()] == ["fine"]
    assert fragment in repo.errors["bad"]


@pytest.mark.parametrize(
    "edit, fragment",
    [
        ({"parity": "yes"}, "field 'parity' must be dict"),
        ({"opset": "20"}, "field 'opset' must be int"),
        ({"opset": True}, "field 'opset' must be int"),
        ({"precision": "int4"}, "precision 'int4'"),
        ({"sha256": "abc"}, "sha256 is not 64"),
    ],
)
def test_bad_version_metadata_falls_back_to_the_older_version(good_model, tmp_path, edit, fragment):
    model_dir = copy_model(good_model, tmp_path, "m")
    shutil.copytree(model_dir / "1", model_dir / "2")
    info = json.loads((model_dir / "2" / "version.json").read_text())
    (model_dir / "2" / "version.json").write_text(json.dumps({**info, **edit}))
    repo = ModelRepository(tmp_path)
    assert repo.get("m").version == 1
    assert fragment in repo.errors["m"]


def test_odd_folders_and_an_unreadable_model_do_not_stop_the_scan(good_model, tmp_path) -> None:
    copy_model(good_model, tmp_path, "fine")
    (tmp_path / "fine" / "²").mkdir()  # a non-ASCII digit is no version number
    (tmp_path / "fine" / "latest").mkdir()
    repo = ModelRepository(tmp_path)
    assert repo.get("fine").version == 1
    assert "fine" not in repo.errors


@pytest.mark.parametrize(
    "where, edit, fragment",
    [
        ("version", {"opset": 2**40}, "opset 1099511627776 is out of range"),
        ("version", {"opset": -1}, "opset -1 is out of range"),
        ("card", {"description": "\ud800"}, "not valid UTF-8"),
        ("card", {"final_losses": {"style": 10**400}}, "out of range"),
    ],
)
def test_values_the_api_cannot_carry_are_rejected_when_read(
    good_model, tmp_path, where, edit, fragment
) -> None:
    """A card can be valid JSON of the right types and still hold values no protobuf message
    can carry (uint32 overflow, lone surrogates, huge numbers): rejected on reading."""
    model_dir = copy_model(good_model, tmp_path, "m")
    path = model_dir / ("model.json" if where == "card" else "1/version.json")
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **edit}))
    repo = ModelRepository(tmp_path)
    assert repo.models() == []
    assert fragment in repo.errors["m"]


def test_a_version_number_beyond_uint32_is_no_version(good_model, tmp_path) -> None:
    model_dir = copy_model(good_model, tmp_path, "m")
    shutil.copytree(model_dir / "1", model_dir / str(2**32))
    assert ModelRepository(tmp_path).get("m").version == 1
