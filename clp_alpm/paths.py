"""Paths of the target system, resolved under --root.

Also PACMAN_CONF, and HELD_ENV, the environment variable that tells a clp it runs under a clp
holding the lock: ops sets it and reads it in the hooks, system reads it at pacman's lock, so it
lives below both.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from clp_alpm.errors import PathEscapeError, UsageError

TYPE_CHECKING = False  # the hooks' path: paths are str here, no pathlib (see docs/ARCHITECTURE.md)
if TYPE_CHECKING:
    from _typeshed import StrPath

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
    if ".." in path.split("/"):
        raise UsageError(f"{path!r} must not contain '..'")
    clean = posixpath.normpath(path)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    return clean


# What pathlib's exists(), is_dir() and is_file() (up to Python 3.13) read as "not there"; any
# other error of the look-up (EACCES: a user in root's state directory) is raised, not taken
# for absence as os.path's are: "cannot read clp's state; run as root", not an empty state.
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)


def _mode_of(path: StrPath, follow: bool = True) -> int | None:
    try:
        return os.stat(path, follow_symlinks=follow).st_mode
    except OSError as err:
        if err.errno in _ABSENT:
            return None
        raise


def exists(path: StrPath) -> bool:
    """`path` exists (a link: its target does), as `Path.exists`."""
    return _mode_of(path) is not None


def is_dir(path: StrPath) -> bool:
    """`path` is a directory (or a link to one), as `Path.is_dir`."""
    mode = _mode_of(path)
    return mode is not None and stat.S_ISDIR(mode)


def is_file(path: StrPath) -> bool:
    """`path` is a regular file (or a link to one), as `Path.is_file`."""
    mode = _mode_of(path)
    return mode is not None and stat.S_ISREG(mode)


def is_symlink(path: StrPath) -> bool:
    """`path` is a symbolic link, as `Path.is_symlink`."""
    mode = _mode_of(path, follow=False)
    return mode is not None and stat.S_ISLNK(mode)


def clean_host_path(path: StrPath) -> str:
    """`path` made absolute (from the working directory) with empty and `.` components dropped,
    as pathlib spells it (but for one leading slash where pathlib keeps two); `..` stays, for
    the kernel to resolve (a link before it may lead anywhere)."""
    text = os.fspath(path)
    if not text.startswith("/"):
        text = os.getcwd() + "/" + text
    return "/" + "/".join(part for part in text.split("/") if part not in ("", "."))


def under_root(root: StrPath, path: str) -> str:
    """Host path of the target path `path` when the target system is mounted at `root`."""
    clean = normalize_target_path(path)
    base = os.fspath(root).rstrip("/")
    return base + clean if clean != "/" else base or "/"


def refuse_symlink(host: StrPath) -> None:
    """PathEscapeError if `host` is a symbolic link: for clp's own files, which it opens by
    name through APIs that follow a link at the end (SQLite's database and its companions)."""
    try:
        mode = os.lstat(host).st_mode
    except OSError:
        return
    if stat.S_ISLNK(mode):
        raise PathEscapeError(
            f"{host} is a symbolic link (to {os.readlink(host)!r}); refusing to follow it"
        )


def target_of(root: StrPath, host: StrPath) -> str | None:
    """The target path a host path under `root` names (None if it is not under the root)."""
    base, text = os.fspath(root).rstrip("/"), os.fspath(host)
    if text == base or text == os.fspath(root):
        return "/"
    return text[len(base) :] if text.startswith(base + "/") else None


MAX_SYMLINK_HOPS = 40  # as Linux's own path walk


def resolve_in_root(root: StrPath, target: str) -> str | None:
    """Host path of `target` with symbolic links followed as a process chrooted into `root`
    would (an absolute link or a `..` never leaves `root`); None if a component is missing or
    the links loop."""
    try:
        return _walk(os.fspath(root), target, chrooted=True)
    except PathEscapeError:
        return None


def resolve_inside(
    root: StrPath, target: str, *, follow_last: bool = True, dangling_ok: bool = False
) -> str:
    """Host path of the target path `target` under `root`, resolved component by component:
    a symbolic link is followed only when, read as clp (outside the chroot) reads it, it stays
    inside `root` — a relative link that does not climb out, or an absolute one into the root's
    own host path; any other is refused (PathEscapeError naming it), so that nothing clp opens
    by the returned name leads out. A dangling link is refused too (unless `dangling_ok`), and
    with `follow_last=False` so is a link as the last component. Components that do not exist
    yet are appended as they are: creating them creates them inside the root. A few lstat calls
    (one per component), no imports: the hooks pay for it on every transaction."""
    return _walk(
        os.fspath(root),
        normalize_target_path(target),
        follow_last=follow_last,
        dangling_ok=dangling_ok,
    )


_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir_inside(root: StrPath, target: str) -> int:
    """A descriptor (O_PATH) of the existing directory `target` under `root`, reached from the
    root's by openat, one component at a time and never letting the kernel follow a link: the
    walk of resolve_inside, on descriptors, so that a link swapped in after it cannot redirect
    what is done through the descriptor (as `dir_fd`). FileNotFoundError if it is missing,
    NotADirectoryError if it is no directory; the caller closes it."""
    fds = [os.open(root, _PATH_FLAGS | os.O_DIRECTORY)]
    try:
        _walk(os.fspath(root), normalize_target_path(target), fds=fds)
        if not stat.S_ISDIR(os.fstat(fds[-1]).st_mode):
            raise NotADirectoryError(20, "Not a directory", target)
        return fds.pop()
    finally:
        for fd in fds:
            os.close(fd)


def _walk(
    root: str,
    clean: str,
    *,
    chrooted: bool = False,
    follow_last: bool = True,
    dangling_ok: bool = False,
    fds: list[int] | None = None,
) -> str:
    """The one path walk under a root (see resolve_inside; `chrooted`: as resolve_in_root).
    With `fds` (the root's descriptor first), it walks by openat and keeps the descriptor of
    each resolved directory there; a missing component is then an error."""
    base = root.rstrip("/")
    real_base = "" if not base else _real_root(root)
    # (component, link it came from or None), next component last
    pending: list[tuple[str, tuple[str, str] | None]] = [
        (part, None) for part in reversed(clean.split("/")) if part
    ]
    resolved: list[str] = []
    hops = 0
    while pending:
        part, origin = pending.pop()
        if part in (".", ""):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
                if fds is not None:
                    os.close(fds.pop())
            elif not chrooted and origin is not None:
                raise _escape(root, origin)
            continue
        host = base + "/" + "/".join([*resolved, part])
        try:
            if fds is None:
                mode = os.lstat(host).st_mode
            else:
                fd = os.open(part, _PATH_FLAGS, dir_fd=fds[-1])
                mode = os.fstat(fd).st_mode
                if stat.S_ISLNK(mode):
                    os.close(fd)
                else:
                    fds.append(fd)
        except (FileNotFoundError, NotADirectoryError) as err:
            if fds is not None and (origin is None or dangling_ok):
                raise type(err)(err.errno, err.strerror, host) from None
            if chrooted:
                raise PathEscapeError(f"{host}: no such file or directory") from None
            if origin is not None and not dangling_ok:
                link, text = origin
                raise PathEscapeError(
                    f"{link} is a dangling symbolic link (to {text!r}); refusing to follow it"
                ) from None
            resolved.append(part)
            resolved.extend(rest for rest, _ in reversed(pending) if rest not in ("", "."))
            return base + "/" + "/".join(resolved)
        if not stat.S_ISLNK(mode):
            resolved.append(part)
            continue
        text = os.readlink(host) if fds is None else os.readlink(part, dir_fd=fds[-1])
        if not pending and not follow_last:
            raise PathEscapeError(f"{host} is a symbolic link (to {text!r}); refusing to follow it")
        hops += 1
        if hops > MAX_SYMLINK_HOPS:
            raise PathEscapeError(f"{host}: too many levels of symbolic links")
        came_from = (host, text)
        if text.startswith("/"):
            inner = _inside_base(text, base, real_base)
            if inner is None and not chrooted:
                raise _escape(root, came_from)
            resolved = []
            while fds is not None and len(fds) > 1:
                os.close(fds.pop())
            text = text if chrooted or inner is None else inner
        pending.extend((piece, came_from) for piece in reversed(text.split("/")) if piece)
    return base + "/" + "/".join(resolved) if resolved else base or "/"


_REAL_ROOTS: dict[str, str] = {}


def _real_root(root: str) -> str:
    real = _REAL_ROOTS.get(root)
    if real is None:
        real = _REAL_ROOTS[root] = os.path.realpath(root).rstrip("/")
    return real


def _inside_base(text: str, base: str, real_base: str) -> str | None:
    """An absolute link's target as a path below the root, if it names the root's host path
    (or the root is /); None if it leads elsewhere."""
    if not base:
        return text
    for prefix in (base, real_base):
        if text == prefix or text.startswith(prefix + "/"):
            return text[len(prefix) :] or "/"
    return None


def _escape(root: str, origin: tuple[str, str]) -> PathEscapeError:
    link, text = origin
    return PathEscapeError(
        f"{link} is a symbolic link to {text!r}, which leads out of the root {root}; "
        "refusing to follow it"
    )
