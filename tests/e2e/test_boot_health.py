"""Self-healing upgrades without rebooting: real pacman with clp's real hook files upgrades a
package in a sandbox root, and `clp boot-check --early` / `clp boot-check` calls, each with
its own CLP_BOOT_ID, stand for the boots that follow, with failing and passing health checks
in the root's /etc/CLP/health.d."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.kits.hookkit import HookRoot, install, transactions
from tests.kits.paths import REPO
from tests.kits.pkgkit import CACHE, make_package

PKG = "demo"
PINS = "etc/pacman.d/clp-pins.conf"
FAIL = "#!/bin/sh\necho 'the display never came up'\nexit 1\n"
PASS = "#!/bin/sh\necho 'all well'\nexit 0\n"


@pytest.fixture
def hroot(sandbox: Path) -> HookRoot:
    """demo 1.0-1 installed, then upgraded to 2.0-1 by `pacman -U` (both files in the cache);
    pacman.conf includes clp's pins file."""
    (sandbox / "etc/pacman.d").mkdir(parents=True, exist_ok=True)
    (sandbox / PINS).write_text("")
    (sandbox / "run").mkdir(exist_ok=True)  # a running system's /run, for the motd
    (sandbox / "etc/pacman.conf").write_text(
        "[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n"
        "Include = /etc/pacman.d/clp-pins.conf\n"
    )
    root = HookRoot(sandbox)
    install(root, package(root, "1.0-1"))
    good = boot(root, "boot0")  # the machine was fine with 1.0-1: probation over
    assert good.returncode == 0, good.stdout + good.stderr
    install(root, package(root, "2.0-1"))
    return root


def package(root: HookRoot, version: str, name: str = PKG) -> Path:
    files = {f"etc/{name}.conf": f"v={version}\n".encode(), f"usr/share/{name}/V": version.encode()}
    return make_package(root.root / CACHE, name, version, files)


