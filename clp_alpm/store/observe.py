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
from itertools import compress, groupby, repeat
from operator import attrgetter, eq, is_not, itemgetter, not_

try:  # the C function functools hands on: functools itself costs the hooks a millisecond
    from _functools import partial  # type: ignore[import-not-found]
except ImportError:
    from functools import partial

from clp_alpm.errors import (
    PathEscapeError,
    SnapshotError,
    SpecialFileError,
    UnsafePathError,
    UsageError,
)
from clp_alpm.paths import clean_host_path, normalize_target_path, resolve_inside, under_root
from clp_alpm.store.model import FileState, ancestors, depth
from clp_alpm.store.objects import ObjectStore, digest_stream

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from dataclasses import dataclass

    from _typeshed import StrPath

    from clp_alpm.store.model import Snapshot
else:  # the pacman hook's path: no dataclasses, see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass

# A file whose ctime is this close to the time the previous snapshot started may have been
# written again within the same timestamp tick (or the 1-2 s granularity of some filesystems)
# without its stat data changing, so its recorded digest is not trusted ("racy git" problem).
# Not a clock tick only: write(2) stamps the file before it copies the data, and a copy that
# stalls (a page fault, reclaim) lands unstamped; nor a local clock only (NFS, a clock step).
RACY_MARGIN_NS = 2_000_000_000
_OBSERVE_ATTEMPTS = 3
_PARENT_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP)
_S_IFDIR = stat.S_IFDIR


class Resolver:
    """Maps target paths to host paths under one root, for the length of one operation.

    The host path's parent is fully resolved (`resolve_inside`); with a root other than /, a
    parent component that is a symlink leading outside the root is refused. The last component
    is never resolved: callers lstat it and never follow it. A path that resolves to one of the
    `protected` host paths (clp's own: its state, the store, the log, pacman's database) or
    below it is refused, whatever its spelling. Resolved parents are cached, so build a new
    resolver once directories may have been replaced.
    """

    def __init__(self, root: StrPath, protected: Mapping[str, StrPath] | None = None) -> None:
        if not os.path.isdir(root):
            raise UsageError(f"{root}: the root directory does not exist")
        self.root = clean_host_path(root)
        self.real_root = os.path.realpath(root)
        self._real_parents: dict[str, str] = {}
        # resolved parents of which some entry may be one of the protected paths or lie below
        # one: each path there is checked by itself; below any other parent none can be
        self._guarded: set[str] = set()
        self._protected = tuple(
            (setting, os.fspath(path).rstrip("/") or "/")
            for setting, path in (protected or {}).items()
        )

    def locate(self, path: str) -> tuple[str, str]:
        """The normalised target path and its host path (UnsafePathError if it escapes)."""
        clean = normalize_target_path(path)
        if clean == "/":
            raise UnsafePathError("'/' itself cannot be snapshotted or restored")
        parent, name = clean.rsplit("/", 1)
        real_parent = self._real_parents.get(parent)
        if real_parent is None:
            real_parent = self._below_resolved(parent)
            if real_parent is None:
                try:
                    real_parent = resolve_inside(self.root, parent or "/", dangling_ok=True)
                except PathEscapeError:
                    message = _escape_message(self.root, clean, self.real_root)
                    raise UnsafePathError(message) from None
            self._real_parents[parent] = real_parent
            if self._near_own(real_parent):
                self._guarded.add(parent)
        host = os.path.join(real_parent, name)
        if parent in self._guarded:
            self._refuse_own(clean, host)
        return clean, host

    def _below_resolved(self, parent: str) -> str | None:
        """The resolved `parent` in one lstat, when its own parent is resolved already and it
        is no symlink (what resolve_inside would make of it: the resolved parent and its
        name); None if it has to be resolved from the root."""
        above, _, name = parent.rpartition("/")
        real_above = self._real_parents.get(above) if parent else None
        if real_above is None:
            return None
        candidate = f"{real_above}/{name}" if real_above != "/" else f"/{name}"
        try:
            if stat.S_ISLNK(os.lstat(candidate).st_mode):
                return None
        except (FileNotFoundError, NotADirectoryError):
            pass  # a missing directory: it would be created there, inside the root
        return candidate

    def _near_own(self, real_parent: str) -> bool:
        """An entry of `real_parent` may be one of the protected paths or lie below one: the
        directory is, or lies below, a protected path, or holds one somewhere below it."""
        inside = real_parent.rstrip("/") + "/"
        for _setting, mine in self._protected:
            mine_inside = mine.rstrip("/") + "/"
            if inside.startswith(mine_inside) or mine_inside.startswith(inside):
                return True
        return False

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

    def open_parent(self, clean: str) -> int:
        """A descriptor (O_PATH) of the resolved parent directory of the normalised target
        path `clean`, to lstat its entries by name; -1 if there is none, or if an entry of
        it may be one of clp's own paths (each is then located and checked by itself).
        UnsafePathError as `locate` for a parent leading out of the root. The caller
        closes it."""
        self.locate(clean)
        parent = clean.rpartition("/")[0]
        if parent in self._guarded:
            return -1
        try:
            return os.open(self._real_parents[parent], _PARENT_FLAGS)
        except OSError:
            return -1


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
            state = self._read_regular_file(clean, host, st, keep, hint)
            if state is not None:
                return state
        raise SnapshotError(
            f"{clean}: kept changing while clp read it; try again when nothing writes to it"
        )

    def observe_paths(
        self,
        where: Resolver,
        paths: list[str],
        previous: Snapshot | None,
        progress: Callable[[int], None] | None = None,
        progress_every: int = 500,
    ) -> list[FileState]:
        """The record of each path, each once, in order, storing new contents (`keep`).

        A path `previous` holds is normalised already (its record was checked when read), and
        the quick test of a second snapshot needs one lstat of it, by name in its parent
        directory: a regular file whose stat data (mtime, ctime, inode, size, mode, owner)
        match its record, whose ctime is older than `previous` less RACY_MARGIN_NS and whose
        content is still stored keeps that very record (so its chunk is reused unencoded),
        as does such a directory, and an absent path whose parent directory existed then and
        still has nothing by that name. Anything else is observed in full. `progress` hears the
        number of paths done each time another `progress_every` are, and at the end.
        """
        taking = _Taking(self, where, previous)
        done = 0
        if previous is None:
            for path in paths:
                taking.one(path, None)
                if progress is not None and len(taking.seen) // progress_every > done:
                    done += 1
                    progress(len(taking.seen))
        else:
            # the paths by runs in one parent directory (a walk's order): each run is tested
            # at once, in C loops (map), and only a run that fails is looked at path by path
            hints = list(map(previous.by_path().get, paths))
            splits = list(map(str.rpartition, paths, repeat("/")))
            start = 0
            try:
                for parent, run in groupby(map(_FIRST, splits)):
                    end = start + len(list(run))
                    if not taking.quick_run(parent, paths, hints, splits, start, end):
                        for at in range(start, end):
                            taking.one(paths[at], hints[at])
                    start = end
                    if progress is not None and len(taking.seen) // progress_every > done:
                        done = len(taking.seen) // progress_every
                        progress(len(taking.seen))
            finally:
                taking.close()
        if progress is not None and len(taking.seen) >= progress_every:
            progress(len(taking.seen))
        return taking.states

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
        self, clean: str, host: str, st: os.stat_result, keep: bool, hint: FileState | None = None
    ) -> FileState | None:
        """Hash (and with `keep`, store) the file; None if it changed under us. Content equal
        to `hint`'s, whose pack is still stored, is not packed again: a file read again only
        because it changed just before the previous snapshot (racy) costs no new pack."""
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
                digest, packed = self.objects.add_small(data, hint)
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


