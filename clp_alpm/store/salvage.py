"""Salvaging a damaged state database: every row SQLite can still read, into a new database.

A torn page, garbage over a page or a truncated file makes SQLite fail ("database disk image
is malformed") on every query that reaches the damaged page, not on the others. Each table is
read whole when it can be, else by ranges of rowids, halved around the damage down to single
rows: what lies on the readable pages is kept. A file whose 100-byte header was overwritten
("file is not a database") is read through a copy with a rebuilt header. Every row read is
checked as the records are (a row that reads but holds garbage is dropped), then written to a
new database with the newest schema. Nothing here deletes a snapshot: those the salvaged
records no longer name are listed in a setting that keeps them (KEPT_SNAPSHOTS_SETTING).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clp_alpm.plainjson import dumps, loads
from clp_alpm.store.records import EntryStatus, OperationStatus
from clp_alpm.store.state import (
    KEPT_SNAPSHOTS_SETTING,
    StateDB,
    _patch_from_row,
    _revert_from_row,
    _transaction_from_row,
)

TABLES = ("settings", "patches", "reverts", "operations", "transactions", "journal")
_HEADER_MAGIC = b"SQLite format 3\x00"
_PAGE_SIZES = (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512)
_RANGE_CEILING = 1 << 16  # rowids searched when SQLite cannot tell the largest one


@dataclass
class TableSalvage:
    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[tuple[int, int]] = field(default_factory=list)  # rowid ranges SQLite refused
    dropped: int = 0  # rows read, but holding values no record can have
    missing: bool = False  # the table itself could not be found

    @property
    def damaged(self) -> bool:
        return bool(self.unreadable or self.dropped or self.missing)

    def describe(self) -> str:
        words = [f"{len(self.rows)} row{'' if len(self.rows) == 1 else 's'} kept"]
        if self.missing:
            words.append("the table could not be read")
        if self.unreadable:
            spans = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in self.unreadable[:4])
            more = " ..." if len(self.unreadable) > 4 else ""
            words.append(f"rowids {spans}{more} unreadable")
        if self.dropped:
            words.append(f"{self.dropped} garbled row{'' if self.dropped == 1 else 's'} dropped")
        return f"{self.name}: " + ", ".join(words)

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.name, "kept": len(self.rows), "dropped": self.dropped,
                "unreadable": [list(span) for span in self.unreadable],
                "missing": self.missing}  # fmt: skip


@dataclass
class Salvage:
    tables: dict[str, TableSalvage]
    header_rebuilt: bool = False

    @property
    def damaged(self) -> bool:
        return self.header_rebuilt or any(t.damaged for t in self.tables.values())


def salvage(path: Path) -> Salvage:
    """Every row of clp's tables that can be read from the database at `path` (read only; a
    `-wal` beside it, under the same name, is read too)."""
    try:
        return _salvage_from(path, header_rebuilt=False)
    except _NotADatabase:
        pass
    with tempfile.TemporaryDirectory(prefix="clp-salvage-", dir=path.parent) as work:
        for page_size in _PAGE_SIZES:
            copy = Path(work) / f"header-{page_size}.db"
            if not _copy_with_new_header(path, copy, page_size):
                break
            try:
                return _salvage_from(copy, header_rebuilt=True)
            except _NotADatabase:
                continue
    return Salvage({name: TableSalvage(name, missing=True) for name in TABLES}, True)


class _NotADatabase(Exception):
    pass


def _salvage_from(path: Path, header_rebuilt: bool) -> Salvage:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        try:
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as err:
            if header_rebuilt or "not a database" in str(err) or "malformed" in str(err):
                raise _NotADatabase() from None
            raise
        tables = {}
        for name in TABLES:
            found = TableSalvage(name, missing=name not in names)
            if not found.missing:
                _read_table(conn, found)
            _check_rows(found)
            tables[name] = found
        return Salvage(tables, header_rebuilt)
    finally:
        conn.close()


def _read_table(conn: sqlite3.Connection, table: TableSalvage) -> None:
    query = f"SELECT rowid AS clp_rowid, * FROM {table.name}"  # noqa: S608 - a fixed name
    try:
        table.rows = [dict(row) for row in conn.execute(query)]
        return
    except sqlite3.DatabaseError:
        pass
    try:
        top = int(conn.execute(f"SELECT max(rowid) FROM {table.name}").fetchone()[0] or 0)  # noqa: S608
    except sqlite3.DatabaseError:
        top = _RANGE_CEILING
    rows: dict[int, dict[str, Any]] = {}
    bad: list[tuple[int, int]] = []
    pending = [(1, max(top, 1))]
    while pending:
        low, high = pending.pop()
        try:
            found = conn.execute(f"{query} WHERE rowid BETWEEN ? AND ?", (low, high)).fetchall()
        except sqlite3.DatabaseError:
            if low == high:
                bad.append((low, high))
            else:
                middle = (low + high) // 2
                pending += [(middle + 1, high), (low, middle)]
            continue
        rows.update({int(row["clp_rowid"]): dict(row) for row in found})
    table.rows = [rows[rowid] for rowid in sorted(rows)]
    table.unreadable = _merge(sorted(bad))


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in spans:
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


# -- checking what was read ------------------------------------------------------------------


def _settings_row(row: dict[str, Any]) -> None:
    if not isinstance(row["key"], str) or not isinstance(row["value"], str):
        raise ValueError("not text")


def _operation_row(row: dict[str, Any]) -> None:
    OperationStatus(row["status"])
    loads(row["plan"])
    if not isinstance(row["id"], int) or not isinstance(row["kind"], str):
        raise ValueError("bad operation")


def _journal_row(row: dict[str, Any]) -> None:
    EntryStatus(row["status"])
    loads(row["args"]), loads(row["data"])
    if not isinstance(row["op_id"], int) or not isinstance(row["seq"], int):
        raise ValueError("bad journal entry")


def _record_row(convert: Callable[[Any], object]) -> Callable[[dict[str, Any]], None]:
    def check(row: dict[str, Any]) -> None:
        convert({k: v for k, v in row.items() if k != "clp_rowid"})

    return check


_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "settings": _settings_row,
    "patches": _record_row(_patch_from_row),
    "reverts": _record_row(_revert_from_row),
    "operations": _operation_row,
    "transactions": _record_row(_transaction_from_row),
    "journal": _journal_row,
}


def _check_rows(table: TableSalvage) -> None:
    kept = []
    for row in table.rows:
        try:
            _CHECKS[table.name](row)
        except Exception:  # noqa: BLE001 - any failure to read a row as a record drops it
            table.dropped += 1
            continue
        kept.append(row)
    table.rows = kept


# -- a header rebuilt ------------------------------------------------------------------------


def _copy_with_new_header(source: Path, target: Path, page_size: int) -> bool:
    """Copy `source` to `target` with SQLite's 100-byte header written anew for `page_size`
    (the rest of page 1, the schema, is left as it is). False when the file is too small."""
    size = source.stat().st_size
    if size < page_size:
        return False
    shutil.copyfile(source, target)
    pages = size // page_size
    header = bytearray(100)
    header[0:16] = _HEADER_MAGIC
    struct.pack_into(">H", header, 16, 1 if page_size == 65536 else page_size)
    header[18], header[19] = 1, 1  # legacy journal: the copy has no -wal of its own
    header[20], header[21], header[22], header[23] = 0, 64, 32, 32
    struct.pack_into(">I", header, 24, 1)  # change counter
    struct.pack_into(">I", header, 28, pages)
    struct.pack_into(">I", header, 40, 1)  # schema cookie
    struct.pack_into(">I", header, 44, 4)  # schema format
    struct.pack_into(">I", header, 56, 1)  # UTF-8
    struct.pack_into(">I", header, 92, 1)  # version-valid-for = change counter
    struct.pack_into(">I", header, 96, sqlite3.sqlite_version_info[0] * 1000000)
    with open(target, "r+b") as handle:
        handle.write(header)
    return True


# -- writing the new database ----------------------------------------------------------------


def write_salvaged(state_dir: Path, found: Salvage, snapshots: list[str]) -> list[str]:
    """A new clp.db in `state_dir` (which must have none) holding the rows `found`; every
    snapshot id in `snapshots` that no salvaged record names is kept by a setting. Returns
    those kept ids."""
    StateDB(state_dir).close()  # the newest schema, its version recorded
    path = state_dir / StateDB.FILENAME
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for name in TABLES:
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({name})")]
            for row in found.tables[name].rows:
                if name == "settings" and row["key"] in ("schema", KEPT_SNAPSHOTS_SETTING):
                    continue
                values = {c: row[c] for c in columns if c in row}
                conn.execute(
                    f"INSERT OR IGNORE INTO {name} ({', '.join(values)}) "  # noqa: S608
                    f"VALUES ({', '.join('?' for _ in values)})",
                    tuple(values.values()),
                )
        named = _named_snapshots(found)
        kept = sorted(set(snapshots) - named)
        before = [r for r in found.tables["settings"].rows if r["key"] == KEPT_SNAPSHOTS_SETTING]
        if before:
            with contextlib.suppress(ValueError, TypeError):
                kept = sorted(set(kept) | {str(s) for s in loads(before[0]["value"])})
        if kept:
            conn.execute(
                "INSERT INTO settings(key, value) VALUES (?, ?)",
                (KEPT_SNAPSHOTS_SETTING, dumps(kept)),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()
    return kept


def _named_snapshots(found: Salvage) -> set[str]:
    return {
        str(row[column])
        for name in ("patches", "transactions")
        for row in found.tables[name].rows
        for column in ("snapshot_before", "snapshot_after")
        if row.get(column)
    }
