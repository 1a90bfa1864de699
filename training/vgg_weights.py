"""Which VGG-19 weights a loss network uses: one typed value, parsed once, carrying its metadata.

Like torchvision's weights enums, the value says exactly where the weights come from and
what that means for the results. Three sources, never a silent fallback between them:

  ``imagenet``     torchvision's IMAGENET1K_V1 (downloaded once and cached by torch.hub);
  a file path      a state dict saved from torchvision's vgg19 (full model or ``features``);
  ``random:SEED``  a seeded, variance-calibrated random init: TESTING ONLY.

Two string forms exist: the *spec* a user types (``--vgg-weights``) and the *id* recorded in
every output (checkpoint, run config, model card, report), which also names the file's
hash. ``parse`` reads either. This module is torch-free so cards and reports can use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stylecast.errors import StylecastError

IMAGENET_ID = "imagenet:IMAGENET1K_V1"
_FILE_ID = re.compile(r"^file:(?P<name>.+) sha256:(?P<sha>[0-9a-f]+)$")

Kind = Literal["imagenet", "file", "random"]


@dataclass(frozen=True)
class VggWeights:
    """A VGG-19 weight source. Build it with ``VggWeights.parse``."""

    kind: Kind
    seed: int | None = None  # random only
    path: Path | None = None  # file, as given by the user (None when read back from an id)
    file_name: str = ""  # file: its name, as recorded
    sha256: str = ""  # file: hash prefix, known once the file is read or from a recorded id

    @classmethod
    def parse(cls, text: str) -> VggWeights:
        """A ``--vgg-weights`` spec or a recorded id; raises StylecastError when malformed."""
        text = text.strip()
        if text in ("imagenet", IMAGENET_ID):
            return cls("imagenet")
        if text == "random":
            raise StylecastError("--vgg-weights random needs a seed: random:SEED (e.g. random:0)")
        if text.startswith("random:"):
            try:
                return cls("random", seed=int(text.removeprefix("random:")))
            except ValueError:
                raise StylecastError(
                    f"bad --vgg-weights {text!r}: use random:SEED with an integer seed"
                ) from None
        if match := _FILE_ID.match(text):
            return cls("file", file_name=match["name"], sha256=match["sha"])
        if not text:
            raise StylecastError("--vgg-weights is empty: use imagenet, a file path or random:SEED")
        return cls("file", path=Path(text), file_name=Path(text).name)

    @property
    def testing_only(self) -> bool:
        """Random weights transfer palette and texture only: never ship such a model."""
        return self.kind == "random"

    @property
    def id(self) -> str:
        """The string recorded in outputs (``imagenet:IMAGENET1K_V1``, ``random:0``,
        ``file:NAME sha256:PREFIX``)."""
        if self.kind == "imagenet":
            return IMAGENET_ID
        if self.kind == "random":
            return f"random:{self.seed}"
        return f"file:{self.file_name} sha256:{self.sha256}"

    @property
    def spec(self) -> str | None:
        """The ``--vgg-weights`` value that rebuilds this loss network, or None for a file
        known only by its recorded id (the user must point at the file again)."""
        if self.kind == "imagenet":
            return "imagenet"
        if self.kind == "random":
            return f"random:{self.seed}"
        return str(self.path) if self.path is not None else None

    def with_sha256(self, sha256: str) -> VggWeights:
        """This file source with the hash of the bytes actually loaded."""
        return VggWeights(self.kind, self.seed, self.path, self.file_name, sha256)
