"""Recording pacman transactions, as the hooks do: versions and snapshots before and after.

The pre-transaction hook snapshots the configuration files the transaction names (its `etc/*`
targets) plus every file an applied patch manages, and the `.pacnew`/`.pacsave` files pacman
may write beside them; the post-transaction hook snapshots the same paths again. The cost
follows what the transaction touches, not the size of /etc.

pacman waits for this code on every transaction: it imports no lxml, no gpg, no journal.
"""

from __future__ import annotations

import time

from clp_alpm.config import Config
from clp_alpm.errors import ClpError
from clp_alpm.store.model import Snapshot
from clp_alpm.store.records import (
    Health,
    Origin,
    PatchState,
    TransactionRecord,
    TransactionStatus,
)
from clp_alpm.store.snapshots import SnapshotStore
from clp_alpm.store.state import StateDB
from clp_alpm.system.localdb import installed_versions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from dataclasses import dataclass, replace
else:  # the pacman hook's path: no dataclasses, see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass, replace

# Files pacman writes beside a configuration file it must not overwrite or is removing.
PACMAN_SIDE_FILES = (".pacnew", ".pacsave")
# Transactions beyond HistoryLimit the post hook forgets in one run: one a run keeps the
# history at its limit; a few more let it catch up after the limit is lowered, while no
# transaction pays for more than these.
PRUNE_PER_RUN = 8


@dataclass(frozen=True)
class HookTargets:
    """What libalpm passes a NeedsTargets hook: package names and paths (no leading '/')."""

    packages: tuple[str, ...]
    paths: tuple[str, ...]  # absolute, regular-file targets only (directories end in '/')


def parse_targets(text: str) -> HookTargets:
    """Split a hook's stdin: package names never contain '/', paths from `etc/*` always do."""
    packages: list[str] = []
    paths: list[str] = []
    for line in text.splitlines():
        target = line.strip()
        if not target:
            continue
        if "/" not in target:
            packages.append(target)
        elif not target.endswith("/"):
            paths.append("/" + target.lstrip("/"))
    return HookTargets(tuple(dict.fromkeys(packages)), tuple(dict.fromkeys(paths)))


@dataclass(frozen=True)
class Recorder:
    """The parts a hook needs: no lxml, no gpg, no journal (pacman is waiting)."""

    config: Config
    state: StateDB
    store: SnapshotStore


def managed_files(state: StateDB) -> dict[str, list[str]]:
    """Files each applied patch manages, by patch id."""
    return {
        record.id: list(record.meta.files)
        for record in state.list_patches()
        if record.state == PatchState.APPLIED
    }


def paths_to_snapshot(state: StateDB, target_paths: Iterable[str]) -> list[str]:
    """The transaction's configuration files and the patches' files, each with the side files
    pacman may create beside it."""
    managed = [path for files in managed_files(state).values() for path in files]
    wanted: dict[str, None] = {}
    for path in [*target_paths, *managed]:
        if path.endswith(PACMAN_SIDE_FILES):
            path = path.rsplit(".", 1)[0]
        wanted[path] = None
        for suffix in PACMAN_SIDE_FILES:
            wanted[path + suffix] = None
    return sorted(wanted)


def begin(
    recorder: Recorder,
    targets: HookTargets,
    origin: Origin,
    pacman_pid: int,
    command: str | None = None,
) -> TransactionRecord:
    """Before a transaction: close any transaction whose post hook never ran, then record the
    versions, the pacman command line and snapshot the files this one may change."""
    for stale in recorder.state.open_transactions():
        close(recorder, stale, (), TransactionStatus.INTERRUPTED)
    packages = sorted(targets.packages)
    before = installed_versions(recorder.config.host_dbpath, packages)
    paths = paths_to_snapshot(recorder.state, targets.paths)
    snapshot = recorder.store.take(recorder.config.root, paths, previous=_latest(recorder))
    record = TransactionRecord(
        id=0,
        status=TransactionStatus.OPEN,
        started=time.time(),
        origin=origin,
        packages=tuple({"name": name, "from": before[name], "to": None} for name in packages),
        paths=tuple(paths),
        snapshot_before=snapshot.id,
        pacman_pid=pacman_pid,
        command=command,
    )
    return replace(record, id=recorder.state.add_transaction(record))


def finish(
    recorder: Recorder,
    targets: HookTargets,
    origin: Origin,
    pacman_pid: int,
    command: str | None = None,
) -> TransactionRecord:
    """After a transaction: the versions and files now, and what changed. Only the record
    this transaction's pre hook opened is closed as done: the same pacman process, and the
    same packages (a front end such as pamac runs every transaction in one process). Another
    open record is from a transaction that died; taking it for this one would record
    upgrades as installs."""
    mine = None
    for record in recorder.state.open_transactions():
        if mine is None and _opened_by(record, targets, pacman_pid):
            mine = record
        else:
            close(recorder, record, (), TransactionStatus.INTERRUPTED)
    if mine is not None:
        mine = replace(mine, command=mine.command or command)
        return close(recorder, mine, targets, TransactionStatus.DONE)
    # No pre-transaction record (clp was installed by this very transaction, or the pre hook
    # failed): the versions after and a snapshot are still worth keeping, never undone.
    record = TransactionRecord(
        id=0,
        status=TransactionStatus.OPEN,
        started=time.time(),
        origin=origin,
        packages=tuple({"name": n, "from": None, "to": None} for n in sorted(targets.packages)),
        paths=(),
        message="no record from before the transaction (the pre-transaction hook did not run)",
        pacman_pid=pacman_pid,
        command=command,
    )
    record = replace(record, id=recorder.state.add_transaction(record))
    return close(recorder, record, targets, TransactionStatus.DONE)


