"""`clp revert` with real packages and real pacman in a sandbox root: from the cache, from an
archive on 127.0.0.1, from a file; pinned; rolled back; every error case."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kits import gpgkit
from tests.kits.clpkit import CLP, apply_args, make_patch, static_server
from tests.kits.pkgkit import CACHE, build, install_demo_versions, installed, make_package, pacman


@pytest.fixture
def pkgroot(sandbox: Path) -> Path:
    """The sandbox with `demo` 1.0-1 and 2.0-1 in its cache, 2.0-1 installed."""
    return install_demo_versions(sandbox)


def revert(clp, root: Path, *args: str):
    return clp("--root", str(root), "revert", "--noconfirm", *args)


def listed(clp, root: Path) -> list[dict]:
    return json.loads(clp("--root", str(root), "list", "--json").stdout)


def test_revert_from_the_cache_pins_and_rolls_back(pkgroot, clp):
    result = revert(clp, pkgroot, "demo")  # --noconfirm: the newest version older than installed
    assert result.returncode == 0, result.stderr
    assert installed(pkgroot, "demo") == "1.0-1"
    assert (pkgroot / "usr/share/demo/VERSION").read_text() == "1.0-1"
    assert "IgnorePkg = demo" in (pkgroot / "etc/pacman.d/clp-pins.conf").read_text()
    entries = {(e["kind"], e["id"], e["state"]) for e in listed(clp, pkgroot)}
    assert ("revert", "R1", "applied") in entries and ("pin", "demo", "pinned") in entries
    assert clp("--root", str(pkgroot), "pins", "-q").stdout == "demo\n"

    back = clp("--root", str(pkgroot), "rollback", "R1", "--noconfirm")
    assert back.returncode == 0, back.stderr
    assert installed(pkgroot, "demo") == "2.0-1"
    assert "IgnorePkg = demo" not in (pkgroot / "etc/pacman.d/clp-pins.conf").read_text()
    assert ("revert", "R1", "rolled-back") in {(e["kind"], e["id"], e["state"])
                                              for e in listed(clp, pkgroot)}  # fmt: skip


def test_list_versions_json(pkgroot, clp):
    result = clp("--root", str(pkgroot), "revert", "demo", "--list", "--json")
    assert result.returncode == 0, result.stderr
    (listing,) = json.loads(result.stdout)
    assert listing["installed"] == "2.0-1"
    assert [v["version"] for v in listing["versions"]] == ["2.0-1", "1.0-1"]
    assert {v["source"] for v in listing["versions"]} == {"cache"}


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An Arch Linux Archive look-alike on 127.0.0.1: packages/<l>/<name>/<files>."""
    top = tmp_path / "archive"
    top.mkdir()
    with static_server(top) as url:
        yield url, top


def test_revert_from_an_archive_lands_in_the_cache(pkgroot, archive, clp):
    url, top = archive
    folder = top / "packages/d/demo"
    folder.mkdir(parents=True)
    build(folder, "demo", "0.9-1", content=b"archived")
    (pkgroot / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (pkgroot / "etc/CLP/clp.conf").write_text(f"[options]\nArchiveServer = {url}\n")
    result = revert(clp, pkgroot, "demo", "0.9-1")
    assert result.returncode == 0, result.stderr
    assert installed(pkgroot, "demo") == "0.9-1"
    assert (pkgroot / CACHE / "demo-0.9-1-any.pkg.tar.xz").is_file()
    assert (pkgroot / "usr/share/demo/VERSION").read_bytes() == b"archived"


def test_revert_from_a_file(pkgroot, tmp_path, clp):
    package = build(tmp_path, "demo", "1.5-1")
    result = revert(clp, pkgroot, str(package))
    assert result.returncode == 0, result.stderr
    assert installed(pkgroot, "demo") == "1.5-1"


def test_dependencies_are_checked_and_a_joint_revert_works(pkgroot, clp):
    cache = pkgroot / CACHE
    for version in ("1.0-1", "2.0-1"):
        pacman(pkgroot, "-U", str(build(cache, "libfoo", version)))
        pacman(pkgroot, "-U", str(build(cache, "app", version, depends=(f"libfoo>={version}",))))
    alone = revert(clp, pkgroot, "libfoo=1.0-1")
    assert alone.returncode == 2
    assert "app" in alone.stderr and "libfoo>=2.0-1" in alone.stderr
    assert installed(pkgroot, "libfoo") == "2.0-1"
    together = revert(clp, pkgroot, "libfoo=1.0-1", "app=1.0-1")
    assert together.returncode == 0, together.stderr
    assert (installed(pkgroot, "libfoo"), installed(pkgroot, "app")) == ("1.0-1", "1.0-1")


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["nosuchpkg"], 2, "not installed"),
        (["demo", "0.1-1"], 2, "was not found (searched: cache"),
        (["demo", "2.0-1"], 2, "already installed"),
        (["demo=3.0-1"], 2, "was not found"),
    ],
)
def test_errors_change_nothing(pkgroot, clp, args, code, words):
    result = revert(clp, pkgroot, *args)
    assert result.returncode == code, result.stderr
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert installed(pkgroot, "demo") == "2.0-1"


