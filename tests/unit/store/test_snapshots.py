"""Snapshots against real files in a sandbox root (we run as root, so chown works)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clp_alpm.errors import (
    ClpError,
    CorruptStoreError,
    SnapshotError,
    SpecialFileError,
    UnsafePathError,
    UsageError,
)
from clp_alpm.store.model import FileState, Snapshot
from clp_alpm.store.observe import RACY_MARGIN_NS
from clp_alpm.store.snapshots import SnapshotStore
from tests.kits.paths import REPO

OLD_MTIME = 1_600_000_000_123_456_789


def host(root: Path, target: str) -> Path:
    return root / target.lstrip("/")


def write(root: Path, target: str, data: bytes = b"x\n", mode: int = 0o644) -> Path:
    path = host(root, target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def entry(path: Path) -> tuple:
    """What a user would compare: type, mode, owner, size, mtime, and content or link target."""
    st_ = os.lstat(path)
    if stat.S_ISREG(st_.st_mode):
        content: object = hashlib.sha256(path.read_bytes()).hexdigest()
    elif stat.S_ISLNK(st_.st_mode):
        content = os.readlink(path)
    else:
        content = None
    size = 0 if stat.S_ISDIR(st_.st_mode) else st_.st_size
    fmt = stat.S_IFMT(st_.st_mode)
    return (fmt, stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_gid, size, st_.st_mtime_ns, content)


def tree(root: Path, dir_mtimes: bool = True) -> dict[str, tuple]:
    """Every entry under root (not root itself), symlinks not followed."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            state = entry(path)
            if stat.S_ISDIR(state[0]) and not dir_mtimes:
                state = state[:5] + (None,) + state[6:]
            result[str(path.relative_to(root))] = state
    return result


def object_files(store: SnapshotStore) -> list[Path]:
    return [p for p in Path(store.objects_dir).rglob("*") if p.is_file()]


def object_path(store: SnapshotStore, digest: str | None) -> Path:
    assert digest is not None
    return Path(store.directory) / "objects" / digest[:2] / digest[2:]


def store_bytes(store: SnapshotStore) -> int:
    return sum(p.stat().st_size for p in Path(store.directory).rglob("*") if p.is_file())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the root that nothing may ever write into."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "victim").write_bytes(b"do not touch\n")
    return path


@pytest.fixture
def loose_store(tmp_path: Path) -> SnapshotStore:
    """A store that packs nothing: every file's content is an object of its own, as large
    files' are (and as every file's was before packs)."""
    return SnapshotStore(tmp_path / "store", packed_max=-1)


# --------------------------------------------------------------------------- round trips


def make_setuid_file(root: Path) -> Path:
    path = write(root, "/usr/bin/tool", b"#!/bin/sh\necho original\n", 0o755)
    os.chown(path, 1234, 1234)
    os.chmod(path, 0o6750)  # setuid + setgid survive only if chmod follows chown
    os.utime(path, ns=(OLD_MTIME, OLD_MTIME))
    return path


def make_plain_file(root: Path) -> Path:
    path = write(root, "/usr/bin/tool", b"plain\n", 0o644)
    os.utime(path, ns=(OLD_MTIME, OLD_MTIME))
    return path


def replace_with_symlink(path: Path) -> None:
    path.unlink()
    path.symlink_to("../../../outside/victim")  # root/usr/bin/tool -> tmp_path/outside/victim


def rewrite_same_size_keep_mtime(path: Path) -> None:
    old = path.stat()
    path.write_bytes(bytes(b ^ 1 for b in path.read_bytes()))
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))


def replace_with_empty_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


def replace_with_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


FILE_MUTATIONS: dict[str, Callable[[Path], None]] = {
    "content": lambda p: p.write_bytes(b"changed by the script\n"),
    "same-size-content-same-mtime": rewrite_same_size_keep_mtime,
    "mode": lambda p: os.chmod(p, 0o666),
    "owner-root": lambda p: os.chown(p, 0, 1234),
    "owner-1234": lambda p: os.chown(p, 1234, 4321),
    "mtime-only": lambda p: os.utime(p, ns=(5, 5)),
    "deleted": lambda p: p.unlink(),
    "symlink": replace_with_symlink,
    "empty-dir": replace_with_empty_dir,
    "fifo": replace_with_fifo,
}


@pytest.mark.parametrize("make", [make_setuid_file, make_plain_file])
@pytest.mark.parametrize("mutation", FILE_MUTATIONS.values(), ids=FILE_MUTATIONS.keys())
def test_restore_puts_back_a_file_exactly(
    root: Path, outside: Path, store: SnapshotStore, make: Callable, mutation: Callable
) -> None:
    path = make(root)
    before = tree(root, dir_mtimes=False)
    snapshot = store.take(root, ["/usr/bin/tool"])

    mutation(path)
    assert tree(root, dir_mtimes=False) != before

    assert store.restore(root, snapshot) == ["/usr/bin/tool"]
    assert tree(root, dir_mtimes=False) == before
    assert store.restore(root, snapshot) == []
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".clp-")]
    assert (outside / "victim").read_bytes() == b"do not touch\n"


def test_empty_file_round_trip(root: Path, store: SnapshotStore) -> None:
    path = write(root, "/etc/empty", b"", 0o600)
    before = entry(path)
    snapshot = store.take(root, ["/etc/empty"])
    path.write_bytes(b"not empty any more\n")
    store.restore(root, snapshot)
    assert entry(path) == before


