"""Builds a finished training run (what `stylecast train` leaves: config.json + transform.pt)
from a seeded random network, without training, for tests that need a model to export."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

FIXTURE_COMMAND = "stylecast train (test fixture)"
FIXTURE_LOSSES = {"total": 1.5, "style": 1.0}


def make_run(
    folder: Path,
    style: Path,
    *,
    seed: int = 0,
    image_size: int = 64,
    loss: Any = None,
    network: str = "lite",
    extra_styles: tuple[Path, ...] = (),
) -> Path:
    """Write ``folder`` as a finished run of a seeded random network (``network``: a preset;
    ``extra_styles``: more styles, each with its own random instance-norm scale and shift)."""
    import torch

    from stylecast.training.config import LossConfig, NetworkConfig, TrainConfig, to_dict
    from stylecast.training.network import build_network, style_norms
    from stylecast.training.run_folder import RunFolder, RunRecord

    config = TrainConfig(
        style_image=str(style), content_dirs=(str(style.parent),), image_size=image_size,
        vgg_weights="random:0", network=NetworkConfig.preset(network), loss=loss or LossConfig(),
        extra_styles=tuple(str(p) for p in extra_styles),
    )  # fmt: skip
    torch.manual_seed(seed)
    run = RunFolder(folder)
    digests = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in config.styles]
    run.write_record(
        RunRecord(
            train=to_dict(config),
            vgg_weights="random:0",
            style_sha256=digests[0],
            commands=[FIXTURE_COMMAND],
            final_losses=dict(FIXTURE_LOSSES),
            styles_sha256=digests if extra_styles else [],
        )
    )
    net = build_network(config.network)
    for norm in style_norms(net):  # styles that differ, as trained ones do
        torch.nn.init.normal_(norm.weight, 1.0, 0.3)
        torch.nn.init.normal_(norm.bias, 0.0, 0.3)
    run.save_weights(net.state_dict())
    return folder
