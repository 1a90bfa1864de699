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
) -> Path:
    """Write ``folder`` as a finished run of a seeded random network (``network``: a preset)."""
    import torch

    from stylecast.training.config import LossConfig, NetworkConfig, TrainConfig, to_dict
    from stylecast.training.network import build_network
    from stylecast.training.run_folder import RunFolder, RunRecord

    config = TrainConfig(
        style_image=str(style), content_dirs=(str(style.parent),), image_size=image_size,
        vgg_weights="random:0", network=NetworkConfig.preset(network), loss=loss or LossConfig(),
    )  # fmt: skip
    torch.manual_seed(seed)
    run = RunFolder(folder)
    run.write_record(
        RunRecord(
            train=to_dict(config),
            vgg_weights="random:0",
            style_sha256=hashlib.sha256(style.read_bytes()).hexdigest(),
            commands=[FIXTURE_COMMAND],
            final_losses=dict(FIXTURE_LOSSES),
        )
    )
    run.save_weights(build_network(config.network).state_dict())
    return folder
