"""Step handlers that write clp's own records: a patch's, a revert's, a transaction's.

Each saves the record as it was before writing the new one, so that undo puts it back.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from clp_alpm.errors import ClpError
from clp_alpm.ops.steps import Handler, RecordedState, StepKind
from clp_alpm.store.journal import StepRun
from clp_alpm.store.model import Snapshot
from clp_alpm.store.records import (
    Health,
    PatchRecord,
    PatchState,
    RevertRecord,
    RevertState,
    TransactionRecord,
    TransactionStatus,
)

if TYPE_CHECKING:
    from dataclasses import replace

    from clp_alpm.ops.session import Session
else:  # no dataclasses (inspect, ast) at run time: see clp_alpm/plaindata.py
    from clp_alpm.plaindata import replace


class RecordStep(Handler):
    def do(self, run: StepRun) -> None:
        state = self.session.state
        previous = state.get_patch(run.args["patch_id"])
        run.save(previous=None if previous is None else previous.stored())
        state.put_patch(self._new_record(run, previous))

    def _new_record(self, run: StepRun, previous: PatchRecord | None) -> PatchRecord:
        now = time.time()
        target_state = run.args["state"]
        if target_state == RecordedState.APPLIED:
            before = run.earlier[StepKind.SNAPSHOT_BEFORE]["snapshot"]
            return _applied_record(run, applied_at=now, snapshot_before=before)
        if target_state == RecordedState.ADOPTED:  # clpctl installed it: no snapshot before
            return _applied_record(run, applied_at=run.args["installed_at"], snapshot_before=None)
        assert previous is not None, "only an applied patch is re-applied or rolled back"
        if target_state == RecordedState.REAPPLIED:
            fresh = self.session.store.load(run.earlier[StepKind.SNAPSHOT_BEFORE]["snapshot"])
            before = rebased_before(self.session, previous, fresh, run.args["replaced"])
            return replace(
                previous,
                updated_at=now,
                message=f"re-applied: {run.args['reason']}",
                in_force=True,
                snapshot_before=before.id,
                snapshot_after=run.earlier[StepKind.SNAPSHOT_AFTER]["snapshot"],
            )
        # a rolled-back patch needs no snapshot: a new apply takes its own
        return replace(
            previous,
            state=PatchState.ROLLED_BACK,
            rolled_back_at=now,
            updated_at=now,
            message=None,
            snapshot_before=None,
            snapshot_after=None,
        )

    def undo(self, run: StepRun) -> None:
        if "previous" not in run.data:
            return
        previous = run.data["previous"]
        if previous is None:
            self.session.state.delete_patch(run.args["patch_id"])
        else:
            self.session.state.put_patch(PatchRecord.from_stored(previous))


class RecordRevertStep(Handler):
    def do(self, run: StepRun) -> None:
        state = self.session.state
        previous = state.get_revert(run.args["id"])
        saved = (
            None if previous is None else previous.__dict__ | {"packages": list(previous.packages)}
        )
        run.save(previous=saved)
        now = time.time()
        if previous is None:
            values = run.args["record"]
            record = RevertRecord(
                id=run.args["id"],
                state=RevertState.APPLIED,
                packages=tuple(values["packages"]),
                patch=values.get("patch"),
                created_at=now,
                updated_at=now,
            )
        else:
            record = replace(
                previous,
                state=RevertState(run.args["state"]),
                rolled_back_at=now,
                updated_at=now,
            )
        state.put_revert(record)

    def undo(self, run: StepRun) -> None:
        if "previous" not in run.data:
            return
        previous = run.data["previous"]
        if previous is None:
            self.session.state.delete_revert(run.args["id"])
        else:
            values = previous | {
                "packages": tuple(previous["packages"]),
                "state": RevertState(previous["state"]),
            }
            self.session.state.put_revert(RevertRecord(**values))


class RecordTransactionStep(Handler):
    def do(self, run: StepRun) -> None:
        state = self.session.state
        record = _transaction(self.session, run)
        run.save(previous=record.status, message=record.message, health=record.health)
        stamp = time.strftime("%Y-%m-%d %H:%M")
        health = run.args.get("health")
        state.put_transaction(
            replace(
                record,
                status=TransactionStatus(run.args["status"]),
                message=run.args.get("message") or f"undone by clp on {stamp}",
                health=record.health if health is None else Health(health),
            )
        )

    def undo(self, run: StepRun) -> None:
        if "previous" in run.data:
            record = _transaction(self.session, run)
            health = run.data.get("health", record.health)
            self.session.state.put_transaction(
                replace(
                    record,
                    status=TransactionStatus(run.data["previous"]),
                    message=run.data.get("message"),
                    health=None if health is None else Health(health),
                )
            )


def _transaction(session: Session, run: StepRun) -> TransactionRecord:
    record = session.state.get_transaction(int(run.args["id"]))
    if record is None:
        raise ClpError(f"transaction {run.args['id']} is no longer recorded")
    return record


HANDLERS: dict[StepKind, type[Handler]] = {
    StepKind.RECORD: RecordStep,
    StepKind.RECORD_REVERT: RecordRevertStep,
    StepKind.RECORD_TRANSACTION: RecordTransactionStep,
}


def rebased_before(
    session: Session, record: PatchRecord, fresh: Snapshot, replaced: list[str]
) -> Snapshot:
    """The patch's state from before it was applied, with the `replaced` files as `fresh`
    has them: what a rollback must restore after an upgrade replaced them."""
    if not record.snapshot_before:
        return fresh
    old = session.store.load(record.snapshot_before)
    renewed = set(replaced)
    files = [
        (fresh.get(state.path) or state) if state.path in renewed else state for state in old.files
    ]
    return session.store.compose(files, min(old.created, fresh.created))


def _applied_record(run: StepRun, applied_at: float, snapshot_before: str | None) -> PatchRecord:
    """The record of a patch now applied: what the plan recorded, with its snapshots."""
    values = {
        "id": run.args["patch_id"],
        "state": PatchState.APPLIED,
        "applied_at": applied_at,
        "updated_at": time.time(),
        "snapshot_after": run.earlier[StepKind.SNAPSHOT_AFTER]["snapshot"],
    }
    if snapshot_before is not None:
        values["snapshot_before"] = snapshot_before
    return PatchRecord.from_stored(run.args["record"] | values)
