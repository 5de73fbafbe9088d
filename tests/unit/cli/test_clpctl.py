"""clpctl's command lines, as /usr/bin/clpctl turns them into clp's."""

from __future__ import annotations

import pytest

from clp_alpm.cli.clpctl import clp_arguments, split_options


@pytest.mark.parametrize(
    ("clpctl", "clp"),
    [
        (["install", "CLPR1251124.clp"], ["apply", "CLPR1251124.clp", "--noconfirm"]),
        (["install", "/tmp/CLP/CLPR1251124.CLP"], ["apply", "/tmp/CLP/CLPR1251124.CLP",
                                                    "--noconfirm"]),
        # clpctl named what `install FILE` left by FILE: the ID is FILE without .clp
        (["uninstall", "CLPR1251124.clp"], ["rollback", "CLPR1251124", "--noconfirm"]),
        (["uninstall", "CLPR1251124.CLP"], ["rollback", "CLPR1251124", "--noconfirm"]),
        (["uninstall", "/opt/CLP/CLPR1251124/"], ["rollback", "CLPR1251124", "--noconfirm"]),
        (["uninstall", "CLPR1251124"], ["rollback", "CLPR1251124", "--noconfirm"]),
        (["list"], ["list"]),
        (["update"], ["update", "--noconfirm"]),
        (["create", "src/CLPR1251124", "CLPR1251124"],
         ["build", "src/CLPR1251124", "-o", "CLPR1251124.clp"]),
        (["create", "dir", "out.clp"], ["build", "dir", "-o", "out.clp"]),
    ],
)  # fmt: skip
def test_each_command_becomes_clps(clpctl: list[str], clp: list[str]) -> None:
    assert clp_arguments(clpctl[0], clpctl[1:]) == clp


def test_global_options_pass_through_wherever_they_stand() -> None:
    assert split_options(["--root", "/mnt", "list", "--json", "--config=/c"]) == (
        ["--root", "/mnt", "--json", "--config=/c"],
        ["list"],
    )
    assert split_options(["-r", "/mnt", "update"]) == (["-r", "/mnt"], ["update"])
    assert split_options(["list", "--nonsense"]) is None
