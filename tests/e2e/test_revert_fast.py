"""A revert from the cache takes the short way (issue 13): the exact version in pacman's cache
asks no archive and loads no download code, even where an archive is configured; what is
not in the cache still comes from the archive, and the errors stay what they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.kits.clpkit import silent_server
from tests.kits.importkit import forbidden_loaded, run_listing_modules
from tests.kits.pkgkit import install_demo_versions, installed


@pytest.fixture
def pkgroot(sandbox: Path) -> Path:
    """As tests/e2e/test_revert.py's: `demo` 1.0-1 then 2.0-1 installed, both in the cache."""
    return install_demo_versions(sandbox)


def configure_archive(root: Path, how: str, url: str) -> None:
    """An archive clp would ask: named in clp.conf, or the distribution's (os-release)."""
    if how == "clp.conf":
        (root / "etc/CLP").mkdir(parents=True, exist_ok=True)
        (root / "etc/CLP/clp.conf").write_text(
            f"[options]\nArchiveServer = {url}\nConnectTimeout = 20\n"
        )
    else:  # the Arch Linux Archive by default; this sandbox has no network to reach it
        (root / "etc/os-release").write_text('NAME="Arch Linux"\nID=arch\n')


@pytest.mark.parametrize("how", ["clp.conf", "os-release"])
def test_a_cached_version_asks_no_archive(pkgroot, tmp_path, clp, how):
    with silent_server() as hung:  # a server that never answers: asking it would show
        configure_archive(pkgroot, how, hung)
        result, modules = run_listing_modules(
            "--root", str(pkgroot), "--noconfirm", "revert", "demo", "1.0-1",
            listing=tmp_path / "modules",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert installed(pkgroot, "demo") == "1.0-1"
        assert "asking" not in result.stdout + result.stderr
        assert forbidden_loaded(modules).get("download code") is None
        back = clp("--root", str(pkgroot), "--noconfirm", "rollback", "demo")
        assert back.returncode == 0, back.stderr
        assert "asking" not in back.stdout + back.stderr
    assert installed(pkgroot, "demo") == "2.0-1"


def test_without_a_version_every_source_is_listed_first(pkgroot, clp):
    """`clp revert demo` takes the newest version older than the installed one, of every
    source: the archive is asked then."""
    configure_archive(pkgroot, "clp.conf", "http://127.0.0.1:9")
    result = clp("--root", str(pkgroot), "--noconfirm", "revert", "demo")
    assert result.returncode == 0, result.stderr
    assert "asking http://127.0.0.1:9 for the versions of demo" in result.stdout
    assert installed(pkgroot, "demo") == "1.0-1"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["demo", "0.5-1"], "demo 0.5-1 was not found (searched: cache "),
        (["demo", "2.0-1"], "demo 2.0-1 is already installed"),
        (["nosuchpkg", "1.0-1"], "package 'nosuchpkg' is not installed"),
    ],
)
def test_the_errors_are_as_before(pkgroot, clp, args, words):
    """Not in the cache: the whole listing, the unreachable archive named, as before."""
    configure_archive(pkgroot, "clp.conf", "http://127.0.0.1:9")
    result = clp("--root", str(pkgroot), "--noconfirm", "revert", *args)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert words in line
    if args[0] == "demo" and args[1] == "0.5-1":
        assert "archive http://127.0.0.1:9" in line and "127.0.0.1:9/packages/d/demo/" in line
    assert installed(pkgroot, "demo") == "2.0-1"


def is_click(module: str) -> bool:
    return module == "click" or module.startswith("click.")


def test_a_plain_revert_and_its_list_start_without_click(pkgroot, tmp_path):
    for args in (["revert", "--list", "demo"], ["--noconfirm", "revert", "demo", "1.0-1"]):
        result, modules = run_listing_modules(
            "--root", str(pkgroot), *args, listing=tmp_path / "modules"
        )
        assert result.returncode == 0, result.stderr
        assert sorted(m for m in modules if is_click(m) or m == "clp_alpm.cli.main") == []
    assert installed(pkgroot, "demo") == "1.0-1"


def test_options_anywhere_and_until_either_way(pkgroot, clp):
    """Global options before and after the command, `--until V` and `--until=V`, `--json`."""
    result = clp("revert", "demo", "--until=3.0-1", "--root", str(pkgroot), "--noconfirm",
                 "1.0-1", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["revert"]["id"] == "R1" and document["plan"]["packages"][0]["to"] == "1.0-1"
    (pin,) = json.loads(clp("--root", str(pkgroot), "pins", "--json").stdout)
    assert (pin["name"], pin["version"], pin["until"]) == ("demo", "1.0-1", "3.0-1")
    assert clp("--root", str(pkgroot), "--noconfirm", "rollback", "R1").returncode == 0
    again = clp("--root", str(pkgroot), "revert", "--until", "3.1-1", "demo", "1.0-1", "-q",
                "--noconfirm")  # fmt: skip
    assert again.returncode == 0, again.stderr
    (pin,) = json.loads(clp("--root", str(pkgroot), "pins", "--json").stdout)
    assert pin["until"] == "3.1-1"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        ([], "error: missing argument 'PKG [VERSION] | PKG=VER... | FILE|URL' "
             "(see 'clp revert --help')"),
        (["--bogus", "demo"], "error: no such option '--bogus'. Did you mean '--verbose'? "
                              "(see 'clp revert --help')"),
        (["demo", "--until"], "error: option '--until' requires an argument (see 'clp --help')"),
        (["--list=x", "demo"], "error: option '--list' does not take a value "
                               "(see 'clp --help')"),
        (["demo", "--color", "sometimes"], "error: invalid value for '--color': 'sometimes' "
                                           "is not one of 'auto', 'always', 'never' "
                                           "(see 'clp revert --help')"),
        (["demo", "1.0-1", "--", "--root", "/"], "error: '--root' cannot be passed to pacman"),
        (["demo=", "x"], "error: 'demo=': write PKG=VERSION"),
    ],
)  # fmt: skip
def test_a_bad_revert_command_line_says_what_is_wrong_in_one_line(pkgroot, clp, args, line):
    result = clp("--root", str(pkgroot), "--noconfirm", "revert", *args)
    assert result.returncode == 2
    (said,) = result.stderr.strip().splitlines()
    assert said.startswith(line)
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert installed(pkgroot, "demo") == "2.0-1"
    assert (pkgroot / "etc/pacman.d/clp-pins.conf").read_text() == ""


def test_revert_help_is_clicks(pkgroot, clp):
    result = clp("--root", str(pkgroot), "revert", "demo", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: clp revert [OPTIONS] PKG [VERSION]")
    assert "--no-rollback-copy" in result.stdout
