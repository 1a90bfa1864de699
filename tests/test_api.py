"""The Python API: ``stylecast.load`` (local, onnxruntime) and ``stylecast.connect`` (its
gRPC twin) on the bundled ``starry_night_lite`` model: the README's examples run as written,
each kind of image comes back as the kind it went in, errors are StylecastErrors with clear
messages, and ``import stylecast`` stays light (no onnxruntime, grpc or torch)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from serving_fixtures import server_config
from test_no_torch import BLOCK_TORCH

import stylecast
from stylecast.api import Model
from stylecast.errors import StylecastError
from stylecast.remote import Connection, RemoteModel
from stylecast.serving.client import ServerError
from stylecast.serving.imaging import BACKGROUND, ImageError, flatten
from stylecast.serving.server import StylecastServer

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
MODELS = REPO_ROOT / "models"
MODEL = "starry_night_lite"
PHOTO = REPO_ROOT / "assets" / "content" / "kodim23.jpg"  # 512x341
TOKEN = "api-test-token"


# -- fixtures -------------------------------------------------------------------------------


def start(**overrides: Any) -> StylecastServer:
    """A server on loopback serving the bundled models (no torch involved)."""
    return StylecastServer(server_config(MODELS, **overrides)).start()


@pytest.fixture(scope="module")
def server() -> Iterator[StylecastServer]:
    running = start()
    yield running
    running.stop(0)


@pytest.fixture(scope="module")
def local_model() -> Model:
    return stylecast.load(MODEL, models_dir=MODELS)


@pytest.fixture(scope="module")
def connection(server: StylecastServer) -> Iterator[Connection]:
    with stylecast.connect(server.address, timeout=30) as connected:
        yield connected


@pytest.fixture(params=["local", "remote"])
def model(request: pytest.FixtureRequest) -> Model | RemoteModel:
    """The same model, in-process and through the server: every test below runs on both."""
    if request.param == "local":
        return request.getfixturevalue("local_model")
    return request.getfixturevalue("connection").model(MODEL)


def photo(side: int = 96) -> Image.Image:
    """The bundled photo, longer side ``side``, as an RGB Pillow image."""
    with Image.open(PHOTO) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
    return image


def rgba(side: int = 96) -> np.ndarray:
    """The photo with an alpha ramp: transparent on the left, opaque on the right."""
    rgb = np.asarray(photo(side))
    ramp = np.linspace(0, 255, rgb.shape[1]).astype(np.uint8)
    return np.dstack((rgb, np.broadcast_to(ramp, rgb.shape[:2])))


# -- the README -----------------------------------------------------------------------------


def readme_examples() -> list[str]:
    """The python blocks of the README's "## Python API" section, which must come right
    after the "## Commands" section (its subsections included) and before the model
    repository."""
    text = README.read_text()
    headings = re.findall(r"^## .+$", text, re.MULTILINE)
    assert "## Python API" in headings, "README has no '## Python API' section"
    at = headings.index("## Python API")
    assert headings[at - 1] == "## Commands" and headings[at + 1] == "## Model repository"
    section = text.split("## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)


def promised_output(code: str) -> list[str]:
    """What the example's print lines say they print (their ``# comments``), in order."""
    return [
        line.split("  # ", 1)[1]
        for line in code.splitlines()
        if line.strip().startswith("print(") and "  # " in line
    ]


