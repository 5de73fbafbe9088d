"""The manifests of the snapshot store: one `snapshots/<id>.json` per snapshot.

A manifest holds the snapshot's id, when it was taken, how many records it has, and the
digests of the chunks that list them; each chunk is an object of the store (JSON of up to
_MAX_CHUNK_RECORDS records). Chunk boundaries depend only on the paths (and whether there are
more than _ONE_CHUNK_RECORDS), so a second snapshot of an unchanged tree reuses every chunk and
adds only its small manifest; a change touches one chunk or two, not the whole list. A
snapshot of up to _ONE_CHUNK_RECORDS records is not cut at all: a pacman hook's snapshot (three
paths a configuration file) is one chunk, where each more cost a file, an fsync and a rename.
Only writers cut chunks: any cut reads back alike. Every object a manifest names is durable
before the manifest is.

Format 2 (this clp) stores each chunk zlib-compressed and lets a file record name where in a
pack its content lies; format 1 (earlier clp) stored chunks as plain JSON. Both are read.
"""

from __future__ import annotations

import os
import time
import zlib

from clp_alpm.atomicfile import fsync_directory
from clp_alpm.errors import CorruptStoreError, SnapshotError, UsageError
from clp_alpm.paths import exists
from clp_alpm.plainjson import dumps, loads
from clp_alpm.store.durable import write_temp
from clp_alpm.store.model import FileState, Snapshot, is_digest, is_lower_hex
from clp_alpm.store.objects import ObjectStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass

    from _typeshed import StrPath
else:  # the pacman hook's path: no dataclasses, see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass

MANIFEST_FORMAT = 2
_READABLE_FORMATS = (1, 2)
_CHUNK_LEVEL = 6
# Chunk boundaries: after a path whose hash (crc32) has its low byte below this (1 in 64 on
# average), and at _MAX_CHUNK_RECORDS; none in a snapshot of up to _ONE_CHUNK_RECORDS. (A
# least chunk size instead would make each cut depend on where its chunk began: one path
# added could move every later cut.)
_BOUNDARY_BELOW = 4
_ONE_CHUNK_RECORDS = 256
_MAX_CHUNK_RECORDS = 1024
_ID_LENGTH = len("20261204T183412.343058-897eb991")  # see is_snapshot_id


@dataclass(frozen=True)
class Manifest:
    """A manifest as read and checked: where it is and what it lists."""

    path: str
    id: str
    created: float
    count: int
    chunks: tuple[str, ...]


