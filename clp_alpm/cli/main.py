"""The `clp` command group, and how a command's outcome becomes output and an exit status.

Commands live in one module per group (patch, revert, transactions, feed, system); the group
loads only the module of the command it runs. Every error the library raises is rendered
here, in one line (a traceback only with --debug), and mapped to its exit status by
`clp_alpm.cli.exits`.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType, ModuleType

import click

from clp_alpm import __version__, stops
from clp_alpm.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, exit_code_for
from clp_alpm.cli.options import (
    expect_json_output,
    last_options,
    split_pacman_options,
    with_global_options,
)
from clp_alpm.cli.output import Printer
from clp_alpm.errors import ClpError, Declined, UpdateFailed

EPILOG = (
    "Exit status: 0 success; 1 the operation failed (and was rolled back) or was declined; "
    "2 bad input or usage, nothing changed; 3 another clp holds the lock."
)


def _patch_commands() -> ModuleType:
    from clp_alpm.cli import patch

    return patch


def _revert_commands() -> ModuleType:
    from clp_alpm.cli import revert

    return revert


def _transaction_commands() -> ModuleType:
    from clp_alpm.cli import transactions

    return transactions


def _feed_commands() -> ModuleType:
    from clp_alpm.cli import feed

    return feed


def _health_commands() -> ModuleType:
    from clp_alpm.cli import health

    return health


def _system_commands() -> ModuleType:
    from clp_alpm.cli import system

    return system


# command name -> (the module that defines it, the click command's name there)
COMMANDS: dict[str, tuple[Callable[[], ModuleType], str]] = {
    "adopt": (_patch_commands, "adopt_command"),
    "apply": (_patch_commands, "apply_command"),
    "boot-check": (_health_commands, "boot_check_command"),
    "build": (_patch_commands, "build_command"),
    "diff": (_transaction_commands, "diff_command"),
    "hook": (_system_commands, "hook_command"),
    "info": (_patch_commands, "info_command"),
    "list": (_patch_commands, "list_command"),
    "new": (_patch_commands, "new_command"),
    "pins": (_revert_commands, "pins_command"),
    "recover": (_system_commands, "recover_command"),
    "repo-add": (_feed_commands, "repo_add_command"),
    "revert": (_revert_commands, "revert_command"),
    "rollback": (_patch_commands, "rollback_command"),
    "status": (_system_commands, "status_command"),
    "transactions": (_transaction_commands, "transactions_command"),
    "undo-transaction": (_transaction_commands, "undo_transaction_command"),
    "unpin": (_revert_commands, "unpin_command"),
    "update": (_feed_commands, "update_command"),
    "verify": (_patch_commands, "verify_command"),
}


# clpctl's commands that clp names otherwise: a usage error that says which one to use
CLPCTL_COMMANDS = {
    "install": "clp apply FILE",
    "uninstall": "clp rollback ID",
    "create": "clp build DIR",
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is asked for."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] in CLPCTL_COMMANDS:
            raise click.UsageError(
                f"clp has no '{args[0]}' command (that is clpctl's); "
                f"use '{CLPCTL_COMMANDS[args[0]]}'",
                ctx,
            )
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        load, name = COMMANDS[cmd_name]
        found = getattr(load(), name)
        assert isinstance(found, click.Command)
        return found


def _main_group() -> None:
    """Core LivePatch: apply signed live patches and roll them back, without a reboot.

    Global options may stand before or after the command, as in pacman.
    """


cli = click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG
)(
    click.version_option(__version__, "-V", "--version", prog_name="clp")(
        with_global_options(_main_group, hidden=False)
    )
)


# -- the outcome ---------------------------------------------------------------------------


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:].rstrip(".")


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


def _fail(message: str, code: int) -> int:
    opts = last_options()
    printer = Printer(opts)
    printer.error(message)
    if opts.json:
        printer.data({"error": message, "exit_code": code})
    return code


def main(argv: list[str] | None = None) -> int:
    handle_stop_signals()
    args = split_pacman_options(argv if argv is not None else sys.argv[1:])
    debug = "--debug" in args
    if "--json" in args:  # a usage error comes before the options are parsed: still JSON
        expect_json_output()
    try:
        # a command that raised click's Exit (a verdict, not an error) returns its status
        status = cli.main(args=args, prog_name="clp", standalone_mode=False)
        return status if isinstance(status, int) else 0
    except Declined as declined:
        Printer(last_options()).item(str(declined))
        return exit_code_for(declined)
    except UpdateFailed as err:
        if err.reported:  # already in the --json document
            Printer(last_options()).error(str(err))
            return exit_code_for(err)
        return _fail(str(err), exit_code_for(err))
    except ClpError as err:
        return _fail(str(err), exit_code_for(err))
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except click.UsageError as err:
        path = err.ctx.command_path if err.ctx else "clp"
        where = "clp" + path[len(path.split(" ")[0]) :]
        return _fail(f"{_lower_first(err.format_message())} (see '{where} --help')", EXIT_USAGE)
    except click.ClickException as err:
        return _fail(_lower_first(err.format_message()), EXIT_USAGE)
    except (click.Abort, KeyboardInterrupt):
        click.echo(err=True)
        return _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as err:  # a bug: say so in one line unless --debug
        if debug:
            raise
        return _fail(f"internal error: {type(err).__name__}: {err} (run with --debug)", EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
