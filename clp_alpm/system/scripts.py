"""Run a patch's Install/Remove scripts and its health check, chrooted into the target root.

Every child runs in its own session (so its process group id equals its pid), with
PR_SET_PDEATHSIG=SIGKILL (a SIGKILLed clp does not leave the interpreter running), umask 022,
stdin from /dev/null and stdout+stderr merged into one pipe that is streamed line by line.

A script must not leave processes behind: when the interpreter exits, whatever is still running
in its process group is killed with SIGKILL. A process that leaves the group on purpose (setsid,
a double fork into a new session) escapes this; clp then stops reading its output after a short
wait instead of hanging on the pipe it still holds. The death signal only reaches the
interpreter itself, not its children: the caller puts a marker (CLP_RUN_ID) in the script's
environment and journals it before the start; `kill_marked_processes` finds the script and all
it spawned by that marker when clp recovers from a crash.

The death signal is tied to the thread that started the child: call these functions from a
thread that outlives the script (they block until it ends, so any caller does).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clp_alpm.errors import OperationFailed, UsageError
from clp_alpm.paths import is_dir, is_file, normalize_target_path, resolve_in_root

if TYPE_CHECKING:
    from _typeshed import StrPath

    from clp_alpm.logfile import LogFile

SCRIPT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin"
ACTIONS = ("install", "remove", "health-check")
HEALTH_CHECK_SHELL = "/bin/sh"

KILL_GRACE_SECONDS = 5.0
"""How long a timed-out process group gets between SIGTERM and SIGKILL."""

MAX_LINE_BYTES = 64 * 1024
"""Longer output lines are split, so a script printing without newlines cannot exhaust memory."""

DRAIN_SECONDS = 2.0
"""How long to keep reading output after the group was killed (an escaped process may hold it)."""

_READ_CHUNK = 64 * 1024
_PENDING_READS = 64  # bounded: a background child may keep the pipe busy forever
_POLL_TICK = 0.05  # only used where pidfd_open is unavailable
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcessResult:
    argv: tuple[str, ...]
    exit_code: int | None  # None when killed by a signal or stopped after a timeout
    signal: int | None
    timed_out: bool
    duration: float
    timeout: float | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            limit = self.timeout if self.timeout is not None else self.duration
            return f"timed out after {limit:g} s"
        if self.signal is not None:
            return f"was killed by {_signal_name(self.signal)}"
        return f"exited with status {self.exit_code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# --- the interpreter and the environment -------------------------------------------------------


def script_argv(interpreter: str, script: str) -> list[str]:
    return [interpreter, "-NoProfile", "-NonInteractive", "-File", script]


def find_interpreter(root: StrPath, interpreter: str) -> Path:
    """Host path of `interpreter` as the chrooted script will see it (symlinks resolved in root)."""
    if not interpreter.startswith("/"):
        raise UsageError(
            f"interpreter {interpreter!r} must be an absolute path "
            "(set Interpreter= in /etc/CLP/clp.conf)"
        )
    host_root = Path(root).resolve()
    found = resolve_in_root(host_root, normalize_target_path(interpreter))
    if found is None or not is_file(found) or not os.access(found, os.X_OK):
        raise UsageError(
            f"interpreter {interpreter} not found in {host_root} "
            "(set Interpreter= in /etc/CLP/clp.conf)"
        )
    return Path(found)


def script_environment(
    patch_id: str,
    patch_dir: str,
    root: StrPath,
    action: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A clean environment for a script, built from nothing (never the caller's environment).

    CLP_ROOT is always "/": the script runs chrooted, so inside it the target system is at "/".
    CLP_HOST_ROOT is where that system is mounted on the host (for messages; scripts cannot
    reach it). The locale is fixed so scripts can parse the output of the tools they call.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown script action {action!r}")
    env = {
        "PATH": SCRIPT_PATH,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": "/root",
        "TERM": "dumb",
        # PowerShell would otherwise phone home and check for updates from a root process.
        "POWERSHELL_TELEMETRY_OPTOUT": "1",
        "POWERSHELL_UPDATECHECK": "Off",
    }
    for key, value in (extra or {}).items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise ValueError(f"bad environment variable {key!r}")
        env[key] = value
    env.update(
        {
            "CLP_PATCH_ID": patch_id,
            "CLP_PATCH_DIR": normalize_target_path(patch_dir),
            "CLP_ROOT": "/",
            "CLP_HOST_ROOT": str(Path(root).resolve()),
            "CLP_ACTION": action,
        }
    )
    return env


# --- process groups ----------------------------------------------------------------------------


def _live_group_members(pgid: int) -> list[int] | None:
    """Pids of the processes in group `pgid` that are not zombies; None if /proc is unreadable."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    members = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process went away while we looked
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry))
    return members


