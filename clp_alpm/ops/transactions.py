"""pacman transactions as the hooks record them: versions and snapshots before and after.

The pre-transaction hook snapshots the configuration files the transaction names (its `etc/*`
targets) plus every file an applied patch manages, and the `.pacnew`/`.pacsave` files pacman
may write beside them; the post-transaction hook snapshots the same paths again. The cost
follows what the transaction touches, not the size of /etc. Undoing one is a plan like any
other: packages back through `pacman -U` of cached files, then the files restored.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from clp_alpm.config import Config
from clp_alpm.errors import ClpError, ConflictError, UsageError
from clp_alpm.store.snapshots import FileState, Snapshot, SnapshotStore
from clp_alpm.store.state import StateDB, TransactionRecord
from clp_alpm.system.localdb import installed_versions

TYPE_CHECKING = False  # as in state.py: no typing import at run time

if TYPE_CHECKING:
    from typing import Any

    from clp_alpm.ops.patches import Session
    from clp_alpm.store.journal import Step, StepRun

# Transactions kept (with their snapshots); older ones are forgotten by clp's garbage collection.
TRANSACTION_HISTORY = 100
# Files pacman writes beside a configuration file it must not overwrite or is removing.
PACMAN_SIDE_FILES = (".pacnew", ".pacsave")
_DIFF_LIMIT = 1 << 20  # larger files are summarised, not diffed


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
        record.id: list(record.meta.get("files", []))
        for record in state.list_patches()
        if record.state == "applied"
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
    recorder: Recorder, targets: HookTargets, origin: str, pacman_pid: int
) -> TransactionRecord:
    """Before a transaction: close any transaction whose post hook never ran, then record the
    versions and snapshot the files this one may change."""
    for stale in recorder.state.open_transactions():
        close(recorder, stale, (), "interrupted")
    packages = sorted(targets.packages)
    before = installed_versions(recorder.config.host_dbpath, packages)
    paths = paths_to_snapshot(recorder.state, targets.paths)
    snapshot = recorder.store.take(recorder.config.root, paths, previous=_latest(recorder))
    record = TransactionRecord(
        id=0,
        status="open",
        started=time.time(),
        origin=origin,
        packages=tuple({"name": name, "from": before[name], "to": None} for name in packages),
        paths=tuple(paths),
        snapshot_before=snapshot.id,
        pacman_pid=pacman_pid,
    )
    return replace(record, id=recorder.state.add_transaction(record))


def finish(
    recorder: Recorder, targets: HookTargets, origin: str, pacman_pid: int
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
            close(recorder, record, (), "interrupted")
    if mine is not None:
        return close(recorder, mine, targets, "done")
    # No pre-transaction record (clp was installed by this very transaction, or the pre hook
    # failed): the versions after and a snapshot are still worth keeping, never undone.
    record = TransactionRecord(
        id=0,
        status="open",
        started=time.time(),
        origin=origin,
        packages=tuple({"name": n, "from": None, "to": None} for n in sorted(targets.packages)),
        paths=(),
        message="no record from before the transaction (the pre-transaction hook did not run)",
        pacman_pid=pacman_pid,
    )
    record = replace(record, id=recorder.state.add_transaction(record))
    return close(recorder, record, targets, "done")


def _opened_by(record: TransactionRecord, targets: HookTargets, pacman_pid: int) -> bool:
    names = {package["name"] for package in record.packages}
    return record.pacman_pid == pacman_pid and names == set(targets.packages)


def close(
    recorder: Recorder, record: TransactionRecord, targets: HookTargets | tuple, status: str
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
    if status == "interrupted":
        message = "the post-transaction hook never ran (pacman failed or was stopped)"
    closed = replace(
        record,
        status=status,
        finished=time.time(),
        packages=packages,
        paths=paths,
        changed=changed,
        snapshot_after=after.id,
        message=message,
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
    for record in reversed(recorder.state.list_transactions()[-5:]):
        if record.snapshot_after:
            try:
                return recorder.store.load(record.snapshot_after)
            except ClpError:
                return None
    return None


def forget_old_transactions(state: StateDB, keep: int = TRANSACTION_HISTORY) -> None:
    """Keep the newest `keep` transactions; their snapshots go with the next prune."""
    records = state.list_transactions()
    if len(records) > keep:
        state.forget_transactions_before(records[-keep].id)


# -- what a transaction means for patches -----------------------------------------------


@dataclass(frozen=True)
class Reapply:
    """A patch whose Install script must run again, why, and the declared files replaced."""

    patch: str
    reason: str
    replaced: list[str]


def patches_to_reapply(state: StateDB, record: TransactionRecord) -> list[Reapply]:
    """Applied patches whose files the transaction replaced (or wrote a .pacnew beside), and
    patches whose <Trigger> package it installed or upgraded."""
    changed = set(record.changed)
    present = {p["name"]: p for p in record.packages if p["to"] is not None}
    found = []
    for patch in state.list_patches():
        if patch.state != "applied":
            continue
        files = list(patch.meta.get("files", []))
        hit = [path for path in files if path in changed]
        hit += [path + ".pacnew" for path in files if path + ".pacnew" in changed]
        triggers = [name for name in patch.meta.get("triggers", []) if name in present]
        replaced = [path for path in files if path in changed]
        if hit:
            reason = f"transaction {record.id} replaced {', '.join(hit)}"
            found.append(Reapply(patch.id, reason, replaced))
        elif triggers:
            moves = ", ".join(_move(present[name]) for name in triggers)
            found.append(Reapply(patch.id, f"transaction {record.id} {moves}", []))
    return found


def _move(package: dict[str, Any]) -> str:
    if package["from"] is None:
        return f"installed {package['name']} {package['to']}"
    return f"upgraded {package['name']} {package['from']} -> {package['to']}"


# -- looking at one ------------------------------------------------------------------------


def get(state: StateDB, transaction_id: str | int) -> TransactionRecord:
    try:
        number = int(str(transaction_id).lstrip("#"))
    except ValueError:
        raise UsageError(f"'{transaction_id}' is not a transaction number") from None
    record = state.get_transaction(number)
    if record is None:
        raise UsageError(f"there is no transaction {number} (see 'clp transactions')")
    return record


@dataclass(frozen=True)
class FileDiff:
    path: str
    summary: str  # one line: created, deleted, mode changed, ...
    diff: str  # unified diff text ("" when the content is not text or did not change)

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "summary": self.summary, "diff": self.diff}


def diff(store: SnapshotStore, record: TransactionRecord) -> list[FileDiff]:
    """The files the transaction changed, as unified diffs from before to after."""
    if record.snapshot_before is None or record.snapshot_after is None:
        raise UsageError(f"transaction {record.id} has no snapshot from before it to compare with")
    before, after = store.load(record.snapshot_before), store.load(record.snapshot_after)
    return [
        _file_diff(store, path, before.get(path), after.get(path), record.id)
        for path in record.changed
    ]


def _file_diff(
    store: SnapshotStore, path: str, then: FileState | None, now: FileState | None, number: int
) -> FileDiff:
    import difflib

    from clp_alpm.ops.patches import describe_change

    summary = describe_change(then, now) if now is not None else "not recorded"
    old, new = _text(store, then), _text(store, now)
    if old is None or new is None or old == new:
        if _is_file(then) and _is_file(now) and then.digest != now.digest:
            summary += " (binary or large: no diff)"
        return FileDiff(path, summary, "")
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a{path}" if _is_file(then) else "/dev/null",
        tofile=f"b{path}" if _is_file(now) else "/dev/null",
        fromfiledate=f"before transaction {number}",
        tofiledate=f"after transaction {number}",
    )
    return FileDiff(path, summary, "".join(_with_newlines(lines)))


def _is_file(state: FileState | None) -> bool:
    return state is not None and state.kind == "file"


def _text(store: SnapshotStore, state: FileState | None) -> str | None:
    """A regular file's content as text; "" for an absent file; None when not text."""
    if state is None or state.kind == "absent":
        return ""
    if state.kind != "file" or state.digest is None or (state.size or 0) > _DIFF_LIMIT:
        return None
    data = store.read_content(state)
    if b"\0" in data:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def _with_newlines(lines: Iterable[str]) -> Iterable[str]:
    for line in lines:
        yield line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"


