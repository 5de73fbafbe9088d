"""Which running processes still use files that were deleted or replaced (the "needrestart" idea).

After a pacman transaction a process that had a library or its binary mapped keeps running the
old copy until it restarts. The kernel shows this in /proc/PID/maps and /proc/PID/exe:

- deleted: the kernel appends " (deleted)" to the path of a mapped file that has no name left
  (pacman removes or unlinks the old file before it writes the new one);
- replaced: the path exists but names another file, i.e. its inode number differs from the
  inode the mapping holds (a file replaced by rename, as package managers do). The device is
  compared too, but only when both sides name a real block device: btrfs (subvolumes) and
  overlayfs report one device in maps and another in stat() for the very same file, and
  comparing those would list every process.

What counts:

- Only file-backed mappings (inode not 0, path starting with "/") and the executable.
- With root "/" every such path except places pacman never installs to and kernel objects that
  merely look like paths: PSEUDO_PREFIXES (/dev, /proc, /sys, /run, /tmp, /var/tmp, home
  directories, memfd and SysV shared memory) and any name directly in "/" ("/memfd:x",
  "/SYSV00000000", "/drm mm object", "/[aio]", "/anon_hugepage", "/i915" are shmem objects).
- With another root only paths under it, reported as paths inside it ("/mnt/usr/lib/libc.so.6"
  is "/usr/lib/libc.so.6" for root /mnt); the same exclusions apply to that inside path.
- A process in another mount namespace (a sandboxed service, a container) sees its own file
  system: its paths are checked through /proc/PID/root. With a root other than "/" such
  processes are left out, since their paths are not paths of this host.
- A mapped path that no longer exists and is not marked deleted (it was moved, or lies under a
  mount we cannot see) is not reported: nothing proves it is stale.

Processes that exit during the scan, kernel threads, zombies and processes whose maps cannot be
read are skipped. Each distinct path is stat()ed once per file-system view, so the scan costs
about one read of each maps file.

The unit of a process is the innermost systemd `.service` in its cgroup path; processes in a
`.scope` only (login sessions, containers, PID 1's init.scope) have no unit, since a scope cannot
be restarted. For a process of a user's service manager this is the user unit's name (e.g.
"app.service" under user@1000.service), which the system manager does not know.
"""

from __future__ import annotations

import os

from clp_alpm.system.services import unit_name_is_valid

TYPE_CHECKING = False  # no typing at run time: see clp_alpm.cli.entry
if TYPE_CHECKING:
    from collections.abc import Iterable
    from dataclasses import dataclass

    from _typeshed import StrPath
else:  # the listings start without dataclasses (inspect, ast), see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass

DELETED_SUFFIX = " (deleted)"

PSEUDO_PREFIXES = (
    "/dev/",
    "/proc/",
    "/sys/",
    "/run/",
    "/tmp/",
    "/var/tmp/",
    "/home/",
    "/root/",
    "/memfd:",
    "/SYSV",
)
"""Paths (inside the root) never reported: pseudo file systems, temporary and home directories."""

_COMM_MAX = 15  # the kernel truncates /proc/PID/comm to 15 characters


@dataclass(frozen=True)
class StaleProcess:
    pid: int
    command: str
    unit: str | None
    files: tuple[str, ...]  # inside the root, sorted, each once

    def to_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "command": self.command,
            "unit": self.unit,
            "files": list(self.files),
        }


def find_stale_processes(root: StrPath = "/", proc: StrPath = "/proc") -> list[StaleProcess]:
    """Processes that map or run a deleted or replaced file under `root`, sorted by pid."""
    return _Scanner(root, proc).scan()


def group_by_unit(processes: Iterable[StaleProcess]) -> dict[str | None, list[StaleProcess]]:
    """The processes by systemd unit: units in name order, then None (no unit); pids ascending."""
    groups: dict[str | None, list[StaleProcess]] = {}
    for process in processes:
        groups.setdefault(process.unit, []).append(process)
    order = sorted(groups, key=lambda unit: (unit is None, unit or ""))
    return {unit: sorted(groups[unit], key=lambda p: p.pid) for unit in order}


