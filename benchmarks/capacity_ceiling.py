"""Capacity ceiling (not a test): the best a transform network can do on one photo when it is
fitted to that photo alone, scored exactly as `stylecast validate` scored the photo.

    python benchmarks/capacity_ceiling.py --report docs/validation/starry_night_lite/summary.json
        [--photo kodim07 ...] [--start RUN_OR_CKPT | --network lite] [--steps 600] [--lr 1e-3]
        [--warmup 50] [--every 100]

A trained model's fast ÷ iterative ratio on a held-aside photo mixes two shortfalls: what the
architecture cannot express, and what training did not teach it about unseen photos. This
fits the network to the photo itself (Adam, a linear warm-up to --lr then a cosine; the
report's loss, content at the report's size and style at its style size). Where the fit
levels off estimates the best any training of that architecture could give on that photo (a
model trained on other photos does not beat one fitted to it); the gap from the trained
model's ratio is the share that better generalisation could win. --start:
weights to fit from (a run folder or a Lightning checkpoint; its network is used), else a
freshly initialised --network.
Prints, per photo, the ratio, the content-term ratio and the L-BFGS iterations to beat at
every --every steps; the iterative losses and histories come from the report.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from stylecast.training.config import NetworkConfig, loss_from_dict, network_from_dict
from stylecast.training.images import load_image
from stylecast.training.network import build_network
from stylecast.training.run_folder import read_trained
from stylecast.training.scoring import build_scorer, first_step_below, score, to_array, to_tensor


def start_network(start: str | None, preset: str) -> torch.nn.Module:
    """The network to fit: ``start``'s trained weights, or a fresh ``preset`` network."""
    if start is None:
        return build_network(NetworkConfig.preset(preset))
    trained = read_trained(start)
    net = build_network(network_from_dict(trained.record.train["network"]))
    net.load_state_dict(trained.state)
    return net


def fit(record: dict[str, Any], settings: dict[str, Any], style: Path, args: Any) -> None:
    """Fit a network to the photo of one report record, printing a row every ``args.every``."""
    torch.manual_seed(0)
    loss = loss_from_dict(settings["loss"])
    criterion = build_scorer(
        style, settings["style_size"], loss, settings["vgg_weights_spec"], torch.device("cpu")
    )
    content = to_tensor(to_array(load_image(Path(record["path"]), settings["size"])))[None]
    targets = criterion.content_targets(content)
    iterative = record["losses"]["iterative"]
    net = start_network(args.start, args.network)
    optimiser = torch.optim.Adam(net.parameters(), lr=args.lr)
    warmup = min(args.warmup, args.steps - 1)  # Adam's first full-size steps upset trained weights
    schedule = torch.optim.lr_scheduler.SequentialLR(
        optimiser,
        [
            torch.optim.lr_scheduler.LinearLR(optimiser, 0.01, 1.0, max(warmup, 1)),
            torch.optim.lr_scheduler.CosineAnnealingLR(
                optimiser, args.steps - warmup, args.lr / 100
            ),
        ],
        milestones=[warmup],
    )
    began = time.perf_counter()
    for step in range(args.steps + 1):
        if step % args.every == 0 or step == args.steps:
            with torch.no_grad():
                output = to_array(net(content)[0])  # uint8, as the exported model returns
            terms = score(criterion, output, targets)
            beats = first_step_below(record["history"], terms.total)
            print(
                f"| {record['name']} | {step} | {terms.total / iterative['total']:.3f} "
                f"| {terms.content / iterative['content']:.3f} | {beats or '> 100'} "
                f"| {time.perf_counter() - began:.0f} |",
                flush=True,
            )
        if step == args.steps:
            break
        optimiser.zero_grad()
        criterion(net(content), targets)["total"].backward()
        optimiser.step()
        schedule.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, required=True, help="a validate summary.json")
    parser.add_argument("--photo", action="append", help="image name; default: every one")
    parser.add_argument("--start", help="run folder or .ckpt to fit from")
    parser.add_argument("--network", default="lite", help="preset when there is no --start")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50, help="steps of linear warm-up")
    parser.add_argument("--every", type=int, default=100)
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    records = [r for r in report["images"] if not args.photo or r["name"] in args.photo]
    if not records:
        parser.error(f"no image named {args.photo} in {args.report}")
    start = args.start or f"fresh {args.network}"
    print(
        f"start: {start}, {args.steps} steps, lr {args.lr} (warm-up {args.warmup}, then cosine); "
        f"report {args.report}\n"
    )
    print("| photo | step | fast ÷ iterative | content ÷ iterative's | iterations to beat | s |")
    print("|---|--:|--:|--:|--:|--:|")
    for record in records:
        fit(record, report["settings"], Path(report["model"]["style_path"]), args)


if __name__ == "__main__":
    main()
