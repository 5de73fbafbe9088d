"""A small tmpfs mounted in a private namespace: how a full disk is tested."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.kits.clpkit import CLP


def run_with_small_fs(mountpoint: Path, size: str, *args: str) -> subprocess.CompletedProcess:
    """Run clp in a private mount namespace where `mountpoint` is a tiny tmpfs."""
    return run_in_small_fs(mountpoint, size, str(CLP), *args)


def run_in_small_fs(mountpoint: Path, size: str, *argv: str) -> subprocess.CompletedProcess:
    """Run argv in a private mount namespace where `mountpoint` is a tiny tmpfs."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    script = 'mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@"'
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", size,
         str(mountpoint), *argv],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
