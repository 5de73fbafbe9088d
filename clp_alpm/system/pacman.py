"""The commit of every package change: `pacman -U` or `pacman -R`, run as a user would run it.

pyalpm only reads and plans (`system/depcheck.py`): a transaction through pyalpm segfaults on
some prepare() errors, never asks libalpm's questions and runs no hook of /etc/pacman.d/hooks.
pacman, in its own process with a pacman.conf generated for the root, applies its own hooks,
scriptlets, SigLevels and locking. This module is also the one place that answers "is pacman
running?" (`refuse_if_pacman_runs`).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from clp_alpm.errors import LockError, OperationFailed, UsageError
from clp_alpm.paths import HELD_ENV
from clp_alpm.system.pacmanconf import PacmanSettings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _typeshed import StrPath

PACMAN_LOCK = "db.lck"  # in DBPath, held by whichever pacman (or libalpm user) runs
MAX_DETAIL_LINES = 5

# pacman takes these on the host even with --root: the generated pacman.conf leaves them out and
# the command line (or the HookDir lines written first) gives them under the root
_HOST_PATH_OPTIONS = frozenset({"RootDir", "DBPath", "CacheDir", "GPGDir", "HookDir", "LogFile"})


# pacman's own options a user may give for the `pacman -U` clp runs (after `--`, as downgrade
# takes them): the transaction's, never one that changes where or what pacman works on
PASSED_FLAGS = frozenset({
    "-d", "--nodeps", "--dbonly", "--noscriptlet", "--noprogressbar", "--asdeps",
    "--asexplicit", "--needed", "--disable-download-timeout", "-v", "--verbose", "--debug",
})  # fmt: skip
PASSED_WITH_VALUE = frozenset({"--overwrite", "--assume-installed", "--ignore", "--ignoregroup"})


def checked_pacman_options(args: Sequence[str]) -> list[str]:
    """`args` as given after `--`, when each is a pacman option clp can pass on; a UsageError
    naming the first that is not (clp sets the root, databases, configuration and targets)."""
    checked: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        name = arg.partition("=")[0] if arg.startswith("--") else arg
        inline_value = name != arg  # --overwrite=GLOB
        if (name in PASSED_FLAGS and not inline_value) or (
            name in PASSED_WITH_VALUE and inline_value
        ):
            checked.append(arg)
        elif name in PASSED_WITH_VALUE and rest:
            checked += [arg, rest.pop(0)]
        else:
            allowed = ", ".join(sorted(PASSED_FLAGS | PASSED_WITH_VALUE))
            raise UsageError(f"'{arg}' cannot be passed to pacman (these can: {allowed})")
    return checked


def is_pacman(pid: int, proc: Path = Path("/proc")) -> bool:
    """Whether process `pid` is alive and is a pacman (not a zombie, not a reused pid)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return False
    name = stat[stat.find("(") + 1 : stat.rfind(")")]
    state = stat[stat.rfind(")") + 2 : stat.rfind(")") + 3]
    return name == "pacman" and state not in ("Z", "X")


def lock_holders(lock: Path, proc: Path = Path("/proc")) -> list[int]:
    """The processes that hold pacman's lock open. libalpm creates db.lck and keeps it open
    until it is done, so a lock no process holds was left by a killed pacman (or pamac, or any
    libalpm program): only this tells a lock in use from a stale one."""
    try:
        wanted = lock.stat()
    except OSError:
        return []
    holders = []
    for entry in proc.iterdir():
        if entry.name.isdigit() and _holds(entry / "fd", wanted):
            holders.append(int(entry.name))
    return holders


def _holds(fd_dir: Path, wanted: os.stat_result) -> bool:
    try:
        descriptors = list(fd_dir.iterdir())
    except OSError:  # gone, or not ours to read
        return False
    for descriptor in descriptors:
        try:
            found = descriptor.stat()
        except OSError:
            continue
        if (found.st_dev, found.st_ino) == (wanted.st_dev, wanted.st_ino):
            return True
    return False


