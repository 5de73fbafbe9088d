"""Append-only log shared by clp and the scripts' transcripts (pacman.log style lines)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class LogFile:
    """Writes `[time] [tag] message` lines; a log that cannot be written never stops the work."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.failed = False

    def write(self, tag: str, message: str) -> None:
        if self.path is None or self.failed:
            return
        line = f"[{timestamp()}] [{tag}] {message.rstrip()}\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                os.write(fd, line.encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except OSError:
            self.failed = True
