"""Reading a zip .clp: one unambiguous layout, every member checked, every byte read once.

zipfile parses the central directory; this module refuses, before anything is extracted,
what zipfile would accept but a patch must not hold: a central directory too big for the
entry limit, links, devices and other non-regular types (from the Unix mode), encryption,
compression methods other than stored and deflated, and sizes that lie. Readers disagree on
an ambiguous zip (what a reviewer saw with one tool is not what clp would run), so the file
must be laid out exactly one way: local entries back to back from the first byte, each
saying what its central record says (name, flags, method, CRC-32, sizes), then the central
directory, the zip64 end records if any (agreeing with the end record), and the end record
whose comment ends the file, nothing before, between or after them. `walk_zip` reads the
file once, front to back, checking all of that, inflating and CRC-checking every entry and
feeding every byte to a hasher: inspection and extraction both read through it.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from clp_alpm.errors import PatchFormatError
from clp_alpm.formats.archive import (
    CHUNK_SIZE,
    META_NAME,
    RATIO_MIN_SIZE,
    Entry,
    KiB,
    Limits,
    MiB,
)
from clp_alpm.formats.members import (
    Hasher,
    Layout,
    Member,
    Scan,
    Sink,
    check_meta_size,
    check_name,
    describe_mode_type,
    entry_of,
    finish_layout,
    read_meta,
    refuse,
    strip_prefix,
    type_refusal,
)

_ZIP_FLAG_ENCRYPTED = 0x0001
_ZIP_FLAG_DESCRIPTOR = 0x0008
_ZIP_FLAG_STRONG_ENCRYPTION = 0x0040
_ZIP_FLAG_UTF8 = 0x0800
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_ZIP_METHOD_NAMES = {12: "bzip2", 14: "lzma", 9: "deflate64", 93: "zstd", 95: "xz", 99: "AES"}

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_END = struct.Struct("<4sQHHIIQQQQ")
_LOCAL_SIG = b"PK\x03\x04"
_CENTRAL_SIG = b"PK\x01\x02"
_END_SIG = b"PK\x05\x06"
_ZIP64_END_SIG = b"PK\x06\x06"
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_DESCRIPTOR_SIG = b"PK\x07\x08"
_RECORD_SIGS = (_LOCAL_SIG, _CENTRAL_SIG, _END_SIG, _ZIP64_END_SIG, _ZIP64_LOCATOR_SIG)
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_ZIP64_EXTRA = 0x0001
_MAX_COMMENT = 0xFFFF


@dataclass(frozen=True)
class ZipTail:
    """Where the central directory is and what the end record(s) say of it."""

    cd_offset: int
    cd_size: int
    count: int


@dataclass(frozen=True)
class OpenZip:
    """A zip .clp whose end records and central directory were checked, with zipfile's view."""

    archive: zipfile.ZipFile
    tail: ZipTail
    file_size: int


@contextmanager
def open_zip(file: IO[bytes], label: str, limits: Limits) -> Iterator[OpenZip]:
    """zipfile over `file`, once its end records are unambiguous and its central directory
    is known to fit the entry limit and to be the one zipfile reads."""
    file.seek(0, 2)
    file_size = file.tell()
    tail = _read_tail(file, label, file_size, limits)
    _count_zip_directory(file, label, limits, tail)
    file.seek(0)
    with zipfile.ZipFile(file) as archive:
        internals: Any = archive  # start_dir is set by zipfile's reader, not in typeshed
        if (
            getattr(internals, "start_dir", tail.cd_offset) != tail.cd_offset
            or len(archive.infolist()) != tail.count
        ):
            raise PatchFormatError(
                f"{label}: zipfile reads another central directory than the end record "
                "names (an ambiguous archive)"
            )
        yield OpenZip(archive, tail, file_size)


def zip_members(
    archive: zipfile.ZipFile, scan: Scan, limits: Limits
) -> Iterator[tuple[zipfile.ZipInfo, Member]]:
    """Each member of `archive` in the directory's order, checked and added to `scan`, with
    its ZipInfo; the archive's root ('./') is checked but not yielded."""
    for info in archive.infolist():
        scan.count()
        member = _zip_member(info, scan.label, limits)
        if member is not None:
            _add_zip_member(scan, member, info, limits)
            yield info, member


