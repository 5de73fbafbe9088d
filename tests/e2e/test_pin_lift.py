"""An `--until` pin and a `pacman -Syu` after the fix appears, with real pacman running clp's
hook files in a sandbox root and a real repository (`repo-add`) served from a directory.

The post hook of a `pacman -Syu` that held the pinned package back lifts the pin and says to
run `pacman -Syu` again; a `-Syu` with nothing else to do runs no hook, so `clp pins` and the
daily `clp update` find the fix themselves in a private copy of the sync databases, leaving
pacman's own databases as they were.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.kits.clpkit import static_server
from tests.kits.hookkit import HookRoot
from tests.kits.pkgkit import CACHE, make_package

PINS = "etc/pacman.d/clp-pins.conf"
LIFTED = "clp: unpinned demo (a repository offers 3.0-1 or newer): pin lifted"
AGAIN = f"{LIFTED}, run 'pacman -Syu' again to upgrade it"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    directory = tmp_path / "repo"
    directory.mkdir()
    return directory


@pytest.fixture
def hroot(sandbox: Path, repo: Path) -> HookRoot:
    """demo reverted from 2.0-1 to 1.0-1 and pinned until 3.0-1; `other` 1.0-1 installed; a
    repository `testrepo` that offers nothing yet, already synchronized by pacman."""
    (sandbox / "etc/pacman.d").mkdir(parents=True, exist_ok=True)
    (sandbox / PINS).write_text("")
    (sandbox / "etc/pacman.conf").write_text(
        "[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n"
        f"Include = /etc/pacman.d/clp-pins.conf\n[testrepo]\nServer = file://{repo}\n"
    )
    root = HookRoot(sandbox)
    publish(root, repo, "other", "1.0-1")
    for name, version in (("demo", "1.0-1"), ("demo", "2.0-1"), ("other", "1.0-1")):
        pacman_ok(root, "-U", build(root, name, version))
    pinned = root.clp("revert", "demo", "1.0-1", "--until", "3.0-1", "--noconfirm")
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert pacman_ok(root, "-Sy")
    return root


def build(root: HookRoot, name: str, version: str) -> Path:
    files = {f"etc/{name}.conf": f"v={version}\n".encode()}
    return make_package(root.root / CACHE, name, version, files)


def publish(root: HookRoot, repo: Path, name: str, version: str) -> None:
    """Add a package to the repository, its database dated a little later each time (pacman
    asks a mirror only for a database newer than its own, to the second)."""
    package = make_package(repo, name, version, {f"etc/{name}.conf": f"v={version}\n".encode()})
    database = repo / "testrepo.db.tar.gz"
    subprocess.run(["repo-add", "-q", str(database), str(package)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    stamp = database.stat().st_mtime + 10 * len(list(repo.glob("*.pkg.tar.xz")))
    for link in (database, repo / "testrepo.db"):
        os.utime(link, (stamp, stamp), follow_symlinks=True)


def pacman_ok(root: HookRoot, *args: str | Path) -> str:
    result = root.pacman(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def pinned(root: HookRoot) -> bool:
    return "IgnorePkg = demo" in (root.root / PINS).read_text()


def journaled(root: HookRoot) -> list[tuple[str, str, str]]:
    """The unpin operations of clp's journal."""
    import sqlite3

    with sqlite3.connect(f"file:{root.root}/var/lib/clp/clp.db?mode=ro", uri=True) as db:
        query = "SELECT kind, target, status FROM operations WHERE kind = 'unpin'"
        return [tuple(row) for row in db.execute(query)]


def sync_dir(root: HookRoot) -> dict[str, tuple[bytes, int]]:
    directory = root.root / "var/lib/pacman/sync"
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def test_the_post_hook_of_a_held_back_syu_lifts_the_pin_and_says_to_run_it_again(hroot, repo):
    publish(hroot, repo, "demo", "3.0-1")
    publish(hroot, repo, "other", "2.0-1")
    output = pacman_ok(hroot, "-Syu")
    assert "demo: ignoring package upgrade (1.0-1 => 3.0-1)" in output
    assert hroot.installed("other") == "2.0-1" and hroot.installed("demo") == "1.0-1"
    assert AGAIN in output
    assert not pinned(hroot)
    pacman_ok(hroot, "-Syu")
    assert hroot.installed("demo") == "3.0-1"
    log = (hroot.root / "var/log/CLP.log").read_text()
    assert "unpin demo: the fix has arrived (a repository offers demo 3.0-1)" in log
    assert journaled(hroot) == [("unpin", "demo", "done")]


def test_a_fix_older_than_the_until_version_keeps_the_pin(hroot, repo):
    publish(hroot, repo, "demo", "2.5-1")
    publish(hroot, repo, "other", "2.0-1")
    output = pacman_ok(hroot, "-Syu")
    assert "unpinned" not in output and pinned(hroot)
    assert hroot.installed("demo") == "1.0-1"
    listed = json.loads(hroot.clp("pins", "--json").stdout)
    assert [(p["name"], p["fix_offered"], p["lifted"]) for p in listed] == [("demo", None, False)]


