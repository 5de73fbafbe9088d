"""Package commands: revert, pins, unpin. What revert does is in `clp_alpm.cli.reverts`, which
also runs a plain revert command line without click."""

from __future__ import annotations

import click

from clp_alpm.cli import context, listings
from clp_alpm.cli.options import command, options
from clp_alpm.cli.output import Printer


@command("revert")
@click.argument("targets", nargs=-1, required=True, metavar="PKG [VERSION] | PKG=VER... | FILE|URL")
@click.option("--list", "list_only", is_flag=True, help="Only list the versions to be had.")
@click.option("--allow-upgrade", is_flag=True, help="Accept a version newer than installed.")
@click.option("--until", metavar="VERSION", help="Lift the pin once a repository has VERSION.")
@click.option(
    "--no-rollback-copy",
    is_flag=True,
    help="Revert even when no copy of the installed version exists (no rollback then).",
)
def revert_command(
    targets: tuple[str, ...],
    list_only: bool,
    allow_upgrade: bool,
    until: str | None,
    no_rollback_copy: bool,
) -> None:
    """Bring packages back to earlier versions (cache, archive or file), then pin them.

    Options after `--` go to pacman, as downgrade passes them: `--overwrite GLOB`,
    `--assume-installed PKG`, `--nodeps`, `--asdeps` and the like (never one that changes where
    pacman works: clp sets those)."""
    from clp_alpm.cli.reverts import run_revert

    run_revert(targets, list_only, allow_upgrade, until, no_rollback_copy)


@command("pins")
def pins_command() -> None:
    """List the packages clp keeps pacman from upgrading.

    A pin with an until version is lifted first (as root) when a repository offers that
    version: clp refreshes its own copy of the sync databases to see, and leaves pacman's
    alone, as checkupdates does.
    """
    listings.show_pins()


@command("unpin")
@click.argument("package")
def unpin_command(package: str) -> None:
    """Let pacman upgrade a pinned package again."""
    from clp_alpm.ops.pins import unpin

    printer = Printer(options())
    with context.session(printer) as session:
        unpin(session, [package])
    if printer.json:
        printer.data({"unpinned": package})
    else:
        printer.section(f"{package} unpinned: the next 'pacman -Syu' may upgrade it")
