"""SQLite state under StateDir: patches, reverts, pacman transactions, operations, journal."""

from __future__ import annotations

import os
import time

from clp_alpm.errors import ClpError, NotRootError, StateDamaged
from clp_alpm.paths import exists, refuse_symlink
from clp_alpm.plainjson import dumps, loads
from clp_alpm.store.records import (
    UNFINISHED,
    BootRecord,
    BootVerdict,
    EntryStatus,
    Health,
    JournalEntry,
    Operation,
    OperationStatus,
    Origin,
    PatchRecord,
    RevertRecord,
    RevertState,
    TransactionRecord,
    TransactionStatus,
)

# typing costs ~4 ms to import and the hooks start on every transaction: names for type
# checkers only (annotations are strings here)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable
    from types import TracebackType
    from typing import Any, TypeVar

    from _typeshed import StrPath

    _Kind = type[BaseException] | None  # what a `with` block's __exit__ is given
    _Trace = TracebackType | None

    _T = TypeVar("_T")
else:
    try:  # the C module under `sqlite3`, whose wrapper only adds the datetime adapters clp
        import _sqlite3 as sqlite3  # never uses, and imports datetime: 6 M instructions a hook
    except ImportError:  # start (valgrind --tool=cachegrind); the classes are the same
        import sqlite3

SCHEMA_VERSION = 3

# What takes a database of version N-1 to N. _SCHEMA creates the newest tables; a database an
# older clp wrote gets the same columns from these steps, run once, in one transaction. A
# read-only connection never migrates: rows an older schema lacks a column for read with the
# record's default.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: ("ALTER TABLE transactions ADD COLUMN command TEXT",),
    # boot health: a transaction's probation and the boot it ran in; the boots table is new
    # (_SCHEMA has made it already)
    3: (
        "ALTER TABLE transactions ADD COLUMN health TEXT",
        "ALTER TABLE transactions ADD COLUMN boot TEXT",
    ),
}

