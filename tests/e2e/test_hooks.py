"""clp's pacman hooks with real pacman in a sandbox root: every transaction recorded with its
versions and a snapshot of the configuration files it touched; `clp transactions`, `clp diff`,
`clp undo-transaction`; patches re-applied when an upgrade replaces their files; a broken
state never stops pacman; clp's own pacman runs recorded once, without deadlock."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.kits.clpkit import make_patch
from tests.kits.hookkit import HookRoot, install, transactions
from tests.kits.pkgkit import CACHE, make_package

PKG = "demo"


def package(root: HookRoot, version: str, conf: str, extra: dict[str, bytes] | None = None,
            name: str = PKG, backup: bool = False) -> Path:  # fmt: skip
    """A package owning /etc/<name>.conf (a backup file when `backup`) and a data file."""
    files = {f"etc/{name}.conf": conf.encode(), f"usr/share/{name}/VERSION": version.encode()}
    files |= extra or {}
    path = make_package(root.root / CACHE, name, version, files)
    if backup:
        _add_backup(path, f"etc/{name}.conf")
    return path


def _add_backup(path: Path, member: str) -> None:
    """Rewrite the package with `backup = member` in its .PKGINFO."""
    import io
    import tarfile

    with tarfile.open(path) as archive:
        members = [(m, archive.extractfile(m).read()) for m in archive.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(path, "w:xz") as archive:
        for info, data in members:
            if info.name == ".PKGINFO":
                data += f"backup = {member}\n".encode()
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture
def hroot(sandbox: Path) -> HookRoot:
    return HookRoot(sandbox)


def moves(record: dict) -> list[tuple]:
    return [(p["name"], p["from"], p["to"]) for p in record["packages"]]


def test_install_upgrade_remove_are_recorded_with_versions_and_files(hroot):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    removed = hroot.pacman("-R", PKG)
    assert removed.returncode == 0, removed.stderr

    records = transactions(hroot)
    assert [r["id"] for r in records] == [1, 2, 3]
    assert [r["status"] for r in records] == ["done"] * 3
    assert [moves(r) for r in records] == [
        [(PKG, None, "1.0-1")], [(PKG, "1.0-1", "2.0-1")], [(PKG, "2.0-1", None)]
    ]  # fmt: skip
    assert all(r["changed_files"] == ["/etc/demo.conf"] for r in records)
    assert all(r["origin"] == "pacman" for r in records)

    text = hroot.clp("transactions").stdout
    assert "demo 1.0-1 -> 2.0-1" in text and "demo 2.0-1 (removed)" in text
    assert hroot.clp("transactions", "-q").stdout == "1\n2\n3\n"


def test_diff_shows_the_config_change_as_a_unified_diff(hroot):
    install(hroot, package(hroot, "1.0-1", "port=1\nhost=a\n"))
    install(hroot, package(hroot, "2.0-1", "port=2\nhost=a\n"))
    result = hroot.clp("diff", "2")
    assert result.returncode == 0, result.stderr
    assert "--- a/etc/demo.conf\tbefore transaction 2" in result.stdout
    assert "-port=1\n+port=2\n host=a" in result.stdout
    document = json.loads(hroot.clp("diff", "2", "--json").stdout)
    assert document["files"][0]["path"] == "/etc/demo.conf"
    created = json.loads(hroot.clp("diff", "1", "--json").stdout)["files"][0]
    assert created["summary"] == "created" and "+port=1" in created["diff"]
    missing = hroot.clp("diff", "9")
    assert missing.returncode == 2 and "there is no transaction 9" in missing.stderr


def test_snapshots_cover_only_what_the_transaction_touches(hroot):
    """Cost follows the transaction: 500 unrelated files in /etc are never read."""
    for number in range(500):
        (hroot.root / f"etc/unrelated-{number}.conf").write_text("x\n")
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    from clp_alpm.store.state import StateDB

    state = StateDB(hroot.root / "var/lib/clp", readonly=True)
    (record,) = state.list_transactions()
    state.close()
    conf = "/etc/demo.conf"
    assert set(record.paths) == {conf, f"{conf}.pacnew", f"{conf}.pacsave"}


def test_undo_transaction_brings_back_versions_and_files(hroot):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    result = hroot.clp("undo-transaction", "2", "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert hroot.installed(PKG) == "1.0-1"
    assert (hroot.root / "etc/demo.conf").read_text() == "port=1\n"
    assert (hroot.root / "usr/share/demo/VERSION").read_text() == "1.0-1"
    records = transactions(hroot)
    assert records[1]["status"] == "undone"
    # the undo's own pacman run was recorded exactly once, as clp's
    assert len(records) == 3 and records[2]["origin"] == "clp"
    assert moves(records[2]) == [(PKG, "2.0-1", "1.0-1")]
    again = hroot.clp("undo-transaction", "2", "--noconfirm")
    assert again.returncode == 2 and "already undone" in again.stderr


def test_undo_of_an_install_removes_the_package_and_its_files(hroot):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    result = hroot.clp("undo-transaction", "1", "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert hroot.installed(PKG) is None
    assert not (hroot.root / "etc/demo.conf").exists()


def test_undo_of_a_removal_reinstalls_from_the_cache(hroot):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    assert hroot.pacman("-R", PKG).returncode == 0
    result = hroot.clp("undo-transaction", "2", "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert hroot.installed(PKG) == "1.0-1"
    assert (hroot.root / "etc/demo.conf").read_text() == "port=1\n"


def test_undo_refuses_to_overwrite_a_file_changed_since_unless_forced(hroot):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    (hroot.root / "etc/demo.conf").write_text("port=2\n# my edit\n")
    refused = hroot.clp("undo-transaction", "2", "--noconfirm")
    assert refused.returncode == 1, refused.stderr
    assert "/etc/demo.conf (content changed)" in refused.stderr and "--force" in refused.stderr
    assert hroot.installed(PKG) == "2.0-1"  # nothing changed
    assert (hroot.root / "etc/demo.conf").read_text() == "port=2\n# my edit\n"
    forced = hroot.clp("undo-transaction", "2", "--force", "--noconfirm")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert (hroot.root / "etc/demo.conf").read_text() == "port=1\n"


def test_undo_refuses_when_a_later_transaction_changed_the_package(hroot):
    for version in ("1.0-1", "2.0-1", "3.0-1"):
        install(hroot, package(hroot, version, f"port={version}\n"))
    refused = hroot.clp("undo-transaction", "2", "--noconfirm")
    assert refused.returncode == 2
    assert "demo changed again in transaction 3" in refused.stderr
    assert hroot.installed(PKG) == "3.0-1"


def test_undo_without_the_old_package_in_the_cache_changes_nothing(hroot):
    first = package(hroot, "1.0-1", "port=1\n")
    install(hroot, first)
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    first.unlink()
    result = hroot.clp("undo-transaction", "2", "--noconfirm")
    assert result.returncode == 2, result.stderr
    assert "demo 1.0-1 is in no package cache or archive" in result.stderr
    assert hroot.installed(PKG) == "2.0-1"
    assert (hroot.root / "etc/demo.conf").read_text() == "port=2\n"


# -- patches kept in force --------------------------------------------------------------

APPEND = "echo patched >> /etc/demo.conf\necho run >> /var/log/demo-runs\n"


def apply_patch(hroot: HookRoot, tmp_path: Path, keyring, extra: str = "", name: str = "CLPR1"):
    patch = make_patch(tmp_path, keyring, APPEND, files=("/etc/demo.conf",), extra=extra,
                       name=name)  # fmt: skip
    result = hroot.clp("apply", patch, "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr
    return patch


def test_upgrade_that_replaces_a_patched_file_reapplies_the_patch(hroot, tmp_path, keyring):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    apply_patch(hroot, tmp_path, keyring)
    conf = hroot.root / "etc/demo.conf"
    assert conf.read_text() == "port=1\npatched\n"

    output = install(hroot, package(hroot, "2.0-1", "port=2\n"))
    assert "re-applying CLPR1: transaction 2 replaced /etc/demo.conf" in output
    assert "CLPR1 re-applied" in output
    assert conf.read_text() == "port=2\npatched\n"
    (patch,) = json.loads(hroot.clp("list", "--json").stdout)
    assert patch["state"] == "applied" and "re-applied" in patch["message"]

    # rollback now restores the upgraded file, not the one from before the upgrade
    back = hroot.clp("rollback", "CLPR1", "--noconfirm")
    assert back.returncode == 0, back.stdout + back.stderr
    assert conf.read_text() == "port=2\n"


def test_pacnew_beside_a_patched_file_reapplies_the_patch(hroot, tmp_path, keyring):
    install(hroot, package(hroot, "1.0-1", "port=1\n", backup=True))
    apply_patch(hroot, tmp_path, keyring)
    output = install(hroot, package(hroot, "2.0-1", "port=2\n", backup=True))
    assert (hroot.root / "etc/demo.conf.pacnew").read_text() == "port=2\n"
    assert "replaced /etc/demo.conf.pacnew" in output
    assert (hroot.root / "var/log/demo-runs").read_text() == "run\nrun\n"


def test_a_trigger_package_runs_the_install_script_again(hroot, tmp_path, keyring):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    apply_patch(hroot, tmp_path, keyring, extra='<Trigger><Pkg name="other"/></Trigger>')
    output = install(hroot, package(hroot, "1.0-1", "x=1\n", name="other"))
    assert "re-applying CLPR1: transaction 2 installed other 1.0-1" in output
    assert (hroot.root / "var/log/demo-runs").read_text() == "run\nrun\n"
    unrelated = install(hroot, package(hroot, "1.0-1", "y=1\n", name="third"))
    assert "clp: re-applying" not in unrelated


def test_a_failing_reapply_restores_the_upgraded_file_and_says_so(hroot, tmp_path, keyring):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    script = ("if [ -e /etc/demo.conf ] && grep -q port=2 /etc/demo.conf; then "
              "echo broken >> /etc/demo.conf; exit 3; fi\n" + APPEND)  # fmt: skip
    patch = make_patch(tmp_path, keyring, script, files=("/etc/demo.conf",), name="CLPR1")
    assert hroot.clp("apply", patch, "--noconfirm").returncode == 0
    result = hroot.pacman("-U", package(hroot, "2.0-1", "port=2\n"))
    assert result.returncode == 0  # pacman's transaction stands
    assert "CLPR1 is no longer in force" in result.stdout
    assert (hroot.root / "etc/demo.conf").read_text() == "port=2\n"
    (patch_record,) = json.loads(hroot.clp("list", "--json").stdout)
    assert "not in force" in patch_record["message"]
    assert patch_record["state"] == "applied" and patch_record["in_force"] is False
    assert "not in force" in hroot.clp("list").stdout
    assert "State         : not in force" in hroot.clp("info", "CLPR1").stdout
    # a rollback now keeps the upgraded file: never the configuration of the old version
    back = hroot.clp("rollback", "CLPR1", "--noconfirm")
    assert back.returncode == 0, back.stdout + back.stderr
    assert (hroot.root / "etc/demo.conf").read_text() == "port=2\n"


# -- robustness --------------------------------------------------------------------------


@pytest.mark.parametrize("breakage", ["state-dir-is-a-file", "corrupt-database", "locked"])
def test_a_broken_state_never_stops_pacman(hroot, breakage):
    state = hroot.root / "var/lib/clp"
    if breakage == "state-dir-is-a-file":
        state.write_text("not a directory\n")
    elif breakage == "corrupt-database":
        state.mkdir(mode=0o700)
        (state / "clp.db").write_bytes(b"this is not sqlite" * 100)
    env = {}
    if breakage == "locked":
        env = {"CLP_TEST_HOOK_LOCK_WAIT": "0.2"}
    holder = None
    if breakage == "locked":
        import subprocess
        import sys

        state.mkdir(mode=0o700)
        holder = subprocess.Popen(
            [sys.executable, "-c", "import fcntl,sys,time; f=open(sys.argv[1],'w'); "
             "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
             str(state / "lock")], stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    try:
        started = time.monotonic()
        result = hroot.pacman("-U", package(hroot, "1.0-1", "port=1\n"), env=env)
        took = time.monotonic() - started
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    assert result.returncode == 0, result.stderr
    assert hroot.installed(PKG) == "1.0-1"
    # pacman passes a hook's output (stderr too) on to its own stdout
    assert "warning: clp could not record this transaction" in result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert "clp could not record" in (hroot.root / "var/log/CLP.log").read_text()
    assert took < 30


def test_a_full_disk_under_the_state_dir_never_stops_pacman(hroot):
    import shlex

    state = hroot.root / "var/lib/clp"
    state.mkdir(mode=0o700)
    install(hroot, package(hroot, "1.0-1", "port=1\n"))  # recorded while there is room
    upgrade = hroot.pacman_command("-U", package(hroot, "2.0-1", "port=2\n" * 4000))
    script = (f"mount -t tmpfs -o size=256k tmpfs {state} && "
              f"dd if=/dev/zero of={state}/fill bs=4k count=1000 2>/dev/null; "
              f"exec {shlex.join(upgrade)}")  # fmt: skip
    result = hroot.run("sh", "-c", script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert hroot.installed(PKG) == "2.0-1"
    assert "warning: clp could not record this transaction" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_an_interrupted_transaction_is_closed_by_the_next(hroot):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    # a pre-transaction hook whose pacman then died: no post hook ever ran
    pre = hroot.run("chroot", hroot.root, "/usr/bin/clp", "hook", "pre-transaction",
                    input=f"{PKG}\netc/demo.conf\n")  # fmt: skip
    assert pre.returncode == 0 and not pre.stderr, pre.stderr
    (hroot.root / "etc/demo.conf").write_text("half-written\n")
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    records = transactions(hroot)
    assert [r["status"] for r in records] == ["done", "interrupted", "done"]
    assert records[1]["changed_files"] == ["/etc/demo.conf"]
    assert "never ran" in records[1]["message"]


def test_clp_revert_inside_hooks_does_not_deadlock_and_records_once(hroot):
    (hroot.root / "etc/pacman.d/clp-pins.conf").write_text("")
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    started = time.monotonic()
    result = hroot.clp("revert", PKG, "1.0-1", "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 20  # the lock wait alone would take 10 s
    assert hroot.installed(PKG) == "1.0-1"
    records = transactions(hroot)
    assert len(records) == 3
    assert records[2]["origin"] == "clp" and moves(records[2]) == [(PKG, "2.0-1", "1.0-1")]


def test_reapply_inside_clps_own_transaction_runs_after_it(hroot, tmp_path, keyring):
    """A revert replaces a patched file: the hook defers, clp re-applies when it is done."""
    (hroot.root / "etc/pacman.d/clp-pins.conf").write_text("")
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    apply_patch(hroot, tmp_path, keyring)
    result = hroot.clp("revert", PKG, "1.0-1", "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CLPR1 re-applied" in result.stdout
    assert (hroot.root / "etc/demo.conf").read_text() == "port=1\npatched\n"


def test_hook_files_are_what_pacman_accepts(hroot):
    """An unknown key in a hook file fails every transaction: pacman ran both without error,
    and each says why it never aborts."""
    output = install(hroot, package(hroot, "1.0-1", "port=1\n"))
    assert "Recording package versions" in output and "Recording the transaction" in output
    for hook in (hroot.root / "usr/share/libalpm/hooks").glob("*clp*.hook"):
        text = hook.read_text()
        assert "AbortOnFail" not in text.replace("# No AbortOnFail", "")
        assert "NeedsTargets" in text and "Target = etc/*" in text


def test_hook_with_nothing_to_record_is_quiet(hroot):
    result = hroot.run("chroot", hroot.root, "/usr/bin/clp", "hook", "bogus", input="")
    assert result.returncode == 0
    assert "unknown hook 'bogus'" in result.stderr
    assert os.path.exists(hroot.root / "usr/bin/clp")


def test_a_transaction_lifts_a_pin_whose_fix_has_arrived(hroot, tmp_path):
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    (hroot.root / "etc/pacman.d/clp-pins.conf").write_text("")
    (hroot.root / "etc/pacman.conf").write_text(
        "[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n"
        f"Include = /etc/pacman.d/clp-pins.conf\n[testrepo]\nServer = file://{repo}\n"
    )
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    pinned = hroot.clp("revert", PKG, "1.0-1", "--until", "3.0-1", "--noconfirm")
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert "IgnorePkg = demo" in (hroot.root / "etc/pacman.d/clp-pins.conf").read_text()

    fixed = make_package(repo, PKG, "3.0-1", {"etc/demo.conf": b"port=3\n"})
    subprocess.run(["repo-add", "-q", str(repo / "testrepo.db.tar.gz"), str(fixed)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    assert hroot.pacman("-Sy").returncode == 0
    output = install(hroot, package(hroot, "1.0-1", "x=1\n", name="other"))
    assert "clp: unpinned demo (a repository offers 3.0-1 or newer)" in output
    assert "IgnorePkg = demo" not in (hroot.root / "etc/pacman.d/clp-pins.conf").read_text()


def test_status_lists_processes_still_using_replaced_files(hroot, clp):
    """Run on the host, in the holder's mount namespace (hroot.clp would run in its own)."""
    import subprocess
    import sys

    def status(*args: str) -> subprocess.CompletedProcess[str]:
        return clp("--root", str(hroot.root), "status", *args)

    install(hroot, package(hroot, "1.0-1", "port=1\n", {"usr/share/demo/data.bin": b"1" * 4096}))
    data = hroot.root / "usr/share/demo/data.bin"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import mmap,sys,time; f=open(sys.argv[1],'rb'); "
         "m=mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ); print('mapped', flush=True); "
         "time.sleep(60)", str(data)], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "mapped\n"
        clean = json.loads(status("--json").stdout)
        assert holder.pid not in [p["pid"] for p in clean["processes"]]
        install(hroot, package(hroot, "2.0-1", "port=2\n", {"usr/share/demo/data.bin": b"2"}))
        result = status("--json")
        assert result.returncode == 0, result.stderr
        stale = {p["pid"]: p for p in json.loads(result.stdout)["processes"]}
        assert stale[holder.pid]["files"] == ["/usr/share/demo/data.bin"]
        text = status().stdout
        assert f"{holder.pid} python" in text and "/usr/share/demo/data.bin" in text
    finally:
        holder.kill()
        holder.wait()


