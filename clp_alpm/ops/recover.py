"""Recovery: finish or undo every operation a killed clp left in the journal, and close the
records of pacman transactions that ended without their post-transaction hook.

Every writing command recovers first (under the lock), and a read-only one does too when no
live clp owns the unfinished operation. An operation whose undo failed stays `stuck`: every
recovery retries it, and writing commands refuse until it is clean.

A transaction record still open once no pacman runs (pacman was killed between the hooks, or
the post hook failed) is closed as interrupted: its snapshot from before stays, the versions
and files are read as they are now, and `clp undo-transaction` can take the system back.
"""

from __future__ import annotations

import os

from clp_alpm.errors import ClpError, OperationFailed
from clp_alpm.ops.apply import record_failure
from clp_alpm.ops.commit import journal
from clp_alpm.ops.record import Recorder, close
from clp_alpm.ops.session import LOG_TAG, Session
from clp_alpm.ops.step_files import empty_trash
from clp_alpm.ops.steps import OperationKind
from clp_alpm.store.lock import StateLock
from clp_alpm.store.records import Operation, OperationStatus, TransactionStatus
from clp_alpm.system.pacman import PACMAN_LOCK, is_pacman, lock_holders

# A read-only command waits this long to tell an abandoned operation from a running one.
ABANDONED_PROBE_WAIT = 0.5


def recover(session: Session) -> list[str]:
    """Roll back every operation a killed process left unfinished; say so."""
    reports = [_recover_one(session, op) for op in session.state.unfinished_operations()]
    session.recovered.extend(reports)
    empty_trash(session.config)  # nothing unfinished is left that could need it
    close_interrupted_transactions(session)
    return reports


def close_interrupted_transactions(session: Session) -> list[int]:
    """Close every open transaction record whose pacman is gone, as the next pre hook would:
    libalpm holds db.lck open from before the pre hook to after the post hook, so an open
    record with no process holding the lock belongs to a transaction that has ended. Returns
    the numbers closed."""
    records = session.state.open_transactions()
    if not records or _pacman_at_work(session, [r.pacman_pid for r in records]):
        return []
    recorder = Recorder(session.config, session.state, session.store)
    closed = []
    for record in records:
        close(recorder, record, (), TransactionStatus.INTERRUPTED)
        session.events.warning(
            f"transaction {record.id} was interrupted (its post-transaction hook never ran); "
            f"see 'clp transactions', undo it with 'clp undo-transaction {record.id}'"
        )
        session.log.write(LOG_TAG, f"transaction {record.id} closed as interrupted")
        closed.append(record.id)
    return closed


def _pacman_at_work(session: Session, pids: list[int | None]) -> bool:
    lock = session.config.host_dbpath / PACMAN_LOCK
    return bool(lock_holders(lock)) or any(pid is not None and is_pacman(pid) for pid in pids)


def transactions_to_close(session: Session) -> bool:
    """Whether a recovery would close a transaction record (see close_interrupted_…)."""
    records = session.state.open_transactions()
    return bool(records) and not _pacman_at_work(session, [r.pacman_pid for r in records])


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
    if not session.state.unfinished_operations() and not transactions_to_close(session):
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