def unit_from_cgroup(text: str) -> str | None:
    """The systemd unit of a process from the content of /proc/PID/cgroup, or None.

    The path comes from the cgroup v2 line ("0::/system.slice/sshd.service") or, on cgroup v1,
    from systemd's own hierarchy ("1:name=systemd:/system.slice/sshd.service"); the unit is the
    innermost component ending in ".service". Only a scope or nothing: None.
    """
    candidates: list[str] = []
    for line in text.split("\n"):
        hierarchy, sep, rest = line.partition(":")
        controllers, sep2, path = rest.partition(":")
        if not (sep and sep2):
            continue
        if (hierarchy == "0" and controllers == "") or controllers == "name=systemd":
            candidates.append(path.removesuffix(DELETED_SUFFIX))
    for path in candidates:
        unit = _innermost_service(path)
        if unit is not None:
            return unit
    return None


def _innermost_service(cgroup_path: str) -> str | None:
    for component in reversed(cgroup_path.split("/")):
        if component.endswith(".service") and unit_name_is_valid(component):
            return component
    return None


@dataclass(frozen=True)
class _Mapping:
    path: str  # host path as the kernel shows it, without " (deleted)"
    deleted: bool
    major: int
    minor: int
    inode: int


def _parse_maps(data: bytes, under: bytes = b"/") -> set[_Mapping]:
    """The file-backed mappings in the content of a /proc/PID/maps file whose path (as the
    kernel writes it) starts with `under`; bad lines are ignored."""
    mappings: set[_Mapping] = set()
    seen: set[tuple[bytes, bytes, bytes]] = set()
    for line in data.split(b"\n"):
        fields = line.split(None, 5)
        if len(fields) < 6 or fields[4] == b"0" or not fields[5].startswith(under):
            continue
        key = (fields[3], fields[4], fields[5])
        if key in seen:
            continue
        seen.add(key)
        mapping = _parse_mapping(*key)
        if mapping is not None:
            mappings.add(mapping)
    return mappings


def _parse_mapping(device: bytes, inode: bytes, raw_path: bytes) -> _Mapping | None:
    major, colon, minor = device.partition(b":")
    try:
        if not colon:
            raise ValueError(device)
        numbers = int(major, 16), int(minor, 16), int(inode)
    except ValueError:
        return None
    # The kernel writes a newline in a name as \012 (and escapes nothing else).
    path = os.fsdecode(raw_path.replace(b"\\012", b"\n"))
    deleted = path.endswith(DELETED_SUFFIX)
    if deleted:
        path = path[: -len(DELETED_SUFFIX)]
    return _Mapping(path, deleted, *numbers)


