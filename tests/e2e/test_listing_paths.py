"""The listings through the packaged launcher (`/usr/bin/clp`, clp_alpm/cli/launcher.py, which
starts without `site` and runs them without click) answer exactly as the full click front end
(`clp_alpm.cli.main`) does for the same state: the same standard output, standard error and
exit status, in text and --json, with what is recorded, with nothing recorded, and for each
bad input (a damaged state database, a missing root or configuration file, a bad clp.conf,
a bad option value). And whatever they answer, they load no click and no archive, XML or
download code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clp_alpm.store.state import StateDB
from tests.kits import rootkit
from tests.kits.hookkit import HookRoot, install
from tests.kits.importkit import FORBIDDEN, READ_ONLY_COMMANDS
from tests.kits.pkgkit import CACHE, PINNED_PACMAN_CONF, build

CLICK = "import sys\nfrom clp_alpm.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
ENV = {"COLUMNS": "80", "LC_ALL": "C.UTF-8"}
VARIANTS = [[], ["--json"], ["-q"], ["--color=always"], ["-v"]]


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=dict(os.environ) | ENV, timeout=120)  # fmt: skip


def both(root: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    """`clp ARGS` through the root's packaged launcher, and through the click front end."""
    launched = run([str(root / "usr/bin/clp"), *args])
    clicked = run([sys.executable, "-c", CLICK, *args])
    return launched, clicked


def assert_same(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    launched, clicked = both(root, *args)
    assert (launched.returncode, launched.stdout, launched.stderr) == (
        clicked.returncode, clicked.stdout, clicked.stderr)  # fmt: skip
    return launched


def new_root(path: Path) -> Path:
    """A sandbox root with clp's hooks and the packaged launcher in it, nothing recorded."""
    root = rootkit.make_sandbox_root(path)
    (root / "etc/pacman.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/pacman.d/clp-pins.conf").write_text("")
    (root / "etc/pacman.conf").write_text(PINNED_PACMAN_CONF)
    HookRoot(root)
    return root


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two pacman transactions recorded by the hooks, then `clp revert` (a third, by clp): a
    revert record, a pin, transactions with packages and changed files."""
    root = new_root(tmp_path_factory.mktemp("listings") / "root")
    hroot = HookRoot(root)
    for version in ("1.0-1", "2.0-1"):
        install(hroot, build(root / CACHE, "demo", version))
    result = hroot.clp("--noconfirm", "revert", "demo", "1.0-1")
    assert result.returncode == 0, result.stdout + result.stderr
    return root


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: " ".join(v) or "plain")
@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_a_listing_of_recorded_state_is_click_s(recorded, command, variant):
    shown = assert_same(recorded, "--root", str(recorded), command, *variant)
    assert shown.returncode == 0, shown.stderr
    if command != "status":  # (the sandbox runs nothing: status has little to say)
        assert ("3" if command == "transactions" and "-q" in variant else "demo") in shown.stdout


def test_the_recorded_state_is_what_the_listings_show(recorded):
    root = ("--root", str(recorded))
    launched, _ = both(recorded, *root, "transactions")
    assert launched.stdout.count(":: ") == 3 and "by clp" in launched.stdout
    launched, _ = both(recorded, *root, "-q", "list")
    assert launched.stdout.split() == ["R1", "demo"]


@pytest.mark.parametrize("variant", VARIANTS[:2], ids=["plain", "--json"])
@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_a_listing_with_no_state_dir_is_click_s(tmp_path, command, variant):
    root = new_root(tmp_path / "root")
    assert not (root / "var/lib/clp").exists()
    shown = assert_same(root, "--root", str(root), command, *variant)
    assert shown.returncode == 0, shown.stderr


@pytest.mark.parametrize("command", ["list", "transactions", "status"])
def test_a_damaged_state_db_is_the_same_one_line(tmp_path, command):
    root = new_root(tmp_path / "root")
    StateDB(root / "var/lib/clp").close()
    (root / "var/lib/clp/clp.db").write_bytes(b"garbage" * 1000)
    for variant in ([], ["--json"]):
        shown = assert_same(root, "--root", str(root), command, *variant)
        assert shown.returncode != 0
        lines = shown.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        assert "clp's state database is damaged" in lines[0]
    assert (root / "var/lib/clp/clp.db").read_bytes() == b"garbage" * 1000


BAD_INPUTS = {
    "missing root": ["--root", "{root}/nowhere", "{command}"],
    "missing config": ["--root", "{root}", "--config", "{root}/nowhere.conf", "{command}"],
    "bad config value": ["--root", "{root}", "--config", "{root}/bad.conf", "{command}"],
    "unknown config key": ["--root", "{root}", "--config", "{root}/odd.conf", "{command}"],
    "bad color": ["--root", "{root}", "--color=sometimes", "{command}"],
    "no root value": ["{command}", "--root"],
    "unknown option": ["--root", "{root}", "{command}", "--frobnicate"],
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_a_bad_input_is_the_same_answer(tmp_path, command, case):
    root = new_root(tmp_path / "root")
    (root / "bad.conf").write_text("[options]\nHistoryLimit = lots\n")
    (root / "odd.conf").write_text("[options]\nColour = yes\n")
    args = [arg.format(root=root, command=command) for arg in BAD_INPUTS[case]]
    shown = assert_same(root, *args)
    lines = shown.stderr.splitlines()
    if case == "unknown config key":  # a warning (`pins` opens no session: none), the listing
        warning = f"warning: {root}/odd.conf:2: unknown option 'Colour' ignored"
        assert shown.returncode == 0 and lines == ([] if command == "pins" else [warning])
        return
    assert shown.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: ")


def modules_loaded(root: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """`clp ARGS` through the packaged launcher, and the modules it imported (-X importtime:
    the launcher itself, as /usr/bin/clp runs)."""
    launcher = root / "usr/bin/clp"
    python = launcher.read_text().splitlines()[0].removeprefix("#!").split()[0]
    result = run([python, "-S", "-X", "importtime", str(launcher), *args])
    modules = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines()
               if line.startswith("import time:")}  # fmt: skip
    return result, modules


def forbidden(modules: set[str]) -> list[str]:
    names = [name for group in FORBIDDEN.values() for name in group] + ["click"]
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.mark.parametrize("variant", [[], ["--json"]], ids=["plain", "--json"])
@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_a_launched_listing_loads_no_click_archive_xml_download_code_or_pathlib(
    recorded, command, variant
):
    result, modules = modules_loaded(recorded, "--root", str(recorded), command, *variant)
    assert result.returncode == 0, result.stderr
    assert "clp_alpm.cli.listings" in modules
    assert forbidden(modules) == []
    assert "pathlib" not in modules  # its modules hold paths as strings: 2-3 ms of its start


@pytest.mark.parametrize("command", ["list", "transactions", "status"])
def test_a_launched_listing_of_a_damaged_db_loads_none_of_them_either(tmp_path, command):
    root = new_root(tmp_path / "root")
    StateDB(root / "var/lib/clp").close()
    (root / "var/lib/clp/clp.db").write_bytes(b"garbage" * 1000)
    result, modules = modules_loaded(root, "--root", str(root), command)
    assert result.returncode != 0 and "damaged" in result.stderr
    assert forbidden(modules) == []


def test_launched_help_loads_none_of_them(recorded):
    result, modules = modules_loaded(recorded, "--help")
    assert result.returncode == 0 and "Commands:" in result.stdout
    assert forbidden(modules) == [] and "clp_alpm.cli.helptext" in modules