# -- undo ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UndoPlan:
    record: TransactionRecord
    steps: tuple[Step, ...]
    moves: tuple[str, ...]  # "foo 2.0-1 -> 1.0-1", "bar 1.0-1 -> (removed)"
    files: tuple[str, ...]
    overwritten: tuple[str, ...]  # changed since the transaction, overwritten because of --force
    left_to_patches: tuple[str, ...] = ()  # files applied patches manage (re-applied instead)

    def to_dict(self) -> dict[str, Any]:
        return {
            "transaction": self.record.id,
            "packages": list(self.moves),
            "files": list(self.files),
            "left_to_patches": list(self.left_to_patches),
            "steps": [step.description for step in self.steps],
            "overwritten": list(self.overwritten),
        }


def plan_undo(session: Session, transaction_id: str | int, force: bool = False) -> UndoPlan:
    """Packages back to the versions before the transaction (from the cache or an archive, as
    a revert takes them) and its configuration files restored from the snapshot before it."""
    from clp_alpm.ops.revert import refuse_if_pacman_runs, version_file
    from clp_alpm.store.journal import Step

    record = get(session.state, transaction_id)
    _check_undoable(record)
    refuse_if_pacman_runs(session.pacman())
    later = [r for r in session.state.list_transactions() if r.id > record.id]
    _check_not_changed_later(record, later)
    _check_versions_unchanged(session, record)
    # Files applied patches manage are left to the patches: when pacman puts the earlier
    # version back, the hooks re-apply them on it (restoring the snapshot and re-applying
    # too would patch twice).
    managed = {path for files in managed_files(session.state).values() for path in files}
    restore = tuple(path for path in record.changed if path not in managed)
    overwritten = _files_changed_since(session, record, restore)
    if overwritten and not force:
        raise ConflictError(
            f"undo of transaction {record.id} stopped: changed since: {'; '.join(overwritten)}. "
            f"Look at them, then run 'clp undo-transaction --force {record.id}' to overwrite them"
        )
    back = [p for p in record.packages if p["from"] is not None and p["from"] != p["to"]]
    new = [p for p in record.packages if p["from"] is None and p["to"] is not None]
    steps: list[Step] = [
        Step("restore-point", {"files": list(record.changed)}, "snapshot the files as now")
    ]
    if back:
        files = {p["name"]: str(version_file(session, p["name"], p["from"])) for p in back}
        present = [p for p in back if p["to"] is not None]
        steps.append(
            Step(
                "pacman-upgrade",
                {
                    "files": list(files.values()),
                    "previous": {p["name"]: p["to"] for p in back},
                    "targets": {p["name"]: p["from"] for p in back},
                    "previous_files": {
                        p["name"]: str(version_file(session, p["name"], p["to"])) for p in present
                    },
                },
                "pacman -U: " + ", ".join(_describe_move(p) for p in back),
            )
        )
    if new:
        steps.append(
            Step(
                "pacman-remove",
                {
                    "names": [p["name"] for p in new],
                    "previous_files": {
                        p["name"]: str(version_file(session, p["name"], p["to"])) for p in new
                    },
                },
                "pacman -R: " + ", ".join(p["name"] for p in new),
            )
        )
    if restore:
        steps.append(
            Step(
                "restore-files",
                {"snapshot": record.snapshot_before, "paths": list(restore)},
                f"restore {len(restore)} file(s) as they were before the transaction",
            )
        )
    steps.append(
        Step(
            "record-transaction",
            {"id": record.id, "status": "undone"},
            f"record transaction {record.id} as undone",
        )
    )
    moves = tuple(_describe_move(p) for p in [*back, *new])
    left = tuple(path for path in record.changed if path in managed)
    return UndoPlan(record, tuple(steps), moves, restore, tuple(overwritten), left)


