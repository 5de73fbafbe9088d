"""Hostile boot health inputs given to `clp boot-check`: a health directory that is a link out
of the root and a boot id that is not one are refused (exit 2, one line, nothing changed);
a check that never exits is stopped at HealthTimeout with its whole process group, and a
file that is not an executable check is skipped, not run."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.kits.hostilekit import Fence, assert_refused

HEALTH = "etc/CLP/health.d"
TOUCH = "#!/bin/sh\necho ran > /ran\n"


def write_check(directory: Path, name: str, text: str, mode: int = 0o755) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    path.chmod(mode)
    return path


def link_health_dir(sandbox: Path, canary: Path) -> None:
    """/etc/CLP/health.d -> the canary, by a relative path that climbs out of the root."""
    write_check(canary / "required.d", "10-outside", TOUCH)
    (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (sandbox / HEALTH).symlink_to(os.path.relpath(canary, sandbox / "etc/CLP"))


def link_phase_dir(sandbox: Path, canary: Path) -> None:
    """/etc/CLP/health.d/required.d -> the canary's directory, by an absolute host path."""
    write_check(canary / "required.d", "10-outside", TOUCH)
    (sandbox / HEALTH).mkdir(parents=True, exist_ok=True)
    (sandbox / HEALTH / "required.d").symlink_to(canary / "required.d")


@pytest.mark.parametrize("setup", [link_health_dir, link_phase_dir], ids=lambda f: f.__name__)
def test_a_health_directory_that_is_a_link_is_refused(sandbox, canary, fence, clp, setup):
    setup(sandbox, canary)
    fence.close()
    for args in (("boot-check",), ("boot-check", "--early")):
        result = clp("--root", str(sandbox), *args, env={"CLP_BOOT_ID": "b1"})
        assert_refused(result, fence, naming="is a symbolic link")
    assert not (canary / "ran").exists() and not (sandbox / "ran").exists()


BAD_BOOT_IDS = ["", "../../etc/passwd", "a b", "x" * 65, "$(reboot)", "b1\nb2", "-rf", "é"]


@pytest.mark.parametrize("value", BAD_BOOT_IDS, ids=repr)
def test_a_hostile_boot_id_is_refused(sandbox, fence: Fence, clp, value):
    write_check(sandbox / HEALTH / "required.d", "10-touch", TOUCH)
    fence.close()
    result = clp("--root", str(sandbox), "boot-check", env={"CLP_BOOT_ID": value})
    assert_refused(result, fence, naming="CLP_BOOT_ID")
    assert "\n" not in result.stderr.strip()


def test_a_check_that_never_exits_is_stopped_with_its_process_group(sandbox, fence, clp):
    (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (sandbox / "etc/CLP/clp.conf").write_text("[options]\nHealthTimeout = 1\n")
    never = "#!/bin/sh\ntrap '' TERM\nsleep 1000 &\nwhile :; do sleep 1; done\n"
    write_check(sandbox / HEALTH / "required.d", "10-never", never)
    fence.close()
    started = time.monotonic()
    result = clp("--root", str(sandbox), "boot-check", "--json", env={"CLP_BOOT_ID": "b1"})
    assert time.monotonic() - started < 30
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "failed"
    assert [c["result"] for c in report["checks"]] == ["timed out after 1 s"]
    assert fence.changes() == []  # the autouse fixture checks that no process is left


@pytest.mark.parametrize(
    "name, make",
    [
        ("not executable", lambda d: write_check(d, "10-plain", TOUCH, mode=0o644)),
        ("a link", lambda d: (d.mkdir(parents=True), (d / "10-link").symlink_to("/bin/false"))),
        ("a directory", lambda d: (d / "10-dir").mkdir(parents=True)),
        ("a leftover", lambda d: write_check(d, "10-check.pacnew", "#!/bin/sh\nexit 1\n")),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_what_is_not_an_executable_check_is_skipped_not_run(sandbox, fence, clp, name, make):
    make(sandbox / HEALTH / "required.d")
    fence.close()
    result = clp("--root", str(sandbox), "boot-check", "--json", env={"CLP_BOOT_ID": "b1"})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "good"
    assert all(c["skipped"] for c in report["checks"]), report["checks"]
    assert not (sandbox / "ran").exists()
    assert fence.changes() == []