def make_link(root: Path, target: str) -> Path:
    path = host(root, "/etc/alternatives/editor")
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    os.chown(path, 1234, 1234, follow_symlinks=False)
    os.utime(path, ns=(OLD_MTIME, OLD_MTIME), follow_symlinks=False)
    return path


def retarget(path: Path) -> None:
    path.unlink()
    path.symlink_to("/usr/bin/other")


SYMLINK_MUTATIONS: dict[str, Callable[[Path], None]] = {
    "retargeted": retarget,
    "replaced-by-file": lambda p: (p.unlink(), p.write_bytes(b"now a file\n")),
    "deleted": lambda p: p.unlink(),
    "owner": lambda p: os.chown(p, 0, 0, follow_symlinks=False),
    "mtime-only": lambda p: os.utime(p, ns=(5, 5), follow_symlinks=False),
}


@pytest.mark.parametrize("link_target", ["../../usr/bin/vim", "dangling-nowhere"])
@pytest.mark.parametrize("mutation", SYMLINK_MUTATIONS.values(), ids=SYMLINK_MUTATIONS.keys())
def test_restore_puts_back_a_symlink_exactly(
    root: Path, store: SnapshotStore, link_target: str, mutation: Callable
) -> None:
    path = make_link(root, link_target)
    before = tree(root, dir_mtimes=False)
    snapshot = store.take(root, ["/etc/alternatives/editor"])
    record = snapshot.get("/etc/alternatives/editor")
    assert record is not None and (record.kind, record.target) == ("symlink", link_target)

    mutation(path)

    assert store.restore(root, snapshot) == ["/etc/alternatives/editor"]
    assert tree(root, dir_mtimes=False) == before


def test_file_created_by_script_is_removed_with_the_dirs_it_created(
    root: Path, store: SnapshotStore
) -> None:
    (root / "opt").mkdir()
    write(root, "/opt/existing.conf")
    before = tree(root, dir_mtimes=False)
    snapshot = store.take(root, ["/opt/vendor/plugins/new.conf"])
    record = snapshot.get("/opt/vendor/plugins/new.conf")
    assert record is not None and record.kind == "absent"
    assert record.created_dirs == ("/opt/vendor", "/opt/vendor/plugins")

    write(root, "/opt/vendor/plugins/new.conf", b"created\n")

    assert store.restore(root, snapshot) == ["/opt/vendor/plugins/new.conf"]
    assert tree(root, dir_mtimes=False) == before


def test_created_dir_that_now_holds_other_files_is_kept(root: Path, store: SnapshotStore) -> None:
    (root / "opt").mkdir()
    snapshot = store.take(root, ["/opt/vendor/plugins/new.conf"])
    write(root, "/opt/vendor/plugins/new.conf")
    write(root, "/opt/vendor/someone-else.conf")

    store.restore(root, snapshot)

    assert not (root / "opt/vendor/plugins").exists()
    assert (root / "opt/vendor/someone-else.conf").exists()


def test_declared_dir_and_file_both_created_by_script_are_removed(
    root: Path, store: SnapshotStore
) -> None:
    (root / "opt").mkdir()
    snapshot = store.take(root, ["/opt/tool", "/opt/tool/bin/tool"])
    write(root, "/opt/tool/bin/tool")

    store.restore(root, snapshot)

    assert list((root / "opt").iterdir()) == []


def test_declared_path_turned_into_symlink_is_not_looked_through(
    root: Path, store: SnapshotStore
) -> None:
    write(root, "/usr/share/foo/bar", b"another package's file\n")
    (root / "opt").mkdir()
    snapshot = store.take(root, ["/opt/foo", "/opt/foo/bar"])
    (root / "opt/foo").symlink_to("../usr/share/foo")

    assert store.restore(root, snapshot) == ["/opt/foo", "/opt/foo/bar"]
    assert list((root / "opt").iterdir()) == []
    assert (root / "usr/share/foo/bar").read_bytes() == b"another package's file\n"


def test_declared_directory_replaced_by_symlink_is_recreated(
    root: Path, outside: Path, store: SnapshotStore
) -> None:
    write(root, "/etc/app.d/a.conf", b"mine\n")
    write(root, "/etc/app.d/sub/b.conf", b"mine too\n")
    before = tree(root, dir_mtimes=False)
    declared = ["/etc/app.d", "/etc/app.d/a.conf", "/etc/app.d/sub", "/etc/app.d/sub/b.conf"]
    snapshot = store.take(root, declared)
    shutil.rmtree(root / "etc/app.d")
    (outside / "a.conf").write_bytes(b"theirs\n")
    (root / "etc/app.d").symlink_to(outside)

    assert store.restore(root, snapshot) == declared
    assert tree(root, dir_mtimes=False) == before
    assert (outside / "a.conf").read_bytes() == b"theirs\n"
    assert sorted(p.name for p in outside.iterdir()) == ["a.conf", "victim"]


def test_unchanged_symlinked_directory_is_looked_through(root: Path, store: SnapshotStore) -> None:
    write(root, "/usr/lib/libfoo.so", b"v1\n")
    (root / "lib").symlink_to("usr/lib")
    snapshot = store.take(root, ["/lib", "/lib/libfoo.so"])
    write(root, "/usr/lib/libfoo.so", b"v2\n")

    assert store.restore(root, snapshot) == ["/lib/libfoo.so"]
    assert (root / "usr/lib/libfoo.so").read_bytes() == b"v1\n"


