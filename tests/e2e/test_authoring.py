"""Patch authors' commands and clpctl compatibility: new, build, verify, info."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.kits import gpgkit
from tests.kits.rootkit import has_real_pwsh

# The layout of clpctl's example patch (example/CLPRYYMMDD in Vincent-OS/clpctl): its metadata
# in both the INI form of its master branch and the XML form of clpctl 2.1, clpctl's script
# names, and a payload under tmp/example-patch/. Script bodies here are our own.
CLPCTL_INI_META = (
    b"[Package]\nName=CLPRYYMMDD\nVersion=1\nArchitecture=x86_64\nDescription=Example CLP Patch"
)
CLPCTL_XML_META = (
    b"<Package>\n    <Name>CLPRYYMMDD</Name>\n    <Version>1</Version>\n"
    b"    <Architecture>x86_64</Architecture>\n    <Description>Example CLP Patch</Description>\n"
    b"</Package>"
)
CLPCTL_PAYLOAD = {
    "tmp/example-patch/new-file.txt": b"a new file\n",
    "tmp/example-patch/modified-file.txt": b"a modified file\n",
    "tmp/example-patch/removed-file.txt": b"a removed file\n",
}
EXAMPLE_INSTALL = (
    b'Copy-Item -Path "tmp/example-patch/new-file.txt" -Destination "$env:CLP_PATCH_DIR/new.txt"\n'
    b'Write-Host "[INFO] installed"\n'
)
EXAMPLE_REMOVE = (
    b'Remove-Item -Path "$env:CLP_PATCH_DIR/new.txt" -Force\nWrite-Host "[INFO] removed"\n'
)


def clpctl_example_files(meta: bytes) -> dict[str, bytes]:
    return {
        "PKGINFO.meta": meta,
        "Install-Patch.ps1": EXAMPLE_INSTALL,
        "Remove-Patch.ps1": EXAMPLE_REMOVE,
        **CLPCTL_PAYLOAD,
    }


def pack_zip(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(prefix + name, data)
    return path


def pack_targz(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def never_sign(sandbox: Path) -> Path:
    (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (sandbox / "etc/CLP/clp.conf").write_text("[options]\nSigLevel = Never\n")
    return sandbox


@pytest.mark.parametrize("meta", [CLPCTL_INI_META, CLPCTL_XML_META], ids=["ini", "xml"])
@pytest.mark.parametrize("pack", [pack_zip, pack_targz], ids=["zip", "tar.gz"])
@pytest.mark.parametrize("prefix", ["", "CLPRYYMMDD/"], ids=["top", "wrapped"])
def test_clpctl_example_passes_verify_and_shows_in_info(
    tmp_path, never_sign, clp, meta, pack, prefix
):
    patch = pack(tmp_path / "CLPRYYMMDD.clp", clpctl_example_files(meta), prefix)
    result = clp("--root", str(never_sign), "verify", str(patch))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "sig missing; SigLevel = Never: accepted" in result.stdout
    info = clp("--root", str(never_sign), "info", str(patch))
    assert info.returncode == 0, info.stderr
    assert "CLPRYYMMDD" in info.stdout and "Example CLP Patch" in info.stdout
    assert "Install-Patch.ps1, Remove-Patch.ps1" in info.stdout
    as_json = json.loads(clp("--root", str(never_sign), "info", str(patch), "--json").stdout)
    assert as_json["meta"]["architecture"] == "x86_64"


def test_verify_with_siglevel_required_refuses_the_unsigned_example(tmp_path, sandbox, clp):
    patch = pack_zip(tmp_path / "CLPRYYMMDD.clp", clpctl_example_files(CLPCTL_XML_META))
    result = clp("--root", str(sandbox), "verify", str(patch))
    assert result.returncode == 2
    assert "SigLevel is Required" in result.stderr


@pytest.mark.skipif(
    not has_real_pwsh(), reason="pwsh not installed (PowerShell is not packaged here)"
)
def test_clpctl_example_applies_with_real_pwsh(tmp_path, clp):
    pwsh = Path(shutil.which("pwsh")).resolve()
    patch = pack_zip(tmp_path / "CLPRYYMMDD.clp", clpctl_example_files(CLPCTL_XML_META))
    # real pwsh needs its whole runtime: run against "/" with a private PatchDir instead
    conf = tmp_path / "clp.conf"
    conf.write_text(
        f"[options]\nSigLevel = Never\nPatchDir = {tmp_path}/opt\nStateDir = {tmp_path}/state\n"
        f"LogFile = {tmp_path}/clp.log\nInterpreter = {pwsh}\n"
    )
    result = clp("--config", str(conf), "apply", str(patch), "--noconfirm")
    assert result.returncode == 0, result.stderr
    assert "[INFO] installed" in result.stdout


def test_new_build_verify_signed(tmp_path, sandbox, keyring, clp):
    result = clp("new", "CLPR261126", "-C", str(tmp_path))
    assert result.returncode == 0, result.stderr
    src = tmp_path / "CLPR261126"
    assert {p.name for p in src.iterdir()} >= {
        "PKGINFO.meta",
        "Install-Script.ps1",
        "Remove-Script.ps1",
    }
    out = tmp_path / "CLPR261126.clp"
    result = clp("build", str(src), "-o", str(out), "--sign", keyring.packager_fpr,
                 "--gpg-homedir", str(keyring.signer_home))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Path(f"{out}.sig").is_file()
    result = clp("--root", str(sandbox), "verify", str(out))
    assert result.returncode == 0, result.stderr
    assert "Packager <packager@localhost>" in result.stdout


def test_new_refuses_a_bad_id_and_an_existing_dir(tmp_path, clp):
    result = clp("new", "../evil", "-C", str(tmp_path))
    assert result.returncode == 2 and result.stderr.startswith("error:")
    (tmp_path / "CLPR1").mkdir()
    (tmp_path / "CLPR1/file").write_text("mine")
    result = clp("new", "CLPR1", "-C", str(tmp_path))
    assert result.returncode == 2
    assert (tmp_path / "CLPR1/file").read_text() == "mine"


def test_build_refuses_a_directory_without_scripts(tmp_path, clp):
    src = tmp_path / "CLPR2"
    src.mkdir()
    (src / "PKGINFO.meta").write_bytes(CLPCTL_XML_META)
    result = clp("build", str(src), "-o", str(tmp_path / "x.clp"))
    assert result.returncode == 2
    assert "Install-Script.ps1" in result.stderr
    assert not (tmp_path / "x.clp").exists()


def test_build_then_tamper_then_verify_fails(tmp_path, sandbox, keyring, clp):
    assert clp("new", "CLPR3", "-C", str(tmp_path)).returncode == 0
    out = tmp_path / "CLPR3.clp"
    assert clp("build", str(tmp_path / "CLPR3"), "-o", str(out)).returncode == 0
    gpgkit.sign(keyring, out, keyring.packager_fpr)
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0xFF
    out.write_bytes(bytes(data))
    result = clp("--root", str(sandbox), "verify", str(out))
    assert result.returncode == 2
    assert "BADSIG" in result.stderr or "invalid" in result.stderr