def _describe_move(package: dict[str, Any]) -> str:
    now = package["to"] or "(not installed)"
    then = package["from"] or "(removed)"
    return f"{package['name']} {now} -> {then}"


def _check_undoable(record: TransactionRecord) -> None:
    if record.status == "undone":
        raise UsageError(f"transaction {record.id} was already undone")
    if record.origin == "clp":
        raise UsageError(
            f"transaction {record.id} was made by clp itself (a revert, an undo, a rollback): "
            "undo that instead ('clp rollback R<N>' for a revert, see 'clp list')"
        )
    if record.status == "open":
        raise UsageError(f"transaction {record.id} is still running (or its pacman was killed)")
    if record.snapshot_before is None:
        raise UsageError(
            f"transaction {record.id} has no record from before it "
            "(the pre-transaction hook did not run): clp cannot undo it"
        )


def _moved(record: TransactionRecord) -> set[str]:
    return {p["name"] for p in record.packages if p["from"] != p["to"]}


def _check_not_changed_later(record: TransactionRecord, later: list[TransactionRecord]) -> None:
    """A later pacman transaction that moved the same packages must be undone first: else the
    undo would act on its result. clp's own transactions (reverts, their rollbacks, undos)
    come and go with clp's records: for them the installed versions decide (a revert still
    in force leaves another version installed, and the undo refuses for that)."""
    for other in later:
        if other.status == "undone" or other.origin == "clp":
            continue
        again = sorted(_moved(record) & _moved(other))
        if again:
            raise UsageError(
                f"{', '.join(again)} changed again in transaction {other.id}: undo that one "
                f"first (see 'clp transactions')"
            )


