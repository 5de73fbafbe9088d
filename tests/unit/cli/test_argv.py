"""`clp hook`'s hand parser reads the global options as click does, from the same table."""

from __future__ import annotations

import pytest

from clp_alpm.cli.argv import GLOBAL_OPTIONS, parse_hook_command
from clp_alpm.cli.main import cli


def _parsed(args: list[str]) -> tuple[list[str], dict]:
    parsed = parse_hook_command(args)
    assert parsed is not None
    return parsed


def _values(args: list[str]) -> dict:
    return _parsed(args)[1]


def test_global_options_before_and_after_the_hook_words():
    words, values = _parsed(
        ["--root", "/r", "--config=/c.conf", "-b", "/db", "hook", "post-transaction",
         "--cachedir", "/a", "--cachedir", "/b", "--debug"]
    )  # fmt: skip
    assert words == ["post-transaction"]
    assert values == {"root": "/r", "config": "/c.conf", "dbpath": "/db",
                      "cachedir": ["/a", "/b"], "debug": True}  # fmt: skip


def test_sysroot_root_and_r_are_one_option():
    for spelling in ("--sysroot", "--root", "-r"):
        assert _values([spelling, "/x", "hook", "pre-transaction"]) == {"root": "/x"}


def test_the_last_of_noconfirm_and_confirm_wins():
    assert _values(["--noconfirm", "--confirm", "hook", "x"]) == {"noconfirm": False}
    assert _values(["--confirm", "--noconfirm", "hook", "x"]) == {"noconfirm": True}


@pytest.mark.parametrize(
    "args",
    [
        ["apply", "hook"],  # a file named hook
        ["--bogus", "hook", "pre-transaction"],
        ["--root"],
        ["--json=yes", "hook", "pre-transaction"],
        ["--color", "sometimes", "hook", "pre-transaction"],
        ["--root", "/r"],
    ],
)
def test_anything_else_is_left_to_click(args):
    assert parse_hook_command(args) is None


def test_click_knows_every_spelling_of_the_table():
    spellings = {name for param in cli.params for name in param.opts}
    assert {name for option in GLOBAL_OPTIONS for name in option.names} <= spellings


def test_short_options_together_as_click_takes_them():
    assert _values(["-qv", "hook", "x"]) == {"quiet": True, "verbose": True}
    assert _values(["-r/x", "hook", "x"]) == {"root": "/x"}
    assert _values(["-qr", "/y", "hook", "x"]) == {"quiet": True, "root": "/y"}
    assert _values(["-vqb/db", "hook", "x"]) == {"verbose": True, "quiet": True, "dbpath": "/db"}
    assert parse_hook_command(["-qz", "hook", "x"]) is None  # -z is no option: click says so
    assert parse_hook_command(["-qr"]) is None