def test_non_empty_directory_where_nothing_was_is_refused(root: Path, store: SnapshotStore) -> None:
    (root / "srv").mkdir()
    snapshot = store.take(root, ["/srv/data", "/srv/app.conf"])
    write(root, "/srv/data/precious.db", b"user data\n")
    write(root, "/srv/app.conf")

    with pytest.raises(UnsafePathError, match=r"/srv/data: .*not empty"):
        store.restore(root, snapshot)
    assert (root / "srv/data/precious.db").read_bytes() == b"user data\n"
    assert (root / "srv/app.conf").exists(), "refused before anything was written"


def test_declared_directory_gets_mode_owner_mtime_back_without_recursing(
    root: Path, store: SnapshotStore
) -> None:
    conf_d = root / "etc/app.d"
    conf_d.mkdir(parents=True)
    os.chown(conf_d, 1234, 1234)
    os.chmod(conf_d, 0o2750)
    write(root, "/etc/app.d/10-default.conf", b"a\n")
    os.utime(conf_d, ns=(OLD_MTIME, OLD_MTIME))
    before = entry(conf_d)
    snapshot = store.take(root, ["/etc/app.d"])
    assert snapshot.files[0].kind == "dir"

    os.chmod(conf_d, 0o777)
    write(root, "/etc/app.d/20-script.conf", b"b\n")

    assert store.restore(root, snapshot) == ["/etc/app.d"]
    assert entry(conf_d) == before
    assert (conf_d / "20-script.conf").exists(), "a directory record does not recurse"

    (conf_d / "20-script.conf").unlink()
    (conf_d / "10-default.conf").unlink()
    conf_d.rmdir()
    store.restore(root, snapshot)
    assert entry(conf_d) == before


def test_parent_directory_mtime_survives_restoring_a_file_in_it(
    root: Path, store: SnapshotStore
) -> None:
    write(root, "/etc/app.d/a.conf", b"a\n")
    os.utime(root / "etc/app.d", ns=(OLD_MTIME, OLD_MTIME))
    before = tree(root)
    snapshot = store.take(root, ["/etc/app.d", "/etc/app.d/a.conf"])
    (root / "etc/app.d/a.conf").unlink()

    assert store.restore(root, snapshot) == ["/etc/app.d", "/etc/app.d/a.conf"]
    assert tree(root)["etc/app.d"] == before["etc/app.d"]


def test_restore_of_selected_paths_only(root: Path, store: SnapshotStore) -> None:
    write(root, "/etc/a", b"a\n")
    write(root, "/etc/b", b"b\n")
    snapshot = store.take(root, ["/etc/a", "/etc/b"])
    write(root, "/etc/a", b"A\n")
    write(root, "/etc/b", b"B\n")

    assert store.restore(root, snapshot, ["/etc//b"]) == ["/etc/b"]
    assert (root / "etc/a").read_bytes() == b"A\n"
    assert (root / "etc/b").read_bytes() == b"b\n"
    with pytest.raises(SnapshotError, match="/etc/c: is not in snapshot"):
        store.restore(root, snapshot, ["/etc/c"])


def test_missing_parent_directories_are_recreated(root: Path, store: SnapshotStore) -> None:
    write(root, "/opt/app/conf/x.conf", b"x\n", 0o640)
    snapshot = store.take(root, ["/opt/app/conf/x.conf"])
    shutil.rmtree(root / "opt/app")

    store.restore(root, snapshot)
    assert (root / "opt/app/conf/x.conf").read_bytes() == b"x\n"
    assert stat.S_IMODE((root / "opt/app/conf").stat().st_mode) == 0o755


def test_parent_that_is_no_longer_a_directory_is_refused(root: Path, store: SnapshotStore) -> None:
    write(root, "/etc/app/x.conf", b"x\n")
    write(root, "/etc/b.conf", b"b\n")
    snapshot = store.take(root, ["/etc/b.conf", "/etc/app/x.conf"])
    shutil.rmtree(root / "etc/app")
    write(root, "/etc/app", b"a file now\n")
    write(root, "/etc/b.conf", b"changed\n")

    with pytest.raises(
        UnsafePathError, match="/etc/app/x.conf: .*/etc/app is no longer a directory"
    ):
        store.restore(root, snapshot)
    assert (root / "etc/b.conf").read_bytes() == b"changed\n"


def test_metadata_of_other_hard_links_is_left_alone(
    root: Path, outside: Path, store: SnapshotStore
) -> None:
    path = write(root, "/etc/a.conf", b"a\n", 0o644)
    snapshot = store.take(root, ["/etc/a.conf"])
    os.chmod(path, 0o600)
    os.link(path, outside / "hardlink")

    store.restore(root, snapshot)
    assert entry(path)[1] == 0o644
    assert stat.S_IMODE((outside / "hardlink").stat().st_mode) == 0o600


def test_missing_root_is_refused(tmp_path: Path, store: SnapshotStore) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        store.take(tmp_path / "no-such-root", ["/etc/a.conf"])


def test_large_file_round_trip(root: Path, store: SnapshotStore) -> None:
    data = os.urandom(50 * 1024 * 1024)
    path = write(root, "/usr/lib/libbig.so", data, 0o755)
    before = entry(path)
    snapshot = store.take(root, ["/usr/lib/libbig.so"])
    assert store.bytes_hashed == len(data)

    with open(path, "r+b") as handle:
        handle.truncate(10 * 1024 * 1024)
        handle.seek(0)
        handle.write(b"patched")

    store.restore(root, snapshot)
    assert entry(path) == before


# --------------------------------------------------------------------------- root safety


