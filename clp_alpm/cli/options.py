"""Global options, accepted before or after the command name (as pacman accepts them).

Every command carries the global options (hidden in its own help; `clp --help` lists them);
a value given anywhere lands in the click context's `meta`, and `options()` merges them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

_GLOBAL_KEY = "clp.options"

F = TypeVar("F", bound=Callable[..., Any])


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value not in (None, False, ()):
        ctx.meta.setdefault(_GLOBAL_KEY, {})[param.name] = value
    return value


def _global_options(hidden: bool) -> list[Callable[[F], F]]:
    def option(*names: str, **kwargs: Any) -> Callable[[F], F]:
        return click.option(*names, expose_value=False, callback=_remember, hidden=hidden, **kwargs)

    return [
        option("--root", "-r", type=click.Path(file_okay=False), help="Target system root."),
        option("--config", type=click.Path(dir_okay=False), help="clp.conf to read (host path)."),
        option(
            "--dbpath",
            "-b",
            type=click.Path(file_okay=False),
            help="pacman database directory (host path).",
        ),
        option(
            "--pacman-conf",
            type=click.Path(dir_okay=False),
            help="pacman.conf to read (host path).",
        ),
        option(
            "--cachedir",
            type=click.Path(file_okay=False),
            multiple=True,
            help="Extra package cache directory (host path), searched first.",
        ),
        option("--noconfirm", is_flag=True, help="Do not ask for confirmation."),
        option("--json", "json_output", is_flag=True, help="Machine-readable output."),
        option(
            "--color",
            type=click.Choice(["auto", "always", "never"]),
            help="Colour: auto (on a terminal, when pacman.conf says Color), always, never.",
        ),
        option("--debug", is_flag=True, help="Show tracebacks of internal errors."),
    ]


def with_global_options(function: F, hidden: bool) -> F:
    for option in reversed(_global_options(hidden)):
        function = option(function)
    return function


def command(name: str, **kwargs: Any) -> Callable[[Callable[..., None]], click.Command]:
    """A command that also accepts every global option (listed in `clp --help` only)."""

    def decorate(function: Callable[..., None]) -> click.Command:
        make = cast(
            Callable[[Callable[..., None]], click.Command],
            click.command(name, epilog="Global options: see 'clp --help'.", **kwargs),
        )
        return make(with_global_options(function, hidden=True))

    return decorate


class Options:
    """The merged global options of this invocation."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.root: str = values.get("root") or "/"
        self.config: str | None = values.get("config")
        self.dbpath: str | None = values.get("dbpath")
        self.pacman_conf: str | None = values.get("pacman_conf")
        self.cachedir: tuple[str, ...] = tuple(values.get("cachedir") or ())
        self.noconfirm: bool = values.get("noconfirm", False)
        self.json: bool = values.get("json_output", False)
        self.color: str = values.get("color") or "auto"
        self.debug: bool = values.get("debug", False)


_last = Options({})


def options() -> Options:
    """This invocation's options (remembered for the error report after the command ends)."""
    global _last
    _last = Options(click.get_current_context().meta.get(_GLOBAL_KEY, {}))
    return _last


def last_options() -> Options:
    """The options of the command that ran last (for reporting an error it raised)."""
    return _last


def expect_json_output() -> None:
    """A usage error comes before the options are parsed: still answer it as JSON."""
    global _last
    _last = Options({"json_output": True})
