"""What the Python API takes and gives back, locally (``stylecast.api``) and over gRPC
(``stylecast.remote``): an image file's path, a Pillow image, or a uint8 numpy array of shape
[H, W, 3] (RGB) or [H, W, 4] (RGBA).

``read_input`` turns one into an ``Input`` (a file's bytes, or pixels read by
serving.imaging's rules), ``stylise_options`` checks the options the same way on both sides,
and ``give_back`` returns a result in the kind its input came as: an array for an array (with
the input's alpha channel, if it had one), a Pillow image for a Pillow image or a path (RGBA
when the input was transparent). Numpy and Pillow only: no onnxruntime, grpc or torch.
"""

from __future__ import annotations

import numbers
import operator
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
from PIL import Image

from stylecast.errors import StylecastError
from stylecast.serving.image_files import STDIO, read_bounded
from stylecast.serving.imaging import ImageError, Pixels, StyliseOptions, read_pillow
from stylecast.serving.styles import StyleRequestError
from stylecast.serving.stylise import DEFAULT_MAX_BYTES

PathLike: TypeAlias = str | os.PathLike[str]
ImageLike: TypeAlias = PathLike | Image.Image | np.ndarray


@dataclass(frozen=True)
class Input:
    """One image handed to ``stylise``: a file's ``data`` or in-memory ``pixels`` (exactly
    one is set); ``name`` names it in messages; ``as_array``: give the result as an array."""

    name: str
    as_array: bool
    data: bytes | None = None
    pixels: Pixels | None = None


def read_input(image: ImageLike, max_bytes: int = DEFAULT_MAX_BYTES) -> Input:
    """``image`` as an Input: a path's bytes (at most ``max_bytes``), or the pixels of a
    Pillow image or an array. Raises StylecastError naming what is wrong with it."""
    if isinstance(image, np.ndarray):
        return Input("the array", True, pixels=array_pixels(image))
    if isinstance(image, Image.Image):
        return Input("the Pillow image", False, pixels=read_pillow(image))
    if isinstance(image, str | os.PathLike):
        path = str(Path(image))
        # read_bounded takes "-" for stdin; here it is a file named "-".
        data = read_bounded(os.path.join(".", path) if path == STDIO else path, max_bytes)
        return Input(path, False, data=data)
    raise StylecastError(
        "expected an image file's path, a Pillow image or a uint8 numpy array, "
        f"got {type(image).__name__}"
    )


def array_pixels(array: np.ndarray) -> Pixels:
    """A uint8 array [H, W, 3] (RGB) or [H, W, 4] (RGBA) as Pixels (alpha apart)."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
        hint = ""
        if np.issubdtype(array.dtype, np.floating):
            hint = " (scale floats in [0, 1] to [0, 255] and convert with .astype(np.uint8))"
        raise ImageError(
            "expected a uint8 array of shape (H, W, 3) (RGB) or (H, W, 4) (RGBA), "
            f"got {array.dtype} {array.shape}{hint}"
        )
    if array.shape[2] == 4:
        return Pixels(array[..., :3], array[..., 3])
    return Pixels(array)


def stylise_options(
    strength: float,
    preserve_color: bool,
    max_side: int,
    style: str = "",
    mix: Mapping[str, float] | None = None,
) -> StyliseOptions:
    """The pipeline's options from the API's arguments; raises ImageError for a value out of
    range or of the wrong type, StyleRequestError for a style or mix of the wrong type (the
    same errors locally and remotely; serving.styles, or the server, checks the rest)."""
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real):
        raise ImageError(f"strength must be a number in [0, 1] (got {strength!r})")
    try:
        side = operator.index(max_side)
    except TypeError:
        raise ImageError(
            f"max_side must be a whole number of pixels, 0 for no limit (got {max_side!r})"
        ) from None
    if not isinstance(style, str):
        raise StyleRequestError(f"style must be a style's name (got {style!r})")
    if mix is not None and not isinstance(mix, Mapping):
        raise StyleRequestError(f"mix must be a dict of style name to weight (got {mix!r})")
    pairs = sorted((mix or {}).items())
    for name, weight in pairs:
        number = isinstance(weight, numbers.Real) and not isinstance(weight, bool)
        if not isinstance(name, str) or not number:
            raise StyleRequestError(
                f"mix must map style names to numbers (got {name!r}: {weight!r})"
            )
    return StyliseOptions(
        float(strength),
        bool(preserve_color),
        side,
        style=style,
        mix=tuple((name, float(weight)) for name, weight in pairs),
    )


def give_back(source: Input, rgb: np.ndarray, alpha: np.ndarray | None) -> Image.Image | np.ndarray:
    """A stylised image (RGB, and the input's alpha or None) in the kind ``source`` came as."""
    image = rgb if alpha is None else np.dstack((rgb, alpha))
    return image if source.as_array else Image.fromarray(image)
