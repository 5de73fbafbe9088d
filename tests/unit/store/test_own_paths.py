"""The snapshot store never takes nor restores a path that resolves to clp's own files,
whatever its spelling: checked when it takes a snapshot and again when it restores one (a link
swapped in between)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clp_alpm.errors import UnsafePathError
from clp_alpm.store.snapshots import SnapshotStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "var/lib/clp").mkdir(parents=True)
    (root / "var/lib/clp/clp.db").write_bytes(b"the live state\n")
    (root / "opt/CLP/CLPR1").mkdir(parents=True)
    (root / "srv").mkdir()
    return root


@pytest.fixture
def store(root: Path) -> SnapshotStore:
    own = {"StateDir": root / "var/lib/clp", "PatchDir": root / "opt/CLP"}
    return SnapshotStore(root / "var/lib/clp/snapshots", own)


@pytest.mark.parametrize(
    ("link", "target", "declared"),
    [
        ("srv/x", "../var/lib/clp", "/srv/x/clp.db"),
        ("srv/x", "../var/lib", "/srv/x/clp/lock"),
        ("srv/x", "../var/lib/clp/snapshots", "/srv/x/objects"),
        ("srv/x", "../opt/CLP", "/srv/x/CLPR1/Install-Script.ps1"),
        ("srv/x", "../opt/CLP", "/srv/x/.trash"),
    ],
)
def test_a_path_resolving_to_clps_own_is_refused_at_snapshot_time(
    store, root, link, target, declared
):
    (root / link).symlink_to(target)
    with pytest.raises(UnsafePathError, match=r"resolves to .*, which is clp's own"):
        store.take(root, [declared])


def test_a_plain_file_directly_under_patchdir_may_be_snapshotted(store, root):
    (root / "opt/CLP/new-file.txt").write_text("clpctl's example\n")
    (root / "srv/x").symlink_to("../opt/CLP")
    snapshot = store.take(root, ["/srv/x/new-file.txt", "/opt/CLP/new-file.txt"])
    assert [f.kind for f in snapshot.files] == ["file", "file"]


def test_a_link_swapped_in_after_the_snapshot_is_refused_at_restore_time(store, root):
    (root / "srv/x").mkdir()
    snapshot = store.take(root, ["/srv/x/clp.db"])  # absent then: restoring it deletes
    shutil.rmtree(root / "srv/x")
    (root / "srv/x").symlink_to("../var/lib/clp")
    with pytest.raises(UnsafePathError, match="which is clp's own"):
        store.restore(root, snapshot)
    assert (root / "var/lib/clp/clp.db").read_bytes() == b"the live state\n"


def test_the_store_protects_itself_without_being_told(tmp_path, root):
    store = SnapshotStore(root / "var/lib/clp/snapshots")
    store.take(root, ["/srv/file"])
    (root / "srv/x").symlink_to("../var/lib/clp/snapshots")
    with pytest.raises(UnsafePathError, match=r"clp's own \(the snapshot store\)"):
        store.take(root, ["/srv/x/objects"])
