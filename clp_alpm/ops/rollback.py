"""Rolling a patch back: its Remove script, then clp's own snapshot, then the reverts it made.

The Remove script may fail or do too little: clp's snapshot from before the apply is the
authority, restored after it. Once the Remove script ran, an interrupted rollback is finished,
not undone (the way back is forward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clp_alpm.errors import ConflictError, UsageError
from clp_alpm.ops import steps
from clp_alpm.ops.apply import commit_patch_operation
from clp_alpm.ops.records import changes_since_apply, known_record, record_patch_dir
from clp_alpm.ops.revert import plan_revert_rollback
from clp_alpm.ops.session import Session
from clp_alpm.ops.step_files import empty_trash, trash_dir
from clp_alpm.ops.steps import OperationKind
from clp_alpm.store.journal import Step
from clp_alpm.store.records import PatchOrigin, PatchRecord, PatchState, RevertState


@dataclass(frozen=True)
class RollbackPlan:
    record: PatchRecord
    steps: tuple[Step, ...]
    overwritten: tuple[str, ...]  # files changed by someone else, overwritten because of --force

    def to_dict(self) -> dict[str, Any]:
        return {
            "patch": self.record.id,
            "files": list(self.record.meta.files),
            "steps": [step.description for step in self.steps],
            "overwritten": list(self.overwritten),
        }


def plan_rollback(session: Session, patch_id: str, force: bool = False) -> RollbackPlan:
    record = known_record(session, patch_id)
    if record.state != PatchState.APPLIED:
        raise UsageError(f"patch '{patch_id}' is {record.state}, not applied: nothing to roll back")
    files = list(record.meta.files)
    changed = changes_since_apply(session, record)
    if changed and not force:
        raise ConflictError(
            f"rollback of {patch_id} stopped: changed since the patch was applied: "
            f"{'; '.join(changed)}. Look at the changes, then run "
            f"'clp rollback --force {patch_id}' to overwrite them"
        )
    patch_dir = record_patch_dir(session.config, record)
    session.config.host(patch_dir, follow_last=False)  # PathEscapeError: a link there
    trash_dir(session.config)  # or at the trash the patch dir is moved into
    adopted = record.origin == PatchOrigin.CLPCTL and not record.snapshot_before
    plan = (
        steps.snapshot_current(files),
        # as `clpctl uninstall`: the Remove script; failing, it leaves the patch applied
        steps.remove_script(patch_id, patch_dir, record.remove_script, strict=adopted),
        steps.restore_files(
            record.snapshot_before, "restore the declared files as they were before the patch"
        ),
        *_revert_rollback_steps(session, patch_id),
        steps.retire_patch_dir(patch_dir),
        steps.record_rolled_back(patch_id),
    )
    return RollbackPlan(record, plan, tuple(changed))


def _revert_rollback_steps(session: Session, patch_id: str) -> tuple[Step, ...]:
    plan: tuple[Step, ...] = ()
    for revert in session.state.list_reverts():
        if revert.patch == patch_id and revert.state == RevertState.APPLIED:
            plan += plan_revert_rollback(session, revert)
    return plan


def rollback(session: Session, plan: RollbackPlan) -> PatchRecord:
    record = commit_patch_operation(session, OperationKind.ROLLBACK, plan.record.id, plan.steps)
    empty_trash(session.config)
    return record
