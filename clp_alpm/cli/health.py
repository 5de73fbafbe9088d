"""Boot health: `clp boot-check [--early]`, which clp's two boot units run."""

from __future__ import annotations

import click

from clp_alpm.cli import context
from clp_alpm.cli.exits import EXIT_FAILED
from clp_alpm.cli.options import command, options
from clp_alpm.cli.output import Printer


@command("boot-check")
@click.option(
    "--early",
    is_flag=True,
    help="Early in boot: count a probation boot that never reached the late check as failed, "
    "and undo after HealthBoots failed boots.",
)
def boot_check_command(early: bool) -> None:
    """Run the boot health checks of /etc/CLP/health.d and mark this boot good or failed.

    After a pacman transaction that changed packages the machine is on probation until a
    boot passes the checks of `required.d` (a failure in `wanted.d` is logged only;
    `green.d` runs after a boot passed, `red.d` before clp acts on failed boots). Late in
    boot, `clp-boot-check.service` runs `clp boot-check`; early in boot, before the display
    manager, `clp-boot-early.service` runs `clp boot-check --early`, which counts a
    probation boot that never reached the late check (a hard reset at a black screen) as
    failed and, after HealthBoots failed boots in a row (clp.conf), undoes every transaction
    since the last good boot, newest first, as `clp undo-transaction` would, and pins the
    versions it brought back until a newer version than the broken one is offered. Exit
    status 1 when this boot failed its required checks or an undo that was due could not be
    done.
    """
    from clp_alpm.ops.health import boot_check

    printer = Printer(options())
    with context.session(printer) as session:
        report = boot_check(session, early)
    if printer.json:
        printer.data(report.to_dict())
    else:
        which = "early check" if early else "health checks"
        printer.section(f"Boot {report.boot}: {which}")
        for check in report.checks:
            printer.arrow(check.describe())
        for message in report.messages:
            printer.arrow(message)
        if report.undone:
            names = " ".join(p.split()[0] for p in report.pinned)
            printer.item()
            for undone in report.undone:
                printer.item(f"transaction {undone.transaction} undone: "
                             f"{', '.join(undone.moves) or '(no package)'}")  # fmt: skip
            if names:
                printer.item(f"take the new versions again: clp unpin {names} && pacman -Syu")
        if report.refused:
            printer.error(f"undo after failed boots impossible: {report.refused}")
        if report.verdict is not None:
            printer.item(f"boot {report.boot}: {report.verdict}")
        elif not report.probation and not report.messages:
            printer.item("not on probation: nothing to count")
    if report.refused or (report.verdict is not None and report.verdict == "failed"):
        raise click.exceptions.Exit(EXIT_FAILED)
