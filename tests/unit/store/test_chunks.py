"""How a snapshot's records are cut into chunks (manifests.py): few chunks for a pacman hook's
snapshot, one new chunk for one change, and no chunk encoded again for records that did not
change, however they were found out."""

from __future__ import annotations

from pathlib import Path

import pytest

from clp_alpm.store import manifests
from clp_alpm.store.model import Snapshot
from clp_alpm.store.snapshots import SnapshotStore

MIN, MAX = manifests._MIN_CHUNK_RECORDS, manifests._MAX_CHUNK_RECORDS


def write_files(root: Path, count: int, start: int = 0) -> list[str]:
    """`count` small configuration files in a few directories; their paths."""
    paths = []
    for number in range(start, start + count):
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
    return {path for path in store.objects_dir.rglob("*") if path.is_file()}


def trusted(snapshot: Snapshot) -> Snapshot:
    """The same records and chunks, as if taken well after the files were written."""
    aged = Snapshot(snapshot.id, snapshot.created + 10, snapshot.files)
    assert snapshot.chunks is not None
    aged.remember_chunks(snapshot.chunks)
    return aged


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "store")


def test_a_hook_snapshot_of_a_large_upgrade_is_one_chunk(
    tmp_path: Path, store: SnapshotStore
) -> None:
    root = tmp_path / "root"
    paths = hook_paths(write_files(root, MIN // 3))  # 85 configuration files, 255 paths
    snapshot = store.take(root, paths)
    assert len(store.manifests.read(snapshot.id).chunks) == 1
    assert len(chunk_objects(store)) == 1  # the small files went into one pack
    assert store.load(snapshot.id) == snapshot


def test_every_chunk_but_the_last_holds_from_the_least_to_the_most_records(
    tmp_path: Path, store: SnapshotStore
) -> None:
    root = tmp_path / "root"
    snapshot = store.take(root, write_files(root, 6000))
    assert snapshot.chunks is not None
    sizes = [len(records) for _, records in snapshot.chunks]
    assert len(sizes) > 6
    assert all(MIN <= size <= MAX for size in sizes[:-1]), sizes
    assert sum(sizes) == 6000
    assert store.load(snapshot.id) == snapshot


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
