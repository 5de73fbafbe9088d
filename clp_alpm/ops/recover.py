"""Recovery: finish or undo every operation a killed clp left in the journal.

Every writing command recovers first (under the lock), and a read-only one does too when no
live clp owns the unfinished operation. An operation whose undo failed stays `stuck`: every
recovery retries it, and writing commands refuse until it is clean.
"""

from __future__ import annotations

import os

from clp_alpm.errors import ClpError, OperationFailed
from clp_alpm.ops.commit import journal
from clp_alpm.ops.session import LOG_TAG, Session
from clp_alpm.ops.step_files import empty_trash
from clp_alpm.ops.steps import OperationKind
from clp_alpm.store.lock import StateLock
from clp_alpm.store.records import Operation, OperationStatus

# A read-only command waits this long to tell an abandoned operation from a running one.
ABANDONED_PROBE_WAIT = 0.5


def recover(session: Session) -> list[str]:
    """Roll back every operation a killed process left unfinished; say so."""
    reports = [_recover_one(session, op) for op in session.state.unfinished_operations()]
    session.recovered.extend(reports)
    empty_trash(session.config)  # nothing unfinished is left that could need it
    return reports


def _recover_one(session: Session, operation: Operation) -> str:
    what = f"{operation.kind} of {operation.target} (pid {operation.pid})"
    if operation.status == OperationStatus.STUCK:
        session.events.warning(f"retrying the recovery of the {what}")
    else:
        session.events.warning(f"recovering from an interrupted {what}")
    session.log.write(LOG_TAG, f"recovering {what}")
    session.recovering = True
    try:
        errors = journal(session).recover(operation)
    finally:
        session.recovering = False
    finished = session.state.operation(operation.id).status == OperationStatus.DONE
    if operation.kind == OperationKind.APPLY and operation.entries:
        from clp_alpm.ops.apply import record_failure

        record_failure(
            session,
            operation.target,
            "interrupted; rolled back by recovery",
            operation.entries[0].args.get("record"),
        )
    if errors:
        message = (
            f"the {what} could not be recovered: {'; '.join(errors)}. "
            "Fix the cause, then run 'clp recover'"
        )
        session.log.write(LOG_TAG, message)
        raise OperationFailed(message)
    outcome = "finished" if finished else "rolled back"
    session.log.write(LOG_TAG, f"{what} {outcome}")
    session.events.warning(f"the interrupted {what} was {outcome}")
    return f"{what} {outcome}"


def recover_if_abandoned(session: Session) -> None:
    """A read-only session still rolls back an interrupted operation when it can: as root,
    and only when no live clp holds the lock (its owner may be in the middle of it)."""
    if not session.state.unfinished_operations():
        return
    if os.geteuid() != 0:
        session.events.warning(
            "an interrupted clp operation needs recovery: run 'clp recover' as root"
        )
        return
    probe = StateLock(session.config.host_state_dir, wait=ABANDONED_PROBE_WAIT)
    try:
        probe.acquire()
    except ClpError:
        return  # its owner is alive: an operation in progress, not an abandoned one
    try:
        session.reopen_state(readonly=False)
        recover(session)
    except OperationFailed as err:
        session.events.warning(str(err))  # a listing still lists; writing commands refuse
    finally:
        session.reopen_state(readonly=True)
        probe.release()
