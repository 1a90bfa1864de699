"""The camera page in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright, no browser download) with a fake camera playing a short synthetic clip, against
`stylecast web` on two tiny random models. When Chromium cannot start, these tests fail (they
never skip): `.ci/run` installs it. A screenshot of the page is left in test-artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from serving_fixtures import (
    DUO_MODEL,
    DUO_STYLES,
    REPO_ROOT,
    TINY_MODEL,
    build_tiny_repository,
    encoded_image,
    server_config,
)

from stylecast.serving.web.app import WebServer
from stylecast.serving.web.browser import CameraPage, synthetic_frames, write_y4m
from stylecast.serving.web.config import WebConfig
from stylecast.serving.web.thread import WebServerThread

pytest_plugins = ("serving_fixtures",)

OTHER_MODEL = "tiny_other"
TOKEN = "page-s3cret"
SIDE = 160  # frames are sent at most this long: quick on a busy 2-core machine
ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def two_models(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny`` and ``tiny_other``: two random networks, so their outputs differ."""
    folder = tmp_path_factory.mktemp("two-models") / "models"
    shutil.copytree(tiny_models_dir, folder)
    other = build_tiny_repository(tmp_path_factory.mktemp("other"), OTHER_MODEL, seed=7)
    shutil.copytree(other / OTHER_MODEL, folder / OTHER_MODEL)
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-frame 320x240 pan, looped by Chromium's fake camera."""
    path = tmp_path_factory.mktemp("camera") / "pan.y4m"
    return write_y4m(path, synthetic_frames(320, 240, 12), fps=30)


@contextmanager
def serving(models: Path, **overrides: object) -> Iterator[WebServer]:
    thread = WebServerThread(WebConfig(server=server_config(models, **overrides), port=0))
    try:
        yield thread.start()
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def web(two_models: Path) -> Iterator[WebServer]:
    with serving(two_models) as server:
        yield server


@pytest.fixture(scope="module")
def page(web: WebServer, clip: Path) -> Iterator[CameraPage]:
    """One browser for the module's tests, streaming from the fake camera."""
    with CameraPage(web.url, clip) as camera:
        assert camera.wait_for_models() == [TINY_MODEL, OTHER_MODEL]
        camera.start(TINY_MODEL, max_side=SIDE)
        camera.wait_frames(3)
        yield camera


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_stylised_frames_arrive_and_change_over_time(page: CameraPage):
    camera, first = page.canvases()
    page.frames_after(4)
    _, later = page.canvases()
    assert first.shape == (120, 160, 3) == camera.shape  # 320x240 sent at max side 160
    assert difference(first, camera) > 20  # stylised, not the camera frame
    assert difference(first, later) > 1  # the camera pans: the output moves
    stats = page.stats()
    assert stats["lastHeader"]["model"] == TINY_MODEL and stats["fps"] > 0
    assert all(rtt > 0 for rtt in stats["rtts"])
    assert page.error_line() == ""
    overlay = page.page.text_content("#overlay")
    assert "fps ·" in overlay and overlay.endswith(" ms")
    ARTIFACTS.mkdir(exist_ok=True)
    assert page.screenshot(ARTIFACTS / "web_page.png").stat().st_size > 10_000


def test_a_chosen_image_streams_and_switching_model_changes_the_output(
    page: CameraPage, tmp_path: Path
):
    still = tmp_path / "still.png"
    still.write_bytes(encoded_image(SIDE, "PNG"))
    page.open_file(still)  # the "no camera" path: a still image, sent again and again
    page.page.wait_for_function("window.stylecast.lastHeader.width === 160")
    page.frames_after(2)
    camera_a, tiny_a = page.canvases()
    page.frames_after(1)
    camera_b, tiny_b = page.canvases()
    page.select_model(OTHER_MODEL)
    page.page.wait_for_function(f"window.stylecast.lastHeader.model === '{OTHER_MODEL}'")
    page.frames_after(1)
    camera_c, other = page.canvases()
    assert difference(camera_a, camera_b) == 0 == difference(camera_b, camera_c)  # one input
    assert difference(tiny_a, tiny_b) < 1  # the same model gives the same output
    assert difference(tiny_b, other) > 10  # another model another
    page.select_model(TINY_MODEL)
    page.start(TINY_MODEL, max_side=SIDE)  # back to the camera
    page.frames_after(2)


def test_strength_zero_returns_the_camera_frame(page: CameraPage):
    page.set_strength(0)
    page.frames_after(3)  # frames sent after the slider moved
    camera, stylised = page.canvases()
    # Only JPEG round trips (page → server → page) separate them.
    assert difference(camera, stylised) < 4
    page.set_strength(1)
    page.frames_after(3)
    camera, stylised = page.canvases()
    assert difference(camera, stylised) > 20


def test_mix_sliders_appear_for_a_multi_style_model_only(
    duo_models_dir: Path, page: CameraPage, tmp_path: Path
):
    still = tmp_path / "still.png"
    still.write_bytes(encoded_image(SIDE, "PNG"))
    with serving(duo_models_dir) as server:
        camera = page.tab(server.url)
        assert camera.wait_for_models() == [DUO_MODEL, TINY_MODEL]
        assert camera.mix_styles() == DUO_STYLES  # the first model, duo, has two styles
        camera.open_file(still)
        camera.wait_frames(2)
        _, first_style = camera.canvases()
        camera.set_mix({DUO_STYLES[0]: 0.0, DUO_STYLES[1]: 1.0})
        camera.frames_after(3)
        _, second_style = camera.canvases()
        camera.set_mix({DUO_STYLES[0]: 0.5, DUO_STYLES[1]: 0.5})
        camera.frames_after(3)
        _, halfway = camera.canvases()
        assert difference(first_style, second_style) > 5
        assert 0 < difference(first_style, halfway) < difference(first_style, second_style)
        camera.select_model(TINY_MODEL)
        assert camera.mix_styles() == []  # hidden: a single-style model takes no mix
        # Frames already in flight (up to max_in_flight) are answered by duo; the next by tiny.
        camera.page.wait_for_function(f"window.stylecast.lastHeader.model === '{TINY_MODEL}'")
        camera.frames_after(2)
        assert camera.error_line() == "" and camera.stats()["lastHeader"]["model"] == TINY_MODEL
        camera.page.close()


def test_a_bad_token_shows_the_error_line(two_models: Path, page: CameraPage):
    with serving(two_models, auth_tokens=(TOKEN,)) as server:
        camera = page.tab(server.url)
        assert camera.wait_error() == "this server needs an access token: enter it above"
        assert camera.page.is_visible("#token-form")
        camera.enter_token("not-the-token")
        camera.page.wait_for_function(
            "document.getElementById('error').textContent.includes('invalid token')"
        )
        assert camera.error_line() == "missing or invalid token: enter the server's access token"
        camera.enter_token(TOKEN)
        assert camera.wait_for_models() == [TINY_MODEL, OTHER_MODEL]
        assert camera.error_line() == ""
        camera.start(TINY_MODEL, max_side=SIDE)  # the stream's hello carries the token too
        camera.wait_frames(1)
        camera.page.close()