def wait_for_pacman(pid: int, timeout: float = 3600, poll: float = 0.1) -> bool:
    """Wait (at most `timeout`) for the pacman `pid`, which need not be our child, to end;
    False when it still runs."""
    deadline = time.monotonic() + timeout
    while is_pacman(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def clear_stale_lock(dbpath: Path) -> bool:
    """Remove `dbpath/db.lck` when no process holds it: the lock a pacman killed with clp left
    behind. True when a lock was removed. Only for a recovery of clp's own pacman step, which
    knows the pacman it started is gone."""
    lock = Path(dbpath) / PACMAN_LOCK
    if not lock.exists() or lock_holders(lock):
        return False
    lock.unlink(missing_ok=True)
    return True


def refuse_if_pacman_runs(dbpath: StrPath) -> None:
    """Raise LockError when pacman's lock `dbpath/db.lck` exists: a package transaction is in
    progress (or a killed one left the file behind), and changing packages or patching files
    under it would race it.

    Not inside a pacman that clp runs (HELD_ENV is in the environment): the lock there is that
    pacman's own, taken on clp's behalf, and clp's own lock already keeps other clps out.
    """
    lock = Path(dbpath) / PACMAN_LOCK
    if not lock.exists() or HELD_ENV in os.environ:
        return
    if lock_holders(lock):
        raise LockError(f"pacman is running ({lock} exists); wait for it to finish")
    raise LockError(
        f"{lock} exists but no pacman is running (no process holds it): a killed pacman left "
        "it; remove it"
    )


def pacman_upgrade(
    settings: PacmanSettings,
    files: Sequence[Path],
    env: Mapping[str, str] | None = None,
    timeout: float = 3600,
    options: Sequence[str] = (),
    on_start: Callable[[int], None] | None = None,
) -> None:
    """Install `files` with `pacman -U --noconfirm`, as pacman itself would for this system.

    Raises LockError when pacman is running (refuse_if_pacman_runs), OperationFailed with
    pacman's errors when it fails. A failure found before the commit (dependencies, conflicts,
    file conflicts, signatures) changed nothing; one during it (a full disk, a timeout) may have
    installed some of the files: ask localdb.installed_versions() before undoing anything.
    """
    paths = _checked_files(files)
    arguments = [*checked_pacman_options(options), *(str(path) for path in paths)]
    _run_transaction(settings, "-U", arguments, env, timeout, on_start)


def pacman_remove(
    settings: PacmanSettings,
    names: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 3600,
    on_start: Callable[[int], None] | None = None,
) -> None:
    """Remove packages with `pacman -R --noconfirm` (never -dd: pacman refuses to break a
    dependency, and nothing is removed then). Errors as pacman_upgrade's."""
    for name in names:
        if not name or name.startswith("-") or "/" in name:
            raise UsageError(f"'{name}' is not a package name")
    if not names:
        raise UsageError("pacman -R: no package names given")
    _run_transaction(settings, "-R", list(names), env, timeout, on_start)


def _run_transaction(
    settings: PacmanSettings,
    operation: str,
    targets: list[str],
    env: Mapping[str, str] | None,
    timeout: float,
    on_start: Callable[[int], None] | None = None,
) -> None:
    refuse_if_pacman_runs(settings.dbpath)
    with _private_dir(prefix="clp-pacman-") as private:
        command = _pacman_command(settings, Path(private), operation) + targets
        returncode, stdout, stderr = _run_pacman(
            command, _pacman_environment(env), timeout, on_start
        )
    if returncode != 0:
        message = _failure_message(stdout, stderr)
        if "unable to lock database" in message:
            # pacman could not take its lock: another pacman holds it
            raise LockError(f"{settings.dbpath / PACMAN_LOCK}: pacman's database is locked")
        raise OperationFailed(f"pacman {operation} failed: {message}")


def pacman_refresh(settings: PacmanSettings, dbpath: Path, timeout: float) -> None:
    """`pacman -Sy` into the private database directory `dbpath` instead of the system's, as
    pacman-contrib's checkupdates does: pacman downloads and verifies (its SigLevel, its
    keyring) the sync databases into `dbpath/sync` and leaves the system's database alone.

    Not refused while pacman runs: the private directory has its own lock. Logs nothing to
    pacman's log. Raises OperationFailed when pacman fails or takes longer than `timeout`.
    """
    with _private_dir(prefix="clp-pacman-") as private:
        command = _pacman_command(settings, Path(private), "-Sy", dbpath=dbpath)
        returncode, stdout, stderr = _run_pacman(
            [*command, "--logfile", "/dev/null"], _pacman_environment(None), timeout
        )
    if returncode != 0:
        raise OperationFailed(f"pacman -Sy failed: {_failure_message(stdout, stderr)}")


# Where _private_dir makes its directory: the first of these that takes it, as tempfile's
# gettempdir chooses.
_TEMP_VARIABLES = ("TMPDIR", "TEMP", "TMP")
_TEMP_DIRS = ("/tmp", "/var/tmp", "/usr/tmp")


@contextmanager
def _private_dir(prefix: str) -> Iterator[Path]:
    """A new directory (mode 0700) in the temporary directory, removed at the end with the
    files put in it: tempfile.TemporaryDirectory without loading tempfile (and shutil, random,
    bz2 and lzma with it) into every revert."""
    places = [os.environ[name] for name in _TEMP_VARIABLES if os.environ.get(name)]
    error: OSError = FileNotFoundError("no temporary directory")
    for place in [*places, *_TEMP_DIRS]:
        try:
            path = Path(place, f"{prefix}{os.urandom(6).hex()}")
            path.mkdir(mode=0o700)
            break
        except OSError as err:  # taken, or no place to write: the next place
            error = err
    else:
        raise OperationFailed(f"cannot make a temporary directory for pacman: {error}")
    try:
        yield path
    finally:
        for entry in os.scandir(path):  # only the files written here: no directories
            os.unlink(entry.path)
        path.rmdir()


def _checked_files(files: Sequence[Path]) -> list[Path]:
    if not files:
        raise UsageError("pacman -U: no package files given")
    paths = []
    for file in files:
        path = Path(file).absolute()  # never an argument pacman could take for an option
        if "://" in str(path):
            raise UsageError(f"{path}: a file name with '://' would be taken for a URL")
        if not path.is_file():
            raise UsageError(f"{path}: no such package file")
        paths.append(path)
    return paths


def _pacman_command(
    settings: PacmanSettings, private: Path, operation: str, dbpath: Path | None = None
) -> list[str]:
    conf = _config_for_pacman(settings, private)
    command = ["pacman", operation, "--noconfirm", "--root", str(settings.root),
               "--dbpath", str(dbpath or settings.dbpath), "--config", str(conf)]  # fmt: skip
    for cache_dir in settings.cache_dirs:
        command += ["--cachedir", str(cache_dir)]
    command += ["--gpgdir", str(settings.gpgdir)]
    if _is_root_slash(settings.root):  # the real pacman.conf: its HookDirs, and --hookdir's
        for hook_dir in settings.extra_hook_dirs:
            command += ["--hookdir", str(hook_dir)]
        return command
    if settings.log_file is not None and dbpath is None:
        command += ["--logfile", str(settings.log_file)]
    return command


def _is_root_slash(root: Path) -> bool:
    return Path(root).resolve() == Path("/")


def _config_for_pacman(settings: PacmanSettings, private: Path) -> Path:
    """The --config for pacman: the real file for `/`; for another root, the same directives
    with Include lines inlined from under the root and every path option under the root.

    pacman globs Include and takes HookDir, CacheDir, GPGDir and LogFile on the host even with
    --root, so with the real file it would read the rescue system's includes (and fail on one
    missing there, such as clp's pins) and skip the target's /etc/pacman.d/hooks.
    """
    if _is_root_slash(settings.root) and settings.conf.is_file():
        return settings.conf
    lines = ["[options]", *(f"HookDir = {directory}" for directory in settings.hook_dirs)]
    section: str | None = "options"
    for entry in settings.entries:
        if entry.key == "Include":
            continue
        if entry.section == "options" and entry.key in _HOST_PATH_OPTIONS:
            continue
        if entry.section != section:
            section = entry.section
            lines.append(f"[{section}]")
        lines.append(entry.key if entry.value is None else f"{entry.key} = {entry.value}")
    generated = private / "pacman.conf"
    generated.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return generated


def _pacman_environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The caller's environment, with pacman's messages in English so its errors can be read
    (LC_MESSAGES only: hooks keep the user's character set)."""
    environment = dict(os.environ)
    if "LC_ALL" in environment:
        environment["LANG"] = environment.pop("LC_ALL")
    environment.pop("LANGUAGE", None)
    environment["LC_MESSAGES"] = "C"
    environment.update(extra or {})
    return environment


def _run_pacman(
    command: list[str],
    environment: dict[str, str],
    timeout: float,
    on_start: Callable[[int], None] | None = None,
) -> tuple[int, str, str]:
    """Run pacman to the end, whatever happens to clp meanwhile: killing pacman inside its
    transaction is what breaks systems. pacman shares nothing whose end would end it: its own
    session (a Ctrl-C at the terminal, a hang-up, a kill of clp's process group do not reach
    it), no pipe (its output goes to files: a pipe whose reader died would kill it with
    SIGPIPE at its next line), no death signal. On timeout, Ctrl-C or SIGTERM it gets one
    SIGINT, which pacman obeys at a safe point, and clp waits for it to be done before it
    goes on (to undo, say)."""
    with _private_dir(prefix="clp-pacman-output-") as directory:
        out_path, err_path = Path(directory) / "stdout", Path(directory) / "stderr"
        with out_path.open("w+b") as out, err_path.open("w+b") as err:
            try:
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    env=environment, start_new_session=True,
                )  # fmt: skip
            except OSError as error:
                raise OperationFailed(f"cannot run pacman: {error.strerror}") from None
            if on_start is not None:  # journaled: a recovery waits for this pacman
                on_start(process.pid)
            _wait_for_pacman(process, command, timeout)
        return process.returncode, _read_output(out_path), _read_output(err_path)


def _wait_for_pacman(process: subprocess.Popen[bytes], command: list[str], timeout: float) -> None:
    try:
        _wait_for_exit(process, timeout)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as stop:
        process.send_signal(signal.SIGINT)
        _wait_through_interrupts(process)
        if isinstance(stop, KeyboardInterrupt):
            raise
        raise OperationFailed(
            f"pacman {command[1]} did not finish within {timeout:g} s and was interrupted"
        ) from None


def _wait_for_exit(process: subprocess.Popen[bytes], timeout: float) -> None:
    """`process.wait(timeout)`, woken the moment the process ends: Popen's own wait with a
    timeout polls, sleeping up to 50 ms between looks, which a revert would spend idle after
    every pacman. Its pidfd (Linux 5.3) becomes readable when it exits; without one, Popen's.
    TimeoutExpired as Popen's; a signal's exception (Ctrl-C) comes through as from it."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # an older kernel or Python: poll as Popen does
        process.wait(timeout=timeout)
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(process.args, timeout)
            poller.poll(min(remaining, 60.0) * 1000)
    finally:
        os.close(pidfd)


def _read_output(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def _wait_through_interrupts(process: subprocess.Popen[bytes]) -> None:
    while True:
        try:
            process.wait()
            return
        except KeyboardInterrupt:
            continue  # a second Ctrl-C must not leave pacman running on its own


def _failure_message(stdout: str, stderr: str) -> str:
    errors = [line[len("error:") :].strip() for line in stderr.splitlines()
              if line.startswith("error:")]  # fmt: skip
    if not errors:
        errors = [line.strip() for line in stderr.splitlines() if line.strip()][-2:]
    details = [line.strip().removeprefix(":: ") for line in stdout.splitlines() if _is_detail(line)]
    if len(details) > MAX_DETAIL_LINES:
        hidden = len(details) - MAX_DETAIL_LINES
        details = details[:MAX_DETAIL_LINES] + [f"and {hidden} more"]
    return "; ".join(errors + details) or "pacman exited with an error and said nothing"


def _is_detail(line: str) -> bool:
    """pacman's stdout lines that say why a transaction failed (not progress or questions)."""
    line = line.strip()
    if " exists in filesystem" in line:
        return True
    return line.startswith(":: ") and not line.endswith("...") and "? [" not in line
