"""The `clp` executable. `clp hook ...` skips the click front end: pacman waits for it on
every transaction, so it must start fast (bench/hooks.py measures it)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "hook" in args:  # with whatever global options around it
        from clp_alpm.cli.argv import parse_hook_command

        hook_call = parse_hook_command(args)
        if hook_call is not None:  # else click parses it, and says what is wrong
            from clp_alpm.cli.hook import run_hook_command

            return run_hook_command(*hook_call)
    from clp_alpm.cli.main import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
