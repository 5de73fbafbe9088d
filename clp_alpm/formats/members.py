"""The checks every member of a .clp passes, whichever container holds it.

Both readers (zipread.py, tarread.py) and `clp build` (build.py, for the files it packs) turn
what they find into `Member`s through `check_name` and collect them in a `Scan`, which refuses
too many, duplicates, collisions (the same name in another Unicode form included) and sizes over
the limits. `finish_layout` then finds the layout: the prefix to strip, the entries, PKGINFO.meta
and the script pair.
"""

from __future__ import annotations

import stat
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from clp_alpm.errors import PatchFormatError
from clp_alpm.formats.archive import (
    META_NAME,
    NAME_MAX,
    Entry,
    KiB,
    Limits,
    choose_scripts,
)
from clp_alpm.formats.meta import MAX_META_BYTES, describe_codepoint, invisible_character


class Readable(Protocol):
    """What PKGINFO.meta is read from (a file object, a zip entry's data)."""

    def read(self, size: int, /) -> bytes: ...


class Hasher(Protocol):
    """What the readers feed every byte of an archive to (a hashlib object)."""

    def update(self, data: bytes, /) -> None: ...


class Sink(Protocol):
    """Where an inspection writes each entry as it reads it (extract.Unpacker): `begin` once
    every name and size has been checked, then each entry in the file's order, its data read
    through `read` (the read that reaches its end checks its size and CRC-32)."""

    def begin(self, layout: Layout) -> None: ...

    def make_dir(self, entry: Entry) -> None: ...

    def write_file(self, entry: Entry, read: Callable[[int], bytes]) -> None: ...


@dataclass(frozen=True)
class Member:
    """An archive member that passed the per-entry checks; `parts` still include any prefix."""

    raw: str
    parts: tuple[str, ...]
    size: int
    is_dir: bool
    executable: bool


def refuse(label: str, raw: str, problem: str) -> PatchFormatError:
    """The error for the entry `raw` of the archive `label`: '<label>: entry '<raw>' <problem>'."""
    return PatchFormatError(f"{label}: entry {raw!r} {problem}")


def check_name(raw: str, label: str, limits: Limits, *, is_dir: bool) -> tuple[str, ...]:
    """The components of `raw`, normalised (no '', '.'); refuses any name that is not safe.

    An empty tuple is the archive's root ('.' or './'), allowed only for a directory.
    """
    if raw == "":
        raise PatchFormatError(f"{label}: an entry has an empty name")
    if "\0" in raw:
        raise refuse(label, raw, "contains a NUL byte")
    try:
        encoded = raw.encode("utf-8")
    except UnicodeEncodeError:
        raise refuse(label, raw, "has a name that is not valid UTF-8") from None
    if any(unicodedata.category(char) == "Cc" for char in raw):
        raise refuse(label, raw, "contains a control character")
    hidden = invisible_character(raw)
    if hidden is not None:
        raise refuse(
            label,
            raw,
            f"contains {describe_codepoint(hidden)}, a character that hides or reorders what "
            "a terminal shows",
        )
    if "\\" in raw:
        raise refuse(label, raw, "contains a backslash (a Windows path?)")
    if raw.startswith("/"):
        raise refuse(label, raw, "is an absolute path")
    if len(encoded) > limits.max_name_length:
        raise refuse(
            label, raw, f"has a name that is too long (over {limits.max_name_length} bytes)"
        )
    components = raw.split("/")
    if ".." in components:
        raise refuse(label, raw, "escapes the archive ('..')")
    if raw.endswith("/") and not is_dir:
        raise refuse(label, raw, "is a regular file but its name ends with '/'")
    parts = tuple(part for part in components if part not in ("", "."))
    if any(len(part.encode("utf-8")) > NAME_MAX for part in parts):
        raise refuse(label, raw, f"has a path component that is too long (over {NAME_MAX} bytes)")
    if len(parts) > limits.max_depth:
        raise refuse(label, raw, f"is nested too deep (over {limits.max_depth} levels)")
    if not parts and not is_dir:
        raise refuse(label, raw, "has an empty name")
    return parts


def type_refusal(label: str, raw: str, what: str) -> PatchFormatError:
    """The error for the entry `raw`, which is `what` (e.g. 'a symbolic link')."""
    return refuse(label, raw, f"is {what}; a patch may hold only regular files and directories")


def describe_mode_type(file_type: int) -> str:
    """What the file type bits `file_type` (stat.S_IFMT of a mode) name, e.g. 'a FIFO'."""
    return {
        stat.S_IFLNK: "a symbolic link",
        stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device",
        stat.S_IFIFO: "a FIFO",
        stat.S_IFSOCK: "a socket",
    }.get(file_type, f"of unknown type {file_type:#o}")


