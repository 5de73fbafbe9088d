"""Undoing a pacman transaction: its packages back through pacman, its files restored.

Packages go back to the versions before the transaction (from the cache or an archive, as a
revert takes them), packages it installed are removed, and its configuration files are
restored from the snapshot before it. A restore point taken first is undone last: a killed or
failed undo leaves the files exactly as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clp_alpm.errors import ConflictError, UsageError
from clp_alpm.ops import steps
from clp_alpm.ops.commit import commit
from clp_alpm.ops.record import managed_files
from clp_alpm.ops.records import changes_since
from clp_alpm.ops.revert import version_copy
from clp_alpm.ops.session import LOG_TAG, Session
from clp_alpm.ops.steps import OperationKind
from clp_alpm.ops.transactions import get
from clp_alpm.store.journal import Step
from clp_alpm.store.records import Origin, TransactionRecord, TransactionStatus
from clp_alpm.system.localdb import installed_versions
from clp_alpm.system.pacman import refuse_if_pacman_runs


@dataclass(frozen=True)
class UndoPlan:
    record: TransactionRecord
    steps: tuple[Step, ...]
    moves: tuple[str, ...]  # "foo 2.0-1 -> 1.0-1", "bar 1.0-1 -> (removed)"
    files: tuple[str, ...]
    overwritten: tuple[str, ...]  # changed since the transaction, overwritten because of --force
    left_to_patches: tuple[str, ...] = ()  # files applied patches manage (re-applied instead)

    def to_dict(self) -> dict[str, Any]:
        return {
            "transaction": self.record.id,
            "packages": list(self.moves),
            "files": list(self.files),
            "left_to_patches": list(self.left_to_patches),
            "steps": [step.description for step in self.steps],
            "overwritten": list(self.overwritten),
        }


def plan_undo(session: Session, transaction_id: str | int, force: bool = False) -> UndoPlan:
    """Packages back to the versions before the transaction (from the cache or an archive, as
    a revert takes them) and its configuration files restored from the snapshot before it."""
    record = get(session.state, transaction_id)
    _check_undoable(record)
    refuse_if_pacman_runs(session.pacman().dbpath)
    later = [r for r in session.state.list_transactions() if r.id > record.id]
    _check_not_changed_later(record, later)
    _check_versions_unchanged(session, record)
    # Files applied patches manage are left to the patches: when pacman puts the earlier
    # version back, the hooks re-apply them on it (restoring the snapshot and re-applying
    # too would patch twice).
    managed = {path for files in managed_files(session.state).values() for path in files}
    restore = tuple(path for path in record.changed if path not in managed)
    overwritten = _files_changed_since(session, record, restore)
    if overwritten and not force:
        raise ConflictError(
            f"undo of transaction {record.id} stopped: changed since: {'; '.join(overwritten)}. "
            f"Look at them, then run 'clp undo-transaction --force {record.id}' to overwrite them"
        )
    back = [p for p in record.packages if p["from"] is not None and p["from"] != p["to"]]
    new = [p for p in record.packages if p["from"] is None and p["to"] is not None]
    plan: list[Step] = [steps.restore_point(record.changed)]
    hint = (
        f"transaction {record.id} cannot be undone without it; put the package file in the "
        "package cache or add an ArchiveServer to /etc/CLP/clp.conf"
    )

    def file_of(name: str, version: str) -> str:
        copy = version_copy(session, name, version, hint)
        plan.extend(copy.steps)  # the copies into the cache come before the pacman steps
        return str(copy.path)

    if back:
        files = [file_of(p["name"], p["from"]) for p in back]
        previous_files = {p["name"]: file_of(p["name"], p["to"]) for p in back if p["to"]}
        plan.append(
            steps.pacman_upgrade(
                files=files,
                previous={p["name"]: p["to"] for p in back},
                targets={p["name"]: p["from"] for p in back},
                previous_files=previous_files,
                moves=", ".join(_describe_move(p) for p in back),
            )
        )
    if new:
        previous_files = {p["name"]: file_of(p["name"], p["to"]) for p in new}
        plan.append(steps.pacman_remove([p["name"] for p in new], previous_files))
    if restore:
        plan.append(
            steps.restore_files(
                record.snapshot_before,
                f"restore {len(restore)} file(s) as they were before the transaction",
                paths=restore,
            )
        )
    plan.append(steps.record_transaction_undone(record.id))
    moves = tuple(_describe_move(p) for p in [*back, *new])
    left = tuple(path for path in record.changed if path in managed)
    return UndoPlan(record, tuple(plan), moves, restore, tuple(overwritten), left)


def _describe_move(package: dict[str, Any]) -> str:
    now = package["to"] or "(not installed)"
    then = package["from"] or "(removed)"
    return f"{package['name']} {now} -> {then}"


def _check_undoable(record: TransactionRecord) -> None:
    if record.status == TransactionStatus.UNDONE:
        raise UsageError(f"transaction {record.id} was already undone")
    if record.origin == Origin.CLP:
        raise UsageError(
            f"transaction {record.id} was made by clp itself (a revert, an undo, a rollback): "
            "undo that instead ('clp rollback R<N>' for a revert, see 'clp list')"
        )
    if record.status == TransactionStatus.OPEN:
        raise UsageError(f"transaction {record.id} is still running (or its pacman was killed)")
    if record.snapshot_before is None:
        raise UsageError(
            f"transaction {record.id} has no record from before it "
            "(the pre-transaction hook did not run): clp cannot undo it"
        )


def _moved(record: TransactionRecord) -> set[str]:
    return {p["name"] for p in record.packages if p["from"] != p["to"]}


def _check_not_changed_later(record: TransactionRecord, later: list[TransactionRecord]) -> None:
    """A later pacman transaction that moved the same packages must be undone first: else the
    undo would act on its result. clp's own transactions (reverts, their rollbacks, undos)
    come and go with clp's records: for them the installed versions decide (a revert still
    in force leaves another version installed, and the undo refuses for that)."""
    for other in later:
        if other.status == TransactionStatus.UNDONE or other.origin == Origin.CLP:
            continue
        again = sorted(_moved(record) & _moved(other))
        if again:
            raise UsageError(
                f"{', '.join(again)} changed again in transaction {other.id}: undo that one "
                f"first (see 'clp transactions')"
            )


def _check_versions_unchanged(session: Session, record: TransactionRecord) -> None:
    names = [p["name"] for p in record.packages]
    installed = installed_versions(session.config.host_dbpath, names)
    for package in record.packages:
        if installed[package["name"]] != package["to"]:
            now = installed[package["name"]] or "not installed"
            left = package["to"] or "removed"
            raise UsageError(
                f"{package['name']} is {now} now, not {left} as transaction {record.id} left "
                "it: undo the later transactions first (see 'clp transactions')"
            )


def _files_changed_since(
    session: Session, record: TransactionRecord, paths: Sequence[str]
) -> list[str]:
    if record.snapshot_after is None:
        return []
    after = session.store.load(record.snapshot_after)
    return changes_since(session, after.only(p for p in paths if after.get(p)))


def undo(session: Session, plan: UndoPlan) -> TransactionRecord:
    target = str(plan.record.id)
    session.log.write(LOG_TAG, f"undo of transaction {target}: {len(plan.steps)} step(s)")
    commit(session, OperationKind.UNDO_TRANSACTION, target, plan.steps)
    result = session.state.get_transaction(plan.record.id)
    assert result is not None
    return result