# Reading many records' and lstat results' fields at once, in C (map)
_FIRST = itemgetter(0)
_THIRD = itemgetter(2)
_SECOND = itemgetter(1)
_QUICK_KEY = attrgetter("quick_key")
_KIND = attrgetter("kind")
_CTIME = attrgetter("ctime_ns")
_PACKED = attrgetter("packed")
# FileState.quick_key's two parts from an os.stat_result: st_mode, st_ino, st_uid, st_gid,
# st_size by index, the times (in ns, attributes only) by name
_STAT_IDS = itemgetter(0, 1, 4, 5, 6)
_STAT_TIMES = attrgetter("st_mtime_ns", "st_ctime_ns")


class _Taking:
    """One pass of `Observer.observe_paths`: the records so far, the paths done, and the
    parent directories opened to lstat their entries by name."""

    def __init__(self, observer: Observer, where: Resolver, previous: Snapshot | None) -> None:
        self.observer = observer
        self.objects = observer.objects
        self.where = where
        self.states: list[FileState] = []
        self.seen: set[str] = set()
        self.trust_before_ns = previous.created_ns if previous is not None else None
        self.hint_of = previous.by_path().get if previous is not None else None
        self.trusted_until_ns = (self.trust_before_ns or 0) - RACY_MARGIN_NS
        self.parent_fds: dict[str, int] = {}
        self.packs_found: set[str] = set()

    def close(self) -> None:
        for fd in self.parent_fds.values():
            if fd >= 0:
                os.close(fd)
        self.parent_fds.clear()

    def parent_fd(self, parent: str, path: str) -> int:
        fd = self.parent_fds.get(parent)
        if fd is None:
            fd = self.parent_fds[parent] = self.where.open_parent(path)
        return fd

    def quick_run(
        self,
        parent: str,
        paths: list[str],
        hints: list[FileState | None],
        splits: list[tuple[str, str, str]],
        start: int,
        end: int,
    ) -> bool:
        """Keep the previous records of paths[start:end], all in `parent`, if each passes the
        quick test (see observe_paths) and none was seen before; False (nothing kept) if
        any does not: they are then looked at one by one."""
        records = hints[start:end]
        if not all(map(is_not, records, repeat(None))):
            return False  # not in the previous snapshot (or not as written)
        run = paths[start:end]
        if not self.seen.isdisjoint(run):
            return False
        fd = self.parent_fd(parent, run[0])
        if fd < 0:
            return False
        names = list(map(_THIRD, splits[start:end]))
        gone = list(map(eq, map(_KIND, records), repeat("absent")))
        if any(gone):  # a package's .pacnew and .pacsave: absent in nearly every run
            if not _still_absent(fd, compress(records, gone), compress(names, gone)):
                return False
            present = list(map(not_, gone))
            records, names = list(compress(records, present)), list(compress(names, present))
        try:
            found = list(map(partial(os.lstat, dir_fd=fd), names))
        except OSError:
            return False
        # a regular file's whole stat data; a directory (no quick key) by itself
        keys = list(map(_QUICK_KEY, records))
        files = list(map(is_not, keys, repeat(None)))
        if not all(files):
            dirs = list(map(not_, files))
            if not all(map(_dir_unchanged, compress(records, dirs), compress(found, dirs))):
                return False
            keys, found = list(compress(keys, files)), list(compress(found, files))
        if not (
            all(map(eq, map(_SECOND, keys), map(_STAT_TIMES, found)))
            and all(map(eq, map(_FIRST, keys), map(_STAT_IDS, found)))
        ):
            return False
        if records and max(map(_CTIME, records)) > self.trusted_until_ns:
            return False  # changed too close to the previous snapshot to trust its stat data
        if not self._contents_stored(records):
            return False
        before = len(self.seen)
        self.seen.update(run)
        if len(self.seen) != before + len(run):  # a path twice in the run
            self.seen.difference_update(run)
            return False
        self.states.extend(hints[start:end])  # type: ignore[arg-type]  # none is None
        return True

    def _contents_stored(self, records: list[FileState | None]) -> bool:
        """Every file record's content is still in the store (a lost one is made again): its
        pack, looked for once, or its object."""
        located = list(filter(None, map(_PACKED, records)))
        if len(located) != len(records):
            for record in records:
                assert record is not None
                if (
                    record.kind == "file"
                    and record.packed is None
                    and not self.objects.has_content(record)
                ):
                    return False
        for name in set(map(_FIRST, located)):
            if name not in self.packs_found:
                if not self.objects.has_pack(name):
                    return False
                self.packs_found.add(name)
        return True

    def one(self, path: str, hint: FileState | None) -> None:
        """Record one path: its previous record if it passes the quick test, else what an
        observation finds."""
        seen = self.seen
        if hint is not None and path not in seen and self._unchanged(path, hint):
            seen.add(path)
            self.states.append(hint)
            return
        clean, host = self.where.locate(path)
        if clean in seen:
            return
        seen.add(clean)
        if hint is None and self.hint_of is not None:
            hint = self.hint_of(clean)
        self.states.append(
            self.observer.observe(self.where, clean, host, hint, self.trust_before_ns, keep=True)
        )

    def _unchanged(self, path: str, hint: FileState) -> bool:
        """The quick test of one path (see observe_paths); a chmod, chown or xattr change
        moves the ctime too."""
        if hint.ctime_ns > self.trusted_until_ns:
            return False
        parent, _, name = path.rpartition("/")
        fd = self.parent_fd(parent, path)
        if fd < 0:
            return False
        if hint.kind == "absent":
            return _still_absent(fd, (hint,), (name,))
        try:
            st = os.lstat(name, dir_fd=fd)
        except OSError:
            return False
        key = hint.quick_key or hint.stat_key()
        if key is not None:
            return key == (_STAT_IDS(st), _STAT_TIMES(st)) and self._contents_stored([hint])
        return _dir_unchanged(hint, st)


