"""Looking at recorded pacman transactions: one by number, its unified diffs, its packages, and
what changed between two of them (`clp diff N M`, as `snapper diff N..M`)."""

from __future__ import annotations

from clp_alpm.errors import UsageError
from clp_alpm.store.records import TransactionRecord
from clp_alpm.store.state import StateDB

TYPE_CHECKING = False  # no typing at run time: see clp_alpm.cli.entry
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from dataclasses import dataclass
    from typing import Any, TypeGuard

    from clp_alpm.store.model import FileState, Snapshot
    from clp_alpm.store.snapshots import SnapshotStore
else:  # the listings start without dataclasses (inspect, ast), see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass

_DIFF_LIMIT = 1 << 20  # larger files are summarised, not diffed


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
    labels = (f"before transaction {record.id}", f"after transaction {record.id}")
    return [
        _file_diff(store, path, before.get(path), after.get(path), labels)
        for path in record.changed
    ]


def parse_range(first: str, second: str | None) -> tuple[str, str | None]:
    """`N M` or snapper's `N..M` as two transaction numbers (the second may be absent)."""
    if second is None and ".." in first:
        start, _, end = first.partition("..")
        if not start or not end:
            raise UsageError(f"'{first}' is not a range of transactions (N..M)")
        return start, end
    return first, second


@dataclass(frozen=True)
class RangeDiff:
    """What changed from the state after one transaction to the state after another."""

    first: int
    second: int
    packages: list[dict[str, Any]]  # {name, from, to}: None where not installed
    files: list[FileDiff]

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.first,
            "to": self.second,
            "packages": [dict(package) for package in self.packages],
            "files": [file_diff.to_dict() for file_diff in self.files],
        }


def diff_between(
    state: StateDB, store: SnapshotStore, first: TransactionRecord, second: TransactionRecord
) -> RangeDiff:
    """The state after `first` against the state after `second`, as snapper compares two
    snapshots: what the transactions after the earlier one, up to the later one, changed in
    package versions and in the files they recorded. With `second` the earlier one, the same
    changes the other way round.

    A file or package counts when a transaction of that range recorded it. Its state after the
    earlier transaction is what that transaction recorded after it ran or, when it did not
    record it, what the first transaction of the range found before it ran; its state after the
    later one is what the last transaction of the range that recorded it left."""
    for record in (first, second):
        if record.snapshot_after is None:
            raise UsageError(
                f"transaction {record.id} is not finished (its post-transaction hook has not run)"
            )
    low, high = sorted((first, second), key=lambda record: record.id)
    span = [
        record
        for record in state.list_transactions()
        if low.id < record.id <= high.id and record.snapshot_after is not None
    ]
    reverse = first.id > second.id  # the later state first: the same changes, other way round
    labels = (f"after transaction {first.id}", f"after transaction {second.id}")
    files = _file_changes(store, low.snapshot_after or "", span, labels, reverse)
    packages = _package_changes(low, span)
    if reverse:
        packages = [{"name": p["name"], "from": p["to"], "to": p["from"]} for p in packages]
    return RangeDiff(first.id, second.id, packages, files)


def _package_changes(low: TransactionRecord, span: list[TransactionRecord]) -> list[dict[str, Any]]:
    then: dict[str, str | None] = {p["name"]: p["to"] for p in low.packages}
    now: dict[str, str | None] = {}
    for record in span:
        for package in record.packages:
            name = package["name"]
            if name not in then and record.snapshot_before is not None:  # "from" was read
                then[name] = package["from"]
            now[name] = package["to"]
    return [
        {"name": name, "from": then[name], "to": now[name]}
        for name in sorted(now)
        if name in then and then[name] != now[name]
    ]


def _file_changes(
    store: SnapshotStore,
    start_id: str,
    span: list[TransactionRecord],
    labels: tuple[str, str],
    reverse: bool = False,
) -> list[FileDiff]:
    loaded: dict[str, Snapshot] = {}

    def snapshot(snapshot_id: str) -> Snapshot:
        if snapshot_id not in loaded:
            loaded[snapshot_id] = store.load(snapshot_id)
        return loaded[snapshot_id]

    start = snapshot(start_id)
    then: dict[str, FileState] = {}
    now: dict[str, FileState] = {}
    for record in span:
        if record.snapshot_after is None:
            continue  # still open: it left no state yet
        before = snapshot(record.snapshot_before) if record.snapshot_before else None
        for state in snapshot(record.snapshot_after).files:
            if state.path not in then:
                earlier = start.get_clean(state.path)
                if earlier is None and before is not None:
                    earlier = before.get_clean(state.path)
                if earlier is not None:
                    then[state.path] = earlier
            now[state.path] = state
    changes = []
    for path in sorted(now):
        old, new = then.get(path), now[path]
        if old is None or old.same_content_as(new):
            continue  # not recorded before the range: nothing to compare with
        if reverse:
            old, new = new, old
        changes.append(_file_diff(store, path, old, new, labels))
    return changes


def _file_diff(
    store: SnapshotStore,
    path: str,
    then: FileState | None,
    now: FileState | None,
    labels: tuple[str, str],
) -> FileDiff:
    import difflib

    from clp_alpm.store.model import describe_change  # not for `clp transactions`

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
        fromfiledate=labels[0],
        tofiledate=labels[1],
    )
    return FileDiff(path, summary, "".join(_with_newlines(lines)))


def _is_file(state: FileState | None) -> TypeGuard[FileState]:
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
