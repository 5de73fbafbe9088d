"""Patch records in the state database: typed in, typed out, and older rows still read."""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from clp_alpm.errors import ClpError
from clp_alpm.formats.meta import (
    HealthCheck,
    PatchMeta,
    VersionConstraint,
)
from clp_alpm.store.records import PatchOrigin, PatchRecord, PatchState
from clp_alpm.store.state import StateDB
from tests.kits import pythons
from tests.kits.patchkit import FULL_META
from tests.kits.paths import REPO


@pytest.fixture
def state(tmp_path: Path):
    db = StateDB(tmp_path / "state")
    yield db
    db.close()


def applied(meta: PatchMeta, **scripts: str) -> PatchRecord:
    return PatchRecord(
        id=meta.name,
        state=PatchState.APPLIED,
        version=meta.version,
        description=meta.description,
        meta=meta,
        updated_at=1_700_000_000.5,
        applied_at=1_700_000_000.5,
        source="/root/CLPR261125.clp",
        sha256="ab" * 32,
        snapshot_before="s1",
        snapshot_after="s2",
        **scripts,
    )


def test_a_record_reads_back_equal_with_its_typed_metadata(state: StateDB) -> None:
    record = applied(FULL_META, install_script="install.ps1", remove_script="uninstall.ps1")
    state.put_patch(record)
    back = state.get_patch("CLPR261125")
    assert back == record
    assert back is not None and back.state is PatchState.APPLIED
    assert back.meta.health_check == HealthCheck("systemctl is-active sshd.service", 45)
    assert back.meta.applies_to[0].constraint == VersionConstraint("<", "9.9p2-1")
    assert (back.install_script, back.remove_script) == ("install.ps1", "uninstall.ps1")


def test_the_stored_row_keeps_the_format_older_clp_versions_wrote(
    state: StateDB, tmp_path: Path
) -> None:
    state.put_patch(applied(FULL_META, install_script="install.ps1", remove_script="x.ps1"))
    conn = sqlite3.connect(tmp_path / "state" / StateDB.FILENAME)
    state_value, meta_json = conn.execute("SELECT state, meta FROM patches").fetchone()
    conn.close()
    stored = json.loads(meta_json)
    assert state_value == "applied"
    assert stored["install_script"] == "install.ps1" and stored["remove_script"] == "x.ps1"
    assert stored["files"] == ["/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/50-clp.conf"]
    assert stored["health_check"] == {"command": "systemctl is-active sshd.service", "timeout": 45}
    assert stored["applies_to"][0] == {"name": "openssh", "op": "<", "version": "9.9p2-1"}


def test_a_row_with_only_the_required_metadata_reads_with_defaults(
    state: StateDB, tmp_path: Path
) -> None:
    """An early clp stored the four required keys and no script names."""
    state.put_patch(applied(PatchMeta("old", "1", "any", "legacy patch", legacy=True)))
    conn = sqlite3.connect(tmp_path / "state" / StateDB.FILENAME)
    minimal = {"name": "old", "version": "1", "architecture": "any", "description": "legacy"}
    with conn:
        conn.execute("UPDATE patches SET meta = ?", (json.dumps(minimal),))
    conn.close()
    back = state.get_patch("old")
    assert back is not None
    assert back.meta == PatchMeta("old", "1", "any", "legacy")
    assert (back.install_script, back.remove_script) == ("Install-Script.ps1", "Remove-Script.ps1")
    assert back.to_dict()["files"] == [] and back.to_dict()["severity"] is None


def test_the_stored_form_round_trips_through_json() -> None:
    record = applied(FULL_META)
    assert PatchRecord.from_stored(json.loads(json.dumps(record.stored()))) == record


def test_an_adopted_record_keeps_its_origin_and_directory_inside_meta(
    state: StateDB, tmp_path: Path
) -> None:
    """origin and patch_dir travel in the `meta` JSON: no new column, older rows read as clp's."""
    meta = PatchMeta("CLPR2251124", "1", "any", "Example CLP Patch")
    record = PatchRecord(
        id=meta.name, state=PatchState.APPLIED, version="1", description=meta.description,
        meta=meta, updated_at=1.0, applied_at=1.0, origin=PatchOrigin.CLPCTL,
        patch_dir="/opt/CLP/CLPR2251124.clp", install_script="Install-Patch.ps1",
        remove_script="Remove-Patch.ps1",
    )  # fmt: skip
    state.put_patch(record)
    assert state.get_patch(meta.name) == record
    conn = sqlite3.connect(tmp_path / "state" / StateDB.FILENAME)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(patches)")]
    (meta_json,) = conn.execute("SELECT meta FROM patches").fetchone()
    conn.close()
    assert "origin" not in columns and "patch_dir" not in columns
    stored = json.loads(meta_json)
    assert (stored["origin"], stored["patch_dir"]) == ("clpctl", "/opt/CLP/CLPR2251124.clp")
    assert record.to_dict()["origin"] == "clpctl"
    assert applied(FULL_META).to_dict()["origin"] == "clp"


