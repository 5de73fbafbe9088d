"""The content-addressed objects of the snapshot store: file contents and manifest chunks.

An object lives at `objects/<2 hex>/<62 hex>`, named by the sha256 of its content, and is
written as a temp file in `tmp/`, made durable, then renamed into place: an object under its
name is always complete. Every read checks the content against the name, so a damaged object
is a CorruptStoreError, never restored.

Inside `batch()` (one snapshot being taken) new objects wait as unsynced temp files until
`flush()`: a few are then fsynced one by one and many with one syncfs() (10,000 fsyncs took
seconds; a syncfs in a pacman hook would flush all pacman just wrote), and only then renamed.

Small files (up to PACKED_MAX bytes) are not objects of their own: inside a batch their
contents are compressed and appended to one pack, `packs/<32 hex>`, and each record says where
its content lies (FileState.packed: pack, offset, stored length); the record's sha256 checks
it when it is read back. A pack is written in `tmp/`, fsynced once for all its members and
renamed into `packs/` at `flush()`, before any manifest names it. An object per small file
cost a block of disk and two fsyncs each; git packs its objects for the same reasons.
Not safe for concurrent writers: callers hold the lock.
"""

from __future__ import annotations

import os
import sys

from clp_alpm.atomicfile import fsync_directory
from clp_alpm.errors import CorruptStoreError
from clp_alpm.paths import is_dir, refuse_symlink
from clp_alpm.store.durable import create_temp, fsync_path, syncfs, unlink_quietly, write_all
from clp_alpm.store.model import DIGEST_LENGTH, PACK_NAME_LENGTH, is_lower_hex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from _typeshed import StrPath

    from clp_alpm.store.model import FileState

READ_CHUNK = 1 << 20
INDEX_AFTER = 256  # look-ups in a batch after which the stored objects are listed once
SYNCFS_ABOVE = 64  # new objects in one batch above which one syncfs() replaces their fsyncs
PACKED_MAX = 1 << 20  # files up to this size go into the batch's pack, compressed
_PACK_LEVEL = 6  # zlib's default, as git's


# Python's own sha256 loads in microseconds, OpenSSL's (hashlib) in 3 ms but hashes ten times
# faster: the few small files of a pacman hook are hashed by the first, anything more by the
# second (see new_sha256).
_SMALL_HASHING = 1 << 20
_small_hashed = 0


def new_sha256(size: int) -> Any:
    """A sha256 object for about `size` bytes, from whichever implementation is cheaper."""
    global _small_hashed
    if "_hashlib" not in sys.modules and _small_hashed + size <= _SMALL_HASHING:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            try:
                from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]
            except ImportError:
                from hashlib import sha256
        _small_hashed += size
        return sha256()
    import hashlib

    return hashlib.sha256()


def sha256_hex(data: bytes) -> str:
    sha = new_sha256(len(data))
    sha.update(data)
    return str(sha.hexdigest())


def digest_stream(fd: int, each: Callable[[bytes], None] | None = None) -> tuple[str, int]:
    """Read `fd` to its end: the sha256 hex digest and the length; `each` sees every chunk."""
    sha = new_sha256(os.fstat(fd).st_size)
    length = 0
    while chunk := os.read(fd, READ_CHUNK):
        sha.update(chunk)
        length += len(chunk)
        if each is not None:
            each(chunk)
    return sha.hexdigest(), length


