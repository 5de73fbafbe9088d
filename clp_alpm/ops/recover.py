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

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clp_alpm.atomicfile import fsync_directory
from clp_alpm.config import Config
from clp_alpm.errors import ClpError, OperationFailed, UsageError
from clp_alpm.logfile import LogFile
from clp_alpm.ops.commit import journal
from clp_alpm.ops.session import LOG_TAG, Events, Session, require_root
from clp_alpm.ops.steps import OperationKind
from clp_alpm.paths import is_dir
from clp_alpm.store.lock import StateLock
from clp_alpm.store.records import Operation, OperationStatus, TransactionStatus
from clp_alpm.store.state import StateDB
from clp_alpm.system.pacman import PACMAN_LOCK, is_pacman, lock_holders

# Every writing command recovers first, mostly finding nothing: what closing a transaction
# record (the snapshot store) and rebuilding the state (the salvage) need loads when they run.
if TYPE_CHECKING:
    from dataclasses import dataclass

    from clp_alpm.store.salvage import Salvage
else:  # no dataclasses (inspect, ast) at run time: see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass

# A read-only command waits this long to tell an abandoned operation from a running one.
ABANDONED_PROBE_WAIT = 0.5


def recover(session: Session) -> list[str]:
    """Roll back every operation a killed process left unfinished; say so."""
    from clp_alpm.ops.step_files import empty_trash

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
    from clp_alpm.ops.record import Recorder, close

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
    lock = Path(session.config.host_dbpath, PACMAN_LOCK)
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


# -- a damaged state database ----------------------------------------------------------------


@dataclass(frozen=True)
class Rebuild:
    """What `clp recover --rebuild-state` did: where the damaged file went, what was read of
    it, and the snapshots kept although no salvaged record names them."""

    aside: str
    salvage: Salvage
    kept_snapshots: tuple[str, ...]

    def lines(self) -> list[str]:
        lines = [f"the damaged database is kept as {self.aside}"]
        if self.salvage.header_rebuilt:
            lines.append("its header was overwritten: read through a rebuilt header")
        lines += [table.describe() for table in self.salvage.tables.values()]
        if self.kept_snapshots:
            count = len(self.kept_snapshots)
            lines.append(
                f"{count} snapshot{'' if count == 1 else 's'} no salvaged record names "
                "kept in the store (none is deleted by a rebuild)"
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"aside": self.aside, "header_rebuilt": self.salvage.header_rebuilt,
                "tables": [t.to_dict() for t in self.salvage.tables.values()],
                "kept_snapshots": list(self.kept_snapshots)}  # fmt: skip


def rebuild_state(config: Config, events: Events) -> Rebuild:
    """Copy the state database aside, salvage every row SQLite can read into a new one, and
    keep every snapshot of the store. What the salvage could not read is rebuilt from disk by
    the writing session that follows (`open_session`): patch directories in PatchDir no
    record claims are adopted, pins live in pacman.conf, installed versions in pacman's local
    database. Holds the lock; deletes nothing. Killed at any moment, it leaves the damaged
    database in place (to be rebuilt again) or the new one: never no database, which would
    let the next command's garbage collection think no snapshot is needed."""
    import shutil

    from clp_alpm.store.salvage import salvage, write_salvaged
    from clp_alpm.store.snapshots import SnapshotStore

    require_root()
    state_dir = Path(config.host_state_dir)
    path = state_dir / StateDB.FILENAME
    lock = StateLock(state_dir, on_wait=events.waiting)
    lock.acquire()
    try:
        if not path.is_file():
            raise UsageError(f"{path}: there is no state database to rebuild")
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        work = state_dir / f".rebuild-{os.getpid()}"
        try:
            for suffix in ("", "-wal"):
                if os.path.lexists(f"{path}{suffix}"):
                    shutil.copy2(f"{path}{suffix}", f"{aside}{suffix}")
            fsync_directory(state_dir)
            found = salvage(aside)
            store = SnapshotStore(state_dir / "snapshots")
            snapshots = store.list_ids() if is_dir(store.snapshots_dir) else []
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(mode=0o700)
            kept = write_salvaged(work, found, snapshots)
            # the damaged file's -wal and -shm must not be read with the new file
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{path}{suffix}")
            os.replace(work / StateDB.FILENAME, path)
            fsync_directory(state_dir)
        except OSError as err:
            raise OperationFailed(
                f"{path}: cannot rebuild the state database ({err.strerror or err}); the "
                "damaged one is still in place"
            ) from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        lock.release()
    rebuild = Rebuild(str(aside), found, tuple(kept))
    _log_rebuild(config, rebuild)
    return rebuild


def _log_rebuild(config: Config, rebuild: Rebuild) -> None:
    try:
        log = LogFile(config.host_log_file)
        for line in rebuild.lines():
            log.write(LOG_TAG, f"state rebuilt: {line}")
    except OSError:
        pass  # the report still says it
