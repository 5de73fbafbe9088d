"""Extract an inspected .clp into a fresh private directory.

`extract_patch` re-reads exactly the bytes that were inspected (same SHA-256, the same entries
in the same order), streaming, with the declared sizes enforced as it goes. `Unpacker` is the
sink of an inspection that writes a zip's entries as it checks them (ops/verify.py: the file
read once), and `copy_tree` copies what it wrote to another file system. All three write under
a directory descriptor and never follow a symlink or write over a file; on any error what they
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
from clp_alpm.formats.inspect import archive_errors, open_archive, refuse_if_changed, sha256_of
from clp_alpm.formats.members import Hasher, Layout, Member, Scan, entry_of, refuse, strip_prefix
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
            scripts = {archive.install_script, archive.remove_script}
            writer = _Writer(dest_fd, label, limits, scripts)
            try:
                hasher = hashlib.sha256()
                try:
                    with archive_errors(label, archive.container):
                        if archive.container == CONTAINER_ZIP:
                            _extract_zip(file, archive, writer, limits, hasher)
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
                if hasher.hexdigest() != archive.sha256:
                    raise PatchFormatError(f"{label}: the file changed since it was inspected")
                refuse_if_changed(file, before, label, "while it was being extracted")
            except BaseException:
                _empty_directory(dest_fd)
                raise
    finally:
        os.close(dest_fd)


class Unpacker:
    """The sink of an inspection that writes a zip's entries as it reads them
    (inspect.inspect_patch): into `dest`, an existing empty private directory, as
    `extract_patch` would. A context manager; `discard()` removes what it wrote."""

    def __init__(self, dest: Path, label: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self._fd = _open_empty_dir(Path(dest))
        self._label = label
        self._limits = limits
        self._writer: _Writer | None = None

    def __enter__(self) -> Unpacker:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)

    @property
    def started(self) -> bool:
        """True once the inspection began writing (a zip: a gzip'd tar never begins)."""
        return self._writer is not None

    def begin(self, layout: Layout) -> None:
        scripts = {layout.install_script, layout.remove_script}
        self._writer = _Writer(self._fd, self._label, self._limits, scripts)

    def make_dir(self, entry: Entry) -> None:
        assert self._writer is not None, "begin() comes first"
        self._writer.make_dir(entry)

    def write_file(self, entry: Entry, read: Callable[[int], bytes]) -> None:
        assert self._writer is not None, "begin() comes first"
        self._writer.write_file(entry, read)

    def discard(self) -> None:
        """Remove everything written (the directory itself stays)."""
        _empty_directory(self._fd)


def copy_tree(source: Path, dest: Path) -> None:
    """Copy the tree an `Unpacker` wrote in `source` (directories and regular files only, as
    it made them) into `dest`, an existing empty directory on another file system, modes
    kept. By descriptors, never following a symlink; on any error what was written inside
    `dest` is removed and OperationFailed raised."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        source_fd = os.open(source, flags)
    except OSError as e:
        raise OperationFailed(f"{source}: cannot copy it: {e.strerror}") from None
    try:
        dest_fd = _open_empty_dir(Path(dest))
        try:
            _copy_dir(source_fd, dest_fd, "")
        except BaseException:
            _empty_directory(dest_fd)
            raise
        finally:
            os.close(dest_fd)
    finally:
        os.close(source_fd)


def _copy_dir(source_fd: int, dest_fd: int, where: str) -> None:
    for name in sorted(os.listdir(source_fd)):
        shown = f"{where}{name}"
        try:
            st = os.stat(name, dir_fd=source_fd, follow_symlinks=False)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(name, 0o700, dir_fd=dest_fd)
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                child_source = os.open(name, flags, dir_fd=source_fd)
                try:
                    child_dest = os.open(name, flags, dir_fd=dest_fd)
                    try:
                        _copy_dir(child_source, child_dest, f"{shown}/")
                        os.fchmod(child_dest, mode)
                    finally:
                        os.close(child_dest)
                finally:
                    os.close(child_source)
            elif stat.S_ISREG(st.st_mode):
                _copy_file(name, source_fd, dest_fd, mode, st.st_size)
            else:
                raise OperationFailed(f"cannot copy {shown!r}: not a file nor a directory")
        except OSError as e:
            raise OperationFailed(f"cannot copy {shown!r}: {e.strerror}") from None


def _copy_file(name: str, source_fd: int, dest_fd: int, mode: int, size: int) -> None:
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=source_fd)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(name, flags, 0o600, dir_fd=dest_fd)
        try:
            done = 0
            while done < size:  # sendfile: in the kernel, across file systems too
                count = os.sendfile(out, src, done, min(size - done, CHUNK_SIZE * 64))
                if count == 0:
                    raise OperationFailed(f"cannot copy {name!r}: it shrank while copied")
                done += count
            os.fchmod(out, mode)
        finally:
            os.close(out)
    finally:
        os.close(src)


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
    file: IO[bytes], archive: PatchArchive, writer: _Writer, limits: Limits, hasher: Hasher
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
        for info, data in walk_zip(file, opened, label, hasher):
            entry = planned.get(id(info))
            if entry is None:
                continue
            if entry.is_dir:
                writer.make_dir(entry)
            else:
                writer.write_file(entry, data.read)


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

    def __init__(self, dest_fd: int, label: str, limits: Limits, scripts: set[str]) -> None:
        self.dest_fd = dest_fd
        self.label = label
        self.limits = limits
        self.scripts = scripts
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
        """Write `entry` from `read`."""
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
