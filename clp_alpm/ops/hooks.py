"""What `clp hook pre-transaction` and `clp hook post-transaction` do inside pacman.

pacman runs them chrooted into the target root (so the root here is always "/" of what they
see) with the transaction's targets on stdin. A hook never fails a transaction: every problem
becomes a warning for the user and a line in the log, and the hook exits 0.

When clp itself runs pacman (a revert, an undo), it holds clp's lock and sets HELD_ENV to its
pid: the hooks then record without taking the lock (waiting for it would deadlock). Patches
to re-apply are written to the state with the transaction record, and run by whichever clp
holds the lock next: the post hook itself, or the clp that ran pacman once its operation is
done. An entry leaves the list only once its re-apply was tried.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clp_alpm.config import Config, load_config
from clp_alpm.logfile import LogFile
from clp_alpm.ops.transactions import (
    HookTargets,
    Reapply,
    Recorder,
    begin,
    finish,
    parse_targets,
    patches_to_reapply,
)
from clp_alpm.store.lock import HELD_ENV, StateLock, lock_holder
from clp_alpm.store.snapshots import SnapshotStore
from clp_alpm.store.state import StateDB, TransactionRecord

TYPE_CHECKING = False  # as in state.py: no typing import at run time

if TYPE_CHECKING:
    from clp_alpm.ops.patches import Session

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
        reentrant = _reentrant(config)
        record = _record(config, when, parse_targets(stdin_text), reentrant)
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - never fail pacman
        _warn(out, config, f"clp could not record this transaction ({when}): {_reason(err)}")
        return
    if when == "pre-transaction":
        return
    _report(config, record, out)
    if reentrant:
        return  # the clp that runs this transaction re-applies once its operation is done
    try:
        _keep_patches_in_force(config, out)
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - never fail pacman
        _warn(out, config, f"clp left re-applying patches to its next run: {_reason(err)}")


def _reason(err: BaseException) -> str:
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    text = str(err) or type(err).__name__
    return (
        text
        if isinstance(err, (OSError, ValueError)) or "clp" in type(err).__module__
        else (f"{type(err).__name__}: {text}")
    )


def _warn(out: Output, config: Config | None, message: str) -> None:
    out.warning(message)
    if config is not None:
        with contextlib.suppress(OSError):
            LogFile(config.host_log_file).write(LOG_TAG, message)


def _reentrant(config: Config) -> bool:
    """Inside a pacman that clp runs: HELD_ENV names a live process that holds the lock now.
    A stale variable (its clp was killed, its pacman lives on) does not count."""
    claimed = os.environ.get(HELD_ENV)
    return bool(claimed) and lock_holder(config.host_state_dir) == _as_pid(claimed)


def _as_pid(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _record(config: Config, when: str, targets: HookTargets, reentrant: bool) -> TransactionRecord:
    lock = None if reentrant else StateLock(config.host_state_dir, wait=_lock_wait())
    if lock is not None:
        lock.acquire()
    try:
        state = StateDB(config.host_state_dir)
        try:
            recorder = Recorder(config, state, SnapshotStore(config.host_state_dir / "snapshots"))
            origin = "clp" if reentrant else "pacman"
            pacman_pid = os.getppid()  # libalpm forks the hook from pacman's own process
            if when == "pre-transaction":
                return begin(recorder, targets, origin, pacman_pid)
            record = finish(recorder, targets, origin, pacman_pid)
            add_pending(state, patches_to_reapply(state, record))
            return record
        finally:
            state.close()
    finally:
        if lock is not None:
            lock.release()


def _lock_wait() -> float:
    return float(os.environ.get("CLP_TEST_HOOK_LOCK_WAIT", HOOK_LOCK_WAIT))  # tests shorten it


def _report(config: Config, record: TransactionRecord, out: Output) -> None:
    files = len(record.changed)
    message = f"transaction {record.id} recorded ({record.origin}): {files} file(s) changed"
    with contextlib.suppress(OSError):
        LogFile(config.host_log_file).write(LOG_TAG, message)
    if files:
        out.info(
            f"clp: transaction {record.id} changed {files} configuration file(s); "
            f"see 'clp diff {record.id}', undo with 'clp undo-transaction {record.id}'"
        )


def _keep_patches_in_force(config: Config, out: Output) -> None:
    """Re-apply what is due and lift pins whose fix arrived, under the lock (a Session)."""
    from clp_alpm.system.pins import read_pins

    state = StateDB(config.host_state_dir, readonly=True)
    try:
        due = bool(pending(state))
        unfinished = bool(state.unfinished_operations())
    finally:
        state.close()
    if not due and not any(pin.until for pin in read_pins(config)):
        return
    if unfinished:  # its recovery may need pacman, whose lock this transaction holds
        out.warning("clp: an interrupted clp operation needs recovery first: run 'clp recover'")
        return
    from clp_alpm.ops.patches import Events, Session
    from clp_alpm.ops.revert import lift_satisfied_pins

    events = Events(output=out.output, info=out.info, warning=out.warning)
    with Session(config, events) as session:  # re-applies what is pending when it ends
        for lifted in lift_satisfied_pins(session):
            out.info(f"clp: unpinned {lifted}")


# -- re-applies waiting for a clp that holds the lock -------------------------------------


def pending(state: StateDB) -> list[Reapply]:
    try:
        entries = json.loads(state.get_setting(PENDING_SETTING) or "[]")
        return [Reapply(str(e["patch"]), str(e["reason"]), list(e["replaced"])) for e in entries]
    except (ValueError, KeyError, TypeError):
        return []  # a damaged list is dropped rather than blocking every clp command


def add_pending(state: StateDB, reapplies: list[Reapply]) -> None:
    if not reapplies:
        return
    merged: dict[str, Reapply] = {item.patch: item for item in pending(state)}
    for item in reapplies:
        earlier = merged.get(item.patch)
        if earlier is not None:
            replaced = list(dict.fromkeys(earlier.replaced + item.replaced))
            item = Reapply(item.patch, f"{earlier.reason}; {item.reason}", replaced)
        merged[item.patch] = item
    _store_pending(state, list(merged.values()))


def _store_pending(state: StateDB, items: list[Reapply]) -> None:
    entries = [{"patch": i.patch, "reason": i.reason, "replaced": i.replaced} for i in items]
    state.set_setting(PENDING_SETTING, json.dumps(entries))


def run_pending(session: Session) -> None:
    """Re-apply each patch waiting in the state, and restart its services. One failure does
    not stop the others; an entry is removed once tried (a failed re-apply is reported and
    recorded on the patch, not retried on every command)."""
    from clp_alpm.errors import ClpError
    from clp_alpm.ops.patches import reapply, restart_services

    events = session.events
    for item in pending(session.state):
        record = session.state.get_patch(item.patch)
        if record is None or record.state != "applied":
            _done(session.state, item)
            continue
        replaced = _still_replaced(session, record, item.replaced)
        if item.replaced and not replaced:  # patched again meanwhile (a recovered undo)
            _done(session.state, item)
            continue
        events.info(f"clp: re-applying {item.patch}: {item.reason}")
        try:
            record = reapply(session, item.patch, item.reason, replaced)
        except ClpError as err:
            if isinstance(err.__cause__, KeyboardInterrupt):
                raise KeyboardInterrupt from None  # undone, and left pending: not really tried
            _done(session.state, item)
            events.warning(f"clp: {item.patch} is no longer in force: {err}")
            continue
        except Exception as err:  # noqa: BLE001 - a bug must not block every later command
            _done(session.state, item)
            events.warning(f"clp: re-applying {item.patch} failed: {type(err).__name__}: {err}")
            continue
        _done(session.state, item)
        events.info(f"clp: {item.patch} re-applied")
        for result in restart_services(session, record):
            say = events.info if result.status == "restarted" else events.warning
            say(f"clp: {result.unit}: {result.status}: {result.message}")


def _still_replaced(session: Session, record, paths: list[str]) -> list[str]:
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


def _done(state: StateDB, item: Reapply) -> None:
    _store_pending(state, [other for other in pending(state) if other.patch != item.patch])
