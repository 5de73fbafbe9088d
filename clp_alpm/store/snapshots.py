"""Content-addressed file snapshots of the target system: take, compare, restore.

A snapshot records, for each declared path, what is there: a regular file (content, mode, owner,
mtime), a symlink (its target, never followed), a directory (mode, owner, mtime; not its
entries) or nothing (and which missing ancestors a script may create). Restore puts exactly that
back.

Store layout (all 0700 dirs, 0600 files, since config files such as /etc/shadow end up here):

    objects/<2 hex>/<62 hex>   file contents and manifest chunks, named by sha256
    snapshots/<id>.json        one manifest per snapshot: id, created, chunk digests
    tmp/                       temp files, renamed into place once fsynced

A manifest lists its records in chunks stored as objects. Chunk boundaries depend only on the
paths, so a second snapshot of an unchanged tree reuses every chunk and adds only its small
manifest; a change touches one chunk, not the whole list.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from clp_alpm.atomicfile import fsync_directory
from clp_alpm.errors import (
    ClpError,
    CorruptStoreError,
    SnapshotError,
    SpecialFileError,
    UnsafePathError,
    UsageError,
)
from clp_alpm.paths import normalize_target_path, under_root

READ_CHUNK = 1 << 20
KINDS = ("file", "symlink", "dir", "absent")
MANIFEST_FORMAT = 1
# A file whose ctime is this close to the time the previous snapshot started may have been
# written again within the same timestamp tick (or the 1-2 s granularity of some filesystems)
# without its stat data changing, so its recorded digest is not trusted ("racy git" problem).
RACY_MARGIN_NS = 2_000_000_000
# Chunk boundaries: after a path whose hash starts with a byte below this (1 in 64 on average).
_BOUNDARY_BELOW = 4
_MAX_CHUNK_RECORDS = 1024
_OBSERVE_ATTEMPTS = 3

_HEX_RE = re.compile(r"(?:[0-9a-f]{2})*")
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_ID_RE = re.compile(r"\d{8}T\d{6}\.\d{6}-[0-9a-f]{8}")
_TEMP_PREFIX = ".clp-restore-"


PROGRESS_EVERY = 500  # paths between progress reports: small snapshots report nothing
SYNCFS_ABOVE = 64  # new objects in one snapshot above which one syncfs() replaces their fsyncs
INDEX_OBJECTS_ABOVE = 2000  # paths in one snapshot above which the objects are listed once


@dataclass(frozen=True)
class FileState:
    """What one target path held: a file, symlink, directory, or nothing."""

    path: str
    kind: str
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    size: int = 0
    digest: str | None = None
    target: str | None = None
    created_dirs: tuple[str, ...] = ()
    # extended attributes of files and directories (file capabilities, ACLs, SELinux labels):
    # sorted (name, hex value) pairs
    xattrs: tuple[tuple[str, str], ...] = ()
    # Only for the stat shortcut of the next snapshot; never compared.
    ino: int = 0
    ctime_ns: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "kind": self.kind,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "mtime_ns": self.mtime_ns,
            "size": self.size,
            "digest": self.digest,
            "target": self.target,
            "created_dirs": list(self.created_dirs),
            "xattrs": [list(pair) for pair in self.xattrs],
            "ino": self.ino,
            "ctime_ns": self.ctime_ns,
        }

    @classmethod
    def from_dict(cls, data: object) -> FileState:
        """Parse a record written by to_dict; raise CorruptStoreError on anything malformed."""
        if not isinstance(data, dict):
            raise CorruptStoreError("snapshot record is not an object")
        path = data.get("path")
        if not isinstance(path, str):
            raise CorruptStoreError("snapshot record has no path")

        def bad(problem: str) -> CorruptStoreError:
            return CorruptStoreError(f"snapshot record for {path!r}: {problem}")

        try:
            clean = normalize_target_path(path)
        except UsageError as err:
            raise bad(str(err)) from None
        if clean != path or clean == "/":
            raise bad("path is not a normalised target path")
        kind = data.get("kind")
        if kind not in KINDS:
            raise bad(f"unknown kind {kind!r}")
        numbers = {}
        for name in ("mode", "uid", "gid", "mtime_ns", "size", "ino", "ctime_ns"):
            value = data.get(name, 0)
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad(f"{name} is not an integer")
            numbers[name] = value
        if not 0 <= numbers["mode"] <= 0o7777:
            raise bad("mode is out of range")
        if min(numbers["uid"], numbers["gid"], numbers["size"], numbers["ino"]) < 0:
            raise bad("negative owner, size or inode")
        digest = data.get("digest")
        if kind == "file":
            if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
                raise bad("file record without a valid sha256 digest")
        elif digest is not None:
            raise bad(f"{kind} record carries a digest")
        target = data.get("target")
        if kind == "symlink":
            if not isinstance(target, str) or not target or "\0" in target:
                raise bad("symlink record without a valid target")
        elif target is not None:
            raise bad(f"{kind} record carries a symlink target")
        created = data.get("created_dirs", [])
        if not isinstance(created, list) or not all(isinstance(d, str) for d in created):
            raise bad("created_dirs is not a list of paths")
        if created and kind != "absent":
            raise bad(f"{kind} record lists created directories")
        ancestors = _ancestors(clean)
        if any(d not in ancestors for d in created):
            raise bad("created_dirs holds a path that is not an ancestor")
        return cls(
            path=clean,
            kind=kind,
            digest=digest,
            target=target,
            created_dirs=tuple(created),
            xattrs=_parse_xattrs(data.get("xattrs", []), bad),
            **numbers,
        )

    def same_content_as(self, other: FileState) -> bool:
        """Same kind, content or link target, mode and owner; timestamps do not count."""
        return (
            self.kind,
            self.digest,
            self.target,
            self.mode,
            self.uid,
            self.gid,
            self.xattrs,
        ) == (
            other.kind,
            other.digest,
            other.target,
            other.mode,
            other.uid,
            other.gid,
            other.xattrs,
        )


@dataclass(frozen=True)
class Snapshot:
    id: str
    created: float
    files: tuple[FileState, ...]
    _by_path: dict[str, FileState] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_path", {state.path: state for state in self.files})

    def get(self, path: str) -> FileState | None:
        return self._by_path.get(normalize_target_path(path))

    @property
    def paths(self) -> list[str]:
        return [state.path for state in self.files]

    def only(self, paths: Iterable[str]) -> Snapshot:
        """The same snapshot restricted to `paths` (SnapshotError for a path it lacks)."""
        return Snapshot(self.id, self.created, tuple(_select(self, paths)))


class SnapshotStore:
    """Snapshots kept under `directory`. Not safe for concurrent writers: callers hold the lock."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.objects_dir = self.directory / "objects"
        self.snapshots_dir = self.directory / "snapshots"
        self.tmp_dir = self.directory / "tmp"
        self._objects_prefix = f"{self.objects_dir}/"
        # Bytes of target files read and hashed (not store objects): shows the stat shortcut works.
        self.bytes_hashed = 0
        self._dirs_to_sync: set[Path] = set()
        # Inside take(), new objects wait as temp files: before the manifest that names them,
        # a few are fsynced one by one and many with one syncfs() (10,000 fsyncs took seconds;
        # a syncfs in a pacman hook would flush all pacman just wrote), and only then renamed
        # into place, so an object under its name is always complete.
        self._batch = False
        self._staged: dict[str, str] = {}  # digest -> temp path, durable and named at flush
        # In a large take(), the objects present, listed once instead of a stat per file.
        self._index: set[str] | None = None

    # ----------------------------------------------------------------- public API

    def take(
        self,
        root: Path,
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
        trust_before_ns = _seconds_to_ns(previous.created) if previous is not None else None
        self._ensure_layout()
        where = _Resolver(root)
        states: list[FileState] = []
        seen: set[str] = set()
        paths = list(paths)
        self._batch = True
        self._index = self._list_objects() if len(paths) >= INDEX_OBJECTS_ABOVE else None
        try:
            for path in paths:
                clean, host = where.locate(path)
                if clean in seen:
                    continue
                seen.add(clean)
                hint = previous._by_path.get(clean) if previous is not None else None
                states.append(self._observe(where, clean, host, hint, trust_before_ns, keep=True))
                if progress is not None and len(seen) % PROGRESS_EVERY == 0:
                    progress(len(seen))
            if progress is not None and len(seen) >= PROGRESS_EVERY:
                progress(len(seen))
            snapshot = Snapshot(self._new_id(created), created, tuple(states))
            self._write_manifest(snapshot)
        finally:
            # Also on failure: a later snapshot may reuse these objects by name.
            self._sync_object_dirs()
            self._batch = False
            self._index = None
        return snapshot

    def compose(self, files: Iterable[FileState], created: float) -> Snapshot:
        """A new snapshot made of records from others (their objects are in the store).
        `created` is the oldest of theirs: the stat shortcut trusts nothing newer."""
        records = tuple(files)
        for record in records:
            if record.digest is not None and not self._has_object(record.digest):
                raise CorruptStoreError(
                    f"snapshot store {self.directory}: object {record.digest} is missing"
                )
        self._ensure_layout()
        snapshot = Snapshot(self._new_id(time.time()), created, records)
        self._write_manifest(snapshot)
        return snapshot

    def load(self, snapshot_id: str) -> Snapshot:
        manifest = self._manifest_path(snapshot_id)
        doc = self._read_manifest(manifest, snapshot_id)
        files: list[FileState] = []
        for digest in doc["chunks"]:
            files.extend(self._read_chunk(digest, manifest))
        if len(files) != doc["count"]:
            raise CorruptStoreError(
                f"{manifest}: lists {doc['count']} files, chunks hold {len(files)}"
            )
        return Snapshot(snapshot_id, float(doc["created"]), tuple(files))

    def list_ids(self) -> list[str]:
        """Ids of the stored snapshots, oldest first."""
        try:
            names = os.listdir(self.snapshots_dir)
        except FileNotFoundError:
            return []
        ids = [name[: -len(".json")] for name in names if name.endswith(".json")]
        return sorted(i for i in ids if _ID_RE.fullmatch(i))

    def current_state(self, root: Path, path: str) -> FileState:
        """What `path` holds now (stat and hash; nothing is written to the store)."""
        where = _Resolver(root)
        clean, host = where.locate(path)
        return self._observe(where, clean, host, None, None, keep=False)

    def changed_paths(self, root: Path, snapshot: Snapshot) -> list[str]:
        """Paths whose kind, content, mode or owner differ from `snapshot` (timestamps ignored)."""
        where = _Resolver(root)
        view = self._observe_all(where, list(snapshot.files), _seconds_to_ns(snapshot.created))
        return [
            record.path
            for record in snapshot.files
            if (now := view.current[record.path]) is None or not now.same_content_as(record)
        ]

    def restore(
        self, root: Path, snapshot: Snapshot, paths: Iterable[str] | None = None
    ) -> list[str]:
        """Put back exactly what `snapshot` recorded (all paths, or only `paths`).

        Everything that can be checked is checked before the first write: every path stays
        inside the root, every object needed is present and intact, nothing in the way is a
        non-empty directory. Returns the paths that differed and were restored.
        """
        records = _select(snapshot, paths)
        where = _Resolver(root)
        view = self._observe_all(where, records, _seconds_to_ns(snapshot.created))
        plan = [r for r in records if _needs_restore(where, r, view)]
        self._check_plan(where, records, plan, view)
        return self._apply(root, records, plan, view)

    def read_content(self, state: FileState) -> bytes:
        """A regular file's recorded content (checked against its digest)."""
        if state.kind != "file" or state.digest is None:
            raise SnapshotError(f"{state.path}: not a regular file in the snapshot")
        return self._read_blob(state.digest)

    def delete(self, snapshot_id: str) -> None:
        """Remove a snapshot and every object no other snapshot references."""
        manifest = self._manifest_path(snapshot_id)
        try:
            os.unlink(manifest)
        except FileNotFoundError:
            raise SnapshotError(f"no snapshot {snapshot_id} in {self.directory}") from None
        fsync_directory(self.snapshots_dir)
        self.gc()

    def prune(self, keep: set[str]) -> int:
        """Delete every snapshot not in `keep`, leftover temp files, and the objects no kept
        snapshot references; return how many snapshots went. Callers hold the lock."""
        doomed = [snapshot_id for snapshot_id in self.list_ids() if snapshot_id not in keep]
        for snapshot_id in doomed:
            os.unlink(self._manifest_path(snapshot_id))
        if doomed:
            fsync_directory(self.snapshots_dir)
        if self.tmp_dir.is_dir():
            for leftover in self.tmp_dir.iterdir():
                _unlink_quietly(str(leftover))
        self.gc()
        return len(doomed)

    def gc(self) -> int:
        """Delete objects no snapshot references; return how many. A damaged manifest or chunk
        stops it before anything is deleted (it could not tell what is still needed)."""
        referenced: set[str] = set()
        for snapshot_id in self.list_ids():
            manifest = self._manifest_path(snapshot_id)
            doc = self._read_manifest(manifest, snapshot_id)
            for chunk in doc["chunks"]:
                if chunk in referenced:
                    continue  # shared with a snapshot already read
                referenced.add(chunk)
                referenced.update(s.digest for s in self._read_chunk(chunk, manifest) if s.digest)
        removed = 0
        for digest, object_path in self._stored_objects():
            if digest not in referenced:
                os.unlink(object_path)
                removed += 1
        self._remove_stale_temp_files()
        return removed

    # ----------------------------------------------------------------- observing

    def _observe(
        self,
        where: _Resolver,
        clean: str,
        host: str,
        hint: FileState | None,
        trust_before_ns: int | None,
        keep: bool,
    ) -> FileState:
        for _attempt in range(_OBSERVE_ATTEMPTS):
            try:
                st = os.lstat(host)
            except (FileNotFoundError, NotADirectoryError):
                missing = _missing_ancestors(where.root, clean)
                return FileState(clean, "absent", created_dirs=missing)
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink(host)
                except OSError as err:
                    if err.errno in (errno.ENOENT, errno.EINVAL):
                        continue  # replaced while we looked
                    raise
                return _state_from_stat(clean, "symlink", st, target=target)
            if stat.S_ISDIR(st.st_mode):
                return _state_from_stat(clean, "dir", st, host=host)
            if not stat.S_ISREG(st.st_mode):
                raise SpecialFileError(
                    f"{clean}: is a {_special_kind(st.st_mode)}; clp only snapshots regular "
                    "files, symlinks and directories"
                )
            if (
                hint is not None
                and hint.digest is not None
                and _stat_matches(hint, st, trust_before_ns)
                and (not keep or self._has_object(hint.digest))  # a lost object is made again
            ):
                # setting an xattr changes the ctime, which matched: the hint's xattrs hold
                return _state_from_stat(clean, "file", st, digest=hint.digest, xattrs=hint.xattrs)
            state = self._read_regular_file(clean, host, st, keep)
            if state is not None:
                return state
        raise SnapshotError(
            f"{clean}: kept changing while clp read it; try again when nothing writes to it"
        )

    def _read_regular_file(
        self, clean: str, host: str, st: os.stat_result, keep: bool
    ) -> FileState | None:
        """Hash (and with `keep`, store) the file; None if it changed under us."""
        try:
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as err:
            if err.errno == errno.ELOOP:  # became a symlink
                return None
            raise
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode) or (before.st_dev, before.st_ino) != (
                st.st_dev,
                st.st_ino,
            ):
                return None
            digest, length = self._hash_stream(fd, keep)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        if _stat_key(before) != _stat_key(after) or length != after.st_size:
            return None
        return _state_from_stat(clean, "file", after, digest=digest, host=host)

    def _hash_stream(self, fd: int, keep: bool) -> tuple[str, int]:
        sha = hashlib.sha256()
        length = 0
        temp_fd, temp_path = _create_temp(self.tmp_dir, "object-") if keep else (-1, None)
        try:
            while chunk := os.read(fd, READ_CHUNK):
                sha.update(chunk)
                length += len(chunk)
                self.bytes_hashed += len(chunk)
                if keep:
                    _write_all(temp_fd, chunk)
            digest = sha.hexdigest()
            if temp_path is not None:
                self._sync_or_defer(temp_fd)
                os.close(temp_fd)
                temp_fd = -1
                self._install_object(temp_path, digest, length)
                temp_path = None
        finally:
            if temp_fd >= 0:
                os.close(temp_fd)
            if temp_path is not None:
                _unlink_quietly(temp_path)
        return digest, length

    def _observe_for_compare(
        self, where: _Resolver, record: FileState, trust_before_ns: int
    ) -> FileState | None:
        """Current state of a recorded path, or None if a special file sits there now."""
        clean, host = where.locate(record.path)
        try:
            return self._observe(where, clean, host, record, trust_before_ns, keep=False)
        except SpecialFileError:
            return None

    def _observe_all(
        self, where: _Resolver, records: list[FileState], trust_before_ns: int
    ) -> _PresentView:
        """Observe outermost first; never look below a declared path that is not a directory
        now (a symlink a script put there may lead anywhere): what is below it counts as absent."""
        current: dict[str, FileState | None] = {}
        shadowed: set[str] = set()
        for record in sorted(records, key=_depth):
            if not shadowed.isdisjoint(_ancestors(record.path)):
                current[record.path] = FileState(record.path, "absent")
                continue
            now = self._observe_for_compare(where, record, trust_before_ns)
            current[record.path] = now
            unchanged_link = (
                now is not None
                and now.kind == "symlink" == record.kind
                and now.target == record.target
            )
            if _kind_of(now) != "dir" and not unchanged_link:
                shadowed.add(record.path)
        recreated = {
            r.path for r in records if r.kind == "dir" and _kind_of(current[r.path]) != "dir"
        }
        return _PresentView(current, shadowed, recreated)

    # ----------------------------------------------------------------- restoring

    def _check_plan(
        self,
        where: _Resolver,
        records: list[FileState],
        plan: list[FileState],
        view: _PresentView,
    ) -> None:
        emptied = _paths_emptied_by(records)
        to_verify: list[str] = []
        for record in plan:
            now = view.current[record.path]
            if record.kind != "dir" and _kind_of(now) == "dir":
                _check_can_remove_directory(where, record, emptied)
            if record.kind != "absent":
                _check_parents_are_directories(where, record.path, view)
            if record.kind == "file" and record.digest is not None and not _same_file(now, record):
                to_verify.append(record.digest)
        for digest in dict.fromkeys(to_verify):
            self._verify_object(digest)

    def _apply(
        self,
        root: Path,
        records: list[FileState],
        plan: list[FileState],
        view: _PresentView,
    ) -> list[str]:
        planned = {r.path for r in plan}
        dir_records = [r for r in records if r.kind == "dir"]
        # 1. Directories that are missing or replaced by something else, outermost first.
        where = _Resolver(root)
        for record in sorted(dir_records, key=_depth):
            if record.path in view.recreated:
                _recreate_directory(where, record, view.current[record.path])
        where = _Resolver(root)  # step 1 may have replaced a symlink by a directory
        # 2. Files, symlinks and absences, innermost first so directories empty before removal.
        for record in sorted((r for r in plan if r.kind != "dir"), key=_depth, reverse=True):
            now = view.current[record.path]
            with _os_errors_as_snapshot_errors(record.path):
                if record.kind == "absent":
                    _restore_absent(where, record, now, view.created_dirs_to_check(record))
                    continue
                _, host = where.locate(record.path)
                if record.kind == "file":
                    self._restore_file(record, host, now)
                else:
                    _restore_symlink(record, host, now)
        # 3. Directory metadata last, innermost first: restoring entries changes their mtime.
        for record in sorted(dir_records, key=_depth, reverse=True):
            _, host = where.locate(record.path)
            with _os_errors_as_snapshot_errors(record.path):
                _set_directory_metadata(record, host)
        return [r.path for r in records if r.path in planned]

    def _restore_file(self, record: FileState, host: str, now: FileState | None) -> None:
        if _same_file(now, record) and _set_regular_file_metadata(record, host):
            return
        if _kind_of(now) == "dir":
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(host)  # checked empty (or emptied) beforehand
        _make_parents(os.path.dirname(host))
        temp_fd, temp_path = _create_temp(os.path.dirname(host), _TEMP_PREFIX)
        try:
            self._copy_object(str(record.digest), temp_fd)
            _set_metadata(temp_fd, record)
            os.close(temp_fd)
            temp_fd = -1
            os.replace(temp_path, host)
            temp_path = None
            _fsync_dir_quietly(os.path.dirname(host))
        finally:
            if temp_fd >= 0:
                os.close(temp_fd)
            if temp_path is not None:
                _unlink_quietly(temp_path)

    # ----------------------------------------------------------------- objects

    def _object_path(self, digest: str) -> Path:
        return self.objects_dir / digest[:2] / digest[2:]

    def _has_object(self, digest: str) -> bool:
        if digest in self._staged:
            return True
        if self._index is not None:
            return digest in self._index
        # Plain strings: this runs once per unchanged file, pathlib would dominate the cost.
        return os.path.isfile(f"{self._objects_prefix}{digest[:2]}/{digest[2:]}")

    def _list_objects(self) -> set[str]:
        """Names of the stored objects (strings only: this lists every object)."""
        found: set[str] = set()
        try:
            prefixes = os.listdir(self.objects_dir)
        except FileNotFoundError:
            return found
        for prefix in prefixes:
            if len(prefix) == 2:
                found.update(prefix + rest for rest in os.listdir(self._objects_prefix + prefix))
        return found

    def _install_object(self, temp_path: str, digest: str, length: int) -> None:
        """Move a fsynced temp file into place, unless an intact-looking object is there.
        Inside take(), the temp file waits (unsynced) for the flush in _sync_object_dirs."""
        if self._batch:
            if digest in self._staged or self._intact_object(digest, length):
                _unlink_quietly(temp_path)
            else:
                self._staged[digest] = temp_path
            return
        self._move_into_place(temp_path, digest, length)

    def _intact_object(self, digest: str, length: int) -> bool:
        """An object of the right size is there (a truncated one is replaced)."""
        try:
            return os.stat(self._object_path(digest)).st_size == length
        except FileNotFoundError:
            return False

    def _move_into_place(self, temp_path: str, digest: str, length: int) -> None:
        final = self._object_path(digest)
        if self._intact_object(digest, length):
            _unlink_quietly(temp_path)
            return
        if not final.parent.is_dir():
            final.parent.mkdir(mode=0o700)
            self._dirs_to_sync.add(self.objects_dir)
        os.replace(temp_path, final)
        self._dirs_to_sync.add(final.parent)

    def _store_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if digest in self._staged or self._intact_object(digest, len(data)):
            return digest
        temp_path = self._write_temp(data, "object-", object_data=True)
        self._install_object(temp_path, digest, len(data))
        return digest

    def _write_temp(self, data: bytes, prefix: str, object_data: bool = False) -> str:
        """`data` in a new fsynced temp file of the store (an object's sync may be batched);
        its path (removed on failure)."""
        temp_fd, temp_path = _create_temp(self.tmp_dir, prefix)
        try:
            _write_all(temp_fd, data)
            if object_data:
                self._sync_or_defer(temp_fd)
            else:
                os.fsync(temp_fd)
        except BaseException:
            os.close(temp_fd)
            _unlink_quietly(temp_path)
            raise
        os.close(temp_fd)
        return temp_path

    def _open_object(self, digest: str) -> int:
        path = self._object_path(digest)
        try:
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise CorruptStoreError(
                f"snapshot store {self.directory}: object {digest} is missing"
            ) from None

    def _corrupt(self, digest: str) -> CorruptStoreError:
        return CorruptStoreError(
            f"snapshot store object {self._object_path(digest)} is corrupted "
            "(its content does not match its sha256 name); nothing was restored from it"
        )

    def _verify_object(self, digest: str) -> None:
        fd = self._open_object(digest)
        try:
            sha = hashlib.sha256()
            while chunk := os.read(fd, READ_CHUNK):
                sha.update(chunk)
        finally:
            os.close(fd)
        if sha.hexdigest() != digest:
            raise self._corrupt(digest)

    def _copy_object(self, digest: str, out_fd: int) -> None:
        """Copy an object into `out_fd`, checking its digest on the way."""
        fd = self._open_object(digest)
        try:
            sha = hashlib.sha256()
            while chunk := os.read(fd, READ_CHUNK):
                sha.update(chunk)
                _write_all(out_fd, chunk)
        finally:
            os.close(fd)
        if sha.hexdigest() != digest:
            raise self._corrupt(digest)

    def _read_blob(self, digest: str) -> bytes:
        fd = self._open_object(digest)
        try:
            parts = []
            while chunk := os.read(fd, READ_CHUNK):
                parts.append(chunk)
        finally:
            os.close(fd)
        data = b"".join(parts)
        if hashlib.sha256(data).hexdigest() != digest:
            raise self._corrupt(digest)
        return data

    def _stored_objects(self) -> list[tuple[str, Path]]:
        found = []
        try:
            prefixes = os.listdir(self.objects_dir)
        except FileNotFoundError:
            return []
        for prefix in prefixes:
            if not re.fullmatch(r"[0-9a-f]{2}", prefix):
                continue
            for rest in os.listdir(self.objects_dir / prefix):
                if re.fullmatch(r"[0-9a-f]{62}", rest):
                    found.append((prefix + rest, self.objects_dir / prefix / rest))
        return found

    def _remove_stale_temp_files(self) -> None:
        """Temp files left by a crash (an hour old: a live writer's are seconds old)."""
        cutoff = time.time() - 3600
        try:
            names = os.listdir(self.tmp_dir)
        except FileNotFoundError:
            return
        for name in names:
            path = self.tmp_dir / name
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(path).st_mtime < cutoff:
                    os.unlink(path)

    # ----------------------------------------------------------------- manifests

    def _ensure_layout(self) -> None:
        for directory in (self.directory, self.objects_dir, self.snapshots_dir, self.tmp_dir):
            if not directory.is_dir():
                directory.mkdir(mode=0o700, parents=True)
                os.chmod(directory, 0o700)

    def _sync_or_defer(self, fd: int) -> None:
        if not self._batch:
            os.fsync(fd)

    def _sync_object_dirs(self) -> None:
        """Make every object written so far durable, then name it, then make the names
        durable: a crash leaves complete objects or temp files, never a torn object."""
        staged, self._staged = self._staged, {}
        if len(staged) > SYNCFS_ABOVE:
            _syncfs(self.tmp_dir)
        else:
            for temp_path in staged.values():
                _fsync_path(temp_path)
        for digest, temp_path in staged.items():
            self._move_into_place(temp_path, digest, os.stat(temp_path).st_size)
            if self._index is not None:
                self._index.add(digest)
        for directory in sorted(self._dirs_to_sync):
            fsync_directory(directory)
        self._dirs_to_sync.clear()

    def _new_id(self, created: float) -> str:
        stamp = datetime.fromtimestamp(created, UTC).strftime("%Y%m%dT%H%M%S.%f")
        while True:
            snapshot_id = f"{stamp}-{os.urandom(4).hex()}"
            if not (self.snapshots_dir / f"{snapshot_id}.json").exists():
                return snapshot_id

    def _manifest_path(self, snapshot_id: str) -> Path:
        if not isinstance(snapshot_id, str) or not _ID_RE.fullmatch(snapshot_id):
            raise UsageError(f"{snapshot_id!r} is not a snapshot id")
        return self.snapshots_dir / f"{snapshot_id}.json"

    def _write_manifest(self, snapshot: Snapshot) -> None:
        chunks = [self._store_blob(_encode_chunk(part)) for part in _split_chunks(snapshot.files)]
        self._sync_object_dirs()  # every object the manifest names is durable before it is
        doc = {
            "format": MANIFEST_FORMAT,
            "id": snapshot.id,
            "created": snapshot.created,
            "count": len(snapshot.files),
            "chunks": chunks,
        }
        data = json.dumps(doc, indent=1).encode("ascii")
        temp_path = self._write_temp(data, "manifest-")
        os.replace(temp_path, self._manifest_path(snapshot.id))
        fsync_directory(self.snapshots_dir)

    def _read_manifest(self, manifest: Path, snapshot_id: str) -> dict:
        try:
            raw = manifest.read_bytes()
        except FileNotFoundError:
            raise SnapshotError(f"no snapshot {snapshot_id} in {self.directory}") from None
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise CorruptStoreError(f"{manifest}: is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            raise CorruptStoreError(f"{manifest}: is not a version {MANIFEST_FORMAT} manifest")
        chunks = doc.get("chunks")
        created = doc.get("created")
        count = doc.get("count")
        if (
            doc.get("id") != snapshot_id
            or not isinstance(created, (int, float))
            or isinstance(created, bool)
            or not isinstance(count, int)
            or not isinstance(chunks, list)
            or not all(isinstance(c, str) and _DIGEST_RE.fullmatch(c) for c in chunks)
        ):
            raise CorruptStoreError(f"{manifest}: has a missing or malformed field")
        return doc

    def _read_chunk(self, digest: str, manifest: Path) -> list[FileState]:
        try:
            doc = json.loads(self._read_blob(digest))
        except (ValueError, UnicodeDecodeError):
            raise CorruptStoreError(f"{manifest}: chunk {digest} is not valid JSON") from None
        except CorruptStoreError as err:
            raise CorruptStoreError(f"{manifest}: {err}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
            raise CorruptStoreError(f"{manifest}: chunk {digest} holds no file list")
        try:
            return [FileState.from_dict(item) for item in doc["files"]]
        except CorruptStoreError as err:
            raise CorruptStoreError(f"{manifest}: {err}") from None


# --------------------------------------------------------------------- path safety


class _Resolver:
    """Maps target paths to host paths under one root, for the length of one operation.

    The host path's parent is fully resolved; with a root other than /, a parent component
    that is a symlink leading outside the root is refused. The last component is never
    resolved: callers lstat it and never follow it. Resolved parents are cached, so build a
    new resolver once directories may have been replaced.
    """

    def __init__(self, root: Path) -> None:
        if not os.path.isdir(root):
            raise UsageError(f"{root}: the root directory does not exist")
        self.root = Path(root)
        self.real_root = os.path.realpath(root)
        self._real_parents: dict[str, str] = {}

    def locate(self, path: str) -> tuple[str, str]:
        clean = normalize_target_path(path)
        if clean == "/":
            raise UnsafePathError("'/' itself cannot be snapshotted or restored")
        parent, name = clean.rsplit("/", 1)
        real_parent = self._real_parents.get(parent)
        if real_parent is None:
            real_parent = os.path.realpath(under_root(self.root, parent or "/"))
            if self.real_root != "/" and not _is_within(real_parent, self.real_root):
                raise UnsafePathError(_escape_message(self.root, clean, self.real_root))
            self._real_parents[parent] = real_parent
        return clean, os.path.join(real_parent, name)

    def host(self, path: str) -> str:
        return self.locate(path)[1]


def _is_within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _escape_message(root: Path, clean: str, real_root: str) -> str:
    for ancestor in reversed(_ancestors(clean)):
        host = under_root(root, ancestor)
        if os.path.islink(host) and not _is_within(os.path.realpath(host), real_root):
            return (
                f"{clean}: {ancestor} is a symlink to {os.readlink(host)!r}, which leads outside "
                f"the root {root}; refusing to follow it"
            )
    return f"{clean}: its parent directory leads outside the root {root}; refusing to follow it"


def _ancestors(clean: str) -> list[str]:
    """Ancestors of a target path, innermost first, without '/'."""
    result = []
    parent = os.path.dirname(clean)
    while parent != "/":
        result.append(parent)
        parent = os.path.dirname(parent)
    return result


def _depth(record: FileState) -> int:
    return record.path.count("/")


def _missing_ancestors(root: Path, clean: str) -> tuple[str, ...]:
    """Ancestors of an absent path that do not exist either, outermost first."""
    missing = []
    for ancestor in _ancestors(clean):
        try:
            os.lstat(under_root(root, ancestor))
            break
        except (FileNotFoundError, NotADirectoryError):
            missing.append(ancestor)
    return tuple(reversed(missing))


# --------------------------------------------------------------------- stat helpers


def _seconds_to_ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _stat_matches(hint: FileState | None, st: os.stat_result, trust_before_ns: int | None) -> bool:
    return (
        hint is not None
        and trust_before_ns is not None
        and hint.kind == "file"
        and hint.digest is not None
        and _stat_key(st) == (hint.size, hint.mtime_ns, hint.ino, hint.ctime_ns)
        and hint.ctime_ns <= trust_before_ns - RACY_MARGIN_NS
    )


def _state_from_stat(
    clean: str,
    kind: str,
    st: os.stat_result,
    digest: str | None = None,
    target: str | None = None,
    host: str | None = None,
    xattrs: tuple[tuple[str, str], ...] | None = None,
) -> FileState:
    if xattrs is None:
        xattrs = _read_xattrs(host) if host is not None and kind in ("file", "dir") else ()
    return FileState(
        xattrs=xattrs,
        path=clean,
        kind=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        mtime_ns=st.st_mtime_ns,
        size=st.st_size if kind != "dir" else 0,
        digest=digest,
        target=target,
        ino=st.st_ino,
        ctime_ns=st.st_ctime_ns,
    )


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


def _kind_of(state: FileState | None) -> str:
    return "special" if state is None else state.kind


def _same_file(now: FileState | None, record: FileState) -> bool:
    """A regular file with the recorded content is there (metadata may differ)."""
    return now is not None and now.kind == "file" and now.digest == record.digest


# --------------------------------------------------------------------- restore helpers


def _select(snapshot: Snapshot, paths: Iterable[str] | None) -> list[FileState]:
    if paths is None:
        return list(snapshot.files)
    wanted = []
    for path in dict.fromkeys(normalize_target_path(p) for p in paths):
        record = snapshot.get(path)
        if record is None:
            raise SnapshotError(f"{path}: is not in snapshot {snapshot.id}")
        wanted.append(record)
    return wanted


@dataclass
class _PresentView:
    """What restore found before changing anything."""

    current: dict[str, FileState | None]  # None: a special file is there
    # Declared paths that are not a directory now; below them everything counts as absent.
    shadowed: set[str]
    # Declared directories that are missing or replaced now, and will be made again.
    recreated: set[str]

    def created_dirs_to_check(self, record: FileState) -> list[str]:
        """A record's created directories, innermost first, not looking through shadowed paths."""
        return [d for d in reversed(record.created_dirs) if self.shadowed.isdisjoint(_ancestors(d))]


def _needs_restore(where: _Resolver, record: FileState, view: _PresentView) -> bool:
    now = view.current[record.path]
    if now is None:
        return True
    if record.kind == "absent":
        if now.kind != "absent":
            return True
        return any(os.path.lexists(where.host(d)) for d in view.created_dirs_to_check(record))
    return not (now.same_content_as(record) and now.mtime_ns == record.mtime_ns)


def _paths_emptied_by(records: list[FileState]) -> set[str]:
    """Target paths that will not exist once the absent records are restored."""
    emptied: set[str] = set()
    for record in records:
        if record.kind == "absent":
            emptied.add(record.path)
            emptied.update(record.created_dirs)
    return emptied


def _check_can_remove_directory(where: _Resolver, record: FileState, emptied: set[str]) -> None:
    """A directory stands where a file, symlink or nothing was: only removable if every entry
    in it is itself restored to absent."""
    _, host = where.locate(record.path)
    for dirpath, dirnames, filenames in os.walk(host):
        for name in dirnames + filenames:
            relative = os.path.relpath(os.path.join(dirpath, name), host)
            if f"{record.path}/{relative}" not in emptied:
                raise UnsafePathError(
                    f"{record.path}: is now a directory that is not empty; clp will not "
                    f"delete it to restore the {record.kind} recorded there"
                )


def _check_parents_are_directories(where: _Resolver, clean: str, view: _PresentView) -> None:
    for ancestor in _ancestors(clean):
        if ancestor in view.recreated:
            return
        if ancestor in view.shadowed:
            raise UnsafePathError(
                f"{clean}: cannot be restored because {ancestor} is not a directory now and "
                "will not be one after the restore"
            )
        host = under_root(where.root, ancestor)
        if os.path.lexists(host):
            if os.path.isdir(host):
                return
            raise UnsafePathError(
                f"{clean}: cannot be restored because {ancestor} is no longer a directory"
            )


def _make_parents(directory: str) -> None:
    missing = []
    while not os.path.lexists(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for path in reversed(missing):
        os.mkdir(path, 0o755)
        os.chmod(path, 0o755)  # mkdir's mode is filtered by the umask


def _recreate_directory(where: _Resolver, record: FileState, now: FileState | None) -> None:
    _, host = where.locate(record.path)
    with _os_errors_as_snapshot_errors(record.path):
        if _kind_of(now) != "absent":
            os.unlink(host)
        _make_parents(os.path.dirname(host))
        os.mkdir(host, 0o700)  # the exact mode is set with the metadata, at the end
        _fsync_dir_quietly(os.path.dirname(host))


def _set_metadata(fd: int, record: FileState) -> None:
    """Owner, mode, extended attributes and mtime of an open file or directory, then fsync.
    The order matters: chown clears setuid/setgid bits and file capabilities."""
    os.fchown(fd, record.uid, record.gid)
    os.fchmod(fd, record.mode)
    _write_xattrs(fd, record.xattrs)
    os.utime(fd, ns=(record.mtime_ns, record.mtime_ns))
    os.fsync(fd)


def _set_regular_file_metadata(record: FileState, host: str) -> bool:
    """Fix mode, owner and mtime in place; False if the file has other hard links (their
    metadata must not change: the caller writes a fresh copy instead)."""
    fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SnapshotError(f"{record.path}: changed while clp restored it")
        if st.st_nlink > 1:
            return False
        _set_metadata(fd, record)
    finally:
        os.close(fd)
    return True


def _restore_symlink(record: FileState, host: str, now: FileState | None) -> None:
    if now is not None and now.kind == "symlink" and now.target == record.target:
        os.chown(host, record.uid, record.gid, follow_symlinks=False)
        os.utime(host, ns=(record.mtime_ns, record.mtime_ns), follow_symlinks=False)
        return
    if _kind_of(now) == "dir":
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(host)
    _make_parents(os.path.dirname(host))
    while True:
        temp = os.path.join(os.path.dirname(host), f"{_TEMP_PREFIX}{os.urandom(8).hex()}")
        try:
            os.symlink(str(record.target), temp)
            break
        except FileExistsError:
            continue
    try:
        os.chown(temp, record.uid, record.gid, follow_symlinks=False)
        os.utime(temp, ns=(record.mtime_ns, record.mtime_ns), follow_symlinks=False)
        os.replace(temp, host)
    except BaseException:
        _unlink_quietly(temp)
        raise
    _fsync_dir_quietly(os.path.dirname(host))


def _restore_absent(
    where: _Resolver, record: FileState, now: FileState | None, created_dirs: list[str]
) -> None:
    kind = _kind_of(now)
    if kind != "absent":
        _, host = where.locate(record.path)
        # Not found is fine: a deeper record may already have removed it as a created directory.
        with contextlib.suppress(FileNotFoundError):
            if kind == "dir":
                os.rmdir(host)
            else:
                os.unlink(host)
        _fsync_dir_quietly(os.path.dirname(host))
    for directory in created_dirs:
        _, dir_host = where.locate(directory)
        try:
            if not stat.S_ISDIR(os.lstat(dir_host).st_mode):
                break
            os.rmdir(dir_host)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as err:
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                break  # someone else's files are in it now: keep it and its parents
            raise
        _fsync_dir_quietly(os.path.dirname(dir_host))


def _set_directory_metadata(record: FileState, host: str) -> None:
    fd = os.open(host, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns) == (
            record.mode,
            record.uid,
            record.gid,
            record.mtime_ns,
        ) and _read_xattrs(fd) == record.xattrs:
            return
        _set_metadata(fd, record)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _os_errors_as_snapshot_errors(clean: str):
    try:
        yield
    except ClpError:
        raise
    except OSError as err:
        raise SnapshotError(f"{clean}: cannot restore it: {err.strerror or err}") from err


# --------------------------------------------------------------------- chunks and files


def _split_chunks(files: tuple[FileState, ...]) -> list[list[FileState]]:
    """Cut after paths whose hash is small: boundaries move only where paths change."""
    chunks: list[list[FileState]] = []
    current: list[FileState] = []
    for state in files:
        current.append(state)
        boundary = hashlib.sha256(state.path.encode("utf-8", "surrogateescape")).digest()[0]
        if boundary < _BOUNDARY_BELOW or len(current) >= _MAX_CHUNK_RECORDS:
            chunks.append(current)
            current = []
    if current:
        chunks.append(current)
    return chunks


def _encode_chunk(states: list[FileState]) -> bytes:
    doc = {"files": [state.to_dict() for state in states]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")


def _create_temp(directory: str | Path, prefix: str) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        path = os.path.join(directory, f"{prefix}{os.urandom(8).hex()}")
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(directory: Path) -> None:
    """syncfs(2) on the file system holding `directory` (data, inodes and directory entries);
    os.sync() where libc has no syncfs."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "syncfs"):
        os.sync()
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if libc.syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"syncfs failed: {os.strerror(code)}", str(directory))
    finally:
        os.close(fd)


def _fsync_dir_quietly(directory: str | Path) -> None:
    """Make a rename or removal durable; a directory that vanished has nothing to sync."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        fsync_directory(directory)


def _unlink_quietly(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP)


def _read_xattrs(where: str | int) -> tuple[tuple[str, str], ...]:
    """Extended attributes of a path (never followed) or an open fd, sorted by name."""
    follow = {} if isinstance(where, int) else {"follow_symlinks": False}
    try:
        names = os.listxattr(where, **follow)
    except OSError as err:
        if err.errno in _NO_XATTRS:
            return ()
        raise
    pairs = []
    for name in names:
        try:
            pairs.append((name, os.getxattr(where, name, **follow).hex()))
        except OSError as err:
            if err.errno != errno.ENODATA:  # removed while we looked
                raise
    return tuple(sorted(pairs))


def _write_xattrs(fd: int, wanted: tuple[tuple[str, str], ...]) -> None:
    """Make the file's extended attributes exactly `wanted`."""
    current = dict(_read_xattrs(fd))
    names = {name for name, _ in wanted}
    for name in current:
        if name not in names:
            os.removexattr(fd, name)
    for name, value in wanted:
        if current.get(name) != value:
            os.setxattr(fd, name, bytes.fromhex(value))


def _parse_xattrs(
    data: object, bad: Callable[[str], CorruptStoreError]
) -> tuple[tuple[str, str], ...]:
    if not isinstance(data, list):
        raise bad("xattrs is not a list")
    pairs = []
    for item in data:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(part, str) for part in item)
            or not item[0]
            or not _HEX_RE.fullmatch(item[1])
        ):
            raise bad("xattrs holds a malformed entry")
        pairs.append((item[0], item[1]))
    return tuple(sorted(pairs))