def test_symlink_leading_outside_is_recorded_not_followed(root: Path, store: SnapshotStore) -> None:
    passwd_before = entry(Path("/etc/passwd"))
    link = host(root, "/etc/passwd")
    link.parent.mkdir()
    link.symlink_to("/etc/passwd")
    snapshot = store.take(root, ["/etc/passwd"])
    assert store.bytes_hashed == 0, "the host's /etc/passwd must not be read"
    assert snapshot.files[0].kind == "symlink"

    link.unlink()
    link.write_bytes(b"root::0:0::/root:/bin/sh\n")
    store.restore(root, snapshot)

    assert os.readlink(link) == "/etc/passwd"
    assert entry(Path("/etc/passwd")) == passwd_before


def test_restore_replaces_a_symlink_instead_of_writing_through_it(
    root: Path, outside: Path, store: SnapshotStore
) -> None:
    path = write(root, "/etc/motd", b"welcome\n")
    snapshot = store.take(root, ["/etc/motd"])
    victim_before = entry(outside / "victim")

    path.unlink()
    path.symlink_to(outside / "victim")
    assert store.changed_paths(root, snapshot) == ["/etc/motd"]
    store.restore(root, snapshot)

    assert not path.is_symlink() and path.read_bytes() == b"welcome\n"
    assert entry(outside / "victim") == victim_before


@pytest.mark.parametrize("how", ["absolute", "relative"])
def test_parent_symlink_escaping_root_is_refused(
    root: Path, outside: Path, store: SnapshotStore, how: str
) -> None:
    (root / "etc").symlink_to(outside if how == "absolute" else "../outside")

    with pytest.raises(
        UnsafePathError, match=r"/etc/victim: /etc is a symlink .* outside the root"
    ):
        store.take(root, ["/etc/victim"])
    with pytest.raises(UnsafePathError):
        store.current_state(root, "/etc/victim")
    assert store.bytes_hashed == 0


def test_restore_through_parent_that_became_an_escaping_symlink_is_refused(
    root: Path, outside: Path, store: SnapshotStore
) -> None:
    write(root, "/etc/victim", b"inside\n")
    snapshot = store.take(root, ["/etc/victim"])
    shutil.rmtree(root / "etc")
    (root / "etc").symlink_to(outside)

    with pytest.raises(UnsafePathError, match="outside the root"):
        store.restore(root, snapshot)
    assert (outside / "victim").read_bytes() == b"do not touch\n"


def test_parent_symlink_inside_root_is_followed(root: Path, store: SnapshotStore) -> None:
    write(root, "/usr/lib/libfoo.so", b"v1\n")
    (root / "lib").symlink_to("usr/lib")
    snapshot = store.take(root, ["/lib/libfoo.so"])
    write(root, "/usr/lib/libfoo.so", b"v2\n")

    assert store.restore(root, snapshot) == ["/lib/libfoo.so"]
    assert (root / "usr/lib/libfoo.so").read_bytes() == b"v1\n"
    assert (root / "lib").is_symlink()


