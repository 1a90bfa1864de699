"""User-facing errors: ``StylecastError`` and its subclasses are what the CLI turns into one
line on stderr and a non-zero exit (``exit_code``); anything else is a bug.

Exit codes, so that scripts can tell outcomes apart:

    0    success
    1    a user error found after parsing: missing file, bad option value, unknown model
         (StylecastError); also what Python exits with on a crash (a traceback: a bug)
    2    usage error: argparse refused the command line
    3    some inputs could not be read, decoded or written; the others were (InputsFailed)
    4    the server answered with an error, or could not be reached (ServerFailed)
    130  interrupted (Ctrl-C or SIGTERM); the work done so far was saved (Interrupted)
    141  stdout was closed before everything was written (e.g. piped into `head`), as for
         any Unix tool stopped by SIGPIPE
"""

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_USAGE = 2  # argparse's own
EXIT_INPUTS_FAILED = 3
EXIT_SERVER = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


class StylecastError(Exception):
    """A problem the user can fix (bad input, missing file, bad option); never a bug."""

    exit_code = EXIT_USER_ERROR


class Interrupted(StylecastError):
    """The user (Ctrl-C) or the system (SIGTERM) stopped a long command; its work was saved."""

    exit_code = EXIT_INTERRUPTED


class InputsFailed(StylecastError):
    """Some inputs of a batch could not be processed (each was reported); the others were."""

    exit_code = EXIT_INPUTS_FAILED


class ServerFailed(StylecastError):
    """A server answered a call with an error, or could not be reached."""

    exit_code = EXIT_SERVER
