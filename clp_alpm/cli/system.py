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
def recover_command() -> None:
    """Roll back what a killed clp left unfinished (every command does this first)."""
    printer = Printer(options())
    with context.session(printer) as session:
        reports = session.recovered
    if printer.json:
        printer.data({"recovered": reports})
    elif not reports:
        printer.item("nothing to recover")
