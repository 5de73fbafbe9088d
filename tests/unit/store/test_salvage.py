"""Salvaging a damaged state database: rows on readable pages are kept, garbled rows dropped,
a lost header rebuilt, snapshots no record names kept; and every read of a damaged database
raises StateDamaged naming the command that rebuilds it."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from clp_alpm.errors import StateDamaged
from clp_alpm.store.salvage import salvage, write_salvaged
from clp_alpm.store.state import KEPT_SNAPSHOTS_SETTING, StateDB

PAGE = 4096


def filled(state_dir: Path, transactions: int = 400) -> Path:
    """A database holding many transaction records (several pages of them) and a setting."""
    db = StateDB(state_dir)
    db.set_setting("feed.generated", "2026-11-25T12:00:00Z")
    db.close()
    conn = sqlite3.connect(state_dir / "clp.db")
    with conn:
        for number in range(transactions):
            conn.execute(
                "INSERT INTO transactions (status, started, origin, packages, paths, "
                "snapshot_before) VALUES ('done', ?, 'pacman', '[]', ?, ?)",
                (float(number), json.dumps([f"/etc/f{number}" * 20]), f"snap-{number}"),
            )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return state_dir / "clp.db"


def leaf_pages(path: Path, table: str) -> list[int]:
    """Page numbers of the table's b-tree pages other than its root (its leaves, here)."""
    conn = sqlite3.connect(path)
    try:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        root_page = int(root.fetchone()[0])
        count = conn.execute("PRAGMA page_count").fetchone()[0]
    finally:
        conn.close()
    data = path.read_bytes()
    # a table leaf page starts with 0x0d; the root of a big table is an interior page (0x05)
    return [n for n in range(2, count + 1) if n != root_page and data[(n - 1) * PAGE] == 0x0D]


def test_a_torn_leaf_loses_only_its_rows(tmp_path):
    path = filled(tmp_path)
    pages = leaf_pages(path, "transactions")
    assert len(pages) > 3
    data = bytearray(path.read_bytes())
    victim = pages[len(pages) // 2]
    data[(victim - 1) * PAGE : victim * PAGE] = os.urandom(PAGE)
    path.write_bytes(bytes(data))

    found = salvage(path)

    table = found.tables["transactions"]
    assert table.damaged and table.unreadable
    assert 300 < len(table.rows) < 400  # one page of rows gone, the others kept
    assert found.tables["settings"].rows and not found.tables["settings"].damaged


def test_an_overwritten_header_is_read_through_a_rebuilt_one(tmp_path):
    path = filled(tmp_path, transactions=50)
    data = bytearray(path.read_bytes())
    data[:100] = os.urandom(100)
    path.write_bytes(bytes(data))
    with pytest.raises(StateDamaged, match=r"clp recover --rebuild-state"):
        StateDB(tmp_path, readonly=True).list_transactions()

    found = salvage(path)

    assert found.header_rebuilt
    assert len(found.tables["transactions"].rows) == 50


def test_nothing_readable_gives_empty_tables(tmp_path):
    path = tmp_path / "clp.db"
    path.write_bytes(os.urandom(3 * PAGE))
    found = salvage(path)
    assert all(t.missing and not t.rows for t in found.tables.values())


def test_garbled_rows_are_dropped_and_the_rest_written_with_the_snapshots_kept(tmp_path):
    source = tmp_path / "old"
    path = filled(source, transactions=5)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE transactions SET status = 'nonsense' WHERE id = 2")
        conn.execute("UPDATE transactions SET packages = 'not json' WHERE id = 3")
    conn.close()
    found = salvage(path)
    assert found.tables["transactions"].dropped == 2

    target = tmp_path / "new"
    kept = write_salvaged(target, found, ["snap-0", "snap-1", "snap-2", "orphan"])

    # the records of transactions 2 and 3 were garbled: their snapshots stay
    assert kept == ["orphan", "snap-1", "snap-2"]
    db = StateDB(target, readonly=True)
    assert [t.id for t in db.list_transactions()] == [1, 4, 5]
    assert db.get_setting("feed.generated") == "2026-11-25T12:00:00Z"
    assert json.loads(db.get_setting(KEPT_SNAPSHOTS_SETTING) or "[]") == kept
    assert {"orphan", "snap-1", "snap-2", "snap-0"} <= db.snapshots_in_use()
    db.close()


def test_a_row_holding_garbage_is_damage_when_read(tmp_path):
    path = filled(tmp_path, transactions=2)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE transactions SET paths = '{' WHERE id = 1")
    conn.close()
    db = StateDB(tmp_path, readonly=True)
    with pytest.raises(StateDamaged, match="a record holds garbage"):
        db.list_transactions()
    db.close()
