"""What a snapshot records: one FileState per target path, and the Snapshot that holds them.

A FileState is a regular file (content digest, mode, owner, mtime, extended attributes), a
symlink (its target, never followed), a directory (mode, owner, mtime; not its entries) or
nothing (and which missing ancestors a script may create). Records come back from the store
through `FileState.from_dict`, which trusts nothing: a malformed record is a CorruptStoreError.
Nothing here touches the file system.
"""

from __future__ import annotations

import os

from clp_alpm.errors import CorruptStoreError, SnapshotError, UsageError
from clp_alpm.paths import normalize_target_path

# typing costs ~4 ms to import and the hooks start on every transaction: names for type
# checkers only (annotations are strings here)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from dataclasses import dataclass, field
    from typing import TypeGuard
else:  # the pacman hook's path: no dataclasses, see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass, field

KINDS = ("file", "symlink", "dir", "absent")
_S_IFREG = 0o100000  # stat.S_IFREG: a regular file's type bits in st_mode

_LOWER_HEX = "0123456789abcdef"
DIGEST_LENGTH = 64  # a sha256 digest in hex: how the store names objects
PACK_NAME_LENGTH = 32


def is_lower_hex(text: object, length: int | None = None) -> TypeGuard[str]:
    """`text` is lower-case hex digits: exactly `length` of them, or else any even number.
    (String tests, not re: the pacman hooks check every record they load with these.)"""
    if not isinstance(text, str) or text.strip(_LOWER_HEX):
        return False
    return len(text) % 2 == 0 if length is None else len(text) == length