def inspect_zip(
    file: IO[bytes], label: str, limits: Limits, hasher: Hasher, sink: Sink | None = None
) -> tuple[Layout, bytes]:
    """The layout of the zip `file` and its PKGINFO.meta's bytes; refuses a bad archive.
    Every byte of the file is read, in order, and fed to `hasher`; every entry is inflated
    and its size and CRC-32 checked. With a `sink`, each entry is written to it from the
    bytes the walk reads (once the central directory's names, types and sizes passed):
    what was checked is what was written."""
    with open_zip(file, label, limits) as opened:
        scan = Scan(label, limits)
        by_member = {member.raw: info for info, member in zip_members(opened.archive, scan, limits)}
        layout = finish_layout(scan, label)
        meta_info = by_member[_raw_name_of(scan.members, layout.prefix, META_NAME)]
        check_meta_size(meta_info.file_size, label)
        planned: dict[int, Entry] = {}
        if sink is not None:
            for member in scan.members:
                parts = strip_prefix(member.parts, layout.prefix)
                if parts:  # the prefix directory itself is no entry
                    planned[id(by_member[member.raw])] = entry_of(member, parts)
            sink.begin(layout)
        meta_data = b""
        for info, data in walk_zip(file, opened, label, hasher):
            entry = planned.get(id(info))
            if info is meta_info:
                meta_data = read_meta(data, label)  # read to its end: its CRC-32 checked
                if sink is not None and entry is not None:
                    sink.write_file(entry, io.BytesIO(meta_data).read)
            elif sink is not None and entry is not None:
                if entry.is_dir:
                    sink.make_dir(entry)
                else:
                    sink.write_file(entry, data.read)
    return layout, meta_data


def _raw_name_of(members: list[Member], prefix: str, name: str) -> str:
    wanted = tuple(name.split("/"))
    for member in members:
        if not member.is_dir and strip_prefix(member.parts, prefix) == wanted:
            return member.raw
    raise AssertionError(f"{name} vanished after the checks")  # finish_layout required it


# -- the end records -----------------------------------------------------------------------


