"""The Python interpreters on this machine, for behaviour that differs between versions."""

from __future__ import annotations

import functools
import glob
import os
import subprocess
import sys

# a version clp runs on (and its SQLite module): prints it, or fails
PROBE = "import sqlite3, sys; assert sys.version_info >= (3, 11); print(sys.version_info[:2])"


@functools.cache
def each_version() -> list[str]:
    """This Python and one interpreter of each newer version found here (pyenv's, which CI
    installs): the hooks' start differs from 3.12 (sqlite3's setconfig, pathlib's imports)."""
    candidates = [sys.executable, *sorted(glob.glob(os.path.expanduser(
        "~/.pyenv/versions/3.1[1-9]*/bin/python3")))]  # fmt: skip
    by_version: dict[str, str] = {}
    for python in candidates:
        probe = subprocess.run(
            [python, "-S", "-c", PROBE],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if probe.returncode == 0:
            by_version.setdefault(probe.stdout.strip(), python)
    return sorted(by_version.values())
