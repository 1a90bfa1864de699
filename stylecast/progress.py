"""When to draw progress bars: only on a terminal. A bar redraws itself with carriage returns,
which is noise in a captured stderr (a log file, CI, a pipe to another program); there the
commands' one-line messages and log records say what happened. One rule for every bar."""

from __future__ import annotations

import sys


def show_progress(requested: bool = True) -> bool:
    """Whether to draw a progress bar: ``requested`` and stderr is a terminal."""
    if not requested or sys.stderr is None:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
