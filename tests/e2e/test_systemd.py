"""The timer and service as systemd reads them: `systemd-analyze verify` and `calendar`."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.kits.paths import REPO

UNITS = REPO / "systemd"
SERVICE = "core-livepatch-update.service"
TIMER = "core-livepatch-update.timer"
HOST_UNITS = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                   if (p / "sysinit.target").exists()), None)  # fmt: skip

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or HOST_UNITS is None,
    reason="systemd-analyze or systemd's own units are not installed",
)


def verify_root(tmp_path: Path, service_text: str | None = None) -> Path:
    """A root holding the units as the package installs them, /usr/bin/clp, and systemd's
    targets they refer to (verify resolves every dependency)."""
    root = tmp_path / "root"
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    for target in HOST_UNITS.glob("*.target"):
        shutil.copy(target, units)
    shutil.copy(UNITS / TIMER, units)
    (units / SERVICE).write_text(service_text or (UNITS / SERVICE).read_text())
    clp = root / "usr/bin/clp"
    clp.parent.mkdir(parents=True)
    clp.write_text("#!/bin/sh\n")
    clp.chmod(0o755)
    return root


def analyze_verify(root: Path) -> subprocess.CompletedProcess:
    # --man=no: the man pages come with the distribution work, not with these units
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", SERVICE, TIMER],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_units_pass_systemd_analyze_verify(tmp_path):
    result = analyze_verify(verify_root(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: the same run on a service with a typo does."""
    broken = (UNITS / SERVICE).read_text().replace("Type=oneshot", "Type=oneshoot")
    result = analyze_verify(verify_root(tmp_path, broken))
    assert "Failed to parse service type" in result.stderr  # verify warns, exit status 0


def test_the_timer_fires_daily_at_noon_and_catches_up():
    timer = configparser.ConfigParser()
    timer.read(UNITS / TIMER)
    calendar = timer["Timer"]["OnCalendar"]
    result = subprocess.run(
        ["systemd-analyze", "calendar", "--iterations=3", calendar],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Normalized form: *-*-* 12:00:00" in result.stdout
    elapses = [line for line in result.stdout.splitlines() if "12:00:00" in line]
    assert len(elapses) == 4  # normalized form + 3 elapses, each at 12:00:00
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["RandomizedDelaySec"]
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_the_service_runs_clp_update_unattended():
    service = configparser.ConfigParser(strict=False)
    service.read(UNITS / SERVICE)
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["ExecStart"].startswith("/usr/bin/clp update --noconfirm")
    assert service["Service"]["KillMode"] == "mixed"  # SIGTERM reaches clp only: it rolls back


def test_the_service_does_not_hide_paths_a_patch_may_declare():
    """The timer must be able to apply whatever `clp apply` can apply by hand."""
    service = configparser.ConfigParser(strict=False)
    service.read(UNITS / SERVICE)
    options = service["Service"]
    for restriction in ("ProtectSystem", "ProtectHome", "PrivateTmp", "ProtectKernelModules",
                        "ReadOnlyPaths", "InaccessiblePaths", "RestrictSUIDSGID"):  # fmt: skip
        assert restriction not in options, restriction


BOOT_EARLY = "clp-boot-early.service"
BOOT_CHECK = "clp-boot-check.service"


def boot_units_root(tmp_path: Path, early_text: str | None = None) -> Path:
    root = verify_root(tmp_path)
    units = root / "usr/lib/systemd/system"
    (units / BOOT_EARLY).write_text(early_text or (UNITS / BOOT_EARLY).read_text())
    shutil.copy(UNITS / BOOT_CHECK, units)
    return root


def verify_boot_units(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", BOOT_EARLY, BOOT_CHECK],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_boot_units_pass_systemd_analyze_verify(tmp_path):
    result = verify_boot_units(boot_units_root(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_verify_catches_a_broken_boot_unit(tmp_path):
    broken = (UNITS / BOOT_EARLY).read_text().replace("Type=oneshot", "Type=oneshoot")
    result = verify_boot_units(boot_units_root(tmp_path, broken))
    assert "Failed to parse service type" in result.stderr


def values(name: str, section: str, key: str) -> set[str]:
    found: set[str] = set()
    current = None
    for line in (UNITS / name).read_text().splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and line.startswith(f"{key}="):
            found.update(line.split("=", 1)[1].split())
    return found


def test_the_early_check_runs_before_a_display_manager_and_multi_user():
    before = values(BOOT_EARLY, "Unit", "Before")
    assert {"display-manager.service", "multi-user.target", "basic.target"} <= before
    assert values(BOOT_EARLY, "Unit", "DefaultDependencies") == {"no"}
    assert values(BOOT_EARLY, "Service", "ExecStart") >= {"/usr/bin/clp", "boot-check", "--early"}


def test_the_late_check_runs_once_the_system_is_up():
    after = values(BOOT_CHECK, "Unit", "After")
    assert {"multi-user.target", "graphical.target", BOOT_EARLY} <= after
    assert values(BOOT_CHECK, "Unit", "Before") == {"boot-complete.target"}
    assert "--early" not in values(BOOT_CHECK, "Service", "ExecStart")
    assert values(BOOT_CHECK, "Install", "WantedBy") == {"multi-user.target"}
