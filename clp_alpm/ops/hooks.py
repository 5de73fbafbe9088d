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

import os

from clp_alpm.config import Config, load_config
from clp_alpm.errors import ClpError
from clp_alpm.logfile import LogFile
from clp_alpm.ops.record import (
    HookTargets,
    Recorder,
    begin,
    finish,
    parse_targets,
    prune_history,
)
from clp_alpm.paths import HELD_ENV
from clp_alpm.store.lock import StateLock, lock_holder
from clp_alpm.store.records import Origin, TransactionRecord
from clp_alpm.store.snapshots import SnapshotStore
from clp_alpm.store.state import StateDB

TYPE_CHECKING = False  # as in store/records.py: no typing import at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from dataclasses import dataclass
    from typing import Any

    Say = Callable[[str], None]
else:  # the pacman hook's path: no dataclasses, see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass

WHEN = ("pre-transaction", "post-transaction")
LOG_TAG = "CLP-HOOK"
# pacman is waiting: a clp busy for longer (a long update) costs this transaction its record
HOOK_LOCK_WAIT = 10.0


@dataclass(frozen=True)
class Output:
    info: Say
    warning: Say
    output: Say  # a patch script's output lines


def run_hook(
    when: str,
    stdin_text: str,
    out: Output,
    root: str = "/",
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    process_ends: bool = False,
) -> None:
    """Record one side of a transaction; never raises (a failure is a warning). The
    configuration is read as every clp command reads it: clp.conf under `root` (or the host
    path `config_file`), with the global options' `overrides`. With `process_ends` (the hook's
    own process, which ends with os._exit) the state database is left for the next command
    to checkpoint (StateDB.close)."""
    if when not in WHEN:
        out.warning(f"clp hook: unknown hook '{when}' (expected {' or '.join(WHEN)})")
        return
    config: Config | None = None
    try:
        config = load_config(root, config_file, overrides)
        reentrant = _reentrant(config)
        targets = parse_targets(stdin_text)
        recorded = _record(config, when, targets, reentrant, out, process_ends)
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - never fail pacman
        _warn(out, config, f"clp could not record this transaction ({when}): {_reason(err)}")
        return
    if when == "pre-transaction":
        return
    _report(config, recorded.record, out)
    if reentrant:
        return  # the clp that runs this transaction re-applies once its operation is done
    try:
        _keep_patches_in_force(config, recorded, out)
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
        _log(config, message)


def _log(config: Config, message: str) -> None:
    """A line in clp's log; a log that cannot be written (a path leading out of the root)
    loses the line, never the hook. (No contextlib: a millisecond of every hook's start.)"""
    try:  # noqa: SIM105 - no contextlib on the hooks' path
        LogFile(config.host_log_file).write(LOG_TAG, message)
    except (OSError, ClpError):
        pass


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


@dataclass(frozen=True)
class _Recorded:
    record: TransactionRecord
    reapply_due: bool = False  # patches wait to be re-applied
    unfinished: bool = False  # an interrupted clp operation waits for recovery


def _record(
    config: Config,
    when: str,
    targets: HookTargets,
    reentrant: bool,
    out: Output,
    process_ends: bool,
) -> _Recorded:
    lock = None if reentrant else StateLock(config.host_state_dir, wait=_lock_wait())
    if lock is not None:
        lock.acquire()
    try:
        state = StateDB(config.host_state_dir)
        try:
            store = SnapshotStore(config.host_snapshot_dir, config.own_paths())
            recorder = Recorder(config, state, store)
            origin = Origin.CLP if reentrant else Origin.PACMAN
            pacman_pid = os.getppid()  # libalpm forks the hook from pacman's own process
            from clp_alpm.system.proctree import pacman_command_line  # lazy: a few reads

            command = pacman_command_line(pacman_pid)
            if when == "pre-transaction":
                with state.transaction():  # one commit, one sync, whatever it closes first
                    return _Recorded(begin(recorder, targets, origin, pacman_pid, command))
            # lazy: the pre-transaction hook, which pacman waits for, never asks
            from clp_alpm.ops.pending import add_pending, patches_to_reapply, pending

            with state.transaction():  # the record, what to re-apply and what it prunes
                record = finish(recorder, targets, origin, pacman_pid, command)
                add_pending(state, patches_to_reapply(state, record))
                # the clp running this pacman collects garbage once it is done
                unused = [] if reentrant else _prune_history(recorder, out)
            _forget_snapshots(recorder, unused, out)
            _refresh_completion_index(config, state, out)
            return _Recorded(record, bool(pending(state)), bool(state.unfinished_operations()))
        finally:
            # the next other clp command checkpoints the log: a hook's close syncs nothing more
            state.close(process_ends)
    finally:
        if lock is not None:
            lock.release()


