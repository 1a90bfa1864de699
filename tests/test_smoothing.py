"""Temporal smoothing (serving.smoothing) on synthetic sequences: it lowers the flicker figure
that `stylecast stylise` and `validate --video` report, follows a camera pan, leaves a static
scene static, lets a cut through untouched, and is the identity at strength 0. numpy only."""

from __future__ import annotations

import numpy as np
import pytest

from stylecast.serving.smoothing import TemporalSmoother, global_shift, shift_image
from stylecast.serving.video import ChangeMeter, Flicker, flicker

HEIGHT, WIDTH = 48, 64


def texture(seed: int = 0, height: int = 96, width: int = 160) -> np.ndarray:
    """Smooth random RGB texture (low-pass noise), 0-255 float."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft2(rng.normal(size=(3, height, width)))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    image = np.fft.irfft2(spectrum / (1 + 40 * np.hypot(fy, fx)) ** 2, s=(height, width))
    image = (image - image.min()) / (image.max() - image.min())
    return np.moveaxis(image * 255, 0, -1)


def pan(frames: int, step: int = 2) -> list[np.ndarray]:
    """A camera pan: a HEIGHT×WIDTH window sliding ``step`` px per frame over the texture."""
    scene = texture()
    return [
        scene[8 : 8 + HEIGHT, step * t : step * t + WIDTH].astype(np.uint8) for t in range(frames)
    ]


def flickering(content: list[np.ndarray], amount: float = 20.0) -> list[np.ndarray]:
    """A stand-in network: a fixed recolouring of the content plus fresh noise each frame."""
    rng = np.random.default_rng(1)
    return [
        np.clip(255 - c.astype(np.float32) + rng.normal(0, amount, c.shape), 0, 255).astype(
            np.uint8
        )
        for c in content
    ]


def measure(content: list[np.ndarray], stylised: list[np.ndarray]) -> Flicker:
    content_meter, stylised_meter = ChangeMeter(), ChangeMeter()
    for c, s in zip(content, stylised, strict=True):
        content_meter.add(c)
        stylised_meter.add(s)
    result = flicker(content_meter, stylised_meter)
    assert result is not None
    return result


def smoothed(content: list[np.ndarray], stylised: list[np.ndarray], strength: float) -> list:
    smoother = TemporalSmoother(strength)
    return [smoother(c, s) for c, s in zip(content, stylised, strict=True)]


@pytest.mark.parametrize("step", [0, 2])  # a static camera, and a pan
def test_smoothing_strictly_lowers_the_flicker_of_a_flickering_sequence(step):
    content = pan(12, step) if step else [pan(1)[0]] * 12
    if not step:  # a static camera films sensor noise
        rng = np.random.default_rng(2)
        content = [np.clip(c + rng.normal(0, 1, c.shape), 0, 255).astype(np.uint8) for c in content]
    stylised = flickering(content)
    before = measure(content, stylised)
    ratios = [measure(content, smoothed(content, stylised, s)).ratio for s in (0.25, 0.5, 0.8)]
    assert before.ratio is not None and before.ratio > 1.5  # the stand-in shimmers
    assert before.ratio > ratios[0] > ratios[1] > ratios[2]
    assert ratios[1] < 0.8 * before.ratio


def test_a_static_sequence_stays_static_and_unchanged():
    content = [pan(1)[0]] * 5
    stylised = [flickering(content[:1])[0]] * 5
    out = smoothed(content, stylised, 0.9)
    assert all(np.array_equal(frame, stylised[0]) for frame in out)
    assert measure(content, out) == Flicker(0.0, 0.0, 1.0)


def test_strength_zero_is_the_identity():
    content = pan(4)
    stylised = flickering(content)
    out = smoothed(content, stylised, 0.0)
    assert all(o is s for o, s in zip(out, stylised, strict=True))


def test_a_cut_passes_through_without_ghosting():
    dark = [(c * 0.4).astype(np.uint8) for c in pan(2)]  # levels 0-102
    bright = (150 + pan(3)[2] * 0.4).astype(np.uint8)  # levels 150-252: all changed
    content = [*dark, bright]
    stylised = flickering(content)
    out = smoothed(content, stylised, 1.0)
    assert not np.array_equal(out[1], stylised[1])  # smoothed before the cut
    assert np.array_equal(out[2], stylised[2])  # nothing of the old scene after it


def test_global_shift_finds_a_camera_move():
    scene = texture(3)
    first = scene[10:58, 20:84] @ np.array([0.299, 0.587, 0.114])
    moved = scene[7:55, 25:89] @ np.array([0.299, 0.587, 0.114])  # content moves down 3, left 5
    dy, dx = global_shift(first.astype(np.float32), moved.astype(np.float32))
    assert (round(dy), round(dx)) == (3, -5)
    assert abs(dy - 3) < 0.3 and abs(dx + 5) < 0.3
    shifted, valid = shift_image(scene[10:58, 20:84], 3, -5)
    assert np.allclose(shifted[valid], scene[7:55, 25:89][valid])
    assert not valid[:3].any() and not valid[:, -5:].any() and valid[3:, :-5].all()


def test_strength_outside_0_1_is_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        TemporalSmoother(1.5)
