"""The records clp keeps in its state database, and the states they move through.

Plain data: the SQLite mapping is `state.py`'s. States are `StrEnum` members, so that they are
stored and printed as the strings they always were (`"applied"`, `"rolled-back"`, ...).
"""

from __future__ import annotations

# typing costs ~4 ms to import and the hooks start on every transaction: names for type
# checkers only (annotations are strings here)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from enum import StrEnum
    from typing import Any

    from clp_alpm.formats.meta import PatchMeta
else:  # the pacman hook's path: no dataclasses nor Enum classes, see clp_alpm/plaindata.py
    from clp_alpm.plaindata import StrEnum, dataclass, field


class PatchState(StrEnum):
    APPLIED = "applied"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"


class RevertState(StrEnum):
    APPLIED = "applied"
    ROLLED_BACK = "rolled-back"


class TransactionStatus(StrEnum):
    """open: the pre hook ran, the post hook not yet; done; interrupted: the post hook never
    ran (pacman failed or was killed; the state after is what the next transaction found);
    undone: `clp undo-transaction` reversed it."""

    OPEN = "open"
    DONE = "done"
    INTERRUPTED = "interrupted"
    UNDONE = "undone"


class Health(StrEnum):
    """What the boots after a transaction that changed packages said of it: probation until a
    boot passes the required health checks (good); failed once a boot did not (still on
    probation); undone-after-failed-boots once HealthBoots failed boots in a row undid it."""

    PROBATION = "probation"
    GOOD = "good"
    FAILED = "failed"
    UNDONE_AFTER_FAILED_BOOTS = "undone-after-failed-boots"


ON_PROBATION = (Health.PROBATION, Health.FAILED)


class BootVerdict(StrEnum):
    """pending: the late check has not run in this boot (yet, or ever: a hard reset)."""

    PENDING = "pending"
    GOOD = "good"
    FAILED = "failed"


class Origin(StrEnum):
    """Who ran a pacman transaction: a person (or another front end), or clp itself."""

    PACMAN = "pacman"
    CLP = "clp"


class OperationStatus(StrEnum):
    """running -> done; or, on failure or after a crash, undoing -> undone (clean) or stuck
    (an undo failed: every recovery retries it)."""

    RUNNING = "running"
    UNDOING = "undoing"
    DONE = "done"
    UNDONE = "undone"
    STUCK = "stuck"


UNFINISHED = (OperationStatus.RUNNING, OperationStatus.UNDOING, OperationStatus.STUCK)


class EntryStatus(StrEnum):
    """One journal entry: started -> done | failed; undone | undo-failed when undone."""

    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    UNDONE = "undone"
    UNDO_FAILED = "undo-failed"


class PatchOrigin(StrEnum):
    """Who installed a patch: clp, or clpctl before clp adopted it (`clp adopt`)."""

    CLP = "clp"
    CLPCTL = "clpctl"


# The script names of records written before clp stored them: the documented pair.
DEFAULT_INSTALL_SCRIPT = "Install-Script.ps1"
DEFAULT_REMOVE_SCRIPT = "Remove-Script.ps1"


@dataclass(frozen=True)
class PatchRecord:
    id: str
    state: PatchState
    version: str
    description: str
    meta: PatchMeta
    updated_at: float
    source: str | None = None
    sha256: str | None = None
    signer: str | None = None
    snapshot_before: str | None = None
    snapshot_after: str | None = None
    applied_at: float | None = None
    rolled_back_at: float | None = None
    failed_at: float | None = None
    message: str | None = None
    install_script: str = DEFAULT_INSTALL_SCRIPT
    remove_script: str = DEFAULT_REMOVE_SCRIPT
    in_force: bool = True  # False once re-applying after an upgrade failed: applied, not working
    origin: str = PatchOrigin.CLP
    # the patch's directory when it is not PatchDir/<id> (clpctl's `install FILE` left <file>/)
    patch_dir: str | None = None

    def stored(self) -> dict[str, Any]:
        """The JSON-ready form kept in the database and the journal (inverse: from_stored).

        The scripts and `in_force` travel inside `meta`, the one JSON column, so that the
        table keeps its columns and older databases still read.
        """
        values = dict(self.__dict__)
        travelling = {key: values.pop(key) for key in _IN_META}
        return values | {"state": str(self.state), "meta": self.meta.to_dict() | travelling}

    @classmethod
    def from_stored(cls, values: dict[str, Any]) -> PatchRecord:
        # lazy: the hooks load no patch metadata on a system with no patch applied
        from clp_alpm.formats.meta import PatchMeta

        fields = dict(values)
        meta = dict(fields.pop("meta"))
        travelling = {key: meta.pop(key) for key in _IN_META if key in meta}
        fields["state"] = PatchState(fields["state"])
        return cls(**fields, meta=PatchMeta.from_dict(meta), **travelling)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "version": self.version,
            "state": self.state,
            "severity": self.meta.severity,
            "applied_at": _iso(self.applied_at),
            "rolled_back_at": _iso(self.rolled_back_at),
            "failed_at": _iso(self.failed_at),
            "updated_at": _iso(self.updated_at),
            "source": self.source,
            "sha256": self.sha256,
            "signer": self.signer,
            "files": list(self.meta.files),
            "message": self.message,
            "in_force": self.state == PatchState.APPLIED and self.in_force,
            "origin": str(self.origin),
        }


