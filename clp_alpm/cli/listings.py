"""The read-only listings: `clp list`, `pins`, `transactions` and `status`.

Plain functions with no click in them: the click commands call them, and `clp_alpm.cli.entry`
runs them without loading click when the command line is one of them with global options
only (see `run_listing`), so that they start as fast as pacman -Q.
"""

from __future__ import annotations

from clp_alpm.cli import context
from clp_alpm.cli.options import options
from clp_alpm.cli.output import Printer, lifted_pin, when
from clp_alpm.store.records import PatchState

TYPE_CHECKING = False  # the listings start without typing (see clp_alpm.cli.entry)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from clp_alpm.config import Config
    from clp_alpm.ops.pins import Lift
    from clp_alpm.system.pins import Pin


def show_list() -> None:
    """`clp list`: patches, reverts and pins, a line each (names only with -q)."""
    from clp_alpm.ops.records import listed
    from clp_alpm.system.pins import read_pins

    printer = Printer(options())
    with context.session(printer, write=False) as session:
        records = session.state.list_patches()
        patches = listed(session, records)
        reverts = session.state.list_reverts()
        pins = read_pins(session.config)
    if printer.json:
        printer.data(
            [{"kind": "patch"} | info for info in patches]
            + [{"kind": "revert"} | r.to_dict() for r in reverts]
            + [{"kind": "pin", "id": p.name, "state": "pinned"} | p.__dict__ for p in pins]
        )
        return
    if not (records or reverts or pins):
        printer.nothing("no patches, reverts or pins")
        return
    if printer.quiet:  # as pacman -Qq: names only
        for name in [r.id for r in records] + [r.id for r in reverts] + [p.name for p in pins]:
            printer.item(name)
        return
    for info in patches:
        applied = info["state"] == PatchState.APPLIED
        stamp = (info["applied_at"] if applied else info["updated_at"]) or ""
        printer.item(
            f"{info['id']:<16} {info['version']:<6} {state_text(info):<12} {when(stamp)}  "
            f"{info['description']}{_origin_text(info)}"
        )
    for revert in reverts:
        moves = ", ".join(f"{p['name']} {p['from']} -> {p['to']}" for p in revert.packages)
        stamp = when(revert.to_dict()["updated_at"] or "")
        printer.item(f"{revert.id:<16} {'revert':<6} {revert.state:<12} {stamp}  {moves}")
    for pin in pins:
        until = f" until {pin.until}" if pin.until else ""
        printer.item(f"{pin.name:<16} {'pin':<6} {'pinned':<12} {'':<16}  {pin.version}{until}")


def _origin_text(info: dict[str, Any]) -> str:
    return " (installed by clpctl)" if info.get("origin") == "clpctl" else ""


def state_text(info: dict[str, Any]) -> str:
    """A patch's state in one word or three: `not in force` says an applied patch's files are
    not what it made them (its message says why)."""
    if info["state"] == PatchState.APPLIED and not info["in_force"]:
        return "not in force"
    return str(info["state"])


def show_pins() -> None:
    """`clp pins`: the pins, lifted first (as root) where their fix has arrived."""
    from clp_alpm.system.pins import include_line, pins_included, read_pins

    printer = Printer(options())
    config = context.config()
    pins = read_pins(config)
    lifted, offered = _check_fixes(printer, config, pins)
    if printer.json:
        printer.data([
            pin.__dict__ | {"fix_offered": offered.get(pin.name), "lifted": pin.name in lifted}
            for pin in pins
        ])  # fmt: skip
        return
    for lift in lifted.values():
        printer.arrow(lifted_pin(lift))
    if len(pins) == len(lifted):
        printer.nothing("no pins" if not pins else "no pins left")
    for pin in pins:
        if pin.name in lifted:
            continue
        if printer.quiet:  # as pacman -Qq: names only
            printer.item(pin.name)
            continue
        until = f" until {pin.until}" if pin.until else ""
        printer.item(f"{pin.name} {pin.version}{until} ({pin.reason})")
    for name, version in offered.items():
        if name not in lifted:
            printer.arrow(
                f"{name}: a repository offers {version}; 'clp pins' as root lifts the pin"
            )
    if len(pins) > len(lifted) and not pins_included(config, config.pacman_conf):
        printer.warning(f"pacman.conf does not include these pins: add '{include_line()}'")


def _check_fixes(
    printer: Printer, config: Config, pins: Sequence[Pin]
) -> tuple[dict[str, Lift], dict[str, str]]:
    """The pins lifted (as root, after refreshing clp's copy of the sync databases) and the
    newest version offered of each pin whose fix a repository has."""
    import os

    from clp_alpm.errors import LockError
    from clp_alpm.ops.pins import fixes_offered, lift_satisfied_pins

    if not any(pin.until for pin in pins):
        return {}, {}
    if os.geteuid() != 0:  # no lift, and no refresh: the databases on disk are read
        from clp_alpm.system.pacmanconf import pacman_settings

        settings = pacman_settings(config, config.pacman_conf, config.extra_cache_dirs)
        return {}, {lift.name: lift.offered for lift in fixes_offered(config, settings, pins)}
    try:
        with context.session(printer) as session:
            lifts = lift_satisfied_pins(session, refresh=True)
    except LockError as err:
        printer.warning(f"{err}; pins not checked for their fix")
        return {}, {}
    return {lift.name: lift for lift in lifts}, {lift.name: lift.offered for lift in lifts}


def show_status() -> None:
    """`clp status`: stale processes by unit, and units that shadow clp's own."""
    from clp_alpm.ops.probation import summary
    from clp_alpm.ops.session import require_root
    from clp_alpm.system.processes import find_stale_processes, group_by_unit
    from clp_alpm.system.services import shadowed_units

    printer = Printer(options())
    require_root()  # anyone else sees only their own processes: an all-clear would be false
    with context.session(printer, write=False) as session:  # root: recovers what was left
        config = session.config
        health = summary(session)
    shadowed = shadowed_units(config.root)
    stale = find_stale_processes(config.root)
    if printer.json:
        printer.data(
            {
                "processes": [process.to_dict() for process in stale],
                "shadowed_units": [unit.to_dict() for unit in shadowed],
                "health": health,
            }
        )
        return
    _show_health(printer, health)
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


def show_transactions() -> None:
    """`clp transactions`: each recorded transaction, its packages and changed files."""
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


def _show_health(printer: Printer, health: dict[str, Any]) -> None:
    """Boot health: the probation, and what clp undid by itself after failed boots."""
    for undone in health["undone_after_failed_boots"]:
        why = (undone["message"] or "").removeprefix("undone by clp ")
        printer.section(f"Boot health: transaction {undone['transaction']} was undone {why}")
    if health["probation"]:
        ids = ", ".join(str(number) for number in health["probation"])
        limit = health["health_boots"]
        then = f"clp undoes them after {limit}" if limit else "HealthBoots = 0: clp undoes nothing"
        printer.section(
            f"Boot health: on probation after transaction(s) {ids} "
            f"({health['failed_boots_in_row']} failed boot(s) in a row; {then})"
        )


LISTINGS = {"list": show_list, "pins": show_pins, "transactions": show_transactions,
            "status": show_status}  # fmt: skip
