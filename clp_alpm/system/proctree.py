"""The pacman command line that runs a hook, read from /proc (what snap-pac records).

libalpm forks a hook from pacman's own process, so the hook's parent is normally pacman; a
front end (sudo, yay, an AUR helper) sits above it. The walk goes up from the hook's parent to
the first process whose name (`/proc/PID/comm`) is `pacman`, a few steps at most, and reads
only what /proc shows. Nothing here raises: a process gone, /proc missing (a chroot without
it) or unreadable means no command line, never a failed hook.
"""

from __future__ import annotations

import os

PACMAN = "pacman"
MAX_STEPS = 8  # the hook's parent, then a few front ends above it
MAX_READ = 1 << 16  # a command line is read up to this many bytes
MAX_LENGTH = 4096  # characters kept of the rendered line; longer ones end in "..."
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")


def pacman_command_line(pid: int, proc: str = "/proc") -> str | None:
    """The command line of `pid` or of its nearest ancestor named pacman, as a shell would
    read it; None when there is no such process within MAX_STEPS or /proc cannot tell."""
    for _ in range(MAX_STEPS):
        if pid <= 1:
            return None
        if _read(f"{proc}/{pid}/comm").strip() == PACMAN:
            words = _read(f"{proc}/{pid}/cmdline").split("\0")
            return render([word for word in words if word]) or None
        pid = _parent(proc, pid)
    return None


def render(words: list[str]) -> str:
    """Words joined as a shell reads them back (quoted where needed), at most MAX_LENGTH."""
    line = " ".join(word if word and set(word) <= _SAFE else _quote(word) for word in words)
    return line if len(line) <= MAX_LENGTH else line[: MAX_LENGTH - 3] + "..."


def _quote(word: str) -> str:
    printable = "".join(c if c.isprintable() else "?" for c in word)
    return "'" + printable.replace("'", "'\\''") + "'"


def _parent(proc: str, pid: int) -> int:
    """The parent pid from /proc/PID/stat (the field after the parenthesised name); 0 if
    unknown."""
    stat = _read(f"{proc}/{pid}/stat")
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return 0


def _read(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < MAX_READ and (chunk := os.read(fd, MAX_READ - size)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return ""
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")
