"""The journal's step kinds and one builder per kind: plans are made of these, and only these.

A step is data (a kind, JSON arguments, a description): the plan is journaled as a whole, so a
new process can finish or undo it from the journal alone. What a kind *does* is its handler's
(`step_files`, `step_scripts`, `step_packages`, `step_records`), found through the registry in
`commit.py`. Builders are pure: they read nothing and change nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clp_alpm.store.journal import Step, StepRun
from clp_alpm.store.records import TransactionStatus

if TYPE_CHECKING:
    from clp_alpm.ops.session import Session


class StepKind(StrEnum):
    EXTRACT = "extract"
    SNAPSHOT_BEFORE = "snapshot-before"
    SNAPSHOT_AFTER = "snapshot-after"
    SNAPSHOT_CURRENT = "snapshot-current"
    RESTORE_POINT = "restore-point"
    INSTALL_SCRIPT = "install-script"
    HEALTH_CHECK = "health-check"
    REMOVE_SCRIPT = "remove-script"
    RESTORE_FILES = "restore-files"
    RETIRE_PATCH_DIR = "retire-patch-dir"
    RECORD = "record"
    PACMAN_UPGRADE = "pacman-upgrade"
    PACMAN_REMOVE = "pacman-remove"
    CACHE_PACKAGE = "cache-package"
    REBUILD_PACKAGE = "rebuild-package"
    PIN = "pin"
    UNPIN = "unpin"
    RECORD_REVERT = "record-revert"
    RECORD_TRANSACTION = "record-transaction"
    MOTD = "motd"


class OperationKind(StrEnum):
    """What an operation in the journal is (its `kind` column)."""

    APPLY = "apply"
    ROLLBACK = "rollback"
    REAPPLY = "reapply"
    REVERT = "revert"
    REVERT_ROLLBACK = "revert-rollback"
    UNDO_TRANSACTION = "undo-transaction"
    UNPIN = "unpin"
    ADOPT = "adopt"
    HEALTH_UNDO = "health-undo"  # an undo-transaction clp ran after failed boots


class RecordedState(StrEnum):
    """What a `record` step writes on a patch's record."""

    APPLIED = "applied"
    ADOPTED = "adopted"  # applied by clpctl: recorded, nothing run
    REAPPLIED = "reapplied"
    ROLLED_BACK = "rolled-back"


# -- files ------------------------------------------------------------------------------------


def extract(unpacked: str, sha256: str, patch_dir: str, record: dict[str, Any], name: str) -> Step:
    """Move what verify unpacked (`unpacked`, a private dir in StateDir) into a staging dir,
    then rename it to `patch_dir`."""
    args = {"unpacked": unpacked, "sha256": sha256, "patch_dir": patch_dir, "record": record}
    return Step(StepKind.EXTRACT, args, f"extract {name} to {patch_dir}")


def snapshot_before(files: Sequence[str]) -> Step:
    return Step(
        StepKind.SNAPSHOT_BEFORE, {"files": list(files)}, f"snapshot {len(files)} declared file(s)"
    )


def snapshot_after(files: Sequence[str]) -> Step:
    return Step(StepKind.SNAPSHOT_AFTER, {"files": list(files)}, "snapshot the patched files")


def snapshot_current(files: Sequence[str]) -> Step:
    return Step(
        StepKind.SNAPSHOT_CURRENT, {"files": list(files)}, f"snapshot {len(files)} declared file(s)"
    )


def restore_point(files: Sequence[str]) -> Step:
    """A snapshot that is undone last: the files end exactly as before the operation."""
    return Step(StepKind.RESTORE_POINT, {"files": list(files)}, "snapshot the files as now")


def restore_files(
    snapshot: str | None, description: str, paths: Sequence[str] | None = None
) -> Step:
    args: dict[str, Any] = {"snapshot": snapshot}
    if paths is not None:
        args["paths"] = list(paths)
    return Step(StepKind.RESTORE_FILES, args, description)


def retire_patch_dir(patch_dir: str) -> Step:
    return Step(StepKind.RETIRE_PATCH_DIR, {"patch_dir": patch_dir}, f"remove {patch_dir}")


# -- scripts ----------------------------------------------------------------------------------


def _script_args(
    patch_id: str, patch_dir: str, script: str, action: str, remove_script: str
) -> dict[str, Any]:
    return {
        "patch_id": patch_id,
        "patch_dir": patch_dir,
        "script": f"{patch_dir}/{script}",
        "action": action,
        "remove_script": remove_script,
    }


def install_script(
    patch_id: str, patch_dir: str, script: str, remove_script: str, again: bool = False
) -> Step:
    description = f"run {script} again" if again else f"run {script}"
    args = _script_args(patch_id, patch_dir, script, "install", remove_script)
    return Step(StepKind.INSTALL_SCRIPT, args, description)


def remove_script(patch_id: str, patch_dir: str, script: str, strict: bool = False) -> Step:
    """Once the Remove script ran, finishing the rollback is the way back (`forward`).
    `strict`: its failure fails the rollback (a patch clp has no snapshot of: clpctl's)."""
    args = _script_args(patch_id, patch_dir, script, "remove", script)
    if strict:
        args["strict"] = True
    return Step(StepKind.REMOVE_SCRIPT, args, f"run {script}", forward=True)


def health_check(patch_id: str, patch_dir: str, command: str, timeout: float) -> Step:
    args = {"patch_id": patch_id, "patch_dir": patch_dir, "command": command, "timeout": timeout}
    return Step(StepKind.HEALTH_CHECK, args, f"health check '{command}'")