class _Scanner:
    """One scan of `proc`; remembers what each path is, per file-system view."""

    def __init__(self, root: StrPath, proc: StrPath) -> None:
        self.root = os.path.realpath(root)
        self.proc = os.fspath(proc)  # /proc/PID/... as strings: a scan reads hundreds
        self.own_mount_ns = _readlink("/proc/self/ns/mnt")
        # only mappings under the root count: the others are not parsed (the kernel writes a
        # newline in a name as \012)
        under = "/" if self.root == "/" else self.root + "/"
        self.under = os.fsencode(under).replace(b"\n", b"\\012")
        self._stat_cache: dict[tuple[str, str], os.stat_result | None] = {}

    def scan(self) -> list[StaleProcess]:
        try:
            names = os.listdir(self.proc)
        except OSError:
            return []
        pids = sorted(int(name) for name in names if name.isdigit())
        found = (self._stale_process(pid) for pid in pids)
        return [process for process in found if process is not None]

    def _stale_process(self, pid: int) -> StaleProcess | None:
        pid_dir = f"{self.proc}/{pid}"
        view = self._view(pid_dir)
        if view is None:
            return None
        try:
            maps = _read_bytes(f"{pid_dir}/maps")
        except OSError:
            return None
        mapped = _parse_maps(maps, self.under) if self.under in maps else set()
        stale = [self._stale_mapping(mapping, view) for mapping in mapped]
        stale.append(self._stale_exe(pid_dir, view))
        files = {path for path in stale if path is not None}
        if not files:
            return None
        try:
            command = _command(pid_dir)
            unit = unit_from_cgroup(_read_bytes(f"{pid_dir}/cgroup").decode("utf-8", "replace"))
        except OSError:
            return None  # it exited while we looked
        return StaleProcess(pid, command, unit, tuple(sorted(files)))

    # -- file-system views ------------------------------------------------------------------

    def _view(self, pid_dir: str) -> tuple[str, str] | None:
        """(cache key, prefix to stat paths through) for the process, or None to leave it out.

        A process in our mount namespace (or one we cannot tell) sees our paths: prefix "".
        """
        mount_ns = _readlink(f"{pid_dir}/ns/mnt")
        if mount_ns is None or mount_ns == self.own_mount_ns:
            return ("", "")
        if self.root != "/":
            return None
        proc_root = f"{pid_dir}/root"
        try:
            root_stat = os.stat(proc_root)
        except OSError:
            return None
        return (f"{mount_ns}:{root_stat.st_dev}:{root_stat.st_ino}", proc_root)

    def _stat(self, view: tuple[str, str], path: str) -> os.stat_result | None:
        key = (view[0], path)
        if key not in self._stat_cache:
            try:
                self._stat_cache[key] = os.stat(view[1] + path)
            except (OSError, ValueError):
                self._stat_cache[key] = None
        return self._stat_cache[key]

    # -- what counts ------------------------------------------------------------------------

    def _inside(self, host_path: str) -> str | None:
        """`host_path` as a path inside the root, or None when it is not reported."""
        if self.root == "/":
            inside = host_path
        elif host_path.startswith(self.root + "/"):
            inside = host_path[len(self.root) :]
        else:
            return None
        if inside.startswith(PSEUDO_PREFIXES) or "/" not in inside[1:]:
            return None
        return inside

    def _stale_mapping(self, mapping: _Mapping, view: tuple[str, str]) -> str | None:
        """The mapped file inside the root when it was deleted or replaced, else None."""
        inside = self._inside(mapping.path)
        if inside is None:
            return None
        return inside if self._mapping_is_stale(mapping, view) else None

    def _mapping_is_stale(self, mapping: _Mapping, view: tuple[str, str]) -> bool:
        if mapping.deleted:
            # A file whose name really ends in " (deleted)" is still there under that name.
            literal = self._stat(view, mapping.path + DELETED_SUFFIX)
            return literal is None or literal.st_ino != mapping.inode
        current = self._stat(view, mapping.path)
        if current is None:
            return False
        if current.st_ino != mapping.inode:
            return True
        now_major, now_minor = os.major(current.st_dev), os.minor(current.st_dev)
        both_block_devices = mapping.major != 0 and now_major != 0
        return both_block_devices and (mapping.major, mapping.minor) != (now_major, now_minor)

    def _stale_exe(self, pid_dir: str, view: tuple[str, str]) -> str | None:
        """The executable inside the root when it was deleted or replaced, else None."""
        link = _readlink(f"{pid_dir}/exe")
        if link is None:
            return None  # a kernel thread, a zombie, or gone
        deleted = link.endswith(DELETED_SUFFIX)
        path = link[: -len(DELETED_SUFFIX)] if deleted else link
        inside = self._inside(path)
        if inside is None:
            return None
        try:
            running = os.stat(f"{pid_dir}/exe")
        except OSError:
            running = None
        current = self._stat(view, link)  # the literal name when it says " (deleted)"
        if deleted:
            still_named = current is not None and (running is None or _same_file(current, running))
            return None if still_named else inside
        if current is None or running is None:
            return None
        return None if _same_file(current, running) else inside


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _read_bytes(path: str) -> bytes:
    """A /proc file's content (its size says 0), read with no file object around it."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _command(pid_dir: str) -> str:
    """The process's name: comm, or argv[0]'s base name when comm is empty or was cut short."""
    comm = _read_bytes(f"{pid_dir}/comm").decode("utf-8", "replace").rstrip("\n")
    if comm and len(comm) < _COMM_MAX:
        return comm
    try:
        argv0 = _read_bytes(f"{pid_dir}/cmdline").split(b"\0", 1)[0]
    except OSError:
        argv0 = b""
    name = os.path.basename(argv0.decode("utf-8", "replace"))
    if name and name.startswith(comm):
        return name
    return comm or name or "?"
