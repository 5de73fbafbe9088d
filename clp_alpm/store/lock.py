"""The one lock that guards clp's state: an flock on StateDir/lock, held by one process."""

from __future__ import annotations

import fcntl
import os
import time

from clp_alpm.errors import ClpError, LockError

TYPE_CHECKING = False  # the hooks' path: no collections at run time
if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import StrPath

LOCK_NAME = "lock"
DEFAULT_WAIT = 5.0


class StateLock:
    """Exclusive lock on `<state_dir>/lock`. The kernel drops it when the process dies."""

    def __init__(
        self,
        state_dir: StrPath,
        wait: float = DEFAULT_WAIT,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.path = os.path.join(state_dir, LOCK_NAME)
        self.wait = wait
        self.on_wait = on_wait
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = self._open()
        deadline = time.monotonic() + self.wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and self.on_wait is not None:
                    holder = _read_holder(fd)
                    self.on_wait(f"waiting for the lock held by pid {holder or '?'} ({self.path})")
                    told = True
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    who = f" (pid {holder})" if holder else ""
                    raise LockError(
                        f"another clp process{who} is running: {self.path} is locked; "
                        "try again when it has finished"
                    ) from None
                time.sleep(0.05)
        try:  # the holder's pid: the hooks inside a pacman clp runs know the lock is clp's
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as err:  # a full or read-only state directory
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise ClpError(f"{self.path}: cannot write the lock ({err.strerror})") from None
        self._fd = fd

    def _open(self) -> int:
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as err:
            where = err.filename or self.path
            raise ClpError(f"{where}: cannot open the lock ({err.strerror})") from None

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def lock_holder(state_dir: StrPath) -> int | None:
    """The pid that holds the lock right now, or None when no process holds it."""
    try:
        fd = os.open(os.path.join(state_dir, LOCK_NAME), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
