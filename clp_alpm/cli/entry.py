"""The `clp` executable. What pacman and a person run most starts without the click front
end: `clp hook ...` (pacman waits for it on every transaction; bench/hooks.py measures it),
the read-only listings (`clp list`, `pins`, `transactions`, `status` with global options
only) and `clp --help` (bench/commands.py). Any other command line, or one of these with
anything else on it, goes to click, which parses it and says what is wrong."""

from __future__ import annotations

import sys

LISTINGS = ("list", "pins", "transactions", "status")  # clp_alpm.cli.listings runs them


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "hook" in args:  # with whatever global options around it
        from clp_alpm.cli.argv import parse_hook_command

        hook_call = parse_hook_command(args)
        if hook_call is not None:
            from clp_alpm.cli.hook import run_hook_command

            return run_hook_command(*hook_call)
    elif args in (["--help"], ["-h"]) and _print_stored_help():
        return 0
    elif any(word in LISTINGS for word in args):
        from clp_alpm.cli.argv import parse_plain_command

        call = parse_plain_command(args, LISTINGS)
        if call is not None and not call[1]:
            return _run_listing(call[0], call[2])
    from clp_alpm.cli.main import main as cli_main

    return cli_main(args)


def _run_listing(name: str, values: dict[str, object]) -> int:
    _import_lean_stdlib(with_sqlite=name != "pins")  # pins reads no state
    from clp_alpm.cli.listings import LISTINGS as SHOW
    from clp_alpm.cli.options import use_options
    from clp_alpm.cli.outcome import handle_stop_signals, reported

    handle_stop_signals()
    use_options(values)

    def run() -> int:
        SHOW[name]()
        return 0

    return reported(run, debug=bool(values.get("debug")))


def _import_lean_stdlib(with_sqlite: bool) -> None:
    """pathlib without urllib.parse (and ipaddress with it), sqlite3 without datetime: 4 ms
    of a listing's 30. pathlib takes one function from urllib.parse, for `Path.as_uri`,
    which no listing calls; sqlite3 takes its date and time classes from datetime, which are
    _datetime's. While each loads, a stand-in takes the other's place (a module holding that
    function, which loads the real one when first called; _datetime itself), and leaves
    sys.modules at once: whoever imports urllib.parse or datetime later gets the real module
    (whose classes are _datetime's, the ones sqlite3 holds). A Python whose pathlib or sqlite3
    wants more of them imports them as usual."""
    stand_in = type(sys)("urllib.parse")
    stand_in.quote_from_bytes = _quote_from_bytes  # type: ignore[attr-defined]
    _import_with_stand_in("pathlib", "urllib.parse", stand_in)
    if not with_sqlite:
        return
    try:
        c_datetime = __import__("_datetime")
    except ImportError:
        return
    _import_with_stand_in("sqlite3", "datetime", c_datetime)


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
