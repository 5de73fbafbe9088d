"""Extract an inspected .clp into a fresh private directory.

`extract_patch` re-reads exactly the bytes that were inspected (same SHA-256, the same entries
in the same order), streaming, with the declared sizes enforced as it goes. It writes under a
directory descriptor and never follows a symlink or writes over a file; on any error what it
wrote is removed again.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO

from clp_alpm.errors import OperationFailed, PatchFormatError, UsageError
from clp_alpm.formats.archive import (
    CHUNK_SIZE,
    CONTAINER_ZIP,
    DEFAULT_LIMITS,
    Entry,
    Limits,
    PatchArchive,
)
from clp_alpm.formats.inspect import (
    archive_errors,
    file_identity,
    open_archive,
    refuse_if_changed,
    sha256_of,
)
from clp_alpm.formats.members import Hasher, Member, Scan, entry_of, refuse, strip_prefix
from clp_alpm.formats.tarread import GzipReader, drain_trailer, open_tar_stream, tar_members
from clp_alpm.formats.zipread import open_zip, walk_zip, zip_members


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
        with open_archive(Path(archive.path), label, limits) as (file, before):
            writer = _Writer(dest_fd, label, limits, archive)
            try:
                # The private copy ops/verify.py staged and read whole is trusted while it is
                # in the same state (its ctime moves with any write); any other file is
                # hashed again as it is read.
                trusted = archive.staged_identity == file_identity(before)
                hasher: Hasher = _NO_HASH if trusted else hashlib.sha256()
                try:
                    with archive_errors(label, archive.container):
                        if archive.container == CONTAINER_ZIP:
                            _extract_zip(file, archive, writer, limits, hasher, trusted)
                        else:
                            _extract_targz(file, archive, writer, limits, hasher)
                except PatchFormatError:
                    # what inspection accepted cannot fail: say so when the file is another
                    if sha256_of(file) != archive.sha256:
                        raise PatchFormatError(
                            f"{label}: the file changed since it was inspected"
                        ) from None
                    raise
                # every byte went through the hasher as it was read: a file changed since the
                # inspection fails here, and what was written is removed below
                if not trusted and _hexdigest(hasher) != archive.sha256:
                    raise PatchFormatError(f"{label}: the file changed since it was inspected")
                refuse_if_changed(file, before, label, "while it was being extracted")
            except BaseException:
                _empty_directory(dest_fd)
                raise
    finally:
        os.close(dest_fd)


class _NoHash:
    def update(self, data: bytes, /) -> None:
        pass


_NO_HASH = _NoHash()


def _hexdigest(hasher: Hasher) -> str:
    assert isinstance(hasher, type(hashlib.sha256()))
    return hasher.hexdigest()


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

    def match(self, member: Member) -> Entry | None:
        if self.prefix and member.parts[0] != self.prefix.rstrip("/"):
            raise self._changed()
        parts = strip_prefix(member.parts, self.prefix)
        if not parts:
            return None
        entry = entry_of(member, parts)
        if self.index >= len(self.expected) or self.expected[self.index] != entry:
            raise self._changed()
        self.index += 1
        return entry

    def finish(self) -> None:
        if self.index != len(self.expected):
            raise self._changed()

    def _changed(self) -> PatchFormatError:
        return PatchFormatError(
            f"{self.label}: the file changed since it was inspected (its entries differ)"
        )


def _extract_zip(
    file: IO[bytes],
    archive: PatchArchive,
    writer: _Writer,
    limits: Limits,
    hasher: Hasher,
    trusted: bool,
) -> None:
    label = writer.label
    matcher = _Matcher(archive, label)
    with open_zip(file, label, limits) as opened:
        planned: dict[int, Entry] = {}
        scan = Scan(label, limits)
        for info, member in zip_members(opened.archive, scan, limits):
            entry = matcher.match(member)
            if entry is not None:
                planned[id(info)] = entry
        matcher.finish()
        for info, data in walk_zip(file, opened, label, hasher, trusted=trusted):
            entry = planned.get(id(info))
            if entry is None:
                continue
            if entry.is_dir:
                writer.make_dir(entry)
            else:
                writer.write_file(entry, data.read, data.copy_into if data.can_copy else None)


def _extract_targz(
    file: IO[bytes], archive: PatchArchive, writer: _Writer, limits: Limits, hasher: Hasher
) -> None:
    label = writer.label
    matcher = _Matcher(archive, label)
    reader = GzipReader(file, label, limits, hasher)
    scan = Scan(label, limits)
    with open_tar_stream(reader) as tar:
        for info, member in tar_members(reader, tar, scan, limits):
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
    drain_trailer(reader, label)


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

    def write_file(
        self,
        entry: Entry,
        read: Callable[[int], bytes],
        copy: Callable[[int], int] | None = None,
    ) -> None:
        """Write `entry` from `read`, or with `copy(fd)` (the kernel copying the stored data
        straight from the archive file) when it is given."""
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
            count = self._copy(entry, read, fd) if copy is None else self._count(entry, copy(fd))
            if count != entry.size:
                raise refuse(
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

    def _count(self, entry: Entry, count: int) -> int:
        self.written += count
        if self.written > self.limits.max_total_size:
            raise PatchFormatError(
                f"{self.label}: extracts to more than {self.limits.max_total_size} bytes"
            )
        return count

    def _copy(self, entry: Entry, read: Callable[[int], bytes], fd: int) -> int:
        count = 0
        while chunk := read(CHUNK_SIZE):
            count += len(chunk)
            if count > entry.size:
                raise refuse(
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