class Manifests:
    """The manifests of the snapshot store at `directory`; their chunks are in `objects`."""

    def __init__(self, directory: StrPath, objects: ObjectStore) -> None:
        self.directory = os.fspath(directory)
        self.snapshots_dir = f"{self.directory}/snapshots"
        self.objects = objects

    def list_ids(self) -> list[str]:
        """Ids of the stored snapshots, oldest first."""
        try:
            names = os.listdir(self.snapshots_dir)
        except FileNotFoundError:
            return []
        ids = [name[: -len(".json")] for name in names if name.endswith(".json")]
        return sorted(i for i in ids if is_snapshot_id(i))

    def path(self, snapshot_id: str) -> str:
        """The manifest file of `snapshot_id` (UsageError for what is not a snapshot id)."""
        if not is_snapshot_id(snapshot_id):
            raise UsageError(f"{snapshot_id!r} is not a snapshot id")
        return f"{self.snapshots_dir}/{snapshot_id}.json"

    def new_id(self, created: float) -> str:
        """A fresh id, `<UTC time of created>-<8 random hex>`: ids sort by time."""
        seconds, micros = divmod(round(created * 1_000_000), 1_000_000)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + f".{micros:06d}"
        while True:
            snapshot_id = f"{stamp}-{os.urandom(4).hex()}"
            if not exists(f"{self.snapshots_dir}/{snapshot_id}.json"):
                return snapshot_id

    def write(self, snapshot: Snapshot, previous: Snapshot | None = None) -> None:
        """Store the chunks of `snapshot`, make every object durable, then its manifest. A
        chunk of `previous` that holds these records is reused as it is."""
        stored = self._store_chunks(snapshot.files, previous)
        chunks = [digest for digest, _ in stored]
        self.objects.flush()  # every object the manifest names is durable before it is
        doc = {
            "format": MANIFEST_FORMAT,
            "id": snapshot.id,
            "created": snapshot.created,
            "count": len(snapshot.files),
            "chunks": chunks,
        }
        data = dumps(doc).encode("ascii")
        temp_path = write_temp(self.objects.tmp_dir, data, "manifest-")
        os.replace(temp_path, self.path(snapshot.id))
        fsync_directory(self.snapshots_dir)
        snapshot.remember_chunks(tuple(stored))

    def _store_chunks(
        self, files: tuple[FileState, ...], previous: Snapshot | None
    ) -> list[tuple[str, tuple[FileState, ...]]]:
        """Cut `files` into chunks and store each; where a chunk of `previous` starts, holds
        these records (the same objects or equal ones) and ends where the cut would (a few
        comparisons, no hashing of its paths), it is reused as it is."""
        count = len(files)
        chunks = previous.chunks if previous is not None else None
        if previous is not None and len(previous.files) <= _ONE_CHUNK_RECORDS < count:
            chunks = None  # an uncut chunk of a small snapshot is no chunk of a large one
        starts = {records[0].path: (digest, records) for digest, records in chunks or () if records}
        stored: list[tuple[str, tuple[FileState, ...]]] = []
        at = 0
        while at < count:
            old = starts.get(files[at].path)
            if old is not None:
                digest, records = old
                end = at + len(records)
                # compared item by item, identity first: records the quick test kept are the
                # same objects, a racy file read again makes an equal one (equal records
                # encode alike)
                if (
                    files[at:end] == records
                    and (end == count or _ends_chunk(records[-1], len(records), count))
                    and self.objects.has(digest)
                ):
                    stored.append(old)
                    at = end
                    continue
            part = _next_chunk(files, at)
            stored.append((self.objects.add_bytes(_encode_chunk(part)), part))
            at += len(part)
        return stored

    def read(self, snapshot_id: str) -> Manifest:
        """The manifest of `snapshot_id`: SnapshotError if there is none, CorruptStoreError
        if it is not a well-formed manifest of that id."""
        manifest = self.path(snapshot_id)
        try:
            with open(manifest, "rb") as file:
                raw = file.read()
        except FileNotFoundError:
            raise SnapshotError(f"no snapshot {snapshot_id} in {self.directory}") from None
        try:
            doc = loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise CorruptStoreError(f"{manifest}: is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("format") not in _READABLE_FORMATS:
            if isinstance(doc, dict) and isinstance(doc.get("format"), int):
                raise CorruptStoreError(
                    f"{manifest}: is a version {doc['format']} manifest, written by a newer clp"
                )
            raise CorruptStoreError(f"{manifest}: is not a version {MANIFEST_FORMAT} manifest")
        chunks = doc.get("chunks")
        created = doc.get("created")
        count = doc.get("count")
        if (
            doc.get("id") != snapshot_id
            or not isinstance(created, (int, float))
            or isinstance(created, bool)
            or not isinstance(count, int)
            or not isinstance(chunks, list)
            or not all(is_digest(c) for c in chunks)
        ):
            raise CorruptStoreError(f"{manifest}: has a missing or malformed field")
        return Manifest(manifest, snapshot_id, float(created), count, tuple(chunks))

    def read_chunk(self, manifest: Manifest, digest: str) -> list[FileState]:
        """The records of one chunk of `manifest` (CorruptStoreError naming the manifest)."""
        try:
            raw = self.objects.read(digest)
            # format 1 chunks are plain JSON; format 2 chunks are compressed
            doc = loads(raw if raw[:1] == b"{" else zlib.decompress(raw))
        except (ValueError, UnicodeDecodeError, zlib.error):
            raise CorruptStoreError(f"{manifest.path}: chunk {digest} is not valid JSON") from None
        except CorruptStoreError as err:
            raise CorruptStoreError(f"{manifest.path}: {err}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
            raise CorruptStoreError(f"{manifest.path}: chunk {digest} holds no file list")
        try:
            return [FileState.from_dict(item) for item in doc["files"]]
        except CorruptStoreError as err:
            raise CorruptStoreError(f"{manifest.path}: {err}") from None

    def load(self, snapshot_id: str) -> Snapshot:
        """The snapshot `snapshot_id`, every record checked."""
        manifest = self.read(snapshot_id)
        files: list[FileState] = []
        chunks = []
        for digest in manifest.chunks:
            records = tuple(self.read_chunk(manifest, digest))
            chunks.append((digest, records))
            files.extend(records)
        if len(files) != manifest.count:
            raise CorruptStoreError(
                f"{manifest.path}: lists {manifest.count} files, chunks hold {len(files)}"
            )
        snapshot = Snapshot(snapshot_id, manifest.created, tuple(files))
        snapshot.remember_chunks(tuple(chunks))
        snapshot.by_path()  # a loaded snapshot is looked up: the next one's `previous`
        return snapshot


def is_snapshot_id(text: object) -> bool:
    """`text` is an id as `Manifests.new_id` makes them: `YYYYmmddTHHMMSS.ffffff-` (ASCII
    digits) and 8 lower-case hex digits. (String tests, not re: the hooks check every id.)"""
    if not isinstance(text, str) or len(text) != _ID_LENGTH or not text.isascii():
        return False
    stamp = text[:8] + text[9:15] + text[16:22]
    marks = text[8] + text[15] + text[22]
    return marks == "T.-" and stamp.isdigit() and is_lower_hex(text[23:], 8)


def _ends_chunk(state: FileState, records: int, total: int) -> bool:
    """A chunk of `records` records of a snapshot of `total` is cut after `state`: its path's
    hash is small, or the chunk is full; never in a snapshot of up to _ONE_CHUNK_RECORDS.
    Boundaries move only where paths change. (crc32, not sha256: a cut decides no more than
    how many chunks a change touches, and every record of a large snapshot is hashed for it.)"""
    if total <= _ONE_CHUNK_RECORDS:
        return False
    if records >= _MAX_CHUNK_RECORDS:
        return True
    return zlib.crc32(state.path.encode("utf-8", "surrogateescape")) & 0xFF < _BOUNDARY_BELOW


def _next_chunk(files: tuple[FileState, ...], start: int) -> tuple[FileState, ...]:
    """The chunk that starts at `files[start]`: up to the next boundary, or the end."""
    end = start
    while end < len(files):
        end += 1
        if _ends_chunk(files[end - 1], end - start, len(files)):
            break
    return files[start:end]


def _encode_chunk(states: tuple[FileState, ...]) -> bytes:
    doc = {"files": [state.to_dict() for state in states]}
    text = dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")
    return zlib.compress(text, _CHUNK_LEVEL)