def _read_tail(file: IO[bytes], label: str, file_size: int, limits: Limits) -> ZipTail:
    """The end record (and the zip64 ones), checked to end the file and agree."""
    start = max(0, file_size - _END.size - _MAX_COMMENT)
    file.seek(start)
    data = file.read()
    at = data.rfind(_END_SIG)
    found = None
    while at >= 0:
        if at + _END.size <= len(data):
            comment_size = _END.unpack_from(data, at)[7]
            if at + _END.size + comment_size == len(data):
                found = at
                break
        at = data.rfind(_END_SIG, 0, at)
    if found is None:
        if data.rfind(_END_SIG) >= 0:
            raise PatchFormatError(
                f"{label}: has data after the end of the zip archive (after its end record)"
            )
        raise zipfile.BadZipFile("File is not a zip file")
    end_at = start + found
    _, disk, cd_disk, disk_entries, entries, cd_size, cd_offset, _ = _END.unpack_from(data, found)
    comment = data[found + _END.size :]
    if any(sig in comment for sig in _RECORD_SIGS):
        raise PatchFormatError(
            f"{label}: the zip comment holds zip records (a second archive hidden in it)"
        )
    if data.find(_END_SIG, found + 4) >= 0:  # a record signature inside the end record
        raise PatchFormatError(f"{label}: the zip end record is ambiguous")
    cd_end = end_at
    locator_at = end_at - _ZIP64_LOCATOR.size
    file.seek(max(locator_at, 0))
    locator = file.read(_ZIP64_LOCATOR.size) if locator_at >= 0 else b""
    if locator[:4] == _ZIP64_LOCATOR_SIG:
        _, z64_disk, z64_at, disks = _ZIP64_LOCATOR.unpack(locator)
        if z64_disk != 0 or disks != 1:
            raise PatchFormatError(f"{label}: a zip archive split over several disks")
        file.seek(z64_at)
        record = file.read(_ZIP64_END.size)
        if len(record) != _ZIP64_END.size or record[:4] != _ZIP64_END_SIG:
            raise PatchFormatError(f"{label}: the zip64 end record is missing or damaged")
        fields = _ZIP64_END.unpack(record)
        size, z64_disk, z64_cd_disk, z64_disk_entries, z64_entries = fields[1], *fields[4:8]
        z64_cd_size, z64_cd_offset = fields[8], fields[9]
        if z64_at + 12 + size != locator_at:
            raise PatchFormatError(
                f"{label}: the zip64 end record does not end where its locator begins "
                "(unknown data between them)"
            )
        if z64_disk != 0 or z64_cd_disk != 0:
            raise PatchFormatError(f"{label}: a zip archive split over several disks")
        for what, small, big, full in (
            ("entries on this disk", disk_entries, z64_disk_entries, _U16),
            ("entries", entries, z64_entries, _U16),
            ("central directory size", cd_size, z64_cd_size, _U32),
            ("central directory offset", cd_offset, z64_cd_offset, _U32),
        ):
            if small not in (full, big):
                raise PatchFormatError(
                    f"{label}: the zip64 end record says {what} {big}, the end record "
                    f"{small} (an ambiguous archive)"
                )
        disk_entries, entries, cd_size, cd_offset = (
            z64_disk_entries,
            z64_entries,
            z64_cd_size,
            z64_cd_offset,
        )
        cd_end = z64_at
    elif (disk, cd_disk) != (0, 0):
        raise PatchFormatError(f"{label}: a zip archive split over several disks")
    if disk_entries != entries:
        raise PatchFormatError(
            f"{label}: the zip end record says {entries} entries in all but {disk_entries} "
            "on this disk (an ambiguous archive)"
        )
    if entries > limits.max_entries:
        raise PatchFormatError(f"{label}: too many entries (more than {limits.max_entries})")
    if cd_offset + cd_size < cd_end:
        raise PatchFormatError(
            f"{label}: has {cd_end - cd_size - cd_offset} bytes of unknown data before its "
            "first entry (data prepended to the archive)"
        )
    if cd_offset + cd_size > cd_end:
        raise PatchFormatError(
            f"{label}: its central directory runs into its end record (a damaged archive)"
        )
    return ZipTail(cd_offset, cd_size, entries)


def _max_zip_directory_bytes(limits: Limits) -> int:
    return limits.max_entries * (_CENTRAL.size + limits.max_name_length + KiB) + MiB


def _count_zip_directory(file: IO[bytes], label: str, limits: Limits, tail: ZipTail) -> None:
    """Refuse too many entries or a huge central directory before zipfile loads it all, and a
    directory whose records do not fill it exactly (or are more or fewer than the end record
    counts).

    zipfile reads the whole central directory into memory and makes an object per record, so
    a few megabytes of tiny records would cost far more memory than the file's size. This
    walks the records first, and only counts.
    """
    if tail.cd_size > _max_zip_directory_bytes(limits):
        raise PatchFormatError(
            f"{label}: the zip central directory is too large ({tail.cd_size} bytes) "
            f"for at most {limits.max_entries} entries"
        )
    file.seek(tail.cd_offset)
    consumed = count = 0
    while consumed < tail.cd_size:
        header = file.read(_CENTRAL.size)
        if len(header) != _CENTRAL.size or header[:4] != _CENTRAL_SIG:
            raise PatchFormatError(
                f"{label}: the zip central directory holds something else than its records "
                f"(at byte {tail.cd_offset + consumed})"
            )
        name_len, extra_len, comment_len = struct.unpack("<HHH", header[28:34])
        file.seek(name_len + extra_len + comment_len, 1)
        consumed += _CENTRAL.size + name_len + extra_len + comment_len
        count += 1
        if count > limits.max_entries:
            raise PatchFormatError(f"{label}: too many entries (more than {limits.max_entries})")
    if consumed != tail.cd_size or count != tail.count:
        raise PatchFormatError(
            f"{label}: the zip central directory holds {count} records in {consumed} bytes, "
            f"its end record says {tail.count} in {tail.cd_size} (an ambiguous archive)"
        )


# -- each member, from its central record ------------------------------------------------------