def _prune_history(recorder: Recorder, out: Output) -> list[str]:
    """Keep HistoryLimit transactions, a few forgotten a run; the snapshots only those
    needed. A failure is a warning, and forgets nothing (the record is saved). Never while an
    interrupted operation waits for recovery."""
    config = recorder.config
    try:
        with recorder.state.transaction():  # a part of the hook's: all of it or none
            if recorder.state.unfinished_operations():
                return []
            return prune_history(recorder, config.history_limit)
    except Exception as err:  # noqa: BLE001 - the record is saved: this must not lose it
        _warn(out, config, f"clp could not forget transactions beyond HistoryLimit: {_reason(err)}")
        return []


def _forget_snapshots(recorder: Recorder, snapshot_ids: list[str], out: Output) -> None:
    """Delete the snapshots the committed prune left unnamed; a failure is a warning (the
    next writing clp command's garbage collection deletes what is left)."""
    try:
        recorder.store.forget(snapshot_ids)
    except OSError as err:
        _warn(out, recorder.config, f"clp could not delete forgotten snapshots: {_reason(err)}")


def _refresh_completion_index(config: Config, state: StateDB, out: Output) -> None:
    """The new transaction's number for the shell completions; a failure is a warning."""
    from clp_alpm.store.completion import write_index  # lazy: the post hook only

    try:
        path = config.host_completion_index
        write_index(state, path)
    except OSError as err:
        _warn(out, config, f"{path}: cannot update the completion index ({err.strerror})")
    except Exception as err:  # noqa: BLE001 - the record is saved: this must not lose it
        _warn(out, config, f"cannot update the completion index: {_reason(err)}")


def _lock_wait() -> float:
    return float(os.environ.get("CLP_TEST_HOOK_LOCK_WAIT", HOOK_LOCK_WAIT))  # tests shorten it


def _report(config: Config, record: TransactionRecord, out: Output) -> None:
    files = len(record.changed)
    message = f"transaction {record.id} recorded ({record.origin}): {files} file(s) changed"
    _log(config, message)
    if files:
        out.info(
            f"clp: transaction {record.id} changed {files} configuration file(s); "
            f"see 'clp diff {record.id}', undo with 'clp undo-transaction {record.id}'"
        )


def _keep_patches_in_force(config: Config, recorded: _Recorded, out: Output) -> None:
    """Re-apply what is due and lift pins whose fix arrived, under the lock (a session)."""
    due, unfinished = recorded.reapply_due, recorded.unfinished
    try:
        lift = _fix_arrived(config)
    except Exception as err:  # noqa: BLE001 - re-applies still run
        _warn(out, config, f"clp could not check whether a pin's fix has arrived: {_reason(err)}")
        lift = False
    if not due and not lift:
        return
    if unfinished:  # its recovery may need pacman, whose lock this transaction holds
        out.warning("clp: an interrupted clp operation needs recovery first: run 'clp recover'")
        return
    import gc

    from clp_alpm.ops.pins import lift_satisfied_pins
    from clp_alpm.ops.session import Events
    from clp_alpm.ops.startup import open_session

    gc.enable()  # the hook's front end turned it off for the short recording; this may run long
    events = Events(output=out.output, info=out.info, warning=out.warning)
    with open_session(config, events) as session:  # re-applies what is pending when it ends
        for lifted in lift_satisfied_pins(session, private_copy=False) if lift else []:
            then = (
                "run 'pacman -Syu' again to upgrade it"
                if lifted.upgrade_waits
                else f"{lifted.installed} is installed"
            )
            out.info(f"clp: unpinned {lifted.describe()}: pin lifted, {then}")


def _fix_arrived(config: Config) -> bool:
    """Does a sync database offer the fix of an `--until` pin? Read from pacman's own
    databases, which the `pacman -Sy[u]` running this hook refreshed: no download, and no
    libalpm at all while no pin waits for a version."""
    from clp_alpm.system.pins import read_pins

    pinned = [pin for pin in read_pins(config) if pin.until]
    if not pinned:
        return False
    from clp_alpm.ops.pins import fixes_offered
    from clp_alpm.system.pacmanconf import pacman_settings

    settings = pacman_settings(config, config.pacman_conf, config.extra_cache_dirs)
    return bool(fixes_offered(config, settings, pinned, private_copy=False))
