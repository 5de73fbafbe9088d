"""How a snapshot's records are cut into chunks (manifests.py): one chunk for a pacman hook's
snapshot, one new chunk for one change and at most two for one path more or less, and no chunk
encoded again for records that did not change, however they were found out."""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import pytest

from clp_alpm.store import manifests
from clp_alpm.store.model import FileState, Snapshot
from clp_alpm.store.snapshots import SnapshotStore

ONE, MAX = manifests._ONE_CHUNK_RECORDS, manifests._MAX_CHUNK_RECORDS


def write_files(root: Path, count: int) -> list[str]:
    """`count` small configuration files in a few directories; their paths."""
    paths = []
    for number in range(count):
        path = f"/etc/d{number % 7}/f{number:05d}.conf"
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"option{number} = {number}\n")
        paths.append(path)
    return sorted(paths)


def hook_paths(files: list[str]) -> list[str]:
    """What a hook snapshots for these configuration files: each with its side files."""
    return sorted(p + suffix for p in files for suffix in ("", ".pacnew", ".pacsave"))


def chunk_objects(store: SnapshotStore) -> set[Path]:
    return {path for path in Path(store.objects_dir).rglob("*") if path.is_file()}


def trusted(snapshot: Snapshot) -> Snapshot:
    """The same records and chunks, as if taken well after the files were written."""
    aged = Snapshot(snapshot.id, snapshot.created + 10, snapshot.files)
    assert snapshot.chunks is not None
    aged.remember_chunks(snapshot.chunks)
    return aged


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "store")


