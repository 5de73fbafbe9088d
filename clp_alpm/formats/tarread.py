"""Reading a gzip'd tar .clp in one forward pass, nothing extracted, memory flat.

`GzipReader` inflates and counts as it goes, so a gzip bomb stops after a few megabytes;
tarfile reads from it in stream mode, with every damaged or cut header made an error
(`ArchiveDamageError`) rather than a quiet end of the archive. Each member is checked as it
passes: only regular files and directories, no sparse files, no negative sizes.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterator
from typing import IO, Self

from clp_alpm.errors import ArchiveDamageError, PatchFormatError
from clp_alpm.formats.archive import CHUNK_SIZE, META_NAME, RATIO_MIN_SIZE, KiB, Limits, MiB
from clp_alpm.formats.members import (
    Hasher,
    Layout,
    Member,
    Scan,
    check_meta_size,
    check_name,
    finish_layout,
    read_meta,
    refuse,
    type_refusal,
)

# Gzip'd tar: compressed bytes read at a time (small, so a bomb is seen early), what may sit
# between two members (headers, pax records, GNU long names), and per-entry header overhead.
_GZIP_READ_SIZE = 64 * KiB
_TAR_HEADER_ALLOWANCE = 256 * KiB
_TAR_ENTRY_OVERHEAD = 4 * KiB
_TAR_TRAILER_ALLOWANCE = 4 * MiB


class GzipReader:
    """The decompressed bytes of a gzip file, as a file object for tarfile's stream mode.

    It checks while it inflates, so a bomb stops after a few megabytes and memory stays flat:
    the total against the limits, the overall compression ratio, and how much may be read
    between two members (tarfile reads pax records and GNU long names into memory whole).
    """

    def __init__(
        self, raw: IO[bytes], label: str, limits: Limits, hasher: Hasher | None = None
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
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        # typeshed leaves out these subclasses of tarfile.HeaderError, which tarfile has.
        try:
            return super().frombuf(buf, encoding, errors)
        except tarfile.EOFHeaderError:  # type: ignore[attr-defined]
            raise
        except tarfile.EmptyHeaderError:  # type: ignore[attr-defined]
            raise ArchiveDamageError("truncated (the tar archive has no end marker)") from None
        except tarfile.TruncatedHeaderError:  # type: ignore[attr-defined]
            raise ArchiveDamageError("truncated (a tar header is cut short)") from None
        except tarfile.HeaderError as e:
            raise ArchiveDamageError(f"has a damaged tar header ({e})") from None


def open_tar_stream(reader: GzipReader) -> tarfile.TarFile:
    """tarfile in stream mode over `reader`: one pass, forward only, nothing extracted."""
    # typeshed asks any fileobj for write, seek, tell and close too; stream mode only reads.
    return tarfile.open(  # type: ignore[call-overload, no-any-return]
        fileobj=reader,
        mode="r|",
        tarinfo=_StrictTarInfo,
        encoding="utf-8",
        errors="surrogateescape",
    )


def tar_members(
    reader: GzipReader, archive: tarfile.TarFile, scan: Scan, limits: Limits
) -> Iterator[tuple[tarfile.TarInfo, Member]]:
    """Each member of `archive` (read from `reader`) in order, checked and added to `scan`,
    with its TarInfo; the archive's root ('./') is checked but not yielded."""
    for info in _iter_tar(reader, archive):
        scan.count()
        member = _tar_member(info, scan.label, limits)
        if member is not None:
            scan.add(member)
            yield info, member


def _iter_tar(reader: GzipReader, archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    for info in archive:
        skipped = info.isreg() or info.type not in tarfile.SUPPORTED_TYPES
        reader.expect_member(info.size if skipped else 0)
        yield info
    reader.expect_trailer()


def drain_trailer(reader: GzipReader, label: str) -> None:
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


def _tar_member(info: tarfile.TarInfo, label: str, limits: Limits) -> Member | None:
    raw = info.name
    if info.sparse is not None:  # a GNU sparse file in pax form keeps the regular type
        raise type_refusal(label, raw, "a sparse file")
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        is_dir = False
    elif info.type == tarfile.DIRTYPE:
        is_dir = True
    else:
        what = _TAR_TYPE_NAMES.get(info.type, f"of unsupported tar type {info.type!r}")
        raise type_refusal(label, raw, what)
    parts = check_name(raw, label, limits, is_dir=is_dir)
    if info.size < 0:  # base-256 size fields can be negative
        raise refuse(label, raw, f"declares a negative size ({info.size})")
    if not parts:
        return None
    return Member(
        raw=raw,
        parts=parts,
        size=info.size,
        is_dir=is_dir,
        executable=not is_dir and bool(info.mode & 0o111),
    )


def inspect_targz(
    file: IO[bytes], label: str, limits: Limits, hasher: Hasher
) -> tuple[Layout, bytes]:
    """The layout of the gzip'd tar `file` and its PKGINFO.meta's bytes; refuses a bad
    archive. Every compressed byte read goes to `hasher`."""
    reader = GzipReader(file, label, limits, hasher)
    scan = Scan(label, limits)
    # The prefix is known only at the end: keep PKGINFO.meta from the top and the first one
    # found one level down (several top directories leave no prefix to strip anyway).
    top_meta: bytes | None = None
    nested_meta: tuple[tuple[str, ...], bytes] | None = None
    with open_tar_stream(reader) as archive:
        for info, member in tar_members(reader, archive, scan, limits):
            if member.is_dir or member.parts[-1] != META_NAME or len(member.parts) > 2:
                continue
            if len(member.parts) == 2 and nested_meta is not None:
                continue
            check_meta_size(member.size, label)
            stream = archive.extractfile(info)
            assert stream is not None  # a regular file
            data = read_meta(stream, label)
            if len(member.parts) == 1:
                top_meta = data
            else:
                nested_meta = (member.parts, data)
    drain_trailer(reader, label)
    layout = finish_layout(scan, label)
    if not layout.prefix and top_meta is not None:
        return layout, top_meta
    if nested_meta is not None and nested_meta[0] == (layout.prefix.rstrip("/"), META_NAME):
        return layout, nested_meta[1]
    raise AssertionError(f"{META_NAME} was not kept")  # finish_layout required it, here
