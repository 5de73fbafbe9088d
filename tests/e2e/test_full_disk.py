"""A full disk at each place clp writes: the operation fails, says so, and changes nothing."""

from __future__ import annotations

import json
import os

from tests.kits.clpkit import INSTALL_OK, apply_args, make_patch, tree
from tests.kits.smallfs import run_with_small_fs


def test_full_patch_dir(tmp_path, sandbox, keyring, app_conf, clp):
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, INSTALL_OK, payload={"big.bin": os.urandom(600_000)})
    result = run_with_small_fs(sandbox / "opt/CLP", "256k", *apply_args(sandbox, patch))
    assert result.returncode == 1, result.stderr
    assert "No space left on device" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert tree(sandbox) == before
    listed = json.loads(clp("--root", str(sandbox), "list", "--json").stdout)
    assert [p["state"] for p in listed] == ["failed"]


def test_full_state_dir_while_staging(tmp_path, sandbox, keyring, app_conf, clp):
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, INSTALL_OK, payload={"big.bin": os.urandom(600_000)})
    result = run_with_small_fs(sandbox / "var/lib/clp", "256k", *apply_args(sandbox, patch))
    assert result.returncode == 1, result.stderr
    assert "No space left on device" in result.stderr
    assert tree(sandbox) == before


def test_full_state_dir_while_snapshotting(tmp_path, sandbox, keyring, app_conf, clp):
    big = sandbox / "etc/big.conf"
    big.write_bytes(os.urandom(600_000))
    before = tree(sandbox)
    install = "echo x > /etc/big.conf\n"
    patch = make_patch(tmp_path, keyring, install, files=("/etc/big.conf",))
    result = run_with_small_fs(sandbox / "var/lib/clp", "400k", *apply_args(sandbox, patch))
    assert result.returncode == 1, result.stderr
    assert "No space left on device" in result.stderr
    assert "rolled back" in result.stderr
    assert tree(sandbox) == before


def _one_error_line(result) -> str:
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_full_disk_while_restoring_keeps_the_patch_until_there_is_room(
    tmp_path, sandbox, keyring, clp
):
    """A rollback whose restore finds the file system full fails in one line and leaves the
    patch applied, nothing lost; once there is room again, the rollback restores the file."""
    from tests.kits.clpkit import CLP, PATCH_ID
    from tests.kits.smallfs import run_in_small_fs

    data = sandbox / "srv/data"
    original = os.urandom(150_000).hex()
    (tmp_path / "original").write_text(original)
    patch = make_patch(tmp_path, keyring, "echo small > /srv/data/big.conf\n",
                       files=("/srv/data/big.conf",))  # fmt: skip
    clp_ = f"{CLP} --root {sandbox}"
    script = f"""
cp {tmp_path}/original {data}/big.conf
{clp_} apply {patch} --noconfirm >/dev/null 2>&1 || {{ echo apply failed; exit 1; }}
dd if=/dev/zero of={data}/filler bs=4k 2>/dev/null || true
{clp_} rollback {PATCH_ID} --noconfirm >/dev/null 2>{tmp_path}/first.err
echo "first $?"
cat {data}/big.conf
{clp_} list --json > {tmp_path}/list-full.json
rm {data}/filler
{clp_} rollback {PATCH_ID} --noconfirm >/dev/null 2>{tmp_path}/second.err
echo "second $?"
sha256sum {data}/big.conf
"""
    result = run_in_small_fs(data, "512k", "sh", "-c", script)
    lines = result.stdout.splitlines()
    assert lines[0] == "first 1", result.stdout + result.stderr
    first = (tmp_path / "first.err").read_text()
    assert "No space left on device" in first and "rolled back" in first, first
    assert len([line for line in first.splitlines() if line.startswith("error: ")]) == 1, first
    assert lines[1] == "small"  # the patch still applied, its file whole
    listed = json.loads((tmp_path / "list-full.json").read_text())
    assert [(p["id"], p["state"]) for p in listed] == [(PATCH_ID, "applied")]
    assert lines[2] == "second 0", (tmp_path / "second.err").read_text()
    import hashlib

    assert lines[3].split()[0] == hashlib.sha256(original.encode()).hexdigest()


def test_full_state_database_is_one_line_and_changes_nothing(
    tmp_path, sandbox, keyring, app_conf, clp
):
    """The state database cannot grow (its file system full once clp has made it): apply
    refuses in one line, the system unchanged, and works once there is room."""
    from tests.kits.clpkit import CLP
    from tests.kits.smallfs import run_in_small_fs

    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    state = sandbox / "var/lib/clp"
    script = f"""
{CLP} --root {sandbox} recover >/dev/null
dd if=/dev/zero of={state}/filler bs=1k 2>/dev/null || true
{CLP} --root {sandbox} apply {patch} --noconfirm
echo "exit $?" >&2
"""
    result = run_in_small_fs(state, "1m", "sh", "-c", script)
    assert result.stderr.splitlines()[-1] == "exit 1", result.stderr
    result.stderr = "\n".join(result.stderr.splitlines()[:-1])
    line = _one_error_line(result)
    assert "No space left on device" in line or "disk is full" in line, line
    assert tree(sandbox) == before


def test_read_only_state_dir(tmp_path, sandbox, keyring, app_conf, clp):
    """A state directory on a read-only file system: changing commands refuse in one line
    and change nothing; reading commands still read."""
    import subprocess

    from tests.kits.clpkit import CLP, PATCH_ID

    first = make_patch(tmp_path, keyring, INSTALL_OK)
    assert clp(*apply_args(sandbox, first)).returncode == 0
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, "touch /etc/second\n", name="CLPR261126",
                       files=("/etc/second",))  # fmt: skip
    state = sandbox / "var/lib/clp"
    script = (
        f'mount --bind "{state}" "{state}" && mount -o remount,bind,ro "{state}" && '
        f"{CLP} --root {sandbox} list --json > {tmp_path}/list.json && "
        f"exec {CLP} --root {sandbox} apply {patch} --noconfirm"
    )
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode in (1, 2), result.stderr
    assert "Read-only file system" in _one_error_line(result)
    listed = json.loads((tmp_path / "list.json").read_text())
    assert [(p["id"], p["state"]) for p in listed] == [(PATCH_ID, "applied")]
    assert tree(sandbox) == before


def test_missing_interpreter(tmp_path, sandbox, keyring, app_conf, clp):
    """pwsh is not installed in the root: apply refuses in one line naming it, nothing changed,
    and the patch applies once the interpreter is there."""
    from tests.kits import rootkit

    (sandbox / "usr/bin/pwsh").unlink()
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")
    assert result.returncode in (1, 2), result.stderr
    assert "pwsh" in _one_error_line(result)
    assert tree(sandbox) == before
    rootkit.write_stand_in(sandbox / "usr/bin/pwsh")
    again = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")
    assert again.returncode == 0, again.stderr
