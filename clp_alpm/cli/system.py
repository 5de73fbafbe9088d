"""System commands: status, recover, and the hidden `hook` that pacman's hook files run."""

from __future__ import annotations

import click

from clp_alpm.cli import context
from clp_alpm.cli.options import command, options
from clp_alpm.cli.output import Printer


@command("status")
def status_command() -> None:
    """List running processes that still use files pacman deleted or replaced, and unit
    files that keep clp's daily run from running."""
    from clp_alpm.ops.session import require_root
    from clp_alpm.system.processes import find_stale_processes, group_by_unit
    from clp_alpm.system.services import shadowed_units

    printer = Printer(options())
    require_root()  # anyone else sees only their own processes: an all-clear would be false
    config = context.config_checking_recovery(printer)
    shadowed = shadowed_units(config.root)
    stale = find_stale_processes(config.root)
    if printer.json:
        printer.data(
            {
                "processes": [process.to_dict() for process in stale],
                "shadowed_units": [unit.to_dict() for unit in shadowed],
            }
        )
        return
    for shadow in shadowed:
        printer.warning(f"{shadow.describe()}; fix: {shadow.fix}")
    if not stale:
        printer.item("no running process uses deleted or replaced files")
        return
    by_unit = group_by_unit(stale)
    for unit, processes in sorted(by_unit.items(), key=lambda kv: kv[0] or "~"):
        printer.section(unit or "Processes outside any service")
        for process in processes:
            files = ", ".join(process.files[:3]) + (" ..." if len(process.files) > 3 else "")
            printer.arrow(f"{process.pid} {process.command}: {files}")
    units = sorted(unit for unit in by_unit if unit and unit.endswith(".service"))
    if units:
        printer.item()
        printer.item(f"restart them with: systemctl try-restart {' '.join(units)}")


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
