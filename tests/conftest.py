"""Shared pytest fixtures for the Stylecast test suite.

Everything here runs on the CPU, offline, at tiny sizes. Fixtures:

- ``assets_dir``, ``style_image``, ``content_image``, ``style_images``, ``content_images``:
  paths to the bundled sample images (``assets/``).
- ``loss_config``: a small ``LossConfig`` whose weights suit the calibrated random VGG.
- ``loss_layers``: the VGG layer names ``loss_config`` uses (content + style).
- ``random_vgg``: a session-scoped, frozen ``LossNetwork`` built by
  ``load_loss_network("random:0", loss_layers)``. Share it; never modify its weights.
- ``content_dir``: a per-test folder holding four small (64-96 px) copies of the bundled
  content images, ready for ``stylecast train --content-dir``; ``make_content_dir(folder)``
  builds the same in any folder (for module-scoped fixtures).
- ``small_image``: a helper that loads a bundled image at a given longer side.

Training-side modules import torch lazily inside the fixtures, so a serving-only test module can
use the path fixtures without paying for torch.

Threads: the tensors here are tiny, so this file sets ``OMP_NUM_THREADS=1`` (unless the caller
set it) before anything imports torch; subprocesses started by tests inherit it. On a busy
2-core machine, torch's default of one spinning OpenMP thread per core made steps 10-40x slower.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import torch

    from stylecast.training.config import LossConfig
    from stylecast.training.vgg import LossNetwork

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS = REPO_ROOT / "assets"

#: The seeded random VGG spec the tests use everywhere (never the downloaded ImageNet weights).
RANDOM_VGG = "random:0"


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    """The bundled sample images folder (``assets/``, with ``styles/`` and ``content/``)."""
    return ASSETS


@pytest.fixture(scope="session")
def style_images() -> list[Path]:
    """All bundled style images, sorted."""
    files = sorted((ASSETS / "styles").glob("*.jpg"))
    assert files, "no bundled style images under assets/styles"
    return files


@pytest.fixture(scope="session")
def content_images() -> list[Path]:
    """All bundled content images, sorted."""
    files = sorted((ASSETS / "content").glob("*.jpg"))
    assert files, "no bundled content images under assets/content"
    return files


@pytest.fixture(scope="session")
def style_image() -> Path:
    """One bundled style image (The Starry Night, 512 px)."""
    return ASSETS / "styles" / "starry_night.jpg"


@pytest.fixture(scope="session")
def content_image() -> Path:
    """One bundled content image (a Kodak test photo, 512 px)."""
    return ASSETS / "content" / "kodim23.jpg"


@pytest.fixture(scope="session")
def loss_config() -> LossConfig:
    """Loss weights suited to the calibrated random VGG (default layers).

    The defaults (style 1e6, tv 1e-5) suit ImageNet VGG; with ``random:SEED`` the style Grams
    are larger, so a smaller style weight and a larger TV weight keep the terms balanced.
    """
    from stylecast.training.config import LossConfig

    return LossConfig(style_weight=1e5, tv_weight=1.0)


@pytest.fixture(scope="session")
def loss_layers(loss_config: LossConfig) -> tuple[str, ...]:
    """Every VGG layer ``loss_config`` reads (content layers, then style layers)."""
    return (*loss_config.content_layers, *loss_config.style_layers)


@pytest.fixture(scope="session")
def random_vgg(loss_layers: tuple[str, ...]) -> LossNetwork:
    """A frozen, variance-calibrated random VGG-19 (``random:0``) for ``loss_layers``.

    Built once per session (calibration takes a few seconds on CPU); treat it as read-only.
    """
    from stylecast.training.vgg import load_loss_network

    return load_loss_network(RANDOM_VGG, loss_layers)


@pytest.fixture
def small_image() -> Callable[[Path, int], torch.Tensor]:
    """``small_image(path, side)``: a bundled image as float [3, H, W] in [0, 1], longer side
    ``side``."""
    from stylecast.training.images import load_image

    def load(path: Path, side: int) -> torch.Tensor:
        return load_image(path, side)

    return load


@pytest.fixture(scope="session")
def make_content_dir(content_images: list[Path]) -> Callable[[Path], Path]:
    """``make_content_dir(folder)`` fills ``folder`` with four small content images: 96 and
    64 px JPEGs plus an 80 px PNG in a subfolder (the scan is recursive); returns ``folder``.
    For module- or session-scoped runs; tests that need a fresh folder use ``content_dir``."""
    from stylecast.training.images import load_image, save_image

    def make(folder: Path) -> Path:
        sizes = (96, 64, 96, 80)
        for index, (path, side) in enumerate(zip(content_images, sizes, strict=False)):
            name = f"{path.stem}_{side}"
            target = folder / "nested" / f"{name}.png" if index == 3 else folder / f"{name}.jpg"
            save_image(load_image(path, side), target)
        return folder

    return make


@pytest.fixture
def content_dir(tmp_path: Path, make_content_dir: Callable[[Path], Path]) -> Path:
    """A fresh per-test folder of four small content images (see ``make_content_dir``).
    Add files to it to test bad inputs."""
    return make_content_dir(tmp_path / "content")