def test_a_newer_version_needs_allow_upgrade(pkgroot, tmp_path, clp):
    pacman(pkgroot, "-U", str(pkgroot / CACHE / "demo-1.0-1-any.pkg.tar.xz"))
    refused = revert(clp, pkgroot, "demo", "2.0-1")
    assert refused.returncode == 2 and "--allow-upgrade" in refused.stderr
    assert revert(clp, pkgroot, "demo", "2.0-1", "--allow-upgrade").returncode == 0
    assert installed(pkgroot, "demo") == "2.0-1"


def test_pacman_running_is_exit_3(pkgroot, clp):
    (pkgroot / "var/lib/pacman/db.lck").touch()
    result = revert(clp, pkgroot, "demo", "1.0-1")
    assert result.returncode == 3 and "db.lck" in result.stderr
    assert installed(pkgroot, "demo") == "2.0-1"


def test_unreachable_archive_is_named_when_nothing_is_found(pkgroot, clp):
    (pkgroot / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (pkgroot / "etc/CLP/clp.conf").write_text("[options]\nArchiveServer = http://127.0.0.1:9\n")
    result = revert(clp, pkgroot, "demo", "0.5-1")
    assert result.returncode == 2
    assert "http://127.0.0.1:9" in result.stderr


def test_signature_levels_of_pacman_conf_apply(pkgroot, tmp_path, keyring, clp):
    # the way back (the installed 2.0-1) must pass the same check as the way there
    gpgkit.sign(keyring, pkgroot / CACHE / "demo-2.0-1-any.pkg.tar.xz", keyring.packager_fpr)
    conf = pkgroot / "etc/pacman.conf"
    conf.write_text(
        conf.read_text().replace("LocalFileSigLevel = Never", "LocalFileSigLevel = Required")
    )
    unsigned = revert(clp, pkgroot, "demo", "1.0-1")
    assert unsigned.returncode == 2 and "sig" in unsigned.stderr
    assert installed(pkgroot, "demo") == "2.0-1"
    gpgkit.sign(keyring, pkgroot / CACHE / "demo-1.0-1-any.pkg.tar.xz", keyring.untrusted_fpr)
    untrusted = revert(clp, pkgroot, "demo", "1.0-1")
    assert untrusted.returncode == 2 and "untrusted" in untrusted.stderr
    gpgkit.sign(keyring, pkgroot / CACHE / "demo-1.0-1-any.pkg.tar.xz", keyring.packager_fpr)
    assert revert(clp, pkgroot, "demo", "1.0-1").returncode == 0


def test_pacman_syu_keeps_a_pinned_package(pkgroot, tmp_path, clp):
    """A local sync repository offers demo 3.0-1: -Syu ignores it while the pin holds."""
    repo = tmp_path / "repo"
    repo.mkdir()
    newest = build(repo, "demo", "3.0-1")
    subprocess.run(["repo-add", "-q", str(repo / "test.db.tar.gz"), str(newest)], check=True,
                   capture_output=True)  # fmt: skip
    conf = pkgroot / "etc/pacman.conf"
    conf.write_text(conf.read_text() + f"\n[test]\nServer = file://{repo}\n")
    assert revert(clp, pkgroot, "demo", "1.0-1").returncode == 0
    result = pacman(pkgroot, "-Syu")
    assert installed(pkgroot, "demo") == "1.0-1", result.stdout + result.stderr
    assert clp("--root", str(pkgroot), "unpin", "demo", "--noconfirm").returncode == 0
    pacman(pkgroot, "-Syu")
    assert installed(pkgroot, "demo") == "3.0-1"


def test_a_patch_revert_is_undone_when_its_script_fails(pkgroot, tmp_path, keyring, clp):
    extra = '<Revert><Pkg name="demo" to="1.0-1" until="3.0-1"/></Revert>'
    failing = make_patch(tmp_path, keyring, "exit 1\n", files=(), extra=extra)
    result = clp(*apply_args(pkgroot, failing))
    assert result.returncode == 1, result.stderr
    assert installed(pkgroot, "demo") == "2.0-1"
    assert "IgnorePkg = demo" not in (pkgroot / "etc/pacman.d/clp-pins.conf").read_text()
    (tmp_path / "ok").mkdir()
    good = make_patch(tmp_path / "ok", keyring, "true\n", files=(), extra=extra)
    result = clp(*apply_args(pkgroot, good))
    assert result.returncode == 0, result.stderr
    assert installed(pkgroot, "demo") == "1.0-1"
    assert "until 3.0-1" in clp("--root", str(pkgroot), "pins").stdout
    back = clp("--root", str(pkgroot), "rollback", "CLPR261125", "--noconfirm")
    assert back.returncode == 0, back.stderr
    assert installed(pkgroot, "demo") == "2.0-1"


def test_update_lifts_a_pin_once_the_fix_is_in_a_repository(pkgroot, tmp_path, clp):
    """`--until`: the pin holds until a repository offers that version, then `clp update`
    lifts it (even with no patch feed configured: it says so, exit 2, pins handled first)."""
    assert revert(clp, pkgroot, "demo", "1.0-1", "--until", "3.0-1").returncode == 0
    repo = tmp_path / "repo"
    repo.mkdir()
    conf = pkgroot / "etc/pacman.conf"
    conf.write_text(conf.read_text() + f"\n[test]\nServer = file://{repo}\n")
    build(repo, "demo", "2.5-1")
    subprocess.run(["repo-add", "-q", str(repo / "test.db.tar.gz"),
                    str(repo / "demo-2.5-1-any.pkg.tar.xz")], check=True)  # fmt: skip
    pacman(pkgroot, "-Syy")  # -yy: the db may change within one second, as here
    assert clp("--root", str(pkgroot), "update", "--noconfirm").returncode == 2
    assert "demo" in clp("--root", str(pkgroot), "pins").stdout  # 2.5-1 is not the fix
    build(repo, "demo", "3.0-1")
    subprocess.run(["repo-add", "-q", str(repo / "test.db.tar.gz"),
                    str(repo / "demo-3.0-1-any.pkg.tar.xz")], check=True)  # fmt: skip
    pacman(pkgroot, "-Syy")
    result = clp("--root", str(pkgroot), "update", "--noconfirm")
    assert "pin lifted: demo" in result.stdout, result.stderr
    assert clp("--root", str(pkgroot), "pins").stdout.strip() == ""


def test_a_pacman_conf_without_the_pins_include_gets_the_line_to_add(pkgroot, clp):
    conf = pkgroot / "etc/pacman.conf"
    conf.write_text(conf.read_text().replace("Include = /etc/pacman.d/clp-pins.conf\n", ""))
    result = revert(clp, pkgroot, "demo", "1.0-1")
    assert result.returncode == 0, result.stderr
    assert "add 'Include = /etc/pacman.d/clp-pins.conf' under [options]" in result.stderr
    assert "pacman.conf" in conf.name and "clp-pins" not in conf.read_text()  # never edited


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", ["pacman-upgrade", "pin", "record-revert"])
def test_a_killed_revert_is_rolled_back_by_the_next_command(pkgroot, clp, step, when):
    from clp_alpm.store.journal import FAULT_ENV

    killed = clp("--root", str(pkgroot), "revert", "--noconfirm", "demo", "1.0-1",
                 env={FAULT_ENV: f"{step}:{when}"})  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    result = clp("--root", str(pkgroot), "list", "--json")
    assert result.returncode == 0, result.stderr
    assert "recovering from an interrupted revert" in result.stderr
    assert installed(pkgroot, "demo") == "2.0-1"
    assert "IgnorePkg = demo" not in (pkgroot / "etc/pacman.d/clp-pins.conf").read_text()
    assert [e for e in json.loads(result.stdout) if e["kind"] != "patch"] == []


def test_an_unverified_download_never_lands_in_the_cache(pkgroot, archive, clp):
    """A rejected archive package must not become a 'local' file the next run trusts more."""
    url, top = archive
    folder = top / "packages/d/demo"
    folder.mkdir(parents=True)
    build(folder, "demo", "0.9-1")
    (pkgroot / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (pkgroot / "etc/CLP/clp.conf").write_text(f"[options]\nArchiveServer = {url}\n")
    conf = pkgroot / "etc/pacman.conf"
    conf.write_text(
        conf.read_text().replace(
            "LocalFileSigLevel = Never", "LocalFileSigLevel = Never\nRemoteFileSigLevel = Required"
        )
    )
    for _ in range(2):
        result = revert(clp, pkgroot, "demo", "0.9-1")
        assert result.returncode == 2 and "RemoteFileSigLevel requires one" in result.stderr
        assert not (pkgroot / CACHE / "demo-0.9-1-any.pkg.tar.xz").exists()
    assert installed(pkgroot, "demo") == "2.0-1"


def test_no_revert_without_a_way_back(pkgroot, clp):
    (pkgroot / CACHE / "demo-2.0-1-any.pkg.tar.xz").unlink()  # paccache removed it
    (pkgroot / "usr/share/demo/VERSION").unlink()  # and no copy can be made of what is left
    cache = sorted(path.name for path in (pkgroot / CACHE).iterdir())
    result = revert(clp, pkgroot, "demo", "1.0-1")
    assert result.returncode == 2
    assert "demo 2.0-1 is in no package cache or archive" in result.stderr
    assert (
        "cannot be made from the installed files (demo 2.0-1: /usr/share/demo/VERSION is "
        "missing)" in result.stderr
    )
    assert "run again with --no-rollback-copy" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert installed(pkgroot, "demo") == "2.0-1"
    assert sorted(path.name for path in (pkgroot / CACHE).iterdir()) == cache


def test_rollback_refuses_when_the_package_moved_on(pkgroot, clp):
    assert revert(clp, pkgroot, "demo", "1.0-1").returncode == 0
    assert clp("--root", str(pkgroot), "unpin", "demo").returncode == 0
    pacman(pkgroot, "-U", str(pkgroot / CACHE / "demo-2.0-1-any.pkg.tar.xz"))
    result = clp("--root", str(pkgroot), "rollback", "R1", "--noconfirm")
    assert result.returncode == 2 and "nothing left to roll back" in result.stderr
    assert installed(pkgroot, "demo") == "2.0-1"


def test_the_earlier_of_two_reverts_waits_for_the_later(pkgroot, tmp_path, clp):
    pacman(pkgroot, "-U", str(build(pkgroot / CACHE, "demo", "3.0-1")))
    assert revert(clp, pkgroot, "demo", "2.0-1").returncode == 0  # R1
    assert revert(clp, pkgroot, "demo", "1.0-1").returncode == 0  # R2
    refused = clp("--root", str(pkgroot), "rollback", "R1", "--noconfirm")
    assert refused.returncode == 2 and "roll back R2 first" in refused.stderr
    assert installed(pkgroot, "demo") == "1.0-1"
    assert clp("--root", str(pkgroot), "rollback", "R2", "--noconfirm").returncode == 0
    assert clp("--root", str(pkgroot), "rollback", "R1", "--noconfirm").returncode == 0
    assert installed(pkgroot, "demo") == "3.0-1"


def test_hand_written_lines_of_the_pins_file_are_kept(pkgroot, clp):
    pins_file = pkgroot / "etc/pacman.d/clp-pins.conf"
    pins_file.write_text("# my own note\nIgnoreGroup = nvidia\nIgnorePkg = linux\n")
    assert revert(clp, pkgroot, "demo", "1.0-1").returncode == 0
    text = pins_file.read_text()
    assert "# my own note" in text and "IgnoreGroup = nvidia" in text
    assert "IgnorePkg = linux" in text and "IgnorePkg = demo" in text


def revert_until_a_hook_runs(pkgroot: Path, then: str) -> subprocess.Popen:
    """Start `clp revert demo 1.0-1` with a post-transaction hook of pacman's that creates
    /tmp/hook-started and then runs the shell commands `then`; return once it has started."""
    from tests.kits.clpkit import CLP

    hooks = pkgroot / "usr/share/libalpm/hooks"
    hooks.mkdir(parents=True)
    (hooks / "50-slow.hook").write_text(
        "[Trigger]\nOperation = Install\nOperation = Upgrade\nType = Package\nTarget = demo\n\n"
        "[Action]\nDescription = a slow hook\nWhen = PostTransaction\n"
        f"Exec = /bin/sh -c 'touch /tmp/hook-started; {then}'\n"
    )
    process = subprocess.Popen(
        [str(CLP), "--root", str(pkgroot), "revert", "--noconfirm", "demo", "1.0-1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (pkgroot / "tmp/hook-started").exists():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    return process


def test_ctrl_c_during_pacman_waits_for_it_then_undoes(pkgroot, clp):
    """pacman is never left running (or killed) in its transaction: clp passes the Ctrl-C on,
    waits for pacman to finish, then undoes the revert."""
    import signal

    process = revert_until_a_hook_runs(pkgroot, "sleep 2")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr  # interrupted, and undone
    assert "interrupted; everything was rolled back" in stderr
    assert not (pkgroot / "var/lib/pacman/db.lck").exists()
    assert installed(pkgroot, "demo") == "2.0-1"


def test_hookdir_adds_hooks_to_the_pacman_clp_runs(pkgroot, tmp_path, clp):
    hooks = tmp_path / "extra-hooks"
    hooks.mkdir()
    (hooks / "50-mark.hook").write_text(
        "[Trigger]\nOperation = Upgrade\nType = Package\nTarget = demo\n\n"
        "[Action]\nDescription = an extra hook\nWhen = PostTransaction\n"
        "Exec = /bin/sh -c 'touch /tmp/extra-hook-ran'\n"
    )
    result = clp("--root", str(pkgroot), "--hookdir", str(hooks), "revert", "--noconfirm", "demo")
    assert result.returncode == 0, result.stderr
    assert (pkgroot / "tmp/extra-hook-ran").exists()
    assert installed(pkgroot, "demo") == "1.0-1"


def test_a_sigkill_of_clp_does_not_take_its_pacman_down(pkgroot, clp):
    """pacman shares no fate with the clp that started it: killed in the middle of pacman's
    post-transaction hooks (which still print), clp leaves a pacman that finishes its
    transaction, its hooks and its lock. A recovery started at once waits for that pacman
    (journaled by its pid), then undoes the revert."""
    then = "sleep 2; echo still talking; touch /tmp/hook-finished"
    process = revert_until_a_hook_runs(pkgroot, then)
    process.kill()
    process.communicate(timeout=30)  # and its pipes are closed: nobody reads pacman's output
    assert (pkgroot / "var/lib/pacman/db.lck").exists()  # its pacman is still at work
    recovered = clp("--root", str(pkgroot), "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert "waiting for pacman (pid " in recovered.stderr
    assert (pkgroot / "tmp/hook-finished").exists()  # pacman finished its transaction first
    assert not (pkgroot / "var/lib/pacman/db.lck").exists()
    assert installed(pkgroot, "demo") == "2.0-1"


def test_the_lock_of_a_pacman_killed_with_clp_is_stale_for_the_recovery(pkgroot, clp):
    """Both clp and its pacman killed (a power cut, an OOM kill): db.lck stays. No pacman runs,
    and the journal knows the one clp started is gone: the recovery removes that stale lock,
    says so, and undoes the revert."""
    from tests.kits import reaper

    process = revert_until_a_hook_runs(pkgroot, "sleep 600")
    pacmans = [pid for pid in reaper.descendants(process.pid) if _comm(pid) == "pacman"]
    assert pacmans, "clp's pacman was not found"
    reaper.kill_all(reaper.descendants(process.pid) | {process.pid})
    process.communicate(timeout=30)
    lock = pkgroot / "var/lib/pacman/db.lck"
    assert lock.exists()
    (pkgroot / "usr/share/libalpm/hooks/50-slow.hook").unlink()  # the undo's pacman runs hooks
    recovered = clp("--root", str(pkgroot), "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert f"removed {lock}" in recovered.stderr
    assert not lock.exists()
    assert installed(pkgroot, "demo") == "2.0-1"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cache_listing(root: Path) -> list[str]:
    return sorted(path.name for path in (root / CACHE).iterdir())


def test_a_revert_from_a_file_is_rolled_back(pkgroot, tmp_path, clp):
    """The file is copied into the cache, so the rollback's own way back exists after the
    file named on the command line is gone."""
    package = build(tmp_path, "demo", "1.5-1", content=b"from a file")
    result = revert(clp, pkgroot, str(package))
    assert result.returncode == 0, result.stderr
    assert "undo with 'clp rollback R1'" in result.stdout
    copy = pkgroot / CACHE / package.name
    assert copy.read_bytes() == package.read_bytes()
    package.unlink()
    back = clp("--root", str(pkgroot), "rollback", "R1", "--noconfirm")
    assert back.returncode == 0, back.stderr
    assert installed(pkgroot, "demo") == "2.0-1"
    assert (pkgroot / "usr/share/demo/VERSION").read_text() == "2.0-1"


def test_the_installed_version_missing_from_the_cache_comes_from_the_archive(pkgroot, archive, clp):
    url, top = archive
    folder = top / "packages/d/demo"
    folder.mkdir(parents=True)
    cached = pkgroot / CACHE / "demo-2.0-1-any.pkg.tar.xz"
    cached.rename(folder / cached.name)  # paccache -rk1 removed it; the archive has it
    (pkgroot / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (pkgroot / "etc/CLP/clp.conf").write_text(f"[options]\nArchiveServer = {url}\n")
    result = revert(clp, pkgroot, "demo", "1.0-1", "--json")
    assert result.returncode == 0, result.stderr
    (package,) = json.loads(result.stdout)["plan"]["packages"]
    assert package["rollback_copy"] == f"archive ({url})"
    assert cached.read_bytes() == (folder / cached.name).read_bytes()
    assert clp("--root", str(pkgroot), "rollback", "R1", "--noconfirm").returncode == 0
    assert installed(pkgroot, "demo") == "2.0-1"


def test_the_installed_version_in_no_cache_or_archive_is_made_from_its_files(pkgroot, clp):
    (pkgroot / CACHE / "demo-2.0-1-any.pkg.tar.xz").unlink()
    result = revert(clp, pkgroot, "demo", "1.0-1")
    assert result.returncode == 0, result.stderr
    assert "copy of demo 2.0-1 made from its files" in result.stdout
    assert "undo with 'clp rollback R1'" in result.stdout
    assert (pkgroot / CACHE / "demo-2.0-1-any.pkg.tar.xz").is_file()
    assert installed(pkgroot, "demo") == "1.0-1"
    back = clp("--root", str(pkgroot), "rollback", "R1", "--noconfirm")
    assert back.returncode == 0, back.stderr
    assert installed(pkgroot, "demo") == "2.0-1"
    assert (pkgroot / "usr/share/demo/VERSION").read_text() == "2.0-1"


def test_no_copy_is_made_when_pacman_requires_signed_local_files(pkgroot, keyring, clp):
    (pkgroot / CACHE / "demo-2.0-1-any.pkg.tar.xz").unlink()
    gpgkit.sign(keyring, pkgroot / CACHE / "demo-1.0-1-any.pkg.tar.xz", keyring.packager_fpr)
    conf = pkgroot / "etc/pacman.conf"
    conf.write_text(conf.read_text().replace("LocalFileSigLevel = Never",
                                             "LocalFileSigLevel = Required"))  # fmt: skip
    result = revert(clp, pkgroot, "demo", "1.0-1")
    assert result.returncode == 2
    assert "pacman's LocalFileSigLevel requires a signature" in result.stderr


def test_no_rollback_copy_is_an_explicit_choice_and_the_rollback_says_so(pkgroot, clp):
    (pkgroot / CACHE / "demo-2.0-1-any.pkg.tar.xz").unlink()
    (pkgroot / "usr/share/demo/VERSION").unlink()
    cache = cache_listing(pkgroot)
    asked = subprocess.run(
        [str(CLP), "--root", str(pkgroot), "revert", "--no-rollback-copy", "demo", "1.0-1"],
        input="n\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert asked.returncode != 0
    assert "cannot be rolled back" in asked.stderr
    assert "Proceed with a revert that cannot be rolled back? [Y/n]" in asked.stdout
    assert installed(pkgroot, "demo") == "2.0-1" and cache_listing(pkgroot) == cache

    result = revert(clp, pkgroot, "demo", "1.0-1", "--no-rollback-copy")
    assert result.returncode == 0, result.stderr
    assert "warning: no copy of demo 2.0-1: is in no package cache or archive" in result.stderr
    assert "R1: reverted and pinned (no rollback copy: no rollback)" in result.stdout
    assert installed(pkgroot, "demo") == "1.0-1"
    refused = clp("--root", str(pkgroot), "rollback", "R1", "--noconfirm")
    assert refused.returncode == 2
    assert "R1 cannot be rolled back without it (it was made with --no-rollback-copy)" \
        in refused.stderr  # fmt: skip
    assert refused.stdout == "" and installed(pkgroot, "demo") == "1.0-1"


@pytest.mark.parametrize("step", ["cache-package", "rebuild-package", "pacman-upgrade"])
def test_a_killed_revert_leaves_the_cache_as_it_was(pkgroot, tmp_path, clp, step):
    from clp_alpm.store.journal import FAULT_ENV

    (pkgroot / CACHE / "demo-2.0-1-any.pkg.tar.xz").unlink()  # made from the installed files
    package = build(tmp_path, "demo", "1.5-1")  # copied into the cache
    cache = cache_listing(pkgroot)
    killed = clp("--root", str(pkgroot), "revert", "--noconfirm", str(package),
                 env={FAULT_ENV: f"{step}:after"})  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    result = clp("--root", str(pkgroot), "list")
    assert "recovering from an interrupted revert" in result.stderr
    assert installed(pkgroot, "demo") == "2.0-1"
    assert cache_listing(pkgroot) == cache


def test_something_else_in_the_cache_under_the_files_name_is_refused(pkgroot, tmp_path, clp):
    package = build(tmp_path, "demo", "1.5-1", content=b"mine")
    (pkgroot / CACHE / "demo-1.5-1-any.pkg.tar.xz").mkdir()  # not a package file: in the way
    result = revert(clp, pkgroot, str(package))
    assert result.returncode == 2
    assert "demo-1.5-1-any.pkg.tar.xz already exists with other content" in result.stderr
    assert installed(pkgroot, "demo") == "2.0-1"


# -- what the user sees -----------------------------------------------------------------------


def test_a_rolled_back_revert_is_an_error_before_any_plan(pkgroot, clp):
    assert revert(clp, pkgroot, "demo", "1.0-1").returncode == 0
    assert clp("--root", str(pkgroot), "rollback", "R1", "--noconfirm").returncode == 0
    again = clp("--root", str(pkgroot), "rollback", "R1", "--noconfirm")
    assert again.returncode == 2
    assert again.stderr.strip() == "error: revert R1 is rolled-back, not applied"
    assert again.stdout == ""


def test_the_listing_names_each_source_once(pkgroot, archive, clp):
    url, top = archive
    folder = top / "packages/d/demo"
    folder.mkdir(parents=True)
    build(folder, "demo", "0.9-1")
    build(folder, "demo", "0.8-1")
    (pkgroot / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (pkgroot / "etc/CLP/clp.conf").write_text(f"[options]\nArchiveServer = {url}\n")
    result = clp("--root", str(pkgroot), "revert", "--list", "demo")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        ":: Versions of demo (installed 2.0-1):",
        f" cache ({pkgroot / CACHE}):",
        "   1) 2.0-1 (installed)",
        "   2) 1.0-1",
        f":: asking {url} for the versions of demo...",  # the cache shown, the archive asked
        f" archive ({url}):",
        "   3) 0.9-1",
        "   4) 0.8-1",
    ]
    assert result.stdout.count(str(pkgroot / CACHE)) == 1


def test_the_question_does_not_offer_the_installed_version(pkgroot, clp):
    asked = subprocess.run(
        [str(CLP), "--root", str(pkgroot), "revert", "demo"],
        input="1\n\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert "   1) 1.0-1\n" in asked.stdout and "(installed)" not in asked.stdout
    assert installed(pkgroot, "demo") == "1.0-1"


def test_a_killed_revert_without_a_rollback_copy_is_finished_by_the_next_command(pkgroot, clp):
    """With no way back, the way out of an interrupted revert is forward."""
    from clp_alpm.store.journal import FAULT_ENV

    (pkgroot / CACHE / "demo-2.0-1-any.pkg.tar.xz").unlink()
    (pkgroot / "usr/share/demo/VERSION").unlink()
    killed = clp("--root", str(pkgroot), "revert", "--noconfirm", "--no-rollback-copy", "demo",
                 "1.0-1", env={FAULT_ENV: "pacman-upgrade:after"})  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    result = clp("--root", str(pkgroot), "list", "--json")
    assert result.returncode == 0, result.stderr
    assert installed(pkgroot, "demo") == "1.0-1"
    assert "IgnorePkg = demo" in (pkgroot / "etc/pacman.d/clp-pins.conf").read_text()
    assert ("revert", "R1", "applied") in {(e["kind"], e["id"], e["state"])
                                           for e in json.loads(result.stdout)}  # fmt: skip


def test_a_hanging_archive_server_shows_the_cache_first_and_is_bounded(pkgroot, clp):
    """An ArchiveServer that takes the connection and never answers: the cached versions are
    on the screen at once, a line says which server is being asked, and the wait ends after
    ConnectTimeout with a warning naming it."""
    from tests.kits.clpkit import CLP, silent_server

    (pkgroot / "etc/CLP").mkdir(parents=True, exist_ok=True)
    with silent_server() as hung:
        (pkgroot / "etc/CLP/clp.conf").write_text(
            f"[options]\nArchiveServer = {hung}\nConnectTimeout = 3\n"
        )
        started = time.monotonic()
        process = subprocess.Popen(
            [str(CLP), "--root", str(pkgroot), "revert", "demo", "--list"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        early = [process.stdout.readline() for _ in range(5)]
        assert process.poll() is None, "the cached versions came only after the wait"
        stdout, stderr = process.communicate(timeout=60)
        elapsed = time.monotonic() - started
    assert process.returncode == 0, stderr
    assert early[0].startswith(":: Versions of demo (installed 2.0-1):")
    assert "1) 2.0-1 (installed)" in "".join(early) and "2) 1.0-1" in "".join(early)
    assert f":: asking {hung} for the versions of demo..." in early[4]
    assert f"{hung}/packages/d/demo/" in stderr and "no answer within 3 s" in stderr
    assert elapsed < 15


def test_options_after_a_double_dash_go_to_pacman(pkgroot, clp):
    """As downgrade: `clp revert demo -- --overwrite GLOB` lets pacman overwrite a file that
    another package's files or the administrator left in the way."""
    (pkgroot / "usr/share/demo/extra").write_text("left by hand\n")
    files = {"usr/share/demo/VERSION": b"0.5-1", "usr/share/demo/extra": b"packaged\n"}
    old = make_package(pkgroot / CACHE, "demo", "0.5-1", files)
    refused = revert(clp, pkgroot, str(old))
    assert refused.returncode == 1 and "exists in filesystem" in refused.stderr
    result = revert(clp, pkgroot, str(old), "--", "--overwrite", "usr/share/demo/*")
    assert result.returncode == 0, result.stderr
    assert "pacman options: --overwrite usr/share/demo/*" in result.stdout
    assert (pkgroot / "usr/share/demo/extra").read_text() == "packaged\n"
    assert installed(pkgroot, "demo") == "0.5-1"


@pytest.mark.parametrize(
    "passed", [["--root", "/"], ["--dbpath=/x"], ["-Syu"], ["--overwrite"], ["/tmp/other.pkg"]]
)
def test_what_cannot_be_passed_to_pacman_is_refused_first(pkgroot, clp, passed):
    result = revert(clp, pkgroot, "demo", "--", *passed)
    assert result.returncode == 2
    assert f"'{passed[0]}' cannot be passed to pacman" in result.stderr
    assert installed(pkgroot, "demo") == "2.0-1"
