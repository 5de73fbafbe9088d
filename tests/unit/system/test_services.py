"""Restarting the units a patch names, through a stand-in systemctl (no systemd runs here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clp_alpm.system.services import (
    FAILED,
    RESTARTED,
    SKIPPED,
    SYSTEMCTL_ENV,
    RestartResult,
    try_restart,
    unit_name_problem,
)

ROOT = Path("/")

STAND_IN = """#!/bin/sh
# Stand-in systemctl: logs its arguments, then behaves by unit name.
printf '%s\\n' "$*" >> "{log}"
case "$2" in
  missing.service)
    echo "Failed to try-restart missing.service: Unit missing.service not loaded." >&2
    echo "See system logs for details." >&2
    exit 5 ;;
  slow.service) exec sleep 30 ;;
  crash.service) kill -9 $$ ;;
  chatty.service) echo "restarting..."; echo "done" ;;
esac
exit 0
"""


@pytest.fixture
def systemctl(tmp_path: Path) -> Path:
    script = tmp_path / "systemctl"
    script.write_text(STAND_IN.format(log=tmp_path / "calls.log"))
    script.chmod(0o755)
    return script


def calls(systemctl: Path) -> list[str]:
    log = systemctl.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_each_unit_is_try_restarted_once_in_order(systemctl: Path) -> None:
    results = try_restart(
        ["sshd.service", "cups.socket", "sshd.service", "nginx"],
        ROOT,
        str(systemctl),
        systemd_running=True,
    )
    assert [(r.unit, r.status) for r in results] == [
        ("sshd.service", RESTARTED),
        ("cups.socket", RESTARTED),
        ("nginx", RESTARTED),
    ]
    assert calls(systemctl) == [
        "try-restart sshd.service",
        "try-restart cups.socket",
        "try-restart nginx",
    ]
    assert results[0].message == "restarted if it was running"


def test_output_of_systemctl_is_kept_on_one_line(systemctl: Path) -> None:
    [result] = try_restart(["chatty.service"], ROOT, str(systemctl), systemd_running=True)
    assert result.status == RESTARTED
    assert result.message == "restarted if it was running: restarting...; done"


def test_a_failing_restart_is_failed_with_systemctls_words(systemctl: Path) -> None:
    results = try_restart(
        ["missing.service", "sshd.service"], ROOT, str(systemctl), systemd_running=True
    )
    assert [r.status for r in results] == [FAILED, RESTARTED]
    assert results[0].message == (
        "systemctl try-restart missing.service failed with exit status 5: "
        "Failed to try-restart missing.service: Unit missing.service not loaded.; "
        "See system logs for details."
    )
    assert "\n" not in results[0].message


def test_a_hanging_restart_times_out(systemctl: Path) -> None:
    [result] = try_restart(
        ["slow.service"], ROOT, str(systemctl), systemd_running=True, timeout=0.5
    )
    assert result.status == FAILED
    assert "did not finish within 0.5 s" in result.message


def test_a_killed_systemctl_is_failed(systemctl: Path) -> None:
    [result] = try_restart(["crash.service"], ROOT, str(systemctl), systemd_running=True)
    assert result == RestartResult(
        "crash.service", FAILED, "systemctl try-restart crash.service was killed by signal 9"
    )


def test_systemctl_comes_from_the_environment(
    systemctl: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SYSTEMCTL_ENV, str(systemctl))
    [result] = try_restart(["sshd.service"], ROOT, systemd_running=True)
    assert result.status == RESTARTED
    assert calls(systemctl) == ["try-restart sshd.service"]


def test_the_argument_wins_over_the_environment(
    systemctl: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SYSTEMCTL_ENV, str(tmp_path / "nowhere"))
    [result] = try_restart(["sshd.service"], ROOT, str(systemctl), systemd_running=True)
    assert result.status == RESTARTED


def test_a_missing_systemctl_is_failed_not_raised(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-systemctl"
    results = try_restart(
        ["sshd.service", "cups.service"], ROOT, str(missing), systemd_running=True
    )
    assert [r.status for r in results] == [FAILED, FAILED]
    assert results[0].message == f"not restarted: {missing} not found"


def test_a_systemctl_that_cannot_run_is_failed(systemctl: Path) -> None:
    systemctl.chmod(0o644)
    [result] = try_restart(["sshd.service"], ROOT, str(systemctl), systemd_running=True)
    assert result.status == FAILED
    assert result.message.startswith(f"not restarted: cannot run {systemctl}: ")
    assert calls(systemctl) == []


def test_nothing_runs_when_the_root_is_not_the_running_system(
    systemctl: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    results = try_restart(
        ["sshd.service", "cups.socket"], root, str(systemctl), systemd_running=True
    )
    assert [r.status for r in results] == [SKIPPED, SKIPPED]
    assert results[0].message == (
        f"not restarted: the target root {root} is not the running system"
    )
    assert calls(systemctl) == []


def test_a_root_that_leads_to_slash_is_the_running_system(systemctl: Path, tmp_path: Path) -> None:
    link = tmp_path / "slash"
    link.symlink_to("/")
    [result] = try_restart(["sshd.service"], link, str(systemctl), systemd_running=True)
    assert result.status == RESTARTED


def test_nothing_runs_without_systemd(systemctl: Path) -> None:
    [result] = try_restart(["sshd.service"], ROOT, str(systemctl), systemd_running=False)
    assert result == RestartResult(
        "sshd.service", SKIPPED, "not restarted: systemd is not running on this system"
    )
    assert calls(systemctl) == []


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="systemd runs on this machine")
def test_this_machine_is_seen_to_run_without_systemd(systemctl: Path) -> None:
    [result] = try_restart(["sshd.service"], ROOT, str(systemctl))
    assert result.status == SKIPPED
    assert calls(systemctl) == []


BAD_NAMES = [
    "",
    "-x.service",
    "--help",
    "../etc/passwd",
    "a/b.service",
    "foo bar.service",
    "sshd.service\n",
    "sshd.service;reboot",
    "$(reboot).service",
    "x" * 250 + ".service",
    ".service",
    "@x.service",
    "getty@.service",
    "user.slice",
    "init.scope",
    "dev-sda.device",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_bad_unit_name_is_failed_and_never_reaches_systemctl(systemctl: Path, name: str) -> None:
    results = try_restart([name, "sshd.service"], ROOT, str(systemctl), systemd_running=True)
    assert results[0].unit == name
    assert results[0].status == FAILED
    assert results[0].message.startswith(f"'{name}' ")
    assert results[1].status == RESTARTED
    assert calls(systemctl) == ["try-restart sshd.service"]


def test_a_bad_unit_name_is_failed_even_where_nothing_would_run(tmp_path: Path) -> None:
    results = try_restart(["-x.service", "sshd.service"], tmp_path, "/nowhere")
    assert [r.status for r in results] == [FAILED, SKIPPED]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (
            "getty@.service",
            "'getty@.service' is a template unit; name an instance such as getty@NAME.service",
        ),
        ("user.slice", "'user.slice' cannot be restarted (a .slice unit)"),
        ("-x.service", "'-x.service' is not a valid systemd unit name (it starts with '-')"),
        ("a/b.service", "'a/b.service' is not a valid systemd unit name"),
    ],
)
def test_unit_name_problems_say_what_is_wrong(name: str, problem: str) -> None:
    assert unit_name_problem(name) == problem


@pytest.mark.parametrize(
    "name",
    [
        "sshd",
        "sshd.service",
        "getty@tty1.service",
        "systemd-fsck@dev-disk-by\\x2duuid-1234.service",
        "cups.socket",
        "fstrim.timer",
        "home.mount",
        "org.freedesktop.service",
        "my_app:v2.service",
    ],
)
def test_good_unit_names_pass(name: str) -> None:
    assert unit_name_problem(name) is None


def test_one_string_instead_of_a_list_is_a_programming_error(systemctl: Path) -> None:
    with pytest.raises(TypeError):
        try_restart("sshd.service", ROOT, str(systemctl), systemd_running=True)  # type: ignore[arg-type]
    assert calls(systemctl) == []


def test_no_units_no_calls(systemctl: Path) -> None:
    assert try_restart([], ROOT, str(systemctl), systemd_running=True) == []
    assert calls(systemctl) == []


def test_results_serialise_to_json(systemctl: Path) -> None:
    results = try_restart(
        ["sshd.service", "missing.service"], ROOT, str(systemctl), systemd_running=True
    )
    data = json.loads(json.dumps([r.to_dict() for r in results]))
    assert data[0] == {
        "unit": "sshd.service",
        "status": "restarted",
        "message": "restarted if it was running",
    }
    assert data[1]["status"] == "failed"