@pytest.mark.parametrize("files", [1, ONE // 3])  # 3 and 255 paths
def test_a_hook_snapshot_is_one_chunk(tmp_path: Path, store: SnapshotStore, files: int) -> None:
    root = tmp_path / "root"
    snapshot = store.take(root, hook_paths(write_files(root, files)))
    assert len(store.manifests.read(snapshot.id).chunks) == 1
    assert len(chunk_objects(store)) == 1  # the small files went into one pack
    assert store.load(snapshot.id) == snapshot


def records(paths: list[str]) -> tuple[FileState, ...]:
    return tuple(FileState(path, "absent") for path in paths)


def cut(files: tuple[FileState, ...]) -> list[tuple[FileState, ...]]:
    """The chunks a writer cuts `files` into."""
    chunks, at = [], 0
    while at < len(files):
        chunks.append(manifests._next_chunk(files, at))
        at += len(chunks[-1])
    return chunks


def test_a_large_snapshot_is_cut_after_paths_whose_hash_is_small() -> None:
    paths = [f"/etc/d{n % 7}/f{n:05d}.conf" for n in range(6000)]
    chunks = cut(records(sorted(paths)))
    assert sum(map(len, chunks)) == 6000
    assert 40 < len(chunks) < 160  # about one in 64
    assert all(manifests._ends_chunk(chunk[-1], len(chunk), 6000) for chunk in chunks[:-1])
    assert all(len(chunk) <= MAX for chunk in chunks)
    assert len(cut(records(paths[:ONE]))) == 1
    assert len(cut(records(paths[: ONE + 1]))) > 1


def test_a_chunk_is_full_at_the_most_records() -> None:
    uncut = [path for n in range(5000) if not cut_after(path := f"/etc/f{n:05d}.conf")][:1100]
    assert [len(chunk) for chunk in cut(records(uncut))] == [MAX, 1100 - MAX]


@pytest.mark.parametrize("change", ["insert", "delete"])
def test_a_path_more_or_less_anywhere_changes_at_most_two_chunks(change: str) -> None:
    paths = sorted(f"/etc/d{n % 7}/f{n:05d}.conf" for n in range(6000))
    before = {tuple(r.path for r in chunk) for chunk in cut(records(paths))}
    for at in range(0, len(paths), 17):
        if change == "insert":
            changed = sorted([*paths, paths[at] + ".new"])
        else:
            changed = paths[:at] + paths[at + 1 :]
        after = [tuple(r.path for r in chunk) for chunk in cut(records(changed))]
        assert len([chunk for chunk in after if chunk not in before]) <= 2, at


def test_files_read_again_as_racy_keep_their_chunks_unencoded(
    tmp_path: Path, store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    paths = write_files(root, 2000)
    first = store.take(root, paths)  # written just now: the next snapshot reads them again
    encoded: list[int] = []
    real = manifests._encode_chunk

    def counting(states: tuple) -> bytes:  # type: ignore[type-arg]
        encoded.append(len(states))
        return real(states)

    monkeypatch.setattr(manifests, "_encode_chunk", counting)
    hashed = store.bytes_hashed
    second = store.take(root, paths, previous=store.load(first.id))
    assert store.bytes_hashed > hashed, "the files were read again"
    assert second.files == first.files
    assert encoded == []
    first_chunks = store.manifests.read(first.id).chunks
    assert store.manifests.read(second.id).chunks == first_chunks


def test_one_changed_file_stores_one_new_chunk(tmp_path: Path, store: SnapshotStore) -> None:
    root = tmp_path / "root"
    paths = write_files(root, 6000)
    first = store.take(root, paths)
    before = chunk_objects(store)
    (root / paths[3000].lstrip("/")).write_text("changed = yes\n")
    second = store.take(root, paths, previous=trusted(first))
    assert len(chunk_objects(store) - before) == 1
    assert second.get(paths[3000]) != first.get(paths[3000])
    assert len(store.manifests.read(second.id).chunks) == len(store.manifests.read(first.id).chunks)


@pytest.mark.parametrize("at", [0, 100, 3000])
def test_a_new_path_changes_few_chunks(tmp_path: Path, store: SnapshotStore, at: int) -> None:
    root = tmp_path / "root"
    paths = write_files(root, 6000)
    first = store.take(root, paths)
    chunks_before = set(store.manifests.read(first.id).chunks)
    added = paths[at].replace(".conf", ".new.conf")
    (root / added.lstrip("/")).write_text("new = 1\n")
    second = store.take(root, sorted([*paths, added]), previous=trusted(first))
    chunks_after = store.manifests.read(second.id).chunks
    assert len(chunks_after) > 6
    assert len(set(chunks_after) - chunks_before) <= 2
    assert second.get(added) is not None


def test_a_chunk_gc_removed_is_stored_again(tmp_path: Path, store: SnapshotStore) -> None:
    root = tmp_path / "root"
    paths = write_files(root, 2000)
    first = store.take(root, paths)
    store.delete(first.id)  # and with it every chunk only it named
    assert chunk_objects(store) == set()
    second = store.take(root, paths, previous=trusted(first))
    assert store.load(second.id) == second


def cut_after(path: str) -> bool:
    """A chunk of a large snapshot ends after `path` (unless it is full)."""
    return zlib.crc32(path.encode()) & 0xFF < manifests._BOUNDARY_BELOW


@pytest.mark.parametrize("grown", [True, False])
def test_a_snapshot_grown_or_shrunk_past_one_chunk_is_cut_as_a_new_one(
    tmp_path: Path, store: SnapshotStore, grown: bool
) -> None:
    root = tmp_path / "root"
    paths = write_files(root, 300)
    # the small one ends where a large one's chunk could: its one chunk must not be reused
    small = next(n for n in range(ONE, 100, -1) if cut_after(paths[n - 1]))
    first, then = (small, 300) if grown else (300, small)
    before = store.take(root, paths[:first])
    after = store.take(root, paths[:then], previous=trusted(before))
    assert after.chunks is not None
    assert [records for _, records in after.chunks] == cut(after.files)
    assert (len(after.chunks) > 1) == (then > ONE)
    assert store.load(after.id) == after


FILE_FIELDS = {
    "mode": 0o600, "uid": 7, "gid": 8, "mtime_ns": 1, "size": 1, "digest": "0" * 64,
    "ino": 1, "ctime_ns": 1, "packed": ("0" * 32, 0, 1), "xattrs": (("user.a", "00"),),
}  # fmt: skip
# a record of another kind at the same place, and the field changed in it
OTHER_KINDS = {
    "target": (FileState("/etc/d3/f00150.conf", "symlink", target="a"), "b"),
    "created_dirs": (FileState("/etc/d3/f00150.conf", "absent"), ("/etc/d3",)),
    "kind": (FileState("/etc/d3/f00150.conf", "absent"), "dir"),
}


@pytest.mark.parametrize("name", [*FILE_FIELDS, *OTHER_KINDS])
def test_a_record_changed_in_any_field_is_not_stored_as_its_old_chunk(
    tmp_path: Path, store: SnapshotStore, name: str
) -> None:
    root = tmp_path / "root"
    first = store.take(root, write_files(root, 300))
    at = first.paths.index("/etc/d3/f00150.conf")
    if name in OTHER_KINDS:
        other, value = OTHER_KINDS[name]
        files = list(first.files)
        files[at] = other
        first = Snapshot(store.manifests.new_id(first.created), first.created, tuple(files))
        store.manifests.write(first)
    else:
        value = FILE_FIELDS[name]
    changed = list(first.files)
    changed[at] = dataclasses.replace(changed[at], **{name: value})
    second = Snapshot(store.manifests.new_id(first.created), first.created, tuple(changed))
    store.manifests.write(second, first)
    loaded = store.manifests.load(second.id)
    assert [r.to_dict() for r in loaded.files] == [r.to_dict() for r in second.files]