def is_digest(text: object) -> TypeGuard[str]:
    """`text` is a sha256 digest as the store names objects: 64 lower-case hex digits."""
    return is_lower_hex(text, DIGEST_LENGTH)


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
    # For the stat shortcut of the next snapshot: `same_content_as` ignores them, `==` does
    # not (a chunk is reused for equal records: equality must cover all that to_dict writes).
    ino: int = 0
    ctime_ns: int = 0
    # Where a small file's content is stored: (pack name, offset, stored length) in the
    # store's packs/ (objects.py); None for content stored as an object of its own.
    packed: tuple[str, int, int] | None = None
    # A regular file's stat data as the quick test of the next snapshot compares them with an
    # lstat: ((st_mode, ino, uid, gid, size), (mtime_ns, ctime_ns)), the first part as the
    # tuple part of an os.stat_result holds them (cheaper to read than its attributes). Made
    # from the fields when the record is read or observed, or on first use (`stat_key`);
    # never stored or compared.
    quick_key: tuple[tuple[int, ...], tuple[int, int]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def stat_key(self) -> tuple[tuple[int, ...], tuple[int, int]] | None:
        """`quick_key`, made now if it was not (None for anything but a file with content)."""
        if self.quick_key is None and self.kind == "file" and self.digest is not None:
            key = (
                (_S_IFREG | self.mode, self.ino, self.uid, self.gid, self.size),
                (self.mtime_ns, self.ctime_ns),
            )
            object.__setattr__(self, "quick_key", key)
        return self.quick_key

    def to_dict(self) -> dict[str, object]:
        """The record as the manifest chunks store it (JSON types only)."""
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
            **({"pack": list(self.packed)} if self.packed is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: object) -> FileState:
        """Parse a record written by to_dict; raise CorruptStoreError on anything malformed.
        (A loaded snapshot parses one a path, and a pacman hook loads one: a record as clp
        writes it is taken by type and string tests alone; anything else goes through every
        check, which accepts what they accept and finds out what is wrong with a bad one.)"""
        record = _as_written(cls, data)
        return record if record is not None else cls.from_dict_checked(data)

    @classmethod
    def from_dict_checked(cls, data: object) -> FileState:
        """`from_dict` by every check, one at a time: the error names the first that fails."""
        if not isinstance(data, dict):
            raise CorruptStoreError("snapshot record is not an object")
        path = data.get("path")
        if not isinstance(path, str):
            raise CorruptStoreError("snapshot record has no path")

        def bad(problem: str) -> CorruptStoreError:
            return CorruptStoreError(f"snapshot record for {path!r}: {problem}")

        if not _is_clean_record_path(path):
            raise bad(_unclean_path_problem(path))
        kind = data.get("kind")
        if kind not in KINDS:
            raise bad(f"unknown kind {kind!r}")
        get = data.get
        values = [get(name, 0) for name in _INT_FIELDS]
        if set(map(type, values)) != _ONLY_INT:  # not bool, which JSON never gives a number
            name = next(n for n, v in zip(_INT_FIELDS, values, strict=True) if type(v) is not int)
            raise bad(f"{name} is not an integer")
        numbers = dict(zip(_INT_FIELDS, values, strict=True))
        if not 0 <= numbers["mode"] <= 0o7777:
            raise bad("mode is out of range")
        if min(numbers["uid"], numbers["gid"], numbers["size"], numbers["ino"]) < 0:
            raise bad("negative owner, size or inode")
        digest = get("digest")
        if kind == "file":
            if not is_digest(digest):
                raise bad("file record without a valid sha256 digest")
        elif digest is not None:
            raise bad(f"{kind} record carries a digest")
        target = get("target")
        if kind == "symlink":
            if not isinstance(target, str) or not target or "\0" in target:
                raise bad("symlink record without a valid target")
        elif target is not None:
            raise bad(f"{kind} record carries a symlink target")
        created = get("created_dirs", [])
        if not isinstance(created, list) or not all(isinstance(d, str) for d in created):
            raise bad("created_dirs is not a list of paths")
        if created:
            if kind != "absent":
                raise bad(f"{kind} record lists created directories")
            parents = ancestors(path)
            if any(d not in parents for d in created):
                raise bad("created_dirs holds a path that is not an ancestor")
        xattrs = get("xattrs", [])
        record = cls(
            path=path,
            kind=kind,
            digest=digest,
            target=target,
            created_dirs=tuple(created),
            xattrs=_parse_xattrs(xattrs, bad) if xattrs != [] else (),
            packed=_parse_packed(get("pack"), kind, bad),
            **numbers,
        )
        record.stat_key()
        return record

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
    """The records of one snapshot, in the order they were taken, by path."""

    id: str
    created: float
    files: tuple[FileState, ...]
    # made on the first look-up: a snapshot just taken is mostly written, never searched
    _by_path: dict[str, FileState] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    # The chunks this snapshot was stored in, as (digest, records), once written or read:
    # the next snapshot reuses a chunk that would hold these records again, unencoded.
    chunks: tuple[tuple[str, tuple[FileState, ...]], ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def remember_chunks(self, chunks: tuple[tuple[str, tuple[FileState, ...]], ...]) -> None:
        object.__setattr__(self, "chunks", chunks)

    def get(self, path: str) -> FileState | None:
        """The record of `path` (normalised first), or None."""
        return self.get_clean(normalize_target_path(path))

    def get_clean(self, clean: str) -> FileState | None:
        """The record of an already normalised path (taking a snapshot looks up every path)."""
        return self.by_path().get(clean)

    def by_path(self) -> dict[str, FileState]:
        """The records by path (not to be changed)."""
        if self._by_path is None:
            object.__setattr__(self, "_by_path", {state.path: state for state in self.files})
        assert self._by_path is not None
        return self._by_path

    @property
    def paths(self) -> list[str]:
        return [state.path for state in self.files]

    @property
    def created_ns(self) -> int:
        """When the snapshot started, in ns: the stat shortcut trusts no ctime after it."""
        return int(self.created * 1_000_000_000)

    def select(self, paths: Iterable[str] | None) -> list[FileState]:
        """The records of `paths` (all with None), each once; SnapshotError for a path it lacks."""
        if paths is None:
            return list(self.files)
        wanted = []
        for path in dict.fromkeys(normalize_target_path(p) for p in paths):
            record = self.get(path)
            if record is None:
                raise SnapshotError(f"{path}: is not in snapshot {self.id}")
            wanted.append(record)
        return wanted

    def only(self, paths: Iterable[str]) -> Snapshot:
        """The same snapshot restricted to `paths` (SnapshotError for a path it lacks)."""
        return Snapshot(self.id, self.created, tuple(self.select(paths)))


def describe_change(then: FileState | None, now: FileState) -> str:
    """In a few words, how a file differs from what clp recorded."""
    if then is None or then.kind == "absent":
        return "created"
    if now.kind == "absent":
        return "deleted"
    if then.kind != now.kind:
        return f"{then.kind} replaced by a {now.kind}"
    changes = []
    if (then.digest, then.target) != (now.digest, now.target):
        changes.append("content changed")
    if then.mode != now.mode:
        changes.append(f"mode {then.mode:o} -> {now.mode:o}")
    if (then.uid, then.gid) != (now.uid, now.gid):
        changes.append(f"owner {then.uid}:{then.gid} -> {now.uid}:{now.gid}")
    return ", ".join(changes) or "changed"


_INT_FIELDS = ("mode", "uid", "gid", "mtime_ns", "size", "ino", "ctime_ns")
_SEVEN_INTS = (int,) * len(_INT_FIELDS)
_KIND_NAMES = frozenset(KINDS)
_NO_LIST: list[object] = []  # a record without created_dirs or xattrs: none (never changed)


def _empty_list(value: object) -> bool:
    """What to_dict writes for no created directories and no extended attributes."""
    return type(value) is list and not value


def _as_written(cls: type[FileState], data: object) -> FileState | None:
    """The record `data` holds if it is one as to_dict writes it (JSON types exactly, no
    created directories and no extended attributes) and passes every check of
    `from_dict_checked`, made as that makes it, field for field; None for any other `data`,
    malformed or not."""
    if type(data) is not dict:
        return None
    get = data.get
    path, kind, digest, target, pack = (
        get("path"), get("kind"), get("digest"), get("target"), get("pack"),
    )  # fmt: skip
    numbers = mode, uid, gid, mtime_ns, size, ino, ctime_ns = (
        get("mode", 0), get("uid", 0), get("gid", 0), get("mtime_ns", 0), get("size", 0),
        get("ino", 0), get("ctime_ns", 0),
    )  # fmt: skip
    if not (
        type(path) is str
        and type(kind) is str
        and kind in _KIND_NAMES
        and tuple(map(type, numbers)) == _SEVEN_INTS
        and 0 <= mode <= 0o7777
        and min(uid, gid, size, ino) >= 0
        and _empty_list(get("created_dirs", _NO_LIST))
        and _empty_list(get("xattrs", _NO_LIST))
        and (is_digest(digest) if kind == "file" else digest is None)
        and (
            type(target) is str and target != "" and "\0" not in target
            if kind == "symlink"
            else target is None
        )
        and _is_clean_record_path(path)
    ):
        return None
    packed = None
    if pack is not None:
        if not (
            kind == "file"
            and type(pack) is list
            and len(pack) == 3
            and type(pack[0]) is str
            and is_lower_hex(pack[0], PACK_NAME_LENGTH)
            and type(pack[1]) is int
            and type(pack[2]) is int
            and min(pack[1], pack[2]) >= 0
        ):
            return None
        packed = (pack[0], pack[1], pack[2])
    quick_key = None
    if kind == "file":  # FileState.stat_key, made at once
        quick_key = ((_S_IFREG | mode, ino, uid, gid, size), (mtime_ns, ctime_ns))
    record = cls.__new__(cls)
    # the fields in their order, as __init__ sets them (no __post_init__): a hook makes a
    # record a path, and a call to __init__ with keywords costs as much as these checks
    record.__dict__.update(
        path=path, kind=kind, mode=mode, uid=uid, gid=gid, mtime_ns=mtime_ns, size=size,
        digest=digest, target=target, created_dirs=(), xattrs=(), ino=ino, ctime_ns=ctime_ns,
        packed=packed, quick_key=quick_key,
    )  # fmt: skip
    return record


_ONLY_INT = {int}


def _is_clean_record_path(path: str) -> bool:
    """`path` is a normalised target path other than '/' (what normalize_target_path returns
    unchanged): absolute, no NUL, and no empty, '.' or '..' component."""
    parts = path.split("/")
    return (
        path[:1] == "/"
        and path != "/"
        and "\0" not in path
        and "" not in parts[1:]
        and "." not in parts
        and ".." not in parts
    )


def _unclean_path_problem(path: str) -> str:
    try:
        normalize_target_path(path)
    except UsageError as err:
        return str(err)
    return "path is not a normalised target path"


def ancestors(clean: str) -> list[str]:
    """Ancestors of a normalised target path, innermost first, without '/'."""
    result = []
    parent = os.path.dirname(clean)
    while parent != "/":
        result.append(parent)
        parent = os.path.dirname(parent)
    return result


def depth(record: FileState) -> int:
    """How deep a record's path lies: sorted by it, a directory comes before its entries."""
    return record.path.count("/")


def _parse_packed(
    data: object, kind: object, bad: Callable[[str], CorruptStoreError]
) -> tuple[str, int, int] | None:
    """A record's pack location: [32 hex pack name, offset, stored length], files only."""
    if data is None:
        return None
    if kind != "file":
        raise bad(f"{kind} record carries a pack location")
    if (
        not isinstance(data, list)
        or len(data) != 3
        or not isinstance(data[0], str)
        or not is_lower_hex(data[0], PACK_NAME_LENGTH)
        or set(map(type, data[1:])) != _ONLY_INT
        or min(data[1:]) < 0
    ):
        raise bad("pack location is malformed")
    return (data[0], data[1], data[2])


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
            or not is_lower_hex(item[1])
        ):
            raise bad("xattrs holds a malformed entry")
        pairs.append((item[0], item[1]))
    return tuple(sorted(pairs))