def _zip_member(info: zipfile.ZipInfo, label: str, limits: Limits) -> Member | None:
    raw = info.orig_filename  # zipfile cuts `filename` at a NUL byte; this is the stored name
    if not info.flag_bits & _ZIP_FLAG_UTF8 and not raw.isascii():
        raise refuse(label, raw, "has a non-ASCII name not marked as UTF-8 (not valid UTF-8)")
    mode = info.external_attr >> 16
    file_type = stat.S_IFMT(mode)
    if file_type == 0:  # made on a system without Unix modes: the name tells
        is_dir = raw.endswith("/")
    elif file_type in (stat.S_IFDIR, stat.S_IFREG):
        is_dir = file_type == stat.S_IFDIR
    else:
        raise type_refusal(label, raw, describe_mode_type(file_type))
    parts = check_name(raw, label, limits, is_dir=is_dir)
    if info.flag_bits & (_ZIP_FLAG_ENCRYPTED | _ZIP_FLAG_STRONG_ENCRYPTION):
        raise refuse(label, raw, "is encrypted")
    if info.compress_type not in _ZIP_METHODS:
        method = _ZIP_METHOD_NAMES.get(info.compress_type, "unknown")
        raise refuse(
            label,
            raw,
            f"uses compression method {info.compress_type} ({method}); "
            "only stored and deflated are allowed",
        )
    if is_dir and info.file_size != 0:
        raise refuse(label, raw, f"is a directory but declares {info.file_size} bytes of data")
    if not parts:
        return None
    return Member(
        raw=raw,
        parts=parts,
        size=info.file_size,
        is_dir=is_dir,
        executable=file_type == stat.S_IFREG and bool(mode & 0o111),
    )


def _add_zip_member(scan: Scan, member: Member, info: zipfile.ZipInfo, limits: Limits) -> None:
    scan.add(member)  # the size limits first, then what only zip declares
    if not member.is_dir:
        _check_zip_sizes(info, member.raw, scan.label, limits)


def _check_zip_sizes(info: zipfile.ZipInfo, raw: str, label: str, limits: Limits) -> None:
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise refuse(
            label,
            raw,
            f"is stored uncompressed but declares {info.file_size} bytes "
            f"in {info.compress_size} (a lying header)",
        )
    if info.file_size > RATIO_MIN_SIZE and info.file_size > limits.max_ratio * max(
        info.compress_size, 1
    ):
        ratio = info.file_size // max(info.compress_size, 1)
        raise refuse(
            label,
            raw,
            f"has a compression ratio of {ratio}:1 ({info.file_size} bytes from "
            f"{info.compress_size}), over the {limits.max_ratio}:1 allowed (a zip bomb?)",
        )


# -- the one pass over the whole file ----------------------------------------------------------


class _Reader:
    """The file read front to back, every byte fed to the hasher, the position counted."""

    def __init__(self, file: IO[bytes], label: str, hasher: Hasher) -> None:
        file.seek(0)
        self._file = file
        self._hasher = hasher
        self.label = label
        self.pos = 0

    def read(self, size: int) -> bytes:
        data = self._file.read(size)
        self.pos += len(data)
        self._hasher.update(data)
        return data

    def exact(self, size: int, raw: str) -> bytes:
        data = self.read(size)
        if len(data) != size:
            raise refuse(self.label, raw, "runs past the end of the file (truncated?)")
        return data

    def to_end(self) -> None:
        while self.read(CHUNK_SIZE):
            pass


def walk_zip(
    file: IO[bytes], opened: OpenZip, label: str, hasher: Hasher
) -> Iterator[tuple[zipfile.ZipInfo, EntryData]]:
    """Every entry of `opened` in the file's order, with a reader of its data (inflated,
    counted, CRC-checked: the last read raises if the data is not what the headers say).
    What the caller does not read is read and checked before the next entry. Refuses any
    layout but the one unambiguous one (see the module's docstring)."""
    reader = _Reader(file, label, hasher)
    previous: zipfile.ZipInfo | None = None
    for info in opened.archive.infolist():
        _expect_at(reader, info, previous, label)
        header = _read_local_header(reader, info, label)
        data = EntryData(reader, info, header.method)
        yield info, data
        data.drain()
        if header.flags & _ZIP_FLAG_DESCRIPTOR:
            _read_descriptor(reader, info, header.zip64, label)
        previous = info
    if reader.pos != opened.tail.cd_offset:
        after = f"after entry {previous.orig_filename!r}" if previous else "before it"
        if reader.pos > opened.tail.cd_offset:
            raise PatchFormatError(
                f"{label}: the central directory overlaps the data {after} (an ambiguous archive)"
            )
        gap = opened.tail.cd_offset - reader.pos
        raise PatchFormatError(
            f"{label}: has {gap} bytes {after} and before the central directory: "
            f"{_what_is_in(reader, gap)}"
        )
    reader.to_end()  # the central directory and the end records, checked before


