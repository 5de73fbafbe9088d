"""Open, check, extract and build .clp patch archives.

A .clp is a zip archive (clpctl 2.1 and CLP) or, as clpctl up to 2.0 made them, a gzip'd tar.
PKGINFO.meta, the two scripts and the payload sit at the top of the archive, or all under one
single top-level directory (what `tar czf X.clp X/` makes), which is then stripped.

Every archive is hostile until checked. `inspect_patch` reads the archive's directory (and
PKGINFO.meta) without writing anything and refuses whatever a careful extractor could get
wrong: names that escape, links, devices, collisions, bombs, encryption, damage. Only then does
`extract_patch` write, into a fresh private directory, re-reading exactly the bytes that were
inspected, streaming, with the declared sizes enforced as it goes.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import stat
import struct
import tarfile
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from clp_alpm.atomicfile import fsync_directory
from clp_alpm.errors import OperationFailed, PatchFormatError, UsageError
from clp_alpm.formats.meta import MAX_META_BYTES, PatchMeta, patch_id_is_valid
from clp_alpm.formats.pkginfo import parse_meta, render_meta

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

META_NAME = "PKGINFO.meta"
# The documented names first: when both pairs are complete, the Install-Script pair is used.
SCRIPT_PAIRS: tuple[tuple[str, str], ...] = (
    ("Install-Script.ps1", "Remove-Script.ps1"),
    ("Install-Patch.ps1", "Remove-Patch.ps1"),
)
CONTAINER_ZIP = "zip"
CONTAINER_TARGZ = "tar.gz"

CHUNK_SIZE = MiB
RATIO_MIN_SIZE = MiB  # the compression ratio is only checked above this size
NAME_MAX = 255  # bytes in one path component (Linux)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_FLAG_ENCRYPTED = 0x0001
_ZIP_FLAG_STRONG_ENCRYPTION = 0x0040
_ZIP_FLAG_UTF8 = 0x0800
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_ZIP_METHOD_NAMES = {12: "bzip2", 14: "lzma", 9: "deflate64", 93: "zstd", 95: "xz", 99: "AES"}
_ZIP_LOCAL_HEADER = 30
_ZIP_CENTRAL_HEADER = 46
_ZIP_UNIX = 3

# Gzip'd tar: compressed bytes read at a time (small, so a bomb is seen early), what may sit
# between two members (headers, pax records, GNU long names), and per-entry header overhead.
_GZIP_READ_SIZE = 64 * KiB
_TAR_HEADER_ALLOWANCE = 256 * KiB
_TAR_ENTRY_OVERHEAD = 4 * KiB
_TAR_TRAILER_ALLOWANCE = 4 * MiB


@dataclass(frozen=True)
class Limits:
    """What an archive may hold. Sizes are uncompressed, as the archive declares them."""

    max_entries: int = 10_000
    max_total_size: int = 2 * GiB
    max_file_size: int = 1 * GiB
    max_ratio: int = 200  # uncompressed / compressed, per entry above RATIO_MIN_SIZE
    max_name_length: int = 1024  # bytes
    max_depth: int = 32


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Entry:
    """One entry of a patch: a normalised relative POSIX path, prefix stripped."""

    name: str
    size: int
    is_dir: bool
    executable: bool


@dataclass(frozen=True)
class PatchArchive:
    path: Path
    container: str  # "zip" | "tar.gz"
    meta: PatchMeta
    install_script: str
    remove_script: str
    entries: tuple[Entry, ...]
    sha256: str  # of the whole file
    size: int
    prefix: str  # "" or "dirname/"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for --json output)."""
        return {
            "path": str(self.path),
            "container": self.container,
            "sha256": self.sha256,
            "size": self.size,
            "prefix": self.prefix,
            "scripts": {"install": self.install_script, "remove": self.remove_script},
            "entries": [
                {"name": e.name, "size": e.size, "type": "dir" if e.is_dir else "file"}
                for e in self.entries
            ],
            "meta": self.meta.to_dict(),
        }


# ---------------------------------------------------------------------------------------------
# Inspection


def inspect_patch(path: Path, limits: Limits = DEFAULT_LIMITS) -> PatchArchive:
    """Read and check the archive at `path` without extracting anything.

    Raises PatchFormatError (MetadataError for a bad PKGINFO.meta) naming the file and entry.
    """
    path = Path(path)
    label = path.name
    with _open_archive(path, label, limits) as (file, before):
        container = _container_of(file, label)
        with _archive_errors(label, container):
            if container == CONTAINER_ZIP:
                sha256 = _sha256_of(file)
                layout, meta_data = _inspect_zip(file, label, limits, before.st_size)
            else:
                hasher = hashlib.sha256()
                layout, meta_data = _inspect_targz(file, label, limits, hasher)
                sha256 = hasher.hexdigest()
        _refuse_if_changed(file, before, label, "while it was being read")
    meta = parse_meta(meta_data, f"{label}: {META_NAME}")
    return PatchArchive(
        path=path,
        container=container,
        meta=meta,
        install_script=layout.install_script,
        remove_script=layout.remove_script,
        entries=layout.entries,
        sha256=sha256,
        size=before.st_size,
        prefix=layout.prefix,
    )


@contextmanager
def _open_archive(
    path: Path, label: str, limits: Limits
) -> Iterator[tuple[IO[bytes], os.stat_result]]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise PatchFormatError(f"{path}: {e.strerror}") from None
    _check_archive_stat(st, label, limits)
    try:
        # O_NONBLOCK: should a FIFO be swapped in after the stat, opening it does not hang.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        raise PatchFormatError(f"{path}: {e.strerror}") from None
    file = os.fdopen(fd, "rb")
    with file:
        opened = os.fstat(fd)
        _check_archive_stat(opened, label, limits)
        yield file, opened


