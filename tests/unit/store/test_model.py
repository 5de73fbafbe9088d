"""The snapshot model on its own: records to and from the manifest JSON, the words for a change."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from clp_alpm.errors import CorruptStoreError, SnapshotError, UsageError
from clp_alpm.store.manifests import Manifests
from clp_alpm.store.model import FileState, Snapshot, ancestors, depth, describe_change
from clp_alpm.store.objects import ObjectStore

DIGEST_A = "ab" * 32
DIGEST_B = "cd" * 32
SNAPSHOT_ID = "20260101T120000.000000-0123abcd"


CONF = FileState(
    "/etc/app.conf",
    "file",
    mode=0o644,
    size=12,
    mtime_ns=1_700_000_000_000_000_000,
    digest=DIGEST_A,
)


def conf(**changes: Any) -> FileState:
    """A regular config file record, 0644 root:root, with `changes` applied."""
    return replace(CONF, **changes)


def through_json(state: FileState) -> FileState:
    return FileState.from_dict(json.loads(json.dumps(state.to_dict())))


# --------------------------------------------------------------------------- records as JSON


def test_a_file_record_is_stored_with_every_field() -> None:
    state = conf(uid=33, gid=33, xattrs=(("security.capability", "0100"),), ino=7, ctime_ns=9)
    assert json.loads(json.dumps(state.to_dict())) == {
        "path": "/etc/app.conf",
        "kind": "file",
        "mode": 0o644,
        "uid": 33,
        "gid": 33,
        "mtime_ns": 1_700_000_000_000_000_000,
        "size": 12,
        "digest": DIGEST_A,
        "target": None,
        "created_dirs": [],
        "xattrs": [["security.capability", "0100"]],
        "ino": 7,
        "ctime_ns": 9,
    }


@pytest.mark.parametrize(
    "state",
    [
        conf(uid=33, gid=33, xattrs=(("user.a", ""), ("user.b", "ff00"))),
        FileState("/etc/localtime", "symlink", mode=0o777, target="../usr/share/zoneinfo/UTC"),
        FileState("/etc/ssh", "dir", mode=0o755, mtime_ns=5, xattrs=(("user.x", "01"),)),
        FileState("/etc/app/conf.d/x.conf", "absent", created_dirs=("/etc/app", "/etc/app/conf.d")),
    ],
    ids=["file", "symlink", "dir", "absent"],
)
def test_every_kind_round_trips_through_json(state: FileState) -> None:
    assert through_json(state) == state


def test_xattrs_come_back_sorted_by_name() -> None:
    data = conf().to_dict() | {"xattrs": [["user.z", "01"], ["security.selinux", "6100"]]}
    assert FileState.from_dict(data).xattrs == (("security.selinux", "6100"), ("user.z", "01"))


def test_fields_missing_from_an_older_record_default_to_zero() -> None:
    state = FileState.from_dict({"path": "/etc/gone", "kind": "absent"})
    assert state == FileState("/etc/gone", "absent")
    assert (state.mode, state.uid, state.xattrs, state.created_dirs) == (0, 0, (), ())


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"path": "/etc//app.conf"}, "path is not a normalised target path"),
        ({"path": "/etc/./app.conf"}, "path is not a normalised target path"),
        ({"path": "/etc/app.conf/"}, "path is not a normalised target path"),
        ({"path": "/"}, "path is not a normalised target path"),
        ({"path": "etc/app.conf"}, "'etc/app.conf' is not an absolute path"),
        ({"path": "/etc/\0"}, "'/etc/\\x00' is not an absolute path"),
        ({"path": "/etc/../app.conf"}, "'/etc/../app.conf' must not contain '..'"),
        ({"uid": 1.0}, "uid is not an integer"),
        ({"ino": "7"}, "ino is not an integer"),
        ({"pack": ["0" * 32, True, 10]}, "pack location is malformed"),
        ({"pack": ["0" * 32, 0, -1]}, "pack location is malformed"),
        ({"pack": ["0" * 31, 0, 1]}, "pack location is malformed"),
        ({"kind": "socket"}, "unknown kind 'socket'"),
        ({"mode": 0o10000}, "mode is out of range"),
        ({"size": -1}, "negative owner, size or inode"),
        ({"gid": False}, "gid is not an integer"),
        ({"digest": DIGEST_A.upper()}, "file record without a valid sha256 digest"),
        ({"target": "/elsewhere"}, "file record carries a symlink target"),
        ({"created_dirs": ["/etc"]}, "file record lists created directories"),
        ({"xattrs": [["user.a", "f"]]}, "xattrs holds a malformed entry"),
        ({"xattrs": {"user.a": "00"}}, "xattrs is not a list"),
    ],
)
def test_a_malformed_record_names_its_path_and_problem(changes: dict, problem: str) -> None:
    with pytest.raises(CorruptStoreError) as caught:
        FileState.from_dict(conf().to_dict() | changes)
    path = changes.get("path", "/etc/app.conf")
    assert str(caught.value) == f"snapshot record for {path!r}: {problem}"


def test_records_without_an_object_or_a_path_are_refused() -> None:
    with pytest.raises(CorruptStoreError, match="^snapshot record is not an object$"):
        FileState.from_dict(["/etc/app.conf", "file"])
    with pytest.raises(CorruptStoreError, match="^snapshot record has no path$"):
        FileState.from_dict({"kind": "file"})
    absent = {"path": "/etc/a/b", "kind": "absent", "created_dirs": ["/usr"]}
    with pytest.raises(CorruptStoreError, match="created_dirs holds a path that is not an ance"):
        FileState.from_dict(absent)
    with pytest.raises(CorruptStoreError, match="symlink record without a valid target"):
        FileState.from_dict({"path": "/etc/l", "kind": "symlink", "target": ""})
    with pytest.raises(CorruptStoreError, match="dir record carries a digest"):
        FileState.from_dict({"path": "/etc", "kind": "dir", "digest": DIGEST_A})


# --------------------------------------------------------------------------- a snapshot


def test_a_snapshot_round_trips_through_its_manifest(tmp_path: Path) -> None:
    """Written as a manifest and chunk objects, read back equal: id, time and every record."""
    files = (
        FileState("/etc", "dir", mode=0o755, mtime_ns=3),
        conf(),
        FileState("/etc/app.d/new.conf", "absent", created_dirs=("/etc/app.d",)),
        FileState("/etc/localtime", "symlink", mode=0o777, target="/usr/share/zoneinfo/UTC"),
    )
    snapshot = Snapshot(SNAPSHOT_ID, 1_767_268_800.25, files)
    for directory in ("objects", "snapshots", "tmp"):
        (tmp_path / directory).mkdir()
    manifests = Manifests(tmp_path, ObjectStore(tmp_path))
    manifests.write(snapshot)

    loaded = manifests.load(SNAPSHOT_ID)
    assert loaded == snapshot
    assert loaded.paths == ["/etc", "/etc/app.conf", "/etc/app.d/new.conf", "/etc/localtime"]
    doc = json.loads((tmp_path / "snapshots" / f"{SNAPSHOT_ID}.json").read_text())
    assert (doc["format"], doc["id"], doc["created"], doc["count"]) == (
        2,
        SNAPSHOT_ID,
        1_767_268_800.25,
        4,
    )
    assert manifests.list_ids() == [SNAPSHOT_ID]


def test_a_snapshot_finds_records_by_normalised_path() -> None:
    snapshot = Snapshot(SNAPSHOT_ID, 10.5, (conf(), FileState("/etc/gone", "absent")))
    assert snapshot.get("/etc//app.conf") == conf()
    assert snapshot.get_clean("/etc/gone") == FileState("/etc/gone", "absent")
    assert snapshot.get("/etc/other") is None
    assert snapshot.created_ns == 10_500_000_000
    with pytest.raises(UsageError):
        snapshot.get("etc/app.conf")


def test_selecting_paths_keeps_their_order_once_each() -> None:
    gone = FileState("/etc/gone", "absent")
    snapshot = Snapshot(SNAPSHOT_ID, 1.0, (conf(), gone))
    assert snapshot.select(None) == [conf(), gone]
    assert snapshot.select(["/etc/gone", "/etc/./gone", "/etc/app.conf"]) == [gone, conf()]
    only = snapshot.only(["/etc/gone"])
    assert (only.id, only.created, only.files) == (SNAPSHOT_ID, 1.0, (gone,))
    with pytest.raises(SnapshotError, match=f"^/etc/other: is not in snapshot {SNAPSHOT_ID}$"):
        snapshot.only(["/etc/gone", "/etc/other"])


def test_ancestors_and_depth_of_a_path() -> None:
    assert ancestors("/etc/app/conf.d/x.conf") == ["/etc/app/conf.d", "/etc/app", "/etc"]
    assert ancestors("/etc") == []
    records = [conf(path="/etc/a/b"), conf(path="/etc"), conf(path="/etc/a")]
    assert [r.path for r in sorted(records, key=depth)] == ["/etc", "/etc/a", "/etc/a/b"]


# --------------------------------------------------------------------------- comparing


def test_same_content_counts_xattrs_and_owner_but_not_timestamps() -> None:
    assert conf().same_content_as(conf(mtime_ns=1, ctime_ns=2, ino=3, size=99))
    assert not conf().same_content_as(conf(xattrs=(("user.a", "00"),)))
    assert not conf().same_content_as(conf(gid=1))
    assert not conf().same_content_as(conf(kind="symlink", digest=None, target="x"))


@pytest.mark.parametrize(
    ("then", "now", "words"),
    [
        (None, conf(), "created"),
        (FileState("/etc/app.conf", "absent"), conf(), "created"),
        (conf(), FileState("/etc/app.conf", "absent"), "deleted"),
        (conf(), FileState("/etc/app.conf", "symlink", target="/x"), "file replaced by a symlink"),
        (FileState("/etc/app.conf", "dir"), conf(), "dir replaced by a file"),
        (conf(), conf(digest=DIGEST_B), "content changed"),
        (conf(), conf(mode=0o600), "mode 644 -> 600"),
        (conf(mode=0o4755), conf(mode=0o755), "mode 4755 -> 755"),
        (conf(), conf(uid=1000, gid=1000), "owner 0:0 -> 1000:1000"),
        (
            conf(),
            conf(digest=DIGEST_B, mode=0o640, gid=42),
            "content changed, mode 644 -> 640, owner 0:0 -> 0:42",
        ),
        (
            FileState("/etc/l", "symlink", target="/a"),
            FileState("/etc/l", "symlink", target="/b"),
            "content changed",
        ),
        (conf(), conf(xattrs=(("user.a", "00"),)), "changed"),
    ],
)
def test_describe_change_says_what_a_user_changed(
    then: FileState | None, now: FileState, words: str
) -> None:
    assert describe_change(then, now) == words
