"""Exit statuses of `clp`, and the one table that maps the library's errors to them.

The library raises errors from `clp_alpm.errors` and never decides how the process ends; this
module is the only place that does.
"""

from __future__ import annotations

from clp_alpm.errors import ClpError, Interrupted, LockError, UsageError

EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed (and was rolled back), or was declined
EXIT_USAGE = 2  # bad input or usage; nothing changed
EXIT_LOCKED = 3  # another clp holds clp's lock, or pacman is running
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C, SIGTERM or SIGHUP, and everything was undone

# Most specific first: the first class an error is an instance of decides.
_EXIT_CODES: tuple[tuple[type[ClpError], int], ...] = (
    (Interrupted, EXIT_INTERRUPTED),
    (LockError, EXIT_LOCKED),
    (UsageError, EXIT_USAGE),
    (ClpError, EXIT_FAILED),
)


def exit_code_for(error: ClpError) -> int:
    """The exit status `clp` ends with when `error` reaches the front end."""
    for kind, code in _EXIT_CODES:
        if isinstance(error, kind):
            return code
    return EXIT_FAILED
