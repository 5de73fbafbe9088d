"""Patches whose PKGINFO.meta clpctl accepted (it never validated it) apply, with a warning per
element clp passes over; `clp build` still writes only the canonical form. A patch may
declare a file directly under PatchDir (clpctl's example installs /opt/CLP/new-file.txt), not
the patch directories, the trash or clp's state."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

# The XML clpctl 2.0 reads: <Architechture> is its spelling; <Depends> is an element it
# writes and never reads; there is no <Description>.
CLPCTL_META = (
    "<Package>\n  <Name>{name}</Name>\n  <Version>1</Version>\n"
    "  <Architechture>any</Architechture>\n  <Depends>openssh</Depends>\n"
    "{files}</Package>\n"
)
INSTALL = "echo a new file > /opt/CLP/new-file.txt\n"
REMOVE = "rm -f /opt/CLP/new-file.txt\n"


def patch_dir_files(name: str, files: tuple[str, ...]) -> dict[str, bytes]:
    declared = "".join(f'<File path="{path}"/>' for path in files)
    meta = CLPCTL_META.format(name=name, files=f"  <Files>{declared}</Files>\n" if files else "")
    return {
        "PKGINFO.meta": meta.encode(),
        "Install-Patch.ps1": INSTALL.encode(),
        "Remove-Patch.ps1": REMOVE.encode(),
    }


def clpctl_archive(path: Path, files: dict[str, bytes]) -> Path:
    """A gzip'd tar of the patch directory's files at the top, as clpctl's CreateClpFile."""
    with tarfile.open(path, "w:gz") as archive:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def unsigned(sandbox: Path) -> None:
    (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (sandbox / "etc/CLP/clp.conf").write_text("[options]\nSigLevel = Never\n")


def test_a_clpctl_meta_applies_with_warnings_and_declares_a_file_under_patchdir(
    tmp_path, sandbox, clp
):
    unsigned(sandbox)
    new_file = sandbox / "opt/CLP/new-file.txt"
    files = patch_dir_files("CLPR250101", ("/opt/CLP/new-file.txt",))
    patch = clpctl_archive(tmp_path / "CLPR250101.CLP", files)

    info = clp("--root", str(sandbox), "info", str(patch), "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["meta"]["architecture"] == "any"
    warnings = [line for line in info.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: CLPR250101.CLP: PKGINFO.meta:5: unknown element <Depends> ignored"
    ]

    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.count("unknown element <Depends> ignored") == 1
    assert new_file.read_text() == "a new file\n"
    listing = json.loads(clp("--root", str(sandbox), "list", "--json").stdout)
    assert [(p["id"], p["state"], p["description"]) for p in listing] == [
        ("CLPR250101", "applied", "")
    ]
    rolled = clp("--root", str(sandbox), "rollback", "CLPR250101", "--noconfirm")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert not new_file.exists()  # clp's snapshot of the declared file: it was absent


def test_clp_build_keeps_the_canonical_form(tmp_path, clp):
    src = tmp_path / "CLPR250101"
    src.mkdir()
    for name, data in patch_dir_files("CLPR250101", ()).items():
        (src / name).write_bytes(data)
    result = clp("build", str(src), "-o", str(tmp_path / "out.clp"))
    assert result.returncode != 0
    assert "PKGINFO.meta:1: <Package> has no <Architecture> element" in result.stderr
    assert not (tmp_path / "out.clp").exists()


@pytest.mark.parametrize(
    "declared",
    [
        "/opt/CLP",  # PatchDir itself
        "/opt/CLP/CLPR250101",  # this patch's directory
        "/opt/CLP/CLPR250101/x",  # inside it
        "/opt/CLP/CLPROLD",  # a patch directory clpctl left
        "/opt/CLP/.trash",  # clp's trash
        "/opt/CLP/.trash/1-CLPR1",
        "/var/lib/clp/clp.db",  # clp's state
    ],
)
def test_patch_directories_trash_and_state_stay_clps(tmp_path, sandbox, clp, declared):
    unsigned(sandbox)
    (sandbox / "opt/CLP/CLPROLD").mkdir(parents=True)
    patch = clpctl_archive(tmp_path / "CLPR250101.CLP", patch_dir_files("CLPR250101", (declared,)))
    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"declares {declared}, which is clp's own" in result.stderr
    assert not (sandbox / "opt/CLP/new-file.txt").exists()