def test_services_a_patch_names_are_not_restarted_outside_the_running_system(
    hroot, tmp_path, keyring
):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    extra = "<Restart><Service>demo.service</Service></Restart>"
    patch = make_patch(tmp_path, keyring, APPEND, files=("/etc/demo.conf",), extra=extra,
                       name="CLPR1")  # fmt: skip
    result = hroot.clp("apply", patch, "--noconfirm", "--json")
    assert result.returncode == 0, result.stderr
    (restart,) = json.loads(result.stdout)["restarts"]
    assert restart["unit"] == "demo.service" and restart["status"] == "skipped"
    assert "demo.service: skipped" in result.stderr


# -- what a review found: each a scenario with real pacman --------------------------------


def test_rollback_after_a_trigger_reapply_restores_the_original(hroot, tmp_path, keyring):
    """A re-apply keeps the patch's 'before' state for files the transaction did not replace:
    rolling back still gives the file as it was before the patch."""
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    apply_patch(hroot, tmp_path, keyring, extra='<Trigger><Pkg name="other"/></Trigger>')
    install(hroot, package(hroot, "1.0-1", "x=1\n", name="other"))
    conf = hroot.root / "etc/demo.conf"
    assert conf.read_text() == "port=1\npatched\npatched\n"  # the test script is not idempotent
    back = hroot.clp("rollback", "CLPR1", "--noconfirm", "--force")
    assert back.returncode == 0, back.stdout + back.stderr
    assert conf.read_text() == "port=1\n"