def _signal_group(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


RUN_MARKER_ENV = "CLP_RUN_ID"


def kill_marked_processes(marker: str, rounds: int = 5) -> list[int]:
    """SIGKILL every process whose environment carries CLP_RUN_ID=<marker>.

    clp journals the marker before a script starts, so a crashed clp's next run can find the
    script and everything it spawned (children inherit the environment) with no window in
    which a pid is unknown, and can never hit an unrelated process that reused a pid.
    """
    needle = f"{RUN_MARKER_ENV}={marker}".encode()
    killed: set[int] = set()
    for _ in range(rounds):  # a process may fork while its siblings are being killed
        found = [p for p in _pids() if p not in killed and needle in _environment_of(p)]
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed.update(found)
        if not found:
            break
        time.sleep(0.01)
    return sorted(killed)


def _pids() -> list[int]:
    return [
        int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) != os.getpid()
    ]


def _environment_of(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return handle.read().split(b"\0")
    except OSError:
        return []


# --- the child's setup (runs between fork and exec) --------------------------------------------

_prctl_function: Callable[..., int] | None = None


def _load_prctl() -> Callable[..., int] | None:
    """Load prctl in the parent: the child must not import or allocate between fork and exec."""
    global _prctl_function
    if _prctl_function is None:
        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            return None
        prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        prctl.restype = ctypes.c_int
        _prctl_function = prctl
    return _prctl_function


def _child_setup(chroot_to: str | None, cwd: str) -> Callable[[], None]:
    parent = os.getpid()
    prctl = _load_prctl()
    kill_signal = int(signal.SIGKILL)

    def setup() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, kill_signal, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(127)  # clp died before the death signal was armed
        if chroot_to is not None:
            os.chroot(chroot_to)
            os.chdir(cwd)

    return setup


# --- output ------------------------------------------------------------------------------------


class _LineSplitter:
    """Turns chunks of bytes into lines (without the newline), splitting over-long lines."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            newline = buffer.find(b"\n", 0, MAX_LINE_BYTES + 1)
            if newline != -1:
                self._emit_bytes(bytes(buffer[:newline]))
                del buffer[: newline + 1]
            elif len(buffer) > MAX_LINE_BYTES:
                cut = _utf8_boundary(buffer, MAX_LINE_BYTES)
                self._emit_bytes(bytes(buffer[:cut]))
                del buffer[:cut]
            else:
                return

    def finish(self) -> None:
        if self._buffer:
            self._emit_bytes(bytes(self._buffer))
            self._buffer.clear()

    def _emit_bytes(self, line: bytes) -> None:
        self._emit(line.removesuffix(b"\r").decode("utf-8", errors="replace"))


def _utf8_boundary(buffer: bytearray, limit: int) -> int:
    """A cut point at most `limit` that does not split a UTF-8 sequence (if the data is UTF-8)."""
    cut = limit
    while cut > limit - 3 and buffer[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut if buffer[cut] & 0xC0 != 0x80 else limit


class _Watcher:
    """Streams a child's output while waiting for it to exit, without reaping it.

    The child is left a zombie until `reap`, so its pid (its process group id) cannot be reused
    while clp signals the group.
    """

    def __init__(self, proc: subprocess.Popen[bytes], lines: _LineSplitter) -> None:
        assert proc.stdout is not None
        self._proc = proc
        self._lines = lines
        self._out = proc.stdout.fileno()
        self._out_open = True
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._out, selectors.EVENT_READ, "output")
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            pass
        else:
            self._selector.register(self._pidfd, selectors.EVENT_READ, "exit")

    def has_exited(self) -> bool:
        try:
            info = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True  # someone else reaped it
        return info is not None

    def wait_for_exit(self, deadline: float) -> bool:
        """Read output until the child exits (True) or the deadline passes (False)."""
        while not self.has_exited():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._read_ready(remaining if self._pidfd is not None else min(remaining, _POLL_TICK))
        self._read_pending()  # what it wrote before exiting comes before clp's own messages
        return True

    def _read_pending(self) -> None:
        for _ in range(_PENDING_READS):
            ready = [key for key, _ in self._selector.select(0) if key.data == "output"]
            if not ready:
                return
            self._read_output()

    def drain(self, seconds: float) -> bool:
        """Read what is left in the pipe; False if a writer still held it open after `seconds`."""
        if self._pidfd is not None:
            self._selector.unregister(self._pidfd)  # stays readable now; would spin
            os.close(self._pidfd)
            self._pidfd = None
        deadline = time.monotonic() + seconds
        while self._out_open:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._read_ready(remaining)
        return True

    def finish_output(self) -> None:
        self._lines.finish()  # a last line without a newline

    def reap(self) -> int:
        return self._proc.wait()

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self._selector.close()

    def _read_ready(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            if key.data == "output":
                self._read_output()

    def _read_output(self) -> None:
        try:
            data = os.read(self._out, _READ_CHUNK)
        except BlockingIOError:
            return
        if data:
            self._lines.feed(data)
        else:
            self._selector.unregister(self._out)
            self._out_open = False


# --- running -----------------------------------------------------------------------------------


def run_process(
    argv: Sequence[str],
    *,
    root: StrPath,
    cwd: str,
    env: Mapping[str, str],
    timeout: float,
    on_output: Callable[[str], None] | None = None,
    log: LogFile | None = None,
    log_tag: str = "CLP",
    on_start: Callable[[int], None] | None = None,
    kill_grace: float = KILL_GRACE_SECONDS,
) -> ProcessResult:
    """Run `argv` (argv[0] and cwd are paths of the target system) chrooted into `root`.

    Output lines go to `on_output` and to `log` as they arrive. `on_start(pid)` is called as
    soon as the child runs; its pid is also its process group id. When the child exits, what
    is left of its process group is killed. On timeout the group gets SIGTERM, then SIGKILL
    after `kill_grace` seconds. A program that cannot be started gives exit code 127 (not
    found) or 126 (cannot execute) and a line saying why.
    """
    argv = tuple(argv)
    _check_arguments(argv, cwd, timeout)
    host_root = Path(root).resolve()
    chrooted = host_root != Path("/")
    _check_workdir(host_root, cwd)

    def emit(line: str) -> None:
        if log is not None:
            log.write(log_tag, line)
        if on_output is not None:
            on_output(line)

    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=None if chrooted else cwd,
            preexec_fn=_child_setup(str(host_root) if chrooted else None, cwd),
            start_new_session=True,
            umask=0o022,
            close_fds=True,
        )
    except subprocess.SubprocessError as exc:
        raise OperationFailed(
            f"cannot run {argv[0]} chrooted into {host_root}: chroot or chdir to {cwd} failed "
            "(running scripts in another root needs root privileges)"
        ) from exc
    except OSError as exc:
        return _not_started(argv, exc, host_root, chrooted, started, timeout, emit)

    watcher = _Watcher(proc, _LineSplitter(emit))
    finished = False
    try:
        if on_start is not None:
            on_start(proc.pid)
        result = _supervise(proc, watcher, argv, started, timeout, kill_grace, emit)
        finished = True
        return result
    finally:
        # An exception (a callback, Ctrl-C) must never leave the script running. Only signal the
        # group while the child is unreaped: after that its pid may name someone else's group.
        if not finished and proc.returncode is None:
            _signal_group(proc.pid, signal.SIGKILL)
            watcher.reap()
        watcher.close()
        if proc.stdout is not None:
            proc.stdout.close()


def _supervise(
    proc: subprocess.Popen[bytes],
    watcher: _Watcher,
    argv: tuple[str, ...],
    started: float,
    timeout: float,
    kill_grace: float,
    emit: Callable[[str], None],
) -> ProcessResult:
    timed_out = False
    exited = watcher.wait_for_exit(started + timeout)
    if not exited:
        timed_out = True
        emit(f"clp: {argv[0]} timed out after {timeout:g} s, stopping it")
        _signal_group(proc.pid, signal.SIGTERM)
        exited = watcher.wait_for_exit(time.monotonic() + kill_grace)
    elif leftovers := _leftover_processes(proc.pid):
        pids = " ".join(str(pid) for pid in leftovers)
        emit(f"clp: killing processes left running in the background: {pids}")
    # The child is not reaped yet, so its pid still names this group and nobody else's.
    _signal_group(proc.pid, signal.SIGKILL)
    returncode = watcher.reap()
    drained = watcher.drain(DRAIN_SECONDS)
    watcher.finish_output()
    if not drained:
        emit("clp: a process that left the script's process group still holds its output")
    duration = time.monotonic() - started
    signum = -returncode if returncode < 0 else None
    return ProcessResult(
        argv=argv,
        exit_code=None if timed_out or signum is not None else returncode,
        signal=signum,
        timed_out=timed_out,
        duration=duration,
        timeout=timeout,
    )


def _leftover_processes(pgid: int) -> list[int]:
    return sorted(pid for pid in _live_group_members(pgid) or [] if pid != pgid)


def _check_arguments(argv: tuple[str, ...], cwd: str, timeout: float) -> None:
    program = argv[0] if argv else "(nothing)"
    if not program.startswith("/"):
        raise UsageError(f"{program}: the program to run must be an absolute path")
    if any("\0" in arg for arg in argv):
        raise UsageError(f"{argv[0]}: an argument contains a NUL byte")
    normalize_target_path(cwd)
    if not timeout > 0:
        raise UsageError(f"timeout must be a positive number of seconds, not {timeout}")


def _check_workdir(host_root: Path, cwd: str) -> None:
    found = resolve_in_root(host_root, normalize_target_path(cwd))
    if found is None or not is_dir(found):
        raise OperationFailed(f"{cwd}: working directory does not exist in {host_root}")


def _not_started(
    argv: tuple[str, ...],
    exc: OSError,
    host_root: Path,
    chrooted: bool,
    started: float,
    timeout: float,
    emit: Callable[[str], None],
) -> ProcessResult:
    code = 127 if exc.errno == errno.ENOENT else 126
    where = f" in {host_root}" if chrooted else ""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOENT and resolve_in_root(host_root, argv[0]) is not None:
        reason += " (its #! interpreter is missing)"
    emit(f"clp: cannot run {argv[0]}{where}: {reason}")
    return ProcessResult(
        argv=argv,
        exit_code=code,
        signal=None,
        timed_out=False,
        duration=time.monotonic() - started,
        timeout=timeout,
    )


def run_script(
    interpreter: str,
    script: str,
    *,
    root: StrPath,
    cwd: str,
    env: Mapping[str, str],
    timeout: float,
    on_output: Callable[[str], None] | None = None,
    log: LogFile | None = None,
    log_tag: str = "CLP",
    on_start: Callable[[int], None] | None = None,
    kill_grace: float = KILL_GRACE_SECONDS,
) -> ProcessResult:
    """Run `<interpreter> -NoProfile -NonInteractive -File <script>` (see run_process)."""
    return run_process(
        script_argv(interpreter, script),
        root=root,
        cwd=cwd,
        env=env,
        timeout=timeout,
        on_output=on_output,
        log=log,
        log_tag=log_tag,
        on_start=on_start,
        kill_grace=kill_grace,
    )


def run_health_check(
    command: str,
    *,
    root: StrPath,
    env: Mapping[str, str],
    timeout: float,
    on_output: Callable[[str], None] | None = None,
    log: LogFile | None = None,
    log_tag: str = "CLP",
    on_start: Callable[[int], None] | None = None,
    kill_grace: float = KILL_GRACE_SECONDS,
) -> ProcessResult:
    """Run the patch's health check as `/bin/sh -c <command>` in `/` of the target system."""
    return run_process(
        [HEALTH_CHECK_SHELL, "-c", command],
        root=root,
        cwd="/",
        env=env,
        timeout=timeout,
        on_output=on_output,
        log=log,
        log_tag=log_tag,
        on_start=on_start,
        kill_grace=kill_grace,
    )
