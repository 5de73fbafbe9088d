"""System commands: status, recover, and the hidden `hook` that pacman's hook files run."""

from __future__ import annotations

import click

from clp_alpm.cli import context, listings
from clp_alpm.cli.options import command, options
from clp_alpm.cli.output import Printer


@command("status")
def status_command() -> None:
    """List running processes that still use files pacman deleted or replaced, and unit
    files that keep clp's daily run from running."""
    listings.show_status()


@command("hook", hidden=True)
@click.argument("when", type=click.Choice(["pre-transaction", "post-transaction"]))
def hook_command(when: str) -> None:
    """Run by clp's pacman hooks (targets on stdin); never fails the transaction."""
    from clp_alpm.cli.hook import run_hook_command

    run_hook_command([when], options().values)


@command("recover")
@click.option(
    "--rebuild-state",
    is_flag=True,
    help="The state database is damaged: keep a copy of it, salvage every record SQLite can read "
    "into a new one, rebuild the rest from disk (patch directories, the snapshot store), "
    "deleting no snapshot.",
)
def recover_command(rebuild_state: bool) -> None:
    """Roll back what a killed clp left unfinished (every command does this first)."""
    printer = Printer(options())
    rebuilt = None
    if rebuild_state:
        from clp_alpm.ops.recover import rebuild_state as rebuild
        from clp_alpm.ops.session import require_root

        require_root()
        settings = context.config()
        printer.section("Rebuilding the state database...")
        rebuilt = rebuild(settings, context.events(printer))
        if not printer.json:
            for line in rebuilt.lines():
                printer.arrow(line)
    with context.session(printer) as session:
        reports = session.recovered
    if printer.json:
        printer.data({"recovered": reports} | ({"rebuilt": rebuilt.to_dict()} if rebuilt else {}))
    elif not reports and rebuilt is None:
        printer.item("nothing to recover")
