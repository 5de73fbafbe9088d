"""Restart the systemd units a patch names (its `<Restart><Service>` list).

Units are restarted with `systemctl try-restart UNIT`, one call per unit: a unit that is running
is restarted, a unit that is stopped stays stopped. That only makes sense on the running system,
so nothing is run unless the target root is "/", systemd is running (`/run/systemd/system`
exists, as sd_booted() checks) and clp is not inside a chroot (there systemctl ignores the
request and still exits 0). Otherwise every unit is reported as "skipped" with the reason.

A unit name is checked before it reaches systemctl; a bad name, a missing systemctl, a failing
or hanging restart are all results ("failed"), never exceptions.
"""

from __future__ import annotations

import os
import re

from clp_alpm.paths import is_symlink

TYPE_CHECKING = False  # no typing at run time: see clp_alpm.cli.entry
if TYPE_CHECKING:
    from collections.abc import Sequence
    from dataclasses import dataclass

    from _typeshed import StrPath
else:  # the listings start without dataclasses (inspect, ast), see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass

SYSTEMCTL = "/usr/bin/systemctl"
SYSTEMCTL_ENV = "CLP_SYSTEMCTL"
"""Environment variable naming the systemctl to run (tests point it at a stand-in script)."""

RESTART_TIMEOUT_SECONDS = 90.0
MAX_MESSAGE_CHARS = 2000

RESTARTED = "restarted"
FAILED = "failed"
SKIPPED = "skipped"

# systemd's VALID_CHARS plus '@' (compiled on first use, by re's cache: `clp status` imports
# this module and checks a name only for a process that uses a replaced file)
_UNIT_CHARS = r"[A-Za-z0-9_:.@\\-]{1,255}"
UNIT_TYPES = frozenset(
    {
        "service",
        "socket",
        "target",
        "device",
        "mount",
        "automount",
        "swap",
        "timer",
        "path",
        "slice",
        "scope",
    }
)
_NOT_RESTARTABLE = frozenset({"device", "slice", "scope"})


@dataclass(frozen=True)
class RestartResult:
    unit: str
    status: str  # RESTARTED | FAILED | SKIPPED
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"unit": self.unit, "status": self.status, "message": self.message}


def unit_name_problem(unit: str) -> str | None:
    """Why `unit` cannot be passed to `systemctl try-restart`, or None when it can.

    A name without a known type suffix is a service, as systemctl reads it ("sshd" is
    "sshd.service"). Templates ("getty@.service") and units that cannot be restarted (slices,
    scopes, devices) are refused; so is a leading '-', which systemctl would read as an option.
    """
    if not isinstance(unit, str) or not re.fullmatch(_UNIT_CHARS, unit):
        return f"'{unit}' is not a valid systemd unit name"
    if unit.startswith("-"):
        return f"'{unit}' is not a valid systemd unit name (it starts with '-')"
    stem, dot, suffix = unit.rpartition(".")
    if not dot or suffix not in UNIT_TYPES:
        stem, suffix = unit, "service"
    prefix, at, instance = stem.partition("@")
    if not prefix or prefix.startswith("."):
        return f"'{unit}' is not a valid systemd unit name"
    if at and not instance:
        return f"'{unit}' is a template unit; name an instance such as {prefix}@NAME.{suffix}"
    if suffix in _NOT_RESTARTABLE:
        return f"'{unit}' cannot be restarted (a .{suffix} unit)"
    return None


def unit_name_is_valid(unit: str) -> bool:
    return unit_name_problem(unit) is None


def systemctl_path(systemctl: str | None = None) -> str:
    """The systemctl to run: the argument, else $CLP_SYSTEMCTL, else /usr/bin/systemctl."""
    return systemctl or os.environ.get(SYSTEMCTL_ENV) or SYSTEMCTL


def why_not_running_system(root: StrPath, systemd_running: bool | None = None) -> str | None:
    """Why units cannot be restarted for `root`, or None when they can.

    `systemd_running` None checks this machine; True or False says so (tests, and callers
    that already know).
    """
    if os.path.realpath(root) != "/":
        return f"not restarted: the target root {root} is not the running system"
    if systemd_running is None:
        if not os.path.isdir("/run/systemd/system"):
            return "not restarted: systemd is not running on this system"
        if _in_chroot():
            return "not restarted: clp runs inside a chroot, not on the running system"
    elif not systemd_running:
        return "not restarted: systemd is not running on this system"
    return None


def try_restart(
    units: Sequence[str],
    root: StrPath,
    systemctl: str | None = None,
    *,
    systemd_running: bool | None = None,
    timeout: float = RESTART_TIMEOUT_SECONDS,
) -> list[RestartResult]:
    """`systemctl try-restart` each unit of `units` (duplicates once), in order; one result each."""
    if isinstance(units, str):
        raise TypeError("units must be a sequence of unit names, not one string")
    skip_reason = why_not_running_system(root, systemd_running)
    command = systemctl_path(systemctl)
    results: list[RestartResult] = []
    for unit in dict.fromkeys(units):
        problem = unit_name_problem(unit)
        if problem is not None:
            results.append(RestartResult(str(unit), FAILED, problem))
        elif skip_reason is not None:
            results.append(RestartResult(unit, SKIPPED, skip_reason))
        else:
            results.append(_run_try_restart(command, unit, timeout))
    return results