def _expect_at(
    reader: _Reader, info: zipfile.ZipInfo, previous: zipfile.ZipInfo | None, label: str
) -> None:
    offset = info.header_offset
    if offset == reader.pos:
        return
    if previous is not None and offset < reader.pos:
        raise refuse(label, info.orig_filename, f"overlaps entry {previous.orig_filename!r}")
    gap = offset - reader.pos
    if previous is None:
        what = _what_is_in(reader, gap, unknown="unknown data")
        raise PatchFormatError(f"{label}: has {gap} bytes before its first entry: {what}")
    raise refuse(
        label,
        info.orig_filename,
        f"starts {gap} bytes after the end of entry {previous.orig_filename!r}: "
        f"{_what_is_in(reader, gap)}",
    )


def _what_is_in(reader: _Reader, size: int, unknown: str = "") -> str:
    """What the `size` bytes no record accounts for hold (they are read, and hashed)."""
    found: set[bytes] = set()
    tail = b""
    left = size
    while left > 0:
        chunk = reader.read(min(CHUNK_SIZE, left))
        if not chunk:
            break
        left -= len(chunk)
        window = tail + chunk
        found.update(sig for sig in _RECORD_SIGS if sig in window)
        tail = window[-3:]
    if _CENTRAL_SIG in found or _END_SIG in found:
        return "a second central directory (a second archive hidden in the zip?)"
    if _LOCAL_SIG in found:
        return "a local entry the central directory does not list (a hidden entry)"
    return unknown or "unknown data that no central record lists"


@dataclass(frozen=True)
class _LocalHeader:
    flags: int
    method: int
    zip64: bool


def _read_local_header(reader: _Reader, info: zipfile.ZipInfo, label: str) -> _LocalHeader:
    raw = info.orig_filename
    fields = _LOCAL.unpack(reader.exact(_LOCAL.size, raw))
    sig, _version, flags, method, _time, _date, crc, csize, usize, name_len, extra_len = fields
    if sig != _LOCAL_SIG:
        raise refuse(label, raw, "has no local header where the central directory points (damaged)")
    name = reader.exact(name_len, raw)
    extra = reader.exact(extra_len, raw)
    if name != _raw_name_bytes(info):
        shown = name.decode("utf-8", "backslashreplace")
        raise refuse(
            label,
            raw,
            f"is named {shown!r} in its local header (an ambiguous archive: readers disagree "
            "on the name)",
        )

    def mismatch(what: str, local: object, central: object) -> PatchFormatError:
        return refuse(
            label,
            raw,
            f"has {what} {local} in its local header but {central} in the central directory "
            "(an ambiguous archive)",
        )

    if flags != info.flag_bits:
        raise mismatch("flags", f"{flags:#06x}", f"{info.flag_bits:#06x}")
    if method != info.compress_type:
        raise mismatch("compression method", method, info.compress_type)
    blocks = _extra_blocks(extra, raw, label)
    zip64 = _ZIP64_EXTRA in blocks
    if zip64:
        values = _zip64_values(blocks[_ZIP64_EXTRA], raw, label)
        if usize == _U32:
            usize = values.pop(0) if values else -1
        if csize == _U32:
            csize = values.pop(0) if values else -1
    # With a data descriptor a field may be left 0 here: the descriptor after the data says.
    unknown = 0 if flags & _ZIP_FLAG_DESCRIPTOR else None
    if crc not in (info.CRC, unknown):
        raise mismatch("CRC-32", f"{crc:#010x}", f"{info.CRC:#010x}")
    if csize not in (info.compress_size, unknown):
        raise mismatch("compressed size", csize, info.compress_size)
    if usize not in (info.file_size, unknown):
        raise mismatch("size", usize, info.file_size)
    return _LocalHeader(flags, method, zip64)


