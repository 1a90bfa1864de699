"""The transport-free stylise pipeline (serving.pipeline) that the server and `stylecast
stylise` share: each step happens once, in order, and inference is a hook."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from serving_fixtures import TINY_MODEL, encoded_image

from stylecast.serving import pipeline
from stylecast.serving.imaging import (
    EncodedImage,
    ImageError,
    OutputFormat,
    StyliseOptions,
    decode,
    decode_image,
    raw_image,
)
from stylecast.serving.model_card import MIN_SIDE
from stylecast.serving.pipeline import Inferred, prepare, stylise
from stylecast.serving.repository import ModelRepository
from stylecast.serving.runtime import RuntimeOptions

pytest_plugins = ("serving_fixtures",)

MODEL = object()  # the pipeline hands the model to the inference hook and nothing else


class Recorder:
    """An inference hook that inverts the image and remembers what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, tuple[int, ...]]] = []

    def __call__(self, model: object, content: np.ndarray, weights: object = None) -> Inferred:
        self.calls.append((model, content.shape))
        return Inferred(255 - content, queue_s=0.5, inference_s=0.25)


def rgb(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(height * width).integers(0, 256, (height, width, 3), np.uint8)


def test_the_hook_gets_the_downscaled_image_and_the_timings_come_back():
    infer = Recorder()
    result = stylise(
        MODEL, EncodedImage(encoded_image(96, "PNG")), StyliseOptions(max_side=48),
        OutputFormat("png"), infer=infer,
    )  # fmt: skip
    assert infer.calls == [(MODEL, (32, 48, 3))]
    assert (result.image.encoding, result.image.width, result.image.height) == ("png", 48, 32)
    timings = result.timings
    assert timings.queue_s == 0.5 and timings.inference_s >= 0.25  # the hook's, plus the blend
    assert timings.decode_s > 0 and timings.encode_s > 0


def test_downscale_happens_once_and_the_blend_sees_the_same_image(monkeypatch):
    sizes: list[tuple[int, ...]] = []
    real_downscale = pipeline.downscale

    def counting_downscale(image: np.ndarray, max_side: int) -> np.ndarray:
        sizes.append(image.shape)
        return real_downscale(image, max_side)

    monkeypatch.setattr(pipeline, "downscale", counting_downscale)
    content = rgb(40, 80)
    options = StyliseOptions(strength=0.0, max_side=20)  # strength 0: the content comes back
    result = stylise(MODEL, raw_image(content), options, OutputFormat("raw"), infer=Recorder())
    assert sizes == [(40, 80, 3)]
    assert np.array_equal(decode_image(result.image), prepare(raw_image(content), options).content)
    assert decode_image(result.image).shape == (10, 20, 3)


@pytest.mark.parametrize(
    ("shape", "max_side"), [((4, 40), 0), ((7, 9), 0), ((30, 300), 60)], ids=str
)
def test_images_below_the_minimum_side_never_reach_inference(shape, max_side):
    infer = Recorder()
    with pytest.raises(ImageError, match=f"at least {MIN_SIDE} pixels on each side"):
        stylise(MODEL, raw_image(rgb(*shape)), StyliseOptions(max_side=max_side), infer=infer)
    assert infer.calls == []  # checked after downscaling, before any inference slot is taken
    prepare(raw_image(rgb(MIN_SIDE, MIN_SIDE + 1)), StyliseOptions())  # the smallest accepted


def test_bad_images_are_image_errors_before_inference():
    infer = Recorder()
    for image in (EncodedImage(b"junk"), EncodedImage(b"\x00" * 11, "raw", 2, 2)):
        with pytest.raises(ImageError):
            stylise(MODEL, image, infer=infer)
    with pytest.raises(ImageError, match="over the limit"):
        stylise(MODEL, raw_image(rgb(64, 64)), max_pixels=32 * 32, infer=infer)
    assert infer.calls == []


def test_offline_default_runs_the_model(tiny_models_dir: Path):
    model = ModelRepository(tiny_models_dir, RuntimeOptions(intra_op_threads=1)).get(TINY_MODEL)
    data = encoded_image(64, "PNG")
    result = stylise(model, EncodedImage(data), output=OutputFormat("raw"))
    assert np.array_equal(decode_image(result.image), model.run(decode(data)))
    assert result.timings.queue_s == 0 and result.timings.inference_s > 0
    assert pipeline.run_now(model, decode(data)).image.shape == decode(data).shape
