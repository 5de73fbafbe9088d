"""Self-healing upgrades: boot health checks, probation, and the automatic undo.

A pacman transaction that changed packages puts the machine on probation (`ops/record.py`
marks it when the post hook closes it). Boots stand in judgement, each known by the kernel's
boot id:

- `clp boot-check` (late in boot) runs `required.d` and `wanted.d`; the boot is good when
  every required check passed. A good boot ends the probation (the transactions are `good`,
  `green.d` runs); a failed one marks them `failed`, still on probation.
- `clp boot-check --early` (early in boot, before the display manager) counts an earlier
  probation boot that never reached the late check (a hard reset at a black screen) as
  failed; after HealthBoots failed boots in a row it runs `red.d` and undoes every
  transaction since the last good boot, newest first, each as `clp undo-transaction` does it
  (one journaled operation per transaction: a kill is recovered by the next clp), pins the
  versions it brought back until a newer version than the broken one is offered, and says
  what it did in the log, the journal, the message of the day and the records.

Checking first, acting after: every transaction's undo is planned (its package files found)
before the first one starts; an undo that cannot be done changes nothing and says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from clp_alpm.bootid import current_boot_id
from clp_alpm.errors import ClpError
from clp_alpm.ops import steps
from clp_alpm.ops.commit import commit
from clp_alpm.ops.probation import failed_in_row, on_probation
from clp_alpm.ops.revert import version_copy
from clp_alpm.ops.session import LOG_TAG, Session
from clp_alpm.ops.step_health import MOTD_DIRS
from clp_alpm.ops.steps import OperationKind
from clp_alpm.ops.undo import UndoPlan, plan_undo
from clp_alpm.paths import is_dir
from clp_alpm.store.journal import Step
from clp_alpm.store.records import (
    BootRecord,
    BootVerdict,
    Health,
    TransactionRecord,
)
from clp_alpm.system import health, pins

MOTD_NAME = "clp-health"
BOOTS_KEPT = 50
NEVER_CHECKED = "never reached the late check (a hard reset, a hang or a black screen)"


@dataclass(frozen=True)
class Undone:
    transaction: int
    moves: tuple[str, ...]


@dataclass(frozen=True)
class BootReport:
    """What one `clp boot-check [--early]` found and did."""

    boot: str
    early: bool
    health_boots: int
    probation: tuple[int, ...]  # transactions on probation when the check began
    checks: tuple[health.CheckResult, ...] = ()
    verdict: BootVerdict | None = None  # the late check's
    counted_failed: tuple[str, ...] = ()  # earlier boots the early check counted as failed
    failed_in_row: int = 0
    undone: tuple[Undone, ...] = ()
    pinned: tuple[str, ...] = ()  # "demo 1.0-1"
    refused: str | None = None  # why the undo that was due could not be done
    notice: str | None = None  # the message of the day file written
    messages: tuple[str, ...] = field(default=())  # what to tell, in order

    def to_dict(self) -> dict[str, Any]:
        return {
            "boot": self.boot,
            "check": "early" if self.early else "late",
            "verdict": None if self.verdict is None else str(self.verdict),
            "probation": list(self.probation),
            "health_boots": self.health_boots,
            "failed_boots_in_row": self.failed_in_row,
            "counted_failed": list(self.counted_failed),
            "checks": [check.to_dict() for check in self.checks],
            "undone": [
                {"transaction": u.transaction, "packages": list(u.moves)} for u in self.undone
            ],
            "pinned": list(self.pinned),
            "undo_refused": self.refused,
            "motd": self.notice,
            "messages": list(self.messages),
        }


# -- reading ------------------------------------------------------------------------------


# -- the checks ---------------------------------------------------------------------------


def boot_check(session: Session, early: bool) -> BootReport:
    """`clp boot-check [--early]`: refuses a hostile boot id or health directory before
    recording anything."""
    boot_id = current_boot_id()
    health.check_health_dirs(session.config.root)
    if early:
        return _early(session, boot_id)
    return _late(session, boot_id)


def _this_boot(session: Session, boot_id: str, probation: bool) -> BootRecord:
    current = session.state.get_boot(boot_id)
    if current is None:
        current = session.state.put_boot(BootRecord(boot_id, 0, time.time(), probation=probation))
        _forget_old_boots(session)
    elif probation and not current.probation:
        current = session.state.put_boot(replace(current, probation=True))
    return current


def _forget_old_boots(session: Session) -> None:
    boots = session.state.list_boots()
    if len(boots) > BOOTS_KEPT:
        session.state.forget_boots_before(boots[-BOOTS_KEPT].seq)


def _run(
    session: Session, phase: str, boot_id: str, waiting: list[TransactionRecord]
) -> list[health.CheckResult]:
    names = sorted({p["name"] for r in waiting for p in r.packages})
    env = health.check_environment(boot_id, names, session.config.state_dir)
    return health.run_phase(
        session.config.root,
        phase,
        env,
        session.config.health_timeout,
        session.log,
        on_output=session.events.output,
        journal=not session.config.chrooted,
    )


def _say(session: Session, messages: list[str], text: str, error: bool = False) -> None:
    messages.append(text)
    session.log.write(LOG_TAG, text)
    if not session.config.chrooted:
        health.to_system_journal([text], error=error)


def _late(session: Session, boot_id: str) -> BootReport:
    waiting = on_probation(session, boot_id)
    current = _this_boot(session, boot_id, bool(waiting))
    checks = [
        *_run(session, "required", boot_id, waiting),
        *_run(session, "wanted", boot_id, waiting),
    ]
    failed = [c for c in checks if c.phase == "required" and not c.passed]
    verdict = BootVerdict.FAILED if failed else BootVerdict.GOOD
    noted = tuple(c.describe() for c in checks if not c.passed)
    current = session.state.put_boot(
        replace(current, verdict=verdict, checked=time.time(), failed_checks=noted)
    )
    messages: list[str] = []
    ids = tuple(r.id for r in waiting)
    for check in checks:
        if check.phase == "wanted" and not check.passed:
            _say(session, messages, f"wanted check {check.describe()} (not acted on)")
    if verdict == BootVerdict.GOOD:
        for record in waiting:
            session.state.put_transaction(replace(record, health=Health.GOOD))
        if waiting:
            _say(
                session,
                messages,
                f"boot {boot_id} passed the health checks: transaction(s) "
                f"{_ids(ids)} good, probation over",
            )
        checks += _run(session, "green", boot_id, waiting)
        return BootReport(
            boot_id,
            False,
            session.config.health_boots,
            ids,
            tuple(checks),
            verdict,
            messages=tuple(messages),
        )
    for record in waiting:
        if record.health != Health.FAILED:
            session.state.put_transaction(replace(record, health=Health.FAILED))
    row = 0
    if waiting:
        since = min(r.started for r in waiting)
        row = failed_in_row(session.state.list_boots(), since)
    reasons = "; ".join(c.describe() for c in failed)
    text = f"boot {boot_id} failed the health checks: {reasons}"
    if waiting:
        text += f" ({row} failed boot(s) in a row after transaction(s) {_ids(ids)}; "
        limit = session.config.health_boots
        if limit == 0:
            text += "HealthBoots = 0: clp undoes nothing)"
        elif row >= limit:
            text += "the next boot undoes them)"
        else:
            text += f"clp undoes them after {limit})"
    _say(session, messages, text, error=True)
    return BootReport(
        boot_id,
        False,
        session.config.health_boots,
        ids,
        tuple(checks),
        verdict,
        failed_in_row=row,
        messages=tuple(messages),
    )


def _early(session: Session, boot_id: str) -> BootReport:
    state = session.state
    waiting = on_probation(session, boot_id)
    messages: list[str] = []
    counted = []
    for boot in state.list_boots():
        if boot.id != boot_id and boot.probation and boot.verdict == BootVerdict.PENDING:
            state.put_boot(
                replace(
                    boot,
                    verdict=BootVerdict.FAILED,
                    note=NEVER_CHECKED,
                    failed_checks=(NEVER_CHECKED,),
                )
            )
            counted.append(boot.id)
            _say(
                session, messages, f"boot {boot.id} {NEVER_CHECKED}: counted as failed", error=True
            )
            for record in waiting:
                if record.started < boot.seen and record.health == Health.PROBATION:
                    state.put_transaction(replace(record, health=Health.FAILED))
    waiting = on_probation(session, boot_id)
    current = _this_boot(session, boot_id, bool(waiting))
    current = state.put_boot(replace(current, early=time.time()))
    ids = tuple(r.id for r in waiting)
    limit = session.config.health_boots
    report = BootReport(boot_id, True, limit, ids, counted_failed=tuple(counted))
    if not waiting:
        return replace(report, messages=tuple(messages))
    since = min(r.started for r in waiting)
    row = failed_in_row(state.list_boots(), since)
    report = replace(report, failed_in_row=row)
    if row == 0 or row < limit or limit == 0:
        if row and limit == 0:
            _say(
                session,
                messages,
                f"{row} failed boot(s) in a row after transaction(s) "
                f"{_ids(ids)}; HealthBoots = 0: clp undoes nothing",
            )
        return replace(report, messages=tuple(messages))
    _say(
        session,
        messages,
        f"{row} failed boot(s) in a row after transaction(s) {_ids(ids)}: "
        "running red.d, then undoing them",
        error=True,
    )
    checks = _run(session, "red", boot_id, waiting)
    report = replace(report, checks=tuple(checks))
    outcome = _undo_after_failed_boots(session, waiting, row)
    undone, pinned, notice = outcome.undone, outcome.pinned, outcome.notice
    numbers = _ids(tuple(u.transaction for u in undone))
    if outcome.error is not None:
        left = _ids(tuple(i for i in ids if i not in {u.transaction for u in undone}))
        text = f"clp could not undo transaction(s) {left} after {row} failed boot(s): "
        text += f"{outcome.error}; " + (f"it undid {numbers}" if undone else "nothing was changed")
        _say(session, messages, text, error=True)
        state.put_boot(replace(current, note=text))
        return replace(report, undone=tuple(undone), pinned=tuple(pinned), notice=notice,
                       refused=outcome.error, messages=tuple(messages))  # fmt: skip
    text = (
        f"undid transaction(s) {numbers} after {row} "
        f"failed boot(s); pinned {', '.join(pinned) or 'nothing'}"
    )
    _say(session, messages, text, error=True)
    state.put_boot(replace(current, probation=False, note=text))
    return replace(
        report, undone=tuple(undone), pinned=tuple(pinned), notice=notice, messages=tuple(messages)
    )


def _ids(ids: tuple[int, ...]) -> str:
    return ", ".join(str(i) for i in ids)


# -- the automatic undo -------------------------------------------------------------------


@dataclass(frozen=True)
class UndoOutcome:
    undone: tuple[Undone, ...]
    pinned: tuple[str, ...]
    notice: str | None
    error: str | None  # why (the rest of) the undo could not be done


def _undo_after_failed_boots(
    session: Session, waiting: list[TransactionRecord], row: int
) -> UndoOutcome:
    """Undo `waiting` newest first, one journaled operation each, after checking that every
    one can be undone (nothing is changed when one cannot). An undo that fails all the same
    is rolled back by the journal; the newer ones done before it stay done."""
    order = sorted(waiting, key=lambda r: r.id, reverse=True)
    try:
        first = plan_undo(session, order[0].id)
        for record in order[1:]:
            _check_copies(session, record)
    except ClpError as err:
        return UndoOutcome((), (), None, str(err))
    done: list[Undone] = []
    pinned: dict[str, str] = {}
    notice = _motd_path(session)
    try:
        _undo_each(session, order, first, row, done, pinned, notice)
    except ClpError as err:
        error: str | None = str(err)
    else:
        error = None
    versions = tuple(f"{n} {v}" for n, v in pinned.items())
    return UndoOutcome(tuple(done), versions, notice if done else None, error)


def _undo_each(
    session: Session,
    order: list[TransactionRecord],
    first: UndoPlan,
    row: int,
    undone: list[Undone],
    pinned: dict[str, str],
    notice: str | None,
) -> None:
    """Commit the undo of each of `order`, appending to `undone` and `pinned` as they are."""
    broken: dict[str, str] = {}  # package -> the newest version the transactions brought
    for record in order:
        for package in record.packages:
            if package["to"] is not None:
                broken.setdefault(package["name"], package["to"])
    why = _failed_boots(session, row)
    for record in order:
        plan = first if record is order[0] else plan_undo(session, record.id)
        back = _brought_back(record)
        pin_list = [
            pins.Pin(
                name,
                version,
                pins.NEWER_THAN + broken[name],
                f"undone after {row} failed boot(s), transaction {record.id}",
            ).__dict__
            for name, version in back.items()
        ]
        done = [*undone, Undone(record.id, plan.moves)]
        message = _record_message(record.id, row, why, back)
        extra = [steps.pin(pin_list, f"pin {', '.join(back)} in {pins.PINS_FILE}")] if back else []
        if notice is not None:
            extra.append(steps.motd(notice, _motd_text(done, pinned | back, row, why)))
        plan_steps = [
            *plan.steps[:-1],
            *extra,
            steps.record_transaction_undone(record.id, Health.UNDONE_AFTER_FAILED_BOOTS, message),
        ]
        _commit(session, plan, plan_steps)
        undone.append(Undone(record.id, plan.moves))
        pinned.update(back)


def _brought_back(record: TransactionRecord) -> dict[str, str]:
    """name -> version of the packages the undo takes back to an earlier version."""
    return {
        p["name"]: p["from"]
        for p in record.packages
        if p["from"] is not None and p["to"] is not None and p["from"] != p["to"]
    }


def _commit(session: Session, plan: UndoPlan, plan_steps: list[Step]) -> None:
    target = str(plan.record.id)
    session.log.write(
        LOG_TAG, f"undo of transaction {target} after failed boots: {len(plan_steps)} step(s)"
    )
    commit(session, OperationKind.HEALTH_UNDO, target, plan_steps)


def _check_copies(session: Session, record: TransactionRecord) -> None:
    """Before anything changes: an older transaction's undo will find its package files."""
    if record.snapshot_before is None:
        raise ClpError(f"transaction {record.id} has no record from before it")
    hint = f"transaction {record.id} cannot be undone without it"
    for package in record.packages:
        for version in (package["from"], package["to"]):
            if version is not None and package["from"] != package["to"]:
                version_copy(session, package["name"], version, hint)


