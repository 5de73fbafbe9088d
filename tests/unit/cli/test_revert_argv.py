"""`clp revert` read by hand (clp_alpm.cli.reverts, no click) reads what click reads: for every
command line it takes, the same targets, options and global options; every other one is left
to click, which says what is wrong with it."""

from __future__ import annotations

from typing import Any

import click
import pytest

from clp_alpm.cli.main import cli
from clp_alpm.cli.options import _GLOBAL_KEY
from clp_alpm.cli.revert import revert_command
from clp_alpm.cli.reverts import REVERT_OPTIONS, parse_revert_command


def clicks_reading(args: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What click makes of `clp ARGS`: revert_command's parameters and the global options."""
    with cli.make_context("clp", list(args)) as group:
        given = [*group._protected_args, *group.args]  # as click's Group.invoke takes them
        name, command, rest = cli.resolve_command(group, given)
        assert name == "revert" and command is revert_command
        with command.make_context(name, rest, parent=group) as sub:
            return dict(sub.params), dict(sub.meta.get(_GLOBAL_KEY, {}))


def click_refuses(args: list[str]) -> bool:
    try:
        clicks_reading(args)
    except click.UsageError:
        return True
    return False


TAKEN = [
    ["revert", "demo", "1.0-1"],
    ["--root", "/r", "--noconfirm", "revert", "demo", "1.0-1"],
    ["revert", "demo=1.0-1", "other=2-1", "--root=/r", "--json"],
    ["revert", "--noconfirm", "demo", "--until", "2.1-1"],
    ["revert", "--until=2.1-1", "demo"],
    ["revert", "--until=", "demo"],  # an empty value, as click takes it
    ["revert", "--until", "--list", "demo"],  # click takes the next word as the value
    ["revert", "--until", "1-1", "--until", "2-1", "demo"],  # the last one counts
    ["-qv", "revert", "--list", "demo"],
    ["revert", "demo", "--allow-upgrade", "--no-rollback-copy", "-r", "/r", "--debug"],
    ["revert", "/var/cache/pacman/pkg/demo-1.0-1-any.pkg.tar.zst", "--confirm"],
    ["--noconfirm", "revert", "demo", "--confirm"],
    ["revert", "-", "demo"],
    ["--cachedir", "/a", "revert", "demo"],
    ["revert", "demo", "--cachedir", "/a", "--cachedir", "/b"],
    ["--color", "never", "revert", "demo"],
]

LEFT_TO_CLICK = [
    ["revert"],  # a target is required
    ["--root", "/r", "revert"],
    ["revert", "--help"],
    ["revert", "demo", "-h"],
    ["revert", "--bogus", "demo"],
    ["revert", "demo", "--until"],  # its value is missing
    ["revert", "--list=yes", "demo"],  # a flag takes no value
    ["--color", "sometimes", "revert", "demo"],
    ["revert", "demo", "-z"],
    ["--list", "revert", "demo"],  # revert's own option before the command is the group's
    ["--version", "revert", "demo"],
    ["pins", "revert"],  # another command, with a package named revert
    ["rollback", "revert"],
]


@pytest.mark.parametrize("args", TAKEN)
def test_what_is_read_by_hand_click_reads_the_same(args: list[str]) -> None:
    parsed = parse_revert_command(args)
    assert parsed is not None
    arguments, values = parsed
    params, global_values = clicks_reading(args)
    assert arguments == params
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()} == {
        k: tuple(v) if isinstance(v, list) else v for k, v in global_values.items()
    }


@pytest.mark.parametrize("args", LEFT_TO_CLICK)
def test_anything_else_is_left_to_click(args: list[str]) -> None:
    assert parse_revert_command(args) is None


@pytest.mark.parametrize("args", LEFT_TO_CLICK[:10])
def test_click_refuses_what_is_left_to_it(args: list[str]) -> None:
    """(--help is click's to print; the rest are usage errors it names.)"""
    if "--help" in args or "-h" in args:
        return
    assert click_refuses(args)


def test_revert_options_are_the_click_commands() -> None:
    own = {
        opt: (param.name, not param.is_flag)
        for param in revert_command.params
        if isinstance(param, click.Option) and param.hidden is False
        for opt in param.opts
    }
    assert own == REVERT_OPTIONS