def test_undo_of_an_upgrade_leaves_patched_files_to_the_patch(hroot, tmp_path, keyring):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    apply_patch(hroot, tmp_path, keyring)
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    conf = hroot.root / "etc/demo.conf"
    assert conf.read_text() == "port=2\npatched\n"
    undone = hroot.clp("undo-transaction", "2", "--noconfirm")  # no --force needed
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert "left to their patches" in undone.stdout
    assert "CLPR1 re-applied" in undone.stdout
    assert hroot.installed(PKG) == "1.0-1"
    assert conf.read_text() == "port=1\npatched\n"  # patched once, on the earlier version
    back = hroot.clp("rollback", "CLPR1", "--noconfirm")
    assert back.returncode == 0, back.stdout + back.stderr
    assert conf.read_text() == "port=1\n"


def test_an_undo_killed_after_restoring_is_rolled_back_with_the_users_edit(hroot):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    conf = hroot.root / "etc/demo.conf"
    conf.write_text("port=2\n# my edit\n")
    killed = hroot.clp("undo-transaction", "2", "--force", "--noconfirm",
                       env={"CLP_FAULT_KILL": "restore-files:after"})  # fmt: skip
    assert killed.returncode == -9 or killed.returncode == 137, killed.stderr
    recovered = hroot.clp("recover")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert hroot.installed(PKG) == "2.0-1"
    assert conf.read_text() == "port=2\n# my edit\n"
    assert transactions(hroot)[1]["status"] == "done"