def run_example(
    code: str, folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> list[str]:
    """Run ``code`` in ``folder``, which sees the repository's models/ and assets/ (the
    README runs from the repository root); returns the lines it printed."""
    for name in ("models", "assets"):
        (folder / name).symlink_to(REPO_ROOT / name, target_is_directory=True)
    monkeypatch.chdir(folder)
    capsys.readouterr()
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    return capsys.readouterr().out.splitlines()


def test_readme_local_example_runs_as_written(tmp_path, monkeypatch, capsys):
    code = readme_examples()[0]
    assert "stylecast.load(" in code and "connect(" not in code
    printed = run_example(code, tmp_path, monkeypatch, capsys)
    assert printed == promised_output(code)
    assert len(printed) == 8
    with Image.open(tmp_path / "demo-out" / "kodim23.starry_night_lite.png") as saved:
        assert (saved.format, saved.size) == ("PNG", (256, 170))


def test_readme_remote_example_runs_against_a_live_server(server, tmp_path, monkeypatch, capsys):
    code = readme_examples()[1]
    assert code.count('"localhost:50051"') == 1
    # The one change: the live server's address for the port the README starts one on.
    code = code.replace('"localhost:50051"', repr(server.address))
    printed = run_example(code, tmp_path, monkeypatch, capsys)
    assert printed == promised_output(code) and len(printed) == 2


# -- kinds in, kinds out --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "kind", "shape"),
    [
        (lambda: str(PHOTO), Image.Image, (64, 43, "RGB")),
        (lambda: PHOTO, Image.Image, (64, 43, "RGB")),
        (lambda: photo(), Image.Image, (64, 43, "RGB")),
        (lambda: Image.fromarray(rgba()), Image.Image, (64, 43, "RGBA")),
        (lambda: photo().convert("L"), Image.Image, (64, 43, "RGB")),
        (lambda: np.asarray(photo()), np.ndarray, (43, 64, 3)),
        (lambda: rgba(), np.ndarray, (43, 64, 4)),
    ],
    ids=["str", "Path", "PIL-RGB", "PIL-RGBA", "PIL-L", "array-RGB", "array-RGBA"],
)
def test_each_kind_comes_back_as_it_went_in(model, make, kind, shape):
    out = model.stylise(make(), max_side=64)
    assert isinstance(out, kind)
    if isinstance(out, Image.Image):
        assert (*out.size, out.mode) == shape
    else:
        assert (out.dtype, out.shape) == (np.uint8, shape)
        assert out.std() > 5  # a picture, not a flat fill


def test_full_size_when_max_side_is_not_given(model):
    assert model.stylise(str(PHOTO)).size == (512, 341)
    assert model.stylise(np.asarray(photo(100))).shape == (67, 100, 3)


def test_strength_zero_gives_the_input_back(model):
    array = np.asarray(photo())
    assert np.array_equal(model.stylise(array, strength=0), array)
    with Image.open(PHOTO) as image:
        decoded = np.asarray(image.convert("RGB"))
    assert np.array_equal(np.asarray(model.stylise(PHOTO, strength=0)), decoded)
    full = model.stylise(array, strength=1)
    half = model.stylise(array, strength=0.5).astype(int)
    assert np.abs(half - (full.astype(int) + array) / 2).max() <= 1
    assert np.abs(full.astype(int) - array).mean() > 10  # strength 1 does change it


def test_transparency_is_handled_as_the_server_does(model):
    """The network sees the colours over white (hidden colours never show) and the result
    carries the input's alpha, resized with max_side."""
    image = rgba().copy()
    hidden = image.copy()
    hidden[..., :3][image[..., 3] == 0] = (255, 0, 0)  # another colour where it is invisible
    out = model.stylise(image)
    assert np.array_equal(out, model.stylise(hidden))
    assert np.array_equal(out[..., 3], image[..., 3])
    unchanged = model.stylise(image, strength=0)
    assert np.array_equal(unchanged[..., :3], flatten(image[..., :3], image[..., 3], BACKGROUND))
    assert model.stylise(image, max_side=48)[..., 3].shape == (32, 48)


def test_pillow_and_path_inputs_are_turned_upright(model, tmp_path):
    """A photo whose EXIF says "turn a quarter clockwise" comes back upright, as the server
    and `stylecast stylise` give it."""
    exif = Image.Exif()
    exif[274] = 6  # Orientation
    path = tmp_path / "sideways.jpg"
    photo().save(path, exif=exif)  # stored 96x64
    with Image.open(path) as opened:
        assert model.stylise(opened).size == (64, 96)
    assert model.stylise(path).size == (64, 96)


