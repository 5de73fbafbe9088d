"""The second pass over a tree: a previous record is kept on one lstat, anything else is read.

The quick test runs a whole directory's paths at once (observe.py `_Taking.quick_run`); these
tests put each kind of change among many unchanged paths of one directory, with directories
between them, as a walk lists them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from clp_alpm.errors import SpecialFileError, UnsafePathError
from clp_alpm.store.model import Snapshot
from clp_alpm.store.observe import RACY_MARGIN_NS, Observer
from clp_alpm.store.snapshots import SnapshotStore


def walk_paths(root: Path) -> list[str]:
    """The paths under root/etc in a walk's order: each directory, then its files."""
    paths = []
    for parent, dirnames, filenames in os.walk(root / "etc"):
        dirnames.sort()
        relative = "/" + os.path.relpath(parent, root)
        paths.append(relative)
        paths += [f"{relative}/{name}" for name in sorted(filenames)]
    return paths


def make_tree(root: Path) -> list[str]:
    for top in ("a", "b"):
        for number in range(30):
            target = root / f"etc/{top}/f{number:02d}.conf"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"{top} {number}\n" * (number + 1))
        (root / f"etc/{top}/sub").mkdir()
        (root / f"etc/{top}/sub/inner.conf").write_text("inner\n")
    return walk_paths(root)


def trusted(snapshot: Snapshot) -> Snapshot:
    """The same records, as if taken well after the files were written (their stat data
    trusted: past RACY_MARGIN_NS), without sleeping."""
    return Snapshot(snapshot.id, snapshot.created + 10, snapshot.files)


def same_size_rewrite(path: Path) -> None:
    old = path.stat()
    path.write_bytes(path.read_bytes().upper())
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))  # only the ctime tells


def replace_by_symlink(path: Path) -> None:
    path.unlink()
    path.symlink_to("elsewhere")