def test_special_files_are_refused(root: Path, store: SnapshotStore) -> None:
    (root / "run").mkdir()
    os.mkfifo(root / "run/pipe")
    with pytest.raises(SpecialFileError, match=r"/run/pipe: is a fifo"):
        store.take(root, ["/run/pipe"])
    with pytest.raises(SpecialFileError, match="fifo"):
        store.current_state(root, "/run/pipe")
    os.mknod(root / "run/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(SpecialFileError, match="character device"):
        store.take(root, ["/run/null"])


def test_root_itself_and_bad_paths_are_refused(root: Path, store: SnapshotStore) -> None:
    with pytest.raises(UnsafePathError):
        store.take(root, ["/"])
    with pytest.raises(UsageError):
        store.take(root, ["/etc/../../x"])
    with pytest.raises(UsageError):
        store.take(root, ["etc/relative"])


# --------------------------------------------------------------------------- changed_paths


def test_changed_paths_reports_exactly_the_changed_ones(root: Path, store: SnapshotStore) -> None:
    for name in "abcd":
        write(root, f"/etc/{name}.conf", name.encode())
    (root / "etc/app.d").mkdir()
    (root / "run").mkdir()
    declared = [
        "/etc/a.conf",
        "/etc/b.conf",
        "/etc/c.conf",
        "/etc/d.conf",
        "/etc/new.conf",
        "/etc/app.d",
        "/run/pipe",
    ]
    snapshot = store.take(root, declared)

    write(root, "/etc/a.conf", b"changed")  # content
    os.chmod(root / "etc/b.conf", 0o600)  # mode
    os.utime(root / "etc/c.conf", ns=(5, 5))  # mtime only: not a change
    (root / "etc/d.conf").unlink()  # deleted
    write(root, "/etc/new.conf")  # created
    write(root, "/etc/app.d/x.conf")  # dir mtime only: not a change
    os.mkfifo(root / "run/pipe")  # a fifo where nothing was

    changed = store.changed_paths(root, snapshot)
    assert changed == ["/etc/a.conf", "/etc/b.conf", "/etc/d.conf", "/etc/new.conf", "/run/pipe"]


def test_current_state_matches_take_and_writes_nothing(root: Path, store: SnapshotStore) -> None:
    write(root, "/etc/a.conf", b"hello")
    state = store.current_state(root, "/etc//a.conf")
    assert state.path == "/etc/a.conf" and state.kind == "file"
    assert state.digest == hashlib.sha256(b"hello").hexdigest() and state.size == 5
    assert not Path(store.directory).exists()
    assert store.current_state(root, "/etc/none/x").created_dirs == ("/etc/none",)
    assert state.same_content_as(store.take(root, ["/etc/a.conf"]).files[0])


# --------------------------------------------------------------------------- deduplication


def test_second_snapshot_of_unchanged_tree_reads_nothing_and_adds_almost_nothing(
    root: Path, store: SnapshotStore
) -> None:
    paths = []
    for i in range(2000):
        target = f"/etc/many/d{i % 40:02d}/f{i:04d}.conf"
        write(root, target, os.urandom(200 + i % 700))
        paths.append(target)
    total = sum(host(root, p).stat().st_size for p in paths)
    # Stat data of files written this recently is not trusted (same-tick rewrites).
    time.sleep(RACY_MARGIN_NS / 1e9 + 0.1)

    first = store.take(root, paths)
    assert store.bytes_hashed == total
    objects_after_first = len(object_files(store))
    bytes_after_first = store_bytes(store)

    second = store.take(root, paths, previous=first)
    assert store.bytes_hashed == total, "no file content was read again"
    assert len(object_files(store)) == objects_after_first
    added = store_bytes(store) - bytes_after_first
    assert added < bytes_after_first / 100
    assert [s.digest for s in second.files] == [s.digest for s in first.files]
    assert store.load(second.id) == second

    # A rewrite with the same size and the old mtime put back still changes ctime: re-read.
    victim = host(root, paths[7])
    old = victim.stat()
    victim.write_bytes(bytes(b ^ 0xFF for b in victim.read_bytes()))
    os.utime(victim, ns=(old.st_atime_ns, old.st_mtime_ns))
    third = store.take(root, paths, previous=second)
    assert store.bytes_hashed == total + old.st_size
    assert third.files[7].digest != second.files[7].digest
    assert store.changed_paths(root, second) == [paths[7]]


def test_recently_written_files_are_read_again(root: Path, store: SnapshotStore) -> None:
    write(root, "/etc/fresh.conf", b"12345")
    first = store.take(root, ["/etc/fresh.conf"])
    store.take(root, ["/etc/fresh.conf"], previous=first)
    assert store.bytes_hashed == 10


def test_identical_content_is_stored_once(root: Path, loose_store: SnapshotStore) -> None:
    for i in range(20):
        write(root, f"/etc/same{i}", b"same content\n")
    loose_store.take(root, [f"/etc/same{i}" for i in range(20)])
    contents = [p.read_bytes() for p in object_files(loose_store)]
    assert contents.count(b"same content\n") == 1


# --------------------------------------------------------------------------- store integrity


def test_store_is_private(root: Path, store: SnapshotStore) -> None:
    write(root, "/etc/shadow", b"root:$6$secret:::\n", 0o600)
    store.take(root, ["/etc/shadow"])
    for path in [Path(store.directory), *Path(store.directory).rglob("*")]:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_corrupted_object_is_detected_and_nothing_is_written(
    root: Path, loose_store: SnapshotStore
) -> None:
    write(root, "/etc/a.conf", b"a original\n")
    write(root, "/etc/b.conf", b"b original\n")
    snapshot = loose_store.take(root, ["/etc/a.conf", "/etc/b.conf"])
    write(root, "/etc/a.conf", b"a changed\n")
    write(root, "/etc/b.conf", b"b changed\n")
    digest = snapshot.get("/etc/b.conf").digest
    object_path(loose_store, digest).write_bytes(b"b 0riginal\n")  # same size, one byte off

    with pytest.raises(CorruptStoreError, match=digest[2:]):
        loose_store.restore(root, snapshot)
    assert (root / "etc/a.conf").read_bytes() == b"a changed\n"
    assert (root / "etc/b.conf").read_bytes() == b"b changed\n"

    object_path(loose_store, digest).unlink()
    with pytest.raises(CorruptStoreError, match=f"object {digest} is missing"):
        loose_store.restore(root, snapshot)
    assert (root / "etc/a.conf").read_bytes() == b"a changed\n"

    assert loose_store.restore(root, snapshot, ["/etc/a.conf"]) == ["/etc/a.conf"]
    assert (root / "etc/a.conf").read_bytes() == b"a original\n"


def test_a_new_snapshot_heals_a_truncated_object(root: Path, loose_store: SnapshotStore) -> None:
    write(root, "/etc/a.conf", b"content\n")
    first = loose_store.take(root, ["/etc/a.conf"])
    object_path(loose_store, first.files[0].digest).write_bytes(b"")
    second = loose_store.take(root, ["/etc/a.conf"])
    write(root, "/etc/a.conf", b"other\n")
    loose_store.restore(root, second)
    assert (root / "etc/a.conf").read_bytes() == b"content\n"


def test_load_round_trip_and_hostile_ids(root: Path, store: SnapshotStore) -> None:
    write(root, "/etc/a.conf")
    (root / "etc/link").symlink_to("a.conf")
    snapshot = store.take(root, ["/etc/a.conf", "/etc/link", "/etc", "/etc/new/x"])
    assert store.load(snapshot.id) == snapshot
    assert store.list_ids() == [snapshot.id]
    with pytest.raises(UsageError):
        store.load("../../etc/passwd")
    with pytest.raises(SnapshotError, match="no snapshot"):
        store.load("20240101T000000.000000-deadbeef")


def test_damaged_manifest_is_reported(root: Path, store: SnapshotStore) -> None:
    write(root, "/etc/a.conf")
    snapshot = store.take(root, ["/etc/a.conf"])
    manifest = Path(store.snapshots_dir) / f"{snapshot.id}.json"
    manifest.write_text("{not json")
    with pytest.raises(CorruptStoreError, match=f"{snapshot.id}.json: is not valid JSON"):
        store.load(snapshot.id)
    with pytest.raises(CorruptStoreError):
        store.gc()
    assert object_files(store), "gc deleted nothing it could not account for"


def plant_stray(store: SnapshotStore) -> Path:
    """An object no snapshot names, as a take killed before its manifest leaves."""
    stray = object_path(store, hashlib.sha256(b"stray").hexdigest())
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"stray")
    return stray


