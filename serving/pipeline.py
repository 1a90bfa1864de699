"""The stylise pipeline, one image at a time, shared by the gRPC server and `stylecast stylise`:

    decode → orient → flatten → downscale → check the minimum side → infer → blend → encode

Transport-free: encoded images in and out (``imaging.EncodedImage``), no gRPC or protobuf.
Each step happens here and only here. Inference is a hook (``Infer``): offline it simply runs
the model (``run_now``); the server's hook waits for an inference slot (or joins a batch),
stops the run when its call ends and counts the outcome (``serving.inference``). The hook is
all that holds a slot: decoding before it and blending and encoding after it run on the
caller's thread, so a large image's blend never keeps the accelerator waiting.

Multi-style models: the options' style or mix becomes the weights row the hook passes on
(``serving.styles``; None for a single-style model), checked before any decoding.

``flatten`` composites a transparent input over ``imaging.BACKGROUND`` (white) for the
network; the input's alpha is resized with the image and handed to the encoder, which keeps
it (PNG, WebP) or composites the result over the same background (JPEG, raw RGB).
serving.imaging says how EXIF orientation, 16-bit channels and transparency are read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .imaging import (
    DEFAULT_MAX_PIXELS,
    EncodedImage,
    ImageError,
    OutputFormat,
    Pixels,
    StyliseOptions,
    blend,
    downscale,
    encode_image,
    flatten,
    orient,
    read_image,
)
from .model_card import MIN_SIDE
from .styles import style_weights

if TYPE_CHECKING:
    from .runtime import StyleModel


@dataclass(frozen=True)
class Inferred:
    """The network's output for one image, and the seconds spent getting it."""

    image: np.ndarray
    queue_s: float = 0.0  # waiting for an inference slot
    inference_s: float = 0.0  # running the network


# The inference step: (model, prepared RGB image, style weights or None) → Inferred.
Infer = Callable[["StyleModel", np.ndarray, "np.ndarray | None"], Inferred]


def run_now(model: StyleModel, content: np.ndarray, weights: np.ndarray | None = None) -> Inferred:
    """Inference with no slot to wait for (offline): run the network on this thread."""
    start = time.perf_counter()
    out = model.run(content, style_weights=weights)
    return Inferred(out, 0.0, time.perf_counter() - start)


def request_weights(model: StyleModel, options: StyliseOptions) -> np.ndarray | None:
    """The style weights row the options ask of ``model`` (None: a single-style model);
    StyleRequestError for a style or mix it cannot honour."""
    names = getattr(model, "style_names", ())  # a stand-in without them: one style
    return style_weights(names, options.style, dict(options.mix), getattr(model, "name", ""))


@dataclass(frozen=True)
class Timings:
    """Where the time of one image went, in seconds (the API's ``Timings``)."""

    decode_s: float  # decoding and downscaling
    queue_s: float  # waiting for an inference slot
    inference_s: float  # the network plus the strength and preserve_color blend
    encode_s: float


@dataclass(frozen=True)
class Prepared:
    """The network's input (upright RGB over the background, downscaled) and the input's
    alpha at the same size (None: the input is opaque)."""

    content: np.ndarray
    alpha: np.ndarray | None = None


@dataclass(frozen=True)
class Stylised:
    """A stylised, encoded image and its timings."""

    image: EncodedImage
    timings: Timings


def check_min_side(image: np.ndarray) -> None:
    """Refuse an image smaller than the exported graphs accept (``model_card.MIN_SIDE``)."""
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ImageError(
            f"image is {width}x{height}; the network needs at least {MIN_SIDE} pixels on each side"
        )


def prepare(
    image: EncodedImage, options: StyliseOptions, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Prepared:
    """decode → orient → flatten → downscale → check the minimum side: the network's input
    and the alpha to put back."""
    # The pixel limit is checked from the header; a JPEG that max_side brings under it is
    # decoded at a reduced scale instead of refused.
    return prepare_pixels(read_image(image, max_pixels, options.max_side), options)


def prepare_pixels(pixels: Pixels, options: StyliseOptions) -> Prepared:
    """orient → flatten → downscale → check the minimum side, for pixels already read
    (``prepare``'s second half; the Python API's arrays and Pillow images start here)."""
    pixels = orient(pixels)  # upright by the EXIF orientation
    content = downscale(flatten(pixels.rgb, pixels.alpha), options.max_side)
    alpha = None if pixels.alpha is None else downscale(pixels.alpha, options.max_side)
    check_min_side(content)
    return Prepared(content, alpha)


def stylise(
    model: StyleModel,
    image: EncodedImage,
    options: StyliseOptions | None = None,
    output: OutputFormat | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    infer: Infer = run_now,
) -> Stylised:
    """Stylise one encoded image with ``model``: ``prepare`` it, ``infer``, blend with the
    options, encode as ``output`` asks (default: JPEG, quality 90) with the input's alpha.
    Raises ImageError for a bad image, StyleRequestError for a style or mix ``model`` does
    not have; ``infer``'s own exceptions pass through."""
    options = options or StyliseOptions()
    output = output or OutputFormat()
    start = time.perf_counter()
    weights = request_weights(model, options)
    prepared = prepare(image, options, max_pixels)
    decoded = time.perf_counter()
    inferred = infer(model, prepared.content, weights)
    blend_start = time.perf_counter()
    out = blend(prepared.content, inferred.image, options)
    blended = time.perf_counter()
    encoded = encode_image(out, output, prepared.alpha)
    timings = Timings(
        decode_s=decoded - start,
        queue_s=inferred.queue_s,
        inference_s=inferred.inference_s + (blended - blend_start),
        encode_s=time.perf_counter() - blended,
    )
    return Stylised(encoded, timings)