def configure(root: HookRoot, boots: int | None = None, timeout: int | None = None) -> None:
    lines = ["[options]"]
    if boots is not None:
        lines.append(f"HealthBoots = {boots}")
    if timeout is not None:
        lines.append(f"HealthTimeout = {timeout}")
    (root.root / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (root.root / "etc/CLP/clp.conf").write_text("\n".join(lines) + "\n")


def check(root: HookRoot, phase: str, name: str, text: str) -> Path:
    directory = root.root / f"etc/CLP/health.d/{phase}.d"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def boot(
    root: HookRoot, boot_id: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`clp boot-check ARGS` in the boot `boot_id`."""
    return root.clp("boot-check", *args, env={"CLP_BOOT_ID": boot_id} | (env or {}))


def boot_json(root: HookRoot, boot_id: str, *args: str, code: int = 0) -> dict:
    result = boot(root, boot_id, *args, "--json")
    assert result.returncode == code, result.stdout + result.stderr
    return json.loads(result.stdout)


def upgrade(root: HookRoot) -> dict:
    (record,) = [
        r
        for r in transactions(root)
        if r["origin"] == "pacman" and r["packages"][0]["to"] == "2.0-1"
    ]
    return record


def pinned(root: HookRoot) -> str:
    return (root.root / PINS).read_text()


def unfinished(root: HookRoot) -> list:
    import sqlite3

    conn = sqlite3.connect(root.root / "var/lib/clp/clp.db")
    try:
        return conn.execute(
            "SELECT id, kind, status FROM operations WHERE status != 'done' AND status != 'undone'"
        ).fetchall()
    finally:
        conn.close()


# -- how it will be checked -------------------------------------------------------------------


def test_a_failing_required_check_undoes_the_upgrade_on_the_next_boot(hroot):
    configure(hroot, boots=1)
    check(hroot, "required", "50-display", FAIL)
    assert upgrade(hroot)["health"] == "probation"

    late = boot(hroot, "boot1")
    assert late.returncode == 1, late.stdout + late.stderr
    assert "required.d/50-display: exited with status 1" in late.stdout
    assert hroot.installed(PKG) == "2.0-1"  # the failed boot itself changes nothing
    assert upgrade(hroot)["health"] == "failed"

    early = boot_json(hroot, "boot2", "--early")
    assert [u["transaction"] for u in early["undone"]] == [upgrade(hroot)["id"]]
    assert early["pinned"] == ["demo 1.0-1"]
    assert hroot.installed(PKG) == "1.0-1"
    assert "IgnorePkg = demo" in pinned(hroot)
    assert "# clp: demo 1.0-1 until >2.0-1 (undone after 1 failed boot(s)" in pinned(hroot)
    record = upgrade(hroot)
    assert record["status"] == "undone" and record["health"] == "undone-after-failed-boots"
    assert "after 1 failed boot(s)" in record["message"]
    assert "boot boot1: required.d/50-display: exited with status 1" in record["message"]
    assert "clp unpin demo" in record["message"] and "pacman -Syu" in record["message"]
    assert (hroot.root / "etc/demo.conf").read_text() == "v=1.0-1\n"
    listed = hroot.clp("pins")
    assert "demo" in listed.stdout and "1.0-1" in listed.stdout, listed.stdout + listed.stderr
    motd = (hroot.root / "run/motd.d/clp-health").read_text()
    assert "clp undid it" in motd and "clp unpin demo && pacman -Syu" in motd
    assert "required.d/50-display" in motd
    assert unfinished(hroot) == []


def test_a_passing_check_leaves_the_upgrade_and_marks_it_good(hroot):
    configure(hroot, boots=1)
    check(hroot, "required", "50-display", PASS)
    marker = hroot.root / "var/green-ran"
    check(hroot, "green", "10-mark", f"#!/bin/sh\necho green > /{marker.relative_to(hroot.root)}\n")
    assert boot(hroot, "boot1", "--early").returncode == 0
    late = boot_json(hroot, "boot1")
    assert late["verdict"] == "good"
    assert [c["result"] for c in late["checks"]] == ["passed", "passed"]  # required, green
    assert marker.read_text() == "green\n"
    assert boot_json(hroot, "boot2", "--early")["undone"] == []
    assert hroot.installed(PKG) == "2.0-1"
    assert upgrade(hroot)["health"] == "good"
    assert "demo" not in pinned(hroot)


def test_a_probation_boot_that_never_reached_the_late_check_counts_as_failed(hroot):
    configure(hroot, boots=1)
    check(hroot, "required", "50-display", PASS)  # never run: the boot never got that far
    first = boot_json(hroot, "boot1", "--early")
    assert first["undone"] == [] and first["probation"] == [upgrade(hroot)["id"]]
    # hard reset at a black screen: no `clp boot-check` in boot1
    second = boot_json(hroot, "boot2", "--early")
    assert second["counted_failed"] == ["boot1"]
    assert hroot.installed(PKG) == "1.0-1"
    record = upgrade(hroot)
    assert record["health"] == "undone-after-failed-boots"
    assert "boot boot1: never reached the late check" in record["message"]


def test_health_boots_zero_never_undoes(hroot):
    configure(hroot, boots=0)
    check(hroot, "required", "50-display", FAIL)
    for number in range(1, 5):
        assert boot(hroot, f"boot{number}", "--early").returncode == 0
        assert boot(hroot, f"boot{number}").returncode == 1
    early = boot_json(hroot, "boot5", "--early")
    assert early["undone"] == [] and early["failed_boots_in_row"] == 4
    assert any("HealthBoots = 0" in m for m in early["messages"])
    assert hroot.installed(PKG) == "2.0-1"
    assert upgrade(hroot)["health"] == "failed"


# -- more -------------------------------------------------------------------------------------


def test_the_default_three_failed_boots_are_needed(hroot):
    check(hroot, "required", "50-display", FAIL)
    for number in (1, 2):
        boot(hroot, f"boot{number}", "--early")
        boot(hroot, f"boot{number}")
        assert hroot.installed(PKG) == "2.0-1"
    boot(hroot, "boot3", "--early")
    boot(hroot, "boot3")
    early = boot_json(hroot, "boot4", "--early")
    assert early["failed_boots_in_row"] == 3 and hroot.installed(PKG) == "1.0-1"


def test_a_good_boot_between_failed_ones_ends_the_count(hroot):
    configure(hroot, boots=2)
    failing = check(hroot, "required", "50-display", FAIL)
    boot(hroot, "boot1")
    failing.write_text(PASS)
    assert boot_json(hroot, "boot2")["verdict"] == "good"
    failing.write_text(FAIL)
    boot(hroot, "boot3")  # not on probation any more: nothing counts
    assert boot_json(hroot, "boot4", "--early")["undone"] == []
    assert hroot.installed(PKG) == "2.0-1"


def test_a_second_transaction_during_probation_is_undone_first(hroot):
    configure(hroot, boots=1)
    check(hroot, "required", "50-display", FAIL)
    boot(hroot, "boot1", "--early")
    install(hroot, package(hroot, "1.0-1", name="other"))
    install(hroot, package(hroot, "3.0-1"))
    boot(hroot, "boot1")
    assert boot(hroot, "boot2").returncode == 1  # a probation boot after the second one
    early = boot_json(hroot, "boot3", "--early")
    numbers = [r["id"] for r in transactions(hroot) if r["origin"] == "pacman"]
    assert [u["transaction"] for u in early["undone"]] == sorted(numbers[1:], reverse=True)
    assert hroot.installed(PKG) == "1.0-1" and hroot.installed("other") is None
    assert "# clp: demo 1.0-1 until >3.0-1" in pinned(hroot)
    healths = {r["id"]: r["health"] for r in transactions(hroot) if r["origin"] == "pacman"}
    assert set(list(healths.values())[1:]) == {"undone-after-failed-boots"}


def test_an_undo_that_is_impossible_changes_nothing_and_says_why(hroot):
    configure(hroot, boots=1)
    check(hroot, "required", "50-display", FAIL)
    (hroot.root / "etc/CLP/clp.conf").write_text("[options]\nHealthBoots = 1\nArchiveServer =\n")
    for old in (hroot.root / CACHE).glob("demo-1.0-1-*"):
        old.unlink()
    boot(hroot, "boot1")
    before = pinned(hroot)
    result = boot(hroot, "boot2", "--early")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: undo after failed boots impossible: " in result.stderr
    assert "demo 1.0-1" in result.stderr and "nothing was changed" in result.stdout
    assert hroot.installed(PKG) == "2.0-1" and pinned(hroot) == before
    assert upgrade(hroot)["health"] == "failed"
    assert not (hroot.root / "run/motd.d/clp-health").exists()


def test_a_killed_undo_is_recovered_by_the_next_early_check(hroot):
    configure(hroot, boots=1)
    check(hroot, "required", "50-display", FAIL)
    boot(hroot, "boot1")
    killed = boot(hroot, "boot2", "--early", env={"CLP_FAULT_KILL": "pacman-upgrade:after"})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert unfinished(hroot) != []
    early = boot_json(hroot, "boot3", "--early")
    assert [u["transaction"] for u in early["undone"]] == [upgrade(hroot)["id"]]
    assert hroot.installed(PKG) == "1.0-1" and "IgnorePkg = demo" in pinned(hroot)
    assert unfinished(hroot) == []
    assert upgrade(hroot)["health"] == "undone-after-failed-boots"


def test_a_kill_after_the_motd_was_written_takes_it_back_with_the_rest(hroot):
    configure(hroot, boots=1)
    check(hroot, "required", "50-display", FAIL)
    boot(hroot, "boot1")
    env = {"CLP_FAULT_KILL": "record-transaction:before"}
    killed = boot(hroot, "boot2", "--early", env=env)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert (hroot.root / "run/motd.d/clp-health").exists()
    recovered = hroot.clp("recover")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert not (hroot.root / "run/motd.d").exists()  # the directory clp made goes too
    assert hroot.installed(PKG) == "2.0-1" and "IgnorePkg = demo" not in pinned(hroot)
    assert upgrade(hroot)["health"] == "failed" and upgrade(hroot)["status"] == "done"


def test_a_wanted_check_that_fails_is_logged_and_never_acted_on(hroot):
    configure(hroot, boots=1)
    check(hroot, "wanted", "50-nice", FAIL)
    late = boot_json(hroot, "boot1")
    assert late["verdict"] == "good" and upgrade(hroot)["health"] == "good"
    log = (hroot.root / "var/log/CLP.log").read_text()
    assert "the display never came up" in log and "wanted.d/50-nice: exited with status 1" in log


def test_red_checks_run_before_the_undo(hroot):
    configure(hroot, boots=1)
    check(hroot, "required", "50-display", FAIL)
    check(hroot, "red", "10-save", "#!/bin/sh\ncat /etc/demo.conf > /var/red-saw\n")
    boot(hroot, "boot1")
    boot_json(hroot, "boot2", "--early")
    assert (hroot.root / "var/red-saw").read_text() == "v=2.0-1\n"


def test_status_and_transactions_tell_what_happened(hroot):
    configure(hroot, boots=1)
    check(hroot, "required", "50-display", FAIL)
    status = hroot.clp("status")
    assert "on probation" in status.stdout, status.stdout + status.stderr
    boot(hroot, "boot1")
    boot(hroot, "boot2", "--early")
    status = hroot.clp("status")
    assert status.returncode == 0, status.stderr
    number = upgrade(hroot)["id"]
    assert f"transaction {number} was undone after 1 failed boot(s)" in status.stdout
    assert "clp unpin demo" in status.stdout
    data = json.loads(hroot.clp("status", "--json").stdout)
    assert data["health"]["undone_after_failed_boots"][0]["transaction"] == number
    listing = hroot.clp("transactions").stdout
    assert "[undone] health: undone-after-failed-boots" in listing


def test_a_transaction_made_in_this_boot_waits_for_the_next_one(hroot):
    """The late check of the boot the upgrade ran in says nothing of it."""
    configure(hroot, boots=1)
    check(hroot, "required", "50-display", FAIL)
    own = upgrade(hroot)
    import sqlite3

    conn = sqlite3.connect(hroot.root / "var/lib/clp/clp.db")
    conn.execute("UPDATE transactions SET boot = 'boot1' WHERE id = ?", (own["id"],))
    conn.commit()
    conn.close()
    late = boot_json(hroot, "boot1", code=1)
    assert late["probation"] == [] and upgrade(hroot)["health"] == "probation"
    assert boot_json(hroot, "boot2", "--early")["undone"] == []


def publish(root: HookRoot, repo: Path, version: str) -> None:
    """demo VERSION into the repository `testrepo`, its database dated later each time (pacman
    downloads a database only when it is newer than its own, to the second)."""
    made = package(root, version)
    shutil.copy2(made, repo / made.name)
    database = repo / "testrepo.db.tar.gz"
    subprocess.run(["repo-add", "-q", str(database), str(repo / made.name)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    later = database.stat().st_mtime + 20 * len(list(repo.glob("*.pkg.tar*")))
    for name in (database, repo / "testrepo.db"):
        os.utime(name, (later, later), follow_symlinks=True)


def pacman_ok(root: HookRoot, *args: str) -> str:
    result = root.pacman(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_the_pin_holds_the_broken_version_back_and_a_newer_one_lifts_it(hroot, tmp_path):
    """pacman -Syu with the broken 2.0-1 still in the repository keeps 1.0-1; once the
    repository offers 2.0-2, `clp pins` lifts the pin and the next -Syu takes it, on
    probation again."""
    repo = tmp_path / "repo"
    repo.mkdir()
    conf = hroot.root / "etc/pacman.conf"
    conf.write_text(conf.read_text() + f"[testrepo]\nServer = file://{repo}\n")
    publish(hroot, repo, "2.0-1")
    configure(hroot, boots=1)
    check(hroot, "required", "50-display", FAIL)
    boot(hroot, "boot1")
    boot_json(hroot, "boot2", "--early")
    assert hroot.installed(PKG) == "1.0-1"
    output = pacman_ok(hroot, "-Syu")
    assert "demo: ignoring package upgrade (1.0-1 => 2.0-1)" in output
    assert hroot.installed(PKG) == "1.0-1" and "IgnorePkg = demo" in pinned(hroot)
    publish(hroot, repo, "2.0-2")
    lifted = hroot.clp("pins")
    assert "a repository offers a version newer than 2.0-1" in lifted.stdout, lifted.stdout
    assert "IgnorePkg = demo" not in pinned(hroot)
    pacman_ok(hroot, "-Syu")
    assert hroot.installed(PKG) == "2.0-2"
    assert transactions(hroot)[-1]["health"] == "probation"


# -- the checks the package ships -------------------------------------------------------------

SHIPPED = sorted(p for p in (REPO / "health.d").glob("*.d/*") if p.is_file())


def test_the_shipped_checks_cannot_judge_a_sandbox_root_and_pass(sandbox, clp):
    shutil.copytree(REPO / "health.d", sandbox / "etc/CLP/health.d")
    result = clp("--root", str(sandbox), "boot-check", "--json", env={"CLP_BOOT_ID": "b1"})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "good"
    ran = {f"{c['phase']}.d/{c['name']}": c for c in report["checks"]}
    assert sorted(ran) == sorted(str(p.relative_to(REPO / "health.d")) for p in SHIPPED)
    for name, outcome in ran.items():
        assert outcome["passed"] and not outcome["skipped"], (name, outcome)
        said = " ".join(outcome["output"])
        assert "cannot judge" in said or "nothing to remember" in said, (name, said)


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="systemd runs here")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO / "health.d")))
def test_each_shipped_check_passes_in_a_container_without_systemd(path, tmp_path):
    env = {"PATH": os.environ["PATH"], "CLP_HEALTH_STATE": str(tmp_path / "health"),
           "CLP_HEALTH_PACKAGES": "demo"}  # fmt: skip
    result = subprocess.run([str(path)], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cannot judge" in result.stdout or "nothing to remember" in result.stdout
    assert os.access(path, os.X_OK)
