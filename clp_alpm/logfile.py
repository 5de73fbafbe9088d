"""Append-only log shared by clp and the scripts' transcripts (pacman.log style lines)."""

from __future__ import annotations

import os
import time

from clp_alpm.errors import ClpError

TYPE_CHECKING = False  # the hooks' path: no collections at run time
if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import StrPath


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class LogFile:
    """Writes `[time] [tag] message` lines; a log that cannot be written never stops the work.

    With `locate`, the path is found again before every line (a patch's script may have turned
    a directory on the way into a link since: `Config.host` refuses one leading out)."""

    def __init__(self, path: StrPath | None, locate: Callable[[], StrPath] | None = None) -> None:
        self.path = path
        self.locate = locate
        self.failed = False

    def write(self, tag: str, message: str) -> None:
        if self.path is None or self.failed:
            return
        line = f"[{timestamp()}] [{tag}] {message.rstrip()}\n"
        try:
            path = self.locate() if self.locate is not None else self.path
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                os.write(fd, line.encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except (OSError, ClpError):
            self.failed = True
