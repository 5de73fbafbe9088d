"""How a command's outcome becomes output and an exit status, with or without click: every
error the library raises is rendered here in one line (a traceback only with --debug) and
mapped to its exit status by `clp_alpm.cli.exits`; stop signals are handled here too."""

from __future__ import annotations

from clp_alpm import stops
from clp_alpm.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, exit_code_for
from clp_alpm.cli.options import last_options
from clp_alpm.cli.output import Printer, echo
from clp_alpm.errors import ClpError, Declined, UpdateFailed

TYPE_CHECKING = False  # the listings start without typing (see clp_alpm.cli.entry)
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
    from types import FrameType
else:  # the C module `signal` wraps: its IntEnums cost a millisecond a listing does not need
    import _signal as signal

# One rule for every stop signal, whatever the disposition clp inherited (an ignored SIGINT
# from `cmd &` in a script, an ignored SIGHUP from nohup), as pacman handles SIGINT and SIGHUP:
# the operation stops at once and undoes what it changed; exit status 130.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop(signum: int, frame: FrameType | None) -> None:
    if stops.stop_now(signum):  # else an undo is running: it ends first
        raise KeyboardInterrupt


def handle_stop_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)


def fail(message: str, code: int) -> int:
    """Say `message` as the error it is (and in the --json document); `code`."""
    opts = last_options()
    printer = Printer(opts)
    printer.error(message)
    if opts.json:
        printer.data({"error": message, "exit_code": code})
    return code


def reported(run: Callable[[], int], debug: bool) -> int:
    """Run a command; its exit status, whatever it raised said as the user should see it."""
    try:
        return run()
    except Declined as declined:
        Printer(last_options()).item(str(declined))
        return exit_code_for(declined)
    except UpdateFailed as err:
        if err.reported:  # already in the --json document
            Printer(last_options()).error(str(err))
            return exit_code_for(err)
        return fail(str(err), exit_code_for(err))
    except ClpError as err:
        return fail(str(err), exit_code_for(err))
    except KeyboardInterrupt:
        echo(err=True)
        return fail("interrupted", EXIT_INTERRUPTED)
    except Exception as err:  # a bug: say so in one line unless --debug
        if debug:
            raise
        return fail(f"internal error: {type(err).__name__}: {err} (run with --debug)", EXIT_FAILED)
