"""Which style a request asks of a multi-style model, as the graph's ``style_weights`` row.

A request names one style (``style``) or gives a mix (``{name: weight}``); neither means the
model's first style. Mix weights must be finite and >= 0, not all zero, and are normalised to
sum to 1 (the graph mixes the styles' instance-norm parameters by them). A single-style model
takes neither: it has no styles to choose from. ``parse_mix`` reads the command line's
``a:0.7,b:0.3``. Every refusal is a ``StyleRequestError`` (the API's INVALID_ARGUMENT).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from stylecast.errors import StylecastError


class StyleRequestError(StylecastError):
    """A style or mix a model cannot honour (maps to INVALID_ARGUMENT)."""


def style_weights(
    names: Sequence[str], style: str = "", mix: Mapping[str, float] | None = None, model: str = ""
) -> np.ndarray | None:
    """The float32 [S] weights row for a request to a model with styles ``names`` (empty: a
    single-style model, which gets None). ``style`` and ``mix`` are exclusive."""
    mix = dict(mix or {})
    label = f"model {model!r}" if model else "the model"
    if not names:
        if style or mix:
            raise StyleRequestError(f"{label} has a single style; leave style and style_mix unset")
        return None
    if style and mix:
        raise StyleRequestError("give either a style or a style mix, not both")
    weights = np.zeros(len(names), dtype=np.float32)
    if not mix:
        weights[_index(names, style or names[0], label)] = 1.0
        return weights
    for name, weight in mix.items():
        if not math.isfinite(weight) or weight < 0:
            raise StyleRequestError(f"style mix weight of {name!r} must be >= 0 (got {weight})")
        weights[_index(names, name, label)] += weight
    total = float(weights.sum())
    if total <= 0:
        raise StyleRequestError("style mix weights are all zero; give at least one weight > 0")
    return (weights / total).astype(np.float32)


def _index(names: Sequence[str], name: str, label: str) -> int:
    try:
        return list(names).index(name)
    except ValueError:
        raise StyleRequestError(
            f"unknown style {name!r} for {label}; its styles are {', '.join(names)}"
        ) from None


def parse_mix(text: str) -> dict[str, float]:
    """``"a:0.7,b:0.3"`` as ``{"a": 0.7, "b": 0.3}``; StyleRequestError when malformed."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition(":")
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not sep or not name or math.isnan(weight):
            raise StyleRequestError(
                f"bad style mix {text!r}: write NAME:WEIGHT pairs separated by commas, "
                "e.g. starry_night:0.7,great_wave:0.3"
            )
        if name in mix:
            raise StyleRequestError(f"style {name!r} appears twice in the mix {text!r}")
        mix[name] = weight
    return mix
