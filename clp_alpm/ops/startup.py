"""Opening and closing a session: what every clp command does around its own work.

A writing session takes the lock, rolls back whatever a killed clp left behind, and re-applies
the patches a pacman transaction left pending — before the command looks at any patch's files —
then, when the command is done, re-applies what its own pacman runs left pending and drops the
snapshots nothing needs any more. A read-only session takes no lock; as root it still recovers
an operation nobody owns.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from clp_alpm.config import Config
from clp_alpm.errors import ClpError
from clp_alpm.ops.session import Events, Session, require_root
from clp_alpm.store.state import StateDB

# A read-only session (`clp list`, `clp transactions`) loads only the state: recovery,
# adoption and re-applying (which load the journal's handlers, and with them the archive and
# download code) load when there is something for them to do.


@contextmanager
def open_session(
    config: Config, events: Events | None = None, write: bool = True
) -> Iterator[Session]:
    """The session of one command, opened and closed with every duty above. As root, a
    read-only command that finds patches clpctl left opens a writing session: it adopts them
    first (a first run of `clp list` shows them)."""
    session = _start(config, events or Events(), write)
    if not write and os.geteuid() == 0 and _clpctl_left_patches(session):
        session.close()
        session = _start(config, session.events, True)
    try:
        try:
            yield session
        except BaseException:
            if session.locked:
                collect_garbage(session)
                refresh_completion_index(session)
            raise
        if session.locked:
            from clp_alpm.ops.reapply import run_pending

            run_pending(session)
            collect_garbage(session)
            refresh_completion_index(session)
    finally:
        session.close()


def _start(config: Config, events: Events, write: bool) -> Session:
    # clp's own paths resolved inside the root before anything is opened or created: one that
    # leads out of it (or dangles) is a PathEscapeError naming it, for reading commands too
    config.own_paths()
    if not write:
        session = Session(config, events, StateDB(config.host_state_dir, readonly=True), None)
        try:
            # an operation a killed clp left, or a transaction record pacman left open
            if session.state.unfinished_operations() or session.state.open_transactions():
                from clp_alpm.ops.recover import recover_if_abandoned

                recover_if_abandoned(session)
        except BaseException:
            session.close()
            raise
        return session
    from clp_alpm.ops.adopt import adopt_all
    from clp_alpm.ops.reapply import run_pending
    from clp_alpm.ops.recover import recover
    from clp_alpm.store.lock import StateLock

    require_root()
    lock = StateLock(config.host_state_dir, on_wait=events.waiting)
    lock.acquire()
    try:
        state = StateDB(config.host_state_dir)
    except BaseException:
        lock.release()
        raise
    session = Session(config, events, state, lock)
    try:
        recover(session)
        run_pending(session)  # before this command looks at any patch's files
        adopt_all(session)  # what clpctl left: before any command looks at PatchDir
    except BaseException:
        session.close()
        raise
    return session


def _clpctl_left_patches(session: Session) -> bool:
    from clp_alpm.ops.adopt import find_leftovers, may_have_leftovers

    return may_have_leftovers(session) and bool(find_leftovers(session)[0])


def collect_garbage(session: Session) -> None:
    """Drop snapshots no patch or transaction record needs (failed applies, finished
    rollbacks, replaced records, transactions beyond the history): they hold copies of
    configuration files. Never while recovery is pending."""
    from clp_alpm.ops.record import forget_old_transactions

    if session.state.unfinished_operations():
        return
    try:
        session.check_own_paths(store_only=True)  # the store is pruned by name
        forget_old_transactions(session.state, session.config.history_limit)
        session.store.prune(session.state.snapshots_in_use())
    except (ClpError, OSError) as err:
        session.events.warning(f"could not clean up old snapshots: {err}")


def refresh_completion_index(session: Session) -> None:
    """Rewrite the completion index when the patches, reverts or transactions changed. It is
    a convenience: failing to write it is a warning, never a failed command."""
    from clp_alpm.store.completion import write_index

    try:
        path = session.config.host_completion_index
        write_index(session.state, path)
    except OSError as err:
        session.events.warning(f"{path}: cannot update the completion index ({err.strerror})")
    except ClpError as err:
        session.events.warning(f"cannot update the completion index: {err}")