def test_writes_inside_a_transaction_commit_together(tmp_path: Path) -> None:
    """What a pacman hook does: its writes in one commit, seen by others only once it ends."""
    state = StateDB(tmp_path)
    other = StateDB(tmp_path, readonly=True)
    with state.transaction():
        state.set_setting("a", "1")
        state.set_setting("b", "2")
        assert other.get_setting("a") is None
    assert (other.get_setting("a"), other.get_setting("b")) == ("1", "2")


def test_a_failed_part_of_a_transaction_is_undone_alone(tmp_path: Path) -> None:
    state = StateDB(tmp_path)
    with state.transaction():
        state.set_setting("kept", "1")
        with pytest.raises(RuntimeError), state.transaction():
            state.set_setting("undone", "1")
            raise RuntimeError("a part fails")
        state.set_setting("after", "1")
    assert [state.get_setting(key) for key in ("kept", "undone", "after")] == ["1", None, "1"]


def test_a_failed_transaction_writes_nothing_of_its_parts(tmp_path: Path) -> None:
    state = StateDB(tmp_path)
    with pytest.raises(RuntimeError), state.transaction():
        with state.transaction():
            state.set_setting("part", "1")
        raise RuntimeError("the whole fails")
    assert state.get_setting("part") is None
    state.set_setting("next", "1")  # the connection is usable again, outside any transaction
    assert StateDB(tmp_path, readonly=True).get_setting("next") == "1"


def test_a_current_database_is_opened_without_making_its_tables_again(tmp_path: Path) -> None:
    StateDB(tmp_path).close()
    conn = sqlite3.connect(tmp_path / StateDB.FILENAME)
    conn.execute("DROP TABLE boots")  # were the schema run again, it would come back
    conn.commit()
    conn.close()
    StateDB(tmp_path).close()
    conn = sqlite3.connect(tmp_path / StateDB.FILENAME)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "boots" not in tables and "transactions" in tables


def _query_plans(path: Path, queries: list[tuple[str, tuple[object, ...]]]) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [" ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {q}", args))
                for q, args in queries]  # fmt: skip
    finally:
        conn.close()


def test_the_open_transactions_are_found_without_reading_every_record(tmp_path: Path) -> None:
    """The hooks ask for the open transactions and count them on every pacman transaction:
    an index answers, whatever HistoryLimit keeps."""
    StateDB(tmp_path).close()
    plans = _query_plans(tmp_path / StateDB.FILENAME, [
        ("SELECT * FROM transactions WHERE status = ? ORDER BY id", ("open",)),
        ("SELECT COUNT(*) FROM transactions", ()),
    ])  # fmt: skip
    assert all("transactions_by_status" in plan for plan in plans), plans
    assert not any("TEMP B-TREE" in plan for plan in plans), plans  # no sorting either


def test_a_database_without_the_index_gets_it_keeping_its_schema_version(
    tmp_path: Path,
) -> None:
    """As a clp before the index left it: the first writing open adds the index, and the
    schema version stays, so that the older clp still reads the file."""
    StateDB(tmp_path).close()
    _change(tmp_path, "DROP INDEX transactions_by_status")
    StateDB(tmp_path, readonly=True).close()
    assert _made_indexes(tmp_path) == ([], ("3",))
    state = StateDB(tmp_path)
    assert state.open_transactions() == []
    state.close()
    assert _made_indexes(tmp_path) == ([("transactions_by_status",)], ("3",))


def _change(state_dir: Path, *statements: str) -> None:
    """The database as another program (an older clp, a user) leaves it."""
    conn = sqlite3.connect(state_dir / StateDB.FILENAME)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def _made_indexes(state_dir: Path) -> tuple[list[tuple[str]], tuple[str]]:
    """The indexes made by CREATE INDEX (not SQLite's own for keys), and the schema version."""
    conn = sqlite3.connect(state_dir / StateDB.FILENAME)
    try:
        indexes = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
        return indexes, conn.execute("SELECT value FROM settings WHERE key = 'schema'").fetchone()
    finally:
        conn.close()


def test_a_database_of_a_newer_clp_is_refused_before_anything_is_made_in_it(
    tmp_path: Path,
) -> None:
    StateDB(tmp_path).close()
    _change(tmp_path, "DROP INDEX transactions_by_status",
            "UPDATE settings SET value = '9' WHERE key = 'schema'")  # fmt: skip
    with pytest.raises(ClpError, match=r"written by a newer clp \(schema 9\)$"):
        StateDB(tmp_path)
    assert _made_indexes(tmp_path) == ([], ("9",))


