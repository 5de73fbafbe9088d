"""clp_alpm.formats: unpacking a zip while it is inspected (the one read of `clp apply`), and
copying what was unpacked to another directory."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from clp_alpm.errors import OperationFailed, PatchFormatError
from clp_alpm.formats.archive import DEFAULT_LIMITS
from clp_alpm.formats.extract import Unpacker, copy_tree, extract_patch
from clp_alpm.formats.inspect import inspect_patch
from tests.kits.patchkit import (
    ARCHIVE_NAME,
    HOSTILE_CASES,
    ZIP_STRUCTURE_CASES,
    ZipItem,
    good_tar_items,
    good_zip_items,
    listing,
    make_targz,
    make_zip,
    patch_files,
    private_dir,
    set_zip_field,
    zip_bytes,
    zip_items,
)


def tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """{relative path: (mode, content)} of everything under root, links not followed."""
    result: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        result[str(path.relative_to(root))] = (
            st.st_mode,
            path.read_bytes() if stat.S_ISREG(st.st_mode) else None,
        )
    return result


PAYLOAD = {
    "payload/big.bin": os.urandom(700_000),
    "usr/local/bin/tool": b"#!/bin/sh\necho tool\n",
    "etc/deep/er/file.conf": b"key = value\n",
}


def _unpack(path: Path, dest: Path):
    with Unpacker(private_dir(dest), path.name) as sink:
        try:
            return inspect_patch(path, sink=sink), sink.started
        except BaseException:
            sink.discard()
            raise


@pytest.mark.parametrize("prefix", ["", "CLPR261125/"])
def test_unpacking_while_inspecting_writes_what_extraction_writes(tmp_path, prefix):
    files = patch_files(payload=PAYLOAD)
    items = zip_items(files, prefix)
    if prefix:
        items.insert(0, ZipItem(prefix, b"", mode=stat.S_IFDIR | 0o755))
    path = make_zip(tmp_path / ARCHIVE_NAME, items)

    archive, started = _unpack(path, tmp_path / "unpacked")

    assert started
    assert archive == inspect_patch(path)
    extract_patch(archive, private_dir(tmp_path / "extracted"))
    assert tree(tmp_path / "unpacked") == tree(tmp_path / "extracted")
    assert (tmp_path / "unpacked/payload/big.bin").read_bytes() == PAYLOAD["payload/big.bin"]


def test_a_damaged_member_is_refused_and_what_was_unpacked_removed(tmp_path):
    items = [*good_zip_items(), ZipItem("payload/big.bin", os.urandom(700_000))]
    path = tmp_path / ARCHIVE_NAME
    path.write_bytes(set_zip_field(zip_bytes(items), "payload/big.bin", crc=0xDEADBEEF))

    with pytest.raises(PatchFormatError, match="'payload/big.bin' fails its check: Bad CRC-32"):
        _unpack(path, tmp_path / "unpacked")

    assert listing(tmp_path / "unpacked") == []


@pytest.mark.parametrize("case", [*HOSTILE_CASES, *ZIP_STRUCTURE_CASES], ids=lambda case: case.id)
def test_every_hostile_archive_is_refused_alike_with_a_sink_and_nothing_stays(tmp_path, case):
    """The one check, with or without unpacking: the same refusal, and nothing written stays."""
    path = tmp_path / ARCHIVE_NAME
    case.build(path)
    limits = getattr(case, "limits", None) or DEFAULT_LIMITS
    with pytest.raises(PatchFormatError) as plain:
        inspect_patch(path, limits)
    dest = private_dir(tmp_path / "unpacked")
    with Unpacker(dest, path.name, limits) as sink, pytest.raises(PatchFormatError) as unpacking:
        try:
            inspect_patch(path, limits, sink=sink)
        finally:
            sink.discard()
    assert str(unpacking.value) == str(plain.value)
    assert listing(dest) == []


def test_a_gzipd_tar_is_not_unpacked_while_inspected(tmp_path):
    path = make_targz(tmp_path / ARCHIVE_NAME, good_tar_items())
    _, started = _unpack(path, tmp_path / "unpacked")
    assert not started
    assert listing(tmp_path / "unpacked") == []


def test_copy_tree_copies_contents_and_modes(tmp_path):
    path = make_zip(tmp_path / ARCHIVE_NAME, zip_items(patch_files(payload=PAYLOAD)))
    _unpack(path, tmp_path / "unpacked")
    copy_tree(tmp_path / "unpacked", private_dir(tmp_path / "copy"))
    assert tree(tmp_path / "copy") == tree(tmp_path / "unpacked")
    digest = hashlib.sha256((tmp_path / "copy/payload/big.bin").read_bytes()).hexdigest()
    assert digest == hashlib.sha256(PAYLOAD["payload/big.bin"]).hexdigest()


def test_copy_tree_refuses_a_link_and_removes_what_it_copied(tmp_path):
    source = private_dir(tmp_path / "source")
    (source / "a").write_text("a")
    (source / "z").symlink_to("/etc/passwd")
    dest = private_dir(tmp_path / "copy")
    with pytest.raises(OperationFailed, match="'z': not a file nor a directory"):
        copy_tree(source, dest)
    assert listing(dest) == []