def _failed_boots(session: Session, row: int) -> str:
    boots = [b for b in session.state.list_boots() if b.verdict == BootVerdict.FAILED][-row:]
    return "; ".join(f"boot {b.id}: {', '.join(b.failed_checks) or 'failed'}" for b in boots)


def _record_message(transaction: int, row: int, why: str, back: dict[str, str]) -> str:
    again = ""
    if back:
        versions = ", ".join(f"{n} {v}" for n, v in back.items())
        again = (
            f"; pinned {versions}: take the new versions again with "
            f"'clp unpin {' '.join(back)}' then 'pacman -Syu'"
        )
    return f"undone by clp after {row} failed boot(s) ({why}){again}"


def _motd_path(session: Session) -> str | None:
    """/run/motd.d (or /etc/motd.d) as the system has it; None where neither can be."""
    for directory in MOTD_DIRS:
        if is_dir(session.config.host(directory)):
            return f"{directory}/{MOTD_NAME}"
    if is_dir(session.config.host("/run")):
        return f"{MOTD_DIRS[0]}/{MOTD_NAME}"
    return None


def _motd_text(undone: list[Undone], pinned: dict[str, str], row: int, why: str) -> str:
    lines = [
        f"clp: the boot health checks failed {row} time(s) in a row after a pacman upgrade,",
        "so clp undid it and this boot runs the earlier versions:",
    ]
    for item in undone:
        lines.append(f"  transaction {item.transaction}: {', '.join(item.moves) or '(no package)'}")
    lines.append(f"  failed: {why}")
    if pinned:
        names = " ".join(pinned)
        lines.append(
            f"Pinned: {', '.join(f'{n} {v}' for n, v in pinned.items())}, until a newer "
            "version than the broken one is offered."
        )
        lines.append(f"To take the new versions again: clp unpin {names} && pacman -Syu")
    lines.append("Details: clp status, clp transactions, journalctl -t clp-health")
    return "\n".join(lines) + "\n"