def test_prune_reads_the_whole_store_only_when_something_may_be_unreferenced(
    root: Path, store: SnapshotStore
) -> None:
    """Every writing command prunes: after a whole gc, and until a snapshot is forgotten or
    deleted or a take fails, nothing can be unreferenced and prune skips the gc."""
    write(root, "/etc/a.conf", b"version 1\n")
    first = store.take(root, ["/etc/a.conf"])
    assert not Path(store.gc_clean).exists()  # a store that never collected: the first prune does
    stray = plant_stray(store)
    assert store.prune({first.id}) == 0 and not stray.exists() and Path(store.gc_clean).is_file()

    stray = plant_stray(store)  # (a SIGKILLed take: nothing could mark it)
    damaged = Path(store.snapshots_dir) / f"{first.id}.json"
    saved = damaged.read_bytes()
    damaged.write_text("{not json")  # a gc would refuse to go on: prune did not read it
    assert store.prune({first.id}) == 0 and stray.exists()
    damaged.write_bytes(saved)

    write(root, "/etc/a.conf", b"version 2\n")
    second = store.take(root, ["/etc/a.conf"])
    store.forget([first.id])  # as the pacman hooks forget beyond HistoryLimit
    assert not Path(store.gc_clean).exists()
    assert store.prune({second.id}) == 0
    assert not stray.exists() and not object_path(store, first.files[0].digest).exists()
    assert store.read_content(store.load(second.id).files[0]) == b"version 2\n"


def test_a_failed_take_and_a_delete_leave_the_next_prune_a_whole_gc(
    root: Path, store: SnapshotStore
) -> None:
    write(root, "/etc/a.conf")
    kept = store.take(root, ["/etc/a.conf"])
    store.prune({kept.id})
    assert Path(store.gc_clean).is_file()
    os.mkfifo(root / "etc/fifo")
    with pytest.raises(SnapshotError):
        store.take(root, ["/etc/a.conf", "/etc/fifo"])
    assert not Path(store.gc_clean).exists()
    store.prune({kept.id})
    other = store.take(root, ["/etc/a.conf"])
    assert Path(store.gc_clean).is_file()
    store.delete(other.id)  # its own whole gc, which stamps the store clean again
    assert Path(store.gc_clean).is_file() and store.load(kept.id).files == kept.files


PRUNE_ALL = """
import sys
from pathlib import Path
from clp_alpm.store.snapshots import SnapshotStore
store = SnapshotStore(Path(sys.argv[1]))
print(store.prune(set(store.list_ids())))
"""


@pytest.mark.parametrize("what", ["fifo", "directory", "symlink"])
def test_something_else_at_the_stamps_path_never_hangs_or_stops_a_prune(
    root: Path, store: SnapshotStore, what: str
) -> None:
    """A FIFO is not opened for a reader that never comes, a directory that cannot be
    removed stops no forget, and neither (nor a link) counts as the stamp: prune collects."""
    write(root, "/etc/a.conf")
    first = store.take(root, ["/etc/a.conf"])
    second = store.take(root, ["/etc/a.conf"])
    {"fifo": os.mkfifo, "directory": os.mkdir,
     "symlink": lambda path: os.symlink("/etc/passwd", path)}[what](store.gc_clean)  # fmt: skip
    stray = plant_stray(store)
    store.forget([first.id])
    assert not (Path(store.snapshots_dir) / f"{first.id}.json").exists()
    pruned = subprocess.run([sys.executable, "-c", PRUNE_ALL, str(store.directory)],
                            capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(REPO)})  # fmt: skip
    assert pruned.returncode == 0 and pruned.stdout.strip() == "0", pruned.stderr
    assert not stray.exists() and store.load(second.id).files == second.files