def _check_archive_stat(st: os.stat_result, label: str, limits: Limits) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise PatchFormatError(f"{label}: not a regular file")
    if st.st_size > limits.max_total_size:
        raise PatchFormatError(
            f"{label}: the file is {st.st_size} bytes, more than the {limits.max_total_size} "
            "a patch may have"
        )


def _container_of(file: IO[bytes], label: str) -> str:
    magic = file.read(4)
    file.seek(0)
    if magic in _ZIP_MAGICS:
        return CONTAINER_ZIP
    if magic[:2] == _GZIP_MAGIC:
        return CONTAINER_TARGZ
    raise PatchFormatError(f"{label}: not a .clp patch (neither a zip archive nor a gzip'd tar)")


def _sha256_of(file: IO[bytes]) -> str:
    file.seek(0)
    hasher = hashlib.sha256()
    while chunk := file.read(CHUNK_SIZE):
        hasher.update(chunk)
    file.seek(0)
    return hasher.hexdigest()


def _same_file_state(a: os.stat_result, b: os.stat_result) -> bool:
    # ctime changes with every write and cannot be set back by the file's owner.
    keys = ("st_dev", "st_ino", "st_size", "st_mtime_ns", "st_ctime_ns")
    return all(getattr(a, key) == getattr(b, key) for key in keys)


def _refuse_if_changed(file: IO[bytes], before: os.stat_result, label: str, when: str) -> None:
    if not _same_file_state(before, os.fstat(file.fileno())):
        raise PatchFormatError(f"{label}: the file changed {when}")


class _TarDamage(Exception):
    """A damaged tar header; deliberately not a tarfile.HeaderError, so tarfile passes it on."""


@contextmanager
def _archive_errors(label: str, container: str) -> Iterator[None]:
    """Turn what the archive readers raise on bad input into one-line PatchFormatErrors."""
    kind = "zip archive" if container == CONTAINER_ZIP else "gzip'd tar"
    try:
        yield
    except _TarDamage as e:
        raise PatchFormatError(f"{label}: {e}") from None
    except UnicodeDecodeError:
        raise PatchFormatError(f"{label}: an entry name is not valid UTF-8") from None
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        tarfile.TarError,
        zlib.error,
        EOFError,
        struct.error,
        NotImplementedError,
        OverflowError,
        ValueError,
    ) as e:
        detail = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise PatchFormatError(
            f"{label}: not a valid {kind} (corrupt or truncated): {detail}"
        ) from None
    except OSError as e:
        raise PatchFormatError(f"{label}: cannot read the file: {e.strerror or e}") from None


# -- names, types and sizes, shared by both containers ----------------------------------------


@dataclass(frozen=True)
class _Member:
    """An archive member that passed the per-entry checks; `parts` still include any prefix."""

    raw: str
    parts: tuple[str, ...]
    size: int
    is_dir: bool
    executable: bool


def _refuse(label: str, raw: str, problem: str) -> PatchFormatError:
    return PatchFormatError(f"{label}: entry {raw!r} {problem}")


def _check_name(raw: str, label: str, limits: Limits, *, is_dir: bool) -> tuple[str, ...]:
    """The components of `raw`, normalised (no '', '.'); refuses any name that is not safe.

    An empty tuple is the archive's root ('.' or './'), allowed only for a directory.
    """
    if raw == "":
        raise PatchFormatError(f"{label}: an entry has an empty name")
    if "\0" in raw:
        raise _refuse(label, raw, "contains a NUL byte")
    try:
        encoded = raw.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(label, raw, "has a name that is not valid UTF-8") from None
    if any(unicodedata.category(char) == "Cc" for char in raw):
        raise _refuse(label, raw, "contains a control character")
    if "\\" in raw:
        raise _refuse(label, raw, "contains a backslash (a Windows path?)")
    if raw.startswith("/"):
        raise _refuse(label, raw, "is an absolute path")
    if len(encoded) > limits.max_name_length:
        raise _refuse(
            label, raw, f"has a name that is too long (over {limits.max_name_length} bytes)"
        )
    components = raw.split("/")
    if ".." in components:
        raise _refuse(label, raw, "escapes the archive ('..')")
    if raw.endswith("/") and not is_dir:
        raise _refuse(label, raw, "is a regular file but its name ends with '/'")
    parts = tuple(part for part in components if part not in ("", "."))
    if any(len(part.encode("utf-8")) > NAME_MAX for part in parts):
        raise _refuse(label, raw, f"has a path component that is too long (over {NAME_MAX} bytes)")
    if len(parts) > limits.max_depth:
        raise _refuse(label, raw, f"is nested too deep (over {limits.max_depth} levels)")
    if not parts and not is_dir:
        raise _refuse(label, raw, "has an empty name")
    return parts


def _type_refusal(label: str, raw: str, what: str) -> PatchFormatError:
    return _refuse(label, raw, f"is {what}; a patch may hold only regular files and directories")


