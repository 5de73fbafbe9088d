"""The `clp` command group on click, and click's outcomes as exit statuses.

Commands live in one module per group (patch, revert, transactions, feed, system); the group
loads only the module of the command it runs, and `clp --help` lists the commands from
`SUMMARIES` without loading any. Every other outcome (the library's errors, Ctrl-C) is
rendered by `clp_alpm.cli.outcome`, which the listings run without click share.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType

import click

from clp_alpm import __version__
from clp_alpm.cli.exits import EXIT_USAGE
from clp_alpm.cli.options import expect_json_output, split_pacman_options, with_global_options
from clp_alpm.cli.outcome import fail, handle_stop_signals, reported

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


# What `clp --help` lists for each visible command (the first paragraph of its help), so that
# the listing loads no command module; tests/unit/cli/test_lazy_group.py holds it to the help.
SUMMARIES = {
    "adopt": "Record the patches clpctl installed in PatchDir as applied (every command does "
    "this first, as root).",
    "apply": "Verify, plan and apply a .clp patch; roll it back by itself if anything fails.",
    "boot-check": "Run the boot health checks of /etc/CLP/health.d and mark this boot good or "
    "failed.",
    "build": "Validate a patch directory and pack it into a .clp (and sign it).",
    "diff": "Show what a pacman transaction changed in configuration files, as unified diffs.",
    "info": "Show a patch file's metadata, or what clp knows of the patch with that ID.",
    "list": "List patches (applied, rolled back, failed), package reverts and pins.",
    "new": "Write a patch directory with template metadata and scripts.",
    "pins": "List the packages clp keeps pacman from upgrading.",
    "recover": "Roll back what a killed clp left unfinished (every command does this first).",
    "repo-add": "Write the feed index CLP.db for a directory of .clp (or .CLP) files (and sign "
    "it).",
    "revert": "Bring packages back to earlier versions (cache, archive or file), then pin them.",
    "rollback": "Undo an applied patch (Remove script, then CLP's snapshot) or a package revert.",
    "status": "List running processes that still use files pacman deleted or replaced, and "
    "unit files that keep clp's daily run from running.",
    "transactions": "List the pacman transactions the hooks recorded, with versions and "
    "changed files.",
    "undo-transaction": "Reverse a pacman transaction: earlier package versions, then its "
    "files restored.",
    "unpin": "Let pacman upgrade a pinned package again.",
    "update": "Read the patch feed and apply every patch that is due (what the daily timer runs).",
    "verify": "Check a patch's signature and structure; change nothing.",
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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `clp --help`, as click writes it, from `SUMMARIES` (each
        shortened to the width by click, as it shortens a loaded command's help)."""
        rows = sorted(SUMMARIES.items())
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        listed = [(name, click.Command(name, help=text).get_short_help_str(limit))
                  for name, text in rows]  # fmt: skip
        with formatter.section("Commands"):
            formatter.write_dl(listed)


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


def _run_click(args: list[str]) -> int:
    """Run the command group; click's own outcomes (usage errors, --help, Ctrl-C at its
    prompt) as exit statuses."""
    try:
        # a command that raised click's Exit (a verdict, not an error) returns its status
        status = cli.main(args=args, prog_name="clp", standalone_mode=False)
        return status if isinstance(status, int) else 0
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except click.UsageError as err:
        path = err.ctx.command_path if err.ctx else "clp"
        where = "clp" + path[len(path.split(" ")[0]) :]
        return fail(f"{_lower_first(err.format_message())} (see '{where} --help')", EXIT_USAGE)
    except click.ClickException as err:
        return fail(_lower_first(err.format_message()), EXIT_USAGE)
    except click.Abort:
        raise KeyboardInterrupt from None


def main(argv: list[str] | None = None) -> int:
    handle_stop_signals()
    args = split_pacman_options(argv if argv is not None else sys.argv[1:])
    if "--json" in args:  # a usage error comes before the options are parsed: still JSON
        expect_json_output()
    return reported(lambda: _run_click(args), debug="--debug" in args)


if __name__ == "__main__":
    sys.exit(main())
