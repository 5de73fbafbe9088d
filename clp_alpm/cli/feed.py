"""Feed commands: update (what the daily timer runs) and repo-add (for publishers)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from clp_alpm.cli import context
from clp_alpm.cli.options import command, options
from clp_alpm.cli.output import Printer, lifted_pin
from clp_alpm.cli.prompts import confirm
from clp_alpm.errors import UpdateFailed, UsageError

if TYPE_CHECKING:
    from clp_alpm.ops.update import UpdatePlan


@command("update")
@click.option("--check", is_flag=True, help="Only report the patches due and the pins to lift.")
def update_command(check: bool) -> None:
    """Read the patch feed and apply every patch that is due (what the daily timer runs).

    Pins whose until version a repository now offers are lifted first, whether or not a feed
    is configured; clp refreshes its own copy of the sync databases to see.
    """
    from clp_alpm.ops.pins import lift_satisfied_pins, pins_to_lift
    from clp_alpm.ops.update import plan_update, run_update

    printer = Printer(options())
    with context.session(printer, write=not check) as session:
        # pins first: they wait for the repositories (clp's private copy of their databases,
        # refreshed here), not for the feed (which may be unset)
        if check:
            lifts = pins_to_lift(session, refresh=True)
            for lift in lifts:
                printer.arrow(f"pin to lift: {lift.describe()}")
        else:
            lifts = lift_satisfied_pins(session, refresh=True)
            for lift in lifts:
                printer.arrow(lifted_pin(lift))
        printer.section("Synchronizing the patch feed...")
        plan = plan_update(session)
        _show_update_plan(printer, plan)
        due = plan.to_apply
        if check:
            if printer.json:
                printer.data(plan.to_dict() | {"pins_to_lift": [lift.describe() for lift in lifts]})
            return
        if due:
            confirm(printer, f"Proceed with {len(due)} patch{'es' if len(due) > 1 else ''}?")
        else:
            printer.item(" there is nothing to do")
        report = run_update(session, plan, progress=printer.progress)
        report.lifted_pins = [lift.describe() for lift in lifts]
    if printer.json:
        printer.data(report.to_dict())  # the one JSON document, failures included
    failures = report.failures
    for failure in failures:
        printer.error(
            failure.message
            if failure.name in failure.message
            else f"{failure.name}: {failure.message}"
        )
    if failures:
        raise UpdateFailed(len(failures), len(report.outcomes), printer.json)


def _show_update_plan(printer: Printer, plan: UpdatePlan) -> None:
    expires = f", expires {plan.index.expires}" if plan.index.expires else ""
    printer.arrow(
        f"index from {plan.mirror} (generated {plan.index.generated or 'unknown'}{expires})"
    )
    for decision in plan.decisions:
        entry = decision.entry
        mark = "apply" if decision.apply else "skip "
        printer.item(f" {mark} {entry.name:<16} {entry.severity or '':<8} {decision.reason}")


@command("repo-add")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--sign", "sign_key", metavar="KEYID", help="Sign CLP.db with this gpg key.")
@click.option("--gpg-homedir", type=click.Path(file_okay=False), help="gpg home for --sign.")
@click.option(
    "--edition",
    "editions",
    metavar="NAME",
    multiple=True,
    help="List each patch for this edition (os-release VARIANT_ID), as clpctl 2.1 clients "
    "need; repeat for several.",
)
@click.option(
    "--expires",
    "valid_days",
    metavar="DAYS",
    type=click.IntRange(0, 3660),
    default=30,
    show_default=True,
    help="Clients refuse the index this many days after it is written (run repo-add again "
    "before then); 0: it never expires.",
)
def repo_add_command(
    directory: str,
    sign_key: str | None,
    gpg_homedir: str | None,
    editions: tuple[str, ...],
    valid_days: int,
) -> None:
    """Write the feed index CLP.db for a directory of .clp (or .CLP) files (and sign it)."""
    from clp_alpm.formats.feed import build_index, write_index
    from clp_alpm.system.signature import sign_detached

    printer = Printer(options())
    folder = Path(directory)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such directory")
    index = build_index(folder, editions=editions, valid_days=valid_days)
    path = write_index(folder, index)
    for name in dict.fromkeys(entry.name for entry in index.entries):
        upper, lower = folder / f"{name}.CLP", folder / f"{name}.clp"
        if upper.is_file() and not lower.exists():
            printer.warning(
                f"{upper.name}: clpctl 2.1 clients ask for {lower.name}; serve both names "
                f"(ln -s {upper.name} {lower.name})"
            )
    if sign_key:
        sign_detached(path, sign_key, Path(gpg_homedir) if gpg_homedir else None)
    if printer.json:
        printer.data(index.to_dict() | {"path": str(path), "signed": bool(sign_key)})
        return
    for entry in index.entries:
        if entry.edition is not None:
            printer.arrow(
                f"{entry.name} {entry.listed_version} ({entry.architecture}) "
                f"for the {entry.edition} edition"
            )
        else:
            printer.arrow(f"{entry.name} {entry.version} ({entry.architecture})")
    signed = f", signed {path}.sig" if sign_key else ""
    if index.expires is not None:
        signed += f", expires {index.expires}"
    count = len(index.entries)
    printer.section(f"wrote {path}: {count} patch{'' if count == 1 else 'es'}{signed}")
