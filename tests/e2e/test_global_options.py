"""pacman's global options, as a user gives them: --sysroot (and --root, -r), --gpgdir,
--hookdir, --logfile, -q, -v, --confirm; and `clp hook` honours them as every command does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.kits.clpkit import INSTALL_OK, PATCH_ID, make_patch


def test_sysroot_root_and_r_name_the_same_root(tmp_path, sandbox, keyring, app_conf, clp):
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    assert clp("--sysroot", str(sandbox), "apply", str(patch), "--noconfirm").returncode == 0
    for spelling in ("--sysroot", "--root", "-r"):
        result = clp(spelling, str(sandbox), "list", "--json")
        assert result.returncode == 0, result.stderr
        assert [p["id"] for p in json.loads(result.stdout)] == [PATCH_ID]


def alternative_conf(sandbox: Path) -> Path:
    conf = sandbox / "etc/CLP/other.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("[options]\nStateDir = /srv/state\nLogFile = /srv/clp.log\n")
    return conf


def test_the_hook_reads_the_config_the_options_name(sandbox, clp):
    """`clp --root R --config F hook …` records where F says, as every other command does."""
    conf = alternative_conf(sandbox)
    where = ["--root", str(sandbox), "--config", str(conf)]
    for when in ("pre-transaction", "post-transaction"):
        result = clp(*where[:2], "hook", when, *where[2:], input="etc/app.conf\n")
        assert result.returncode == 0 and not result.stderr, result.stderr
    records = json.loads(clp(*where, "transactions", "--json").stdout)
    assert [r["status"] for r in records] == ["done"]
    assert (sandbox / "srv/state").is_dir()
    assert not (sandbox / "var/lib/clp").exists()  # not clp.conf's default StateDir


def test_a_hook_with_global_options_first_does_not_load_click(sandbox):
    code = (
        "import sys\n"
        "from clp_alpm.cli.entry import main\n"
        f"main(['--root', {str(sandbox)!r}, '--debug', 'hook', 'pre-transaction'])\n"
        "print('click' in sys.modules, 'clp_alpm.cli.main' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_logfile_puts_clps_log_where_it_says(tmp_path, sandbox, keyring, app_conf, clp):
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    log = tmp_path / "elsewhere.log"
    result = clp("--root", str(sandbox), "--logfile", str(log), "apply", str(patch), "--noconfirm")
    assert result.returncode == 0, result.stderr
    assert PATCH_ID in log.read_text()
    assert not (sandbox / "var/log/CLP.log").exists()


def test_gpgdir_names_the_keyring_that_checks_signatures(tmp_path, sandbox, keyring, app_conf, clp):
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    empty = tmp_path / "empty-gnupg"
    empty.mkdir(mode=0o700)
    result = clp("--root", str(sandbox), "--gpgdir", str(empty), "verify", str(patch))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"keyring {empty} holds no public keys" in result.stderr
    assert clp("--root", str(sandbox), "verify", str(patch)).returncode == 0


def test_confirm_cancels_an_earlier_noconfirm(tmp_path, sandbox, keyring, app_conf, clp):
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    args = ("--root", str(sandbox), "--noconfirm", "apply", str(patch), "--confirm")
    result = clp(*args, input="n\n")
    assert result.returncode == 1 and "Proceed with apply? [Y/n] n" in result.stdout
    assert app_conf.read_text() == "MACs hmac-sha1\n"


def test_quiet_shows_no_progress_and_list_shows_ids(tmp_path, sandbox, keyring, app_conf, clp):
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    result = clp("--root", str(sandbox), "-q", "apply", str(patch), "--noconfirm")
    assert result.returncode == 0, result.stderr
    assert "(1/" not in result.stdout and "->" not in result.stdout
    assert clp("--root", str(sandbox), "list", "-q").stdout == f"{PATCH_ID}\n"


def test_verbose_shows_the_paths_first(sandbox, clp):
    result = clp("--root", str(sandbox), "-v", "list")
    assert result.returncode == 0, result.stderr
    rows = dict(line.split(" : ", 1) for line in result.stdout.splitlines())
    shown = {label.strip(): value for label, value in rows.items()}
    assert list(shown)[0] == "Root" and shown["Root"] == str(sandbox)
    assert shown["Log File"] == f"{sandbox}/var/log/CLP.log"
    assert shown["GPG Dir"] == f"{sandbox}/etc/pacman.d/gnupg"
    assert shown["DB Path"] == f"{sandbox}/var/lib/pacman"
    quiet_json = clp("--root", str(sandbox), "-v", "list", "--json")
    assert json.loads(quiet_json.stdout) == [] and "Root" in quiet_json.stderr
