"""SIGKILL at every journal step of apply and rollback: the next clp command rolls back."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from clp_alpm.store.journal import FAULT_ENV
from tests.kits.clpkit import BROKEN_REMOVE, CLP, INSTALL_OK, PATCH_ID, SCRIBBLE, make_patch, tree
from tests.kits.crashkit import killed, scripts_still_running, wait_for_marker

HEALTH = '<HealthCheck timeout="5">grep -q sha2 /etc/app.conf</HealthCheck>'
APPLY_STEPS = ["extract", "snapshot-before", "install-script", "health-check", "snapshot-after",
               "record"]  # fmt: skip
ROLLBACK_STEPS = ["snapshot-current", "remove-script", "restore-files", "retire-patch-dir",
                  "record"]  # fmt: skip


def recover_with_list(clp, sandbox: Path) -> list[dict]:
    result = clp("--root", str(sandbox), "list", "--json")
    assert result.returncode == 0, result.stderr
    assert "recovering from an interrupted" in result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", APPLY_STEPS)
def test_kill_during_apply_then_next_command_rolls_back(
    tmp_path, sandbox, keyring, app_conf, clp, step, when
):
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, INSTALL_OK + "touch /etc/extra.conf\n",
                       files=("/etc/app.conf", "/etc/extra.conf"), extra=HEALTH)  # fmt: skip
    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm",
                 env={FAULT_ENV: f"{step}:{when}"})  # fmt: skip
    assert killed(result), result.stderr
    listed = recover_with_list(clp, sandbox)
    assert tree(sandbox) == before
    assert [(p["id"], p["state"]) for p in listed] == [(PATCH_ID, "failed")]
    # and the system is usable again: the same patch now applies
    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("step", ["install-script", "snapshot-before", "extract"])
def test_kill_while_undoing_a_failed_apply(tmp_path, sandbox, keyring, app_conf, clp, step):
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, SCRIBBLE + "exit 4\n", BROKEN_REMOVE)
    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm",
                 env={FAULT_ENV: f"{step}:undo"})  # fmt: skip
    assert killed(result), result.stderr
    recover_with_list(clp, sandbox)
    assert tree(sandbox) == before


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", ROLLBACK_STEPS)
def test_kill_during_rollback_is_undone_or_finished(
    tmp_path, sandbox, keyring, app_conf, clp, step, when
):
    """Before the Remove script starts, an interrupted rollback is undone (the patch stays
    applied); once it has started, recovery finishes the rollback instead, since what the
    script did outside the declared files cannot be undone."""
    original = tree(sandbox)
    patch = make_patch(tmp_path, keyring, INSTALL_OK, "echo removing\n")
    assert clp("--root", str(sandbox), "apply", str(patch), "--noconfirm").returncode == 0
    patched = tree(sandbox)
    result = clp("--root", str(sandbox), "rollback", PATCH_ID, "--noconfirm",
                 env={FAULT_ENV: f"{step}:{when}"})  # fmt: skip
    assert killed(result), result.stderr
    listed = recover_with_list(clp, sandbox)
    if ROLLBACK_STEPS.index(step) < ROLLBACK_STEPS.index("remove-script"):
        assert tree(sandbox) == patched
        assert [(p["id"], p["state"]) for p in listed] == [(PATCH_ID, "applied")]
        result = clp("--root", str(sandbox), "rollback", PATCH_ID, "--noconfirm")
        assert result.returncode == 0, result.stderr
    else:
        assert [(p["id"], p["state"]) for p in listed] == [(PATCH_ID, "rolled-back")]
    assert tree(sandbox) == original


def test_rollback_of_a_patch_without_declared_files_is_finished_not_undone(
    tmp_path, sandbox, keyring, app_conf, clp
):
    patch = make_patch(tmp_path, keyring, INSTALL_OK, "sed -i s/sha2/sha1/ /etc/app.conf\n",
                       files=())  # fmt: skip
    assert clp("--root", str(sandbox), "apply", str(patch), "--noconfirm").returncode == 0
    result = clp("--root", str(sandbox), "rollback", PATCH_ID, "--noconfirm",
                 env={FAULT_ENV: "record:before"})  # fmt: skip
    assert killed(result)
    listed = recover_with_list(clp, sandbox)
    assert [(p["id"], p["state"]) for p in listed] == [(PATCH_ID, "rolled-back")]
    assert app_conf.read_text() == "MACs hmac-sha1\n"  # the Remove script's work stands


STARTED = "touch /tmp/started\n"  # the Install script says it is running


def apply_until_the_script_runs(
    sandbox: Path, patch: Path, ignored: tuple[signal.Signals, ...] = ()
) -> subprocess.Popen:
    """Start `clp apply` (with the `ignored` signals ignored, as inherited from nohup or `&`
    in a script) and return once its Install script has run `STARTED`."""

    def ignore() -> None:
        for signum in ignored:
            signal.signal(signum, signal.SIG_IGN)

    process = subprocess.Popen(
        [str(CLP), "--root", str(sandbox), "apply", str(patch), "--noconfirm"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=ignore,
    )  # fmt: skip
    wait_for_marker(sandbox / "tmp/started", process)
    return process


def test_sigkill_mid_script_kills_the_script_and_recovers(
    tmp_path, sandbox, keyring, app_conf, clp
):
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, SCRIBBLE + STARTED + "sleep 600 &\nsleep 600\n")
    process = apply_until_the_script_runs(sandbox, patch)
    process.send_signal(signal.SIGKILL)
    process.communicate()

    recover_with_list(clp, sandbox)
    assert tree(sandbox) == before
    assert not scripts_still_running(sandbox)


@pytest.mark.parametrize("inherited", ["default", "ignored"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_mid_script_rolls_back_at_once(
    tmp_path, sandbox, keyring, app_conf, signum, inherited
):
    """One rule for every stop signal, whatever clp inherited: `nohup` ignores SIGHUP, `cmd &`
    in a script ignores SIGINT; clp still stops, undoes and exits 130, as pacman does."""
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, SCRIBBLE + STARTED + "sleep 600\n")
    ignored = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if inherited == "ignored" else ()
    process = apply_until_the_script_runs(sandbox, patch, ignored)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130  # interrupted, and everything was undone
    assert "interrupted; everything was rolled back" in stderr
    assert tree(sandbox) == before
    assert not scripts_still_running(sandbox)


def test_a_second_ctrl_c_does_not_cut_the_undo_short(tmp_path, sandbox, keyring, app_conf, clp):
    """The undo of an interrupted apply runs the patch's Remove script; Ctrl-C again there is
    held until the undo is done: the files are back and nothing is left to recover."""
    before = tree(sandbox)
    remove = "touch /tmp/removing\nsleep 1\necho removed > /tmp/removed\n"
    patch = make_patch(tmp_path, keyring, SCRIBBLE + STARTED + "sleep 600\n", remove)
    process = apply_until_the_script_runs(sandbox, patch)
    process.send_signal(signal.SIGINT)
    wait_for_marker(sandbox / "tmp/removing", process)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted; everything was rolled back" in stderr
    assert (sandbox / "tmp/removed").read_text() == "removed\n"  # the Remove script finished
    (sandbox / "tmp/removed").unlink()
    assert tree(sandbox) == before
    listed = clp("--root", str(sandbox), "list", "--json")
    assert "recovering" not in listed.stderr  # no operation was left for a recovery
    assert [(p["id"], p["state"]) for p in json.loads(listed.stdout)] == [(PATCH_ID, "failed")]