CHANGES: dict[str, Callable[[Path], None]] = {
    "content, same size and mtime": same_size_rewrite,
    "mode": lambda path: os.chmod(path, 0o600),
    "owner": lambda path: os.chown(path, 1234, 1234),
    "xattr": lambda path: os.setxattr(path, "user.mark", b"1"),
    "deleted": lambda path: path.unlink(),
    "symlink": replace_by_symlink,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_one_change_among_unchanged_files_is_found_and_the_rest_kept(
    root: Path, store: SnapshotStore, change: Callable[[Path], None]
) -> None:
    paths = make_tree(root)
    first = trusted(store.take(root, paths))
    victim = "/etc/a/f17.conf"
    change(root / victim.lstrip("/"))
    hashed = store.bytes_hashed
    second = store.take(root, paths, previous=first)
    now = root / victim.lstrip("/")
    assert store.bytes_hashed - hashed == (now.stat().st_size if now.is_file() else 0)
    assert second.paths == paths
    # a file removed or made anew changes its directory too
    replaced = change in (CHANGES["deleted"], CHANGES["symlink"])
    expected = {victim, "/etc/a"} if replaced else {victim}
    assert {b.path for a, b in zip(first.files, second.files, strict=True) if a is not b} == (
        expected
    )
    assert store.changed_paths(root, first) == [victim]
    assert store.load(second.id) == second


def test_a_changed_directory_among_files_is_found(root: Path, store: SnapshotStore) -> None:
    paths = make_tree(root)
    first = trusted(store.take(root, paths))
    os.chmod(root / "etc/a/sub", 0o700)
    second = store.take(root, paths, previous=first)
    changed = [b.path for a, b in zip(first.files, second.files, strict=True) if a is not b]
    assert changed == ["/etc/a/sub"]
    assert second.get("/etc/a/sub").mode == 0o700  # type: ignore[union-attr]


def test_unchanged_tree_keeps_every_record_and_reads_nothing(
    root: Path, store: SnapshotStore
) -> None:
    paths = make_tree(root)
    first = trusted(store.take(root, paths))
    hashed = store.bytes_hashed
    second = store.take(root, paths, previous=first)
    assert all(a is b for a, b in zip(second.files, first.files, strict=True))
    assert store.bytes_hashed == hashed
    third = store.take(root, paths, previous=trusted(store.load(second.id)))
    assert third.files == first.files and store.bytes_hashed == hashed


def test_a_file_changed_close_to_the_previous_snapshot_is_read_again(
    root: Path, store: SnapshotStore
) -> None:
    """The racy-file rule holds in a run of trusted files: only that one is read again."""
    paths = make_tree(root)
    time.sleep(RACY_MARGIN_NS / 1e9 + 0.1)
    fresh = root / "etc/b/f03.conf"
    fresh.write_text("written just before the snapshot\n")
    first = store.take(root, paths)
    hashed = store.bytes_hashed
    second = store.take(root, paths, previous=first)
    assert store.bytes_hashed - hashed == fresh.stat().st_size
    changed = [b.path for a, b in zip(first.files, second.files, strict=True) if a is not b]
    assert changed == ["/etc/b/f03.conf"]


@pytest.mark.parametrize("before_ms", [0, 50, 1000, 1900])
def test_a_ctime_within_the_margin_is_not_trusted_however_fine(
    root: Path, store: SnapshotStore, before_ms: int
) -> None:
    """Not a clock tick's margin: write(2) stamps a file before it copies the data, and a copy
    that stalls lands after a snapshot that saw the stamp (and NFS clocks lag)."""
    paths = make_tree(root)
    fresh = root / "etc/a/f05.conf"
    taken = store.take(root, paths)
    started = (fresh.stat().st_ctime_ns + before_ms * 1_000_000) / 1e9
    first = Snapshot(taken.id, started, taken.files)
    hashed = store.bytes_hashed
    store.take(root, paths, previous=first)
    assert store.bytes_hashed - hashed >= fresh.stat().st_size


def test_a_path_twice_or_spelled_twice_is_recorded_once(root: Path, store: SnapshotStore) -> None:
    paths = make_tree(root)
    first = trusted(store.take(root, paths))
    doubled = [*paths[:5], paths[3], "/etc//a/./f02.conf", *paths[5:], paths[0]]
    second = store.take(root, doubled, previous=first)
    assert second.paths == paths
    assert all(a is b for a, b in zip(second.files, first.files, strict=True))


def test_a_lost_pack_is_stored_again(root: Path, store: SnapshotStore) -> None:
    paths = make_tree(root)
    first = trusted(store.take(root, paths))
    for _name, pack in store.objects.stored_packs():
        os.unlink(pack)
    fresh = SnapshotStore(store.directory)  # knows nothing of the pack it had written
    second = fresh.take(root, paths, previous=first)
    for record in second.files:
        if record.kind == "file":
            assert fresh.read_content(record) == (root / record.path.lstrip("/")).read_bytes()


def test_a_previous_record_of_an_own_path_is_still_refused(root: Path, tmp_path: Path) -> None:
    """The quick test looks at no path the full one would refuse: clp's own files."""
    state = root / "var/lib/clp"
    state.mkdir(parents=True)
    (state / "state.db").write_bytes(b"sqlite\n")
    (root / "var/lib/other.conf").write_text("x\n")
    paths = ["/var/lib/other.conf", "/var/lib/clp/state.db"]
    careless = SnapshotStore(tmp_path / "store")
    first = trusted(careless.take(root, paths))
    guarded = SnapshotStore(tmp_path / "store", protected={"StateDir": state})
    with pytest.raises(UnsafePathError, match="clp's own"):
        guarded.take(root, paths, previous=first)
    with pytest.raises(UnsafePathError, match="clp's own"):
        guarded.take(root, paths[1:], previous=first)


def test_a_parent_turned_into_an_escaping_symlink_is_refused(
    root: Path, store: SnapshotStore, tmp_path: Path
) -> None:
    paths = make_tree(root)
    first = trusted(store.take(root, paths))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "inner.conf").write_text("inner\n")
    os.rename(root / "etc/a/sub", tmp_path / "moved")
    (root / "etc/a/sub").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside the root"):
        store.take(root, paths, previous=first)
    assert (outside / "inner.conf").read_text() == "inner\n"


def test_a_parent_turned_into_a_symlink_inside_the_root_is_followed(
    root: Path, store: SnapshotStore
) -> None:
    paths = make_tree(root)
    first = trusted(store.take(root, paths))
    os.rename(root / "etc/a/sub", root / "etc/b/moved")
    (root / "etc/a/sub").symlink_to("../b/moved")
    second = store.take(root, paths, previous=first)
    assert second.get("/etc/a/sub").kind == "symlink"  # type: ignore[union-attr]
    inner = second.get("/etc/a/sub/inner.conf")
    assert inner is not None and store.read_content(inner) == b"inner\n"


