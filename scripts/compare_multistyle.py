"""Compare a multi-style model with single-style models, style by style, from the
`stylecast validate` reports of each (summary.json): the fast network's total loss on every
held-aside photo, multi ÷ single (the issue's target: at most 1.2 with the same training
steps per style).

    python scripts/compare_multistyle.py --multi REPORTS/two_styles_lite \
        --single starry_night=REPORTS/single_starry_night --single great_wave=REPORTS/...

``--multi`` is the report folder of the multi-style model (one subfolder per style, as
`stylecast validate` writes it); each ``--single STYLE=FOLDER`` the report of one
single-style model. Prints a Markdown table."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def fast_totals(report: Path) -> dict[str, float]:
    """The fast network's total loss per photo of one report folder."""
    summary = json.loads((report / "summary.json").read_text())
    return {image["name"]: image["losses"]["fast"]["total"] for image in summary["images"]}


def compare(multi: Path, singles: dict[str, Path]) -> list[str]:
    """The Markdown table: one row per style and photo, then each style's median and max."""
    lines = ["| style | photo | single-style | multi-style | multi ÷ single |",
             "|---|---|--:|--:|--:|"]  # fmt: skip
    for style, folder in singles.items():
        alone, shared = fast_totals(folder), fast_totals(multi / style)
        if set(alone) != set(shared):
            raise SystemExit(f"{style}: the reports score different photos")
        ratios = []
        for photo in sorted(alone):
            ratio = shared[photo] / alone[photo]
            ratios.append(ratio)
            lines.append(f"| {style} | {photo} | {alone[photo]:.4f} | {shared[photo]:.4f} "
                         f"| {ratio:.3f} |")  # fmt: skip
        lines.append(f"| **{style}** | median / max | | | **{statistics.median(ratios):.3f}** "
                     f"/ {max(ratios):.3f} |")  # fmt: skip
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--multi", type=Path, required=True)
    parser.add_argument("--single", action="append", required=True, metavar="STYLE=FOLDER")
    args = parser.parse_args(argv)
    singles = {}
    for item in args.single:
        style, _, folder = item.partition("=")
        if not folder:
            parser.error(f"--single takes STYLE=FOLDER (got {item!r})")
        singles[style] = Path(folder)
    print("\n".join(compare(args.multi, singles)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
