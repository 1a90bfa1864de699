"""`stylecast demo` end to end on a models folder with a multi-style model: a real server
process, one row per style plus an even blend, and the blend strip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from serving_fixtures import DUO_MODEL, DUO_STYLES, TINY_MODEL, encoded_image

from stylecast.serving.demo import BLEND_SHEET, BLEND_STEPS, format_results, run_demo

pytest_plugins = ("serving_fixtures",)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def test_demo_shows_each_style_and_a_blend(duo_models_dir: Path, tmp_path: Path) -> None:
    photo = tmp_path / "content" / "photo.png"
    photo.parent.mkdir()
    photo.write_bytes(encoded_image(64, "PNG"))
    out = tmp_path / "out"
    results = run_demo(str(duo_models_dir), [str(photo.parent)], str(out))
    labels = [r.model for r in results]
    duo_rows = [f"{DUO_MODEL}/{style}" for style in DUO_STYLES] + [f"{DUO_MODEL}/blend"]
    assert labels == [*duo_rows, TINY_MODEL]
    assert all(r.images == 1 and r.stream_fps > 0 and r.server_ms > 0 for r in results)
    first, second, blend = (_pixels(out / label / "photo.jpg") for label in duo_rows)
    apart = np.abs(first - second).mean()
    assert apart > 1  # the styles differ, and the even blend lies between them
    assert np.abs(blend - first).mean() < apart and np.abs(blend - second).mean() < apart
    with Image.open(out / BLEND_SHEET) as strip:
        assert strip.width > BLEND_STEPS * 64 and strip.height < 2 * strip.width / BLEND_STEPS
    report = format_results(results, str(out))
    assert f"| {DUO_MODEL}/blend | 1 | 1 |" in report and BLEND_SHEET in report