def test_a_name_the_index_would_take_does_not_stop_the_database_opening(tmp_path: Path) -> None:
    StateDB(tmp_path).close()
    _change(tmp_path, "DROP INDEX transactions_by_status",
            "CREATE VIEW transactions_by_status AS SELECT id FROM transactions")  # fmt: skip
    for _ in range(2):
        state = StateDB(tmp_path)
        assert state.open_transactions() == [] and state.count_transactions() == 0
        state.close()


def test_an_immutable_database_is_a_database_clp_cannot_write(tmp_path: Path) -> None:
    """As with any write to it: the file is there and readable, clp cannot write it."""
    StateDB(tmp_path).close()
    _change(tmp_path, "DROP INDEX transactions_by_status")  # so that opening it must write
    database = tmp_path / StateDB.FILENAME
    if subprocess.run(["chattr", "+i", str(database)], capture_output=True).returncode != 0:
        pytest.skip("this file system has no immutable files (chattr +i)")
    try:
        with pytest.raises(ClpError, match="cannot write the state database") as caught:
            StateDB(tmp_path)
        assert "unreadable" not in str(caught.value)
        assert StateDB(tmp_path, readonly=True).open_transactions() == []
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=True)


HOOK_WRITE = """
import os, sys
from pathlib import Path
from clp_alpm.store.state import StateDB
state = StateDB(Path(sys.argv[1]))
with state.transaction():
    state.set_setting("written", "by a hook")
state.close(process_ends=True)
os._exit(0)  # as the hook's process ends
"""


@pytest.mark.parametrize("python", pythons.each_version())
def test_a_hooks_close_leaves_the_checkpoint_to_the_next_command(
    tmp_path: Path, python: str
) -> None:
    """Whatever the Python (3.12 has setconfig, an older one keeps the connection open until
    os._exit): the hook's close syncs nothing more and keeps the log, whose commit every
    reader sees at once; the next other command's close checkpoints it."""
    StateDB(tmp_path).close()
    wal = tmp_path / f"{StateDB.FILENAME}-wal"
    written = subprocess.run([python, "-S", "-c", HOOK_WRITE, str(tmp_path)], capture_output=True,
                             text=True, timeout=60, env={"PYTHONPATH": str(REPO)})  # fmt: skip
    assert written.returncode == 0, written.stderr
    assert wal.stat().st_size > 0  # the commit is in the log, not yet in the database file
    reader = StateDB(tmp_path, readonly=True)
    assert reader.get_setting("written") == "by a hook"
    reader.close()
    StateDB(tmp_path).close()  # any other command
    assert not wal.exists()
    assert StateDB(tmp_path, readonly=True).get_setting("written") == "by a hook"


READ_SETTING = """
import sys
from pathlib import Path
from clp_alpm.store.state import StateDB
print(StateDB(Path(sys.argv[1]), readonly=True).get_setting("written"))
"""


def test_a_read_only_file_system_without_the_logs_index_still_reads_the_log(
    tmp_path: Path,
) -> None:
    """A hook's commit still in the log, the log's index (-shm) gone (a backup without it, a
    rescue mount), the file system read-only: a reader still sees the commit."""
    state_dir = tmp_path / "state"
    StateDB(state_dir).close()
    env = {"PYTHONPATH": str(REPO)}
    written = subprocess.run([sys.executable, "-S", "-c", HOOK_WRITE, str(state_dir)],
                             capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert written.returncode == 0, written.stderr
    assert (state_dir / f"{StateDB.FILENAME}-wal").stat().st_size > 0
    (state_dir / f"{StateDB.FILENAME}-shm").unlink()
    quoted = shlex.quote(str(state_dir))
    python, code = shlex.quote(sys.executable), shlex.quote(READ_SETTING)
    script = (f"mount --bind {quoted} {quoted} && mount -o remount,bind,ro {quoted} && "
              f"exec {python} -S -c {code} {quoted}")  # fmt: skip
    read = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "by a hook"
    assert not (state_dir / f"{StateDB.FILENAME}-shm").exists()  # nothing written there


def test_a_transaction_is_entered_once(tmp_path: Path) -> None:
    state = StateDB(tmp_path)
    transaction = state.transaction()
    with transaction:
        state.set_setting("k", "v")
    with pytest.raises(RuntimeError), transaction:
        pass
    with state.transaction():  # nothing was left open
        state.set_setting("k", "w")
    assert state.get_setting("k") == "w"


def test_a_plain_close_checkpoints(tmp_path: Path) -> None:
    state = StateDB(tmp_path)
    with state.transaction():
        state.set_setting("written", "by a command")
    state.close()
    assert not (tmp_path / f"{StateDB.FILENAME}-wal").exists()
    assert StateDB(tmp_path, readonly=True).get_setting("written") == "by a command"