class ObjectStore:
    """The objects of the snapshot store at `directory` (its `objects/` and `tmp/`)."""

    def __init__(self, directory: StrPath, packed_max: int = PACKED_MAX) -> None:
        self.directory = os.fspath(directory)
        self.packed_max = packed_max  # files up to this size are packed (-1: none)
        self.objects_dir = f"{self.directory}/objects"
        self.packs_dir = f"{self.directory}/packs"
        self.tmp_dir = f"{self.directory}/tmp"
        self._objects_prefix = f"{self.objects_dir}/"
        self._dirs_to_sync: set[str] = set()
        self._batch = False
        self._staged: dict[str, str] = {}  # digest -> temp path, durable and named at flush
        # In a large batch, the objects present, listed once instead of a stat per file (on
        # the INDEX_AFTER-th look-up: a second snapshot of unchanged files looks up few).
        self._index: set[str] | None = None
        self._index_wanted = False
        self._lookups = 0
        # The pack being written in this batch: its name, temp file, size, members by digest.
        self._pack: _PackWriter | None = None
        self._packs_present: dict[str, bool] = {}

    # ----------------------------------------------------------------- names

    def path(self, digest: str) -> str:
        """Where the object named `digest` lives (whether or not it is there)."""
        return f"{self._objects_prefix}{digest[:2]}/{digest[2:]}"

    def has(self, digest: str) -> bool:
        """The object is stored (or staged in the current batch)."""
        if digest in self._staged:
            return True
        if self._index is None and self._index_wanted:
            self._lookups += 1
            if self._lookups > INDEX_AFTER:
                self._index = self._list_names()
        if self._index is not None:
            return digest in self._index
        return os.path.isfile(self.path(digest))

    def has_content(self, state: FileState) -> bool:
        """The content a file record names is stored: its pack, or its object."""
        if state.packed is None:
            return state.digest is not None and self.has(state.digest)
        return self.has_pack(state.packed[0])

    def has_pack(self, name: str) -> bool:
        """The pack `name` is stored (or being written in the current batch)."""
        if self._pack is not None and name == self._pack.name:
            return True
        present = self._packs_present.get(name)
        if present is None:
            present = os.path.isfile(f"{self.packs_dir}/{name}")
            self._packs_present[name] = present
        return present

    def missing(self, digest: str) -> CorruptStoreError:
        """The error for an object a snapshot needs and the store lacks."""
        return CorruptStoreError(f"snapshot store {self.directory}: object {digest} is missing")

    def stored(self) -> list[tuple[str, str]]:
        """Every object in the store: its digest and path."""
        found = []
        try:
            prefixes = os.listdir(self.objects_dir)
        except FileNotFoundError:
            return []
        for prefix in prefixes:
            if not is_lower_hex(prefix, 2):
                continue
            for rest in os.listdir(f"{self._objects_prefix}{prefix}"):
                if is_lower_hex(rest, DIGEST_LENGTH - 2):
                    found.append((prefix + rest, f"{self._objects_prefix}{prefix}/{rest}"))
        return found

    def stored_packs(self) -> list[tuple[str, str]]:
        """Every pack in the store: its name and path."""
        try:
            names = os.listdir(self.packs_dir)
        except FileNotFoundError:
            return []
        return [(n, f"{self.packs_dir}/{n}") for n in names if is_lower_hex(n, PACK_NAME_LENGTH)]

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

    def start_batch(self, list_index: bool) -> None:
        """Defer the syncs of new objects to `flush()`, until `end_batch()` (which the caller
        runs in a `finally`: on failure too, a later snapshot may reuse these objects by name).
        With `list_index`, list the stored objects once (when many are looked up) instead of a
        stat per `has()`. (No context manager: contextlib costs the pacman hooks a millisecond
        to import.)"""
        self._index, self._index_wanted, self._lookups = None, list_index, 0
        self._batch = True

    def end_batch(self) -> None:
        """Sync and name what the batch stored (`flush()`); later objects are synced one by one."""
        try:
            self.flush()
        finally:
            self._batch = False
            self._index, self._index_wanted = None, False

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

    def add_small(
        self, data: bytes, stored: FileState | None = None
    ) -> tuple[str, tuple[str, int, int] | None]:
        """Store a small file's content: its digest and where it lies in a pack: this batch's,
        or `stored`'s (a record of the same content, whose pack holds it intact: read back and
        checked, so that a damaged or deleted pack is written again); None when an object of
        that digest is stored already, or outside a batch."""
        digest = sha256_hex(data)
        if not self._batch:
            return self.add_bytes(data), None
        if stored is not None and stored.digest == digest and self._packed_intact(stored):
            return digest, stored.packed
        if self._pack is None:
            self._pack = _PackWriter(self.tmp_dir)
        where = self._pack.members.get(digest)
        if where is not None:
            return digest, where
        if digest in self._staged or self.has(digest):
            return digest, None
        return digest, self._pack.add(digest, data)

    def add_bytes(self, data: bytes) -> str:
        """Store `data`; its digest."""
        digest = sha256_hex(data)
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
        pack, self._pack = self._pack, None
        if pack is not None and not pack.members:
            pack.discard()
            pack = None
        if len(staged) > SYNCFS_ABOVE:
            syncfs(self.tmp_dir)
        else:
            for temp_path in staged.values():
                fsync_path(temp_path)
            if pack is not None:
                pack.sync()  # one fsync for every small file of the batch
        for digest, temp_path in staged.items():
            self._move_into_place(temp_path, digest, os.stat(temp_path).st_size)
            if self._index is not None:
                self._index.add(digest)
        if pack is not None:
            if not is_dir(self.packs_dir):
                os.mkdir(self.packs_dir, 0o700)
                self._dirs_to_sync.add(self.directory)
            pack.close()
            os.replace(pack.temp_path, f"{self.packs_dir}/{pack.name}")
            self._packs_present[pack.name] = True
            self._dirs_to_sync.add(self.packs_dir)
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
        fan_out = os.path.dirname(final)
        refuse_symlink(fan_out)  # written through by name
        if not is_dir(fan_out):
            os.mkdir(fan_out, 0o700)
            self._dirs_to_sync.add(self.objects_dir)
        os.replace(temp_path, final)
        self._dirs_to_sync.add(fan_out)

    # ----------------------------------------------------------------- reading

    def read_file(self, state: FileState) -> bytes:
        """A file record's content, from its pack or its object, checked against its digest."""
        if state.packed is None:
            return self.read(str(state.digest))
        return self._read_packed(state)

    def copy_file_to(self, state: FileState, out_fd: int) -> None:
        """Copy a file record's content into `out_fd`, checked before a byte is written."""
        if state.packed is None:
            self.copy_to(str(state.digest), out_fd)
        else:
            write_all(out_fd, self._read_packed(state))

    def verify_file(self, state: FileState) -> None:
        """CorruptStoreError unless a file record's content is there, as its digest says."""
        if state.packed is None:
            self.verify(str(state.digest))
        else:
            self._read_packed(state)

    def _packed_intact(self, state: FileState) -> bool:
        if state.packed is None or not self.has_pack(state.packed[0]):
            return False
        try:
            self._read_packed(state)
        except (CorruptStoreError, OSError):
            return False
        return True

    def forget_packs_present(self) -> None:
        """After packs were deleted: has_pack looks at the directory again."""
        self._packs_present.clear()

    def _read_packed(self, state: FileState) -> bytes:
        import zlib  # lazy: read back only to restore, to check, or for a racy file's pack

        assert state.packed is not None
        name, offset, length = state.packed
        path = f"{self.packs_dir}/{name}"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise CorruptStoreError(
                f"snapshot store {self.directory}: pack {name} (of {state.path}) is missing"
            ) from None
        try:
            stored = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        try:
            data = zlib.decompress(stored) if len(stored) == length else None
        except zlib.error:
            data = None
        if data is None or sha256_hex(data) != state.digest:
            raise CorruptStoreError(
                f"snapshot store pack {path} is corrupted at {offset} (the content of "
                f"{state.path} does not match its sha256); nothing was restored from it"
            )
        return data

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


class _PackWriter:
    """The pack one batch writes: small files' contents, each compressed, one after another,
    in a temp file that flush() makes durable and names."""

    def __init__(self, tmp_dir: str) -> None:
        self.name = os.urandom(16).hex()
        self.fd, self.temp_path = create_temp(tmp_dir, "pack-")
        self.size = 0
        self.members: dict[str, tuple[str, int, int]] = {}

    def add(self, digest: str, data: bytes) -> tuple[str, int, int]:
        import zlib  # lazy: a batch without small new files never compresses

        stored = zlib.compress(data, _PACK_LEVEL)
        write_all(self.fd, stored)
        where = (self.name, self.size, len(stored))
        self.size += len(stored)
        self.members[digest] = where
        return where

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        self.close()
        unlink_quietly(self.temp_path)
