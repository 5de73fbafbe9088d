"""The content-addressed objects of the snapshot store: file contents and manifest chunks.

An object lives at `objects/<2 hex>/<62 hex>`, named by the sha256 of its content, and is
written as a temp file in `tmp/`, made durable, then renamed into place: an object under its
name is always complete. Every read checks the content against the name, so a damaged object
is a CorruptStoreError, never restored.

Inside `batch()` (one snapshot being taken) new objects wait as unsynced temp files until
`flush()`: a few are then fsynced one by one and many with one syncfs() (10,000 fsyncs took
seconds; a syncfs in a pacman hook would flush all pacman just wrote), and only then renamed.
Not safe for concurrent writers: callers hold the lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from clp_alpm.atomicfile import fsync_directory
from clp_alpm.errors import CorruptStoreError
from clp_alpm.paths import refuse_symlink
from clp_alpm.store.durable import create_temp, fsync_path, syncfs, unlink_quietly, write_all

READ_CHUNK = 1 << 20
SYNCFS_ABOVE = 64  # new objects in one batch above which one syncfs() replaces their fsyncs


def digest_stream(fd: int, each: Callable[[bytes], None] | None = None) -> tuple[str, int]:
    """Read `fd` to its end: the sha256 hex digest and the length; `each` sees every chunk."""
    sha = hashlib.sha256()
    length = 0
    while chunk := os.read(fd, READ_CHUNK):
        sha.update(chunk)
        length += len(chunk)
        if each is not None:
            each(chunk)
    return sha.hexdigest(), length


class ObjectStore:
    """The objects of the snapshot store at `directory` (its `objects/` and `tmp/`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.objects_dir = self.directory / "objects"
        self.tmp_dir = self.directory / "tmp"
        self._objects_prefix = f"{self.objects_dir}/"
        self._dirs_to_sync: set[Path] = set()
        self._batch = False
        self._staged: dict[str, str] = {}  # digest -> temp path, durable and named at flush
        # In a large batch, the objects present, listed once instead of a stat per file.
        self._index: set[str] | None = None

    # ----------------------------------------------------------------- names

    def path(self, digest: str) -> Path:
        """Where the object named `digest` lives (whether or not it is there)."""
        return self.objects_dir / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        """The object is stored (or staged in the current batch)."""
        if digest in self._staged:
            return True
        if self._index is not None:
            return digest in self._index
        # Plain strings: this runs once per unchanged file, pathlib would dominate the cost.
        return os.path.isfile(f"{self._objects_prefix}{digest[:2]}/{digest[2:]}")

    def missing(self, digest: str) -> CorruptStoreError:
        """The error for an object a snapshot needs and the store lacks."""
        return CorruptStoreError(f"snapshot store {self.directory}: object {digest} is missing")

    def stored(self) -> list[tuple[str, Path]]:
        """Every object in the store: its digest and path."""
        found = []
        try:
            prefixes = os.listdir(self.objects_dir)
        except FileNotFoundError:
            return []
        for prefix in prefixes:
            if not re.fullmatch(r"[0-9a-f]{2}", prefix):
                continue
            for rest in os.listdir(self.objects_dir / prefix):
                if re.fullmatch(r"[0-9a-f]{62}", rest):
                    found.append((prefix + rest, self.objects_dir / prefix / rest))
        return found

    def _list_names(self) -> set[str]:
        """Names of the stored objects (strings only: this lists every object)."""
        found: set[str] = set()
        try:
            prefixes = os.listdir(self.objects_dir)
        except FileNotFoundError:
            return found
        for prefix in prefixes:
            if len(prefix) == 2:
                found.update(prefix + rest for rest in os.listdir(self._objects_prefix + prefix))
        return found

    # ----------------------------------------------------------------- writing

    @contextlib.contextmanager
    def batch(self, list_index: bool) -> Iterator[None]:
        """Defer the syncs of new objects to `flush()`, which also runs on the way out (on
        failure too: a later snapshot may reuse these objects by name). With `list_index`,
        list the stored objects once instead of a stat per `has()`."""
        self._index = self._list_names() if list_index else None
        self._batch = True
        try:
            yield
        finally:
            self.flush()
            self._batch = False
            self._index = None

    def add_from(self, fd: int, each: Callable[[bytes], None]) -> tuple[str, int]:
        """Store what `fd` holds up to its end: its digest and length; `each` sees every chunk."""
        temp_fd, temp_path = create_temp(self.tmp_dir, "object-")
        installed = False

        def copy(chunk: bytes) -> None:
            each(chunk)
            write_all(temp_fd, chunk)

        try:
            digest, length = digest_stream(fd, copy)
            self._sync_or_defer(temp_fd)
            os.close(temp_fd)
            temp_fd = -1
            self._install(temp_path, digest, length)
            installed = True
        finally:
            if temp_fd >= 0:
                os.close(temp_fd)
            if not installed:
                unlink_quietly(temp_path)
        return digest, length

    def add_bytes(self, data: bytes) -> str:
        """Store `data`; its digest."""
        digest = hashlib.sha256(data).hexdigest()
        if digest in self._staged or self._intact(digest, len(data)):
            return digest
        temp_fd, temp_path = create_temp(self.tmp_dir, "object-")
        try:
            write_all(temp_fd, data)
            self._sync_or_defer(temp_fd)
        except BaseException:
            os.close(temp_fd)
            unlink_quietly(temp_path)
            raise
        os.close(temp_fd)
        self._install(temp_path, digest, len(data))
        return digest

    def flush(self) -> None:
        """Make every object written so far durable, then name it, then make the names
        durable: a crash leaves complete objects or temp files, never a torn object."""
        staged, self._staged = self._staged, {}
        if len(staged) > SYNCFS_ABOVE:
            syncfs(self.tmp_dir)
        else:
            for temp_path in staged.values():
                fsync_path(temp_path)
        for digest, temp_path in staged.items():
            self._move_into_place(temp_path, digest, os.stat(temp_path).st_size)
            if self._index is not None:
                self._index.add(digest)
        for directory in sorted(self._dirs_to_sync):
            fsync_directory(directory)
        self._dirs_to_sync.clear()

    def _sync_or_defer(self, fd: int) -> None:
        if not self._batch:
            os.fsync(fd)

    def _install(self, temp_path: str, digest: str, length: int) -> None:
        """Move a fsynced temp file into place, unless an intact-looking object is there.
        Inside a batch, the temp file waits (unsynced) for the flush."""
        if self._batch:
            if digest in self._staged or self._intact(digest, length):
                unlink_quietly(temp_path)
            else:
                self._staged[digest] = temp_path
            return
        self._move_into_place(temp_path, digest, length)

    def _intact(self, digest: str, length: int) -> bool:
        """An object of the right size is there (a truncated one is replaced)."""
        try:
            return os.stat(self.path(digest)).st_size == length
        except FileNotFoundError:
            return False

    def _move_into_place(self, temp_path: str, digest: str, length: int) -> None:
        final = self.path(digest)
        if self._intact(digest, length):
            unlink_quietly(temp_path)
            return
        refuse_symlink(final.parent)  # a fan-out directory: written through by name
        if not final.parent.is_dir():
            final.parent.mkdir(mode=0o700)
            self._dirs_to_sync.add(self.objects_dir)
        os.replace(temp_path, final)
        self._dirs_to_sync.add(final.parent)

    # ----------------------------------------------------------------- reading

    def verify(self, digest: str) -> None:
        """CorruptStoreError unless the object is there with the content its name says."""
        self._check(digest, self._read_with(digest, None))

    def copy_to(self, digest: str, out_fd: int) -> None:
        """Copy an object into `out_fd`, checking its digest on the way."""
        self._check(digest, self._read_with(digest, lambda chunk: write_all(out_fd, chunk)))

    def read(self, digest: str) -> bytes:
        """An object's content, checked against its digest."""
        parts: list[bytes] = []
        self._check(digest, self._read_with(digest, parts.append))
        return b"".join(parts)

    def _read_with(self, digest: str, each: Callable[[bytes], None] | None) -> str:
        try:
            fd = os.open(self.path(digest), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise self.missing(digest) from None
        try:
            return digest_stream(fd, each)[0]
        finally:
            os.close(fd)

    def _check(self, digest: str, actual: str) -> None:
        if actual != digest:
            raise CorruptStoreError(
                f"snapshot store object {self.path(digest)} is corrupted "
                "(its content does not match its sha256 name); nothing was restored from it"
            )
