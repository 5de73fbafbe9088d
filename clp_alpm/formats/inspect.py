"""Inspect a .clp: read and check the whole archive without writing anything.

Every archive is hostile until checked. `inspect_patch` reads the archive's directory (and
PKGINFO.meta) and refuses whatever a careful extractor could get wrong: names that escape,
links, devices, collisions, bombs, encryption, damage (members.py, zipread.py, tarread.py).
The file is opened once, checked to be a regular file of an allowed size, and hashed while it
is read; if it changes meanwhile, it is refused. extract.py re-opens it the same way.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from clp_alpm.errors import ArchiveDamageError, PatchFormatError
from clp_alpm.formats.archive import (
    CHUNK_SIZE,
    CONTAINER_TARGZ,
    CONTAINER_ZIP,
    DEFAULT_LIMITS,
    META_NAME,
    Limits,
    PatchArchive,
)
from clp_alpm.formats.members import Hasher, Sink
from clp_alpm.formats.pkginfo import parse_meta
from clp_alpm.formats.tarread import inspect_targz
from clp_alpm.formats.zipread import inspect_zip

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_END = b"PK\x05\x06"
_ZIP_TAIL = 22 + 0xFFFF  # an end record and the longest comment


def inspect_patch(
    path: Path, limits: Limits = DEFAULT_LIMITS, tee: Hasher | None = None, sink: Sink | None = None
) -> PatchArchive:
    """Read and check the archive at `path`: every byte is read once, in order (and handed
    to `tee` too, when given: a signature check). Nothing is extracted, except that a zip's
    entries are written to `sink`, when given, from the very bytes checked (a gzip'd tar's
    are not: its prefix is known only at its end, so the caller extracts it afterwards).

    Raises PatchFormatError (MetadataError for a bad PKGINFO.meta) naming the file and entry.
    """
    path = Path(path)
    label = path.name
    with open_archive(path, label, limits) as (file, before):
        container = _container_of(file, label)
        with archive_errors(label, container):
            sha = hashlib.sha256()
            hasher = sha if tee is None else _Both(sha, tee)
            if container == CONTAINER_ZIP:
                layout, meta_data = inspect_zip(file, label, limits, hasher, sink)
            else:
                layout, meta_data = inspect_targz(file, label, limits, hasher)
            sha256 = sha.hexdigest()
        refuse_if_changed(file, before, label, "while it was being read")
    meta = parse_meta(meta_data, f"{label}: {META_NAME}", lenient=True)
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


class _Both:
    """Hands every piece to two hashers (the SHA-256 and the caller's tee)."""

    def __init__(self, first: Hasher, second: Hasher) -> None:
        self._first = first
        self._second = second

    def update(self, data: bytes, /) -> None:
        self._first.update(data)
        self._second.update(data)


@contextmanager
def open_archive(
    path: Path, label: str, limits: Limits
) -> Iterator[tuple[IO[bytes], os.stat_result]]:
    """The archive at `path`, open for reading, with its fstat; refuses anything but a
    regular file within the size limit (checked before opening, and again once open)."""
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
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(max(0, size - _ZIP_TAIL))
    tail = file.read()
    file.seek(0)
    if _ZIP_END in tail:
        raise PatchFormatError(
            f"{label}: has data before its zip archive (something prepended to it, such as a "
            "self-extracting stub)"
        )
    raise PatchFormatError(f"{label}: not a .clp patch (neither a zip archive nor a gzip'd tar)")


def sha256_of(file: IO[bytes]) -> str:
    """The SHA-256 of all of `file`, read from the start; leaves it at the start again."""
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


def refuse_if_changed(file: IO[bytes], before: os.stat_result, label: str, when: str) -> None:
    """Refuse `file` if it is no longer in the state `before` (its fstat when opened)."""
    if not _same_file_state(before, os.fstat(file.fileno())):
        raise PatchFormatError(f"{label}: the file changed {when}")


@contextmanager
def archive_errors(label: str, container: str) -> Iterator[None]:
    """Turn what the archive readers raise on bad input into one-line PatchFormatErrors."""
    kind = "zip archive" if container == CONTAINER_ZIP else "gzip'd tar"
    try:
        yield
    except ArchiveDamageError as e:
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