def test_a_transaction_made_by_clp_is_undone_through_clp(hroot):
    (hroot.root / "etc/pacman.d/clp-pins.conf").write_text("")
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    assert hroot.clp("revert", PKG, "1.0-1", "--noconfirm").returncode == 0
    refused = hroot.clp("undo-transaction", "3", "--noconfirm")
    assert refused.returncode == 2 and "made by clp itself" in refused.stderr
    assert hroot.installed(PKG) == "1.0-1"


def test_a_stale_lock_claim_in_the_environment_is_not_trusted(hroot):
    """CLP_LOCK_HELD_BY of a clp that no longer holds the lock: the hooks lock as usual."""
    result = hroot.pacman("-U", package(hroot, "1.0-1", "port=1\n"),
                          env={"CLP_LOCK_HELD_BY": "4194000"})  # fmt: skip
    assert result.returncode == 0, result.stdout
    (record,) = transactions(hroot)
    assert record["origin"] == "pacman" and record["status"] == "done"


def test_a_pending_reapply_waits_for_the_next_clp_with_the_lock(hroot, tmp_path, keyring):
    """A re-apply the post hook could not run stays in the state until a clp runs it."""
    from clp_alpm.ops.pending import Reapply, add_pending, pending
    from clp_alpm.store.state import StateDB

    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    apply_patch(hroot, tmp_path, keyring)
    conf = hroot.root / "etc/demo.conf"
    conf.write_text("port=9\n")  # as an upgrade would have left it
    state = StateDB(hroot.root / "var/lib/clp")
    add_pending(state, [Reapply("CLPR1", "transaction 7 replaced /etc/demo.conf",
                                ["/etc/demo.conf"])])  # fmt: skip
    add_pending(state, [Reapply("CLPR1", "transaction 8 installed other 1.0-1", [])])
    (merged,) = pending(state)
    assert merged.replaced == ["/etc/demo.conf"] and "transaction 8" in merged.reason
    state.close()
    listed = hroot.clp("list")  # a reading command leaves it, and says the patch is not in force
    assert "re-applying" not in listed.stdout
    assert listed.stdout.split()[:3] == ["CLPR1", "1", "not"], listed.stdout
    (record,) = json.loads(hroot.clp("list", "--json").stdout)
    assert record["state"] == "applied" and record["in_force"] is False
    assert record["message"].startswith("not in force: waiting to be re-applied (transaction 7")
    result = hroot.clp("recover")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "re-applying CLPR1: transaction 7 replaced /etc/demo.conf" in result.stdout
    assert conf.read_text() == "port=9\npatched\n"
    state = StateDB(hroot.root / "var/lib/clp", readonly=True)
    assert pending(state) == []
    state.close()
    assert hroot.clp("rollback", "CLPR1", "--noconfirm").returncode == 0
    assert conf.read_text() == "port=9\n"


