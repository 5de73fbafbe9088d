"""The short commands load only what they run (issue 13): `clp --help` and the listings (with
global options only) start without click and load no command module, any other command its
own group's module, a read-only command no archive, XML or download code; and every command
still works through the lazy group."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from clp_alpm.cli import main as cli_module
from tests.kits.importkit import (
    COMMAND_MODULES,
    READ_ONLY_COMMANDS,
    forbidden_loaded,
    run_listing_modules,
)
from tests.kits.pkgkit import install_demo_versions


@pytest.fixture
def reverted(sandbox: Path, clp) -> Path:
    """A sandbox where `demo` was reverted from 2.0-1 to 1.0-1: a revert record and a pin, so
    that every listing has something to show."""
    install_demo_versions(sandbox)
    result = clp("--root", str(sandbox), "revert", "--noconfirm", "demo", "1.0-1")
    assert result.returncode == 0, result.stderr
    return sandbox


def group_module(command: str) -> str:
    load, _ = cli_module.COMMANDS[command]
    return load().__name__


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_a_read_only_command_loads_no_archive_xml_or_download_code(reverted, tmp_path, command):
    result, modules = run_listing_modules(
        "--root", str(reverted), command, listing=tmp_path / "modules"
    )
    assert result.returncode == 0, result.stderr
    assert forbidden_loaded(modules) == {}
    assert sorted(m for m in modules if m in COMMAND_MODULES or is_click(m)) == []


def is_click(module: str) -> bool:
    return module == "click" or module.startswith("click.")


SPELLINGS = [
    ["--root", "{root}", "-q", "list"],
    ["list", "--json", "--sysroot={root}"],
    ["--color=never", "-qr{root}", "pins"],
]


@pytest.mark.parametrize("spelling", SPELLINGS, ids=[" ".join(s) for s in SPELLINGS])
def test_a_listing_with_global_options_anywhere_starts_without_click(reverted, tmp_path, spelling):
    args = [arg.format(root=reverted) for arg in spelling]
    result, modules = run_listing_modules(*args, listing=tmp_path / "modules")
    assert result.returncode == 0, result.stderr
    assert sorted(m for m in modules if is_click(m)) == []
    assert ("demo" in result.stdout) if "pins" in args else ("R1" in result.stdout)


@pytest.mark.parametrize("extra", [["extra"], ["--frobnicate"], ["--help"]])
def test_a_listing_with_anything_else_is_click_s(reverted, tmp_path, extra):
    result, modules = run_listing_modules(
        "--root", str(reverted), "list", *extra, listing=tmp_path / "modules"
    )
    assert "click" in modules
    if extra == ["--help"]:
        assert result.returncode == 0 and result.stdout.startswith("Usage: clp list ")
        return
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "clp list --help" in lines[0]


def clicks_help(columns: int) -> str:
    """`clp --help` as the click group writes it at `columns`."""
    return subprocess.run(
        [sys.executable, "-m", "clp_alpm.cli.main", "--help"], capture_output=True, text=True,
        env=dict(os.environ, COLUMNS=str(columns)), check=True,
    ).stdout  # fmt: skip


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_the_stored_help_is_click_s_at_every_width(tmp_path, columns, clp):
    shown = clp("--help", env={"COLUMNS": str(columns)}).stdout
    assert shown == clicks_help(columns)
    assert (shown == clicks_help(80)) == (columns >= 80)  # a narrow terminal: click wraps it


def test_the_listings_still_show_what_they_list(reverted, clp):
    root = ("--root", str(reverted))
    assert "R1" in clp(*root, "list").stdout
    assert clp(*root, "pins", "-q").stdout == "demo\n"
    assert clp(*root, "transactions").returncode == 0
    assert clp(*root, "status").returncode == 0


def test_help_loads_no_command_module_and_no_library(tmp_path):
    result, modules = run_listing_modules("--help", listing=tmp_path / "modules")
    assert result.returncode == 0, result.stderr
    assert "Commands:" in result.stdout
    layers = ("clp_alpm.ops", "clp_alpm.store", "clp_alpm.system", "clp_alpm.formats")
    assert sorted(m for m in modules if m in COMMAND_MODULES or m.startswith(layers)) == []
    assert sorted(m for m in modules if is_click(m)) == []


@pytest.mark.parametrize("command", sorted(cli_module.COMMANDS))
def test_a_command_loads_only_its_own_group(tmp_path, command):
    result, modules = run_listing_modules(command, "--help", listing=tmp_path / "modules")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: clp {command} ")
    assert {m for m in modules if m in COMMAND_MODULES} == {group_module(command)}
    assert forbidden_loaded(modules) == {}


def test_each_summary_is_the_first_paragraph_of_its_command_help():
    ctx = click.Context(cli_module.cli)
    visible = {}
    for name in cli_module.COMMANDS:
        command = cli_module.cli.get_command(ctx, name)
        assert command is not None and command.help is not None
        if not command.hidden:
            visible[name] = " ".join(command.help.split("\n\n")[0].split())
    assert visible == cli_module.SUMMARIES


@pytest.mark.parametrize("width", [50, 80, 120])
def test_the_listing_of_help_is_what_click_writes_from_the_commands(width):
    ctx = click.Context(cli_module.cli, terminal_width=width)
    ours, clicks = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
    cli_module.cli.format_commands(ctx, ours)
    click.Group.format_commands(cli_module.cli, ctx, clicks)
    assert ours.getvalue() == clicks.getvalue()
    assert "hook" not in ours.getvalue().split()


def test_an_unknown_command_is_one_usage_error(clp):
    result = clp("frobnicate")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: no such command 'frobnicate' (see 'clp --help')"
    ]
