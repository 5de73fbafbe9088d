"""`clp info FILE`: the metadata and the signature's verdict from one read of the file, as
`clp verify` reads it. Nothing is copied: a patch may be larger than the temporary
directory's free space, and info changes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.kits import gpgkit
from tests.kits.clpkit import CLP, INSTALL_OK, PATCH_ID, make_patch
from tests.kits.smallfs import run_in_small_fs


def with_siglevel(root: Path, level: str) -> None:
    (root / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (root / "etc/CLP/clp.conf").write_text(f"[options]\nSigLevel = {level}\n")


@pytest.mark.parametrize(
    ("level", "signer", "status"),
    [
        ("Required", "packager", "verified"),
        ("Required", "stranger", "invalid"),
        ("Required", "tampered", "invalid"),
        ("Required", None, "missing"),
        ("Optional", None, "unsigned"),
        ("Never", "packager", "not-checked"),
    ],
)
def test_info_shows_the_metadata_whatever_the_signature_says(
    tmp_path, sandbox, keyring, clp, level, signer, status
):
    with_siglevel(sandbox, level)
    patch = make_patch(tmp_path, None, INSTALL_OK)
    if signer in ("packager", "stranger"):
        fpr = keyring.stranger_fpr if signer == "stranger" else keyring.packager_fpr
        gpgkit.sign(keyring, patch, fpr)
    if signer == "tampered":  # the packager's signature, of another patch
        (tmp_path / "other").mkdir()
        other = make_patch(tmp_path / "other", keyring, INSTALL_OK + "# another\n")
        Path(f"{patch}.sig").write_bytes(Path(f"{other}.sig").read_bytes())
    result = clp("--root", str(sandbox), "info", str(patch), "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["meta"]["name"] == PATCH_ID and shown["path"] == str(patch)
    assert shown["signature"]["status"] == status
    if status == "verified":
        assert shown["signature"]["fingerprint"] == keyring.packager_fpr
    if status in ("invalid", "missing"):
        assert shown["signature"]["message"]
    text = clp("--root", str(sandbox), "info", str(patch))
    assert text.returncode == 0 and PATCH_ID in text.stdout


def test_info_of_a_patch_larger_than_the_temporary_directory(tmp_path, sandbox, keyring):
    payload = {"payload/blob.bin": os.urandom(3 << 20)}  # incompressible: the file is as big
    patch = make_patch(tmp_path, keyring, INSTALL_OK, payload=payload)
    assert patch.stat().st_size > 3 << 20
    small = tmp_path / "small-tmp"
    result = run_in_small_fs(small, "1m", "env", f"TMPDIR={small}", str(CLP), "--root",
                             str(sandbox), "info", str(patch), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["signature"]["status"] == "verified"


@pytest.mark.parametrize("kind", ["directory", "fifo", "dangling symlink", "symlink to /dev/null"])
@pytest.mark.parametrize(("level", "status"), [("Optional", "unsigned"), ("Required", "missing")])
def test_a_signature_that_is_no_regular_file_is_none_as_verify_says(
    tmp_path, sandbox, clp, kind, level, status
):
    """What stands where the .sig would be is not read (a FIFO would hang gpg): there is no
    signature, as `clp verify` says, and the metadata is shown."""
    with_siglevel(sandbox, level)
    patch = make_patch(tmp_path, None, INSTALL_OK)
    sig = Path(f"{patch}.sig")
    if kind == "directory":
        sig.mkdir()
    elif kind == "fifo":
        os.mkfifo(sig)
    else:
        sig.symlink_to(tmp_path / "nowhere" if kind == "dangling symlink" else "/dev/null")
    result = clp("--root", str(sandbox), "info", str(patch), "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["meta"]["name"] == PATCH_ID and shown["signature"]["status"] == status
    verify = clp("--root", str(sandbox), "verify", str(patch), timeout=60)
    assert verify.returncode == (0 if level == "Optional" else 2), verify.stderr
    if level == "Required":
        assert "no signature" in shown["signature"]["message"]
        assert "no signature" in verify.stderr
