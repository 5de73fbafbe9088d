"""The packed store (small files compressed into one pack per snapshot, chunks compressed),
read back byte-exact, and stores written in the earlier format (an object per file, chunks
as plain JSON) still read and restored."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from clp_alpm.errors import CorruptStoreError
from clp_alpm.store.model import FileState, Snapshot
from clp_alpm.store.objects import PACKED_MAX
from clp_alpm.store.snapshots import SnapshotStore
from tests.kits.paths import REPO


def tree(root: Path) -> list[str]:
    """Files of every kind a snapshot records; their target paths."""
    etc = root / "etc"
    (etc / "sub/deeper").mkdir(parents=True)
    (etc / "empty.conf").write_bytes(b"")
    (etc / "text.conf").write_bytes(b"key = value\n" * 50)
    (etc / "binary.bin").write_bytes(bytes(range(256)) * 7)
    (etc / "sub/shadow").write_bytes(b"root:$6$secret:::\n")
    os.chmod(etc / "sub/shadow", 0o600)
    (etc / "sub/setuid").write_bytes(b"#!/bin/sh\n")
    os.chmod(etc / "sub/setuid", 0o4755)
    os.chown(etc / "sub/setuid", 12, 34)
    (etc / "sub/deeper/same1").write_bytes(b"same\n")
    (etc / "sub/deeper/same2").write_bytes(b"same\n")
    (etc / "large.img").write_bytes(random.Random(1).randbytes(PACKED_MAX + 4097))
    (etc / "link").symlink_to("text.conf")
    (etc / "dangling").symlink_to("/nowhere/at/all")
    os.utime(etc / "text.conf", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    paths = []
    for parent, dirs, files in os.walk(etc):
        relative = "/" + os.path.relpath(parent, root)
        paths.append(relative)
        paths += [f"{relative}/{name}" for name in dirs + files]
    return sorted(set(paths)) + ["/etc/absent.conf"]


def entries(root: Path) -> dict[str, tuple]:
    """What a user compares: type, mode, owner, size, mtime, content or link target."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            content: object = path.read_bytes()
        elif stat.S_ISLNK(st.st_mode):
            content = os.readlink(path)
        else:
            content = None
        size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
        found[str(path.relative_to(root))] = (
            stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size,
            st.st_mtime_ns, content,
        )  # fmt: skip
    return found


def scramble(root: Path) -> None:
    """Change every kind of file the tree holds."""
    etc = root / "etc"
    (etc / "empty.conf").write_bytes(b"now full\n")
    (etc / "text.conf").write_bytes(b"other\n")
    (etc / "binary.bin").unlink()
    os.chmod(etc / "sub/shadow", 0o644)
    (etc / "sub/setuid").write_bytes(b"replaced\n")
    (etc / "large.img").write_bytes(b"small now")
    (etc / "link").unlink()
    (etc / "link").symlink_to("empty.conf")
    (etc / "absent.conf").write_bytes(b"created\n")


def test_the_packed_store_reads_back_byte_exact(tmp_path: Path) -> None:
    root = tmp_path / "root"
    paths = tree(root)
    before = entries(root)
    store = SnapshotStore(tmp_path / "store")
    snapshot = store.take(root, paths)

    packed = [s for s in snapshot.files if s.packed is not None]
    assert {s.path for s in packed} == {
        "/etc/empty.conf", "/etc/text.conf", "/etc/binary.bin", "/etc/sub/shadow",
        "/etc/sub/setuid", "/etc/sub/deeper/same1", "/etc/sub/deeper/same2",
    }  # fmt: skip
    assert len({s.packed[0] for s in packed if s.packed}) == 1, "one pack per snapshot"
    assert (
        snapshot.get("/etc/sub/deeper/same1").packed == snapshot.get("/etc/sub/deeper/same2").packed
    ), "the same content is packed once"
    assert snapshot.get("/etc/large.img").packed is None  # large files stay objects
    assert store.load(snapshot.id) == snapshot

    scramble(root)
    assert entries(root) != before
    store.restore(root, store.load(snapshot.id))
    assert entries(root) == before
    for state in packed:
        assert store.read_content(state) == (root / state.path.lstrip("/")).read_bytes()


