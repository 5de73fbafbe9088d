"""Writing files so that a crash leaves the old content or the new, never half of either."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # the hooks' path: paths are str, no pathlib
if TYPE_CHECKING:
    from _typeshed import StrPath


def fsync_directory(directory: StrPath) -> None:
    """Make a rename or creation in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(target: StrPath, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Replace `target` with `data`: a temp file beside it, fsynced, renamed over it, and the
    directory fsynced. On failure the temp file is removed and `target` is untouched. Without
    `durable` (a cache that is written again anyway) nothing is synced: a reader sees the old
    content or the new, and a crash may leave either, or an empty file."""
    fd, temp_name = _create_beside(target)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            if durable:
                os.fsync(out.fileno())
        os.replace(temp_name, target)
    except BaseException:
        try:  # noqa: SIM105 - no contextlib on the hooks' path
            os.unlink(temp_name)
        except OSError:
            pass
        raise
    if durable:
        fsync_directory(os.path.dirname(target) or ".")


def _create_beside(target: StrPath) -> tuple[int, str]:
    """A new file `.<name>.<16 hex>.tmp` beside `target`, mode 0600, never an existing one
    (tempfile.mkstemp's promise, without importing tempfile on the pacman hook's path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        directory, base = os.path.split(target)
        name = os.path.join(directory, f".{base}.{os.urandom(8).hex()}.tmp")
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