def with_absent(paths: list[str]) -> list[str]:
    """`paths` with a .pacnew and a .pacsave beside each file of etc/a, as the hooks record
    every configuration file of a package: absent nearly always."""
    extra = [
        f"{p}.{suffix}"
        for p in paths
        if p.startswith("/etc/a/f")
        for suffix in ("pacnew", "pacsave")
    ]
    return sorted(paths + extra)


def test_absent_paths_among_unchanged_files_keep_their_records_and_read_nothing(
    root: Path, store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = with_absent(make_tree(root))
    first = trusted(store.take(root, paths))
    assert sum(r.kind == "absent" for r in first.files) == 60
    observed: list[str] = []
    observe = Observer.observe

    def counting(
        self: Observer, where: object, clean: str, *rest: object, **named: object
    ) -> object:
        observed.append(clean)
        return observe(self, where, clean, *rest, **named)  # type: ignore[arg-type]

    monkeypatch.setattr(Observer, "observe", counting)
    hashed = store.bytes_hashed
    second = store.take(root, paths, previous=first)
    assert all(a is b for a, b in zip(second.files, first.files, strict=True))
    assert store.bytes_hashed == hashed and observed == []


APPEARING: dict[str, Callable[[Path], object]] = {
    "file": lambda path: path.write_text("new\n"),
    "empty file": lambda path: path.write_bytes(b""),
    "directory": lambda path: path.mkdir(),
    "symlink": lambda path: path.symlink_to("f01.conf"),
    "dangling symlink": lambda path: path.symlink_to("nowhere"),
}


@pytest.mark.parametrize("appear", APPEARING.values(), ids=APPEARING.keys())
def test_something_at_an_absent_path_is_found(
    root: Path, store: SnapshotStore, appear: Callable[[Path], object]
) -> None:
    paths = with_absent(make_tree(root))
    first = trusted(store.take(root, paths))
    victim = "/etc/a/f07.conf.pacnew"
    appear(root / victim.lstrip("/"))
    second = store.take(root, paths, previous=first)
    record = second.get(victim)
    assert record is not None and record.kind != "absent"
    changed = [b.path for a, b in zip(first.files, second.files, strict=True) if a is not b]
    assert changed == ["/etc/a", victim]  # the directory's mtime moved too
    assert store.changed_paths(root, first) == [victim]


def test_a_special_file_at_an_absent_path_is_refused(root: Path, store: SnapshotStore) -> None:
    paths = with_absent(make_tree(root))
    first = trusted(store.take(root, paths))
    os.mkfifo(root / "etc/a/f07.conf.pacsave")
    with pytest.raises(SpecialFileError, match="fifo"):
        store.take(root, paths, previous=first)


def test_an_absent_path_whose_missing_directories_now_exist_is_recorded_again(
    root: Path, store: SnapshotStore
) -> None:
    paths = make_tree(root)
    wanted = sorted([*paths, "/etc/c/d/new.conf"])
    first = trusted(store.take(root, wanted))
    assert first.get("/etc/c/d/new.conf").created_dirs == ("/etc/c", "/etc/c/d")  # type: ignore[union-attr]
    (root / "etc/c/d").mkdir(parents=True)
    second = store.take(root, wanted, previous=first)
    record = second.get("/etc/c/d/new.conf")
    assert record is not None and record.kind == "absent" and record.created_dirs == ()
    assert store.load(second.id) == second


def test_a_lone_absent_path_keeps_its_record(root: Path, store: SnapshotStore) -> None:
    """One path of its directory (looked at by itself, not as a run)."""
    make_tree(root)
    paths = ["/etc/a/f01.conf", "/etc/b/gone.conf", "/etc/a/f02.conf"]
    first = trusted(store.take(root, paths))
    second = store.take(root, paths, previous=first)
    assert all(a is b for a, b in zip(second.files, first.files, strict=True))
    (root / "etc/b/gone.conf").write_text("here\n")
    third = store.take(root, paths, previous=trusted(second))
    assert third.get("/etc/b/gone.conf").kind == "file"  # type: ignore[union-attr]
