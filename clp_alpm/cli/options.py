"""Global options, accepted before or after the command name (as pacman accepts them).

Every command carries the global options (hidden in its own help; `clp --help` lists them);
a value given anywhere lands in the click context's `meta`, and `options()` merges them.
"""

from __future__ import annotations

from clp_alpm.cli.argv import GLOBAL_OPTIONS, GlobalOption

# click loads with the first command it defines: a listing run without click
# (`clp_alpm.cli.listings`) gets its options from `use_options`, not from click's context.
TYPE_CHECKING = False  # nor typing: see clp_alpm.cli.entry
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    import click

    F = TypeVar("F", bound=Callable[..., Any])

_GLOBAL_KEY = "clp.options"


def _remember(
    dest: str, flag: bool, stored: object
) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """Keep a given value under its option's destination; callbacks run in the order of the
    command line, so that the last of --noconfirm and --confirm wins."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value in (None, False, ()):
            return value
        ctx.meta.setdefault(_GLOBAL_KEY, {})[dest] = stored if flag else value
        return value

    return callback


def _global_options(hidden: bool) -> list[Callable[[F], F]]:
    return [_click_option(option, hidden) for option in GLOBAL_OPTIONS]


def _click_option(option: GlobalOption, hidden: bool) -> Callable[[F], F]:
    import click

    param_name = option.names[0].lstrip("-").replace("-", "_")
    kind: dict[str, Any] = {"is_flag": True}
    if option.takes_value:
        kind = {"metavar": option.metavar, "multiple": option.multiple}
        if option.choices:
            kind["type"] = click.Choice(option.choices)
    return click.option(
        *option.names, param_name, expose_value=False, hidden=hidden, help=option.help,
        callback=_remember(option.dest, not option.takes_value, option.flag_value), **kind,
    )  # fmt: skip


def with_global_options(function: F, hidden: bool) -> F:
    for option in reversed(_global_options(hidden)):
        function = option(function)
    return function


def command(name: str, **kwargs: Any) -> Callable[[Callable[..., None]], click.Command]:
    """A command that also accepts every global option (listed in `clp --help` only)."""

    def decorate(function: Callable[..., None]) -> click.Command:
        from typing import cast

        import click

        make = cast(
            "Callable[[Callable[..., None]], click.Command]",
            click.command(name, epilog="Global options: see 'clp --help'.", **kwargs),
        )
        return make(with_global_options(function, hidden=True))

    return decorate


class Options:
    """The merged global options of this invocation."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values  # as the option table names them (for config_arguments)
        self.root: str = values.get("root") or "/"
        self.config: str | None = values.get("config")
        self.dbpath: str | None = values.get("dbpath")
        self.pacman_conf: str | None = values.get("pacman_conf")
        self.cachedir: tuple[str, ...] = tuple(values.get("cachedir") or ())
        self.noconfirm: bool = values.get("noconfirm", False)
        self.quiet: bool = values.get("quiet", False)
        self.verbose: bool = values.get("verbose", False)
        self.json: bool = values.get("json_output", False)
        self.color: str = values.get("color") or "auto"
        self.debug: bool = values.get("debug", False)


_last = Options({})
_given: dict[str, Any] | None = None  # the options parsed by hand, without click


def use_options(values: dict[str, Any]) -> None:
    """This invocation's options, read from the command line without click."""
    global _given
    _given = values


def options() -> Options:
    """This invocation's options (remembered for the error report after the command ends)."""
    global _last
    if _given is not None:
        _last = Options(_given)
    else:
        import click

        _last = Options(click.get_current_context().meta.get(_GLOBAL_KEY, {}))
    return _last


def last_options() -> Options:
    """The options of the command that ran last (for reporting an error it raised)."""
    return _last


def expect_json_output() -> None:
    """A usage error comes before the options are parsed: still answer it as JSON."""
    global _last
    _last = Options({"json_output": True})


_passed_to_pacman: tuple[str, ...] = ()


def split_pacman_options(args: list[str]) -> list[str]:
    """`clp revert … -- OPTIONS`: what follows `--` is for pacman, as downgrade takes it;
    kept aside (`pacman_options()`) and the rest returned for click. Other commands keep their
    `--` (it ends their options, as usual)."""
    global _passed_to_pacman
    if "--" not in args:
        return args
    end = args.index("--")
    if "revert" not in args[:end]:
        return args
    _passed_to_pacman = tuple(args[end + 1 :])
    return args[:end]


def pacman_options() -> tuple[str, ...]:
    """The options given after `--` for the pacman that `clp revert` runs."""
    return _passed_to_pacman