def _still_absent(fd: int, records: Iterable[FileState | None], names: Iterable[str]) -> bool:
    """Each absent record still holds: nothing is at its name in the open parent directory
    `fd` (which exists, so a record that found missing directories above it does not)."""
    for record, name in zip(records, names, strict=True):
        if record is None or record.created_dirs:
            return False
        try:
            os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            continue
        except OSError:
            return False
        return False  # something is there now
    return True


def _dir_unchanged(record: FileState | None, st: os.stat_result) -> bool:
    """A directory's record still holds by its stat data: its xattrs or its mode changed its
    ctime, which matched; its entries are not its own."""
    return (
        record is not None
        and record.kind == "dir"
        and st.st_mode == _S_IFDIR | record.mode
        and st.st_mtime_ns == record.mtime_ns
        and st.st_ctime_ns == record.ctime_ns
        and st.st_ino == record.ino
        and st.st_uid == record.uid
        and st.st_gid == record.gid
    )


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


def _missing_ancestors(root: str, clean: str) -> tuple[str, ...]:
    """Ancestors of an absent path that do not exist either, outermost first."""
    missing = []
    base = root.rstrip("/")  # the ancestors of a clean path are clean and never '/'
    for ancestor in ancestors(clean):
        try:
            os.lstat(base + ancestor)
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


def _escape_message(root: str, clean: str, real_root: str) -> str:
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
    state = FileState(
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
    state.stat_key()  # ready for the quick test of the next snapshot
    return state


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
