"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class StylecastError(Exception):
    """A problem the user can fix (bad input, missing file, bad option); never a bug."""

    exit_code = 2


class Interrupted(StylecastError):
    """The user (Ctrl-C) or the system (SIGTERM) stopped a long command; its work was saved."""

    exit_code = 130
