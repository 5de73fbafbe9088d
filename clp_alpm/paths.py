"""Paths of the target system, resolved under --root.

Also PACMAN_CONF, and HELD_ENV, the environment variable that tells a clp it runs under a clp
holding the lock: ops sets it and reads it in the hooks, system reads it at pacman's lock, so it
lives below both.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

from clp_alpm.errors import UsageError

# Set in the environment of everything clp runs while it holds its lock (pacman -U and so the
# hooks it fires) to clp's pid: a clp started there must not wait for the lock its own parent
# holds, nor refuse to run because that parent's pacman holds pacman's lock.
HELD_ENV = "CLP_LOCK_HELD_BY"

# pacman's configuration on the target; both its reader and the pins writer start here
PACMAN_CONF = "/etc/pacman.conf"


def normalize_target_path(path: str) -> str:
    """Return `path` as a clean absolute path of the target system, or raise UsageError."""
    if not path or "\0" in path or not path.startswith("/"):
        raise UsageError(f"{path!r} is not an absolute path")
    if any(part == ".." for part in path.split("/")):
        raise UsageError(f"{path!r} must not contain '..'")
    clean = posixpath.normpath(path)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    return clean


def under_root(root: Path, path: str) -> Path:
    """Host path of the target path `path` when the target system is mounted at `root`."""
    clean = normalize_target_path(path)
    return Path(root) / clean.lstrip("/") if clean != "/" else Path(root)


MAX_SYMLINK_HOPS = 40  # as Linux's own path walk


def resolve_in_root(root: Path, target: str) -> Path | None:
    """Host path of `target` with symbolic links followed as a process chrooted into `root`
    would (an absolute link or a `..` never leaves `root`); None if a component is missing or
    the links loop."""
    root = Path(root)
    pending = [part for part in target.split("/") if part][::-1]
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        host = root.joinpath(*resolved, part)
        try:
            mode = os.lstat(host).st_mode
        except OSError:
            return None
        if not stat.S_ISLNK(mode):
            resolved.append(part)
            continue
        hops += 1
        if hops > MAX_SYMLINK_HOPS:
            return None
        link = os.readlink(host)
        if link.startswith("/"):
            resolved = []
        pending.extend(piece for piece in reversed(link.split("/")) if piece)
    return root.joinpath(*resolved)