def test_local_and_remote_agree(local_model, connection):
    remote = connection.model(MODEL)
    for image in (str(PHOTO), np.asarray(photo(128)), rgba(128)):
        here = np.asarray(local_model.stylise(image, strength=0.9, max_side=128), np.int16)
        there = np.asarray(remote.stylise(image, strength=0.9, max_side=128), np.int16)
        assert here.shape == there.shape
        assert np.abs(here - there).max() <= 2 and np.abs(here - there).mean() < 0.1


def test_preserve_color_keeps_the_colours(model):
    array = np.asarray(photo())
    kept = model.stylise(array, preserve_color=True)

    def chroma(pixels: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(pixels).convert("YCbCr"), np.int16)[..., 1:]

    assert np.abs(chroma(kept) - chroma(array)).mean() < 3
    assert np.abs(chroma(model.stylise(array)) - chroma(array)).mean() > 3


def test_models_expose_name_version_and_card(model):
    assert (model.name, model.version) == (MODEL, 1)
    assert model.card.name == MODEL and model.card.testing_only is True
    with pytest.raises(AttributeError):
        model.card = None
    assert MODEL in repr(model)


def test_listing_models(connection):
    assert stylecast.models(MODELS) == [
        "great_wave_lite",
        "starry_night_lite",
        "starry_night_rt",
        "starry_night_rt_int8",
        "two_styles_lite",
    ]
    assert connection.models() == stylecast.models(MODELS)


# -- errors ---------------------------------------------------------------------------------


def _not_an_image(folder: Path) -> Path:
    path = folder / "notes.jpg"
    path.write_text("these are notes, not a photo\n")
    return path


BAD_INPUTS: list[tuple[str, Callable[[Path], Any], dict[str, Any], str]] = [
    ("2-channel", lambda _: np.zeros((32, 32, 2), np.uint8), {},
     r"uint8 array of shape \(H, W, 3\) \(RGB\) or \(H, W, 4\) \(RGBA\), got uint8 \(32, 32, 2\)"),
    ("float", lambda _: np.zeros((32, 32, 3), np.float32), {},
     r"got float32 \(32, 32, 3\) \(scale floats in \[0, 1\] to \[0, 255\]"),
    ("grey-2d", lambda _: np.zeros((32, 32), np.uint8), {}, r"got uint8 \(32, 32\)"),
    ("missing", lambda d: d / "missing.jpg", {}, r"cannot read .*missing\.jpg: No such file"),
    ("folder", lambda d: d, {}, r"cannot read .*: Is a directory"),
    ("not-an-image", _not_an_image, {}, r"not a decodable JPEG, PNG or WebP image"),
    ("bytes", lambda _: b"\xff\xd8\xff", {},
     r"expected an image file's path, a Pillow image or a uint8 numpy array, got bytes"),
    ("too-small", lambda _: np.zeros((4, 40, 3), np.uint8), {},
     r"image is 40x4; the network needs at least 8 pixels on each side"),
    ("strength", lambda _: PHOTO, {"strength": 1.5}, r"strength must be in \[0, 1\] \(got 1\.5\)"),
    ("strength-type", lambda _: PHOTO, {"strength": "high"}, r"strength must be a number"),
    ("max_side", lambda _: PHOTO, {"max_side": -1}, r"max_side must be >= 0 \(got -1\)"),
    ("max_side-type", lambda _: PHOTO, {"max_side": 1.5}, r"max_side must be a whole number"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "options", "message"), [b[1:] for b in BAD_INPUTS],
                         ids=[b[0] for b in BAD_INPUTS])  # fmt: skip
def test_bad_inputs_raise_clear_stylecast_errors(model, tmp_path, make, options, message):
    with pytest.raises(StylecastError, match=message):
        model.stylise(make(tmp_path), **options)


def test_bad_images_are_named_locally(local_model, tmp_path):
    with pytest.raises(ImageError, match=r"^.*notes\.jpg: not a decodable"):
        local_model.stylise(_not_an_image(tmp_path))
    with pytest.raises(ImageError, match=r"^the array: image is 40x4"):
        local_model.stylise(np.zeros((4, 40, 3), np.uint8))


