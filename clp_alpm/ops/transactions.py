"""Looking at recorded pacman transactions: one by number, its unified diffs, its packages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from clp_alpm.errors import UsageError
from clp_alpm.store.model import FileState, describe_change
from clp_alpm.store.records import TransactionRecord
from clp_alpm.store.snapshots import SnapshotStore
from clp_alpm.store.state import StateDB

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
    return [
        _file_diff(store, path, before.get(path), after.get(path), record.id)
        for path in record.changed
    ]


def _file_diff(
    store: SnapshotStore, path: str, then: FileState | None, now: FileState | None, number: int
) -> FileDiff:
    import difflib

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
