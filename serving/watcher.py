"""Hot reload: rescan the model repository every few seconds (and on demand), so models added,
replaced or removed in models/ are picked up without a restart. The repository keeps the old
version serving when a new one is broken; this module only decides when to rescan and tells
listeners (health, metrics) what changed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .repository import ModelRepository, ReloadReport

log = logging.getLogger(__name__)


class ModelWatcher:
    """Serialises reloads of ``repository`` and calls ``on_reload(report)`` after each one.

    ``start()`` polls every ``interval_s`` seconds in a daemon thread (interval 0: no polling,
    reloads happen only through ``reload()``, e.g. the ReloadModels RPC or SIGHUP). ``stop()``
    ends polling for good (shutdown): later ``reload()`` calls still work.
    """

    def __init__(
        self,
        repository: ModelRepository,
        interval_s: float,
        on_reload: Callable[[ReloadReport], None] | None = None,
    ) -> None:
        self.repository = repository
        self.interval_s = interval_s
        self.on_reload = on_reload
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reload(self) -> ReloadReport:
        """Rescan now (one rescan at a time) and report what changed."""
        with self._lock:
            report = self.repository.reload()
        if report.loaded or report.removed:  # failures: the repository logs each once
            log.info(
                "models reloaded: loaded %s, removed %s",
                report.loaded or "-",
                report.removed or "-",
            )
        if self.on_reload is not None:
            self.on_reload(report)
        return report

    def start(self) -> None:
        """Begin polling in the background (no-op when the interval is 0)."""
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.reload()
            except Exception:  # a scan error (e.g. the folder vanished) must not kill polling
                log.exception("model repository rescan failed; will retry")

    def stop(self) -> None:
        """Stop polling and wait for a running rescan to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