def test_a_broken_pillow_image_is_a_stylecast_error(model):
    buffer = io.BytesIO()
    photo().save(buffer, format="PNG")
    truncated = Image.open(io.BytesIO(buffer.getvalue()[:200]))  # the header reads, pixels fail
    with pytest.raises(ImageError, match=r"cannot read a Pillow image of mode RGB"):
        model.stylise(truncated)


def test_too_many_pixels_suggests_max_side(local_model):
    small = Model(local_model._model, max_pixels=40 * 40)
    array = np.asarray(photo(96))
    with pytest.raises(ImageError, match=r"over the limit of 1600; pass max_side"):
        small.stylise(array)
    assert small.stylise(array, max_side=40).shape == (27, 40, 3)


def test_inference_failures_are_stylecast_errors(monkeypatch):
    model = stylecast.load(MODEL, models_dir=MODELS)  # its own, to break it

    def fail(*_: object) -> None:
        raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : out of memory")

    monkeypatch.setattr(model._model, "run", fail)
    with pytest.raises(StylecastError, match=rf"model '{MODEL}' failed on the array \(64x43\)"):
        model.stylise(np.asarray(photo(64)))


def test_unknown_model_and_missing_folder(tmp_path, connection):
    with pytest.raises(
        StylecastError, match=r"unknown model 'nope' \(models in .*great_wave_lite, starry"
    ):
        stylecast.load("nope", models_dir=MODELS)
    with pytest.raises(ServerError, match=r"NOT_FOUND: .*'nope'") as raised:
        connection.model("nope")
    assert raised.value.code.name == "NOT_FOUND"
    for call in (lambda: stylecast.load(MODEL, tmp_path / "none"),
                 lambda: stylecast.models(tmp_path / "none")):  # fmt: skip
        with pytest.raises(StylecastError, match=r"models folder not found: .*none"):
            call()


# -- the remote twin ------------------------------------------------------------------------


def test_tokens_and_closing():
    secured = start(auth_tokens=(TOKEN,))
    try:
        with stylecast.connect(secured.address, timeout=30) as anonymous:
            with pytest.raises(ServerError, match="UNAUTHENTICATED") as raised:
                anonymous.model(MODEL)
            assert isinstance(raised.value, StylecastError)
        with stylecast.connect(secured.address, token=TOKEN, timeout=30) as connected:
            model = connected.model(MODEL)
            assert model.stylise(np.asarray(photo(32))).shape == (21, 32, 3)
        assert "closed" in repr(connected)
        with pytest.raises(StylecastError, match=r"the connection to .* is closed"):
            model.stylise(np.asarray(photo(32)))
    finally:
        secured.stop(0)


def test_no_server_is_a_server_error():
    nowhere = stylecast.connect("127.0.0.1:1", timeout=5)
    with nowhere, pytest.raises(ServerError, match="UNAVAILABLE"):
        nowhere.model(MODEL)


# -- imports --------------------------------------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip


def test_import_stylecast_is_light():
    result = run_python(
        """
        import sys
        import stylecast
        heavy = ("onnxruntime", "grpc", "torch", "numpy", "PIL")
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in heavy)
        assert not loaded, loaded
        assert {"load", "connect", "models"} <= set(dir(stylecast))
        try:
            stylecast.nothing_here
        except AttributeError as error:
            print(error)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "module 'stylecast' has no attribute 'nothing_here'\n"


def test_load_and_connect_work_without_torch():
    result = run_python(
        BLOCK_TORCH
        + f"""
import numpy as np
import stylecast
model = stylecast.load({MODEL!r}, models_dir={str(MODELS)!r})
assert model.stylise(np.zeros((16, 24, 3), np.uint8)).shape == (16, 24, 3)
assert "grpc" not in sys.modules
connection = stylecast.connect("127.0.0.1:1")
assert isinstance(connection, stylecast.Connection) and "(open)" in repr(connection)
connection.close()
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
assert not loaded, loaded
print("NO-TORCH-OK")
"""
    )
    assert result.returncode == 0 and result.stdout == "NO-TORCH-OK\n", result.stderr
