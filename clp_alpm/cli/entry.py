"""The `clp` executable. What pacman and a person run most starts without the click front
end: `clp hook ...` (pacman waits for it on every transaction; bench/hooks.py measures it),
the read-only listings (`clp list`, `pins`, `transactions`, `status` with global options
only), `clp --help` (bench/commands.py) and `clp revert` with its own and the global options
(bench/revert.py). Any other command line, or one of these with anything else on it, goes to
click, which parses it and says what is wrong."""

from __future__ import annotations

import sys

LISTINGS = ("list", "pins", "transactions", "status")  # clp_alpm.cli.listings runs them


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "hook" in args:  # with whatever global options around it
        from clp_alpm.cli.argv import parse_hook_command

        hook_call = parse_hook_command(args)
        if hook_call is not None:
            if argv is None:
                _pause_collection()
            _import_lean_stdlib()
            from clp_alpm.cli.hook import run_hook_command

            status = run_hook_command(*hook_call)
            if argv is None:  # this process is the hook: pacman waits for it to end
                _exit_now(status)
            return status
    elif args in (["--help"], ["-h"]) and _print_stored_help():
        return 0
    elif any(word in LISTINGS for word in args):
        from clp_alpm.cli.argv import parse_plain_command

        call = parse_plain_command(args, LISTINGS)
        if call is not None and not call[1]:
            return _run_listing(call[0], call[2])
    if "revert" in args:
        reverted = _run_plain_revert(args)
        if reverted is not None:
            return reverted
    from clp_alpm.cli.main import main as cli_main

    return cli_main(args)


def _run_listing(name: str, values: dict[str, object]) -> int:
    _import_lean_stdlib()
    from clp_alpm.cli.listings import LISTINGS as SHOW
    from clp_alpm.cli.options import use_options
    from clp_alpm.cli.outcome import handle_stop_signals, reported

    handle_stop_signals()
    use_options(values)

    def run() -> int:
        SHOW[name]()
        return 0

    return reported(run, debug=bool(values.get("debug")))


def _pause_collection() -> None:
    """A hook makes few objects and ends soon: collecting cycles while its modules load was an
    eighth of its work. (A re-apply, which may run long, turns collection back on.)"""
    import gc

    gc.disable()


def _exit_now(status: int) -> None:
    """End the process without tearing down every module and object (a tenth of a hook's
    work): everything the hook wrote is closed and synced, so only the output needs flushing.
    A flush that fails leaves the ending to Python."""
    import os

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(status)


def _import_lean_stdlib() -> None:
    """pathlib without urllib.parse (and ipaddress with it): about 3 ms of a listing's 30 and
    of each hook's start. pathlib takes one function from urllib.parse, for `Path.as_uri`,
    which neither calls. While pathlib loads, a stand-in holding that function (it loads the
    real one when first called) takes urllib.parse's place, and leaves sys.modules at once:
    whoever imports urllib.parse later gets the real module. A Python whose pathlib wants more
    of it imports it as usual. (SQLite needs no such help: store/state.py loads its C module,
    without datetime.)"""
    stand_in = type(sys)("urllib.parse")
    stand_in.quote_from_bytes = _quote_from_bytes  # type: ignore[attr-defined]
    _import_with_stand_in("pathlib", "urllib.parse", stand_in)


def _import_with_stand_in(name: str, standing_for: str, stand_in: object) -> None:
    if name in sys.modules or standing_for in sys.modules:
        return
    sys.modules[standing_for] = stand_in  # type: ignore[assignment]
    try:
        __import__(name)
    except ImportError:
        pass  # it asked for more: imported where it is used, with the real module
    finally:
        if sys.modules.get(standing_for) is stand_in:
            del sys.modules[standing_for]


def _quote_from_bytes(bs: bytes, safe: str = "/") -> str:
    from urllib.parse import quote_from_bytes

    return quote_from_bytes(bs, safe)


def _run_plain_revert(args: list[str]) -> int | None:
    """`clp revert` without click (clp_alpm.cli.reverts says which command lines); None for
    one that click must parse."""
    from clp_alpm.cli.options import split_pacman_options
    from clp_alpm.cli.reverts import parse_revert_command

    call = parse_revert_command(split_pacman_options(args))
    if call is None:
        return None
    from clp_alpm.cli.options import use_options
    from clp_alpm.cli.outcome import handle_stop_signals, reported
    from clp_alpm.cli.reverts import run_revert

    arguments, values = call
    handle_stop_signals()
    use_options(values)

    def run() -> int:
        run_revert(**arguments)
        return 0

    return reported(run, debug=bool(values.get("debug")))


def _print_stored_help() -> bool:
    """`clp --help` as click prints it at its usual width, kept by tools/gen_docs.py; False
    when the terminal is narrower (then click wraps it to fit)."""
    from clp_alpm.cli.helptext import HELP, WIDTH

    if _terminal_columns() < WIDTH:
        return False
    sys.stdout.write(HELP)
    sys.stdout.flush()
    return True


def _terminal_columns() -> int:
    """The width click wraps help to: $COLUMNS, else the terminal's, else 80 (as
    shutil.get_terminal_size, without loading shutil)."""
    import os

    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


if __name__ == "__main__":
    sys.exit(main())
