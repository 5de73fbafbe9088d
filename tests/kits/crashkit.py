"""What the crash tests share (tests/e2e/test_crash.py, the matrix in tests/crash/): telling a
SIGKILLed clp, waiting for a script to reach a point, finding processes left in a root."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def killed(result: subprocess.CompletedProcess | subprocess.Popen) -> bool:
    return result.returncode == -signal.SIGKILL


def wait_for_marker(marker: Path, process: subprocess.Popen) -> None:
    """Wait (bounded) until a script of `process` creates `marker`, then remove it."""
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, f"{marker.name}: the script never got there"
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    marker.unlink()


def scripts_still_running(sandbox: Path) -> list[int]:
    """Processes whose root is the sandbox (the chrooted script and its children)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "root") == str(sandbox):
                    alive.append(int(entry.name))
            except OSError:
                continue
    return alive
