"""Transaction commands: transactions, diff, undo-transaction."""

from __future__ import annotations

import click

from clp_alpm.cli import context
from clp_alpm.cli.options import command, options
from clp_alpm.cli.output import Printer, when
from clp_alpm.cli.prompts import confirm

TYPE_CHECKING = False
if TYPE_CHECKING:
    from clp_alpm.ops.transactions import FileDiff, RangeDiff


@command("transactions")
def transactions_command() -> None:
    """List the pacman transactions the hooks recorded, with versions and changed files."""
    from clp_alpm.ops.transactions import describe_packages
    from clp_alpm.store.records import Health, Origin, TransactionStatus

    printer = Printer(options())
    with context.session(printer, write=False) as session:
        records = session.state.list_transactions()
    if printer.json:
        printer.data([record.to_dict() for record in records])
        return
    if printer.quiet:  # numbers only, for scripts and completion
        for record in records:
            printer.item(str(record.id))
        return
    if not records:
        printer.item("no transactions recorded (are clp's pacman hooks installed?)")
    for record in records:
        info = record.to_dict()
        status = "" if record.status == TransactionStatus.DONE else f" [{record.status}]"
        by = " by clp" if record.origin == Origin.CLP else ""
        files = f", {len(record.changed)} file(s) changed" if record.changed else ""
        shown = record.health not in (None, Health.GOOD)  # good: as any transaction
        health = f" health: {record.health}" if shown else ""
        printer.section(f"{record.id}  {when(info['started'] or '')}{by}{status}{health}{files}")
        if record.command:
            printer.item(f"   command: {record.command}")
        if record.health == Health.UNDONE_AFTER_FAILED_BOOTS and record.message:
            printer.item(f"   {record.message}")
        for line in describe_packages(record.packages):
            printer.arrow(line)
        for path in record.changed:
            printer.item(f"   {path}")


@command("diff")
@click.argument("transaction", metavar="N")
@click.argument("other", metavar="[M]", required=False)
def diff_command(transaction: str, other: str | None) -> None:
    """Show what a pacman transaction changed in configuration files, as unified diffs.

    With two numbers, N M (or N..M, as snapper writes it), what changed from the state after
    transaction N to the state after transaction M: the package versions and the recorded files
    that differ, which are what the transactions after N up to M changed. N's own changes are
    left out, as `snapper diff N..M` leaves out what happened before snapshot N: `clp diff N`
    shows those. A file counts when one of those transactions recorded it; its state after N
    is what N recorded or, when N did not record it, what the first later transaction found
    before it ran. With M before N the same changes are shown the other way round.
    """
    from clp_alpm.ops.transactions import diff, diff_between, get, parse_range

    printer = Printer(options())
    first, second = parse_range(transaction, other)
    with context.session(printer, write=False) as session:
        record = get(session.state, first)
        if second is not None:
            changes = diff_between(session.state, session.store, record, get(session.state, second))
        else:
            diffs = diff(session.store, record)
    if second is not None:
        _show_range(printer, changes)
        return
    if printer.json:
        printer.data({"transaction": record.id, "files": [d.to_dict() for d in diffs]})
        return
    if not diffs:
        printer.item(f"transaction {record.id} changed no configuration file")
    _show_files(printer, diffs)


def _show_range(printer: Printer, changes: RangeDiff) -> None:
    from clp_alpm.ops.transactions import describe_packages

    if printer.json:
        printer.data(changes.to_dict())
        return
    if not changes.packages and not changes.files:
        printer.item(
            f"nothing recorded changed from transaction {changes.first} to {changes.second}"
        )
        return
    if changes.packages:
        printer.section(f"Packages (after transaction {changes.first} -> after {changes.second})")
        for line in describe_packages(changes.packages):
            printer.arrow(line)
    _show_files(printer, changes.files)


def _show_files(printer: Printer, diffs: list[FileDiff]) -> None:
    for file_diff in diffs:
        printer.section(f"{file_diff.path}: {file_diff.summary}")
        for line in file_diff.diff.splitlines():
            printer.diff_line(line)


@command("undo-transaction")
@click.argument("transaction")
@click.option("--force", is_flag=True, help="Overwrite files changed since the transaction.")
def undo_transaction_command(transaction: str, force: bool) -> None:
    """Reverse a pacman transaction: earlier package versions, then its files restored."""
    from clp_alpm.ops.undo import plan_undo, undo

    printer = Printer(options())
    with context.session(printer) as session:
        plan = plan_undo(session, transaction, force=force)
        printer.section(f"Undoing transaction {plan.record.id}")
        rows = [
            ("Packages", "\n".join(plan.moves) or "(none)"),
            ("Files", "\n".join(plan.files) or "(none)"),
        ]
        if plan.left_to_patches:
            rows.append(
                (
                    "Patched files",
                    "\n".join(plan.left_to_patches)
                    + "\n(left to their patches: re-applied on the earlier version)",
                )
            )
        printer.rows(rows)
        for change in plan.overwritten:
            printer.warning(f"{change} since the transaction; --force overwrites it")
        printer.item()
        confirm(printer, "Proceed with undo?")
        record = undo(session, plan)
    if printer.json:
        printer.data({"plan": plan.to_dict(), "transaction": record.to_dict()})
    else:
        printer.section(f"transaction {record.id} undone")
