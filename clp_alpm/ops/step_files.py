"""Step handlers that touch files: snapshots, restores, and the patch directory.

Every restore is checked after it is done (`restore_exactly`): a file that still differs from
its snapshot fails the step, and the journal undoes the operation.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from clp_alpm.config import Config
from clp_alpm.errors import ClpError, PathEscapeError
from clp_alpm.ops.steps import Handler, StepKind
from clp_alpm.paths import open_dir_inside
from clp_alpm.store.journal import StepRun
from clp_alpm.store.model import Snapshot

if TYPE_CHECKING:
    from clp_alpm.ops.session import Session


class SnapshotStep(Handler):
    def do(self, run: StepRun) -> None:
        files = run.args["files"]
        self.session.check_own_paths(store_only=True)
        snapshot = self.session.store.take(
            self.config.root,
            files,
            progress=lambda done: self.session.events.counting("snapshot", done, len(files)),
        )
        run.save(snapshot=snapshot.id)


class RestorePointStep(SnapshotStep):
    """A snapshot whose undo restores it. As an operation's first step it is undone last,
    after every later step's undo (a pacman reinstall rewrites files): the files end exactly
    as they were before the operation. When a later undo fails, the journal leaves this one
    for the retry (`undo_last`), so that it still comes after that reinstall."""

    undo_last = True

    def undo(self, run: StepRun) -> None:
        if run.data.get("snapshot"):
            restore_exactly(self.session, self.session.store.load(run.data["snapshot"]))


class RestoreFilesStep(Handler):
    """Restore a snapshot: all of it, or the "paths" given."""

    def do(self, run: StepRun) -> None:
        if run.args["snapshot"]:
            snapshot = self.session.store.load(run.args["snapshot"])
            if run.args.get("paths") is not None:
                snapshot = snapshot.only(run.args["paths"])
            restore_exactly(self.session, snapshot)

    def undo(self, run: StepRun) -> None:
        snapshot = earlier_snapshot(self.session, run, StepKind.SNAPSHOT_CURRENT)
        if snapshot is not None:
            restore_exactly(self.session, snapshot)


class ExtractStep(Handler):
    """Move what verify unpacked (a private dir in StateDir, written from the bytes it checked)
    into a staging dir inside PatchDir, then rename that into place: on one file system no
    byte is written again; across two, the tree is copied."""

    def do(self, run: StepRun) -> None:
        unpacked = Path(run.args["unpacked"])
        final = Path(self.config.host(run.args["patch_dir"], follow_last=False))
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if final.exists():
            raise ClpError(f"{final} already exists")
        import tempfile  # (and shutil, bz2, lzma) not for every recovery, which imports this

        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=final.parent))
        run.save(staging=str(staging), final=str(final))
        self.session.check_own_paths(store_only=True)  # StateDir still where it was
        try:
            os.rename(unpacked, staging)  # onto the empty staging dir, replacing it
        except OSError as err:
            if err.errno != errno.EXDEV:
                raise ClpError(f"cannot move {unpacked} to {staging}: {err.strerror}") from None
            from clp_alpm.formats.extract import copy_tree  # the archive code: only here

            copy_tree(unpacked, staging)
        os.chmod(staging, 0o755)
        os.rename(staging, final)

    def undo(self, run: StepRun) -> None:
        parent = run.args["patch_dir"].rstrip("/").rpartition("/")[0]
        for key in ("staging", "final"):
            if key in run.data:
                name = Path(run.data[key]).name
                host = same_place(self.config, f"{parent}/{name}", run.data[key])
                if os.path.lexists(host):
                    import shutil

                    shutil.rmtree(host)


class RetirePatchDirStep(Handler):
    """Move the patch dir into PatchDir/.trash (same file system: a rename, never a copy),
    so that undo can put it back; the trash is emptied once the rollback is done."""

    def do(self, run: StepRun) -> None:
        config = self.config
        source = Path(config.host(run.args["patch_dir"], follow_last=False))
        trash = trash_dir(config)
        trash.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = trash / f"{int(time.time() * 1000)}-{source.name}"
        run.save(source=str(source), trash=str(target))
        if source.exists():
            # by descriptors of the two directories, each reached without following a link
            # out: a link swapped in since cannot send the patch dir anywhere else
            parent, _, name = run.args["patch_dir"].rstrip("/").rpartition("/")
            from_fd = open_dir_inside(config.root, parent or "/")
            try:
                to_fd = open_dir_inside(config.root, f"{config.patch_dir.rstrip('/')}/.trash")
                try:
                    os.rename(name, target.name, src_dir_fd=from_fd, dst_dir_fd=to_fd)
                finally:
                    os.close(to_fd)
            finally:
                os.close(from_fd)

    def undo(self, run: StepRun) -> None:
        trash, source = run.data.get("trash"), run.data.get("source")
        if not trash or not source:
            return
        patch_dir = run.args["patch_dir"]
        source = same_place(self.config, patch_dir, source)
        in_trash = f"{self.config.patch_dir.rstrip('/')}/.trash/{Path(trash).name}"
        trash = same_place(self.config, in_trash, trash)
        if os.path.lexists(trash) and not os.path.lexists(source):
            os.rename(trash, source)


def same_place(config: Config, target: str, saved: str) -> str:
    """The host path of `target` (never through a link), as `saved` when the step ran; a
    PathEscapeError if it resolves elsewhere now (a link was put on the way since)."""
    host = str(config.host(target, follow_last=False))
    if host != saved:
        raise PathEscapeError(f"{target} resolves to {host} now, not to {saved}; not touching it")
    return host


HANDLERS: dict[StepKind, type[Handler]] = {
    StepKind.SNAPSHOT_BEFORE: SnapshotStep,
    StepKind.SNAPSHOT_AFTER: SnapshotStep,
    StepKind.SNAPSHOT_CURRENT: SnapshotStep,
    StepKind.RESTORE_POINT: RestorePointStep,
    StepKind.RESTORE_FILES: RestoreFilesStep,
    StepKind.EXTRACT: ExtractStep,
    StepKind.RETIRE_PATCH_DIR: RetirePatchDirStep,
}


def earlier_snapshot(session: Session, run: StepRun, kind: StepKind) -> Snapshot | None:
    """The snapshot an earlier step of this operation took, if it got that far."""
    snapshot_id = run.earlier.get(kind, {}).get("snapshot")
    return session.store.load(snapshot_id) if snapshot_id else None


def restore_exactly(session: Session, snapshot: Snapshot) -> None:
    """Restore a snapshot and check that every file now matches it."""
    session.check_own_paths(store_only=True)
    session.store.restore(session.config.root, snapshot)
    different = session.store.changed_paths(session.config.root, snapshot)
    if different:
        raise ClpError(
            "files still differ from the snapshot after restoring: " + ", ".join(different)
        )


def trash_dir(config: Config) -> Path:
    """PatchDir/.trash, resolved inside the root (PathEscapeError if it or PatchDir is a link
    that leads out, or it is a link at all: a rename into it must stay in PatchDir)."""
    return Path(config.host(config.patch_dir.rstrip("/") + "/.trash", follow_last=False))


def empty_trash(config: Config) -> None:
    """Delete patch dirs retired by finished rollbacks and staging dirs of killed extractions
    (only ever called under the lock, with no operation left unfinished). A trash that is a
    link is left alone: the rollback that needs it refuses it."""
    try:
        trash = trash_dir(config)
    except PathEscapeError:
        return
    found = [trash] if os.path.lexists(trash) else []
    patch_dir = Path(config.host_patch_dir)
    if patch_dir.is_dir():
        found += patch_dir.glob(".staging-*")
    if found:  # shutil (and bz2, lzma) only then: every recovery calls this
        import shutil

        for leftover in found:
            shutil.rmtree(leftover, ignore_errors=True)
