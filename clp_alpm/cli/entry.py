"""The `clp` executable. What pacman and a person run most starts without the click front
end: `clp hook ...` (pacman waits for it on every transaction; bench/hooks.py measures it),
the read-only listings (`clp list`, `pins`, `transactions`, `status` with global options
only), `clp --help` (bench/commands.py) and `clp revert` with its own and the global options
(bench/revert.py). Any other command line, or one of these with anything else on it, goes to
click, which parses it and says what is wrong."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

LISTINGS = ("list", "pins", "transactions", "status")  # clp_alpm.cli.listings runs them
PATHLIB_COMPILES_PATTERNS = (3, 12)  # the Python whose pathlib needs re when it loads


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "hook" in args:  # with whatever global options around it
        from clp_alpm.cli.argv import parse_hook_command

        hook_call = parse_hook_command(args)
        if hook_call is not None:
            if argv is None:
                _pause_collection()
            _import_lean_sqlite()
            from clp_alpm.cli.hook import run_hook_command

            status = run_hook_command(*hook_call, process_ends=argv is None)
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
    _import_lean_sqlite()
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


def _import_lean_sqlite() -> None:
    """SQLite's C module without functools (and collections with it), for the hooks and the
    listings, which need no pathlib (their modules hold paths as strings): 3 ms of each
    hook's start. store/state.py loads it without sqlite3's datetime; clp_alpm/plainjson.py
    is JSON without the json package."""
    _import_with_stand_ins(("_sqlite3",), {"functools": _functools_stand_in()})


def _import_lean_stdlib() -> None:
    """pathlib too, for `clp revert` (whose modules take pathlib's paths), without urllib.parse
    or re (and enum with it): pathlib and fnmatch call re only to match glob patterns, which
    no revert does, and pathlib takes one function from urllib.parse, for `Path.as_uri`,
    which none calls. While they load, stand-ins take those modules' places in sys.modules:
    re's loads the real module on the first use of any of its names, urllib.parse's holds
    that one function, which loads the real one when called, functools' hands out functools'
    own C cache. All leave sys.modules at once: whoever imports them later gets the real
    module. A Python whose pathlib wants more of them at load time is given the real modules
    then. From Python 3.12 pathlib compiles patterns as it loads (3.12 through fnmatch, 3.13
    through glob), so there re has no stand-in (and re loads functools)."""
    if "pathlib" in sys.modules:
        return
    urllib_parse = type(sys)("urllib.parse")
    urllib_parse.quote_from_bytes = _quote_from_bytes  # type: ignore[attr-defined]
    stand_ins = {"urllib.parse": urllib_parse, "functools": _functools_stand_in()}
    if sys.version_info < PATHLIB_COMPILES_PATTERNS:
        stand_ins["re"] = _lazy_module("re")
    _import_with_stand_ins(("_sqlite3", "pathlib"), stand_ins)


def _functools_stand_in() -> ModuleType:
    """functools as SQLite's C module, pathlib and fnmatch (glob from 3.13) use it while they
    load: lru_cache and cache, which are the C cache functools itself hands out. The real
    module would import collections: 3 ms of each hook's start. Any other name of it loads
    the real module."""
    stand_in = _lazy_module("functools")
    wrapper = getattr(sys.modules.get("_functools") or __import__("_functools"),
                      "_lru_cache_wrapper", None)  # fmt: skip
    if wrapper is None:
        return stand_in

    def cached(function: Any, maxsize: int | None, typed: bool) -> Any:
        made = wrapper(function, maxsize, typed, _cache_info)
        for name in ("__module__", "__name__", "__qualname__", "__doc__"):
            if hasattr(function, name):
                setattr(made, name, getattr(function, name))
        made.__wrapped__ = function
        made.cache_parameters = lambda: {"maxsize": maxsize, "typed": typed}
        return made

    def lru_cache(maxsize: Any = 128, typed: bool = False) -> Any:
        if callable(maxsize) and isinstance(typed, bool):  # @lru_cache without arguments
            return cached(maxsize, 128, typed)
        if isinstance(maxsize, int):
            maxsize = max(maxsize, 0)
        elif maxsize is not None:  # the real lru_cache says what is wrong
            return stand_in.__getattr__("lru_cache")(maxsize, typed)
        return lambda function: cached(function, maxsize, typed)

    stand_in.__dict__.update(lru_cache=lru_cache, cache=lambda f: cached(f, None, False))
    return stand_in


def _cache_info(hits: int, misses: int, maxsize: int | None, size: int) -> Any:
    """What cache_info() says: functools' CacheInfo once functools is loaded."""
    from functools import _CacheInfo

    return _CacheInfo(hits, misses, maxsize, size)


def _lazy_module(name: str) -> ModuleType:
    """A stand-in for module `name` that imports the real one when a name of it is first
    used, and hands that name on."""
    stand_in = type(sys)(name)

    def real_attribute(attribute: str) -> object:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        return getattr(__import__(name, fromlist=["_"]), attribute)

    stand_in.__dict__["__getattr__"] = real_attribute  # PEP 562: asked for missing names
    return stand_in


def _import_with_stand_ins(names: tuple[str, ...], stand_ins: dict[str, ModuleType]) -> None:
    """Import modules `names` while `stand_ins` (module name: stand-in) take the places of
    modules not yet loaded."""
    placed = {module: s for module, s in stand_ins.items() if module not in sys.modules}
    sys.modules.update(placed)
    try:
        for name in names:
            try:  # noqa: SIM105 - contextlib is what this keeps off the hooks' path
                __import__(name)
            except ImportError:
                pass  # it asked for more: imported where it is used, with the real modules
    finally:
        for module, stand_in in placed.items():
            if sys.modules.get(module) is stand_in:
                del sys.modules[module]


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
    _import_lean_stdlib()
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