def test_a_post_hook_of_another_pacman_never_takes_over_an_open_record(hroot):
    """An open record left by a pacman that died is closed as interrupted; the next
    transaction's post hook (its pre hook failed) makes a record of its own that has no
    earlier versions and so cannot be undone: never an upgrade taken for an install."""
    from clp_alpm.config import load_config
    from clp_alpm.ops.record import HookTargets, Recorder, begin, finish
    from clp_alpm.store.snapshots import SnapshotStore
    from clp_alpm.store.state import StateDB

    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    config = load_config(hroot.root)
    state = StateDB(hroot.root / "var/lib/clp")
    recorder = Recorder(config, state, SnapshotStore(hroot.root / "var/lib/clp/snapshots"))
    begin(recorder, HookTargets(("other",), ()), "pacman", pacman_pid=111)
    record = finish(recorder, HookTargets((PKG,), ("/etc/demo.conf",)), "pacman", pacman_pid=222)
    state.close()
    records = {r["id"]: r for r in transactions(hroot)}
    assert records[2]["status"] == "interrupted" and moves(records[2]) == [("other", None, None)]
    assert record.snapshot_before is None and moves(records[3]) == [(PKG, None, "1.0-1")]
    refused = hroot.clp("undo-transaction", str(record.id), "--noconfirm")
    assert refused.returncode == 2 and "no record from before it" in refused.stderr
    assert hroot.installed(PKG) == "1.0-1"


