"""End to end: `clp apply`, `list`, `info`, `rollback` on a sandbox root, as a user runs them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.kits import gpgkit
from tests.kits.clpkit import (
    BROKEN_REMOVE,
    INSTALL_OK,
    PATCH_ID,
    SCRIBBLE,
    apply_args,
    make_patch,
    tree,
)


def test_apply_list_info_rollback_round_trip(tmp_path, sandbox, keyring, app_conf, clp):
    before = tree(sandbox)
    install = INSTALL_OK + "mkdir -p /etc/new.d && echo new > /etc/new.d/x.conf\n"
    patch = make_patch(tmp_path, keyring, install, files=("/etc/app.conf", "/etc/new.d/x.conf"))

    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")
    assert result.returncode == 0, result.stderr
    assert "installing CLPR261125" in result.stdout
    assert app_conf.read_text() == "MACs hmac-sha2\n"
    assert (sandbox / "etc/new.d/x.conf").read_text() == "new\n"
    assert (sandbox / "opt/CLP" / PATCH_ID / "Install-Script.ps1").is_file()
    assert "installing CLPR261125" in (sandbox / "var/log/CLP.log").read_text()

    listed = json.loads(clp("--root", str(sandbox), "list", "--json").stdout)
    assert [(p["id"], p["state"]) for p in listed] == [(PATCH_ID, "applied")]
    assert listed[0]["applied_at"]
    info = clp("info", PATCH_ID, "--root", str(sandbox))
    assert info.returncode == 0, info.stderr
    assert "applied" in info.stdout and "/etc/app.conf" in info.stdout

    result = clp("--root", str(sandbox), "rollback", PATCH_ID, "--noconfirm")
    assert result.returncode == 0, result.stderr
    assert tree(sandbox) == before  # bytes, mode, owner, mtime; /etc/new.d removed again
    listed = json.loads(clp("--root", str(sandbox), "list", "--json").stdout)
    assert [(p["id"], p["state"]) for p in listed] == [(PATCH_ID, "rolled-back")]
    assert listed[0]["rolled_back_at"]


def assert_failed_cleanly(result, sandbox: Path, before: dict, words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert tree(sandbox) == before
    assert not (sandbox / "opt/CLP" / PATCH_ID).exists()


@pytest.mark.parametrize(
    ("install", "extra", "config", "words"),
    [
        (SCRIBBLE + "exit 3\n", "", "", "Install-Script.ps1 exited with status 3"),
        (SCRIBBLE + "sleep 600\n", "", "ScriptTimeout = 2\n", "timed out"),
        (SCRIBBLE + "kill -SEGV $$\n", "", "", "SIGSEGV"),
        (
            SCRIBBLE,
            '<HealthCheck timeout="5">test -e /etc/missing</HealthCheck>',
            "",
            "health check 'test -e /etc/missing'",
        ),
        (SCRIBBLE, '<HealthCheck timeout="1">sleep 30</HealthCheck>', "", "timed out"),
    ],
    ids=["exit-status", "timeout", "signal", "health-check", "health-check-hangs"],
)
def test_failed_install_restores_every_declared_file(
    tmp_path, sandbox, keyring, app_conf, clp, install, extra, config, words
):
    if config:
        (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
        (sandbox / "etc/CLP/clp.conf").write_text("[options]\n" + config)
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, install, BROKEN_REMOVE, extra=extra)
    result = clp(*apply_args(sandbox, patch))
    assert_failed_cleanly(result, sandbox, before, words)
    assert "exited with status 9" in result.stderr  # the broken Remove script is reported
    listed = json.loads(clp("--root", str(sandbox), "list", "--json").stdout)
    assert [(p["id"], p["state"]) for p in listed] == [(PATCH_ID, "failed")]
    assert words in listed[0]["message"]


def test_failed_patch_can_be_applied_again_once_fixed(tmp_path, sandbox, keyring, app_conf, clp):
    (tmp_path / "bad").mkdir()
    bad = make_patch(tmp_path / "bad", keyring, "exit 1\n")
    assert clp(*apply_args(sandbox, bad)).returncode == 1
    (tmp_path / "good").mkdir()
    good = make_patch(tmp_path / "good", keyring, INSTALL_OK)
    result = clp(*apply_args(sandbox, good))
    assert result.returncode == 0, result.stderr
    assert app_conf.read_text() == "MACs hmac-sha2\n"


def test_applying_an_applied_patch_is_refused(tmp_path, sandbox, keyring, app_conf, clp):
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    assert clp(*apply_args(sandbox, patch)).returncode == 0
    content = app_conf.read_bytes()
    result = clp(*apply_args(sandbox, patch))
    assert result.returncode == 2
    assert "already applied" in result.stderr
    assert app_conf.read_bytes() == content


def test_rollback_stops_on_a_file_changed_since_apply(tmp_path, sandbox, keyring, app_conf, clp):
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    assert clp(*apply_args(sandbox, patch)).returncode == 0
    app_conf.write_text("edited by the admin\n")
    result = clp("--root", str(sandbox), "rollback", PATCH_ID, "--noconfirm")
    assert result.returncode == 1
    assert "/etc/app.conf" in result.stderr and "--force" in result.stderr
    assert app_conf.read_text() == "edited by the admin\n"
    assert "applied" in clp("--root", str(sandbox), "info", PATCH_ID).stdout

    result = clp("--root", str(sandbox), "rollback", PATCH_ID, "--noconfirm", "--force")
    assert result.returncode == 0, result.stderr
    assert app_conf.read_text() == "MACs hmac-sha1\n"


def test_rollback_with_a_broken_remove_script_still_restores(
    tmp_path, sandbox, keyring, app_conf, clp
):
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, INSTALL_OK, BROKEN_REMOVE)
    assert clp(*apply_args(sandbox, patch)).returncode == 0
    result = clp("--root", str(sandbox), "rollback", PATCH_ID, "--noconfirm")
    assert result.returncode == 0, result.stderr
    assert "exited with status 9" in result.stderr
    assert tree(sandbox) == before


@pytest.mark.parametrize("case", ["unsigned", "untrusted", "stranger", "tampered", "garbage"])
def test_bad_signatures_are_refused(tmp_path, sandbox, keyring, app_conf, clp, case):
    before = tree(sandbox)
    patch = make_patch(tmp_path, None, INSTALL_OK)
    if case == "untrusted":
        gpgkit.sign(keyring, patch, keyring.untrusted_fpr)
    elif case == "stranger":
        gpgkit.sign(keyring, patch, keyring.stranger_fpr)
    elif case == "tampered":
        gpgkit.sign(keyring, patch, keyring.packager_fpr)
        with patch.open("ab") as handle:
            handle.write(b"\0")
    elif case == "garbage":
        Path(f"{patch}.sig").write_bytes(b"not a signature")
    result = clp(*apply_args(sandbox, patch))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert tree(sandbox) == before
    assert (
        not (sandbox / "var/lib/clp/clp.db").exists()
        or "[]" in clp("--root", str(sandbox), "list", "--json").stdout
    )


def test_siglevel_never_accepts_an_unsigned_patch(tmp_path, sandbox, app_conf, clp):
    (sandbox / "etc/CLP").mkdir(parents=True)
    (sandbox / "etc/CLP/clp.conf").write_text("[options]\nSigLevel = Never\n")
    patch = make_patch(tmp_path, None, INSTALL_OK)
    result = clp(*apply_args(sandbox, patch))
    assert result.returncode == 0, result.stderr


def test_wrong_architecture_is_refused(tmp_path, sandbox, keyring, app_conf, clp):
    patch = make_patch(
        tmp_path,
        keyring,
        INSTALL_OK,
        arch="aarch64" if os.uname().machine != "aarch64" else "x86_64",
    )
    result = clp(*apply_args(sandbox, patch))
    assert result.returncode == 2
    assert "built for" in result.stderr


def test_applies_to_a_package_that_is_not_installed_is_refused(
    tmp_path, sandbox, keyring, app_conf, clp
):
    extra = '<AppliesTo><Pkg name="openssh" version="&lt;9.9p2-1"/></AppliesTo>'
    patch = make_patch(tmp_path, keyring, INSTALL_OK, extra=extra)
    result = clp(*apply_args(sandbox, patch))
    assert result.returncode == 2
    assert "openssh, which is not installed" in result.stderr


def test_missing_interpreter_is_bad_input(tmp_path, sandbox, keyring, app_conf, clp):
    (sandbox / "usr/bin/pwsh").unlink()
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    result = clp(*apply_args(sandbox, patch))
    assert result.returncode == 2
    assert "/usr/bin/pwsh not found" in result.stderr
    assert tree(sandbox) == before


def test_not_root_is_refused_before_anything(tmp_path, sandbox, keyring, app_conf, clp):
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    os.chmod(tmp_path, 0o755)
    result = run_as_nobody(clp, "--root", str(sandbox), "apply", str(patch), "--noconfirm")
    assert result.returncode == 2
    assert "unless you are root" in result.stderr


def run_as_nobody(clp, *args):
    import subprocess

    from tests.kits.clpkit import CLP

    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(CLP), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_second_clp_waits_then_exits_3(tmp_path, sandbox, keyring, app_conf, clp):
    import fcntl

    state = sandbox / "var/lib/clp"
    state.mkdir(parents=True)
    with open(state / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242\n")
        held.flush()
        patch = make_patch(tmp_path, keyring, INSTALL_OK)
        result = clp(*apply_args(sandbox, patch))
    assert result.returncode == 3
    assert "pid 4242" in result.stderr and "lock" in result.stderr
    assert app_conf.read_text() == "MACs hmac-sha1\n"


def test_options_are_accepted_after_the_command(tmp_path, sandbox, keyring, app_conf, clp):
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    result = clp("apply", str(patch), "--noconfirm", "--root", str(sandbox), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["patch"]["state"] == "applied"


def test_without_noconfirm_and_no_terminal_nothing_changes(
    tmp_path, sandbox, keyring, app_conf, clp
):
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    result = clp("--root", str(sandbox), "apply", str(patch))
    assert result.returncode != 0
    assert "--noconfirm" in result.stderr
    assert app_conf.read_text() == "MACs hmac-sha1\n"


def test_unknown_patch_id_and_missing_file(sandbox, clp):
    result = clp("--root", str(sandbox), "rollback", "CLPR000000", "--noconfirm")
    assert result.returncode == 2 and "not known" in result.stderr
    result = clp("--root", str(sandbox), "apply", "/nonexistent.clp", "--noconfirm")
    assert result.returncode == 2 and "no such patch file" in result.stderr


def test_a_corrupt_state_database_is_one_line(sandbox, clp):
    (sandbox / "var/lib/clp").mkdir(parents=True)
    (sandbox / "var/lib/clp/clp.db").write_bytes(b"garbage" * 1000)
    result = clp("--root", str(sandbox), "list")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "clp.db" in result.stderr


@pytest.mark.parametrize(
    ("constraint", "applies"),
    [("&lt;9.9p2-1", True), ("=9.9p1-1", True), ("&gt;=10.0-1", False), ("&lt;9.9p1-1", False)],
)
def test_applies_to_checks_the_installed_version_with_libalpm(
    tmp_path, sandbox, keyring, app_conf, clp, constraint, applies
):
    from tests.kits.pkgkit import make_package, pacman_install

    pacman_install(sandbox, make_package(tmp_path, "openssh", "9.9p1-1"))
    extra = f'<AppliesTo><Pkg name="openssh" version="{constraint}"/></AppliesTo>'
    patch = make_patch(tmp_path, keyring, INSTALL_OK, extra=extra)
    result = clp(*apply_args(sandbox, patch))
    if applies:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 2
        assert "installed is 9.9p1-1" in result.stderr
        assert app_conf.read_text() == "MACs hmac-sha1\n"


def test_config_option_is_a_host_path(tmp_path, sandbox, app_conf, clp):
    conf = tmp_path / "host-clp.conf"
    conf.write_text("[options]\nSigLevel = Never\nLogFile = /var/log/other.log\n")
    patch = make_patch(tmp_path, None, INSTALL_OK)
    result = clp("--config", str(conf), *apply_args(sandbox, patch))
    assert result.returncode == 0, result.stderr
    assert "installing" in (sandbox / "var/log/other.log").read_text()


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ("[options]\nSigLevel = Sometimes\n", 2, "SigLevel must be one of"),
        ("[options]\nScriptTimeout = soon\n", 2, "ScriptTimeout must be a number"),
        ("[options]\nPatchDir = opt/CLP\n", 2, "PatchDir must be an absolute path"),
        ("SigLevel = Never\n", 2, "must be in the [options] section"),
        ("[options]\nSigLevel\n", 2, "expected 'Key = Value'"),
        ("[options]\nInclude = /etc/CLP/nowhere\nSigLevel = Never\n", 0, ""),
    ],
)
def test_bad_config_is_one_line_naming_file_and_line(
    tmp_path, sandbox, app_conf, clp, text, code, words
):
    (sandbox / "etc/CLP").mkdir(parents=True)
    (sandbox / "etc/CLP/clp.conf").write_text(text)
    result = clp("--root", str(sandbox), "list")
    assert result.returncode == code, result.stderr
    if code:
        assert words in result.stderr and "clp.conf:" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_config_option_is_a_warning(sandbox, clp):
    (sandbox / "etc/CLP").mkdir(parents=True)
    (sandbox / "etc/CLP/clp.conf").write_text("[options]\nColour = yes\n")
    result = clp("--root", str(sandbox), "list")
    assert result.returncode == 0
    assert "warning:" in result.stderr and "unknown option 'Colour'" in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["bogus"], "no such command 'bogus'"),
        (["apply"], "missing argument 'PATCH_FILE'"),
        (["list", "--color", "purple"], "invalid value for '--color'"),
        (["apply", "--root", "/nonexistent-root", "x.clp"], "root directory does not exist"),
    ],
)
def test_usage_errors_are_one_line(clp, args, words):
    result = clp(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_dbpath_is_a_host_path(tmp_path, sandbox, keyring, app_conf, clp):
    from tests.kits.pkgkit import make_package, pacman_install

    pacman_install(sandbox, make_package(tmp_path, "openssh", "9.9p1-1"))
    elsewhere = tmp_path / "db"
    (sandbox / "var/lib/pacman").rename(elsewhere)
    extra = '<AppliesTo><Pkg name="openssh" version="=9.9p1-1"/></AppliesTo>'
    patch = make_patch(tmp_path, keyring, INSTALL_OK, extra=extra)
    assert clp(*apply_args(sandbox, patch)).returncode == 2  # not installed in the root's db
    result = clp("--dbpath", str(elsewhere), *apply_args(sandbox, patch))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("answer", "code"), [("y\n", 0), ("\n", 0), ("n\n", 1), ("no\n", 1)])
def test_answer_from_a_pipe_as_pacman_reads_it(tmp_path, sandbox, keyring, app_conf, answer, code):
    import subprocess

    from tests.kits.clpkit import CLP

    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    result = subprocess.run([str(CLP), "--root", str(sandbox), "apply", str(patch)],
                            input=answer, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == code, result.stderr
    assert "Proceed with apply? [Y/n]" in result.stdout
    expected = "MACs hmac-sha2\n" if code == 0 else "MACs hmac-sha1\n"
    assert app_conf.read_text() == expected


def test_json_errors_are_json_too(tmp_path, sandbox, clp):
    result = clp("--root", str(sandbox), "apply", str(tmp_path / "none.clp"), "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout) == {
        "error": f"{tmp_path / 'none.clp'}: no such patch file",
        "exit_code": 2,
    }


def test_rollback_refusal_says_what_changed(tmp_path, sandbox, keyring, app_conf, clp):
    patch = make_patch(tmp_path, keyring, INSTALL_OK + "echo n > /etc/b.conf\n",
                       files=("/etc/app.conf", "/etc/b.conf"))  # fmt: skip
    assert clp(*apply_args(sandbox, patch)).returncode == 0
    app_conf.chmod(0o600)
    (sandbox / "etc/b.conf").unlink()
    result = clp("--root", str(sandbox), "rollback", PATCH_ID, "--noconfirm")
    assert result.returncode == 1
    assert "/etc/app.conf (mode 640 -> 600)" in result.stderr
    assert "/etc/b.conf (deleted)" in result.stderr
    assert f"clp rollback --force {PATCH_ID}" in result.stderr


def test_failed_apply_restores_file_capabilities(tmp_path, sandbox, keyring, clp):
    """A patch that rewrites a binary with file capabilities (as ping or mtr-packet carry)."""
    tool = sandbox / "usr/bin/tool"
    tool.write_bytes(b"\x7fELF tool")
    tool.chmod(0o755)
    capability = bytes.fromhex("0100000200200000000000000000000000000000")
    os.setxattr(tool, "security.capability", capability)
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, "echo new > /usr/bin/tool\nchown 1234 /usr/bin/tool\n"
                       "exit 1\n", files=("/usr/bin/tool",))  # fmt: skip
    assert clp(*apply_args(sandbox, patch)).returncode == 1
    assert tree(sandbox) == before
    assert os.getxattr(tool, "security.capability") == capability


def test_snapshots_no_record_needs_are_dropped(tmp_path, sandbox, keyring, app_conf, clp):
    """Failed applies and finished rollbacks leave no copies of configuration files behind."""
    store = sandbox / "var/lib/clp/snapshots/snapshots"
    (tmp_path / "bad").mkdir()
    bad = make_patch(tmp_path / "bad", keyring, "exit 1\n")
    for _ in range(3):
        assert clp(*apply_args(sandbox, bad)).returncode == 1
    assert not list(store.glob("*.json"))  # the failed record keeps no snapshot
    good = make_patch(tmp_path, keyring, INSTALL_OK)
    assert clp(*apply_args(sandbox, good)).returncode == 0
    assert len(list(store.glob("*.json"))) == 2  # before and after: rollback needs both
    assert clp("--root", str(sandbox), "rollback", PATCH_ID, "--noconfirm").returncode == 0
    assert not list(store.glob("*.json"))  # a rolled-back patch needs none
