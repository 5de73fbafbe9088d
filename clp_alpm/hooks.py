"""What `clp hook pre-transaction` and `clp hook post-transaction` do inside pacman.

pacman runs them chrooted into the target root (so the root here is always "/" of what they
see) with the transaction's targets on stdin. A hook never fails a transaction: every problem
becomes a warning for the user and a line in the log, and the hook exits 0.

When clp itself runs pacman (a revert, an undo), it holds clp's lock and sets HELD_ENV: the
hooks then record without taking the lock (waiting for it would deadlock), and leave patch
re-applies to that clp process, which runs them once its own operation has finished.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import Config, load_config
from .lock import HELD_ENV, StateLock
from .logfile import LogFile
from .snapshots import SnapshotStore
from .state import StateDB, TransactionRecord
from .transactions import HookTargets, Recorder, begin, finish, parse_targets, patches_to_reapply

TYPE_CHECKING = False  # as in state.py: no typing import at run time

if TYPE_CHECKING:
    from .patches import Session

WHEN = ("pre-transaction", "post-transaction")
LOG_TAG = "CLP-HOOK"
# pacman is waiting: a clp busy for longer (a long update) costs this transaction its record
HOOK_LOCK_WAIT = 10.0
PENDING_SETTING = "pending-reapply"

Say = Callable[[str], None]


@dataclass(frozen=True)
class Output:
    info: Say
    warning: Say
    output: Say  # a patch script's output lines


def run_hook(when: str, stdin_text: str, out: Output, root: Path = Path("/")) -> None:
    """Record one side of a transaction; never raises (a failure is a warning)."""
    if when not in WHEN:
        out.warning(f"clp hook: unknown hook '{when}' (expected {' or '.join(WHEN)})")
        return
    config: Config | None = None
    try:
        config = load_config(root)
        targets = parse_targets(stdin_text)
        record, reapplies = _record(config, when, targets)
        if when == "post-transaction":
            _after(config, record, reapplies, out)
    except Exception as err:  # noqa: BLE001 - a hook must never fail pacman's transaction
        message = f"clp could not record this transaction ({when}): {_reason(err)}"
        out.warning(message)
        if config is not None:
            _log_quietly(config, message)


def _reason(err: Exception) -> str:
    text = str(err) or type(err).__name__
    return text if isinstance(err, (OSError, ValueError)) or "clp" in type(err).__module__ else (
        f"{type(err).__name__}: {text}"
    )


def _log_quietly(config: Config, message: str) -> None:
    with contextlib.suppress(OSError):
        LogFile(config.host_log_file).write(LOG_TAG, message)


def _reentrant() -> bool:
    return HELD_ENV in os.environ


def _record(
    config: Config, when: str, targets: HookTargets
) -> tuple[TransactionRecord, list[tuple[str, str]]]:
    """The transaction record, and after it the patches to re-apply."""
    wait = float(os.environ.get("CLP_TEST_HOOK_LOCK_WAIT", HOOK_LOCK_WAIT))  # tests shorten it
    lock = None if _reentrant() else StateLock(config.host_state_dir, wait=wait)
    if lock is not None:
        lock.acquire()
    try:
        state = StateDB(config.host_state_dir)
        try:
            recorder = Recorder(config, state, SnapshotStore(config.host_state_dir / "snapshots"))
            origin = "clp" if _reentrant() else "pacman"
            if when == "pre-transaction":
                return begin(recorder, targets, origin), []
            record = finish(recorder, targets, origin)
            reapplies = patches_to_reapply(state, record)
            if _reentrant():
                _defer(state, reapplies)
            return record, reapplies
        finally:
            state.close()
    finally:
        if lock is not None:
            lock.release()


def _defer(state: StateDB, reapplies: list[tuple[str, str]]) -> None:
    """Leave re-applies to the clp process that runs this transaction."""
    if reapplies:
        pending = json.loads(state.get_setting(PENDING_SETTING) or "[]")
        state.set_setting(PENDING_SETTING, json.dumps(pending + [list(r) for r in reapplies]))


def _after(
    config: Config, record: TransactionRecord, reapplies: list[tuple[str, str]], out: Output
) -> None:
    files = len(record.changed)
    if files:
        out.info(
            f"clp: transaction {record.id} changed {files} configuration file(s); "
            f"see 'clp diff {record.id}', undo with 'clp undo-transaction {record.id}'"
        )
    if _reentrant():
        return  # the clp that runs this transaction re-applies when its operation is done
    from .pins import read_pins

    if reapplies or any(pin.until for pin in read_pins(config)):
        from .patches import Events, Session
        from .reverts import lift_satisfied_pins

        events = Events(output=out.output, info=out.info, warning=out.warning)
        with Session(config, events) as session:
            run_reapplies(session, reapplies)
            for lifted in lift_satisfied_pins(session):
                out.info(f"clp: unpinned {lifted}")


def run_reapplies(session: Session, reapplies: list[tuple[str, str]]) -> None:
    """Re-apply each patch and restart its services; one failure does not stop the others."""
    from .errors import ClpError
    from .patches import reapply, restart_services

    events = session.events
    for patch_id, reason in dict(reapplies).items():
        events.info(f"clp: re-applying {patch_id}: {reason}")
        try:
            record = reapply(session, patch_id, reason)
        except ClpError as err:
            events.warning(f"clp: {patch_id} is no longer in force: {err}")
            continue
        events.info(f"clp: {patch_id} re-applied")
        for result in restart_services(session, record):
            say = events.info if result.status == "restarted" else events.warning
            say(f"clp: {result.unit}: {result.status}: {result.message}")


def take_pending(state: StateDB) -> list[tuple[str, str]]:
    """Re-applies a hook left for this process (see _defer), removed from the state."""
    pending = state.get_setting(PENDING_SETTING)
    if not pending or pending == "[]":
        return []
    state.set_setting(PENDING_SETTING, "[]")
    return [(str(patch_id), str(reason)) for patch_id, reason in json.loads(pending)]
