"""User-facing errors: ``StylecastError`` and its subclasses are what the CLI turns into one
line on stderr and a non-zero exit (``exit_code``); anything else is a bug."""


class StylecastError(Exception):
    """A problem the user can fix (bad input, missing file, bad option); never a bug."""

    exit_code = 2


class Interrupted(StylecastError):
    """The user (Ctrl-C) or the system (SIGTERM) stopped a long command; its work was saved."""

    exit_code = 130


class InputsFailed(StylecastError):
    """Some inputs of a batch could not be processed (each was reported); the others were."""

    exit_code = 3
