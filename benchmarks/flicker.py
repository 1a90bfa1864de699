"""Flicker benchmark (not a test): how much the bundled models shimmer on a video, with and
without temporal smoothing (serving.smoothing), measured as `stylecast validate --video` and
`stylecast stylise` report it (serving.video: stylised frame-to-frame change ÷ the content's).

    python benchmarks/flicker.py [--video /work/shared/data/video] [--models-dir models]
        [--model NAME ...] [--smooth 0,0.25,0.5,0.75,0.9] [--max-side 0]

Each model runs once over the frames (through serving.video.FrameStyliser, the pipeline of
`stylecast stylise`); each smoothing value is then applied to those outputs, as the command
would. Columns: flicker (the ratio; 1.0 adds none), the content's and the stylised mean
absolute change between consecutive frames (0-255 levels), "along motion" (the same ratio
after following the camera's motion, i.e. shimmer that is not movement: smoothing that only
froze texture to the screen would not lower it) and "from raw" (mean distance of the smoothed
frames from the network's own, a bound on lag and ghosting). No torch.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path

import numpy as np

from stylecast.serving.imaging import StyliseOptions
from stylecast.serving.smoothing import GREY, TemporalSmoother, global_shift, shift_image
from stylecast.serving.stylise import load_model, model_names, scan_inputs
from stylecast.serving.video import ChangeMeter, FrameFolder, FrameStyliser, flicker

DEFAULT_VIDEO = Path("/work/shared/data/video")


def along_motion(content: list[np.ndarray], stylised: list[np.ndarray]) -> float:
    """Stylised ÷ content change between consecutive frames aligned by the global motion."""
    ours, theirs = [], []
    for (c0, c1), (s0, s1) in zip(
        itertools.pairwise(content), itertools.pairwise(stylised), strict=True
    ):
        a, b = c0.astype(np.float32), c1.astype(np.float32)
        dy, dx = global_shift(a @ GREY, b @ GREY)
        moved_c, valid = shift_image(a, dy, dx)
        moved_s, _ = shift_image(s0.astype(np.float32), dy, dx)
        theirs.append(float(np.abs(b - moved_c)[valid].mean()))
        ours.append(float(np.abs(s1.astype(np.float32) - moved_s)[valid].mean()))
    return statistics.fmean(ours) / statistics.fmean(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="a folder of frames")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--model", action="append", help="default: every model in --models-dir")
    parser.add_argument("--smooth", default="0,0.25,0.5,0.75,0.9")
    parser.add_argument("--max-side", type=int, default=0)
    args = parser.parse_args()
    smooth_values = [float(v) for v in args.smooth.split(",")]
    frames = FrameFolder(scan_inputs([str(args.video)], [])[0], str(args.video))
    print(f"video: {args.video} ({frames.total} frames), max side {args.max_side or 'none'}\n")
    print("| model | smooth | flicker | content change | stylised change | along motion "
          "| from raw |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.model or model_names(args.models_dir):
        model = load_model(args.models_dir, name)
        styliser = FrameStyliser(model, StyliseOptions(max_side=args.max_side))
        pairs = [styliser(frame) for _, frame in frames.frames()]
        content = [c for c, _ in pairs]
        for value in smooth_values:
            smoother = TemporalSmoother(value)
            out = [smoother(c, s) for c, s in pairs]
            content_meter, stylised_meter = ChangeMeter(), ChangeMeter()
            for c, s in zip(content, out, strict=True):
                content_meter.add(c)
                stylised_meter.add(s)
            stats = flicker(content_meter, stylised_meter)
            assert stats is not None and stats.ratio is not None
            from_raw = statistics.fmean(
                float(np.abs(o.astype(np.int16) - s.astype(np.int16)).mean())
                for o, (_, s) in zip(out, pairs, strict=True)
            )
            print(f"| {name} | {value:g} | {stats.ratio:.3f} | {stats.content_change:.2f} | "
                  f"{stats.stylised_change:.2f} | {along_motion(content, out):.3f} | "
                  f"{from_raw:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
