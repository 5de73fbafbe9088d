"""The state database's schema: a database an older clp wrote still reads, and is migrated
once by the first clp that opens it for writing."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from clp_alpm.errors import ClpError
from clp_alpm.store.records import (
    BootRecord,
    Health,
    Origin,
    TransactionRecord,
    TransactionStatus,
)
from clp_alpm.store.state import SCHEMA_VERSION, StateDB

# The tables as clp wrote them at schema 1 (before transactions had a command line).
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS patches (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    version TEXT NOT NULL,
    description TEXT NOT NULL,
    source TEXT,
    sha256 TEXT,
    signer TEXT,
    snapshot_before TEXT,
    snapshot_after TEXT,
    meta TEXT NOT NULL,
    applied_at REAL,
    rolled_back_at REAL,
    failed_at REAL,
    updated_at REAL NOT NULL,
    message TEXT
);
CREATE TABLE IF NOT EXISTS reverts (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    packages TEXT NOT NULL,
    patch TEXT,
    created_at REAL NOT NULL,
    rolled_back_at REAL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    pid INTEGER,
    message TEXT,
    plan TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    origin TEXT NOT NULL,
    packages TEXT NOT NULL,
    paths TEXT NOT NULL,
    changed TEXT NOT NULL DEFAULT '[]',
    snapshot_before TEXT,
    snapshot_after TEXT,
    message TEXT,
    pacman_pid INTEGER
);
CREATE TABLE IF NOT EXISTS journal (
    op_id INTEGER NOT NULL REFERENCES operations(id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    args TEXT NOT NULL,
    data TEXT NOT NULL,
    status TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (op_id, seq)
);
"""


def old_database(state_dir: Path) -> Path:
    """A schema-1 database holding one finished transaction, as a clp of that time left it."""
    state_dir.mkdir(mode=0o700)
    path = state_dir / StateDB.FILENAME
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute("INSERT INTO settings(key, value) VALUES('schema', '1')")
    conn.execute(
        "INSERT INTO transactions(status, started, finished, origin, packages, paths, changed, "
        "snapshot_before, snapshot_after, message, pacman_pid) "
        "VALUES ('done', 1700000000.0, 1700000001.0, 'pacman', ?, ?, ?, 's1', 's2', NULL, 42)",
        (json.dumps([{"name": "demo", "from": "1.0-1", "to": "2.0-1"}]),
         json.dumps(["/etc/demo.conf"]), json.dumps(["/etc/demo.conf"])),
    )  # fmt: skip
    conn.commit()
    conn.close()
    return path


def columns(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute("PRAGMA table_info(transactions)")]
    finally:
        conn.close()


def schema_of(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("SELECT value FROM settings WHERE key='schema'").fetchone()[0])
    finally:
        conn.close()


def test_an_old_database_reads_on_a_read_only_connection_unchanged(tmp_path: Path) -> None:
    path = old_database(tmp_path / "state")
    os.chmod(path, stat.S_IRUSR)  # even a file clp could not write
    state = StateDB(tmp_path / "state", readonly=True)
    try:
        (record,) = state.list_transactions()
    finally:
        state.close()
    assert record.id == 1 and record.command is None
    assert record.packages == ({"name": "demo", "from": "1.0-1", "to": "2.0-1"},)
    assert record.to_dict()["command"] is None
    assert "command" not in columns(path) and schema_of(path) == "1"


def test_opening_an_old_database_for_writing_migrates_it_once(tmp_path: Path) -> None:
    path = old_database(tmp_path / "state")
    state = StateDB(tmp_path / "state")
    try:
        (old,) = state.list_transactions()
        new = TransactionRecord(
            id=0, status=TransactionStatus.OPEN, started=1700000100.0, origin=Origin.PACMAN,
            packages=(), paths=(), command="pacman -Syu",
        )  # fmt: skip
        number = state.add_transaction(new)
    finally:
        state.close()
    assert old.command is None and old.changed == ("/etc/demo.conf",)
    # schema 2 added the command line, schema 3 the boot health (in that order, at the end)
    assert columns(path)[-3:] == ["command", "health", "boot"]
    assert schema_of(path) == str(SCHEMA_VERSION)
    again = StateDB(tmp_path / "state")  # a second open finds nothing left to do
    try:
        assert [r.command for r in again.list_transactions()] == [None, "pacman -Syu"]
        assert number == 2
    finally:
        again.close()


def test_a_new_database_has_the_newest_schema(tmp_path: Path) -> None:
    StateDB(tmp_path / "state").close()
    path = tmp_path / "state" / StateDB.FILENAME
    assert "command" in columns(path) and schema_of(path) == str(SCHEMA_VERSION)


def test_a_database_from_a_newer_clp_is_refused_unchanged(tmp_path: Path) -> None:
    path = old_database(tmp_path / "state")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE settings SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(ClpError, match=rf"written by a newer clp \(schema {SCHEMA_VERSION + 1}\)"):
        StateDB(tmp_path / "state")
    assert "command" not in columns(path)


def boots_table(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute("PRAGMA table_info(boots)")]
    finally:
        conn.close()


def test_an_old_database_gains_the_boot_health_once_migrated(tmp_path: Path) -> None:
    """Schema 3: a transaction's health and boot, and the boots table; an old transaction
    has no health (it was never on probation) and an old database has no boots."""
    path = old_database(tmp_path / "state")
    readonly = StateDB(tmp_path / "state", readonly=True)
    try:
        assert readonly.list_boots() == []  # an old database read as it is: no boots table
        (record,) = readonly.list_transactions()
        assert record.health is None and record.to_dict()["health"] is None
    finally:
        readonly.close()
    assert boots_table(path) == []
    state = StateDB(tmp_path / "state")
    try:
        (record,) = state.list_transactions()
        assert record.health is None and record.boot is None
        stored = state.put_boot(BootRecord("b1", 0, 1700000200.0, probation=True))
        assert stored.seq == 1 and state.get_boot("b1") == stored
        state.put_transaction(replace(record, health=Health.PROBATION, boot="b0"))
        (again,) = state.list_transactions()
        assert again.health == Health.PROBATION and again.boot == "b0"
    finally:
        state.close()
    assert "verdict" in boots_table(path) and schema_of(path) == "3"
