"""benchmarks/capacity_ceiling.py at tiny size: it fits a network to the report's photo (the
loss ratio falls from the first row to the last) and names a photo the report lacks."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from stylecast.validation.summary import read_summary, write_summary

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "benchmarks" / "capacity_ceiling.py"
BUNDLED_REPORT = REPO_ROOT / "docs" / "validation" / "starry_night_lite" / "summary.json"


def write_report(folder: Path) -> Path:
    """The bundled starry_night_lite report cut to its kodim04 photo, scored at 64 px (its
    256 px iterative losses then only scale the ratios, and this test compares ratios with
    one another)."""
    bundled = read_summary(BUNDLED_REPORT)
    summary = dataclasses.replace(
        bundled,
        settings=dataclasses.replace(bundled.settings, size=64, style_size=64),
        images=tuple(r for r in bundled.images if r.name == "kodim04"),
    )
    return write_summary(summary, folder / "summary.json")


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


def test_bad_inputs_get_one_line(tmp_path: Path) -> None:
    report = write_report(tmp_path)
    not_a_report = tmp_path / "empty.json"
    not_a_report.write_text("{}")
    cases = {
        ("--report", str(tmp_path / "missing.json")): "cannot read",
        ("--report", str(not_a_report)): "not a stylecast validation summary",
        ("--report", str(report), "--start", str(tmp_path / "no-run")): "no training run",
        ("--report", str(report), "--network", "huge"): "unknown network preset",
        ("--report", str(report), "--every", "0"): "must be > 0",
        ("--report", str(report), "--lr", "-1"): "learning rate must be > 0",
    }
    for args, message in cases.items():
        done = run(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
