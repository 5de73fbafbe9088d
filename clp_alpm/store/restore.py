"""Putting a snapshot back: every recorded path holds again exactly what was recorded.

Everything that can be checked is checked before the first write: every path stays inside
the root, every object needed is present and intact, nothing in the way is a non-empty
directory, every parent is (or will be) a directory. Then, in three passes: directories that
are missing or replaced are made again, outermost first; files, symlinks and absences are
restored innermost first (so a directory is empty before it goes); directory metadata comes
last, innermost first, since restoring entries changes a directory's mtime.

A file is written as a temp file beside its target, with its metadata, fsynced and renamed
over it; the directory is fsynced after every rename or removal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator, Mapping

from clp_alpm.errors import ClpError, SnapshotError, UnsafePathError
from clp_alpm.paths import under_root
from clp_alpm.store.durable import create_temp, fsync_dir_quietly, unlink_quietly
from clp_alpm.store.model import FileState, Snapshot, ancestors, depth
from clp_alpm.store.objects import ObjectStore
from clp_alpm.store.observe import Observer, PresentView, Resolver, kind_of, read_xattrs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _typeshed import StrPath

_TEMP_PREFIX = ".clp-restore-"


def restore_snapshot(
    observer: Observer,
    root: StrPath,
    snapshot: Snapshot,
    paths: Iterable[str] | None,
    protected: Mapping[str, StrPath] | None = None,
) -> list[str]:
    """Put back what `snapshot` recorded (all paths, or only `paths`) under `root`, from the
    objects of `observer`; the paths that differed and were restored. A path that resolves
    to one of the `protected` (clp's own, see Resolver) is refused before anything is written,
    and again as each one is written."""
    records = snapshot.select(paths)
    where = Resolver(root, protected)
    view = observer.observe_all(where, records, snapshot.created_ns)
    plan = [r for r in records if _needs_restore(where, r, view)]
    _check_plan(observer.objects, where, records, plan, view)
    return _apply(observer.objects, root, records, plan, view, protected)


# --------------------------------------------------------------------- checking the plan


def _needs_restore(where: Resolver, record: FileState, view: PresentView) -> bool:
    now = view.current[record.path]
    if now is None:
        return True
    if record.kind == "absent":
        if now.kind != "absent":
            return True
        return any(os.path.lexists(where.host(d)) for d in view.created_dirs_to_check(record))
    return not (now.same_content_as(record) and now.mtime_ns == record.mtime_ns)


def _check_plan(
    objects: ObjectStore,
    where: Resolver,
    records: list[FileState],
    plan: list[FileState],
    view: PresentView,
) -> None:
    emptied = _paths_emptied_by(records)
    to_verify: list[FileState] = []
    for record in plan:
        now = view.current[record.path]
        if record.kind != "dir" and kind_of(now) == "dir":
            _check_can_remove_directory(where, record, emptied)
        if record.kind != "absent":
            _check_parents_are_directories(where, record.path, view)
        if record.kind == "file" and record.digest is not None and not _same_file(now, record):
            to_verify.append(record)
    verified: set[object] = set()
    for record in to_verify:
        key = record.packed or record.digest
        if key not in verified:
            objects.verify_file(record)
            verified.add(key)


def _paths_emptied_by(records: list[FileState]) -> set[str]:
    """Target paths that will not exist once the absent records are restored."""
    emptied: set[str] = set()
    for record in records:
        if record.kind == "absent":
            emptied.add(record.path)
            emptied.update(record.created_dirs)
    return emptied


def _check_can_remove_directory(where: Resolver, record: FileState, emptied: set[str]) -> None:
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


def _check_parents_are_directories(where: Resolver, clean: str, view: PresentView) -> None:
    for ancestor in ancestors(clean):
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


def _same_file(now: FileState | None, record: FileState) -> bool:
    """A regular file with the recorded content is there (metadata may differ)."""
    return now is not None and now.kind == "file" and now.digest == record.digest


# --------------------------------------------------------------------- applying it


def _apply(
    objects: ObjectStore,
    root: StrPath,
    records: list[FileState],
    plan: list[FileState],
    view: PresentView,
    protected: Mapping[str, StrPath] | None,
) -> list[str]:
    planned = {r.path for r in plan}
    dir_records = [r for r in records if r.kind == "dir"]
    # 1. Directories that are missing or replaced by something else, outermost first.
    where = Resolver(root, protected)
    for record in sorted(dir_records, key=depth):
        if record.path in view.recreated:
            _recreate_directory(where, record, view.current[record.path])
    where = Resolver(root, protected)  # step 1 may have replaced a symlink by a directory
    # 2. Files, symlinks and absences, innermost first so directories empty before removal.
    for record in sorted((r for r in plan if r.kind != "dir"), key=depth, reverse=True):
        now = view.current[record.path]
        with _os_errors_as_snapshot_errors(record.path):
            if record.kind == "absent":
                _restore_absent(where, record, now, view.created_dirs_to_check(record))
                continue
            _, host = where.locate(record.path)
            if record.kind == "file":
                _restore_file(objects, record, host, now)
            else:
                _restore_symlink(record, host, now)
    # 3. Directory metadata last, innermost first: restoring entries changes their mtime.
    for record in sorted(dir_records, key=depth, reverse=True):
        _, host = where.locate(record.path)
        with _os_errors_as_snapshot_errors(record.path):
            _set_directory_metadata(record, host)
    return [r.path for r in records if r.path in planned]


def _restore_file(
    objects: ObjectStore, record: FileState, host: str, now: FileState | None
) -> None:
    if _same_file(now, record) and _set_regular_file_metadata(record, host):
        return
    if kind_of(now) == "dir":
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(host)  # checked empty (or emptied) beforehand
    _make_parents(os.path.dirname(host))
    temp_fd, temp_path = create_temp(os.path.dirname(host), _TEMP_PREFIX)
    renamed = False
    try:
        objects.copy_file_to(record, temp_fd)
        _set_metadata(temp_fd, record)
        os.close(temp_fd)
        temp_fd = -1
        os.replace(temp_path, host)
        renamed = True
        fsync_dir_quietly(os.path.dirname(host))
    finally:
        if temp_fd >= 0:
            os.close(temp_fd)
        if not renamed:
            unlink_quietly(temp_path)


def _restore_symlink(record: FileState, host: str, now: FileState | None) -> None:
    if now is not None and now.kind == "symlink" and now.target == record.target:
        os.chown(host, record.uid, record.gid, follow_symlinks=False)
        os.utime(host, ns=(record.mtime_ns, record.mtime_ns), follow_symlinks=False)
        return
    if kind_of(now) == "dir":
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
        unlink_quietly(temp)
        raise
    fsync_dir_quietly(os.path.dirname(host))


def _restore_absent(
    where: Resolver, record: FileState, now: FileState | None, created_dirs: list[str]
) -> None:
    kind = kind_of(now)
    if kind != "absent":
        _, host = where.locate(record.path)
        # Not found is fine: a deeper record may already have removed it as a created directory.
        with contextlib.suppress(FileNotFoundError):
            if kind == "dir":
                os.rmdir(host)
            else:
                os.unlink(host)
        fsync_dir_quietly(os.path.dirname(host))
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
        fsync_dir_quietly(os.path.dirname(dir_host))


def _recreate_directory(where: Resolver, record: FileState, now: FileState | None) -> None:
    _, host = where.locate(record.path)
    with _os_errors_as_snapshot_errors(record.path):
        if kind_of(now) != "absent":
            os.unlink(host)
        _make_parents(os.path.dirname(host))
        os.mkdir(host, 0o700)  # the exact mode is set with the metadata, at the end
        fsync_dir_quietly(os.path.dirname(host))


def _make_parents(directory: str) -> None:
    missing = []
    while not os.path.lexists(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for path in reversed(missing):
        os.mkdir(path, 0o755)
        os.chmod(path, 0o755)  # mkdir's mode is filtered by the umask


# --------------------------------------------------------------------- metadata


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


def _set_directory_metadata(record: FileState, host: str) -> None:
    fd = os.open(host, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns) == (
            record.mode,
            record.uid,
            record.gid,
            record.mtime_ns,
        ) and read_xattrs(fd) == record.xattrs:
            return
        _set_metadata(fd, record)
    finally:
        os.close(fd)


def _write_xattrs(fd: int, wanted: tuple[tuple[str, str], ...]) -> None:
    """Make the file's extended attributes exactly `wanted`."""
    current = dict(read_xattrs(fd))
    names = {name for name, _ in wanted}
    for name in current:
        if name not in names:
            os.removexattr(fd, name)
    for name, value in wanted:
        if current.get(name) != value:
            os.setxattr(fd, name, bytes.fromhex(value))


@contextlib.contextmanager
def _os_errors_as_snapshot_errors(clean: str) -> Iterator[None]:
    try:
        yield
    except ClpError:
        raise
    except OSError as err:
        raise SnapshotError(f"{clean}: cannot restore it: {err.strerror or err}") from err
