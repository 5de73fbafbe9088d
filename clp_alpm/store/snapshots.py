"""Content-addressed file snapshots of the target system: take, compare, restore.

`SnapshotStore` is the one entry point the operations use; the work is done beside it:
`model` (what a snapshot records), `observe` (reading the live paths), `objects` (the
content-addressed objects), `manifests` (one manifest per snapshot, its records in chunks),
`restore` (putting a snapshot back) and `durable` (crash-safe writes).

Store layout (all 0700 dirs, 0600 files, since config files such as /etc/shadow end up here):

    objects/<2 hex>/<62 hex>   larger file contents and manifest chunks, named by sha256
    packs/<32 hex>             small file contents, compressed, many to a pack (objects.py)
    snapshots/<id>.json        one manifest per snapshot: id, created, chunk digests
    tmp/                       temp files, renamed into place once fsynced
    gc-clean                   empty: nothing was forgotten or failed since the last gc
"""

from __future__ import annotations

import gc
import os
import stat
import time

from clp_alpm.atomicfile import fsync_directory
from clp_alpm.errors import SnapshotError
from clp_alpm.paths import is_dir, refuse_symlink
from clp_alpm.store.durable import unlink_quietly
from clp_alpm.store.manifests import Manifests
from clp_alpm.store.model import FileState, Snapshot
from clp_alpm.store.objects import PACKED_MAX, ObjectStore
from clp_alpm.store.observe import Observer, Resolver

TYPE_CHECKING = False  # the hooks' path: no collections at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from _typeshed import StrPath

PROGRESS_EVERY = 500  # paths between progress reports: small snapshots report nothing
INDEX_OBJECTS_ABOVE = 2000  # paths in one snapshot above which the objects are listed once
_STALE_TEMP_SECONDS = 3600  # a crash's leftovers are this old; a live writer's are seconds old
# Written by a whole gc, removed before a manifest goes or when a take fails: prune (which
# every writing command runs) reads the whole store only when something may be unreferenced.
# Losing it costs one gc more; a stamp that outlived a removal costs disk until the next one.
GC_CLEAN = "gc-clean"


def _lstat_mode(path: str) -> int:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return 0


