"""The test suite's own processes: started with default signal dispositions whatever started
the suite, and none left behind by a test, even a failed one.

The pytest process becomes a child subreaper, so that a process whose parent died (the
script of a SIGKILLed clp, a daemon that forked away) is still found as its descendant.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
# nohup ignores SIGHUP, `cmd &` in a script ignores SIGINT and SIGQUIT: children would inherit
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def reset_stop_signals() -> None:
    """Default dispositions for this process and every process it starts from now on."""
    for signum in STOP_SIGNALS:
        handler = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        signal.signal(signum, handler)


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _parents() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) of every process now."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces and ')'
        found[int(entry.name)] = (int(fields[1]), fields[0])
    return found


def descendants(pid: int | None = None) -> set[int]:
    """Every live (not zombie) process below `pid` (default: this one)."""
    top = os.getpid() if pid is None else pid
    table = _parents()
    below: set[int] = set()
    frontier = {top}
    while frontier:
        frontier = {p for p, (parent, _) in table.items() if parent in frontier} - below
        below |= frontier
    return {p for p in below if table[p][1] != "Z"}


def _reap_zombie_children() -> None:
    for pid, (parent, state) in _parents().items():
        if parent == os.getpid() and state == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue


def kill_all(pids: set[int], grace: float = 2.0) -> None:
    """SIGKILL `pids` and wait (bounded) until they are gone; reap those that were ours."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap_zombie_children()
        if not pids & descendants():
            return
        time.sleep(0.02)