def _raw_name_bytes(info: zipfile.ZipInfo) -> bytes:
    encoding = "utf-8" if info.flag_bits & _ZIP_FLAG_UTF8 else "cp437"
    return info.orig_filename.encode(encoding, "surrogateescape")


def _extra_blocks(extra: bytes, raw: str, label: str) -> dict[int, bytes]:
    blocks: dict[int, bytes] = {}
    at = 0
    while at < len(extra):
        if at + 4 > len(extra):
            raise refuse(label, raw, "has a damaged extra field in its local header")
        kind, size = struct.unpack_from("<HH", extra, at)
        if at + 4 + size > len(extra) or kind in blocks:
            raise refuse(label, raw, "has a damaged extra field in its local header")
        blocks[kind] = extra[at + 4 : at + 4 + size]
        at += 4 + size
    return blocks


def _zip64_values(block: bytes, raw: str, label: str) -> list[int]:
    if len(block) % 8:
        raise refuse(label, raw, "has a damaged zip64 extra field in its local header")
    return [value for (value,) in struct.iter_unpack("<Q", block)]


def _read_descriptor(reader: _Reader, info: zipfile.ZipInfo, zip64: bool, label: str) -> None:
    raw = info.orig_filename
    size_format = "<QQ" if zip64 else "<II"
    first = reader.exact(4, raw)
    crc_bytes = reader.exact(4, raw) if first == _DESCRIPTOR_SIG else first
    (crc,) = struct.unpack("<I", crc_bytes)
    csize, usize = struct.unpack(size_format, reader.exact(struct.calcsize(size_format), raw))
    if (crc, csize, usize) != (info.CRC, info.compress_size, info.file_size):
        raise refuse(
            label,
            raw,
            "has a data descriptor that disagrees with the central directory (an ambiguous "
            "archive)",
        )


class EntryData:
    """The data of one entry as the walk reaches it: `read(size)` gives it inflated; the read
    that reaches its end checks that the compressed data ended exactly where the headers say,
    its size and its CRC-32."""

    def __init__(self, reader: _Reader, info: zipfile.ZipInfo, method: int) -> None:
        self._reader = reader
        self._info = info
        self._left = info.compress_size
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS) if method == 8 else None
        self._crc = 0
        self._count = 0
        self._done = False

    def read(self, size: int = CHUNK_SIZE) -> bytes:
        size = CHUNK_SIZE if size < 0 or size > CHUNK_SIZE else size
        while size and not self._done:
            data = self._next(size)
            if data:
                self._count += len(data)
                if self._count > self._info.file_size:
                    raise self._refuse(
                        f"holds more data than the {self._info.file_size} bytes its header declares"
                    )
                self._crc = zlib.crc32(data, self._crc)
                return data
        return b""

    def drain(self) -> None:
        while self.read(CHUNK_SIZE):
            pass

    def _next(self, size: int) -> bytes:
        inflater = self._inflater
        if inflater is None:
            if not self._left:
                self._finish()
                return b""
            return self._raw(min(size, self._left))
        if inflater.eof:
            if self._left or inflater.unused_data:
                raise self._refuse("has data after the end of its compressed stream")
            self._finish()
            return b""
        source = inflater.unconsumed_tail
        if not source:
            if not self._left:
                raise self._refuse("has a compressed stream cut short (damaged)")
            source = self._raw(min(CHUNK_SIZE, self._left))
        return inflater.decompress(source, size)

    def _raw(self, size: int) -> bytes:
        data = self._reader.exact(size, self._info.orig_filename)
        self._left -= len(data)
        return data

    def _finish(self) -> None:
        self._done = True
        if self._count != self._info.file_size:
            raise self._refuse(
                f"holds {self._count} bytes, not the {self._info.file_size} its header declares"
            )
        if self._crc != self._info.CRC:
            raise self._refuse("fails its check: Bad CRC-32 (the data is damaged)")

    def _refuse(self, problem: str) -> PatchFormatError:
        return refuse(self._reader.label, self._info.orig_filename, problem)