def test_a_fix_installed_by_hand_is_said_to_be_installed(hroot, repo):
    publish(hroot, repo, "demo", "3.0-1")
    pacman_ok(hroot, "-Sy")
    output = pacman_ok(hroot, "-U", build(hroot, "demo", "3.0-1"))
    assert f"{LIFTED}, 3.0-1 is installed" in output and not pinned(hroot)


def test_clp_pins_finds_the_fix_without_touching_pacmans_sync_databases(hroot, repo):
    """`pacman -Syu` with nothing else to upgrade: pacman runs no hook, the pin holds it back.
    `clp pins` refreshes its private copy, lifts the pin, and the next -Syu upgrades."""
    publish(hroot, repo, "demo", "3.0-1")
    before = sync_dir(hroot)
    assert "there is nothing to do" in pacman_ok(hroot, "-Su")  # what -Syu does after the -Sy
    result = hroot.clp("pins")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "(1/1) unpin demo: the fix has arrived",
        "-> pin lifted: demo (a repository offers 3.0-1 or newer); "
        "the next 'pacman -Syu' upgrades it",
    ]
    assert not pinned(hroot) and sync_dir(hroot) == before
    private = hroot.root / "var/lib/clp/sync/sync/testrepo.db"
    assert private.is_file() and private.read_bytes() != before["testrepo.db"][0]
    assert not list(private.parent.parent.glob("refresh-*"))  # no work directory left
    pacman_ok(hroot, "-Syu")
    assert hroot.installed("demo") == "3.0-1"


def test_clp_pins_json_says_which_pins_it_lifted(hroot, repo):
    publish(hroot, repo, "demo", "3.0-1")
    result = hroot.clp("pins", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"name": "demo", "version": "1.0-1", "until": "3.0-1", "reason": "reverted with clp",
         "fix_offered": "3.0-1", "lifted": True},
    ]  # fmt: skip
    assert not pinned(hroot)


def test_the_daily_update_lifts_the_pin_and_check_only_reports_it(hroot, repo):
    publish(hroot, repo, "demo", "3.0-1")
    before = sync_dir(hroot)
    check = hroot.clp("update", "--check")
    assert "-> pin to lift: demo (a repository offers 3.0-1 or newer)" in check.stdout
    assert pinned(hroot)
    update = hroot.clp("update", "--noconfirm")  # no patch feed configured: exit 2, pins first
    assert update.returncode == 2, update.stderr
    assert "-> pin lifted: demo (a repository offers 3.0-1 or newer)" in update.stdout
    assert not pinned(hroot) and sync_dir(hroot) == before


def test_an_unreachable_repository_is_a_warning_and_changes_nothing(hroot, repo):
    conf = hroot.root / "etc/pacman.conf"
    conf.write_text(conf.read_text().replace(f"file://{repo}", f"file://{repo}-gone"))
    before = (hroot.root / PINS).read_text()
    result = hroot.clp("pins")
    assert result.returncode == 0, result.stderr
    assert "warning: could not refresh clp's copy of the sync databases (pacman -Sy failed" in (
        result.stderr
    )
    assert "pins are checked against the databases on disk" in result.stderr
    assert result.stdout.splitlines() == ["demo 1.0-1 until 3.0-1 (reverted with clp)"]
    assert (hroot.root / PINS).read_text() == before


def test_update_json_lists_the_pins_to_lift_and_then_the_pins_lifted(
    hroot, repo, tmp_path, keyring
):
    """With a signed feed that has no patch: `--check --json` gives `pins_to_lift`, the run
    `lifted_pins`; the pin stays until the run."""
    feed = tmp_path / "feed/CLP"
    feed.mkdir(parents=True)
    signed = hroot.clp("repo-add", feed, "--sign", keyring.packager_fpr,
                       "--gpg-homedir", keyring.signer_home)  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    publish(hroot, repo, "demo", "3.0-1")
    with static_server(feed.parent) as url:
        (hroot.root / "etc/CLP").mkdir(parents=True, exist_ok=True)
        (hroot.root / "etc/CLP/mirrors").write_text(f"Server = {url}/CLP\n")
        check = hroot.clp("update", "--check", "--json")
        assert check.returncode == 0, check.stderr
        assert json.loads(check.stdout)["pins_to_lift"] == [
            "demo (a repository offers 3.0-1 or newer)"
        ]
        assert pinned(hroot)
        run = hroot.clp("update", "--noconfirm", "--json")
        assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["lifted_pins"] == ["demo (a repository offers 3.0-1 or newer)"]
    assert report["patches"] == [] and not pinned(hroot)
