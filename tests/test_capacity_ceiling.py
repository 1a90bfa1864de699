"""benchmarks/capacity_ceiling.py at tiny size: it fits a network to the report's photo (the
loss ratio falls from the first row to the last) and names a photo the report lacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "benchmarks" / "capacity_ceiling.py"
LOSS = {
    "content_layers": ["relu3_1"],
    "style_layers": ["relu1_1", "relu2_1", "relu3_1", "relu4_1"],
    "style_layer_weights": None,
    "content_weight": 1.0,
    "style_weight": 100000.0,
    "tv_weight": 1.0,
}


def write_report(folder: Path) -> Path:
    """A validate summary.json with one 64 px photo and made-up iterative losses (the ratios
    are then the fitted network's own losses, which is all this test compares)."""
    record = {
        "name": "kodim04",
        "path": str(REPO_ROOT / "assets" / "heldout" / "kodim04.jpg"),
        "losses": {"iterative": {"total": 1.0, "content": 1.0}},
        "history": [10.0, 5.0, 2.0, 1.0],
    }
    report = {
        "settings": {"size": 64, "style_size": 64, "vgg_weights_spec": "random:0", "loss": LOSS},
        "model": {"style_path": str(REPO_ROOT / "assets" / "styles" / "starry_night.jpg")},
        "images": [record],
    }
    path = folder / "summary.json"
    path.write_text(json.dumps(report))
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )


def test_fitting_lowers_the_ratio(tmp_path: Path) -> None:
    report = write_report(tmp_path)
    done = run("--report", str(report), "--steps", "30", "--every", "15", "--lr", "1e-2")
    assert done.returncode == 0, done.stderr
    rows = [line.strip("|").split("|") for line in done.stdout.splitlines()]
    rows = [[cell.strip() for cell in row] for row in rows if row[0].strip() == "kodim04"]
    assert [row[1] for row in rows] == ["0", "15", "30"]
    ratios = [float(row[2]) for row in rows]
    assert ratios[-1] < 0.5 * ratios[0], done.stdout


def test_unknown_photo_is_named(tmp_path: Path) -> None:
    report = write_report(tmp_path)
    done = run("--report", str(report), "--photo", "nosuch", "--steps", "1")
    assert done.returncode == 2
    assert "no image named ['nosuch']" in done.stderr