class SnapshotStore:
    """Snapshots kept under `directory`. Not safe for concurrent writers: callers hold the lock."""

    def __init__(
        self,
        directory: StrPath,
        protected: Mapping[str, StrPath] | None = None,
        packed_max: int = PACKED_MAX,
    ) -> None:
        self.directory = os.fspath(directory)
        # what no snapshotted or restored path may resolve to: the store itself, and clp's
        # other own paths its owner names (Config.own_paths)
        self.protected = {
            "the snapshot store": self.directory,
            **{what: os.fspath(path) for what, path in (protected or {}).items()},
        }
        self.objects = ObjectStore(self.directory, packed_max)
        self.manifests = Manifests(self.directory, self.objects)
        self.objects_dir = self.objects.objects_dir
        self.snapshots_dir = self.manifests.snapshots_dir
        self.tmp_dir = self.objects.tmp_dir
        self.gc_clean = f"{self.directory}/{GC_CLEAN}"
        self._observer = Observer(self.objects)

    @property
    def bytes_hashed(self) -> int:
        """Bytes of target files read and hashed (not store objects): shows the stat shortcut
        works."""
        return self._observer.bytes_hashed

    def take(
        self,
        root: StrPath,
        paths: Iterable[str],
        previous: Snapshot | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Snapshot:
        """Record every path under `root`.

        With `previous`, a file whose size, mtime, inode and ctime equal its record there is
        not read again (unless its ctime was within RACY_MARGIN_NS of that snapshot).
        `progress` hears the number of paths done, every PROGRESS_EVERY paths and at the end.
        """
        created = time.time()
        self._ensure_layout()
        where = Resolver(root, self.protected)
        paths = list(paths)
        # Taking makes a few short-lived objects a path (stat results, tuples) and no cycles:
        # the collector would walk every object of the process (the previous snapshot's
        # records among them) a few times over for nothing. It runs again afterwards.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self.objects.start_batch(list_index=len(paths) >= INDEX_OBJECTS_ABOVE)
            try:
                states = self._observer.observe_paths(
                    where, paths, previous, progress, PROGRESS_EVERY
                )
                snapshot = Snapshot(self.manifests.new_id(created), created, tuple(states))
                self.manifests.write(snapshot, previous)
            finally:
                self.objects.end_batch()
        except BaseException:
            self._gc_due()  # what it stored before failing is no snapshot's
            raise
        finally:
            if collecting:
                gc.enable()
        return snapshot

    def compose(self, files: Iterable[FileState], created: float) -> Snapshot:
        """A new snapshot made of records from others (their objects are in the store).
        `created` is the oldest of theirs: the stat shortcut trusts nothing newer."""
        records = tuple(files)
        for record in records:
            if record.digest is not None and not self.objects.has_content(record):
                raise self.objects.missing(record.digest)
        self._ensure_layout()
        snapshot = Snapshot(self.manifests.new_id(time.time()), created, records)
        try:
            self.manifests.write(snapshot)
        except BaseException:
            self._gc_due()  # chunks it stored before failing are no snapshot's
            raise
        return snapshot

    def load(self, snapshot_id: str) -> Snapshot:
        """The stored snapshot `snapshot_id` (SnapshotError if there is none)."""
        return self.manifests.load(snapshot_id)

    def list_ids(self) -> list[str]:
        """Ids of the stored snapshots, oldest first."""
        return self.manifests.list_ids()

    def current_state(self, root: StrPath, path: str) -> FileState:
        """What `path` holds now (stat and hash; nothing is written to the store)."""
        where = Resolver(root, self.protected)
        clean, host = where.locate(path)
        return self._observer.observe(where, clean, host, None, None, keep=False)

    def changed_paths(self, root: StrPath, snapshot: Snapshot) -> list[str]:
        """Paths whose kind, content, mode or owner differ from `snapshot` (timestamps ignored)."""
        where = Resolver(root, self.protected)
        view = self._observer.observe_all(where, list(snapshot.files), snapshot.created_ns)
        return [
            record.path
            for record in snapshot.files
            if (now := view.current[record.path]) is None or not now.same_content_as(record)
        ]

    def restore(
        self, root: StrPath, snapshot: Snapshot, paths: Iterable[str] | None = None
    ) -> list[str]:
        """Put back exactly what `snapshot` recorded (all paths, or only `paths`).

        Everything that can be checked is checked before the first write: every path stays
        inside the root, every object needed is present and intact, nothing in the way is a
        non-empty directory. Returns the paths that differed and were restored.
        """
        # Imported here: only putting files back (rollback, undo) needs it, and the pacman
        # hooks, which only take snapshots, should not pay for loading it.
        from clp_alpm.store.restore import restore_snapshot

        return restore_snapshot(self._observer, root, snapshot, paths, self.protected)

    def read_content(self, state: FileState) -> bytes:
        """A regular file's recorded content (checked against its digest)."""
        if state.kind != "file" or state.digest is None:
            raise SnapshotError(f"{state.path}: not a regular file in the snapshot")
        return self.objects.read_file(state)

    def delete(self, snapshot_id: str) -> None:
        """Remove a snapshot and every object no other snapshot references."""
        manifest = self.manifests.path(snapshot_id)
        self._gc_due()
        try:
            os.unlink(manifest)
        except FileNotFoundError:
            raise SnapshotError(f"no snapshot {snapshot_id} in {self.directory}") from None
        fsync_directory(self.snapshots_dir)
        self.gc()

    def forget(self, snapshot_ids: list[str]) -> None:
        """Remove these snapshots' manifests, not their objects: what only they referenced
        stays until the next gc (which reads every manifest; the pacman hooks do not)."""
        removed = False
        if snapshot_ids:
            self._gc_due()
        for snapshot_id in snapshot_ids:
            try:
                os.unlink(self.manifests.path(snapshot_id))
                removed = True
            except FileNotFoundError:
                pass
        if removed:
            fsync_directory(self.snapshots_dir)

    def prune(self, keep: set[str]) -> int:
        """Delete every snapshot not in `keep`, leftover temp files, and the objects no kept
        snapshot references (a whole gc, unless GC_CLEAN says nothing can be unreferenced);
        return how many snapshots went. Callers hold the lock."""
        doomed = [snapshot_id for snapshot_id in self.list_ids() if snapshot_id not in keep]
        if doomed:
            self._gc_due()
        for snapshot_id in doomed:
            os.unlink(self.manifests.path(snapshot_id))
        if doomed:
            fsync_directory(self.snapshots_dir)
        if is_dir(self.tmp_dir):
            for leftover in os.listdir(self.tmp_dir):
                unlink_quietly(f"{self.tmp_dir}/{leftover}")
        if not stat.S_ISREG(_lstat_mode(self.gc_clean)):
            self.gc()
        return len(doomed)

    def _gc_due(self) -> None:
        """Before something may become unreferenced. Never raises: whatever stands at the
        stamp's path and cannot be removed is no regular file, and prune then collects."""
        try:  # noqa: SIM105 - no contextlib on the hooks' path
            os.unlink(self.gc_clean)
        except OSError:
            pass

    def _gc_done(self) -> None:
        """The stamp of a whole gc: best effort (without it, the next prune collects). Never
        waits: a FIFO there is not opened for a reader (O_NONBLOCK), nor a link followed."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:  # noqa: SIM105 - no contextlib on the hooks' path
            os.close(os.open(self.gc_clean, flags, 0o600))
        except OSError:
            pass

    def gc(self) -> int:
        """Delete objects no snapshot references; return how many. A damaged manifest or chunk
        stops it before anything is deleted (it could not tell what is still needed)."""
        referenced: set[str] = set()
        packs: set[str] = set()
        for snapshot_id in self.list_ids():
            manifest = self.manifests.read(snapshot_id)
            for chunk in manifest.chunks:
                if chunk in referenced:
                    continue  # shared with a snapshot already read
                referenced.add(chunk)
                for record in self.manifests.read_chunk(manifest, chunk):
                    if record.packed is not None:
                        packs.add(record.packed[0])
                    elif record.digest:
                        referenced.add(record.digest)
        removed = 0
        for digest, object_path in self.objects.stored():
            if digest not in referenced:
                os.unlink(object_path)
                removed += 1
        for name, pack_path in self.objects.stored_packs():
            if name not in packs:
                os.unlink(pack_path)
                removed += 1
        self.objects.forget_packs_present()
        self._gc_done()
        self._remove_stale_temp_files()
        return removed

    def _ensure_layout(self) -> None:
        for directory in (self.directory, self.objects_dir, self.snapshots_dir, self.tmp_dir):
            refuse_symlink(directory)  # the store writes by name below it
            if not is_dir(directory):
                os.makedirs(directory, 0o700)
                os.chmod(directory, 0o700)

    def _remove_stale_temp_files(self) -> None:
        """Temp files left by a crash (an hour old: a live writer's are seconds old)."""
        cutoff = time.time() - _STALE_TEMP_SECONDS
        try:
            names = os.listdir(self.tmp_dir)
        except FileNotFoundError:
            return
        for name in names:
            path = f"{self.tmp_dir}/{name}"
            try:
                if os.lstat(path).st_mtime < cutoff:
                    os.unlink(path)
            except FileNotFoundError:
                pass