def test_a_compose_that_fails_leaves_the_next_prune_a_whole_gc(
    root: Path, store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(root, "/etc/a.conf")
    kept = store.take(root, ["/etc/a.conf"])
    store.prune({kept.id})
    assert Path(store.gc_clean).is_file()

    def full_disk(*_args: object, **_kwargs: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("clp_alpm.store.manifests.write_temp", full_disk)  # the manifest's turn
    with pytest.raises(OSError):
        store.compose(kept.files, kept.created)
    monkeypatch.undo()
    assert not Path(store.gc_clean).exists()
    assert store.prune({kept.id}) == 0 and Path(store.gc_clean).is_file()


def test_snapshot_ids_sort_by_time(root: Path, store: SnapshotStore) -> None:
    write(root, "/etc/a.conf")
    ids = [store.take(root, ["/etc/a.conf"]).id for _ in range(5)]
    assert len(set(ids)) == 5 and sorted(ids) == ids == store.list_ids()


def test_gc_removes_unreferenced_objects_only(root: Path, loose_store: SnapshotStore) -> None:
    path = write(root, "/etc/a.conf", b"version 1\n")
    write(root, "/etc/shared.conf", b"shared\n")
    first = loose_store.take(root, ["/etc/a.conf", "/etc/shared.conf"])
    path.write_bytes(b"version 2\n")
    second = loose_store.take(root, ["/etc/a.conf", "/etc/shared.conf"])
    assert loose_store.gc() == 0

    stray = hashlib.sha256(b"stray").hexdigest()
    object_path(loose_store, stray).parent.mkdir(exist_ok=True)
    object_path(loose_store, stray).write_bytes(b"stray")
    assert loose_store.gc() == 1
    assert not object_path(loose_store, stray).exists()

    loose_store.delete(first.id)
    assert not object_path(loose_store, first.files[0].digest).exists()
    for state in second.files:
        assert object_path(loose_store, state.digest).exists()
    with pytest.raises(SnapshotError):
        loose_store.load(first.id)
    path.write_bytes(b"version 3\n")
    loose_store.restore(root, loose_store.load(second.id))
    assert path.read_bytes() == b"version 2\n"
    with pytest.raises(SnapshotError, match="no snapshot"):
        loose_store.delete(first.id)


# --------------------------------------------------------------------------- FileState


def test_file_state_round_trips_through_dict() -> None:
    state = FileState("/etc/x/y", "absent", created_dirs=("/etc/x",), mtime_ns=-5, ino=3)
    assert FileState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    link = FileState("/a/b/c", "symlink", mode=0o777, uid=5, target="../x")
    assert FileState.from_dict(link.to_dict()) == link


@pytest.mark.parametrize(
    "changes",
    [
        {"path": "/etc/../shadow"},
        {"path": "etc/x"},
        {"path": "/"},
        {"kind": "fifo"},
        {"digest": "zz" * 32},
        {"digest": None},
        {"mode": 0o17777},
        {"uid": -1},
        {"uid": True},
        {"target": "/x"},
        {"created_dirs": ["/elsewhere"]},
    ],
)
def test_file_state_rejects_malformed_records(changes: dict) -> None:
    good = FileState("/etc/x", "file", mode=0o644, digest="ab" * 32).to_dict()
    assert FileState.from_dict(good).digest == "ab" * 32
    with pytest.raises(CorruptStoreError):
        FileState.from_dict({**good, **changes})


def test_same_content_ignores_timestamps() -> None:
    a = FileState("/x", "file", mode=0o644, digest="ab" * 32, mtime_ns=1, ctime_ns=1, ino=1)
    assert a.same_content_as(FileState("/x", "file", mode=0o644, digest="ab" * 32, mtime_ns=2))
    assert not a.same_content_as(FileState("/x", "file", mode=0o600, digest="ab" * 32))
    assert not a.same_content_as(FileState("/x", "file", mode=0o644, digest="cd" * 32))
    assert not a.same_content_as(FileState("/x", "file", mode=0o644, uid=1, digest="ab" * 32))


# --------------------------------------------------------------------------- property test

TREE_FILES = ["a", "b", "d1/a", "d1/b", "d1/d2/c", "d3/e"]
TREE_DIRS = ["d1", "d1/d2", "d3"]
ABSENT = ["new", "d1/new", "n1/n2/new"]
DECLARED = TREE_FILES + TREE_DIRS + ABSENT
OPS = ["write", "chmod", "chown", "delete", "symlink", "touch"]

file_specs = st.tuples(st.binary(max_size=64), st.integers(0, 0o7777), st.integers(0, 2000))
trees = st.dictionaries(st.sampled_from(TREE_FILES), file_specs, min_size=1)
mutations = st.lists(
    st.tuples(st.sampled_from(OPS), st.sampled_from(DECLARED), st.binary(max_size=32)),
    min_size=1,
    max_size=8,
)


def build_tree(root: Path, files: dict[str, tuple[bytes, int, int]]) -> None:
    for rel, (data, mode, uid) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chown(path, uid, uid)
        os.chmod(path, mode)
        os.utime(path, ns=(OLD_MTIME + uid, OLD_MTIME + uid))
    for rel in sorted(TREE_DIRS, key=len, reverse=True):
        if (root / rel).is_dir():
            os.chmod(root / rel, 0o750)
            os.utime(root / rel, ns=(OLD_MTIME, OLD_MTIME))


def mutate(root: Path, victim: Path, op: str, rel: str, data: bytes) -> None:
    """One thing a script might do; impossible ones (a file under a file) just do nothing."""
    with contextlib.suppress(FileExistsError, NotADirectoryError):
        mutate_or_fail(root, victim, op, rel, data)


def mutate_or_fail(root: Path, victim: Path, op: str, rel: str, data: bytes) -> None:
    path = root / rel
    exists = os.path.lexists(path)
    is_dir = path.is_dir() and not path.is_symlink()
    if op == "write" and not is_dir:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_bytes(data)
    elif op == "chmod" and exists and not path.is_symlink():
        os.chmod(path, (data[0] if data else 0) * 16 % 0o10000)
    elif op == "chown" and exists:
        os.chown(path, 3000 + len(data), 3000, follow_symlinks=False)
    elif op == "delete" and exists and not is_dir:
        path.unlink()
    elif op == "symlink" and not is_dir:
        path.parent.mkdir(parents=True, exist_ok=True)
        if exists:
            path.unlink()
        path.symlink_to(victim if data[:1] < b"\x80" else "../../../victim")
    elif op == "touch" and exists:
        os.utime(path, ns=(len(data), len(data)), follow_symlinks=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=trees, ops=mutations)
def test_restore_undoes_any_mutation(files: dict, ops: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        victim = Path(tmp) / "victim"
        victim.write_bytes(b"outside\n")
        build_tree(root, files)
        declared = ["/" + rel for rel in DECLARED]
        before = tree(root)
        store = SnapshotStore(Path(tmp) / "store")
        snapshot = store.take(root, declared)

        for op, rel, data in ops:
            mutate(root, victim, op, rel, data)
        store.restore(root, snapshot)

        assert tree(root) == before
        assert victim.read_bytes() == b"outside\n"
        assert store.changed_paths(root, snapshot) == []
        assert store.restore(root, snapshot) == []


def test_errors_are_clp_errors() -> None:
    for error in (SnapshotError, UnsafePathError, SpecialFileError, CorruptStoreError):
        assert issubclass(error, ClpError)


# -- extended attributes (file capabilities, ACLs, labels) -------------------------------------


def _set_capability(path: Path) -> bytes:
    """cap_net_raw+ep as the kernel stores it (VFS_CAP_REVISION_2)."""
    value = bytes.fromhex("0100000200200000000000000000000000000000")
    os.setxattr(path, "security.capability", value)
    return value


def test_xattrs_and_file_capabilities_are_restored(tmp_path: Path) -> None:
    root = tmp_path / "root"
    tool = root / "usr/bin/tool"
    tool.parent.mkdir(parents=True)
    tool.write_bytes(b"\x7fELF tool")
    tool.chmod(0o755)
    capability = _set_capability(tool)
    os.setxattr(tool, "user.keep", b"yes")
    store = SnapshotStore(tmp_path / "store")
    snapshot = store.take(root, ["/usr/bin/tool"])

    tool.write_bytes(b"replaced")  # a rewrite keeps user.* but the kernel drops the capability
    os.chown(tool, 1234, 1234)
    os.removexattr(tool, "user.keep")
    os.setxattr(tool, "user.new", b"1")
    assert store.changed_paths(root, snapshot) == ["/usr/bin/tool"]

    store.restore(root, snapshot)
    assert os.getxattr(tool, "security.capability") == capability
    assert os.getxattr(tool, "user.keep") == b"yes"
    assert "user.new" not in os.listxattr(tool)
    assert tool.read_bytes() == b"\x7fELF tool"
    assert store.changed_paths(root, snapshot) == []


def test_an_xattr_change_alone_counts_as_a_change(tmp_path: Path) -> None:
    root = tmp_path / "root"
    conf = root / "etc/x.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("x")
    store = SnapshotStore(tmp_path / "store")
    snapshot = store.take(root, ["/etc/x.conf", "/etc"])
    os.setxattr(conf, "user.mark", b"1")
    os.setxattr(conf.parent, "user.mark", b"1")
    assert sorted(store.changed_paths(root, snapshot)) == ["/etc", "/etc/x.conf"]
    store.restore(root, snapshot)
    assert os.listxattr(conf) == [] and os.listxattr(conf.parent) == []


def test_a_long_snapshot_reports_progress_and_a_short_one_does_not(
    root: Path, store: SnapshotStore
) -> None:
    (root / "etc/many").mkdir(parents=True)
    paths = []
    for number in range(1200):
        (root / f"etc/many/{number}.conf").write_text(f"{number}\n")
        paths.append(f"/etc/many/{number}.conf")
    heard: list[int] = []
    snapshot = store.take(root, paths, progress=heard.append)
    assert heard == [500, 1000, 1200] and len(snapshot.files) == 1200
    quiet: list[int] = []
    store.take(root, paths[:10], progress=quiet.append)
    assert quiet == []


def test_batched_syncs_leave_every_object_readable(root: Path, store: SnapshotStore) -> None:
    """Many new objects are synced once per snapshot (syncfs): each must be intact."""
    (root / "etc").mkdir(exist_ok=True)
    paths = []
    for number in range(150):  # above SYNCFS_ABOVE: one syncfs
        (root / f"etc/{number}.conf").write_text(f"value {number}\n")
        paths.append(f"/etc/{number}.conf")
    snapshot = store.take(root, paths)
    reloaded = store.load(snapshot.id)
    for state in reloaded.files:
        assert store.read_content(state) == f"value {state.path[5:-5]}\n".encode()
    assert store.objects._staged == {} and not store.objects._batch


def test_a_lost_object_is_stored_again_by_the_next_snapshot(
    root: Path, loose_store: SnapshotStore
) -> None:
    """The stat shortcut trusts a matching record only while its object is in the store."""
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/a.conf").write_text("a\n")
    first = loose_store.take(root, ["/etc/a.conf"])
    digest = first.get("/etc/a.conf").digest
    os.unlink(loose_store.objects.path(digest))
    # a record old enough to be trusted: only the missing object makes clp read the file
    trusted = Snapshot(first.id, first.created + 10, first.files)
    hashed = loose_store.bytes_hashed
    second = loose_store.take(root, ["/etc/a.conf"], previous=trusted)
    assert loose_store.bytes_hashed == hashed + 2
    assert loose_store.read_content(second.get("/etc/a.conf")) == b"a\n"


def test_a_large_snapshot_lists_the_objects_once(root: Path, store: SnapshotStore) -> None:
    (root / "etc/many").mkdir(parents=True)
    paths = []
    for number in range(2100):
        (root / f"etc/many/{number}.conf").write_text(f"{number % 7}\n")  # duplicates too
        paths.append(f"/etc/many/{number}.conf")
    first = store.take(root, paths)
    assert len({s.digest for s in first.files}) == 7
    second = store.take(root, paths, previous=first)
    for state in second.files:
        number = int(Path(state.path).stem)
        assert store.read_content(state) == f"{number % 7}\n".encode()
    assert not list(Path(store.tmp_dir).iterdir())  # every staged temp file was named or dropped
