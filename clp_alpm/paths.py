"""Paths of the target system, resolved under --root."""

from __future__ import annotations

import posixpath
from pathlib import Path

from .errors import UsageError


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
