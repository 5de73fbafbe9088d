"""Hostile or broken clp.conf and pacman.conf files: every command that reads one refuses it
with exit 2, one `error:` line naming the file and the problem, no traceback, nothing changed
in the root or outside it (and nothing blocks: a fifo or a device is never read)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kits.hostilekit import assert_refused

CLP_CONF = "etc/CLP/clp.conf"
PACMAN_CONF = "etc/pacman.conf"


@dataclass(frozen=True)
class ConfCase:
    id: str
    setup: Callable[[Path], None]  # writes the hostile file(s) under the root
    naming: str | tuple[str, ...]


def text(relpath: str, content: str | bytes) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return write


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        for setup in setups:
            setup(root)

    return run


def fifo(relpath: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(root / relpath)

    return make


def directory(relpath: str) -> Callable[[Path], None]:
    return lambda root: (root / relpath).mkdir(parents=True, exist_ok=True)


OPTIONS = "[options]\n"

CLP_CASES = [
    ConfCase(
        "include-loop",
        text(CLP_CONF, OPTIONS + "Include = /etc/CLP/clp.conf\n"),
        "Include nested more than 10 deep",
    ),
    ConfCase(
        "include-of-proc-self",
        text(CLP_CONF, OPTIONS + "Include = /proc/self/environ\n"),
        "files under /proc are not configuration files",
    ),
    ConfCase(
        "include-of-a-device",
        text(CLP_CONF, OPTIONS + "Include = /dev/zero\n"),
        "files under /dev are not configuration files",
    ),
    ConfCase(
        "include-of-a-fifo",
        both(
            fifo("etc/CLP/conf.d/pipe"), text(CLP_CONF, OPTIONS + "Include = /etc/CLP/conf.d/*\n")
        ),  # fmt: skip
        "not a regular file",
    ),
    ConfCase(
        "relative-include",
        text(CLP_CONF, OPTIONS + "Include = mirrors\n"),
        "Include needs an absolute path",
    ),
    ConfCase(
        "huge-file",
        text(CLP_CONF, OPTIONS + "# padding\n" * 200_000),
        "larger than 1024 KiB",
    ),
    ConfCase(
        "huge-number",
        text(CLP_CONF, OPTIONS + "HistoryLimit = " + "9" * 5000 + "\n"),
        "HistoryLimit must be a whole number from 1 to 100000",
    ),
    ConfCase(
        "superscript-digits",
        text(CLP_CONF, OPTIONS + "ScriptTimeout = \u00b2\u00b3\n"),
        "ScriptTimeout must be a number of seconds",
    ),
    ConfCase(
        "bad-number",
        text(CLP_CONF, OPTIONS + "ConnectTimeout = ten\n"),
        "ConnectTimeout must be a number of seconds",
    ),
    ConfCase(
        "negative-timeout",
        text(CLP_CONF, OPTIONS + "ReadTimeout = -5\n"),
        "ReadTimeout must be a number of seconds",
    ),
    ConfCase(
        "zero-low-speed-timeout",
        text(CLP_CONF, OPTIONS + "LowSpeedTimeout = 0\n"),
        "LowSpeedTimeout must be a number of seconds",
    ),
    ConfCase(
        "negative-low-speed-limit",
        text(CLP_CONF, OPTIONS + "LowSpeedLimit = -1\n"),
        "LowSpeedLimit must be a number of bytes per second",
    ),
    ConfCase(
        "a-second-unknown-section",
        text(CLP_CONF, OPTIONS + "SigLevel = Required\n[options]\n[core]\n"),
        "unknown section [core]",
    ),
    ConfCase(
        "nul-byte",
        text(CLP_CONF, OPTIONS + "PatchDir = /opt/CLP\x00/../../etc\n"),
        ("holds a NUL byte", "clp.conf:2"),
    ),
    ConfCase(
        "not-utf-8",
        text(CLP_CONF, OPTIONS.encode() + b"PatchDir = /opt/\xff\xfe\n"),
        "not UTF-8",
    ),
    ConfCase(
        "key-without-value",
        text(CLP_CONF, OPTIONS + "SigLevel\n"),
        "expected 'Key = Value'",
    ),
    ConfCase(
        "unknown-siglevel",
        text(CLP_CONF, OPTIONS + "SigLevel = TrustAll\n"),
        "SigLevel must be one of",
    ),
    ConfCase(
        "patchdir-escaping-with-dotdot",
        text(CLP_CONF, OPTIONS + "PatchDir = /opt/../etc\n"),
        "PatchDir must be an absolute path",
    ),
    ConfCase(
        "option-outside-options",
        text(CLP_CONF, "SigLevel = Never\n"),
        "must be in the [options] section",
    ),
    ConfCase(
        "config-is-a-directory",
        directory(CLP_CONF),
        "Is a directory",
    ),
]

PACMAN_CASES = [
    ConfCase(
        "pacman-include-loop",
        text(PACMAN_CONF, OPTIONS + "Include = /etc/pacman.conf\n"),
        "Include nested more than",
    ),
    ConfCase(
        "pacman-include-of-proc-self",
        text(PACMAN_CONF, OPTIONS + "Include = /proc/self/status\n"),
        "files under /proc are not configuration files",
    ),
    ConfCase(
        "pacman-include-of-a-fifo",
        both(
            fifo("etc/pacman.d/pipe"),
            text(PACMAN_CONF, "[core]\nInclude = /etc/pacman.d/pipe\n"),
        ),
        "not a regular file",
    ),
    ConfCase(
        "pacman-nul-byte",
        text(PACMAN_CONF, OPTIONS + "IgnorePkg = a\x00b\n"),
        "holds a NUL byte",
    ),
    ConfCase(
        "pacman-not-utf-8",
        text(PACMAN_CONF, OPTIONS.encode() + b"IgnorePkg = \xff\n"),
        "not UTF-8",
    ),
    ConfCase(
        "pacman-huge-file",
        text(PACMAN_CONF, OPTIONS + "#\n" * 600_000),
        "larger than 1024 KiB",
    ),
    ConfCase(
        "pacman-option-outside-any-section",
        text(PACMAN_CONF, "IgnorePkg = openssh\n"),
        "outside any section",
    ),
]


@pytest.mark.parametrize("case", CLP_CASES, ids=lambda case: case.id)
def test_hostile_clp_conf_is_refused(sandbox, clp, fence, case):
    case.setup(sandbox)
    fence.close()
    result = clp("--root", str(sandbox), "list", timeout=30)
    assert_refused(result, fence, naming=case.naming)
    assert "clp.conf" in result.stderr or "/etc/CLP/" in result.stderr


@pytest.mark.parametrize("case", PACMAN_CASES, ids=lambda case: case.id)
def test_hostile_pacman_conf_is_refused(sandbox, clp, fence, case):
    case.setup(sandbox)
    fence.close()
    result = clp("--root", str(sandbox), "-v", "list", timeout=30)
    assert_refused(result, fence, naming=case.naming)
    assert "pacman" in result.stderr


def test_an_unknown_key_is_a_warning_as_in_pacman(sandbox, clp, fence):
    text(CLP_CONF, OPTIONS + "Colour = always\n")(sandbox)
    fence.close()
    result = clp("--root", str(sandbox), "list")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"warning: {sandbox / CLP_CONF}:2: unknown option 'Colour' ignored"
    ]
    assert fence.changes() == []
