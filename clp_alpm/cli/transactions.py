"""Transaction commands: transactions, diff, undo-transaction."""

from __future__ import annotations

import click

from clp_alpm.cli import context
from clp_alpm.cli.options import command, options
from clp_alpm.cli.output import Printer, when
from clp_alpm.cli.prompts import confirm


@command("transactions")
def transactions_command() -> None:
    """List the pacman transactions the hooks recorded, with versions and changed files."""
    from clp_alpm.ops.transactions import describe_packages
    from clp_alpm.store.records import Origin, TransactionStatus

    printer = Printer(options())
    with context.session(printer, write=False) as session:
        records = session.state.list_transactions()
    if printer.json:
        printer.data([record.to_dict() for record in records])
        return
    if not records:
        printer.item("no transactions recorded (are clp's pacman hooks installed?)")
    for record in records:
        info = record.to_dict()
        status = "" if record.status == TransactionStatus.DONE else f" [{record.status}]"
        by = " by clp" if record.origin == Origin.CLP else ""
        files = f", {len(record.changed)} file(s) changed" if record.changed else ""
        printer.section(f"{record.id}  {when(info['started'] or '')}{by}{status}{files}")
        if record.command:
            printer.item(f"   command: {record.command}")
        for line in describe_packages(record.packages):
            printer.arrow(line)
        for path in record.changed:
            printer.item(f"   {path}")


@command("diff")
@click.argument("transaction")
def diff_command(transaction: str) -> None:
    """Show what a pacman transaction changed in configuration files, as unified diffs."""
    from clp_alpm.ops.transactions import diff, get

    printer = Printer(options())
    with context.session(printer, write=False) as session:
        record = get(session.state, transaction)
        diffs = diff(session.store, record)
    if printer.json:
        printer.data({"transaction": record.id, "files": [d.to_dict() for d in diffs]})
        return
    if not diffs:
        printer.item(f"transaction {record.id} changed no configuration file")
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