def _opened_by(record: TransactionRecord, targets: HookTargets, pacman_pid: int) -> bool:
    names = {package["name"] for package in record.packages}
    return record.pacman_pid == pacman_pid and names == set(targets.packages)


def close(
    recorder: Recorder,
    record: TransactionRecord,
    targets: HookTargets | tuple[()],
    status: TransactionStatus,
) -> TransactionRecord:
    """Snapshot `record`'s paths as they are now and store what changed. The packages are
    those the pre hook named (it gets the whole list); a record without a pre side takes the
    post hook's, whose earlier versions are unknown."""
    extra_packages = targets.packages if isinstance(targets, HookTargets) else ()
    extra_paths = targets.paths if isinstance(targets, HookTargets) else ()
    names = [p["name"] for p in record.packages]
    if record.snapshot_before is None:
        names = list(dict.fromkeys(names + list(extra_packages)))
    after_versions = installed_versions(recorder.config.host_dbpath, names)
    earlier = {p["name"]: p["from"] for p in record.packages}
    packages = tuple(
        {"name": name, "from": earlier.get(name), "to": after_versions[name]} for name in names
    )
    paths = tuple(sorted(set(record.paths) | set(paths_to_snapshot(recorder.state, extra_paths))))
    before = _load(recorder.store, record.snapshot_before)
    after = recorder.store.take(recorder.config.root, paths, previous=before)
    changed = changed_between(before, after) if before is not None else ()
    message = record.message
    if status == TransactionStatus.INTERRUPTED:
        message = "the post-transaction hook never ran (pacman failed or was stopped)"
    health, boot = record.health, record.boot
    moved = any(p["from"] != p["to"] for p in packages)
    if record.origin == Origin.PACMAN and record.snapshot_before is not None and moved:
        # packages changed: the machine is on probation until a later boot passes the
        # health checks (`clp boot-check`); the boot it ran in does not count
        from clp_alpm.bootid import boot_id_or_none  # lazy: a file read, this case only

        health, boot = Health.PROBATION, boot_id_or_none()
    closed = replace(
        record,
        status=status,
        finished=time.time(),
        packages=packages,
        paths=paths,
        changed=changed,
        snapshot_after=after.id,
        message=message,
        health=health,
        boot=boot,
    )
    recorder.state.put_transaction(closed)
    return closed


def changed_between(before: Snapshot, after: Snapshot) -> tuple[str, ...]:
    """Paths whose kind, content, mode or owner differ (a missing record means absent)."""
    changed = []
    for state in after.files:
        then = before.get(state.path)
        if then is None:
            continue  # not watched before: nothing to compare with
        if not state.same_content_as(then):
            changed.append(state.path)
    return tuple(changed)


def _load(store: SnapshotStore, snapshot_id: str | None) -> Snapshot | None:
    return store.load(snapshot_id) if snapshot_id else None


def _latest(recorder: Recorder) -> Snapshot | None:
    """The newest snapshot of a finished transaction: files unchanged since are not reread."""
    for record in reversed(recorder.state.latest_transactions(5)):
        if record.snapshot_after:
            try:
                return recorder.store.load(record.snapshot_after)
            except ClpError:
                return None
    return None


def forget_old_transactions(state: StateDB, keep: int) -> None:
    """Keep the newest `keep` transactions (HistoryLimit); the snapshots of the others go with
    the next prune."""
    records = state.list_transactions()
    if len(records) > keep:
        state.forget_transactions_before(records[-keep].id)


def prune_history(recorder: Recorder, keep: int, most: int = PRUNE_PER_RUN) -> list[str]:
    """What the post hook does for HistoryLimit: forget the oldest transactions beyond `keep`,
    at most `most` of them. Returns the snapshots only they needed, for the caller to delete
    with SnapshotStore.forget once this is committed (their manifests: the contents those
    alone held go with the next writing clp command's garbage collection, which reads the
    whole store)."""
    state = recorder.state
    extra = state.count_transactions() - keep
    if extra <= 0:
        return []
    doomed = state.oldest_transactions(min(extra, most))
    state.forget_transactions_before(doomed[-1].id + 1)
    in_use = state.snapshots_in_use()
    return sorted(
        {
            snapshot
            for record in doomed
            for snapshot in (record.snapshot_before, record.snapshot_after)
            if snapshot and snapshot not in in_use
        }
    )
