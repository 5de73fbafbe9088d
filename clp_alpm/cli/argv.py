"""The global options, in one table: the click front end builds its options from it, and
`clp hook` (which pacman starts on every transaction, and which must not load click) reads its
command line with the small parser here. Both accept the same spellings, so `clp --root R
--config F hook post-transaction` means to the hook what it means to every other command.

Host paths (--config, --dbpath, --pacman-conf, --cachedir, --gpgdir, --hookdir, --logfile)
are taken as given, as pacman takes them; every path clp.conf names is under --sysroot.
"""

from __future__ import annotations

TYPE_CHECKING = False  # the hook path: no typing import at run time
if TYPE_CHECKING:
    from typing import Any


class GlobalOption:
    """One global option: its spellings, where its value goes, what it takes."""

    __slots__ = ("names", "dest", "metavar", "multiple", "flag_value", "choices", "help")

    def __init__(
        self,
        names: tuple[str, ...],
        dest: str,
        help: str,
        metavar: str | None = None,
        multiple: bool = False,
        flag_value: object = True,
        choices: tuple[str, ...] = (),
    ) -> None:
        self.names = names
        self.dest = dest
        self.help = help
        self.metavar = metavar  # None: a flag, which stores flag_value
        self.multiple = multiple
        self.flag_value = flag_value
        self.choices = choices

    @property
    def takes_value(self) -> bool:
        return self.metavar is not None


GLOBAL_OPTIONS: tuple[GlobalOption, ...] = (
    GlobalOption(("--sysroot", "--root", "-r"), "root", metavar="DIR",
                 help="Target system root, as pacman's --sysroot: every path clp.conf names is "
                 "under DIR, and scripts run chrooted into it (--root, -r: the same, kept for "
                 "clpctl-era scripts)."),
    GlobalOption(("--config",), "config", metavar="FILE", help="clp.conf to read (host path)."),
    GlobalOption(("--dbpath", "-b"), "dbpath", metavar="DIR",
                 help="pacman database directory (host path)."),
    GlobalOption(("--pacman-conf",), "pacman_conf", metavar="FILE",
                 help="pacman.conf to read (host path)."),
    GlobalOption(("--cachedir",), "cachedir", metavar="DIR", multiple=True,
                 help="Extra package cache directory (host path), searched first."),
    GlobalOption(("--gpgdir",), "gpgdir", metavar="DIR",
                 help="GnuPG directory that checks signatures (host path): clp.conf's Keyring, "
                 "and pacman's GPGDir for the pacman clp runs."),
    GlobalOption(("--hookdir",), "hookdir", metavar="DIR", multiple=True,
                 help="Extra hook directory for the pacman clp runs (host path)."),
    GlobalOption(("--logfile",), "logfile", metavar="FILE",
                 help="clp's log, instead of clp.conf's LogFile (host path)."),
    GlobalOption(("--noconfirm",), "noconfirm", help="Do not ask for confirmation."),
    GlobalOption(("--confirm",), "noconfirm", flag_value=False,
                 help="Ask for confirmation (cancels an earlier --noconfirm)."),
    GlobalOption(("--quiet", "-q"), "quiet",
                 help="Show less: no progress lines; lists show names only."),
    GlobalOption(("--verbose", "-v"), "verbose",
                 help="Show the paths clp uses (root, files, directories) first."),
    GlobalOption(("--json",), "json_output", help="Machine-readable output."),
    GlobalOption(("--color",), "color", metavar="WHEN", choices=("auto", "always", "never"),
                 help="Colour: auto (on a terminal, when pacman.conf says Color), always, never."),
    GlobalOption(("--debug",), "debug", help="Show tracebacks of internal errors."),
)  # fmt: skip

_BY_NAME = {name: option for option in GLOBAL_OPTIONS for name in option.names}


class _NotPlain(Exception):
    """The command line is not `clp [global options] COMMAND [words] [global options]` with
    COMMAND one of those asked for."""


def parse_hook_command(args: list[str]) -> tuple[list[str], dict[str, Any]] | None:
    """The words after `hook` and the global options around them; None when the command is
    not `hook` or holds anything else (then click parses it, and says what is wrong)."""
    call = parse_plain_command(args, ("hook",))
    return None if call is None else (call[1], call[2])