def test_undo_refuses_when_a_later_transaction_moved_the_package_even_back(hroot):
    """Installed (1), upgraded (2), downgraded by hand (3): the version matches what 1 left,
    but undoing 1 would act on 3's result. An undo of a later transaction does not count."""
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    refused = hroot.clp("undo-transaction", "1", "--noconfirm")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "demo changed again in transaction 2" in refused.stderr
    assert hroot.installed(PKG) == "1.0-1"

    # step by step instead: undo 3 (back to 2.0), undo 2 (back to 1.0), then 1
    for number in ("3", "2", "1"):
        result = hroot.clp("undo-transaction", number, "--noconfirm")
        assert result.returncode == 0, number + result.stdout + result.stderr
    assert hroot.installed(PKG) is None
    records = transactions(hroot)
    assert [r["status"] for r in records[:3]] == ["undone"] * 3
    assert [r["origin"] for r in records[3:]] == ["clp"] * 3


def test_a_revert_and_its_rollback_do_not_block_undoing_an_earlier_transaction(hroot):
    (hroot.root / "etc/pacman.d/clp-pins.conf").write_text("")
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    assert hroot.clp("revert", PKG, "1.0-1", "--noconfirm").returncode == 0
    in_force = hroot.clp("undo-transaction", "2", "--noconfirm")
    assert in_force.returncode == 2 and "demo is 1.0-1 now, not 2.0-1" in in_force.stderr
    assert hroot.clp("rollback", "R1", "--noconfirm").returncode == 0
    undone = hroot.clp("undo-transaction", "2", "--noconfirm")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert hroot.installed(PKG) == "1.0-1"


