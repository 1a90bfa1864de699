"""Temporal smoothing of stylised video (numpy only): a recursive blend of each stylised frame
with the previous output, aligned to the camera's motion and gated by how much the content
changed, so a feed-forward network's frame-to-frame shimmer is damped without ghosting.

For frame t, with content c_t and the network's output s_t:

1. the global shift (dy, dx) from c_{t-1} to c_t is found by phase correlation (FFT, with a
   parabolic sub-pixel peak); the previous output o_{t-1} and content c_{t-1} are moved by it
   (bilinear; pixels that come in from outside the frame have no history);
2. per pixel, d = mean over channels of |c_t - moved c_{t-1}| in 0-255 levels;
3. o_t = w * moved o_{t-1} + (1 - w) * s_t with w = strength * max(0, 1 - d / CHANGE_SCALE).

Why this method: where the content under a pixel is unchanged (after following the camera),
the stylised pixel should be unchanged too, so any change there is shimmer and is damped;
where the content changed (an object moving, a cut, a pixel not explained by the global
motion) w falls to 0 and the network's output passes through, so nothing is dragged along.
Following the global motion matters: blending unaligned frames during a pan lowers the naive
frame-difference figure mostly by freezing texture to the screen ("shower door"), which is
worse to watch; aligned, the blend damps change along the motion itself. No optical flow
(OpenCV) is needed: only a camera's translation is followed, and local motion is gated out.

``strength`` 0 returns the network's frames untouched; a static scene stays static (identical
frames give identical outputs); ``strength`` 1 keeps the previous output wholly where the
content did not change at all.
"""

from __future__ import annotations

import math

import numpy as np

CHANGE_SCALE = 24.0  # content change (0-255 levels, after alignment) that keeps no history
ESTIMATE_SIDE = 512  # phase correlation runs on frames subsampled to at most this side
SNAP_PX = 0.1  # shifts smaller than this are taken as none (sensor noise, not motion)
GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def global_shift(previous: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """The translation (dy, dx) in pixels that moves ``previous`` onto ``current`` (two grey
    [H, W] images of one size), by phase correlation with a Hann window."""
    step = max(1, math.ceil(max(previous.shape) / ESTIMATE_SIDE))
    a, b = previous[::step, ::step], current[::step, ::step]
    height, width = a.shape
    window = np.outer(np.hanning(height), np.hanning(width)).astype(np.float32)
    fa = np.fft.rfft2((a - a.mean()) * window)
    fb = np.fft.rfft2((b - b.mean()) * window)
    cross = fb * np.conj(fa)
    surface = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=(height, width))
    y, x = np.unravel_index(int(np.argmax(surface)), surface.shape)
    dy = y + _parabolic_peak(
        surface[(y - 1) % height, x], surface[y, x], surface[(y + 1) % height, x]
    )
    dx = x + _parabolic_peak(
        surface[y, (x - 1) % width], surface[y, x], surface[y, (x + 1) % width]
    )
    dy = dy - height if dy > height / 2 else dy
    dx = dx - width if dx > width / 2 else dx
    dy, dx = dy * step, dx * step
    return (0.0 if abs(dy) < SNAP_PX else dy), (0.0 if abs(dx) < SNAP_PX else dx)


def _parabolic_peak(left: float, centre: float, right: float) -> float:
    curvature = left - 2 * centre + right
    return 0.0 if curvature >= 0 else float(0.5 * (left - right) / curvature)


def shift_image(image: np.ndarray, dy: float, dx: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` moved by (dy, dx) pixels (bilinear, float32): out[y, x] = image[y - dy, x - dx];
    and the mask of the pixels that came from inside the image."""
    height, width = image.shape[:2]
    iy, ix = math.floor(dy), math.floor(dx)
    fy, fx = dy - iy, dx - ix
    out = np.zeros(image.shape, dtype=np.float32)
    valid = np.ones((height, width), dtype=bool)
    for oy, wy in ((0, 1 - fy), (1, fy)):
        for ox, wx in ((0, 1 - fx), (1, fx)):
            if wy * wx == 0:
                continue
            moved, inside = _translate(image, iy + oy, ix + ox)
            out += np.float32(wy * wx) * moved
            valid &= inside
    return out, valid


def _translate(image: np.ndarray, sy: int, sx: int) -> tuple[np.ndarray, np.ndarray]:
    height, width = image.shape[:2]
    out = np.zeros(image.shape, dtype=np.float32)
    inside = np.zeros((height, width), dtype=bool)
    if abs(sy) >= height or abs(sx) >= width:
        return out, inside
    target = (slice(max(sy, 0), height + min(sy, 0)), slice(max(sx, 0), width + min(sx, 0)))
    source = (slice(max(-sy, 0), height + min(-sy, 0)), slice(max(-sx, 0), width + min(-sx, 0)))
    out[target] = image[source]
    inside[target] = True
    return out, inside


class TemporalSmoother:
    """Feed frames in order: ``smoother(content, stylised)`` → the smoothed stylised frame
    (uint8, the same size). A frame of another size starts afresh."""

    def __init__(self, strength: float, change_scale: float = CHANGE_SCALE) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"smoothing strength must be in [0, 1] (got {strength})")
        self.strength = strength
        self.change_scale = change_scale
        self._content: np.ndarray | None = None  # previous content, float32 RGB
        self._output: np.ndarray | None = None  # previous output, float32 (unrounded)

    def reset(self) -> None:
        """Forget the history (a cut, or a new video)."""
        self._content = self._output = None

    def __call__(self, content: np.ndarray, stylised: np.ndarray) -> np.ndarray:
        if self.strength == 0:
            return stylised
        current = content.astype(np.float32)
        fresh = stylised.astype(np.float32)
        if self._content is None or self._output is None or self._content.shape != current.shape:
            output = fresh
        else:
            dy, dx = global_shift(self._content @ GREY, current @ GREY)
            history, valid = shift_image(self._output, dy, dx)
            before, _ = shift_image(self._content, dy, dx)
            change = np.abs(current - before).mean(axis=-1)
            weight = self.strength * np.clip(1 - change / self.change_scale, 0, 1) * valid
            weight = weight[..., None].astype(np.float32)
            output = weight * history + (1 - weight) * fresh
        self._content, self._output = current, output
        return np.clip(np.rint(output), 0, 255).astype(np.uint8)