def parse_plain_command(
    args: list[str], commands: tuple[str, ...]
) -> tuple[str, list[str], dict[str, Any]] | None:
    """The command (one of `commands`), the words after it and the global options around
    them; None for any other command line (then click parses it, and says what is wrong)."""
    try:
        return _parse_plain_command(args, commands)
    except _NotPlain:
        return None


def parse_command_with_options(
    args: list[str], command: str, own: dict[str, tuple[str, bool]]
) -> tuple[list[str], dict[str, Any], dict[str, Any]] | None:
    """As parse_plain_command for one `command` that has options of its own, after its name
    (`own`: long option -> (where its value goes, whether it takes one); a flag stores True):
    its words, the global options and its own; None for any other command line."""
    mine: dict[str, Any] = {}
    try:
        _, words, values = _parse_plain_command(args, (command,), own, mine)
    except _NotPlain:
        return None
    return words, values, mine


def _parse_plain_command(
    args: list[str],
    commands: tuple[str, ...],
    own: dict[str, tuple[str, bool]] | None = None,
    mine: dict[str, Any] | None = None,
) -> tuple[str, list[str], dict[str, Any]]:
    words: list[str] = []
    values: dict[str, Any] = {}
    command = ""
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if command and own and mine is not None and arg.partition("=")[0] in own:
            _take_own_option(arg, rest, own, mine)
        elif arg.startswith("-") and arg != "-":
            _take_option(arg, rest, values)
        elif not command:
            if arg not in commands:
                raise _NotPlain(arg)
            command = arg
        else:
            words.append(arg)
    if not command:
        raise _NotPlain("no command")
    return command, words, values


def _take_own_option(
    arg: str, rest: list[str], own: dict[str, tuple[str, bool]], mine: dict[str, Any]
) -> None:
    name, has_value, inline = arg.partition("=")
    dest, takes_value = own[name]
    if not takes_value:
        if has_value:
            raise _NotPlain(arg)
        mine[dest] = True
        return
    if not has_value:
        if not rest:
            raise _NotPlain(arg)
        inline = rest.pop(0)
    mine[dest] = inline


def _take_option(arg: str, rest: list[str], values: dict[str, Any]) -> None:
    if not arg.startswith("--") and len(arg) > 2:  # -qv, -rDIR: short options together
        first = _BY_NAME.get(arg[:2])
        if first is None:
            raise _NotPlain(arg)
        if first.takes_value:
            rest.insert(0, arg[2:])
            _take_option(arg[:2], rest, values)
        else:
            _take_option(arg[:2], rest, values)
            _take_option("-" + arg[2:], rest, values)
        return
    name, has_value, inline = arg.partition("=") if arg.startswith("--") else (arg, False, "")
    option = _BY_NAME.get(name)
    if option is None:
        raise _NotPlain(arg)
    if not option.takes_value:
        if has_value:
            raise _NotPlain(arg)
        values[option.dest] = option.flag_value
        return
    if not has_value:
        if not rest:
            raise _NotPlain(arg)
        inline = rest.pop(0)
    if option.choices and inline not in option.choices:
        raise _NotPlain(arg)
    if option.multiple:
        values.setdefault(option.dest, []).append(inline)
    else:
        values[option.dest] = inline


def config_arguments(values: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """What load_config takes for these option values: the root, the clp.conf given, and the
    host paths that override what the files say."""
    from clp_alpm.paths import clean_host_path

    def host(dest: str) -> str | None:
        value = values.get(dest)
        return clean_host_path(value) if value else None

    def hosts(dest: str) -> tuple[str, ...] | None:
        return tuple(clean_host_path(value) for value in values.get(dest) or ()) or None

    overrides = {
        "dbpath_override": host("dbpath"),
        "pacman_conf": host("pacman_conf"),
        "extra_cache_dirs": hosts("cachedir"),
        "keyring_override": host("gpgdir"),
        "extra_hook_dirs": hosts("hookdir"),
        "log_file_override": host("logfile"),
    }
    return values.get("root") or "/", values.get("config"), overrides
