"""`clp apply` reads the patch file once: the signature, the hash and every entry's CRC-32 are
checked over the bytes as they are read, and a zip's entries are written from those bytes into
a private directory in StateDir/incoming, which the journal's extract step then renames into
PatchDir. Whatever fails while the file is read leaves nothing behind: no staged file, no
patch directory, no record."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.kits import gpgkit
from tests.kits.clpkit import CLP, INSTALL_OK, PATCH_ID, apply_args, make_patch, tree
from tests.kits.smallfs import run_in_small_fs

PAYLOAD = 3 * 1024 * 1024  # random bytes: stored as they are, so a flipped byte is one


def _payload_patch(tmp_path: Path, keyring: gpgkit.Keyring) -> tuple[Path, bytes]:
    data = os.urandom(PAYLOAD)
    return make_patch(tmp_path, keyring, INSTALL_OK, payload={"payload/big.bin": data}), data


def _bad_signature(tmp_path: Path, keyring: gpgkit.Keyring) -> Path:
    patch, _ = _payload_patch(tmp_path, keyring)
    gpgkit.sign(keyring, patch, keyring.stranger_fpr)  # a key the keyring does not have
    return patch


def _wrong_hash(tmp_path: Path, keyring: gpgkit.Keyring) -> Path:
    """A whole, valid archive, but not the one that was signed (the signature's hash differs)."""
    patch, _ = _payload_patch(tmp_path, keyring)
    signature = Path(f"{patch}.sig").read_bytes()
    (tmp_path / "other").mkdir()
    other, _ = _payload_patch(tmp_path / "other", keyring)
    patch.write_bytes(other.read_bytes())
    Path(f"{patch}.sig").write_bytes(signature)
    return patch


def _damaged_member(tmp_path: Path, keyring: gpgkit.Keyring) -> Path:
    """One byte of the payload flipped, then signed: the signature is good, the CRC-32 not."""
    patch, data = _payload_patch(tmp_path, keyring)
    raw = bytearray(patch.read_bytes())
    at = raw.find(data[PAYLOAD - 4096 : PAYLOAD - 4064])
    assert at > 0, "the payload is stored as it is"
    raw[at] ^= 0xFF
    patch.write_bytes(bytes(raw))
    gpgkit.sign(keyring, patch, keyring.packager_fpr)
    return patch


FAILURES = {
    "bad-signature": (_bad_signature, "signature"),
    "wrong-hash": (_wrong_hash, "signature"),
    "damaged-member": (_damaged_member, "CRC-32"),
}


def _nothing_left(sandbox: Path, before: dict, clp) -> None:
    """What a refused apply leaves: the root as it was, no staged file, no record."""
    assert tree(sandbox) == before
    incoming = sandbox / "var/lib/clp/incoming"
    assert not incoming.exists() or list(incoming.iterdir()) == [], list(incoming.rglob("*"))
    patch_dir = sandbox / "opt/CLP"
    assert not patch_dir.exists() or list(patch_dir.iterdir()) == []
    listed = clp("--root", str(sandbox), "list", "--json")
    assert json.loads(listed.stdout) == []
    operations = clp("--root", str(sandbox), "recover", "--json")
    assert operations.returncode == 0, operations.stderr


def _one_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
def test_a_failed_verify_leaves_nothing_behind(tmp_path, sandbox, keyring, app_conf, clp, failure):
    build, naming = FAILURES[failure]
    patch = build(tmp_path, keyring)
    before = tree(sandbox)

    result = clp(*apply_args(sandbox, patch))

    assert result.returncode == 2, result.stderr
    assert naming.lower() in _one_error(result).lower()
    _nothing_left(sandbox, before, clp)
    verified = clp("--root", str(sandbox), "verify", str(patch))
    assert (verified.returncode, _one_error(verified)) == (2, _one_error(result))


def _same_fs_conf(sandbox: Path) -> Path:
    """StateDir and PatchDir on one file system (mounted at /srv/clp by the test)."""
    conf = sandbox / "etc/CLP/clp.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("[options]\nStateDir = /srv/clp/state\nPatchDir = /srv/clp/patches\n")
    (sandbox / "srv/clp").mkdir(parents=True)
    return sandbox / "srv/clp"


def test_a_full_disk_while_unpacking_leaves_nothing_behind(
    tmp_path, sandbox, keyring, app_conf, clp
):
    """The file system StateDir and PatchDir share fills up while the payload is unpacked:
    one line, the root unchanged, and nothing staged is left on that file system."""
    mount = _same_fs_conf(sandbox)
    patch, _ = _payload_patch(tmp_path, keyring)
    before = tree(sandbox)
    script = f"""
{CLP} --root {sandbox} apply {patch} --noconfirm 2>{tmp_path}/apply.err
echo "exit $?"
find {mount} -mindepth 1 | sort > {tmp_path}/left.txt
{CLP} --root {sandbox} list --json > {tmp_path}/list.json
"""
    result = run_in_small_fs(mount, "2m", "sh", "-c", script)
    assert result.stdout.splitlines()[0] == "exit 1", result.stdout + result.stderr
    error = _one_error(subprocess.CompletedProcess([], 1, "", (tmp_path / "apply.err").read_text()))
    assert "cannot extract" in error and "No space left on device" in error, error
    left = (tmp_path / "left.txt").read_text().split()
    staged = [p for p in left if "/incoming/" in p or "/patches/" in p]
    assert staged == [], left
    assert json.loads((tmp_path / "list.json").read_text()) == []
    assert tree(sandbox) == before


def test_patch_dir_on_another_file_system_gets_a_copy(tmp_path, sandbox, keyring, app_conf, clp):
    """PatchDir on its own file system: the unpacked tree cannot be renamed there, so it is
    copied, modes and all, and nothing is left in StateDir."""
    patch, data = _payload_patch(tmp_path, keyring)
    patch_dir = sandbox / "opt/CLP"
    script = f"""
{CLP} --root {sandbox} apply {patch} --noconfirm >/dev/null 2>{tmp_path}/apply.err
echo "exit $?"
cd {patch_dir}/{PATCH_ID} && find . | sort && stat -c '%n %a' . Install-Script.ps1 PKGINFO.meta
sha256sum payload/big.bin
"""
    result = run_in_small_fs(patch_dir, "16m", "sh", "-c", script)
    lines = result.stdout.splitlines()
    assert lines[0] == "exit 0", (tmp_path / "apply.err").read_text()
    import hashlib

    assert lines[-1].split()[0] == hashlib.sha256(data).hexdigest()
    assert ". 755" in lines and "Install-Script.ps1 755" in lines and "PKGINFO.meta 644" in lines
    assert "./payload/big.bin" in lines
    assert not (sandbox / "var/lib/clp/incoming").exists()
    listed = json.loads(clp("--root", str(sandbox), "list", "--json").stdout)
    assert [(p["id"], p["state"]) for p in listed] == [(PATCH_ID, "applied")]


def test_the_unpacked_tree_is_renamed_into_place(tmp_path, sandbox, keyring, app_conf, clp):
    patch, data = _payload_patch(tmp_path, keyring)
    result = clp(*apply_args(sandbox, patch))
    assert result.returncode == 0, result.stderr
    done = sandbox / "opt/CLP" / PATCH_ID
    assert (done / "payload/big.bin").read_bytes() == data
    assert stat.S_IMODE(done.stat().st_mode) == 0o755
    assert stat.S_IMODE((done / "Install-Script.ps1").stat().st_mode) == 0o755
    assert stat.S_IMODE((done / "payload/big.bin").stat().st_mode) == 0o644
    assert not (sandbox / "var/lib/clp/incoming").exists()


def test_killed_while_unpacking_then_recover_leaves_nothing(
    tmp_path, sandbox, keyring, app_conf, clp
):
    """SIGKILL while the payload is being unpacked (gpg with it), then `clp recover`: no
    staged file, no patch directory, no record, the root as it was."""
    data = os.urandom(96 * 1024 * 1024)
    patch = make_patch(tmp_path, keyring, INSTALL_OK, payload={"payload/big.bin": data})
    before = tree(sandbox)
    incoming = sandbox / "var/lib/clp/incoming"
    process = subprocess.Popen(
        [str(CLP), *apply_args(sandbox, patch)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size for p in incoming.glob("*/patch/payload/big.bin")):
            assert process.poll() is None, "apply ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert list(incoming.glob("*/patch/payload/big.bin"))  # killed midway: a part is there

    recovered = clp("--root", str(sandbox), "recover")

    assert recovered.returncode == 0, recovered.stderr
    _nothing_left(sandbox, before, clp)
