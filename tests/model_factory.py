"""Builds a finished training run (what `stylecast train` leaves: config.json + transform.pt)
from a seeded random network, without training, for tests that need a model to export."""

from __future__ import annotations

import hashlib
import json
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
) -> Path:
    """Write ``folder`` as a finished run of a seeded random `lite` TransformNet."""
    import torch

    from stylecast.training.callbacks import RUN_CONFIG, TRANSFORM_WEIGHTS
    from stylecast.training.config import LossConfig, NetworkConfig, TrainConfig, to_dict
    from stylecast.training.network import TransformNet

    config = TrainConfig(
        style_image=str(style), content_dir=str(style.parent), image_size=image_size,
        vgg_weights="random:0", network=NetworkConfig.preset("lite"), loss=loss or LossConfig(),
    )  # fmt: skip
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(TransformNet(config.network).state_dict(), folder / TRANSFORM_WEIGHTS)
    meta = {
        "train": to_dict(config),
        "vgg_weights": "random:0",
        "style_sha256": hashlib.sha256(style.read_bytes()).hexdigest(),
        "final_losses": FIXTURE_LOSSES,
        "command": FIXTURE_COMMAND,
    }
    (folder / RUN_CONFIG).write_text(json.dumps(meta))
    return folder