# -- packages ---------------------------------------------------------------------------------


def pacman_upgrade(
    files: Sequence[str],
    previous: Mapping[str, str | None],
    targets: Mapping[str, str | None],
    previous_files: Mapping[str, str],
    moves: str,
    no_way_back: bool = False,
    pacman_options: Sequence[str] = (),
) -> Step:
    """`pacman -U files`; undone by installing `previous_files` (name -> the file of the
    version installed before, `previous`) and removing what was not installed before.
    `no_way_back`: a previous version has no file (the user chose to go on without one), so
    once pacman has started, an interrupted operation is finished, not undone.
    `pacman_options` (checked ones, such as `--overwrite GLOB`) go to pacman, its undo's too."""
    args = {
        "files": list(files),
        "previous": dict(previous),
        "targets": dict(targets),
        "previous_files": dict(previous_files),
        "pacman_options": list(pacman_options),
    }
    shown = f"pacman -U {' '.join(pacman_options)}" if pacman_options else "pacman -U"
    return Step(StepKind.PACMAN_UPGRADE, args, f"{shown}: {moves}", forward=no_way_back)


def cache_package(source: str, dest: str, sha256: str, signature: bool) -> Step:
    """Copy a checked package file (with its `.sig` when `signature`) into pacman's cache,
    where a rollback finds it; undone by removing what the step added."""
    args = {"source": source, "dest": dest, "sha256": sha256, "signature": signature}
    return Step(StepKind.CACHE_PACKAGE, args, f"copy {Path(dest).name} to {Path(dest).parent}")


def rebuild_package(name: str, version: str, dest: str) -> Step:
    """Make a package file of the installed `name` `version` from its files (none exists in any
    cache or archive) at `dest` in pacman's cache; undone by removing it."""
    args = {"name": name, "version": version, "dest": dest}
    description = f"make {Path(dest).name} from the installed files, in {Path(dest).parent}"
    return Step(StepKind.REBUILD_PACKAGE, args, description)


def pacman_remove(names: Sequence[str], previous_files: Mapping[str, str]) -> Step:
    """`pacman -R names`; undone by installing `previous_files` again."""
    args = {"names": list(names), "previous_files": dict(previous_files)}
    return Step(StepKind.PACMAN_REMOVE, args, "pacman -R: " + ", ".join(names))


def pin(pins: Sequence[Mapping[str, Any]], description: str) -> Step:
    return Step(StepKind.PIN, {"pins": [dict(p) for p in pins]}, description)


def unpin(names: Sequence[str], why: str = "") -> Step:
    return Step(StepKind.UNPIN, {"names": list(names)}, f"unpin {', '.join(names)}{why}")


# -- records ----------------------------------------------------------------------------------


def record_applied(patch_id: str, record: dict[str, Any]) -> Step:
    args = {"patch_id": patch_id, "state": RecordedState.APPLIED, "record": record}
    return Step(StepKind.RECORD, args, f"record {patch_id} as applied")


def record_adopted(patch_id: str, record: dict[str, Any], installed_at: float) -> Step:
    args = {
        "patch_id": patch_id,
        "state": RecordedState.ADOPTED,
        "record": record,
        "installed_at": installed_at,
    }
    return Step(StepKind.RECORD, args, f"record {patch_id} as applied (installed by clpctl)")


def record_reapplied(patch_id: str, reason: str, replaced: Sequence[str]) -> Step:
    args = {
        "patch_id": patch_id,
        "state": RecordedState.REAPPLIED,
        "reason": reason,
        "replaced": list(replaced),
    }
    return Step(StepKind.RECORD, args, f"record {patch_id} as re-applied")


def record_rolled_back(patch_id: str) -> Step:
    args = {"patch_id": patch_id, "state": RecordedState.ROLLED_BACK, "record": {}}
    return Step(StepKind.RECORD, args, f"record {patch_id} as rolled back")


def record_revert(revert_id: str, record: dict[str, Any]) -> Step:
    return Step(StepKind.RECORD_REVERT, {"id": revert_id, "record": record}, "record the revert")


def record_revert_rolled_back(revert_id: str) -> Step:
    return Step(
        StepKind.RECORD_REVERT,
        {"id": revert_id, "state": "rolled-back"},
        f"record {revert_id} as rolled back",
    )


def record_transaction_undone(
    transaction_id: int, health: str | None = None, message: str | None = None
) -> Step:
    """Mark the transaction undone; `health` and `message` (the automatic undo's) too."""
    args: dict[str, Any] = {"id": transaction_id, "status": TransactionStatus.UNDONE}
    if health is not None:
        args |= {"health": health, "message": message}
    return Step(StepKind.RECORD_TRANSACTION, args, f"record transaction {transaction_id} as undone")


# -- notices ----------------------------------------------------------------------------------


def motd(path: str, text: str) -> Step:
    """Write the message of the day file `path` (a target path in /run/motd.d or
    /etc/motd.d); undone by putting back what was there."""
    return Step(StepKind.MOTD, {"path": path, "text": text}, f"tell the user in {path}")


# -- handlers ---------------------------------------------------------------------------------


class Handler(ABC):
    """Base of the step handlers: `do` acts, `undo` reverses (by default nothing to reverse).
    A handler with `undo_last` is undone after every later step's undo, even on a retry."""

    undo_last = False

    def __init__(self, session: Session) -> None:
        self.session = session
        self.config = session.config

    @abstractmethod
    def do(self, run: StepRun) -> None: ...

    def undo(self, run: StepRun) -> None:
        return None