def _check_versions_unchanged(session: Session, record: TransactionRecord) -> None:
    names = [p["name"] for p in record.packages]
    installed = installed_versions(session.config.host_dbpath, names)
    for package in record.packages:
        if installed[package["name"]] != package["to"]:
            now = installed[package["name"]] or "not installed"
            left = package["to"] or "removed"
            raise UsageError(
                f"{package['name']} is {now} now, not {left} as transaction {record.id} left "
                "it: undo the later transactions first (see 'clp transactions')"
            )


def _files_changed_since(
    session: Session, record: TransactionRecord, paths: Sequence[str]
) -> list[str]:
    from clp_alpm.ops.patches import changes_since

    after = _load(session.store, record.snapshot_after)
    if after is None:
        return []
    return changes_since(session, after.only(p for p in paths if after.get(p)))


def undo(session: Session, plan: UndoPlan) -> TransactionRecord:
    target = str(plan.record.id)
    session.log.write("CLP", f"undo of transaction {target}: {len(plan.steps)} step(s)")
    session.journal().commit("undo-transaction", target, list(plan.steps))
    result = session.state.get_transaction(plan.record.id)
    assert result is not None
    return result


class RecordTransactionStep:
    def __init__(self, session: Session) -> None:
        self.session = session

    def do(self, run: StepRun) -> None:
        state = self.session.state
        record = get(state, run.args["id"])
        run.save(previous=record.status, message=record.message)
        stamp = time.strftime("%Y-%m-%d %H:%M")
        state.put_transaction(
            replace(record, status=run.args["status"], message=f"undone by clp on {stamp}")
        )

    def undo(self, run: StepRun) -> None:
        if "previous" in run.data:
            record = get(self.session.state, run.args["id"])
            self.session.state.put_transaction(
                replace(record, status=run.data["previous"], message=run.data.get("message"))
            )


def handlers(session: Session) -> dict[str, Any]:
    return {"record-transaction": RecordTransactionStep(session)}


def describe_packages(packages: Sequence[dict[str, Any]]) -> list[str]:
    """pacman-style lines: 'foo 1.0-1 -> 2.0-1', 'bar (installed) 1.0-1', 'baz 1.0-1 (removed)'."""
    lines = []
    for package in packages:
        old, new = package["from"], package["to"]
        if old is None and new is None:
            continue
        if old is None:
            lines.append(f"{package['name']} {new} (installed)")
        elif new is None:
            lines.append(f"{package['name']} {old} (removed)")
        elif old == new:
            lines.append(f"{package['name']} {new} (reinstalled)")
        else:
            lines.append(f"{package['name']} {old} -> {new}")
    return lines
