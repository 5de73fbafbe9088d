"""Re-applying an applied patch after a pacman upgrade replaced its files.

The Install script runs again through the journal. The files the upgrade replaced become what
a rollback restores (the others keep their state from before the patch); the patched files
become what it compares with. A failed re-apply is undone: the upgraded files stay, and the
record says the patch is no longer in force.
"""

from __future__ import annotations

import time

from clp_alpm.errors import ClpError, OperationFailed, UsageError
from clp_alpm.ops import steps
from clp_alpm.ops.pending import Reapply, mark_done, pending
from clp_alpm.ops.records import known_record, record_patch_dir
from clp_alpm.ops.session import Session
from clp_alpm.ops.step_records import rebased_before
from clp_alpm.ops.steps import OperationKind
from clp_alpm.paths import is_dir
from clp_alpm.store.journal import Step
from clp_alpm.store.records import PatchRecord, PatchState

TYPE_CHECKING = False  # no dataclasses (inspect, ast) at run time: see clp_alpm/plaindata.py
if TYPE_CHECKING:
    from dataclasses import replace
else:
    from clp_alpm.plaindata import replace


def plan_reapply(
    session: Session, patch_id: str, reason: str, replaced: list[str]
) -> tuple[Step, ...]:
    """Run an applied patch's Install script again, between two snapshots."""
    record = known_record(session, patch_id)
    if record.state != PatchState.APPLIED:
        raise UsageError(f"patch '{patch_id}' is {record.state}, not applied")
    config = session.config
    patch_dir = record_patch_dir(config, record)
    host_patch_dir = config.host(patch_dir, follow_last=False)
    if not is_dir(host_patch_dir):
        raise ClpError(f"{host_patch_dir} is missing: {patch_id}'s Install script cannot run again")
    files = list(record.meta.files)
    plan = [
        steps.snapshot_before(files),
        steps.install_script(
            patch_id, patch_dir, record.install_script, record.remove_script, again=True
        ),
    ]
    check = record.meta.health_check
    if check is not None:
        plan.append(steps.health_check(patch_id, patch_dir, check.command, check.timeout))
    plan += [steps.snapshot_after(files), steps.record_reapplied(patch_id, reason, replaced)]
    return tuple(plan)


def reapply(session: Session, patch_id: str, reason: str, replaced: list[str]) -> PatchRecord:
    """Commit plan_reapply. On failure the upgraded files are back, a rollback would restore
    them (not the files from before the upgrade), and the record says the patch is no
    longer in force."""
    from clp_alpm.ops.apply import commit_patch_operation

    plan = plan_reapply(session, patch_id, reason, replaced)
    try:
        return commit_patch_operation(session, OperationKind.REAPPLY, patch_id, plan, reason)
    except OperationFailed as err:
        record = session.state.get_patch(patch_id)
        if record is not None and record.state == PatchState.APPLIED:
            now_files = session.store.take(session.config.root, list(record.meta.files))
            session.state.put_patch(
                replace(
                    record,
                    snapshot_before=rebased_before(session, record, now_files, replaced).id,
                    snapshot_after=now_files.id,
                    message=f"not in force: re-applying after an upgrade failed ({err})",
                    in_force=False,
                    updated_at=time.time(),
                )
            )
        raise


def run_pending(session: Session) -> None:
    """Re-apply each patch waiting in the state, and restart its services. One failure does
    not stop the others; an entry is removed once tried (a failed re-apply is reported and
    recorded on the patch, not retried on every command)."""
    for item in pending(session.state):
        _run_one(session, item)


def _run_one(session: Session, item: Reapply) -> None:
    events = session.events
    record = session.state.get_patch(item.patch)
    if record is None or record.state != PatchState.APPLIED:
        mark_done(session.state, item)
        return
    replaced = _still_replaced(session, record, item.replaced)
    if item.replaced and not replaced:  # patched again meanwhile (a recovered undo)
        mark_done(session.state, item)
        return
    events.info(f"clp: re-applying {item.patch}: {item.reason}")
    try:
        record = reapply(session, item.patch, item.reason, replaced)
    except ClpError as err:
        if isinstance(err.__cause__, KeyboardInterrupt):
            raise KeyboardInterrupt from None  # undone, and left pending: not really tried
        mark_done(session.state, item)
        events.warning(f"clp: {item.patch} is no longer in force: {err}")
        return
    except Exception as err:  # noqa: BLE001 - a bug must not block every later command
        mark_done(session.state, item)
        events.warning(f"clp: re-applying {item.patch} failed: {type(err).__name__}: {err}")
        return
    mark_done(session.state, item)
    events.info(f"clp: {item.patch} re-applied")
    from clp_alpm.ops.apply import restart_services

    for result in restart_services(session, record):
        say = events.info if result.status == "restarted" else events.warning
        say(f"clp: {result.unit}: {result.status}: {result.message}")


def _still_replaced(session: Session, record: PatchRecord, paths: list[str]) -> list[str]:
    """The paths that differ from what the patch left (a killed re-apply or a recovered
    undo may have put the patched file back already: re-applying then would patch twice)."""
    if not paths or not record.snapshot_after:
        return list(paths)
    after = session.store.load(record.snapshot_after)
    root = session.config.root
    return [
        path
        for path in paths
        if (then := after.get(path)) is None
        or not session.store.current_state(root, path).same_content_as(then)
    ]
