"""Transactions as snapper users expect them, with real pacman running clp's hooks: the pacman
command line of each transaction, the history limit, `clp diff N M`, and the world-readable
index the shell completions read."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.kits.clpkit import make_patch
from tests.kits.hookkit import HookRoot
from tests.kits.pkgkit import CACHE, make_package

PKG = "demo"

INDEX_PATH = "/var/cache/clp/completion-index"  # inside the root: the hooks run chrooted
INDEX = INDEX_PATH.lstrip("/")


@pytest.fixture
def hroot(sandbox: Path) -> HookRoot:
    return HookRoot(sandbox)


def package(root: HookRoot, version: str, conf: str, name: str = PKG) -> Path:
    """A package owning /etc/<name>.conf and a data file."""
    files = {f"etc/{name}.conf": conf.encode(), f"usr/share/{name}/VERSION": version.encode()}
    return make_package(root.root / CACHE, name, version, files)


def install(hroot: HookRoot, *paths: Path) -> str:
    result = hroot.pacman("-U", *paths)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: clp" not in result.stdout and "error" not in result.stderr, result.stdout
    return result.stdout


def transactions(hroot: HookRoot) -> list[dict]:
    result = hroot.clp("transactions", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def apply_patch(hroot: HookRoot, tmp_path: Path, keyring, name: str = "CLPR1") -> None:
    patch = make_patch(tmp_path, keyring, "echo patched >> /etc/demo.conf\n",
                       files=("/etc/demo.conf",), name=name)  # fmt: skip
    result = hroot.clp("apply", patch, "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pacman_command_line_is_recorded_and_shown(hroot):
    path = package(hroot, "1.0-1", "port=1\n")
    install(hroot, path)
    (record,) = transactions(hroot)
    words = record["command"].split()
    assert words[0] == "pacman" and words[-2:] == ["-U", str(path)]
    assert f"--root {hroot.root}" in record["command"]
    text = hroot.clp("transactions").stdout
    assert f"   command: {record['command']}\n" in text


def test_history_limit_keeps_the_newest_transactions_and_drops_their_snapshots(hroot):
    (hroot.root / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (hroot.root / "etc/CLP/clp.conf").write_text("[options]\nHistoryLimit = 2\n")
    for version in ("1.0-1", "2.0-1", "3.0-1"):
        install(hroot, package(hroot, version, f"version={version}\n"))
    snapshots = hroot.root / "var/lib/clp/snapshots/snapshots"
    assert len(list(snapshots.iterdir())) == 6  # nothing is dropped inside pacman's hooks
    assert hroot.clp("recover").returncode == 0  # any writing command collects garbage
    assert [r["id"] for r in transactions(hroot)] == [2, 3]
    assert len(list(snapshots.iterdir())) == 4
    gone = hroot.clp("diff", "1")
    assert gone.returncode == 2 and "there is no transaction 1" in gone.stderr


def test_a_bad_history_limit_stops_clp_with_one_line_and_never_pacman(hroot):
    (hroot.root / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (hroot.root / "etc/CLP/clp.conf").write_text("[options]\nHistoryLimit = none\n")
    result = hroot.clp("transactions")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("HistoryLimit must be a whole number from 1 to 100000")
    assert hroot.pacman("-U", package(hroot, "1.0-1", "port=1\n")).returncode == 0


# -- the completion index ----------------------------------------------------------------------


def index_lines(hroot) -> list[str]:
    text = (hroot.root / INDEX).read_text()
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_the_post_hook_and_writing_commands_keep_the_index_world_readable(hroot, tmp_path, keyring):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    index = hroot.root / INDEX
    assert stat.S_IMODE(index.stat().st_mode) == 0o644
    assert stat.S_IMODE(index.parent.stat().st_mode) == 0o755
    assert index_lines(hroot) == ["transaction 1 done"]

    apply_patch(hroot, tmp_path, keyring)
    assert index_lines(hroot) == ["patch CLPR1 applied", "transaction 1 done"]
    assert hroot.clp("rollback", "CLPR1", "--noconfirm").returncode == 0
    assert index_lines(hroot) == ["patch CLPR1 rolled-back", "transaction 1 done"]
    text = index.read_text()
    assert "demo" not in text and "/etc" not in text and "port" not in text  # names only


def test_a_missing_index_is_written_again_by_the_next_writing_command(hroot):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    (hroot.root / INDEX).unlink()
    assert hroot.clp("transactions").returncode == 0  # reading commands write nothing
    assert not (hroot.root / INDEX).exists()
    assert hroot.clp("recover").returncode == 0
    assert index_lines(hroot) == ["transaction 1 done"]


def test_an_index_that_cannot_be_written_is_a_warning_and_pacman_goes_on(hroot):
    cache = hroot.root / "var/cache/clp"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("not a directory\n")
    result = hroot.pacman("-U", package(hroot, "1.0-1", "port=1\n"))
    assert result.returncode == 0 and hroot.installed(PKG) == "1.0-1"
    output = result.stdout  # pacman shows what its hooks print, stderr too
    assert f"warning: {INDEX_PATH}: cannot update the completion index" in output
    assert "could not record" not in output
    (record,) = transactions(hroot)
    assert record["status"] == "done"
    recover = hroot.clp("recover")
    assert recover.returncode == 0
    assert f"warning: {hroot.root / INDEX}: cannot update the completion index" in recover.stderr