class Scan:
    """Collects members, refusing too many, duplicates, collisions and oversized ones."""

    def __init__(self, label: str, limits: Limits) -> None:
        self.label = label
        self.limits = limits
        self.members: list[Member] = []
        self.seen = 0
        self.total_size = 0
        self._by_key: dict[str, Member] = {}

    def count(self) -> None:
        """Call once per archive member, before looking at it."""
        self.seen += 1
        if self.seen > self.limits.max_entries:
            raise PatchFormatError(
                f"{self.label}: too many entries (more than {self.limits.max_entries})"
            )

    def add(self, member: Member) -> None:
        """Keep `member`; refuses a duplicate, a collision and a size over the limits."""
        key = _collision_key(member.parts)
        other = self._by_key.get(key)
        if other is not None:
            if other.raw == member.raw:
                raise refuse(self.label, member.raw, "is a duplicate (it appears twice)")
            if _nfc(other.raw) == _nfc(member.raw):
                raise refuse(
                    self.label,
                    member.raw,
                    f"collides with entry {ascii(other.raw)}: the same name in another "
                    f"Unicode form ({ascii(member.raw)})",
                )
            raise refuse(self.label, member.raw, f"collides with entry {other.raw!r}")
        self._by_key[key] = member
        if not member.is_dir:
            self._check_size(member)
        self.members.append(member)

    def _check_size(self, member: Member) -> None:
        limits = self.limits
        if member.size > limits.max_file_size:
            raise refuse(
                self.label,
                member.raw,
                f"is too large ({member.size} bytes, over {limits.max_file_size})",
            )
        self.total_size += member.size
        if self.total_size > limits.max_total_size:
            raise PatchFormatError(
                f"{self.label}: the entries' total size is too large (over "
                f"{limits.max_total_size} bytes, at entry {member.raw!r})"
            )

    def refuse_files_used_as_directories(self) -> None:
        """Refuse a member whose path goes through a member that is a file (call at the end)."""
        files = {_collision_key(m.parts) for m in self.members if not m.is_dir}
        for member in self.members:
            key_parts = _collision_key(member.parts).split("/")
            for depth in range(1, len(key_parts)):
                ancestor = "/".join(key_parts[:depth])
                if ancestor in files:
                    raise refuse(self.label, member.raw, f"is inside {ancestor!r}, which is a file")


def _collision_key(parts: tuple[str, ...]) -> str:
    # NFC and NFD spellings of one name are the same name to a person (and to macOS).
    return _nfc("/".join(parts))


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class Layout:
    """What the members of a whole archive make: the prefix, the entries, the scripts."""

    prefix: str
    entries: tuple[Entry, ...]
    install_script: str
    remove_script: str


def _find_prefix(members: list[Member]) -> str:
    """'DIR/' when every member lies under one top directory DIR holding PKGINFO.meta."""
    tops = {m.parts[0] for m in members}
    if len(tops) != 1:
        return ""
    top = next(iter(tops))
    if any(len(m.parts) == 1 and not m.is_dir for m in members):
        return ""
    if not any(m.parts == (top, META_NAME) and not m.is_dir for m in members):
        return ""
    return top + "/"


def strip_prefix(parts: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    """`parts` without the top directory when the archive has a prefix ('DIR/')."""
    return parts[1:] if prefix else parts


def _entries(members: list[Member], prefix: str) -> tuple[Entry, ...]:
    entries = []
    for member in members:
        parts = strip_prefix(member.parts, prefix)
        if parts:  # the prefix directory itself is no entry
            entries.append(entry_of(member, parts))
    return tuple(entries)


def entry_of(member: Member, parts: tuple[str, ...]) -> Entry:
    """The entry of `member`, whose path with the prefix stripped is `parts`."""
    return Entry(
        name="/".join(parts),
        size=0 if member.is_dir else member.size,
        is_dir=member.is_dir,
        executable=member.executable and not member.is_dir,
    )


def finish_layout(scan: Scan, label: str) -> Layout:
    """The layout of the archive whose members `scan` collected; refuses a file used as a
    directory, a missing PKGINFO.meta and a bad set of scripts."""
    scan.refuse_files_used_as_directories()
    prefix = _find_prefix(scan.members)
    entries = _entries(scan.members, prefix)
    files = {e.name for e in entries if not e.is_dir}
    dirs = {e.name for e in entries if e.is_dir}
    require_file(META_NAME, files, dirs, label, "it must be at the top of the archive")
    install, remove = choose_scripts(files, dirs, label)
    return Layout(prefix, entries, install, remove)


def require_file(name: str, files: set[str], dirs: set[str], label: str, hint: str) -> None:
    """Refuse unless `name` is among `files`; `hint` tells the user where it should be."""
    if name in dirs:
        raise PatchFormatError(f"{label}: {name} is a directory, not a file")
    if name not in files:
        raise PatchFormatError(f"{label}: {name} is missing ({hint})")


def check_meta_size(size: int, label: str) -> None:
    """Refuse a PKGINFO.meta of `size` bytes when that is over the limit."""
    if size > MAX_META_BYTES:
        raise PatchFormatError(
            f"{label}: {META_NAME} is larger than {MAX_META_BYTES // KiB} KiB ({size} bytes)"
        )


def read_meta(stream: Readable, label: str) -> bytes:
    """Read PKGINFO.meta to its end (so a zip CRC is checked), never more than the limit + 1."""
    data = b""
    while len(data) <= MAX_META_BYTES:
        chunk = stream.read(MAX_META_BYTES + 1 - len(data))
        if not chunk:
            return data
        data += chunk
    check_meta_size(len(data), label)
    return data
