"""`clpctl`, as clp ships it: clpctl's five commands, done through clp.

Scripts and fingers that still call clpctl (Vincent OS's Update-System.ps1 runs
`clpctl update`) keep working: each command runs the clp command that does what clpctl's did,
without asking (clpctl never asked), and says on stderr, in one line, which clp command to use
from now on. Its output and exit status are clp's.
"""

from __future__ import annotations

import sys

USAGE = "usage: clpctl {install FILE | uninstall ID | list | update | create DIR NAME}"
EXIT_USAGE = 2

# clpctl command -> (its arguments, the clp command it becomes, the hint's wording)
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "install": (("FILE",), "clp apply FILE"),
    "uninstall": (("ID",), "clp rollback ID"),
    "list": ((), "clp list"),
    "update": ((), "clp update"),
    "create": (("DIR", "NAME"), "clp build DIR -o NAME.clp"),
}


def clp_arguments(command: str, args: list[str]) -> list[str]:
    """The clp command line that does what `clpctl COMMAND ARGS` did."""
    if command == "install":
        return ["apply", args[0], "--noconfirm"]
    if command == "uninstall":
        # clpctl named a patch by its directory: `install FILE` made it FILE (CLPR1.clp)
        patch = args[0].rstrip("/").rsplit("/", 1)[-1]
        for suffix in (".clp", ".CLP"):
            patch = patch.removesuffix(suffix)
        return ["rollback", patch, "--noconfirm"]
    if command == "list":
        return ["list"]
    if command == "update":
        return ["update", "--noconfirm"]
    directory, name = args
    return ["build", directory, "-o", name if name.endswith(".clp") else f"{name}.clp"]


def split_options(argv: list[str]) -> tuple[list[str], list[str]] | None:
    """(clp's global options, clpctl's words), wherever the options stand; None for an
    option clp does not have."""
    from clp_alpm.cli.argv import GLOBAL_OPTIONS

    by_name = {name: option for option in GLOBAL_OPTIONS for name in option.names}
    options: list[str] = []
    words: list[str] = []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("-") or arg == "-":
            words.append(arg)
            continue
        option = by_name.get(arg.partition("=")[0])
        if option is None:
            return None
        options.append(arg)
        if option.takes_value and "=" not in arg and rest:
            options.append(rest.pop(0))
    return options, words


def main(argv: list[str] | None = None) -> int:
    split = split_options(sys.argv[1:] if argv is None else argv)
    if split is None:
        print(f"clpctl: unknown option; {USAGE}", file=sys.stderr)
        return EXIT_USAGE
    options, args = split
    if not args or args[0] not in COMMANDS:
        given = f"unknown command '{args[0]}'; " if args else ""
        print(f"clpctl: {given}{USAGE} (clpctl is now clp: see 'clp --help')", file=sys.stderr)
        return EXIT_USAGE
    command, rest = args[0], args[1:]
    wanted, hint = COMMANDS[command]
    if len(rest) != len(wanted):
        print(f"clpctl: {command} takes {' '.join(wanted) or 'no argument'}; {USAGE}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    print(f"clpctl: 'clpctl {command}' is now '{hint}'; use that from now on", file=sys.stderr)
    from clp_alpm.cli.main import main as clp_main

    return clp_main([*options, *clp_arguments(command, rest)])


if __name__ == "__main__":
    sys.exit(main())
