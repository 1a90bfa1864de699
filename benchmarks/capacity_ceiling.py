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
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import torch

from stylecast.cli.args import positive_int
from stylecast.cli.gpu_args import non_negative_int
from stylecast.errors import StylecastError
from stylecast.training.config import (
    LossConfig,
    NetworkConfig,
    network_from_dict,
    require_positive,
)
from stylecast.training.images import load_image
from stylecast.training.losses import PerceptualLoss
from stylecast.training.network import build_network
from stylecast.training.run_folder import read_trained
from stylecast.training.scoring import build_scorer, first_step_below, score, to_array, to_tensor
from stylecast.validation.summary import ImageRecord, ValidationSummary, read_summary


@dataclasses.dataclass(frozen=True)
class Fit:
    """How every photo is fitted."""

    steps: int
    lr: float
    warmup: int  # steps of linear warm-up: Adam's first full-size steps upset trained weights
    every: int  # steps between printed rows

    def __post_init__(self) -> None:
        require_positive("learning rate", self.lr)


def network_factory(start: str | None, preset: str) -> Callable[[], torch.nn.Module]:
    """A maker of the network to fit (a fresh copy per photo): ``start``'s trained weights,
    read once, or a freshly initialised ``preset`` network."""
    if start is None:
        config = NetworkConfig.preset(preset)
        return lambda: build_network(config)
    trained = read_trained(start)
    config = network_from_dict(trained.record.train["network"])

    def trained_network() -> torch.nn.Module:
        net = build_network(config)
        net.load_state_dict(trained.state)
        return net

    return trained_network


def scorer(summary: ValidationSummary) -> PerceptualLoss:
    """The loss the report scored with: its loss settings, style image and style size."""
    settings = summary.settings
    return build_scorer(
        Path(summary.model.style_path),
        settings.style_size,
        LossConfig(**dataclasses.asdict(settings.loss)),
        settings.vgg_weights_spec,
        torch.device("cpu"),
    )


def fit(
    record: ImageRecord,
    size: int,
    criterion: PerceptualLoss,
    net: torch.nn.Module,
    plan: Fit,
) -> None:
    """Fit ``net`` to the photo of one report record, printing a row every ``plan.every``."""
    content = to_tensor(to_array(load_image(Path(record.path), size)))[None]
    targets = criterion.content_targets(content)
    iterative = record.losses.iterative
    optimiser = torch.optim.Adam(net.parameters(), lr=plan.lr)
    warmup = min(plan.warmup, plan.steps - 1)
    schedule = torch.optim.lr_scheduler.SequentialLR(
        optimiser,
        [
            torch.optim.lr_scheduler.LinearLR(optimiser, 0.01, 1.0, max(warmup, 1)),
            torch.optim.lr_scheduler.CosineAnnealingLR(
                optimiser, plan.steps - warmup, plan.lr / 100
            ),
        ],
        milestones=[warmup],
    )
    began = time.perf_counter()
    for step in range(plan.steps + 1):
        if step % plan.every == 0 or step == plan.steps:
            with torch.no_grad():
                output = to_array(net(content)[0])  # uint8, as the exported model returns
            terms = score(criterion, output, targets)
            beats = first_step_below(record.history, terms.total)
            print(
                f"| {record.name} | {step} | {terms.total / iterative.total:.3f} "
                f"| {terms.content / iterative.content:.3f} | {beats or '> 100'} "
                f"| {time.perf_counter() - began:.0f} |",
                flush=True,
            )
        if step == plan.steps:
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
    parser.add_argument("--steps", type=positive_int, default=600)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=non_negative_int, default=50, help="linear warm-up steps")
    parser.add_argument("--every", type=positive_int, default=100)
    args = parser.parse_args()
    try:
        plan = Fit(args.steps, args.lr, args.warmup, args.every)
        summary = read_summary(args.report)
        records = [r for r in summary.images if not args.photo or r.name in args.photo]
        if not records:
            parser.error(f"no image named {args.photo} in {args.report}")
        make_network = network_factory(args.start, args.network)
        criterion = scorer(summary)
        start = args.start or f"fresh {args.network}"
        print(
            f"start: {start}, {plan.steps} steps, lr {plan.lr} (warm-up {plan.warmup}, then "
            f"cosine); report {args.report}\n"
        )
        print(
            "| photo | step | fast ÷ iterative | content ÷ iterative's | iterations to beat | s |"
        )
        print("|---|--:|--:|--:|--:|--:|")
        for record in records:
            torch.manual_seed(0)
            fit(record, summary.settings.size, criterion, make_network(), plan)
    except StylecastError as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    main()