def test_one_transaction_of_several_packages_is_one_record(hroot):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    result = hroot.pacman("-U", package(hroot, "2.0-1", "port=2\n"),
                          package(hroot, "1.0-1", "x=1\n", name="other"))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    records = transactions(hroot)
    assert len(records) == 2
    assert sorted(moves(records[1])) == [(PKG, "1.0-1", "2.0-1"), ("other", None, "1.0-1")]
    assert sorted(records[1]["changed_files"]) == ["/etc/demo.conf", "/etc/other.conf"]
    undone = hroot.clp("undo-transaction", "2", "--noconfirm")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert hroot.installed(PKG) == "1.0-1" and hroot.installed("other") is None
    assert not (hroot.root / "etc/other.conf").exists()


def test_a_restore_point_waits_for_a_failed_pacman_undo_to_be_retried(hroot):
    """Recovery of a killed undo: its pacman reinstall fails once (pacman is busy); the user's
    files are restored only after that reinstall finally ran, never before it."""
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    install(hroot, package(hroot, "2.0-1", "port=2\n"))
    conf = hroot.root / "etc/demo.conf"
    conf.write_text("port=2\n# my edit\n")
    killed = hroot.clp("undo-transaction", "2", "--force", "--noconfirm",
                       env={"CLP_FAULT_KILL": "restore-files:after"})  # fmt: skip
    assert killed.returncode in (-9, 137), killed.stderr
    lock = hroot.root / "var/lib/pacman/db.lck"
    with lock.open("w"):  # a pacman at work holds its lock open, as libalpm does
        stuck = hroot.clp("recover")
    assert stuck.returncode != 0 and "db.lck" in stuck.stderr, stuck.stdout + stuck.stderr
    lock.unlink()
    recovered = hroot.clp("recover")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert hroot.installed(PKG) == "2.0-1"
    assert conf.read_text() == "port=2\n# my edit\n"


def test_a_target_path_that_is_not_utf8_does_not_cost_the_record(hroot):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    (hroot.root / "tmp/targets").write_bytes(b"demo\netc/caf\xe9.conf\n")
    hook = f"chroot {hroot.root} /usr/bin/clp hook"
    targets = f"< {hroot.root}/tmp/targets"
    # one shell runs both, as one pacman does: the post hook recognises the pre hook's record
    result = hroot.run("sh", "-c", f"{hook} pre-transaction {targets}; "
                       f"{hook} post-transaction {targets}; true")  # fmt: skip
    assert result.returncode == 0 and not result.stderr, result.stderr
    records = transactions(hroot)
    assert records[-1]["status"] == "done" and moves(records[-1]) == [(PKG, "1.0-1", "1.0-1")]


def _start_upgrade_that_stops_at(hroot: HookRoot, where: str) -> tuple[object, list[Path]]:
    """`pacman -U` of three upgrades, stopped where pacman is then SIGKILLed: in the second
    package's post_upgrade scriptlet (the first two upgraded, the third not), or in a
    post-transaction hook that runs before clp's (every package done, clp's post hook never
    runs). Returns the running pacman and the new package files."""
    script = b"post_upgrade() {\n  touch /tmp/stop-here\n  sleep 600\n}\n"
    for name in ("alpha", "bravo", "charlie"):
        install(hroot, package(hroot, "1.0-1", f"{name}=1\n", name=name))
    extra = {"alpha": {}, "bravo": {".INSTALL": script} if where == "scriptlet" else {},
             "charlie": {}}  # fmt: skip
    new = [package(hroot, "2.0-1", f"{name}=2\n", extra[name], name=name) for name in extra]
    if where == "post-hook":
        (hroot.root / "usr/share/libalpm/hooks/50-stop.hook").write_text(
            "[Trigger]\nOperation = Upgrade\nType = Package\nTarget = *\n\n[Action]\n"
            "Description = a hook that never ends\nWhen = PostTransaction\n"
            "Exec = /bin/sh -c 'touch /tmp/stop-here; sleep 600'\n"
        )
    process = hroot.start(*hroot.pacman_command("-U", *new))
    marker = hroot.root / "tmp/stop-here"
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline and process.poll() is None, "pacman never got there"
        time.sleep(0.05)
    marker.unlink()
    return process, new