# fields of PatchRecord stored inside its `meta` JSON (absent in older rows: the defaults)
_IN_META = ("install_script", "remove_script", "in_force", "origin", "patch_dir")


@dataclass(frozen=True)
class RevertRecord:
    """Packages clp brought back to earlier versions, as one undoable unit."""

    id: str
    state: RevertState
    packages: tuple[dict[str, Any], ...]  # {name, from, to, source}
    created_at: float
    updated_at: float
    patch: str | None = None  # the patch that asked for it
    rolled_back_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "packages": [dict(package) for package in self.packages],
            "patch": self.patch,
            "created_at": _iso(self.created_at),
            "rolled_back_at": _iso(self.rolled_back_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class TransactionRecord:
    """One pacman transaction as the hooks saw it: versions and config files before and after."""

    id: int
    status: TransactionStatus
    started: float
    origin: Origin
    packages: tuple[dict[str, Any], ...]  # {name, from, to}: None where absent
    paths: tuple[str, ...]  # what the snapshots cover
    changed: tuple[str, ...] = ()
    snapshot_before: str | None = None
    snapshot_after: str | None = None
    finished: float | None = None
    message: str | None = None
    pacman_pid: int | None = None  # the pacman whose hooks opened it
    command: str | None = None  # that pacman's command line, as /proc showed it
    health: Health | None = None  # None: it changed no package (or clp made it)
    boot: str | None = None  # the boot it ran in: its probation starts with the next one

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "origin": self.origin,
            "command": self.command,
            "packages": [dict(package) for package in self.packages],
            "changed_files": list(self.changed),
            "message": self.message,
            "health": None if self.health is None else str(self.health),
        }


@dataclass(frozen=True)
class BootRecord:
    """One boot as `clp boot-check` saw it (its id is the kernel's boot id)."""

    id: str
    seq: int  # boots in the order clp first saw them
    seen: float
    verdict: BootVerdict = BootVerdict.PENDING
    probation: bool = False  # the machine was on probation in this boot
    early: float | None = None  # when the early check ran in it
    checked: float | None = None  # when the late check ran in it
    failed_checks: tuple[str, ...] = ()  # "required.d/50-x: exit status 1", ...
    note: str | None = None  # what clp did in this boot, or why the verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "boot": self.id,
            "verdict": str(self.verdict),
            "probation": self.probation,
            "seen": _iso(self.seen),
            "early": _iso(self.early),
            "checked": _iso(self.checked),
            "failed_checks": list(self.failed_checks),
            "note": self.note,
        }


@dataclass(frozen=True)
class JournalEntry:
    op_id: int
    seq: int
    kind: str
    args: dict[str, Any]
    data: dict[str, Any]
    status: EntryStatus


@dataclass(frozen=True)
class Operation:
    id: int
    kind: str
    target: str
    status: OperationStatus
    started: float
    pid: int | None
    finished: float | None = None
    message: str | None = None
    plan: tuple[dict[str, Any], ...] = field(default=())
    entries: tuple[JournalEntry, ...] = field(default=())


def _iso(stamp: float | None) -> str | None:
    """`stamp` in local time, to the second, with its UTC offset: what
    `datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")` writes, made
    with the time module (datetime costs a listing 1.5 ms to import)."""
    if stamp is None:
        return None
    import time

    whole = float(int(stamp))  # rounded to the microsecond (half to even) first, as datetime
    micros = round((stamp - whole) * 1e6)
    seconds = int(whole) + (1 if micros >= 1_000_000 else -1 if micros < 0 else 0)
    local = time.localtime(seconds)
    hours, rest = divmod(abs(local.tm_gmtoff), 3600)
    minutes, rest = divmod(rest, 60)
    offset = f"{'-' if local.tm_gmtoff < 0 else '+'}{hours:02d}:{minutes:02d}"
    return (
        f"{local.tm_year:04d}-{local.tm_mon:02d}-{local.tm_mday:02d}T{local.tm_hour:02d}:"
        f"{local.tm_min:02d}:{local.tm_sec:02d}{offset}{f':{rest:02d}' if rest else ''}"
    )
