"""Reading what target paths hold now: lstat, readlink, content hash, extended attributes.

Paths are target paths of a system mounted at a root. `Resolver` maps them to host paths and
refuses one whose parent leads outside the root through a symlink; the last component is never
followed. A path that changes while it is read is read again, a few times, then refused. A
FIFO, socket or device is a SpecialFileError: clp snapshots only regular files, symlinks and
directories.

With a previous record to trust (the stat shortcut), a file whose size, mtime, inode and ctime
match it is not read again; `Observer.bytes_hashed` counts what was read.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from clp_alpm.errors import (
    PathEscapeError,
    SnapshotError,
    SpecialFileError,
    UnsafePathError,
    UsageError,
)
from clp_alpm.paths import normalize_target_path, resolve_inside, under_root
from clp_alpm.store.model import FileState, ancestors, depth
from clp_alpm.store.objects import ObjectStore, digest_stream

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from dataclasses import dataclass
else:  # the pacman hook's path: no dataclasses, see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass

# A file whose ctime is this close to the time the previous snapshot started may have been
# written again within the same timestamp tick (or the 1-2 s granularity of some filesystems)
# without its stat data changing, so its recorded digest is not trusted ("racy git" problem).
RACY_MARGIN_NS = 2_000_000_000
_OBSERVE_ATTEMPTS = 3
_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP)


class Resolver:
    """Maps target paths to host paths under one root, for the length of one operation.

    The host path's parent is fully resolved (`resolve_inside`); with a root other than /, a
    parent component that is a symlink leading outside the root is refused. The last component
    is never resolved: callers lstat it and never follow it. A path that resolves to one of the
    `protected` host paths (clp's own: its state, the store, the log, pacman's database) or
    below it is refused, whatever its spelling. Resolved parents are cached, so build a new
    resolver once directories may have been replaced.
    """

    def __init__(self, root: Path, protected: Mapping[str, Path] | None = None) -> None:
        if not os.path.isdir(root):
            raise UsageError(f"{root}: the root directory does not exist")
        self.root = Path(root)
        self.real_root = os.path.realpath(root)
        self._real_parents: dict[str, str] = {}
        self._protected = tuple(
            (setting, str(path).rstrip("/") or "/") for setting, path in (protected or {}).items()
        )

    def locate(self, path: str) -> tuple[str, str]:
        """The normalised target path and its host path (UnsafePathError if it escapes)."""
        clean = normalize_target_path(path)
        if clean == "/":
            raise UnsafePathError("'/' itself cannot be snapshotted or restored")
        parent, name = clean.rsplit("/", 1)
        real_parent = self._real_parents.get(parent)
        if real_parent is None:
            try:
                real_parent = str(resolve_inside(self.root, parent or "/", dangling_ok=True))
            except PathEscapeError:
                raise UnsafePathError(_escape_message(self.root, clean, self.real_root)) from None
            self._real_parents[parent] = real_parent
        host = os.path.join(real_parent, name)
        if self._protected:
            self._refuse_own(clean, host)
        return clean, host

    def _refuse_own(self, clean: str, host: str) -> None:
        """UnsafePathError if `host` is one of clp's own paths or lies below one (a file
        directly under PatchDir that is no directory and no hidden name excepted: clpctl's
        patches may install such files)."""
        for setting, mine in self._protected:
            if host != mine and not host.startswith(mine.rstrip("/") + "/"):
                continue
            if setting == "PatchDir" and _beside_patch_dirs(host, mine):
                continue
            raise UnsafePathError(
                f"{clean}: resolves to {host}, which is clp's own ({setting}); "
                "refusing to snapshot or restore it"
            )

    def host(self, path: str) -> str:
        return self.locate(path)[1]

    def host_of_clean(self, clean: str) -> str:
        """The host path of a target path known to be normalised (a stored record's)."""
        parent, _, name = clean.rpartition("/")
        real_parent = self._real_parents.get(parent)
        if real_parent is None:
            return self.locate(clean)[1]
        return f"{real_parent}/{name}" if real_parent != "/" else f"/{name}"


@dataclass
class PresentView:
    """What is at a snapshot's paths now, found before anything is compared or restored."""

    current: dict[str, FileState | None]  # None: a special file is there
    # Declared paths that are not a directory now; below them everything counts as absent.
    shadowed: set[str]
    # Declared directories that are missing or replaced now, and will be made again.
    recreated: set[str]

    def created_dirs_to_check(self, record: FileState) -> list[str]:
        """A record's created directories, innermost first, not looking through shadowed paths."""
        return [d for d in reversed(record.created_dirs) if self.shadowed.isdisjoint(ancestors(d))]


def kind_of(state: FileState | None) -> str:
    """The kind of what a PresentView found: "special" for a special file."""
    return "special" if state is None else state.kind


class Observer:
    """Observes target paths; with `keep`, stores the content of regular files in `objects`."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        # Bytes of target files read and hashed (not store objects): shows the stat shortcut works.
        self.bytes_hashed = 0

    def observe(
        self,
        where: Resolver,
        clean: str,
        host: str,
        hint: FileState | None,
        trust_before_ns: int | None,
        keep: bool,
    ) -> FileState:
        """What `clean` (at `host`) holds now. `hint` is its previous record, trusted for a
        regular file whose stat data match and whose ctime is older than `trust_before_ns`
        minus RACY_MARGIN_NS (and, with `keep`, whose object is still stored)."""
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
                and (not keep or self.objects.has_content(hint))  # a lost one is made again
            ):
                # setting an xattr, chmod or chown changes the ctime, which matched: the hint
                # holds as it is (the next snapshot then reuses its chunk unencoded)
                if (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (
                    hint.mode,
                    hint.uid,
                    hint.gid,
                ):
                    return hint
                return _state_from_stat(
                    clean,
                    "file",
                    st,
                    digest=hint.digest,
                    xattrs=hint.xattrs,
                    packed=hint.packed,
                )
            state = self._read_regular_file(clean, host, st, keep)
            if state is not None:
                return state
        raise SnapshotError(
            f"{clean}: kept changing while clp read it; try again when nothing writes to it"
        )

    def unchanged(self, hint: FileState, host: str, trust_before_ns: int) -> bool:
        """The quick test of a second snapshot: `host` is still what `hint` recorded, by its
        stat data alone (a file whose content is still stored, or a directory), and old
        enough to be trusted. False means: observe it properly."""
        try:
            st = os.lstat(host)
        except OSError:
            return False
        if (
            st.st_mtime_ns != hint.mtime_ns
            or st.st_ctime_ns != hint.ctime_ns
            or st.st_ino != hint.ino
            or hint.ctime_ns > trust_before_ns - RACY_MARGIN_NS
            or (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) != (hint.mode, hint.uid, hint.gid)
        ):
            return False
        if hint.kind == "dir":
            # its xattrs or its mode changed its ctime, which matched; entries are not its own
            return stat.S_ISDIR(st.st_mode)
        return (
            hint.kind == "file"
            and stat.S_ISREG(st.st_mode)
            and st.st_size == hint.size
            and hint.digest is not None
            and self.objects.has_content(hint)
        )

    def observe_all(
        self, where: Resolver, records: list[FileState], trust_before_ns: int
    ) -> PresentView:
        """Observe outermost first; never look below a declared path that is not a directory
        now (a symlink a script put there may lead anywhere): what is below it counts as absent."""
        current: dict[str, FileState | None] = {}
        shadowed: set[str] = set()
        for record in sorted(records, key=depth):
            if not shadowed.isdisjoint(ancestors(record.path)):
                current[record.path] = FileState(record.path, "absent")
                continue
            now = self._observe_for_compare(where, record, trust_before_ns)
            current[record.path] = now
            unchanged_link = (
                now is not None
                and now.kind == "symlink" == record.kind
                and now.target == record.target
            )
            if kind_of(now) != "dir" and not unchanged_link:
                shadowed.add(record.path)
        recreated = {
            r.path for r in records if r.kind == "dir" and kind_of(current[r.path]) != "dir"
        }
        return PresentView(current, shadowed, recreated)

    def _observe_for_compare(
        self, where: Resolver, record: FileState, trust_before_ns: int
    ) -> FileState | None:
        """Current state of a recorded path, or None if a special file sits there now."""
        clean, host = where.locate(record.path)
        try:
            return self.observe(where, clean, host, record, trust_before_ns, keep=False)
        except SpecialFileError:
            return None

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
            packed = None
            if keep and before.st_size <= self.objects.packed_max:
                data = _read_to_end(fd, self.objects.packed_max + 1)
                self.bytes_hashed += len(data)
                length = len(data)
                if length > self.objects.packed_max:  # grew while we read it
                    return None
                digest, packed = self.objects.add_small(data)
            elif keep:
                digest, length = self.objects.add_from(fd, self._count)
            else:
                digest, length = digest_stream(fd, self._count)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        if _stat_key(before) != _stat_key(after) or length != after.st_size:
            return None
        return _state_from_stat(clean, "file", after, digest=digest, host=host, packed=packed)

    def _count(self, chunk: bytes) -> None:
        self.bytes_hashed += len(chunk)


def _read_to_end(fd: int, limit: int) -> bytes:
    """What `fd` holds, up to `limit` bytes."""
    parts = []
    left = limit
    while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def read_xattrs(where: str | int) -> tuple[tuple[str, str], ...]:
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


def _missing_ancestors(root: Path, clean: str) -> tuple[str, ...]:
    """Ancestors of an absent path that do not exist either, outermost first."""
    missing = []
    for ancestor in ancestors(clean):
        try:
            os.lstat(under_root(root, ancestor))
            break
        except (FileNotFoundError, NotADirectoryError):
            missing.append(ancestor)
    return tuple(reversed(missing))


def _beside_patch_dirs(host: str, patch_dir: str) -> bool:
    """A plain file directly under PatchDir, not a patch directory, the trash or a staging
    directory."""
    parent, name = os.path.split(host)
    if parent != patch_dir or name.startswith("."):
        return False
    try:
        return not stat.S_ISDIR(os.lstat(host).st_mode)
    except OSError:
        return True


def _is_within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _escape_message(root: Path, clean: str, real_root: str) -> str:
    for ancestor in reversed(ancestors(clean)):
        host = under_root(root, ancestor)
        if os.path.islink(host) and not _is_within(os.path.realpath(host), real_root):
            return (
                f"{clean}: {ancestor} is a symlink to {os.readlink(host)!r}, which leads outside "
                f"the root {root}; refusing to follow it"
            )
    return f"{clean}: its parent directory leads outside the root {root}; refusing to follow it"


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
    packed: tuple[str, int, int] | None = None,
) -> FileState:
    if xattrs is None:
        xattrs = read_xattrs(host) if host is not None and kind in ("file", "dir") else ()
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
        packed=packed,
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
