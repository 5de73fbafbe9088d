"""Reading a zip .clp: the central directory bounded, every member checked, PKGINFO.meta read.

zipfile does the reading; this module refuses, before anything is extracted, what zipfile
would accept but a patch must not hold: a central directory too big for the entry limit,
links, devices and other non-regular types (from the Unix mode), encryption, compression
methods other than stored and deflated, sizes that lie, and data that overlaps or runs past
the end of the file.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
from collections.abc import Iterator
from typing import IO, Any

from clp_alpm.errors import PatchFormatError
from clp_alpm.formats.archive import META_NAME, RATIO_MIN_SIZE, KiB, Limits, MiB
from clp_alpm.formats.members import (
    Layout,
    Member,
    Scan,
    check_meta_size,
    check_name,
    describe_mode_type,
    finish_layout,
    read_meta,
    refuse,
    strip_prefix,
    type_refusal,
)

_ZIP_FLAG_ENCRYPTED = 0x0001
_ZIP_FLAG_STRONG_ENCRYPTION = 0x0040
_ZIP_FLAG_UTF8 = 0x0800
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_ZIP_METHOD_NAMES = {12: "bzip2", 14: "lzma", 9: "deflate64", 93: "zstd", 95: "xz", 99: "AES"}
_ZIP_LOCAL_HEADER = 30
_ZIP_CENTRAL_HEADER = 46


def open_zip(file: IO[bytes], label: str, limits: Limits) -> zipfile.ZipFile:
    """zipfile over `file`, once its central directory is known to fit the entry limit."""
    _count_zip_directory(file, label, limits)
    return zipfile.ZipFile(file)


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
    file: IO[bytes], label: str, limits: Limits, file_size: int
) -> tuple[Layout, bytes]:
    """The layout of the zip `file` and its PKGINFO.meta's bytes; refuses a bad archive."""
    with open_zip(file, label, limits) as archive:
        scan = Scan(label, limits)
        by_member = {member.raw: info for info, member in zip_members(archive, scan, limits)}
        _check_zip_spans(archive.infolist(), label, file_size)
        layout = finish_layout(scan, label)
        meta_info = by_member[_raw_name_of(scan.members, layout.prefix, META_NAME)]
        check_meta_size(meta_info.file_size, label)
        with archive.open(meta_info) as stream:
            meta_data = read_meta(stream, label)
    return layout, meta_data


def _raw_name_of(members: list[Member], prefix: str, name: str) -> str:
    wanted = tuple(name.split("/"))
    for member in members:
        if not member.is_dir and strip_prefix(member.parts, prefix) == wanted:
            return member.raw
    raise AssertionError(f"{name} vanished after the checks")  # finish_layout required it


def _max_zip_directory_bytes(limits: Limits) -> int:
    return limits.max_entries * (_ZIP_CENTRAL_HEADER + limits.max_name_length + KiB) + MiB


def _count_zip_directory(file: IO[bytes], label: str, limits: Limits) -> None:
    """Refuse too many entries or a huge central directory before zipfile loads it all.

    zipfile reads the whole central directory into memory and makes an object per record, so a
    few megabytes of tiny records would cost far more memory than the file's size. This walks
    the same records, located exactly as zipfile locates them, and only counts.
    """
    # zipfile's end-record reader and the indexes into the list it returns are private names,
    # which typeshed leaves out: they are reached through an untyped reference to the module.
    internals: Any = zipfile
    locate = getattr(internals, "_EndRecData", None)
    if locate is None:  # not in this Python: zipfile's own parse still bounds the count later
        return
    end = locate(file)
    if end is None:
        raise zipfile.BadZipFile("File is not a zip file")
    size_cd: int = end[internals._ECD_SIZE]
    offset_cd: int = end[internals._ECD_OFFSET]
    start: int = end[internals._ECD_LOCATION] - size_cd
    if end[internals._ECD_SIGNATURE] == internals.stringEndArchive64:
        start -= internals.sizeEndCentDir64 + internals.sizeEndCentDir64Locator
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
            raise refuse(label, info.orig_filename, f"overlaps entry {previous.orig_filename!r}")
        end = info.header_offset + _ZIP_LOCAL_HEADER + _zip_name_length(info) + info.compress_size
        if end > file_size:
            raise refuse(label, info.orig_filename, "runs past the end of the file (truncated?)")
        previous = info


def _zip_name_length(info: zipfile.ZipInfo) -> int:
    encoding = "utf-8" if info.flag_bits & _ZIP_FLAG_UTF8 else "cp437"
    return len(info.orig_filename.encode(encoding, "surrogateescape"))