class _Scan:
    """Collects members, refusing too many, duplicates, collisions and oversized ones."""

    def __init__(self, label: str, limits: Limits) -> None:
        self.label = label
        self.limits = limits
        self.members: list[_Member] = []
        self.seen = 0
        self.total_size = 0
        self._by_key: dict[str, _Member] = {}

    def count(self) -> None:
        """Call once per archive member, before looking at it."""
        self.seen += 1
        if self.seen > self.limits.max_entries:
            raise PatchFormatError(
                f"{self.label}: too many entries (more than {self.limits.max_entries})"
            )

    def add(self, member: _Member) -> None:
        key = _collision_key(member.parts)
        other = self._by_key.get(key)
        if other is not None:
            if other.raw == member.raw:
                raise _refuse(self.label, member.raw, "is a duplicate (it appears twice)")
            if _nfc(other.raw) == _nfc(member.raw):
                raise _refuse(
                    self.label,
                    member.raw,
                    f"collides with entry {ascii(other.raw)}: the same name in another "
                    f"Unicode form ({ascii(member.raw)})",
                )
            raise _refuse(self.label, member.raw, f"collides with entry {other.raw!r}")
        self._by_key[key] = member
        if not member.is_dir:
            self._check_size(member)
        self.members.append(member)

    def _check_size(self, member: _Member) -> None:
        limits = self.limits
        if member.size > limits.max_file_size:
            raise _refuse(
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
        files = {_collision_key(m.parts) for m in self.members if not m.is_dir}
        for member in self.members:
            key_parts = _collision_key(member.parts).split("/")
            for depth in range(1, len(key_parts)):
                ancestor = "/".join(key_parts[:depth])
                if ancestor in files:
                    raise _refuse(
                        self.label, member.raw, f"is inside {ancestor!r}, which is a file"
                    )


def _collision_key(parts: tuple[str, ...]) -> str:
    # NFC and NFD spellings of one name are the same name to a person (and to macOS).
    return _nfc("/".join(parts))


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class _Layout:
    prefix: str
    entries: tuple[Entry, ...]
    install_script: str
    remove_script: str


def _find_prefix(members: list[_Member]) -> str:
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


def _strip(parts: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    return parts[1:] if prefix else parts


def _entries(members: list[_Member], prefix: str) -> tuple[Entry, ...]:
    entries = []
    for member in members:
        parts = _strip(member.parts, prefix)
        if parts:  # the prefix directory itself is no entry
            entries.append(_entry(member, parts))
    return tuple(entries)


def _entry(member: _Member, parts: tuple[str, ...]) -> Entry:
    return Entry(
        name="/".join(parts),
        size=0 if member.is_dir else member.size,
        is_dir=member.is_dir,
        executable=member.executable and not member.is_dir,
    )


def _finish(scan: _Scan, label: str) -> _Layout:
    scan.refuse_files_used_as_directories()
    prefix = _find_prefix(scan.members)
    entries = _entries(scan.members, prefix)
    files = {e.name for e in entries if not e.is_dir}
    dirs = {e.name for e in entries if e.is_dir}
    _require_file(META_NAME, files, dirs, label, "it must be at the top of the archive")
    install, remove = choose_scripts(files, dirs, label)
    return _Layout(prefix, entries, install, remove)


def _require_file(name: str, files: set[str], dirs: set[str], label: str, hint: str) -> None:
    if name in dirs:
        raise PatchFormatError(f"{label}: {name} is a directory, not a file")
    if name not in files:
        raise PatchFormatError(f"{label}: {name} is missing ({hint})")


def choose_scripts(files: set[str], dirs: set[str], label: str) -> tuple[str, str]:
    """The (install, remove) script names among the top-level `files`; refuses a bad set."""
    for name in (n for pair in SCRIPT_PAIRS for n in pair):
        if name in dirs:
            raise PatchFormatError(f"{label}: {name} is a directory, not a script")
    for install, remove in SCRIPT_PAIRS:
        if (install in files) != (remove in files):
            present, missing = (install, remove) if install in files else (remove, install)
            raise PatchFormatError(
                f"{label}: {present} is there but {missing} is missing; a patch needs both"
            )
    for install, remove in SCRIPT_PAIRS:
        if install in files:
            return install, remove
    names = " nor ".join(f"{install}/{remove}" for install, remove in SCRIPT_PAIRS)
    raise PatchFormatError(f"{label}: has neither {names}")


def _check_meta_size(size: int, label: str) -> None:
    if size > MAX_META_BYTES:
        raise PatchFormatError(
            f"{label}: {META_NAME} is larger than {MAX_META_BYTES // KiB} KiB ({size} bytes)"
        )


def _read_meta(stream: IO[bytes], label: str) -> bytes:
    """Read PKGINFO.meta to its end (so a zip CRC is checked), never more than the limit + 1."""
    data = b""
    while len(data) <= MAX_META_BYTES:
        chunk = stream.read(MAX_META_BYTES + 1 - len(data))
        if not chunk:
            return data
        data += chunk
    _check_meta_size(len(data), label)
    return data


# -- zip --------------------------------------------------------------------------------------


def _inspect_zip(
    file: IO[bytes], label: str, limits: Limits, file_size: int
) -> tuple[_Layout, bytes]:
    _count_zip_directory(file, label, limits)
    with zipfile.ZipFile(file) as archive:
        scan = _Scan(label, limits)
        infos = archive.infolist()
        by_member: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            scan.count()
            member = _zip_member(info, label, limits)
            if member is not None:
                _add_zip_member(scan, member, info, limits)
                by_member[member.raw] = info
        _check_zip_spans(infos, label, file_size)
        layout = _finish(scan, label)
        meta_info = by_member[_raw_name_of(scan.members, layout.prefix, META_NAME)]
        _check_meta_size(meta_info.file_size, label)
        with archive.open(meta_info) as stream:
            meta_data = _read_meta(stream, label)
    return layout, meta_data


def _raw_name_of(members: list[_Member], prefix: str, name: str) -> str:
    wanted = tuple(name.split("/"))
    for member in members:
        if not member.is_dir and _strip(member.parts, prefix) == wanted:
            return member.raw
    raise AssertionError(f"{name} vanished after the checks")  # _finish required it


def _max_zip_directory_bytes(limits: Limits) -> int:
    return limits.max_entries * (_ZIP_CENTRAL_HEADER + limits.max_name_length + KiB) + MiB


def _count_zip_directory(file: IO[bytes], label: str, limits: Limits) -> None:
    """Refuse too many entries or a huge central directory before zipfile loads it all.

    zipfile reads the whole central directory into memory and makes an object per record, so a
    few megabytes of tiny records would cost far more memory than the file's size. This walks
    the same records, located exactly as zipfile locates them, and only counts.
    """
    locate = getattr(zipfile, "_EndRecData", None)
    if locate is None:  # not in this Python: zipfile's own parse still bounds the count later
        return
    end = locate(file)
    if end is None:
        raise zipfile.BadZipFile("File is not a zip file")
    size_cd, offset_cd = end[zipfile._ECD_SIZE], end[zipfile._ECD_OFFSET]
    start = end[zipfile._ECD_LOCATION] - size_cd
    if end[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
        start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
    if size_cd > _max_zip_directory_bytes(limits):
        raise PatchFormatError(
            f"{label}: the zip central directory is too large ({size_cd} bytes) "
            f"for at most {limits.max_entries} entries"
        )
    if start < 0 or offset_cd < 0:
        raise zipfile.BadZipFile("Bad offset for central directory")
    file.seek(start)
    consumed = count = 0
    while consumed < size_cd:
        header = file.read(_ZIP_CENTRAL_HEADER)
        if len(header) != _ZIP_CENTRAL_HEADER or header[:4] != b"PK\x01\x02":
            break  # zipfile reports the damage
        name_len, extra_len, comment_len = struct.unpack("<HHH", header[28:34])
        file.seek(name_len + extra_len + comment_len, os.SEEK_CUR)
        consumed += _ZIP_CENTRAL_HEADER + name_len + extra_len + comment_len
        count += 1
        if count > limits.max_entries:
            raise PatchFormatError(f"{label}: too many entries (more than {limits.max_entries})")
    file.seek(0)


def _zip_member(info: zipfile.ZipInfo, label: str, limits: Limits) -> _Member | None:
    raw = info.orig_filename  # zipfile cuts `filename` at a NUL byte; this is the stored name
    if not info.flag_bits & _ZIP_FLAG_UTF8 and not raw.isascii():
        raise _refuse(label, raw, "has a non-ASCII name not marked as UTF-8 (not valid UTF-8)")
    mode = info.external_attr >> 16
    file_type = stat.S_IFMT(mode)
    if file_type == 0:  # made on a system without Unix modes: the name tells
        is_dir = raw.endswith("/")
    elif file_type in (stat.S_IFDIR, stat.S_IFREG):
        is_dir = file_type == stat.S_IFDIR
    else:
        raise _type_refusal(label, raw, _describe_mode_type(file_type))
    parts = _check_name(raw, label, limits, is_dir=is_dir)
    if info.flag_bits & (_ZIP_FLAG_ENCRYPTED | _ZIP_FLAG_STRONG_ENCRYPTION):
        raise _refuse(label, raw, "is encrypted")
    if info.compress_type not in _ZIP_METHODS:
        method = _ZIP_METHOD_NAMES.get(info.compress_type, "unknown")
        raise _refuse(
            label,
            raw,
            f"uses compression method {info.compress_type} ({method}); "
            "only stored and deflated are allowed",
        )
    if not parts:
        return None
    return _Member(
        raw=raw,
        parts=parts,
        size=info.file_size,
        is_dir=is_dir,
        executable=file_type == stat.S_IFREG and bool(mode & 0o111),
    )


def _add_zip_member(scan: _Scan, member: _Member, info: zipfile.ZipInfo, limits: Limits) -> None:
    scan.add(member)  # the size limits first, then what only zip declares
    if not member.is_dir:
        _check_zip_sizes(info, member.raw, scan.label, limits)


def _describe_mode_type(file_type: int) -> str:
    return {
        stat.S_IFLNK: "a symbolic link",
        stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device",
        stat.S_IFIFO: "a FIFO",
        stat.S_IFSOCK: "a socket",
    }.get(file_type, f"of unknown type {file_type:#o}")


def _check_zip_sizes(info: zipfile.ZipInfo, raw: str, label: str, limits: Limits) -> None:
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise _refuse(
            label,
            raw,
            f"is stored uncompressed but declares {info.file_size} bytes "
            f"in {info.compress_size} (a lying header)",
        )
    if info.file_size > RATIO_MIN_SIZE and info.file_size > limits.max_ratio * max(
        info.compress_size, 1
    ):
        ratio = info.file_size // max(info.compress_size, 1)
        raise _refuse(
            label,
            raw,
            f"has a compression ratio of {ratio}:1 ({info.file_size} bytes from "
            f"{info.compress_size}), over the {limits.max_ratio}:1 allowed (a zip bomb?)",
        )


def _check_zip_spans(infos: list[zipfile.ZipInfo], label: str, file_size: int) -> None:
    """Refuse entries whose data overlap (a zip bomb trick), data before them, or data past
    the end of the file. The extent is a lower bound: the local extra field is not counted."""
    previous: zipfile.ZipInfo | None = None
    end = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if previous is None and info.header_offset != 0:
            raise PatchFormatError(
                f"{label}: has {info.header_offset} bytes of unknown data before its first entry"
            )
        if previous is not None and info.header_offset < end:
            raise _refuse(label, info.orig_filename, f"overlaps entry {previous.orig_filename!r}")
        end = info.header_offset + _ZIP_LOCAL_HEADER + _zip_name_length(info) + info.compress_size
        if end > file_size:
            raise _refuse(label, info.orig_filename, "runs past the end of the file (truncated?)")
        previous = info


def _zip_name_length(info: zipfile.ZipInfo) -> int:
    encoding = "utf-8" if info.flag_bits & _ZIP_FLAG_UTF8 else "cp437"
    return len(info.orig_filename.encode(encoding, "surrogateescape"))


# -- gzip'd tar -------------------------------------------------------------------------------


class _GzipReader:
    """The decompressed bytes of a gzip file, as a file object for tarfile's stream mode.

    It checks while it inflates, so a bomb stops after a few megabytes and memory stays flat:
    the total against the limits, the overall compression ratio, and how much may be read
    between two members (tarfile reads pax records and GNU long names into memory whole).
    """

    def __init__(
        self, raw: IO[bytes], label: str, limits: Limits, hasher: Any | None = None
    ) -> None:
        self._raw = raw
        self._label = label
        self._limits = limits
        self._hasher = hasher
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._finished = False
        self._budget_end: int | None = _TAR_HEADER_ALLOWANCE
        self._cap = (
            limits.max_total_size
            + limits.max_entries * _TAR_ENTRY_OVERHEAD
            + _TAR_TRAILER_ALLOWANCE
        )
        self.compressed = 0
        self.inflated = 0

    def expect_member(self, data_size: int) -> None:
        """Tarfile just returned a member whose data (`data_size` bytes) it will skip."""
        padded = -(-data_size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        self._budget_end = self.inflated + padded + _TAR_HEADER_ALLOWANCE

    def expect_trailer(self) -> None:
        self._budget_end = None

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > CHUNK_SIZE:
            size = CHUNK_SIZE
        while size and not self._finished:
            data = self._inflate(size)
            if data:
                self._account(len(data))
                return data
        return b""

    def _inflate(self, size: int) -> bytes:
        inflater = self._inflater
        if inflater.eof:
            rest = inflater.unused_data or self._read_compressed()
            if not rest:
                self._finished = True
                return b""
            # Another gzip member follows (gzip allows concatenation); anything else is an error.
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
            return self._inflater.decompress(rest, size)
        source = inflater.unconsumed_tail or self._read_compressed()
        if not source:
            raise PatchFormatError(f"{self._label}: truncated (the gzip stream ends early)")
        return inflater.decompress(source, size)

    def _read_compressed(self) -> bytes:
        data = self._raw.read(_GZIP_READ_SIZE)
        self.compressed += len(data)
        if self._hasher is not None:
            self._hasher.update(data)
        return data

    def _account(self, count: int) -> None:
        self.inflated += count
        limits = self._limits
        if self.inflated > self._cap:
            raise PatchFormatError(
                f"{self._label}: decompresses to more than the {self._cap} bytes allowed"
            )
        if self.inflated > RATIO_MIN_SIZE and self.inflated > limits.max_ratio * self.compressed:
            raise PatchFormatError(
                f"{self._label}: compression ratio over {limits.max_ratio}:1 "
                f"({self.inflated} bytes from {self.compressed}); refused as a gzip bomb"
            )
        if self._budget_end is not None and self.inflated > self._budget_end:
            raise PatchFormatError(
                f"{self._label}: a tar header is larger than {_TAR_HEADER_ALLOWANCE // KiB} KiB "
                "(a damaged or hostile archive)"
            )


class _StrictTarInfo(tarfile.TarInfo):
    """tarfile ends an archive quietly at a damaged or cut header after the first one; this
    makes every such header an error, while a zero block still ends the archive."""

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:
        try:
            return super().frombuf(buf, encoding, errors)
        except tarfile.EOFHeaderError:
            raise
        except tarfile.EmptyHeaderError:
            raise _TarDamage("truncated (the tar archive has no end marker)") from None
        except tarfile.TruncatedHeaderError:
            raise _TarDamage("truncated (a tar header is cut short)") from None
        except tarfile.HeaderError as e:
            raise _TarDamage(f"has a damaged tar header ({e})") from None


def _tar_stream(reader: _GzipReader) -> tarfile.TarFile:
    """tarfile in stream mode over `reader`: one pass, forward only, nothing extracted."""
    return tarfile.open(
        fileobj=reader,  # type: ignore[arg-type]
        mode="r|",
        tarinfo=_StrictTarInfo,
        encoding="utf-8",
        errors="surrogateescape",
    )


def _iter_tar(reader: _GzipReader, archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    for info in archive:
        skipped = info.isreg() or info.type not in tarfile.SUPPORTED_TYPES
        reader.expect_member(info.size if skipped else 0)
        yield info
    reader.expect_trailer()


def _drain_trailer(reader: _GzipReader, label: str) -> None:
    """Read to the end of the gzip stream: its CRC and length are checked there, and what
    follows the tar end marker must be the zero padding tar writes."""
    while chunk := reader.read(CHUNK_SIZE):
        if chunk.count(0) != len(chunk):
            raise PatchFormatError(f"{label}: has data after the end of the tar archive")


_TAR_TYPE_NAMES = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.CONTTYPE: "a contiguous file",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}


def _tar_member(info: tarfile.TarInfo, label: str, limits: Limits) -> _Member | None:
    raw = info.name
    if info.sparse is not None:  # a GNU sparse file in pax form keeps the regular type
        raise _type_refusal(label, raw, "a sparse file")
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        is_dir = False
    elif info.type == tarfile.DIRTYPE:
        is_dir = True
    else:
        what = _TAR_TYPE_NAMES.get(info.type, f"of unsupported tar type {info.type!r}")
        raise _type_refusal(label, raw, what)
    parts = _check_name(raw, label, limits, is_dir=is_dir)
    if info.size < 0:  # base-256 size fields can be negative
        raise _refuse(label, raw, f"declares a negative size ({info.size})")
    if not parts:
        return None
    return _Member(
        raw=raw,
        parts=parts,
        size=info.size,
        is_dir=is_dir,
        executable=not is_dir and bool(info.mode & 0o111),
    )


def _inspect_targz(
    file: IO[bytes], label: str, limits: Limits, hasher: Any
) -> tuple[_Layout, bytes]:
    reader = _GzipReader(file, label, limits, hasher)
    scan = _Scan(label, limits)
    # The prefix is known only at the end: keep PKGINFO.meta from the top and the first one
    # found one level down (several top directories leave no prefix to strip anyway).
    top_meta: bytes | None = None
    nested_meta: tuple[tuple[str, ...], bytes] | None = None
    with _tar_stream(reader) as archive:
        for info in _iter_tar(reader, archive):
            scan.count()
            member = _tar_member(info, label, limits)
            if member is None:
                continue
            scan.add(member)
            if member.is_dir or member.parts[-1] != META_NAME or len(member.parts) > 2:
                continue
            if len(member.parts) == 2 and nested_meta is not None:
                continue
            _check_meta_size(member.size, label)
            stream = archive.extractfile(info)
            assert stream is not None  # a regular file
            data = _read_meta(stream, label)
            if len(member.parts) == 1:
                top_meta = data
            else:
                nested_meta = (member.parts, data)
    _drain_trailer(reader, label)
    layout = _finish(scan, label)
    if not layout.prefix and top_meta is not None:
        return layout, top_meta
    if nested_meta is not None and nested_meta[0] == (layout.prefix.rstrip("/"), META_NAME):
        return layout, nested_meta[1]
    raise AssertionError(f"{META_NAME} was not kept")  # _finish required it, at this place


# ---------------------------------------------------------------------------------------------
# Extraction


def extract_patch(archive: PatchArchive, dest: Path, limits: Limits = DEFAULT_LIMITS) -> None:
    """Extract the inspected `archive` into `dest`, an existing empty private directory.

    The file must still be exactly what was inspected (same SHA-256). Directories are made
    0755, files 0644 (0755 for the scripts and entries marked executable). On any error what
    was written inside `dest` is removed, `dest` itself is left, and PatchFormatError is raised
    (OperationFailed when writing itself fails, e.g. a full disk).
    """
    label = Path(archive.path).name
    dest_fd = _open_empty_dir(Path(dest))
    try:
        with _open_archive(Path(archive.path), label, limits) as (file, before):
            writer = _Writer(dest_fd, label, limits, archive)
            try:
                if _sha256_of(file) != archive.sha256:
                    raise PatchFormatError(f"{label}: the file changed since it was inspected")
                with _archive_errors(label, archive.container):
                    if archive.container == CONTAINER_ZIP:
                        _extract_zip(file, archive, writer, limits)
                    else:
                        _extract_targz(file, archive, writer, limits)
                _refuse_if_changed(file, before, label, "while it was being extracted")
            except BaseException:
                _empty_directory(dest_fd)
                raise
    finally:
        os.close(dest_fd)


def _open_empty_dir(dest: Path) -> int:
    try:
        fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise UsageError(f"{dest}: cannot extract here: {e.strerror}") from None
    if os.listdir(fd):
        os.close(fd)
        raise UsageError(f"{dest}: cannot extract here: the directory is not empty")
    return fd


class _Matcher:
    """Checks that a re-read archive yields exactly the entries inspection saw, in order."""

    def __init__(self, archive: PatchArchive, label: str) -> None:
        self.expected = archive.entries
        self.prefix = archive.prefix
        self.label = label
        self.index = 0

    def match(self, member: _Member) -> Entry | None:
        if self.prefix and member.parts[0] != self.prefix.rstrip("/"):
            raise self._changed()
        parts = _strip(member.parts, self.prefix)
        if not parts:
            return None
        entry = _entry(member, parts)
        if self.index >= len(self.expected) or self.expected[self.index] != entry:
            raise self._changed()
        self.index += 1
        return entry

    def finish(self) -> None:
        if self.index != len(self.expected):
            raise self._changed()

    def _changed(self) -> PatchFormatError:
        return PatchFormatError(f"{self.label}: the archive's entries changed since inspection")


def _extract_zip(file: IO[bytes], archive: PatchArchive, writer: _Writer, limits: Limits) -> None:
    label = writer.label
    matcher = _Matcher(archive, label)
    _count_zip_directory(file, label, limits)
    with zipfile.ZipFile(file) as zf:
        planned: list[tuple[zipfile.ZipInfo, Entry]] = []
        scan = _Scan(label, limits)
        for info in zf.infolist():
            scan.count()
            member = _zip_member(info, label, limits)
            if member is None:
                continue
            _add_zip_member(scan, member, info, limits)
            entry = matcher.match(member)
            if entry is not None:
                planned.append((info, entry))
        matcher.finish()
        for info, entry in planned:
            if entry.is_dir:
                writer.make_dir(entry)
            else:
                with zf.open(info) as stream:
                    writer.write_file(entry, stream.read)


def _extract_targz(file: IO[bytes], archive: PatchArchive, writer: _Writer, limits: Limits) -> None:
    label = writer.label
    matcher = _Matcher(archive, label)
    reader = _GzipReader(file, label, limits)
    scan = _Scan(label, limits)
    with _tar_stream(reader) as tar:
        for info in _iter_tar(reader, tar):
            scan.count()
            member = _tar_member(info, label, limits)
            if member is None:
                continue
            scan.add(member)
            entry = matcher.match(member)
            if entry is None:
                continue
            if entry.is_dir:
                writer.make_dir(entry)
            else:
                stream = tar.extractfile(info)
                assert stream is not None  # a regular file
                writer.write_file(entry, stream.read)
    matcher.finish()
    _drain_trailer(reader, label)


class _Writer:
    """Writes entries under a directory fd, never through a symlink, never over a file."""

    def __init__(self, dest_fd: int, label: str, limits: Limits, archive: PatchArchive) -> None:
        self.dest_fd = dest_fd
        self.label = label
        self.limits = limits
        self.scripts = {archive.install_script, archive.remove_script}
        self.written = 0

    def make_dir(self, entry: Entry) -> None:
        fd = self._open_dirs(entry.name.split("/"))
        try:
            os.fchmod(fd, 0o755)
        except OSError as e:
            raise self._failed(entry, e) from None
        finally:
            os.close(fd)

    def write_file(self, entry: Entry, read: Callable[[int], bytes]) -> None:
        *parents, leaf = entry.name.split("/")
        parent_fd = self._open_dirs(parents)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(leaf, flags, 0o600, dir_fd=parent_fd)
        except OSError as e:
            raise self._failed(entry, e) from None
        finally:
            os.close(parent_fd)
        try:
            count = self._copy(entry, read, fd)
            if count != entry.size:
                raise _refuse(
                    self.label,
                    entry.name,
                    f"holds {count} bytes, not the {entry.size} its header declares",
                )
            mode = 0o755 if entry.executable or entry.name in self.scripts else 0o644
            os.fchmod(fd, mode)
        except OSError as e:
            raise self._failed(entry, e) from None
        finally:
            os.close(fd)

    def _copy(self, entry: Entry, read: Callable[[int], bytes], fd: int) -> int:
        count = 0
        while chunk := read(CHUNK_SIZE):
            count += len(chunk)
            if count > entry.size:
                raise _refuse(
                    self.label,
                    entry.name,
                    f"holds more data than the {entry.size} bytes its header declares",
                )
            self.written += len(chunk)
            if self.written > self.limits.max_total_size:
                raise PatchFormatError(
                    f"{self.label}: extracts to more than {self.limits.max_total_size} bytes"
                )
            _write_all(fd, chunk)
        return count

    def _open_dirs(self, parts: list[str]) -> int:
        """An fd of dest/parts, making each missing directory 0755; refuses anything else
        in the way (O_NOFOLLOW and O_DIRECTORY: no symlink, no file)."""
        fd = os.dup(self.dest_fd)
        try:
            for part in parts:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    created = True
                except FileExistsError:
                    created = False
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                next_fd = os.open(part, flags, dir_fd=fd)
                os.close(fd)
                fd = next_fd
                if created:
                    os.fchmod(fd, 0o755)  # mkdir's mode went through the umask
            return fd
        except OSError as e:
            os.close(fd)
            raise OperationFailed(
                f"{self.label}: cannot create directory {'/'.join(parts)!r}: {e.strerror}"
            ) from None

    def _failed(self, entry: Entry, error: OSError) -> OperationFailed:
        return OperationFailed(f"{self.label}: cannot extract {entry.name!r}: {error.strerror}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _empty_directory(dir_fd: int) -> None:
    """Remove everything inside the directory `dir_fd`, never following a symlink."""
    for name in os.listdir(dir_fd):
        _remove_at(dir_fd, name)


def _remove_at(dir_fd: int, name: str) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        child = os.open(name, flags, dir_fd=dir_fd)
        try:
            _empty_directory(child)
        finally:
            os.close(child)
        os.rmdir(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


# ---------------------------------------------------------------------------------------------
# Building


@dataclass(frozen=True)
class _SourceItem:
    name: str  # relative POSIX path
    path: Path
    is_dir: bool
    size: int
    mode: int


def build_patch(src_dir: Path, out: Path) -> PatchArchive:
    """Check the patch directory `src_dir` and pack it into the zip `out`, deterministically
    (sorted entries, fixed timestamps, modes 0644/0755) and atomically. Returns its inspection.
    """
    src = Path(src_dir)
    label = str(src)
    if not src.is_dir():
        raise UsageError(f"{src}: not a directory")
    out = Path(out)
    out_abs = out.parent.resolve() / out.name
    skip = _output_inside_source(src.resolve(), out_abs, out)
    try:
        items = _collect_sources(src, label, DEFAULT_LIMITS, skip)
        _check_sources(items, label)
        _write_zip_atomically(items, out_abs)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        raise OperationFailed(f"{out}: cannot build the patch: {where}{e.strerror or e}") from None
    return inspect_patch(out)


def _output_inside_source(src_real: Path, out_abs: Path, out: Path) -> str | None:
    """The output's name if it lies at the top of the source (it is left out of the archive)."""
    try:
        relative = out_abs.relative_to(src_real)
    except ValueError:
        return None
    if len(relative.parts) != 1 or not out.name.endswith(".clp"):
        raise UsageError(
            f"{out}: the output is inside the patch directory {src_real} and would overwrite "
            "or join its contents; write it elsewhere (or as NAME.clp at its top)"
        )
    return out.name


def _collect_sources(src: Path, label: str, limits: Limits, skip: str | None) -> list[_SourceItem]:
    """Every directory and regular file under `src`, sorted, checked as an archive would be."""
    items: list[_SourceItem] = []
    scan = _Scan(label, limits)

    def walk(directory: Path, prefix: str) -> None:
        with os.scandir(directory) as listing:
            children = sorted(listing, key=lambda e: e.name)
        for child in children:
            name = prefix + child.name
            st = child.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            if name == skip and not is_dir:
                continue
            if not is_dir and not stat.S_ISREG(st.st_mode):
                raise _type_refusal(label, name, _describe_mode_type(stat.S_IFMT(st.st_mode)))
            scan.count()
            parts = _check_name(name, label, limits, is_dir=is_dir)
            executable = not is_dir and bool(st.st_mode & 0o111)
            size = 0 if is_dir else st.st_size
            scan.add(_Member(name, parts, size, is_dir, executable))
            mode = 0o755 if is_dir or executable else 0o644
            items.append(_SourceItem(name, Path(child.path), is_dir, size, mode))
            if is_dir:
                walk(Path(child.path), name + "/")

    walk(src, "")
    return items


def _check_sources(items: list[_SourceItem], label: str) -> None:
    files = {i.name for i in items if not i.is_dir}
    dirs = {i.name for i in items if i.is_dir}
    _require_file(META_NAME, files, dirs, label, "write one, e.g. with 'clp new'")
    meta_item = next(i for i in items if i.name == META_NAME)
    _check_meta_size(meta_item.size, label)
    with open(meta_item.path, "rb") as stream:
        meta_data = _read_meta(stream, label)
    parse_meta(meta_data, f"{label}/{META_NAME}")
    choose_scripts(files, dirs, label)


def _write_zip_atomically(items: list[_SourceItem], out_abs: Path) -> None:
    scripts = {name for pair in SCRIPT_PAIRS for name in pair}
    fd, temp_name = tempfile.mkstemp(prefix=f".{out_abs.name}.", suffix=".tmp", dir=out_abs.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w+b") as raw:
            with zipfile.ZipFile(raw, "w") as archive:
                for item in items:
                    if item.is_dir:
                        archive.writestr(_zip_dir_info(item.name), b"")
                    else:
                        mode = 0o755 if item.name in scripts else item.mode
                        _add_zip_file(archive, item, mode)
            raw.flush()
            os.fchmod(raw.fileno(), 0o644)
            os.fsync(raw.fileno())
        os.replace(temp, out_abs)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(out_abs.parent)


def _zip_dir_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name + "/", date_time=ZIP_EPOCH)
    info.create_system = _ZIP_UNIX
    info.external_attr = ((stat.S_IFDIR | 0o755) << 16) | 0x10  # 0x10: MS-DOS directory bit
    info.compress_type = zipfile.ZIP_STORED
    return info


def _add_zip_file(archive: zipfile.ZipFile, item: _SourceItem, mode: int) -> None:
    info = zipfile.ZipInfo(item.name, date_time=ZIP_EPOCH)
    info.create_system = _ZIP_UNIX
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    info.file_size = item.size
    fd = os.open(item.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as source, archive.open(info, "w") as target:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{item.path}: changed while the patch was being built")
        count = 0
        while chunk := source.read(CHUNK_SIZE):
            count += len(chunk)
            target.write(chunk)
        if count != item.size:
            raise UsageError(f"{item.path}: changed while the patch was being built")


# ---------------------------------------------------------------------------------------------
# Template for `clp new`

TEMPLATE_TARGET = "/etc/clp-example.conf"
TEMPLATE_TARGET_IN_ROOT = TEMPLATE_TARGET.lstrip("/")
TEMPLATE_PAYLOAD = "files/etc/clp-example.conf"

_TEMPLATE_HEADER = """\
#!/usr/bin/env pwsh
# {script} of patch {patch_id}, run by clp as root, chrooted into the system it patches.
#
# clp sets:
#   CLP_PATCH_ID   the patch id ({patch_id})
#   CLP_PATCH_DIR  where the patch was extracted (its payload, e.g. {payload}, is there)
#   CLP_ROOT       the root of the system being patched, as this script sees it (/)
#
# Before Install-Script.ps1 runs, clp snapshots every path listed in <Files> of PKGINFO.meta
# and restores them exactly on rollback or failure: no backup logic is needed here.
# Stop with a non-zero exit code on any error. A failing Install-Script.ps1 rolls the patch
# back; a failing Remove-Script.ps1 is a warning (clp restores the files from its snapshot).
# Install-Script.ps1 runs again when a pacman upgrade replaces a declared file: keep it safe
# to run twice.

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

foreach ($name in 'CLP_PATCH_ID', 'CLP_PATCH_DIR', 'CLP_ROOT') {{
    if (-not [Environment]::GetEnvironmentVariable($name)) {{
        throw "$name is not set: run this patch through clp"
    }}
}}

$target = Join-Path $env:CLP_ROOT '{target_in_root}'
"""

_TEMPLATE_INSTALL = """\
$source = Join-Path $env:CLP_PATCH_DIR '{payload}'

Write-Host "[$env:CLP_PATCH_ID] installing $target"
New-Item -ItemType Directory -Force -Path (Split-Path -Parent $target) | Out-Null
Copy-Item -LiteralPath $source -Destination $target -Force
Write-Host "[$env:CLP_PATCH_ID] installed $target"
exit 0
"""

_TEMPLATE_REMOVE = """\
if (Test-Path -LiteralPath $target) {{
    Remove-Item -LiteralPath $target -Force
    Write-Host "[$env:CLP_PATCH_ID] removed $target"
}} else {{
    Write-Host "[$env:CLP_PATCH_ID] $target is already gone"
}}
exit 0
"""

_TEMPLATE_CONF = """\
# Installed by the example patch {patch_id} (created with 'clp new').
# Replace this payload, PKGINFO.meta's <Files> and the scripts with your own.
example = true
"""


def write_template(dest: Path, patch_id: str) -> None:
    """Create the patch directory `dest` for `clp new`: PKGINFO.meta, working template scripts
    and an example payload. Refuses an invalid id and an existing non-empty `dest`."""
    if not patch_id_is_valid(patch_id):
        raise UsageError(
            f"{patch_id!r} is not a valid patch id: use 1 to 64 letters, digits, '.', '_', '+' "
            "or '-', starting with a letter or digit (e.g. CLPR261125)"
        )
    dest = Path(dest)
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise UsageError(f"{dest}: exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()):
        raise UsageError(f"{dest}: exists and is not empty")
    files = _template_files(patch_id)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for name, (data, mode) in files.items():
            path = dest / name
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            written.append(path)
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
                os.fchmod(stream.fileno(), mode)
    except OSError as e:
        _remove_template(dest, written, created)
        raise OperationFailed(f"{dest}: cannot write the template: {e.strerror}") from None


def _template_files(patch_id: str) -> dict[str, tuple[bytes, int]]:
    meta = PatchMeta(
        name=patch_id,
        version="1",
        architecture="any",
        description=f"Example patch {patch_id}: installs {TEMPLATE_TARGET}",
        date=datetime.date.today().isoformat(),
        files=(TEMPLATE_TARGET,),
    )
    fields = {
        "patch_id": patch_id,
        "payload": TEMPLATE_PAYLOAD,
        "target_in_root": TEMPLATE_TARGET_IN_ROOT,
    }
    install_name, remove_name = SCRIPT_PAIRS[0]
    install = _TEMPLATE_HEADER.format(script=install_name, **fields) + "\n"
    install += _TEMPLATE_INSTALL.format(**fields)
    remove = _TEMPLATE_HEADER.format(script=remove_name, **fields) + "\n"
    remove += _TEMPLATE_REMOVE.format(**fields)
    return {
        META_NAME: (render_meta(meta), 0o644),
        install_name: (install.encode("utf-8"), 0o755),
        remove_name: (remove.encode("utf-8"), 0o755),
        TEMPLATE_PAYLOAD: (_TEMPLATE_CONF.format(**fields).encode("utf-8"), 0o644),
    }


def _remove_template(dest: Path, written: list[Path], created: bool) -> None:
    for path in written:
        path.unlink(missing_ok=True)
    directories = sorted({p for w in written for p in w.parents if dest in p.parents}, reverse=True)
    for directory in [*directories, *([dest] if created else [])]:
        with suppress(OSError):
            directory.rmdir()