@pytest.mark.parametrize("where", ["scriptlet", "post-hook"])
def test_a_pacman_killed_between_the_hooks_leaves_an_undoable_transaction(hroot, where):
    """pacman SIGKILLed mid-transaction: its db.lck stays and clp's post hook never runs. The
    person removes the stale lock, as pacman's own error tells them to; clp then shows the
    transaction as interrupted, with what it did, and undoes it."""
    import signal

    from tests.kits import reaper

    process, _ = _start_upgrade_that_stops_at(hroot, where)
    process.send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
    process.wait(timeout=30)  # type: ignore[attr-defined]
    reaper.kill_all(reaper.descendants() - {os.getpid()})  # its scriptlet or hook, orphaned
    lock = hroot.root / "var/lib/pacman/db.lck"
    assert lock.exists()
    blocked = hroot.pacman("-R", "charlie")  # what the person sees next
    assert "unable to lock database" in blocked.stderr
    lock.unlink()  # what pacman says: "remove /var/lib/pacman/db.lck"
    assert hroot.pacman("-Dk").returncode == 0

    records = transactions(hroot)
    last = records[-1]
    assert last["status"] == "interrupted", last
    assert "never ran" in last["message"]
    upgraded = {"scriptlet": ["alpha", "bravo"], "post-hook": ["alpha", "bravo", "charlie"]}
    assert sorted(name for name, old, new in moves(last) if old != new) == upgraded[where]
    assert sorted(last["changed_files"]) == [f"/etc/{name}.conf" for name in upgraded[where]]

    if where == "post-hook":
        (hroot.root / "usr/share/libalpm/hooks/50-stop.hook").unlink()
    undone = hroot.clp("undo-transaction", str(last["id"]), "--noconfirm")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    for name in ("alpha", "bravo", "charlie"):
        assert hroot.installed(name) == "1.0-1"
        assert (hroot.root / f"etc/{name}.conf").read_text() == f"{name}=1\n"
    assert transactions(hroot)[last["id"] - 1]["status"] == "undone"
    assert hroot.pacman("-Dk").returncode == 0
    assert not lock.exists()


def test_a_transaction_whose_post_hook_failed_is_interrupted_and_undoable(hroot):
    """pacman finished, but clp's post hook never recorded (it failed): the record the pre
    hook opened is closed by the next clp command, and the transaction can be undone."""
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    post = hroot.root / "usr/share/libalpm/hooks/zz-clp-post.hook"
    saved = post.read_text()
    post.write_text(saved.replace("/usr/bin/clp hook post-transaction", "/bin/false"))
    failed = hroot.pacman("-U", package(hroot, "2.0-1", "port=2\n"))
    assert failed.returncode == 0, failed.stdout + failed.stderr  # pacman itself went on
    post.write_text(saved)
    listed = hroot.clp("transactions")
    assert listed.returncode == 0, listed.stderr
    assert "transaction 2 was interrupted" in listed.stdout + listed.stderr
    assert "[interrupted]" in listed.stdout
    undone = hroot.clp("undo-transaction", "2", "--noconfirm")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert hroot.installed(PKG) == "1.0-1"
    assert (hroot.root / "etc/demo.conf").read_text() == "port=1\n"


def test_an_open_transaction_whose_pacman_still_holds_the_lock_stays_open(hroot):
    """A record whose pacman is still at work (a process holds db.lck) is not closed by a clp
    command: only once the lock is free is it taken for interrupted."""
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    pre = hroot.run("chroot", hroot.root, "/usr/bin/clp", "hook", "pre-transaction",
                    input=f"{PKG}\netc/demo.conf\n")  # fmt: skip
    assert pre.returncode == 0, pre.stderr
    lock = hroot.root / "var/lib/pacman/db.lck"
    with lock.open("w"):  # a pacman at work holds its lock open, as libalpm does
        assert [r["status"] for r in transactions(hroot)] == ["done", "open"]
        refused = hroot.clp("undo-transaction", "2", "--noconfirm")
        assert refused.returncode != 0 and "still running" in refused.stderr, refused.stderr
    lock.unlink()
    assert [r["status"] for r in transactions(hroot)] == ["done", "interrupted"]