def _run_try_restart(systemctl: str, unit: str, timeout: float) -> RestartResult:
    import subprocess  # not for `clp status`, which only reads

    what = f"systemctl try-restart {unit}"
    try:
        completed = subprocess.run(
            [systemctl, "try-restart", unit],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return RestartResult(unit, FAILED, f"not restarted: {systemctl} not found")
    except subprocess.TimeoutExpired as timed_out:
        output = _one_line(timed_out.output)
        message = f"{what} did not finish within {timeout:g} s (the restart job may still run)"
        return RestartResult(unit, FAILED, _with_output(message, output))
    except OSError as error:
        return RestartResult(
            unit, FAILED, f"not restarted: cannot run {systemctl}: {error.strerror or error}"
        )
    output = _one_line(completed.stdout)
    if completed.returncode == 0:
        return RestartResult(unit, RESTARTED, _with_output("restarted if it was running", output))
    if completed.returncode < 0:
        message = f"{what} was killed by signal {-completed.returncode}"
    else:
        message = f"{what} failed with exit status {completed.returncode}"
    return RestartResult(unit, FAILED, _with_output(message, output))


def _one_line(output: bytes | str | None) -> str:
    if not output:
        return ""
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    line = "; ".join(part.strip() for part in text.splitlines() if part.strip())
    if len(line) > MAX_MESSAGE_CHARS:
        line = line[: MAX_MESSAGE_CHARS - 3] + "..."
    return line


def _with_output(message: str, output: str) -> str:
    return f"{message}: {output}" if output else message


def _in_chroot() -> bool:
    """True when "/" is not the root of PID 1 (systemd's running_in_chroot test); False when
    that cannot be told."""
    try:
        ours = os.stat("/")
        init = os.stat("/proc/1/root")
    except OSError:
        return False
    return (ours.st_dev, ours.st_ino) != (init.st_dev, init.st_ino)


# -- clp's own units, and copies that shadow them ------------------------------------------

CLP_UNITS = ("core-livepatch-update.service", "core-livepatch-update.timer")
VENDOR_UNIT_DIR = "/usr/lib/systemd/system"
ADMIN_UNIT_DIR = "/etc/systemd/system"
_SHOWN_KEYS = ("ExecStart", "OnCalendar")


@dataclass(frozen=True)
class ShadowedUnit:
    """A file in /etc/systemd/system that systemd reads instead of clp's unit of that name
    (Vincent OS's `scripts` package installs clpctl-era copies there)."""

    unit: str
    path: str  # target path of the shadowing file
    masked: bool  # a link to /dev/null: the unit is masked
    lines: tuple[str, ...]  # its ExecStart= and OnCalendar= lines, to show what runs

    @property
    def fix(self) -> str:
        if self.masked:
            return f"systemctl unmask {self.unit}"
        fix = f"rm {self.path} && systemctl daemon-reload"
        if self.unit.endswith(".timer"):  # its enable link may lead to the removed copy
            fix += f" && systemctl reenable {self.unit}"
        return fix

    def describe(self) -> str:
        if self.masked:
            return f"{self.path} masks clp's {self.unit}: it never runs"
        shown = f" ({'; '.join(self.lines)})" if self.lines else ""
        return f"{self.path} overrides clp's {VENDOR_UNIT_DIR}/{self.unit}{shown}"

    def to_dict(self) -> dict[str, object]:
        return {"unit": self.unit, "path": self.path, "masked": self.masked,
                "lines": list(self.lines), "message": self.describe(), "fix": self.fix}  # fmt: skip


def shadowed_units(root: StrPath) -> list[ShadowedUnit]:
    """clp's units that a file of the same name in /etc/systemd/system overrides. A link
    to clp's own file is not an override; drop-ins (`systemctl edit`, UNIT.d/) are kept
    customizations and not reported."""
    found = []
    for unit in CLP_UNITS:
        path = os.path.join(root, ADMIN_UNIT_DIR.lstrip("/"), unit)
        if not os.path.lexists(path):
            continue
        target = os.readlink(path) if is_symlink(path) else None
        if target == f"{VENDOR_UNIT_DIR}/{unit}":
            continue
        masked = target == "/dev/null"
        lines: tuple[str, ...] = ()
        if not masked:
            try:
                with open(path, encoding="utf-8", errors="replace") as file:
                    text = file.read()
            except OSError:
                text = ""
            lines = tuple(
                line.strip()
                for line in text.splitlines()
                if line.strip().partition("=")[0].strip() in _SHOWN_KEYS
            )
        found.append(ShadowedUnit(unit, f"{ADMIN_UNIT_DIR}/{unit}", masked, lines))
    return found
