"""Which torch device a command runs on: ``--device auto|cpu|cuda|cuda:N`` parsed once."""

from __future__ import annotations

import torch

from stylecast.errors import StylecastError


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: the first CUDA GPU if there is one, else the CPU. Raises StylecastError for
    a malformed name or a GPU this machine does not have (never a silent fallback)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise StylecastError(f"bad --device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if (device.index is not None and device.index >= count) or count == 0:
            raise StylecastError(f"--device {name}: this machine has {count} CUDA GPU(s)")
    elif device.type != "cpu":
        raise StylecastError(f"--device {name}: only cpu and cuda devices are supported")
    return device
