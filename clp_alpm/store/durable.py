"""Low-level writes of the snapshot store that a crash must not tear.

The store writes a new file as a temp file (0600: config files such as /etc/shadow end up in
it), makes it durable, and only then renames it into place. Unlike `atomicfile.write_atomically`
the temp file need not lie beside its target: the store keeps its own in `tmp/`, where garbage
collection finds what a crash left behind. Directory fsyncs come from `clp_alpm.atomicfile`.
"""

from __future__ import annotations

import os

from clp_alpm.atomicfile import fsync_directory

TYPE_CHECKING = False  # the hooks' path: paths are str, no pathlib
if TYPE_CHECKING:
    from _typeshed import StrPath


def create_temp(directory: StrPath, prefix: str) -> tuple[int, str]:
    """A new empty file `prefix<16 hex>` in `directory`, mode 0600, opened for writing:
    its fd and path. Never follows or reuses an existing name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        path = os.path.join(directory, f"{prefix}{os.urandom(8).hex()}")
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_temp(directory: StrPath, data: bytes, prefix: str) -> str:
    """`data` in a new fsynced temp file in `directory`; its path (removed on failure)."""
    temp_fd, temp_path = create_temp(directory, prefix)
    try:
        write_all(temp_fd, data)
        os.fsync(temp_fd)
    except BaseException:
        os.close(temp_fd)
        unlink_quietly(temp_path)
        raise
    os.close(temp_fd)
    return temp_path


def fsync_path(path: str) -> None:
    """fsync a file written earlier through an fd since closed."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def syncfs(directory: StrPath) -> None:
    """syncfs(2) on the file system holding `directory` (data, inodes and directory entries);
    os.sync() where libc has no syncfs."""
    import ctypes  # only a large snapshot needs it: the hook's start-up does not pay for it

    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "syncfs"):
        os.sync()
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if libc.syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"syncfs failed: {os.strerror(code)}", os.fspath(directory))
    finally:
        os.close(fd)


def fsync_dir_quietly(directory: StrPath) -> None:
    """Make a rename or removal durable; a directory that vanished has nothing to sync."""
    try:  # noqa: SIM105 - no contextlib on the hooks' path
        fsync_directory(directory)
    except (FileNotFoundError, NotADirectoryError):
        pass


def unlink_quietly(path: StrPath) -> None:
    """Remove a file if it is still there."""
    try:  # noqa: SIM105 - no contextlib on the hooks' path
        os.unlink(path)
    except FileNotFoundError:
        pass
