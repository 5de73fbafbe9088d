"""clp_alpm.formats .clp archives: inspecting (zip and tar), extracting, building, the template."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from clp_alpm.errors import OperationFailed, PatchFormatError, UsageError
from clp_alpm.formats.archive import DEFAULT_LIMITS, SCRIPT_PAIRS, Entry, PatchArchive
from clp_alpm.formats.build import build_patch
from clp_alpm.formats.extract import extract_patch
from clp_alpm.formats.inspect import inspect_patch
from clp_alpm.formats.pkginfo import parse_meta
from clp_alpm.formats.template import write_template
from tests.kits.patchkit import (
    ARCHIVE_NAME,
    CLPCTL_INI_META,
    CLPCTL_PAYLOAD,
    HOSTILE_CASES,
    INSTALL_BODY,
    REMOVE_BODY,
    HostileCase,
    MiB,
    TarItem,
    ZipItem,
    good_tar_items,
    good_zip_items,
    listing,
    make_targz,
    make_zip,
    meta_xml,
    patch_files,
    private_dir,
    set_zip_field,
    sparse_stored_zip,
    tar_items,
    targz_bomb,
    write_patch_dir,
    zip_bomb,
    zip_bytes,
    zip_items,
)


def tree(root: Path) -> dict[str, tuple[str, int, bytes | None]]:
    """{relative path: (kind, permission bits, content)} of everything under root."""
    result: dict[str, tuple[str, int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "?"
        content = path.read_bytes() if kind == "file" else None
        result[str(path.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode), content)
    return result


def expected_tree(files: dict[str, bytes], executable: set[str] = frozenset()) -> dict:
    """The tree extracting `files` must give: implied directories 0755, files 0644 or 0755."""
    result: dict[str, tuple[str, int, bytes | None]] = {}
    for name, data in files.items():
        parts = name.split("/")
        for depth in range(1, len(parts)):
            result["/".join(parts[:depth])] = ("dir", 0o755, None)
        mode = 0o755 if name.endswith(".ps1") or name in executable else 0o644
        result[name] = ("file", mode, data)
    return dict(sorted(result.items()))


def inspect_and_extract(archive_path: Path, dest: Path) -> PatchArchive:
    archive = inspect_patch(archive_path)
    extract_patch(archive, private_dir(dest))
    return archive


PAYLOAD = {
    "tmp/example-patch/modified-file.txt": b"new contents\n",
    "usr/local/bin/tool": b"#!/bin/sh\necho tool\n",
    "etc/deep/er/still/file.conf": b"key = value\n",
}


# -- good archives -----------------------------------------------------------------------------


def test_good_zip_is_inspected_without_writing_and_extracted_exactly(tmp_path):
    files = patch_files(payload=PAYLOAD)
    items = zip_items(files)
    next(i for i in items if i.name == "usr/local/bin/tool").mode = stat.S_IFREG | 0o755
    path = make_zip(tmp_path / ARCHIVE_NAME, items)

    archive = inspect_patch(path)
    assert listing(tmp_path) == [ARCHIVE_NAME]
    assert archive.container == "zip" and archive.prefix == ""
    assert archive.meta.name == "CLPR261125"
    assert (archive.install_script, archive.remove_script) == SCRIPT_PAIRS[0]
    assert archive.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert archive.size == path.stat().st_size
    assert [(e.name, e.size) for e in archive.entries] == [(n, len(d)) for n, d in files.items()]
    tool = next(e for e in archive.entries if e.name == "usr/local/bin/tool")
    assert tool == Entry("usr/local/bin/tool", len(PAYLOAD["usr/local/bin/tool"]), False, True)

    extract_patch(archive, private_dir(tmp_path / "dest"))
    assert tree(tmp_path / "dest") == expected_tree(files, {"usr/local/bin/tool"})


def test_good_targz_with_concatenated_gzip_members_extracts_exactly(tmp_path):
    files = patch_files(payload=PAYLOAD)
    path = make_targz(tmp_path / ARCHIVE_NAME, tar_items(files), members=3)
    archive = inspect_and_extract(path, tmp_path / "dest")
    assert archive.container == "tar.gz" and archive.prefix == ""
    assert archive.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert tree(tmp_path / "dest") == expected_tree(files)


def test_to_dict_is_json_ready(tmp_path):
    archive = inspect_patch(make_zip(tmp_path / ARCHIVE_NAME, good_zip_items()))
    data = json.loads(json.dumps(archive.to_dict()))
    assert data["container"] == "zip" and data["sha256"] == archive.sha256
    assert data["size"] == archive.size
    assert data["scripts"] == {"install": "Install-Script.ps1", "remove": "Remove-Script.ps1"}
    assert {"name": "PKGINFO.meta", "size": len(meta_xml()), "type": "file"} in data["entries"]
    assert data["meta"]["name"] == "CLPR261125"


def clpctl_example() -> dict[str, bytes]:
    return patch_files(
        meta=CLPCTL_INI_META,
        install=INSTALL_BODY,
        remove=REMOVE_BODY,
        payload=CLPCTL_PAYLOAD,
        pair="patch",
    )


@pytest.mark.parametrize("prefix", ["", "CLPRYYMMDD/"], ids=["top", "wrapped"])
@pytest.mark.parametrize("container", ["zip", "tar.gz"])
def test_clpctl_example_layout(tmp_path, container, prefix):
    files = clpctl_example()
    path = tmp_path / "CLPRYYMMDD.clp"
    if container == "zip":
        make_zip(path, zip_items(files, prefix))
    else:
        make_targz(path, tar_items(files, prefix))
    archive = inspect_and_extract(path, tmp_path / "dest")
    assert archive.container == container and archive.prefix == prefix
    assert archive.meta.name == "CLPRYYMMDD" and archive.meta.architecture == "x86_64"
    assert archive.meta.legacy
    assert (archive.install_script, archive.remove_script) == SCRIPT_PAIRS[1]
    assert {e.name for e in archive.entries} == set(files)
    assert tree(tmp_path / "dest") == expected_tree(files)


def write_source(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize(
    "command, prefix",
    [
        ("tar czf {out} CLPRYYMMDD", "CLPRYYMMDD/"),
        ("tar czf {out} -C CLPRYYMMDD .", ""),
        ("bsdtar czf {out} CLPRYYMMDD", "CLPRYYMMDD/"),
        ("zip -qr {out} CLPRYYMMDD", "CLPRYYMMDD/"),
        ("cd CLPRYYMMDD && zip -qr {out} .", ""),
    ],
)
def test_archives_made_by_real_tools(tmp_path, command, prefix):
    tool = "zip" if command.startswith("cd") else command.split()[0]
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    files = clpctl_example()
    write_source(tmp_path / "CLPRYYMMDD", files)
    out = tmp_path / "CLPRYYMMDD.clp"
    subprocess.run(command.format(out=out), shell=True, cwd=tmp_path, check=True)
    archive = inspect_and_extract(out, tmp_path / "dest")
    assert archive.prefix == prefix
    assert {e.name for e in archive.entries if not e.is_dir} == set(files)
    assert {k: v[2] for k, v in tree(tmp_path / "dest").items() if v[0] == "file"} == files


def test_the_documented_pair_wins_when_both_are_complete(tmp_path):
    files = patch_files(payload={"Install-Patch.ps1": b"old", "Remove-Patch.ps1": b"old"})
    archive = inspect_patch(make_zip(tmp_path / ARCHIVE_NAME, zip_items(files)))
    assert (archive.install_script, archive.remove_script) == SCRIPT_PAIRS[0]


def test_a_wrapping_directory_without_metadata_is_not_stripped(tmp_path):
    items = zip_items({"tmp/a": b"x", "tmp/b": b"y"})
    with pytest.raises(PatchFormatError, match="PKGINFO.meta is missing"):
        inspect_patch(make_zip(tmp_path / ARCHIVE_NAME, items))


# -- hostile archives --------------------------------------------------------------------------


def test_there_are_enough_hostile_cases():
    assert len(HOSTILE_CASES) >= 25
    assert len({case.id for case in HOSTILE_CASES}) == len(HOSTILE_CASES)


@pytest.mark.parametrize("case", HOSTILE_CASES, ids=lambda case: case.id)
def test_hostile_archive_is_refused_before_anything_is_written(tmp_path, monkeypatch, case):
    case: HostileCase
    monkeypatch.chdir(tmp_path)
    path = tmp_path / ARCHIVE_NAME
    case.build(path)
    assert listing(tmp_path) == [ARCHIVE_NAME]
    started = time.monotonic()
    with pytest.raises(PatchFormatError, match=case.match) as refused:
        inspect_patch(path, case.limits or DEFAULT_LIMITS)
    assert time.monotonic() - started < 2
    message = str(refused.value)
    assert message.startswith(f"{ARCHIVE_NAME}: ") and "\n" not in message
    assert listing(tmp_path) == [ARCHIVE_NAME]


def test_zip_bomb_is_quick_to_build_and_refused_by_ratio(tmp_path):
    started = time.monotonic()
    path = zip_bomb(tmp_path / ARCHIVE_NAME, 200 * MiB)
    assert time.monotonic() - started < 2
    assert path.stat().st_size < 1 * MiB
    started = time.monotonic()
    with pytest.raises(PatchFormatError, match=r"'tmp/zeros' has a compression ratio of \d+:1"):
        inspect_patch(path)
    assert time.monotonic() - started < 0.5


def test_targz_bomb_stops_early(tmp_path):
    path = targz_bomb(tmp_path / ARCHIVE_NAME, 1000 * MiB)
    started = time.monotonic()
    with pytest.raises(PatchFormatError, match="gzip bomb") as refused:
        inspect_patch(path)
    assert time.monotonic() - started < 0.5
    inflated = int(str(refused.value).split("(")[1].split()[0])
    assert inflated < 64 * MiB  # stopped long before the 1000 MiB the archive holds


def test_lying_header_is_refused_by_inspection(tmp_path):
    big = bytes(range(256)) * 4096  # 1 MiB
    items = [*good_zip_items(), ZipItem("tmp/big", big, declared_size=10)]
    with pytest.raises(PatchFormatError, match="'tmp/big' holds more data than the 10 bytes"):
        inspect_patch(make_zip(tmp_path / ARCHIVE_NAME, items))


def test_bad_payload_crc_is_refused_by_inspection(tmp_path):
    items = [*good_zip_items(), ZipItem("tmp/sub/payload", b"payload" * 1000)]
    path = tmp_path / ARCHIVE_NAME
    path.write_bytes(set_zip_field(zip_bytes(items), "tmp/sub/payload", crc=0xDEADBEEF))
    with pytest.raises(PatchFormatError, match="'tmp/sub/payload' fails its check: Bad CRC-32"):
        inspect_patch(path)


@pytest.mark.parametrize("damage", ["crc", "size"])
def test_a_damaged_file_swapped_in_after_inspection_is_caught_during_extraction(tmp_path, damage):
    items = [*good_zip_items(), ZipItem("tmp/sub/payload", b"payload" * 1000)]
    path = tmp_path / ARCHIVE_NAME
    data = zip_bytes(items)
    path.write_bytes(data)
    archive = inspect_patch(path)
    fields = {"crc": 0xDEADBEEF} if damage == "crc" else {"usize": 10}
    path.write_bytes(set_zip_field(data, "tmp/sub/payload", **fields))
    dest = private_dir(tmp_path / "dest")
    with pytest.raises(PatchFormatError, match="changed since it was inspected"):
        extract_patch(archive, dest)
    assert listing(dest) == []
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700


def test_damaged_gzip_trailer_is_caught_during_extraction(tmp_path):
    path = make_targz(tmp_path / ARCHIVE_NAME, good_tar_items())
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # the CRC32 of the gzip member
    path.write_bytes(bytes(data))
    with pytest.raises(PatchFormatError, match="not a valid gzip'd tar"):
        inspect_patch(path)


@pytest.mark.parametrize("container", ["zip", "tar.gz"])
def test_file_changed_after_inspection_is_refused(tmp_path, container):
    path = tmp_path / ARCHIVE_NAME
    make = make_zip if container == "zip" else make_targz
    items = good_zip_items() if container == "zip" else good_tar_items()
    make(path, items)
    archive = inspect_patch(path)
    make(path, [*items, ("tmp/added-later", b"evil")])
    dest = private_dir(tmp_path / "dest")
    with pytest.raises(PatchFormatError, match="changed since it was inspected"):
        extract_patch(archive, dest)
    assert listing(dest) == []


def test_extract_refuses_a_dest_that_is_not_empty_and_keeps_its_contents(tmp_path):
    archive = inspect_patch(make_zip(tmp_path / ARCHIVE_NAME, good_zip_items()))
    dest = private_dir(tmp_path / "dest")
    (dest / "mine").write_text("keep me")
    with pytest.raises(UsageError, match="not empty"):
        extract_patch(archive, dest)
    assert (dest / "mine").read_text() == "keep me"
    (dest / "mine").unlink()
    os.symlink(dest, tmp_path / "link")
    with pytest.raises(UsageError, match="cannot extract here"):
        extract_patch(archive, tmp_path / "link")
    with pytest.raises(UsageError, match="cannot extract here"):
        extract_patch(archive, tmp_path / "missing")


def test_extraction_streams_a_200_mb_payload_in_flat_memory(tmp_path):
    path = sparse_stored_zip(tmp_path / ARCHIVE_NAME, patch_files(), "tmp/big.img", 200 * MiB)
    dest = private_dir(tmp_path / "dest")
    # The child reports its own high-water mark (VmHWM): getrusage/wait4 of a forked child
    # start from the parent's peak, so a big pytest process would make any child look big.
    child = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from clp_alpm.formats.extract import extract_patch
        from clp_alpm.formats.inspect import inspect_patch
        extract_patch(inspect_patch(Path(sys.argv[1])), Path(sys.argv[2]))
        status = Path("/proc/self/status").read_text().splitlines()
        print([line.split()[1] for line in status if line.startswith("VmHWM:")][0])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", child, str(path), str(dest)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    try:
        big = dest / "tmp/big.img"
        assert big.stat().st_size == 200 * MiB
        with open(big, "rb") as stream:
            stream.seek(123 * MiB)
            assert stream.read(MiB) == bytes(MiB)
        assert int(result.stdout) < 100 * 1024  # KiB
    finally:
        shutil.rmtree(dest)


# -- building ----------------------------------------------------------------------------------


def test_build_inspect_extract_round_trip(tmp_path):
    files = patch_files(payload=PAYLOAD)
    src = write_patch_dir(tmp_path / "src", payload=PAYLOAD)
    (src / "usr/local/bin/tool").chmod(0o755)
    (src / "empty/dir").mkdir(parents=True)
    (src / "Remove-Script.ps1").chmod(0o600)  # scripts are executable in the archive anyway

    built = build_patch(src, tmp_path / ARCHIVE_NAME)
    assert built == inspect_patch(tmp_path / ARCHIVE_NAME)
    with zipfile.ZipFile(tmp_path / ARCHIVE_NAME) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert "empty/dir/" in names and "usr/local/bin/" in names
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        mode = info.external_attr >> 16
        if info.is_dir():
            assert mode == stat.S_IFDIR | 0o755
        else:
            assert info.compress_type == zipfile.ZIP_DEFLATED
            executable = info.filename.endswith(".ps1") or info.filename == "usr/local/bin/tool"
            assert mode == stat.S_IFREG | (0o755 if executable else 0o644)

    extract_patch(built, private_dir(tmp_path / "dest"))
    expected = expected_tree(files, {"usr/local/bin/tool"})
    expected.update({"empty": ("dir", 0o755, None), "empty/dir": ("dir", 0o755, None)})
    assert tree(tmp_path / "dest") == dict(sorted(expected.items()))


def test_build_is_deterministic(tmp_path):
    src = write_patch_dir(tmp_path / "src", payload=PAYLOAD)
    first = build_patch(src, tmp_path / "one.clp")
    for path in src.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    second = build_patch(src, tmp_path / "two.clp")
    assert first.sha256 == second.sha256
    assert (tmp_path / "one.clp").read_bytes() == (tmp_path / "two.clp").read_bytes()


def test_build_leaves_its_output_out_when_written_at_the_top_of_the_source(tmp_path):
    src = write_patch_dir(tmp_path / "src")
    build_patch(src, src / ARCHIVE_NAME)
    again = build_patch(src, src / ARCHIVE_NAME)
    assert ARCHIVE_NAME not in {e.name for e in again.entries}
    assert sorted(p.name for p in src.iterdir()) == sorted([*patch_files(), ARCHIVE_NAME])


def test_build_refuses_to_write_over_the_sources(tmp_path):
    src = write_patch_dir(tmp_path / "src")
    before = tree(src)
    for out in (src / "PKGINFO.meta", src / "tmp/inside.clp"):
        with pytest.raises(UsageError, match="inside the patch directory"):
            build_patch(src, out)
    assert tree(src) == before


def _add_symlink(src: Path) -> None:
    os.symlink("/etc/shadow", src / "tmp/link")


def _add_fifo(src: Path) -> None:
    os.mkfifo(src / "tmp/fifo")


def _bad_meta(src: Path) -> None:
    (src / "PKGINFO.meta").write_bytes(b"<Package><Name>x</Package>")


@pytest.mark.parametrize(
    "spoil, match",
    [
        (_add_symlink, "'tmp/link' is a symbolic link"),
        (_add_fifo, "'tmp/fifo' is a FIFO"),
        (lambda src: (src / "PKGINFO.meta").unlink(), "PKGINFO.meta is missing"),
        (_bad_meta, r"PKGINFO.meta:1: malformed XML"),
        (lambda src: (src / "Remove-Script.ps1").unlink(), "Remove-Script.ps1 is missing"),
        (lambda src: (src / "tmp/a\\b").write_bytes(b"x"), "backslash"),
    ],
    ids=["symlink", "fifo", "no-meta", "bad-meta", "half-pair", "backslash-name"],
)
def test_build_refuses_a_bad_source_and_leaves_nothing_behind(tmp_path, spoil, match):
    src = write_patch_dir(tmp_path / "src", payload={"tmp/payload": b"x"})
    spoil(src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(PatchFormatError, match=match):
        build_patch(src, out_dir / ARCHIVE_NAME)
    assert listing(out_dir) == []


def test_build_into_a_missing_directory_fails_cleanly(tmp_path):
    src = write_patch_dir(tmp_path / "src")
    before = listing(tmp_path)
    with pytest.raises(OperationFailed, match="cannot build the patch"):
        build_patch(src, tmp_path / "no/such/dir" / ARCHIVE_NAME)
    assert listing(tmp_path) == before


# -- the template of `clp new` -----------------------------------------------------------------


def test_template_builds_into_a_valid_patch(tmp_path):
    dest = tmp_path / "CLPR261125"
    write_template(dest, "CLPR261125")
    meta = parse_meta((dest / "PKGINFO.meta").read_bytes())
    assert meta.name == "CLPR261125" and meta.version == "1" and meta.architecture == "any"
    assert meta.files == ("/etc/clp-example.conf",)
    assert meta.date == datetime.date.today().isoformat()
    for script in SCRIPT_PAIRS[0]:
        body = (dest / script).read_text()
        assert stat.S_IMODE((dest / script).stat().st_mode) == 0o755
        assert "$ErrorActionPreference = 'Stop'" in body
        for variable in ("CLP_PATCH_ID", "CLP_PATCH_DIR", "CLP_ROOT"):
            assert f"$env:{variable}" in body or f"'{variable}'" in body
    assert "Copy-Item" in (dest / "Install-Script.ps1").read_text()
    assert "Remove-Item" in (dest / "Remove-Script.ps1").read_text()

    archive = build_patch(dest, tmp_path / "CLPR261125.clp")
    assert (archive.install_script, archive.remove_script) == SCRIPT_PAIRS[0]
    assert "files/etc/clp-example.conf" in {e.name for e in archive.entries}


def test_template_refuses_a_bad_id_or_a_non_empty_directory(tmp_path):
    with pytest.raises(UsageError, match="not a valid patch id"):
        write_template(tmp_path / "x", "../evil")
    assert listing(tmp_path) == []
    (tmp_path / "CLPR1").mkdir()
    (tmp_path / "CLPR1/mine").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        write_template(tmp_path / "CLPR1", "CLPR1")
    assert listing(tmp_path) == ["CLPR1", "CLPR1/mine"]
    (tmp_path / "CLPR2").mkdir()
    write_template(tmp_path / "CLPR2", "CLPR2")  # an existing empty directory is fine
    assert (tmp_path / "CLPR2/PKGINFO.meta").is_file()


@pytest.mark.skipif(shutil.which("pwsh") is None, reason="pwsh not installed (not packaged here)")
def test_template_scripts_run_with_real_pwsh(tmp_path):
    patch_dir = tmp_path / "CLPR261125"
    write_template(patch_dir, "CLPR261125")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    env = dict(os.environ, CLP_PATCH_ID="CLPR261125", CLP_PATCH_DIR=str(patch_dir))
    env["CLP_ROOT"] = str(root)
    run = ["pwsh", "-NoProfile", "-NonInteractive", "-File"]
    subprocess.run([*run, str(patch_dir / "Install-Script.ps1")], env=env, check=True)
    assert (root / "etc/clp-example.conf").read_bytes() == (
        patch_dir / "files/etc/clp-example.conf"
    ).read_bytes()
    subprocess.run([*run, str(patch_dir / "Remove-Script.ps1")], env=env, check=True)
    assert not (root / "etc/clp-example.conf").exists()
    failed = subprocess.run([*run, str(patch_dir / "Install-Script.ps1")], env={"PATH": "/usr/bin"})
    assert failed.returncode != 0


def test_tar_modes_and_wrapping_dir_entries_extract_as_expected(tmp_path):
    files = patch_files(payload={"bin/run": b"#!/bin/sh\n"})
    items = tar_items(files, "CLPR261125/")
    next(i for i in items if i.name.endswith("bin/run")).mode = 0o4755  # setuid is dropped
    items.insert(0, TarItem("CLPR261125", type=tarfile.DIRTYPE, mode=0o777))
    archive = inspect_and_extract(make_targz(tmp_path / ARCHIVE_NAME, items), tmp_path / "d")
    assert archive.prefix == "CLPR261125/"
    assert tree(tmp_path / "d") == expected_tree(files, {"bin/run"})
