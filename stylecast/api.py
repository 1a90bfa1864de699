"""The local Python API: ``load`` a model from a models folder and ``stylise`` image files,
Pillow images or arrays on this machine, with onnxruntime and without torch.

    import stylecast

    model = stylecast.load("starry_night_lite", models_dir="models")
    picture = model.stylise("photo.jpg", strength=0.8, max_side=1024)  # a Pillow image

Each image goes through serving.pipeline, the steps `stylecast stylise` and the server run
(decode, orient, flatten, downscale, check, infer, blend); only the last step differs: the
result is handed back in the kind the image came as (``stylecast.image_kinds``), not encoded.
Every error is a StylecastError (bad images: ``ImageError``), never onnxruntime's or Pillow's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np
from PIL import Image

from stylecast.errors import StylecastError
from stylecast.serving.imaging import (
    DEFAULT_MAX_PIXELS,
    EncodedImage,
    ImageError,
    ImageTooLarge,
    StyliseOptions,
    blend,
    check_size,
)
from stylecast.serving.pipeline import (
    Prepared,
    prepare,
    prepare_pixels,
    request_weights,
    run_now,
)
from stylecast.serving.stylise import load_model, model_names

from .image_kinds import ImageLike, Input, PathLike, give_back, read_input, stylise_options

if TYPE_CHECKING:
    from stylecast.serving.model_card import ModelCard
    from stylecast.serving.runtime import StyleModel

DEFAULT_MODELS_DIR = "models"


def load(name: str, models_dir: PathLike = DEFAULT_MODELS_DIR) -> Model:
    """Load model ``name`` (its newest working version) from ``models_dir``. Raises
    StylecastError for a missing folder, an unknown name or a model that does not load."""
    try:
        model = load_model(Path(models_dir), name)
    except ModuleNotFoundError as exc:
        if exc.name != "onnxruntime":
            raise
        raise StylecastError(
            "onnxruntime is not installed; install it with: pip install 'stylecast[serve]'"
        ) from None
    return Model(model)


def models(models_dir: PathLike = DEFAULT_MODELS_DIR) -> list[str]:
    """The names of the models in ``models_dir``, sorted (their folders; none is loaded)."""
    root = Path(models_dir)
    if not root.is_dir():
        raise StylecastError(f"models folder not found: {root}")
    return model_names(root)


class Model:
    """A loaded style model: ``stylise`` images with it on this machine.

    ``max_pixels``: the most pixels an image may have (files: as stored, as the server
    counts them; arrays and Pillow images: after ``max_side``)."""

    def __init__(self, model: StyleModel, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self._model = model
        self._max_pixels = max_pixels

    @property
    def name(self) -> str:
        return self._model.name

    @property
    def version(self) -> int:
        """The version loaded (the newest that works)."""
        return self._model.version

    @property
    def card(self) -> ModelCard:
        """The model card (``models/NAME/model.json`` and its versions); treat it as
        read-only."""
        return self._model.card

    @property
    def styles(self) -> list[str]:
        """A multi-style model's style names, in order (the first is the default); empty
        for a single-style model."""
        return list(self._model.style_names)

    def __repr__(self) -> str:
        return f"<stylecast.Model {self.name} v{self.version}>"

    @overload
    def stylise(
        self,
        image: np.ndarray,
        *,
        strength: float = 1.0,
        preserve_color: bool = False,
        max_side: int = 0,
        style: str = "",
        mix: Mapping[str, float] | None = None,
    ) -> np.ndarray: ...

    @overload
    def stylise(
        self,
        image: PathLike | Image.Image,
        *,
        strength: float = 1.0,
        preserve_color: bool = False,
        max_side: int = 0,
        style: str = "",
        mix: Mapping[str, float] | None = None,
    ) -> Image.Image: ...

    def stylise(
        self,
        image: ImageLike,
        *,
        strength: float = 1.0,
        preserve_color: bool = False,
        max_side: int = 0,
        style: str = "",
        mix: Mapping[str, float] | None = None,
    ) -> Image.Image | np.ndarray:
        """Stylise ``image``: a path (JPEG, PNG or WebP; gives a Pillow image), a Pillow
        image (gives one) or a uint8 array [H, W, 3] or [H, W, 4] (gives an array of the
        same channels). ``strength``: 0 the image unchanged, 1 fully stylised;
        ``preserve_color``: keep the image's colours; ``max_side``: shrink so the longer side
        is at most this (0: no limit). Multi-style models (``styles``): ``style`` names the
        style to apply, or ``mix`` blends several (``{"starry_night": 0.7, "great_wave":
        0.3}``; weights >= 0, normalised); neither: the first style. Transparency is kept:
        the network sees the image over white, and the result carries the input's alpha."""
        options = stylise_options(strength, preserve_color, max_side, style, mix)
        weights = request_weights(self._model, options)
        source = read_input(image)
        prepared = self._prepare(source, options)
        try:
            stylised = run_now(self._model, prepared.content, weights).image
        except Exception as exc:  # onnxruntime raises its own types (Fail, RuntimeException…)
            height, width = prepared.content.shape[:2]
            raise StylecastError(
                f"model {self.name!r} failed on {source.name} ({width}x{height}): "
                f"{str(exc) or type(exc).__name__}"
            ) from None
        return give_back(source, blend(prepared.content, stylised, options), prepared.alpha)

    def _prepare(self, source: Input, options: StyliseOptions) -> Prepared:
        """The network's input and the alpha to put back; errors name the image."""
        try:
            if source.data is not None:
                return prepare(EncodedImage(source.data), options, self._max_pixels)
            assert source.pixels is not None
            prepared = prepare_pixels(source.pixels, options)
            height, width = prepared.content.shape[:2]
            try:
                check_size(width, height, self._max_pixels)
            except ImageTooLarge as exc:
                raise ImageTooLarge(f"{exc}; pass max_side to shrink it") from None
            return prepared
        except ImageError as exc:
            raise type(exc)(f"{source.name}: {exc}") from None
