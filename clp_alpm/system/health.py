"""Boot health checks: the executables of /etc/CLP/health.d/<phase>.d, run in name order.

greenboot's model in clp's files: `required.d` must pass, a failure in `wanted.d` is logged
and never acted on, `green.d` runs after a boot passed and `red.d` before clp acts on failed
boots. Each check runs chrooted into the root (as a patch script does), in its own process
group, with a timeout; at the timeout the whole group is stopped. As run-parts does, names
starting with '.' and pacman's and editors' leftovers (`.pacnew`, `.pacsave`, `.pacorig`,
`~`) are not checks, and a file without an execute bit is skipped, so `chmod -x` turns a
check off.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from clp_alpm.errors import UsageError
from clp_alpm.logfile import LogFile
from clp_alpm.paths import under_root
from clp_alpm.system.scripts import SCRIPT_PATH, run_process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _typeshed import StrPath

HEALTH_DIR = "/etc/CLP/health.d"
PHASES = ("required", "wanted", "green", "red")
LOG_TAG = "CLP-HEALTH"
JOURNAL_TAG = "clp-health"
KILL_GRACE_SECONDS = 2.0  # after the timeout's SIGTERM, then SIGKILL for the whole group
_NOT_CHECKS = (".pacnew", ".pacsave", ".pacorig", "~", ".dpkg-old", ".dpkg-new", ".rpmnew")
_JOURNAL_SOCKET = "/run/systemd/journal/socket"
_SYSLOG_SOCKET = "/dev/log"


@dataclass(frozen=True)
class CheckResult:
    """One check of one phase: passed, failed (with why), or skipped (with why)."""

    phase: str
    name: str
    passed: bool
    why: str  # "passed", "exited with status 1", "timed out after 60 s", "not executable"
    skipped: bool = False
    output: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.phase}.d/{self.name}: {self.why}"

    def to_dict(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "name": self.name,
            "passed": self.passed,
            "skipped": self.skipped,
            "result": self.why,
            "output": list(self.output),
        }


def phase_dir(phase: str) -> str:
    return f"{HEALTH_DIR}/{phase}.d"


def check_health_dirs(root: StrPath) -> None:
    """Refuse a health directory reached through a symbolic link (UsageError): listing it
    would read outside the root. Missing directories are fine: no checks there."""
    for phase in PHASES:
        host = under_root(root, phase_dir(phase))
        path = Path(root)
        for part in Path(host).relative_to(root).parts:
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                break
            except OSError as err:
                raise UsageError(
                    f"{path}: cannot read the health checks ({err.strerror})"
                ) from None
            if stat.S_ISLNK(mode):
                raise UsageError(
                    f"{path} is a symbolic link: clp runs health checks only from directories "
                    f"of the root ({HEALTH_DIR}/*.d)"
                )
            if not stat.S_ISDIR(mode):
                raise UsageError(f"{path} is not a directory")


def _is_check_name(name: str) -> bool:
    return not name.startswith(".") and not name.endswith(_NOT_CHECKS)


def list_checks(root: StrPath, phase: str) -> list[str]:
    """The names of the entries of the phase's directory that are checks, in name order."""
    host = under_root(root, phase_dir(phase))
    try:
        names = os.listdir(host)
    except FileNotFoundError:
        return []
    except OSError as err:
        raise UsageError(f"{host}: cannot read the health checks ({err.strerror})") from None
    return sorted((n for n in names if _is_check_name(n)), key=os.fsencode)


def run_phase(
    root: StrPath,
    phase: str,
    env: Mapping[str, str],
    timeout: float,
    log: LogFile,
    on_output: Callable[[str], None] | None = None,
    journal: bool = True,
) -> list[CheckResult]:
    """Run every check of `phase`, one after the other; a failure does not stop the others.
    Output lines go to the log (and `on_output`), and each check's to the system journal
    when `journal` and the journal (or syslog) listens."""
    results = []
    for name in list_checks(root, phase):
        target = f"{phase_dir(phase)}/{name}"
        host = under_root(root, target)
        try:
            info = os.lstat(host)
        except OSError as err:
            results.append(CheckResult(phase, name, True, f"skipped: {err.strerror}", True))
            continue
        if not stat.S_ISREG(info.st_mode):
            results.append(CheckResult(phase, name, True, "skipped: not a regular file", True))
            continue
        if not info.st_mode & 0o111:
            results.append(CheckResult(phase, name, True, "skipped: not executable", True))
            continue
        lines: list[str] = []
        outcome = run_process(
            [target],
            root=root,
            cwd="/",
            env=dict(env) | {"CLP_HEALTH_PHASE": phase},
            timeout=timeout,
            on_output=_collector(lines, on_output),
            log=log,
            log_tag=f"{LOG_TAG} {phase}.d/{name}",
            kill_grace=KILL_GRACE_SECONDS,
        )
        why = "passed" if outcome.ok else outcome.describe()
        result = CheckResult(phase, name, outcome.ok, why, output=tuple(lines))
        log.write(LOG_TAG, result.describe())
        if journal:
            to_system_journal([*lines, result.describe()], error=not outcome.ok)
        results.append(result)
    return results


def _collector(lines: list[str], on_output: Callable[[str], None] | None) -> Callable[[str], None]:
    def collect(line: str) -> None:
        lines.append(line)
        if on_output is not None:
            on_output(line)

    return collect


def check_environment(boot_id: str, packages: Sequence[str], state_dir: str) -> dict[str, str]:
    """What a check sees: a clean environment, the boot, the packages on probation."""
    return {
        "PATH": SCRIPT_PATH,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": "/root",
        "TERM": "dumb",
        "CLP_ROOT": "/",
        "CLP_BOOT_ID": boot_id,
        "CLP_HEALTH_PACKAGES": " ".join(packages),
        "CLP_HEALTH_STATE": f"{state_dir.rstrip('/')}/health",
    }


def to_system_journal(lines: Sequence[str], error: bool = False) -> None:
    """Send `lines` to the journal (systemd-cat) or syslog (logger), when one listens;
    nothing, silently, where neither does (a container, a sandbox)."""
    text = "".join(f"{line}\n" for line in lines)
    if not text:
        return
    priority = "err" if error else "info"
    if os.path.exists(_JOURNAL_SOCKET) and (program := shutil.which("systemd-cat")):
        argv = [program, "-t", JOURNAL_TAG, "-p", priority]
    elif os.path.exists(_SYSLOG_SOCKET) and (program := shutil.which("logger")):
        argv = [program, "-t", JOURNAL_TAG, "-p", f"user.{priority}"]
    else:
        return
    try:
        subprocess.run(argv, input=text.encode("utf-8", "replace"), capture_output=True,
                       timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return
