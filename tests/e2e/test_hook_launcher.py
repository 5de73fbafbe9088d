"""`/usr/bin/clp` as the package writes it (clp_alpm/cli/launcher.py): `clp hook` starts
without Python's site and without click, whatever global options stand before `hook`, and
records where they say; every other command starts as any Python program does."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

import clp_alpm
from clp_alpm.cli import launcher
from tests.kits.pkgkit import install_demo_versions, installed


@pytest.fixture
def installed_clp(tmp_path: Path) -> Path:
    path = tmp_path / "bin/clp"
    path.parent.mkdir()
    checkout = str(Path(clp_alpm.__file__).resolve().parent.parent)
    launcher.write(str(path), sys.executable, [checkout, *site.getsitepackages()])
    return path


def run(clp: Path, *args: str, input: str = "", profile: bool = False):
    env = dict(os.environ) | ({"PYTHONPROFILEIMPORTTIME": "1"} if profile else {})
    return subprocess.run([str(clp), *args], capture_output=True, text=True, input=input,
                          env=env, timeout=120)  # fmt: skip


def imported(stderr: str) -> set[str]:
    """The modules `-X importtime` (PYTHONPROFILEIMPORTTIME) listed."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line}  # fmt: skip


# pathlib, which the hooks' and listings' modules do without (paths are strings there), and
# what it would load: re and enum (from Python 3.12 at once, clp_alpm/cli/entry.py), the
# functools, collections and contextlib they (and 3.13's glob) load, urllib.parse
PATHLIB_MODULES = ("pathlib", "fnmatch", "re", "enum", "functools", "collections", "contextlib",
                   "urllib.parse", "ipaddress")  # fmt: skip

SPELLINGS = [
    ["--root", "{root}", "--config", "{conf}", "hook", "{when}"],
    ["--root={root}", "--config={conf}", "--debug", "--color", "never", "hook", "{when}"],
    ["-r{root}", "-q", "--config", "{conf}", "--noconfirm", "--json", "hook", "{when}"],
    ["-qvr", "{root}", "--config", "{conf}", "hook", "{when}", "--logfile", "{log}"],
    ["--sysroot", "{root}", "hook", "{when}", "--config", "{conf}", "--dbpath", "{db}"],
]


@pytest.mark.parametrize("spelling", SPELLINGS, ids=[" ".join(s[:2]) for s in SPELLINGS])
def test_the_hook_takes_the_fast_path_whatever_options_come_first(
    installed_clp, sandbox, tmp_path, spelling
):
    conf = sandbox / "etc/CLP/other.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("[options]\nStateDir = /srv/state\n")
    (sandbox / "etc/app.conf").write_text("a = 1\n")
    values = {"root": str(sandbox), "conf": str(conf), "log": str(tmp_path / "clp.log"),
              "db": str(sandbox / "var/lib/pacman")}  # fmt: skip
    for when in ("pre-transaction", "post-transaction"):
        args = [word.format(when=when, **values) for word in spelling]
        result = run(installed_clp, *args, input="etc/app.conf\n", profile=True)
        assert result.returncode == 0, result.stderr
        modules = imported(result.stderr)
        assert "clp_alpm.ops.hooks" in modules
        unwanted = {"click", "site", "clp_alpm.cli.main", "dataclasses", "inspect", "tempfile",
                    "lxml", "tarfile", "ssl", "http.client", "_hashlib", "json",
                    *PATHLIB_MODULES} & modules  # fmt: skip
        assert unwanted == set(), f"{' '.join(args)} imported {sorted(unwanted)}"
        said = [line for line in result.stderr.splitlines() if not line.startswith("import time")]
        assert said == [], said
        # the hook's close left the checkpoint to the next command: the commit is in the log
        assert (sandbox / "srv/state/clp.db-wal").stat().st_size > 0
    listing = run(installed_clp, "--root", str(sandbox), "--config", str(conf),
                  "transactions", "--json")  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert [r["status"] for r in json.loads(listing.stdout)] == ["done"]
    assert (sandbox / "srv/state/clp.db").is_file()
    assert not (sandbox / "var/lib/clp").exists()


def test_other_commands_start_with_site_as_usual(installed_clp, sandbox):
    version = run(installed_clp, "--version", profile=True)
    assert version.returncode == 0 and version.stdout == "clp, version 0.1.0\n"
    assert "site" in imported(version.stderr)
    info = run(installed_clp, "--root", str(sandbox), "info", "CLPR261125", profile=True)
    assert info.returncode == 2 and "site" in imported(info.stderr)


@pytest.mark.parametrize("args", [["list", "--json"], ["-q", "transactions"], ["status"],
                                  ["pins", "--json"], ["--help"]])  # fmt: skip
def test_the_listings_and_help_start_without_site_or_click(installed_clp, sandbox, args):
    result = run(installed_clp, "--root", str(sandbox), *args, profile=True)
    if args == ["--help"]:
        result = run(installed_clp, "--help", profile=True)
    modules = imported(result.stderr)
    assert {"site", "click", "typing", "dataclasses", "pathlib"} & modules == set(), sorted(modules)
    said = [line for line in result.stderr.splitlines() if not line.startswith("import time")]
    if args[0] == "status" and os.geteuid() == 0:
        assert result.returncode == 0, said
    assert result.returncode in (0, 2) and len(said) <= 1, said
    if "--json" in args:
        assert json.loads(result.stdout) == []


def test_a_revert_starts_without_site_and_reverts(installed_clp, sandbox):
    """pyalpm comes from the package's site-packages, which the launcher names: no `site`."""
    root = install_demo_versions(sandbox)
    result = run(installed_clp, "--root", str(root), "--noconfirm", "revert", "demo", "1.0-1",
                 profile=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    modules = imported(result.stderr)
    assert "pyalpm" in modules and {"site", "click"} & modules == set(), sorted(modules)
    assert installed(root, "demo") == "1.0-1"


def test_a_command_that_only_looks_like_a_hook_is_clicks(installed_clp, sandbox):
    """`hook` as an argument of another command, or a bad option: click says what is wrong."""
    result = run(installed_clp, "--root", str(sandbox), "--bogus", "hook", "pre-transaction")
    assert result.returncode == 2
    assert result.stderr.startswith("error: no such option '--bogus'")


def test_no_module_is_imported_from_the_launchers_directory(installed_clp, sandbox):
    """/usr/bin is not searched for modules: a file there named as one imported is not run."""
    for name in ("pathlib", "clp_alpm", "site", "json"):
        (installed_clp.parent / f"{name}.py").write_text("raise SystemExit('shadowed')\n")
    hook = run(installed_clp, "--root", str(sandbox), "hook", "pre-transaction")
    version = run(installed_clp, "--version")
    listing = run(installed_clp, "--root", str(sandbox), "list", "--json")
    for result in (hook, version, listing):
        assert result.returncode == 0 and "shadowed" not in result.stderr, result.stderr
    assert version.stdout == "clp, version 0.1.0\n" and json.loads(listing.stdout) == []


def test_the_launcher_wants_an_absolute_interpreter(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "clp_alpm.cli.launcher", "--python", "python3",
         "--site-dir", "/x", str(tmp_path / "clp")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().endswith("error: --python must be an absolute path")
    assert not (tmp_path / "clp").exists()