def test_a_pack_and_its_chunks_are_compressed_and_few(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    paths = []
    for number in range(300):
        (root / f"etc/{number}.conf").write_text(f"option_{number} = value\n" * 40)
        paths.append(f"/etc/{number}.conf")
    store = SnapshotStore(tmp_path / "store")
    snapshot = store.take(root, paths)
    packs = list((Path(store.directory) / "packs").iterdir())
    assert len(packs) == 1
    raw = sum((root / p.lstrip("/")).stat().st_size for p in paths)
    assert packs[0].stat().st_size < raw / 5
    objects = [p for p in Path(store.objects_dir).rglob("*") if p.is_file()]
    assert len(objects) == len(store.manifests.read(snapshot.id).chunks) < 20
    for chunk in objects:
        assert json.loads(zlib.decompress(chunk.read_bytes()))["files"]
    assert not list(Path(store.tmp_dir).iterdir())


def test_a_second_snapshot_of_an_unchanged_tree_adds_only_its_manifest(tmp_path: Path) -> None:
    root = tmp_path / "root"
    paths = tree(root)
    store = SnapshotStore(tmp_path / "store")
    first = store.take(root, paths)
    files_before = sorted(p for p in Path(store.directory).rglob("*") if p.is_file())
    trusted = store.load(first.id)
    object.__setattr__(trusted, "created", first.created + 10)  # old enough to trust its stat
    second = store.take(root, paths, previous=trusted)
    added = sorted(
        set(p for p in Path(store.directory).rglob("*") if p.is_file()) - set(files_before)
    )
    assert added == [Path(store.snapshots_dir) / f"{second.id}.json"]
    assert store.load(second.id).files == first.files
    assert store.bytes_hashed == sum(s.size for s in first.files if s.kind == "file"), (
        "nothing was read twice"
    )


def test_a_damaged_or_missing_pack_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/a.conf").write_bytes(b"a original\n")
    (root / "etc/b.conf").write_bytes(b"b original\n")
    store = SnapshotStore(tmp_path / "store")
    snapshot = store.take(root, ["/etc/a.conf", "/etc/b.conf"])
    (root / "etc/a.conf").write_bytes(b"a changed\n")
    (root / "etc/b.conf").write_bytes(b"b changed\n")
    name, offset, length = snapshot.get("/etc/b.conf").packed or ("", 0, 0)
    pack = Path(store.directory) / "packs" / name
    good = pack.read_bytes()
    other = zlib.compress(b"b 0riginal\n", 6)
    assert len(other) == length
    pack.write_bytes(good[:offset] + other + good[offset + length :])

    with pytest.raises(CorruptStoreError, match=f"pack {pack} is corrupted at {offset}"):
        store.restore(root, snapshot)
    assert (root / "etc/a.conf").read_bytes() == b"a changed\n"
    pack.write_bytes(good[: offset + 3])  # truncated
    with pytest.raises(CorruptStoreError, match="/etc/b.conf does not match its sha256"):
        store.restore(root, snapshot)
    pack.unlink()
    with pytest.raises(CorruptStoreError, match=f"pack {name} \\(of /etc/a.conf\\) is missing"):
        store.restore(root, snapshot)
    assert (root / "etc/a.conf").read_bytes() == b"a changed\n"
    assert (root / "etc/b.conf").read_bytes() == b"b changed\n"


def test_gc_keeps_packs_in_use_and_removes_the_others(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/a.conf").write_bytes(b"version 1\n")
    first = SnapshotStore(tmp_path / "store").take(root, ["/etc/a.conf"])
    store = SnapshotStore(tmp_path / "store")
    (root / "etc/a.conf").write_bytes(b"version 2\n")
    second = store.take(root, ["/etc/a.conf"])
    packs = Path(store.directory) / "packs"
    assert len(list(packs.iterdir())) == 2 and store.gc() == 0
    (packs / ("0" * 32)).write_bytes(b"stray")
    assert store.gc() == 1
    store.delete(first.id)
    assert [p.name for p in packs.iterdir()] == [second.files[0].packed[0]]
    (root / "etc/a.conf").write_bytes(b"version 3\n")
    store.restore(root, store.load(second.id))
    assert (root / "etc/a.conf").read_bytes() == b"version 2\n"


def test_a_lost_pack_is_written_again_by_the_next_snapshot(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/a.conf").write_text("a\n")
    store = SnapshotStore(tmp_path / "store")
    first = store.take(root, ["/etc/a.conf"])
    (Path(store.directory) / "packs" / first.files[0].packed[0]).unlink()
    trusted = Snapshot(first.id, first.created + 10, first.files)
    second = SnapshotStore(store.directory).take(root, ["/etc/a.conf"], previous=trusted)
    assert second.files[0].packed != first.files[0].packed
    assert store.read_content(second.files[0]) == b"a\n"


def test_a_file_read_again_only_because_it_was_racy_is_not_packed_again(tmp_path: Path) -> None:
    """Written just before the first snapshot, the file is read again by the second (its stat
    data cannot be trusted); its content is the same: the record points into the first
    snapshot's pack, and no pack is written (the pacman hooks' pre snapshot, every time)."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/a.conf").write_text("a\n")
    store = SnapshotStore(tmp_path / "store")
    first = store.take(root, ["/etc/a.conf"])
    second = store.take(root, ["/etc/a.conf"], previous=first)
    assert store.bytes_hashed == 4  # read both times: racy
    assert second.files[0].packed == first.files[0].packed
    assert len(list((Path(store.directory) / "packs").iterdir())) == 1
    store.delete(first.id)
    assert store.gc() == 0  # the pack is the second snapshot's too
    (root / "etc/a.conf").write_text("b\n")
    store.restore(root, store.load(second.id))
    assert (root / "etc/a.conf").read_text() == "a\n"


@pytest.mark.parametrize("harm", ["damaged", "deleted"])
def test_a_racy_file_whose_pack_was_harmed_is_packed_again(tmp_path: Path, harm: str) -> None:
    """The previous record's pack is reused only when it holds the content intact: a damaged
    pack, or one gc deleted with its snapshot (in the same process), is written anew, and the
    second snapshot restores."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/a.conf").write_text("a\n")
    store = SnapshotStore(tmp_path / "store")
    first = store.take(root, ["/etc/a.conf"])
    pack = Path(store.directory) / "packs" / first.files[0].packed[0]
    if harm == "damaged":
        data = bytearray(pack.read_bytes())
        data[-1] ^= 0xFF
        pack.write_bytes(bytes(data))
    else:
        store.delete(first.id)
        assert not pack.exists()
    second = store.take(root, ["/etc/a.conf"], previous=first)
    assert second.files[0].packed != first.files[0].packed
    (root / "etc/a.conf").write_text("b\n")
    store.restore(root, store.load(second.id))
    assert (root / "etc/a.conf").read_text() == "a\n"


# --------------------------------------------------------------------------- the old format


def write_old_store(directory: Path, root: Path, paths: list[str]) -> str:
    """A store as clp wrote it before packs (manifest format 1): every file's content an
    object of its own, one JSON chunk, no packs directory."""
    for sub in ("objects", "snapshots", "tmp"):
        (directory / sub).mkdir(parents=True, mode=0o700)
    records = []
    for path in paths:
        host = root / path.lstrip("/")
        if not os.path.lexists(host):
            records.append(FileState(path, "absent").to_dict())
            continue
        st = os.lstat(host)
        kind = {stat.S_IFREG: "file", stat.S_IFLNK: "symlink", stat.S_IFDIR: "dir"}[
            stat.S_IFMT(st.st_mode)
        ]
        digest = target = None
        if kind == "file":
            data = host.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            (directory / "objects" / digest[:2]).mkdir(exist_ok=True)
            (directory / "objects" / digest[:2] / digest[2:]).write_bytes(data)
        elif kind == "symlink":
            target = os.readlink(host)
        records.append({
            "path": path, "kind": kind, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
            "gid": st.st_gid, "mtime_ns": st.st_mtime_ns,
            "size": st.st_size if kind != "dir" else 0, "digest": digest, "target": target,
            "created_dirs": [], "xattrs": [], "ino": st.st_ino, "ctime_ns": st.st_ctime_ns,
        })  # fmt: skip
    chunk = json.dumps({"files": records}, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(chunk).hexdigest()
    (directory / "objects" / digest[:2]).mkdir(exist_ok=True)
    (directory / "objects" / digest[:2] / digest[2:]).write_bytes(chunk)
    snapshot_id = "20250101T000000.000000-0123abcd"
    doc = {"format": 1, "id": snapshot_id, "created": time.time() - 60, "count": len(records),
           "chunks": [digest]}  # fmt: skip
    (directory / "snapshots" / f"{snapshot_id}.json").write_text(json.dumps(doc, indent=1))
    return snapshot_id


def test_a_store_in_the_old_format_is_still_read_restored_and_kept(tmp_path: Path) -> None:
    root = tmp_path / "root"
    paths = tree(root)
    before = entries(root)
    old_id = write_old_store(tmp_path / "store", root, paths)
    store = SnapshotStore(tmp_path / "store")
    old = store.load(old_id)
    assert all(s.packed is None for s in old.files)

    scramble(root)
    changed = store.take(root, paths, previous=old)  # the new format beside the old
    store.restore(root, store.load(old_id))
    assert entries(root) == before
    assert store.gc() == 0, "the old snapshot's objects are still referenced"
    scramble(root)
    store.restore(root, store.load(old_id))
    assert entries(root) == before
    store.restore(root, store.load(changed.id), ["/etc/text.conf"])
    assert (root / "etc/text.conf").read_bytes() == b"other\n"


def test_a_manifest_from_a_newer_clp_says_so(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    store = SnapshotStore(tmp_path / "store")
    snapshot = store.take(root, ["/etc"])
    manifest = Path(store.snapshots_dir) / f"{snapshot.id}.json"
    manifest.write_text(manifest.read_text().replace('"format": 2', '"format": 3'))
    with pytest.raises(CorruptStoreError, match="is a version 3 manifest, written by a newer"):
        store.load(snapshot.id)


# --------------------------------------------------------------------------- kills

_WRITER = """
import os, sys
from pathlib import Path
from clp_alpm.store.snapshots import SnapshotStore
root, store_dir, round_ = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
etc = root / "etc"
for number in range(400):
    (etc / f"{number}.conf").write_text(f"round {round_} file {number}\\n" * (number % 9 + 1))
os.write(1, b"go\\n")
store = SnapshotStore(store_dir)
while True:
    store.take(root, [f"/etc/{n}.conf" for n in range(400)])
"""


def assert_whole(store: SnapshotStore) -> None:
    """Every named object matches its name; every manifest loads and every file it records
    reads back (its pack or object is whole)."""
    for digest, path in store.objects.stored():
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest, path
    for snapshot_id in store.list_ids():
        for state in store.load(snapshot_id).files:
            if state.kind == "file":
                store.read_content(state)


def test_a_writer_killed_anywhere_leaves_only_whole_objects(tmp_path: Path) -> None:
    """SIGKILL at random points while snapshots are taken: what is named is complete."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    store_dir = tmp_path / "store"
    rng = random.Random(13)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for round_ in range(12):
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(root), str(store_dir), str(round_)],
            stdout=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert writer.stdout is not None and writer.stdout.readline() == b"go\n"
        time.sleep(rng.uniform(0.0, 0.25))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert_whole(SnapshotStore(store_dir))
    assert SnapshotStore(store_dir).list_ids(), "some snapshot was completed"
