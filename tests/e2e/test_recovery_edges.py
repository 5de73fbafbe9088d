"""Edge cases of failure and recovery found in review: each one a system left damaged before."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.kits.clpkit import CLP, INSTALL_OK, PATCH_ID, SCRIBBLE, apply_args, make_patch, tree
from tests.kits.smallfs import run_in_small_fs


def test_install_that_deletes_its_own_dir_still_gets_files_restored(
    tmp_path, sandbox, keyring, app_conf, clp
):
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, SCRIBBLE + 'cd /\nrm -rf "$CLP_PATCH_DIR"\nexit 1\n')
    result = clp(*apply_args(sandbox, patch))
    assert result.returncode == 1, result.stderr
    assert "everything was rolled back" in result.stderr
    assert tree(sandbox) == before


def test_a_stuck_recovery_blocks_changes_until_fixed_then_recover_finishes_it(
    tmp_path, sandbox, keyring, app_conf, clp
):
    before = tree(sandbox)
    # the script leaves a non-empty directory where the file was: clp cannot restore it
    install = "rm /etc/app.conf\nmkdir /etc/app.conf\necho x > /etc/app.conf/inside\nexit 1\n"
    patch = make_patch(tmp_path, keyring, install)
    result = clp(*apply_args(sandbox, patch))
    assert result.returncode == 1
    assert "rolling back was incomplete" in result.stderr and "clp recover" in result.stderr

    listed = clp("--root", str(sandbox), "list", "--json")
    assert listed.returncode == 0 and "could not be recovered" in listed.stderr
    other = make_patch(tmp_path, keyring, INSTALL_OK, name="CLPR261126")
    blocked = clp(*apply_args(sandbox, other))
    assert blocked.returncode == 1 and "could not be recovered" in blocked.stderr
    assert app_conf.is_dir()

    (app_conf / "inside").unlink()  # the admin fixes the cause
    app_conf.rmdir()
    result = clp("--root", str(sandbox), "recover")
    assert result.returncode == 0, result.stderr
    assert tree(sandbox) == before
    assert clp(*apply_args(sandbox, other)).returncode == 0


def test_rollback_with_state_dir_on_another_file_system(tmp_path, sandbox, keyring, app_conf):
    """PatchDir and StateDir on different file systems (a separate /var): rollback works."""
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    script = (
        f"{CLP} --root {sandbox} apply {patch} --noconfirm && "
        f"{CLP} --root {sandbox} rollback {PATCH_ID} --noconfirm"
    )
    result = run_in_small_fs(sandbox / "var/lib/clp", "64m", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert tree(sandbox) == before


@pytest.mark.parametrize(
    "declared", ["/var/lib/clp/clp.db", "/var/log/CLP.log", "/opt/CLP", "/var", "/etc/pacman.d"]
)
def test_a_patch_cannot_manage_clps_own_files(tmp_path, sandbox, keyring, app_conf, clp, declared):
    patch = make_patch(tmp_path, keyring, INSTALL_OK, files=(declared,))
    result = clp(*apply_args(sandbox, patch))
    assert result.returncode == 2
    assert "clp's own" in result.stderr


def test_pacman_running_is_exit_3(tmp_path, sandbox, keyring, app_conf, clp):
    (sandbox / "var/lib/pacman/db.lck").touch()
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    result = clp(*apply_args(sandbox, patch))
    assert result.returncode == 3
    assert "db.lck" in result.stderr
    assert app_conf.read_text() == "MACs hmac-sha1\n"


def test_a_failed_reapply_records_the_new_version(tmp_path, sandbox, keyring, app_conf, clp):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    v1 = make_patch(tmp_path / "v1", keyring, INSTALL_OK)
    assert clp(*apply_args(sandbox, v1)).returncode == 0
    assert clp("--root", str(sandbox), "rollback", PATCH_ID, "--noconfirm").returncode == 0
    v2 = make_patch(tmp_path / "v2", keyring, "exit 1\n", files=("/etc/app.conf", "/etc/v2"),
                    extra="<Severity>critical</Severity>")  # fmt: skip
    assert clp(*apply_args(sandbox, v2)).returncode == 1
    (record,) = json.loads(clp("--root", str(sandbox), "list", "--json").stdout)
    assert record["state"] == "failed"
    assert record["files"] == ["/etc/app.conf", "/etc/v2"]
    assert record["severity"] == "critical"
    assert record["source"] == str(v2)


def test_verify_as_root_recovers_first(tmp_path, sandbox, keyring, app_conf, clp):
    from clp_alpm.store.journal import FAULT_ENV

    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    killed = clp(*apply_args(sandbox, patch), env={FAULT_ENV: "snapshot-after:before"})
    assert killed.returncode == -signal.SIGKILL
    result = clp("--root", str(sandbox), "verify", str(patch))
    assert result.returncode == 0
    assert "recovering from an interrupted apply" in result.stderr
    assert tree(sandbox) == before
    assert os.path.exists(patch)


def test_a_recovery_that_runs_a_script_says_so_before_it_waits(
    tmp_path, sandbox, keyring, app_conf, clp
):
    """A killed rollback is finished by the next command, even `clp info`: its Remove script
    runs again, and the user reads why before the wait, not after it."""
    import subprocess
    import time

    remove = "touch /tmp/removing\nsleep 3\n"
    patch = make_patch(tmp_path, keyring, INSTALL_OK, remove)
    assert clp(*apply_args(sandbox, patch)).returncode == 0
    rollback = subprocess.Popen(
        [str(CLP), "--root", str(sandbox), "rollback", PATCH_ID, "--noconfirm"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    marker = sandbox / "tmp/removing"
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline and rollback.poll() is None
        time.sleep(0.05)
    rollback.send_signal(signal.SIGKILL)
    rollback.wait(timeout=30)
    marker.unlink()
    info = subprocess.Popen(
        [str(CLP), "--root", str(sandbox), "info", PATCH_ID, "--json"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    first_line = info.stderr.readline()
    assert info.poll() is None, "the line came only once the script was done"
    assert "recovering from an interrupted rollback of CLPR261125" in first_line
    second_line = info.stderr.readline()
    assert "running Remove-Script.ps1 again for the recovery" in second_line
    assert "up to 600 s" in second_line
    stdout, _ = info.communicate(timeout=60)
    assert info.returncode == 0
    assert json.loads(stdout)["state"] == "rolled-back"
