"""Knowledge distillation: a trained network whose outputs a smaller one learns to match.

`stylecast train --teacher SPEC` loads the teacher once, frozen. SPEC is a finished run folder
or a Lightning checkpoint (the teacher runs in torch, on the student's device) or an exported
model folder (``models/NAME``, served by onnxruntime on the CPU with its uint8 contract, so its
targets are rounded to 1/255 — far finer than any style network's error).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from stylecast.errors import StylecastError


class FrozenTeacher(nn.Module):
    """A torch transform network that never trains and never leaves eval mode."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenTeacher:
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class OnnxTeacher(nn.Module):
    """An exported model folder as a teacher: float NCHW [0, 1] in and out, via onnxruntime."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__()
        from stylecast.serving.repository import load_model_dir
        from stylecast.serving.runtime import RuntimeOptions

        self.model, _ = load_model_dir(model_dir, RuntimeOptions(warmup=False))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
        batch = image.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        out = np.ascontiguousarray(self.model.run(batch))
        return torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2).to(x.dtype) / 255.0


def load_teacher(spec: str) -> nn.Module:
    """The frozen teacher ``spec`` names (run folder, checkpoint, or exported model folder)."""
    from stylecast.serving.model_card import CARD_FILE

    path = Path(spec)
    if path.is_dir() and (path / CARD_FILE).is_file():
        try:
            return OnnxTeacher(path)
        except StylecastError as exc:
            raise StylecastError(f"--teacher {spec}: {exc}") from None
    if not path.exists():
        raise StylecastError(
            f"--teacher {spec}: not found (give a finished run folder, a .ckpt checkpoint "
            "or an exported model folder)"
        )
    from .export import load_trained

    try:
        return FrozenTeacher(load_trained(path).network)
    except StylecastError as exc:
        raise StylecastError(f"--teacher {spec}: {exc}") from None