_SCHEMA = """
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
    pacman_pid INTEGER,
    command TEXT,
    health TEXT,
    boot TEXT
);
CREATE INDEX IF NOT EXISTS transactions_by_status ON transactions(status);
CREATE TABLE IF NOT EXISTS boots (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    seen REAL NOT NULL,
    verdict TEXT NOT NULL,
    probation INTEGER NOT NULL,
    early REAL,
    checked REAL,
    failed_checks TEXT NOT NULL DEFAULT '[]',
    note TEXT
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


# The indexes _SCHEMA makes: the hooks ask for the open transactions and count them twice a
# transaction, which without one reads every record (HistoryLimit of them).
_INDEXES = ("transactions_by_status",)
# (of any type: a table of that name would make CREATE INDEX fail on every open)
_INDEXES_QUERY = "SELECT name FROM sqlite_master WHERE sql IS NOT NULL"

REBUILD_COMMAND = "clp recover --rebuild-state"
# snapshots a rebuild found in the store that no salvaged record names: kept (JSON list)
KEPT_SNAPSHOTS_SETTING = "rebuild.kept_snapshots"
# SQLite's words for a damaged file (sqlite_errorname; older builds only say it in the text)
_DAMAGE_CODES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_DAMAGE_WORDS = ("malformed", "not a database", "database corruption")


def _newer_schema(path: str, version: int) -> ClpError:
    return ClpError(f"{path}: state database was written by a newer clp (schema {version})")


def _is_read_only(err: sqlite3.DatabaseError) -> bool:
    name = str(getattr(err, "sqlite_errorname", ""))
    return name.startswith("SQLITE_READONLY") or "readonly database" in str(err)


def is_damage(err: BaseException) -> bool:
    """True when `err` is SQLite saying the file is damaged (not busy, not a full disk)."""
    if not isinstance(err, sqlite3.DatabaseError):
        return False
    name = str(getattr(err, "sqlite_errorname", ""))
    return name.startswith(_DAMAGE_CODES) or any(w in str(err).lower() for w in _DAMAGE_WORDS)


def damaged(path: StrPath, err: BaseException | str) -> StateDamaged:
    """The one line for a damaged state database: what is wrong, and what to run."""
    return StateDamaged(
        f"{path}: clp's state database is damaged ({err}); run '{REBUILD_COMMAND}' to "
        "salvage it and rebuild the rest from disk"
    )


class _DamageAsError:
    """`with _DamageAsError(path):` SQLite's damage leaves as StateDamaged naming `path`; any
    other error as it was. (A class: a contextlib generator costs the hooks its import.)"""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: _Kind, error: BaseException | None, trace: _Trace) -> None:
        if isinstance(error, sqlite3.DatabaseError) and is_damage(error):
            raise damaged(self.path, error) from None


def _rows(method: Callable[..., _T]) -> Callable[..., _T]:
    """A reading method of StateDB: a row that SQLite reads but that holds what no record can
    (NULLs, bad JSON, unknown states: zeros or garbage over a page) is damage too."""

    def read(self: StateDB, *args: Any) -> _T:
        try:
            return method(self, *args)
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            raise damaged(self.path, f"a record holds garbage: {err}") from None

    read.__name__, read.__doc__ = method.__name__, method.__doc__
    return read


class _Cursor(sqlite3.Cursor):
    """A cursor whose every step turns SQLite's "malformed" into StateDamaged: a torn page
    shows when a query reaches it, at any step."""

    state_path: str = "clp.db"

    def execute(self, sql: str, parameters: Any = ()) -> _Cursor:
        with _DamageAsError(self.state_path):
            super().execute(sql, parameters)
        return self

    def executescript(self, script: str) -> _Cursor:
        with _DamageAsError(self.state_path):
            super().executescript(script)
        return self

    def fetchone(self) -> Any:
        with _DamageAsError(self.state_path):
            return super().fetchone()

    def fetchall(self) -> list[Any]:
        with _DamageAsError(self.state_path):
            return super().fetchall()

    def __next__(self) -> Any:
        with _DamageAsError(self.state_path):
            return super().__next__()


class _Connection(sqlite3.Connection):
    state_path: str = "clp.db"

    def cursor(self, factory: Any = None) -> _Cursor:  # type: ignore[override]
        cursor = super().cursor(_Cursor)
        cursor.state_path = self.state_path
        return cursor

    def execute(self, sql: str, parameters: Any = ()) -> _Cursor:
        return self.cursor().execute(sql, parameters)

    def executescript(self, script: str) -> _Cursor:
        return self.cursor().executescript(script)


def connect(path: StrPath, state_path: StrPath, **options: Any) -> _Connection:
    """sqlite3.connect, with damage reported as StateDamaged naming `state_path`."""
    conn = sqlite3.connect(path, factory=_Connection, **options)
    assert isinstance(conn, _Connection)
    conn.state_path = os.fspath(state_path)
    return conn


_LEFT_OPEN_UNTIL_EXIT: list[sqlite3.Connection] = []


def _close_without_checkpoint(conn: sqlite3.Connection) -> bool:
    option = getattr(sqlite3, "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE", None)
    setconfig = getattr(conn, "setconfig", None)  # Python 3.12
    if option is None or setconfig is None:
        return False
    setconfig(option, True)
    conn.close()
    return True


def _on_read_only_file_system(directory: str) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


class StateDB:
    """The one SQLite database of clp. Every write is its own committed, fsynced transaction,
    or a part of the one `transaction()` holds open."""

    FILENAME = "clp.db"

    def __init__(self, state_dir: StrPath, readonly: bool = False) -> None:
        self.path = os.path.join(state_dir, self.FILENAME)
        self.readonly = readonly
        self._depth = 0  # transactions open: the outer one, then its savepoints
        for suffix in ("", "-wal", "-shm", "-journal"):  # SQLite follows a link to any of them
            refuse_symlink(f"{self.path}{suffix}")
        try:
            if readonly:
                self._conn = self._connect_readonly()
            else:
                os.makedirs(state_dir, 0o700, exist_ok=True)
                self._conn = connect(self.path, self.path, isolation_level=None, timeout=30)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=FULL")
                if not self._schema_is_current():
                    self._refuse_a_newer_schema()  # before making anything in it
                    self._conn.executescript(_SCHEMA)
                    self._check_version()
        except sqlite3.DatabaseError as err:
            if is_damage(err):
                raise damaged(self.path, err) from None
            if _is_read_only(err):  # a file made immutable, say: as for any other write
                raise ClpError(f"{self.path}: cannot write the state database ({err})") from None
            raise ClpError(f"{self.path}: state database is unreadable ({err})") from None
        except OSError as err:
            doing = "read clp's state" if readonly else "create the state directory"
            if isinstance(err, PermissionError):
                message = f"{state_dir}: cannot {doing} (Permission denied); run as root"
                raise NotRootError(message) from None
            raise ClpError(f"{state_dir}: cannot {doing} ({err.strerror})") from None
        self._conn.row_factory = sqlite3.Row

    def _connect_readonly(self) -> sqlite3.Connection:
        if not exists(self.path):
            conn = connect(":memory:", self.path, isolation_level=None)
            conn.executescript(_SCHEMA)
            return conn
        uri = f"file:{self.path}?mode=ro"
        conn = connect(uri, self.path, uri=True, isolation_level=None, timeout=30)
        try:  # damage fails here, as StateDamaged
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.OperationalError:  # WAL needs its -shm file written, even to read...
            if not _on_read_only_file_system(os.path.dirname(self.path)):
                raise
            conn.close()  # ...except where nothing can write: read the file as it is,
            conn = self._connect_immutable(uri)  # with what its log holds
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "operations" not in tables:  # an empty database: nothing recorded yet, as if absent
            conn.close()
            conn = connect(":memory:", self.path, isolation_level=None)
            conn.executescript(_SCHEMA)
        return conn

    def _connect_immutable(self, uri: str) -> _Connection:
        """The database on a read-only file system without the log's index (-shm: a backup
        that left it out, a rescue mount). SQLite reads such a file only as immutable, which
        leaves out what its write-ahead log holds: the pacman hooks' last commits, whose
        checkpoint they leave to the next command. With a log, the file and its log are
        copied aside and read into memory, where SQLite reads the log as usual."""
        wal = f"{self.path}-wal"
        if not os.path.exists(wal) or os.path.getsize(wal) == 0:
            return connect(f"{uri}&immutable=1", self.path, uri=True, isolation_level=None)
        import shutil  # lazy: this rare case only
        import tempfile

        with tempfile.TemporaryDirectory(prefix="clp-state-") as aside:
            copy = os.path.join(aside, self.FILENAME)
            shutil.copyfile(self.path, copy)
            shutil.copyfile(wal, f"{copy}-wal")
            source = connect(copy, self.path, isolation_level=None)
            memory = connect(":memory:", self.path, isolation_level=None)
            try:
                source.backup(memory)
            finally:
                source.close()
        return memory

    def _refuse_a_newer_schema(self) -> None:
        try:
            version = self._schema_version()
        except sqlite3.OperationalError:  # a new database: no settings table yet
            return
        if version is not None and version > SCHEMA_VERSION:
            raise _newer_schema(self.path, version)

    def _check_version(self) -> None:
        if self._schema_version() == SCHEMA_VERSION:
            return
        with self.transaction() as conn:  # another clp may be migrating: look again, locked
            version = self._schema_version()
            if version is None:  # a new database: _SCHEMA made the newest tables
                conn.execute(
                    "INSERT INTO settings(key, value) VALUES('schema', ?)", (str(SCHEMA_VERSION),)
                )
                return
            if version > SCHEMA_VERSION:
                raise _newer_schema(self.path, version)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
            conn.execute(
                "UPDATE settings SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),)
            )

    def _schema_is_current(self) -> bool:
        """The database holds this clp's schema: the tables need not be made again (the
        pacman hooks open it twice a transaction). An index is made where it is missing
        without a new schema version: a clp that knows no index still reads the file."""
        try:
            if self._schema_version() != SCHEMA_VERSION:
                return False
        except sqlite3.OperationalError:  # a new database: no settings table yet
            return False
        names = {row[0] for row in self._conn.execute(_INDEXES_QUERY)}
        return set(_INDEXES) <= names

    def _schema_version(self) -> int | None:
        row = self._conn.execute("SELECT value FROM settings WHERE key='schema'").fetchone()
        return None if row is None else int(row[0])

    def close(self, process_ends: bool = False) -> None:
        """Close the database. With `process_ends` (a pacman hook, which ends with os._exit
        next; twice a transaction) SQLite neither checkpoints nor deletes the write-ahead log
        and its index: three syncs and two files fewer a hook. SQLite checkpoints as the log
        grows (every 1,000 pages) and any other clp command's close does it. Every commit is
        synced to the log before it returns, as always: what is committed is durable, and the
        next connection reads it from the log."""
        if not process_ends:
            self._conn.close()
        elif not _close_without_checkpoint(self._conn):
            # Python before 3.12 cannot ask SQLite for that: the connection stays open until
            # the process ends, which to SQLite is a crash after the last commit
            _LEFT_OPEN_UNTIL_EXIT.append(self._conn)

    def transaction(self) -> _Transaction:
        """One committed, fsynced SQLite transaction (`with state.transaction() as conn:`).
        Inside another it is a savepoint of it: all or nothing as before, committed (and
        synced) with the outer one — a pacman hook writes its whole record with one commit."""
        return _Transaction(self)

    def _write_error(self, err: sqlite3.Error) -> ClpError:
        if is_damage(err):
            return damaged(self.path, err)
        return ClpError(f"{self.path}: cannot write the state database ({err})")

    # -- settings --------------------------------------------------------------

    @_rows
    def get_setting(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO settings(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- patches -------------------------------------------------------------

    @_rows
    def get_patch(self, patch_id: str) -> PatchRecord | None:
        row = self._conn.execute("SELECT * FROM patches WHERE id = ?", (patch_id,)).fetchone()
        return _patch_from_row(row) if row else None

    @_rows
    def list_patches(self) -> list[PatchRecord]:
        rows = self._conn.execute("SELECT * FROM patches ORDER BY updated_at, id").fetchall()
        return [_patch_from_row(row) for row in rows]

    def put_patch(self, record: PatchRecord) -> None:
        values = record.stored()
        values["meta"] = dumps(values["meta"], sort_keys=True)
        columns = ", ".join(values)
        marks = ", ".join(f":{name}" for name in values)
        with self.transaction() as conn:
            conn.execute(f"INSERT OR REPLACE INTO patches ({columns}) VALUES ({marks})", values)

    def delete_patch(self, patch_id: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM patches WHERE id = ?", (patch_id,))

    # -- reverts -------------------------------------------------------------

    @_rows
    def get_revert(self, revert_id: str) -> RevertRecord | None:
        row = self._conn.execute("SELECT * FROM reverts WHERE id = ?", (revert_id,)).fetchone()
        return _revert_from_row(row) if row else None

    @_rows
    def list_reverts(self) -> list[RevertRecord]:
        rows = self._conn.execute("SELECT * FROM reverts ORDER BY created_at, id").fetchall()
        return [_revert_from_row(row) for row in rows]

    @_rows
    def next_revert_id(self) -> str:
        rows = self._conn.execute("SELECT id FROM reverts").fetchall()
        numbers = [int(row[0][1:]) for row in rows if row[0][1:].isdigit()]
        return f"R{max(numbers, default=0) + 1}"

    def put_revert(self, record: RevertRecord) -> None:
        values = record.__dict__ | {"packages": dumps(list(record.packages), sort_keys=True)}
        columns = ", ".join(values)
        marks = ", ".join(f":{name}" for name in values)
        with self.transaction() as conn:
            conn.execute(f"INSERT OR REPLACE INTO reverts ({columns}) VALUES ({marks})", values)

    def delete_revert(self, revert_id: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM reverts WHERE id = ?", (revert_id,))

    # -- pacman transactions -------------------------------------------------

    def add_transaction(self, record: TransactionRecord) -> int:
        """Store a new transaction (its id is assigned here) and return the id."""
        values = _transaction_to_row(record)
        del values["id"]
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self.transaction() as conn:
            cursor = conn.execute(
                f"INSERT INTO transactions ({names}) VALUES ({marks})", tuple(values.values())
            )
        return int(cursor.lastrowid or 0)

    def put_transaction(self, record: TransactionRecord) -> None:
        values = _transaction_to_row(record)
        sets = ", ".join(f"{name} = ?" for name in values if name != "id")
        with self.transaction() as conn:
            conn.execute(
                f"UPDATE transactions SET {sets} WHERE id = ?",
                (*(v for k, v in values.items() if k != "id"), record.id),
            )

    @_rows
    def get_transaction(self, transaction_id: int) -> TransactionRecord | None:
        row = self._conn.execute(
            "SELECT * FROM transactions WHERE id = ?", (transaction_id,)
        ).fetchone()
        return None if row is None else _transaction_from_row(row)

    @_rows
    def list_transactions(self) -> list[TransactionRecord]:
        rows = self._conn.execute("SELECT * FROM transactions ORDER BY id").fetchall()
        return [_transaction_from_row(row) for row in rows]

    @_rows
    def latest_transactions(self, count: int) -> list[TransactionRecord]:
        """The newest `count` transactions, oldest first (the hooks read no more than this)."""
        rows = self._conn.execute(
            "SELECT * FROM transactions ORDER BY id DESC LIMIT ?", (count,)
        ).fetchall()
        return [_transaction_from_row(row) for row in reversed(rows)]

    @_rows
    def oldest_transactions(self, count: int) -> list[TransactionRecord]:
        """The oldest `count` transactions, oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM transactions ORDER BY id LIMIT ?", (count,)
        ).fetchall()
        return [_transaction_from_row(row) for row in rows]

    @_rows
    def count_transactions(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM transactions").fetchone()[0])

    @_rows
    def open_transactions(self) -> list[TransactionRecord]:
        rows = self._conn.execute(
            "SELECT * FROM transactions WHERE status = ? ORDER BY id", (TransactionStatus.OPEN,)
        ).fetchall()
        return [_transaction_from_row(row) for row in rows]

    def forget_transactions_before(self, transaction_id: int) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM transactions WHERE id < ?", (transaction_id,))

    @_rows
    def snapshots_in_use(self) -> set[str]:
        """Every snapshot a patch or a transaction record still needs, and those a rebuild of
        the database kept because it could not tell whether a lost record needed them."""
        rows = self._conn.execute(
            "SELECT snapshot_before, snapshot_after FROM patches "
            "UNION ALL SELECT snapshot_before, snapshot_after FROM transactions"
        ).fetchall()
        kept = loads(self.get_setting(KEPT_SNAPSHOTS_SETTING) or "[]")
        return {snapshot for row in rows for snapshot in row if snapshot} | {
            str(snapshot) for snapshot in kept
        }

    @_rows
    def completion_names(self, transactions: int) -> list[tuple[str, str, str]]:
        """(kind, name, state) of every patch and revert and of the newest `transactions`
        transactions: the completion index."""
        rows = self._conn.execute(
            "SELECT 'patch', id, state FROM patches "
            "UNION ALL SELECT 'revert', id, state FROM reverts "
            "UNION ALL SELECT * FROM (SELECT 'transaction', CAST(id AS TEXT), status "
            "FROM transactions ORDER BY id DESC LIMIT ?)",
            (transactions,),
        ).fetchall()
        order = {"patch": 0, "revert": 1, "transaction": 2}

        def key(row: tuple[str, str, str]) -> tuple[int, int, str]:
            number = row[1].lstrip("R")
            return order[row[0]], int(number) if number.isdigit() else 0, row[1]

        return sorted(((str(a), str(b), str(c)) for a, b, c in rows), key=key)

    # -- boots ---------------------------------------------------------------

    def get_boot(self, boot_id: str) -> BootRecord | None:
        return next((boot for boot in self.list_boots() if boot.id == boot_id), None)

    def list_boots(self) -> list[BootRecord]:
        """Every boot recorded, oldest first (none in a database older than schema 3, which
        a read-only connection reads as it is)."""
        try:
            rows = self._conn.execute("SELECT * FROM boots ORDER BY seq").fetchall()
        except sqlite3.OperationalError as err:
            if self.readonly:
                return []
            raise ClpError(f"{self.path}: cannot read the state database ({err})") from None
        return [_boot_from_row(row) for row in rows]

    def put_boot(self, record: BootRecord) -> BootRecord:
        """Store a boot; a new one (seq 0) gets the next number. Returns it as stored."""
        values = dict(record.__dict__)
        values["failed_checks"] = dumps(list(record.failed_checks))
        values["probation"] = int(record.probation)
        with self.transaction() as conn:
            if not values["seq"]:
                row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM boots").fetchone()
                values["seq"] = int(row[0]) + 1
            names = ", ".join(values)
            marks = ", ".join(f":{name}" for name in values)
            conn.execute(f"INSERT OR REPLACE INTO boots ({names}) VALUES ({marks})", values)
        return BootRecord(**(record.__dict__ | {"seq": values["seq"]}))

    def forget_boots_before(self, seq: int) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM boots WHERE seq < ?", (seq,))

    # -- operations and journal ---------------------------------------------

    def begin_operation(self, kind: str, target: str, pid: int, plan: list[dict[str, Any]]) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO operations(kind, target, status, started, pid, plan) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    kind,
                    target,
                    OperationStatus.RUNNING,
                    time.time(),
                    pid,
                    dumps(plan, sort_keys=True),
                ),
            )
            return int(cursor.lastrowid or 0)

    def finish_operation(
        self, op_id: int, status: OperationStatus, message: str | None = None
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE operations SET status = ?, finished = ?, message = ? WHERE id = ?",
                (status, time.time(), message, op_id),
            )

    def add_entry(self, op_id: int, seq: int, kind: str, args: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO journal(op_id, seq, kind, args, data, status, at) "
                "VALUES (?, ?, ?, ?, '{}', ?, ?)",
                (
                    op_id,
                    seq,
                    kind,
                    dumps(args, sort_keys=True),
                    EntryStatus.STARTED,
                    time.time(),
                ),  # fmt: skip
            )

    def update_entry(
        self,
        op_id: int,
        seq: int,
        *,
        status: EntryStatus | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        with self.transaction() as conn:
            if data is not None:
                conn.execute(
                    "UPDATE journal SET data = ?, at = ? WHERE op_id = ? AND seq = ?",
                    (dumps(data, sort_keys=True), time.time(), op_id, seq),
                )
            if status is not None:
                conn.execute(
                    "UPDATE journal SET status = ?, at = ? WHERE op_id = ? AND seq = ?",
                    (status, time.time(), op_id, seq),
                )

    @_rows
    def unfinished_operations(self) -> list[Operation]:
        marks = ", ".join("?" for _ in UNFINISHED)
        rows = self._conn.execute(
            f"SELECT * FROM operations WHERE status IN ({marks}) ORDER BY id", UNFINISHED
        ).fetchall()
        return [self.operation(row["id"]) for row in rows]

    @_rows
    def operation(self, op_id: int) -> Operation:
        row = self._conn.execute("SELECT * FROM operations WHERE id = ?", (op_id,)).fetchone()
        entries = self._conn.execute(
            "SELECT * FROM journal WHERE op_id = ? ORDER BY seq", (op_id,)
        ).fetchall()
        return Operation(
            id=row["id"],
            kind=row["kind"],
            target=row["target"],
            status=OperationStatus(row["status"]),
            started=row["started"],
            pid=row["pid"],
            finished=row["finished"],
            message=row["message"],
            plan=tuple(loads(row["plan"])),
            entries=tuple(
                JournalEntry(
                    op_id=e["op_id"],
                    seq=e["seq"],
                    kind=e["kind"],
                    args=loads(e["args"]),
                    data=loads(e["data"]),
                    status=EntryStatus(e["status"]),
                )
                for e in entries
            ),
        )


def _patch_from_row(row: sqlite3.Row) -> PatchRecord:
    values = dict(row)
    values["meta"] = loads(values["meta"])
    return PatchRecord.from_stored(values)


def _revert_from_row(row: sqlite3.Row) -> RevertRecord:
    values = dict(row)
    values["packages"] = tuple(loads(values["packages"]))
    values["state"] = RevertState(values["state"])
    return RevertRecord(**values)


_TRANSACTION_JSON = ("packages", "paths", "changed")


def _transaction_to_row(record: TransactionRecord) -> dict[str, Any]:
    values = dict(record.__dict__)
    for key in _TRANSACTION_JSON:
        values[key] = dumps(list(values[key]))
    return values


def _transaction_from_row(row: sqlite3.Row) -> TransactionRecord:
    values = dict(row)
    for key in _TRANSACTION_JSON:
        values[key] = tuple(loads(values[key]))
    values["status"] = TransactionStatus(values["status"])
    values["origin"] = Origin(values["origin"])
    if values.get("health") is not None:
        values["health"] = Health(values["health"])
    return TransactionRecord(**values)


def _boot_from_row(row: sqlite3.Row) -> BootRecord:
    values = dict(row)
    values["failed_checks"] = tuple(loads(values["failed_checks"]))
    values["probation"] = bool(values["probation"])
    values["verdict"] = BootVerdict(values["verdict"])
    return BootRecord(**values)


class _Transaction:
    """What StateDB.transaction() enters. A class, not a contextlib generator: the pacman
    hooks would pay a millisecond a start to import contextlib. The outermost one begins and
    commits (or rolls back); a nested one is a savepoint. An SQLite error, in the body or in
    the commit, leaves as the one ClpError for a state database that cannot be written."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        self._savepoint: str | None = None
        self._entered = False

    def __enter__(self) -> sqlite3.Connection:
        if self._entered:  # as a generator's: each `with` asks transaction() for its own
            raise RuntimeError("a StateDB transaction is entered once")
        self._entered = True
        db = self._db
        if db._depth:
            self._savepoint = f"part{db._depth}"
            db._conn.execute(f"SAVEPOINT {self._savepoint}")
            db._depth += 1
            return db._conn
        try:
            db._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise db._write_error(err) from None
        db._depth = 1
        return db._conn

    def __exit__(self, kind: _Kind, error: BaseException | None, trace: _Trace) -> None:
        db = self._db
        if self._savepoint is not None:
            try:
                if error is not None:
                    db._conn.execute(f"ROLLBACK TO {self._savepoint}")
            finally:
                db._depth -= 1
                db._conn.execute(f"RELEASE {self._savepoint}")
            return
        try:
            try:
                db._conn.execute("COMMIT" if error is None else "ROLLBACK")
            finally:
                db._depth = 0
        except sqlite3.Error as err:
            raise db._write_error(err) from None
        if isinstance(error, sqlite3.Error):
            raise db._write_error(error) from None
