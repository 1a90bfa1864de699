"""The model repository: a folder of models laid out as ``model_card`` describes
(``NAME/model.json``, ``NAME/<version>/model.onnx`` + ``version.json``, Triton's
``config.pbtxt``). Loads the newest working version of every model; a broken model or version
is reported and skipped without affecting the others, and `reload()` picks up changes while
the previous version keeps serving until its replacement has loaded."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from stylecast.errors import StylecastError

from .model_card import (
    CARD_FILE,
    MODEL_FILE,
    VERSION_FILE,
    check_graph_file,
    read_card_and_errors,
    version_numbers,
)
from .runtime import RuntimeOptions, StyleModel

log = logging.getLogger(__name__)


class ModelNotFound(StylecastError):
    """No loaded model has this name (maps to NOT_FOUND)."""


@dataclass
class ReloadReport:
    """What one rescan changed. ``failed``: models (or newer versions of served models) that
    did not load, with the reason; ``scan_error``: the folder itself could not be read."""

    loaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    scan_error: str | None = None


def _signature(model_dir: Path) -> tuple:
    """Cheap change detector: names, sizes and mtimes of the card and version files."""
    files = [model_dir / CARD_FILE, *model_dir.glob(f"*/{MODEL_FILE}")]
    files += model_dir.glob(f"*/{VERSION_FILE}")
    parts = []
    for path in sorted(files):
        if path.is_file():
            stat = path.stat()
            parts.append((str(path.relative_to(model_dir)), stat.st_size, stat.st_mtime_ns))
    return tuple(parts)


def load_model_dir(model_dir: Path, options: RuntimeOptions) -> tuple[StyleModel, list[str]]:
    """The newest version of ``model_dir`` that loads, and the errors of newer broken ones."""
    card, version_errors = read_card_and_errors(model_dir)
    versions = version_numbers(model_dir)
    if not versions:
        raise StylecastError(
            f"{model_dir}: no version folders (expected {model_dir}/1/{MODEL_FILE})"
        )
    errors: list[str] = []
    for version in versions:
        try:
            if version in version_errors:
                raise StylecastError(version_errors[version])
            path = check_graph_file(model_dir, card, version)
            return StyleModel(path, card, version, options), errors
        except StylecastError as exc:
            errors.append(str(exc))
    raise StylecastError("; ".join(errors))


class ModelRepository:
    """Thread-safe view of a models folder: get(name), models(), errors, reload()."""

    def __init__(self, root: str | Path, options: RuntimeOptions | None = None) -> None:
        self.root = Path(root)
        self.options = options or RuntimeOptions()
        if not self.root.is_dir():
            raise StylecastError(f"models folder not found: {self.root}")
        self._models: dict[str, StyleModel] = {}
        self._signatures: dict[str, tuple] = {}
        self.errors: dict[str, str] = {}
        self._scan_error: str | None = None
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> ReloadReport:
        """Rescan the folder; load new or changed models, drop removed ones. Never raises:
        a model that cannot be read or loaded is reported and the others are unaffected."""
        report = ReloadReport()
        try:
            present = {
                p.name: p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
            }
        except OSError as exc:
            report.scan_error = f"cannot list {self.root}: {exc.strerror or exc}"
            if report.scan_error != self._scan_error:  # logged once, not every rescan
                log.error("model rescan failed: %s", report.scan_error)
            self._scan_error = report.scan_error
            return report
        if self._scan_error is not None:
            log.info("model folder %s readable again", self.root)
            self._scan_error = None
        models, signatures, errors = dict(self._models), dict(self._signatures), dict(self.errors)
        for name in set(models) - set(present):
            models.pop(name)
            signatures.pop(name, None)
            report.removed.append(name)
        for name in set(errors) - set(present):
            errors.pop(name)
        for name, model_dir in sorted(present.items()):
            try:
                signature = _signature(model_dir)
                if signatures.get(name) == signature:
                    continue  # unchanged since the last scan: nothing new to load or log
                signatures[name] = signature
                model, version_errors = load_model_dir(model_dir, self.options)
            except Exception as exc:  # one bad model never stops the scan of the others
                message = str(exc) if isinstance(exc, StylecastError) else f"{exc!r}"
                errors[name] = report.failed[name] = message
                kept = f"; still serving v{models[name].version}" if name in models else ""
                log.error("model %s not loaded: %s%s", name, message, kept)
                continue
            previous = models.get(name)
            if version_errors and previous is not None and previous.version == model.version:
                # A newer version is broken: the same version still serves (its card now lists
                # the broken one too), so this is a failure, not a reload success.
                models[name] = model
                errors[name] = report.failed[name] = "; ".join(version_errors)
                log.error("model %s: newer version(s) broken, still serving v%d: %s",
                          name, previous.version, errors[name])  # fmt: skip
                continue
            models[name] = model
            errors.pop(name, None)
            if version_errors:
                errors[name] = "; ".join(version_errors)
                log.error("model %s: newer version(s) broken: %s", name, errors[name])
            report.loaded.append(name)
        with self._lock:
            self._models, self._signatures, self.errors = models, signatures, errors
        return report

    def get(self, name: str) -> StyleModel:
        with self._lock:
            model = self._models.get(name)
        if model is None:
            known = ", ".join(sorted(self._models)) or "none"
            raise ModelNotFound(f"unknown model {name!r} (loaded: {known})")
        return model

    def models(self) -> list[StyleModel]:
        with self._lock:
            return sorted(self._models.values(), key=lambda m: m.name)
