"""clp.conf (pacman.conf style INI) and the paths of the target system under --root."""

from __future__ import annotations

import errno
import os
import stat

from clp_alpm.errors import ConfigError, UsageError
from clp_alpm.paths import (
    clean_host_path,
    exists,
    is_dir,
    is_file,
    resolve_inside,
    target_of,
    under_root,
)

# typing costs ~4 ms to import and the hooks start on every transaction: names for type
# checkers only (annotations are strings here)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from dataclasses import dataclass, field, replace
    from typing import Any

    from _typeshed import StrPath
else:  # the pacman hook's path: no dataclasses, see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass, field, replace

DEFAULT_CONFIG = "/etc/CLP/clp.conf"
DEFAULT_MIRRORS = "/etc/CLP/mirrors"
# the names the shell completions offer (patch IDs, transaction numbers), readable by users: not
# in StateDir, which is 0700; the completion scripts read it at this path under --root
COMPLETION_INDEX = "/var/cache/clp/completion-index"
SIGLEVELS = ("Required", "Optional", "Never")
MAX_INCLUDE_DEPTH = 10
MAX_HISTORY = 100000  # HistoryLimit's ceiling: a number, not a way to keep every snapshot
MAX_HEALTH_BOOTS = 100  # HealthBoots' ceiling
MAX_RATE = 1024**3  # LowSpeedLimit's ceiling, bytes per second
MAX_CONFIG_BYTES = 1024 * 1024  # a configuration file larger than this is not one
# an Include of these (a process's environment, a device) is not a configuration file
NOT_CONFIG_TREES = ("/proc", "/sys", "/dev")

# key in clp.conf -> (Config field, kind)
_OPTIONS: dict[str, tuple[str, str]] = {
    "PatchDir": ("patch_dir", "path"),
    "StateDir": ("state_dir", "path"),
    "LogFile": ("log_file", "path"),
    "SigLevel": ("siglevel", "siglevel"),
    "FeedSigLevel": ("feed_siglevel", "siglevel"),
    "Keyring": ("keyring", "path"),
    "Interpreter": ("interpreter", "path"),
    "ScriptTimeout": ("script_timeout", "seconds"),
    "ConnectTimeout": ("connect_timeout", "seconds"),
    "ReadTimeout": ("read_timeout", "seconds"),
    "LowSpeedLimit": ("low_speed_limit", "rate"),
    "LowSpeedTimeout": ("low_speed_timeout", "seconds"),
    "HistoryLimit": ("history_limit", "count"),
    "HealthBoots": ("health_boots", "boots"),
    "HealthTimeout": ("health_timeout", "seconds"),
    "Architecture": ("architecture", "word"),
    "DBPath": ("dbpath", "path"),
    "ArchiveServer": ("archive_servers", "list"),
    "Server": ("servers", "list"),
}


@dataclass(frozen=True)
class Config:
    """Settings of one clp run. Paths are paths of the target system unless named host_*; all
    are str (no pathlib on the hooks' path), and `root` is absolute and clean."""

    root: str = "/"
    config_file: str | None = None
    patch_dir: str = "/opt/CLP"
    state_dir: str = "/var/lib/clp"
    log_file: str = "/var/log/CLP.log"
    siglevel: str = "Required"
    feed_siglevel: str | None = None  # the index and the patches of the feed; None: siglevel
    keyring: str = "/etc/pacman.d/gnupg"
    interpreter: str = "/usr/bin/pwsh"
    script_timeout: int = 600
    connect_timeout: int = 10  # a mirror's connection and answer, as pacman (libcurl) waits
    read_timeout: int = 10  # each byte of a download
    # a download slower than low_speed_limit bytes/s for low_speed_timeout s is given up for
    # the next mirror, as pacman gives up one under its low-speed limit for 10 s
    low_speed_limit: int = 100
    low_speed_timeout: int = 10
    history_limit: int = 100  # pacman transactions kept, with their snapshots
    health_boots: int = 3  # failed boots in a row before the automatic undo; 0: never
    health_timeout: int = 60  # seconds each boot health check may run
    architecture: str = field(default_factory=lambda: os.uname().machine)
    dbpath: str = "/var/lib/pacman"
    # None: clp.conf sets no ArchiveServer, and the distribution's archive applies (see
    # archive_server_urls); an `ArchiveServer =` line with no URL sets ()
    archive_servers: tuple[str, ...] | None = None
    servers: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    dbpath_override: str | None = None  # pacman's --dbpath: a host path, not under the root
    pacman_conf: str | None = None  # --pacman-conf: a host path (default: pacman.conf in root)
    extra_cache_dirs: tuple[str, ...] = ()  # --cachedir: host paths, searched first
    keyring_override: str | None = None  # --gpgdir: a host path
    extra_hook_dirs: tuple[str, ...] = ()  # --hookdir: host paths, for the pacman clp runs
    log_file_override: str | None = None  # --logfile: a host path

    def host(self, target_path: str, follow_last: bool = True) -> str:
        """Where the target path lives on the machine clp runs on: resolved inside the root
        (PathEscapeError for a symbolic link on the way that leads out of it, or dangles;
        with `follow_last=False`, for a link as the last component too)."""
        return resolve_inside(self.root, target_path, follow_last=follow_last)

    @property
    def host_patch_dir(self) -> str:
        return self.host(self.patch_dir)

    @property
    def host_state_dir(self) -> str:
        return self.host(self.state_dir)

    @property
    def host_snapshot_dir(self) -> str:
        """StateDir/snapshots, the snapshot store."""
        return self.host_in_state_dir("snapshots")

    def host_in_state_dir(self, name: str) -> str:
        """A directory clp keeps in StateDir (written through by name): never a link."""
        return self.host(f"{self.state_dir.rstrip('/')}/{name}", follow_last=False)

    @property
    def host_log_file(self) -> str:
        return self.log_file_override or self.host(self.log_file)

    @property
    def host_completion_index(self) -> str:
        return self.host(COMPLETION_INDEX)

    @property
    def host_dbpath(self) -> str:
        return self.dbpath_override or self.host(self.dbpath)

    @property
    def host_keyring(self) -> str:
        return self.keyring_override or self.host(self.keyring)

    def own_paths(self) -> dict[str, str]:
        """clp's own files and directories, and pacman's database (with its lock), as host
        paths resolved inside the root: nothing a patch declares may resolve to them."""
        return {
            "StateDir": self.host_state_dir,
            "PatchDir": self.host_patch_dir,
            "LogFile": self.host_log_file,
            "Keyring": self.host_keyring,
            "DBPath": self.host_dbpath,
            "the completion index": os.path.dirname(self.host_completion_index),
        }

    @property
    def archive_server_urls(self) -> tuple[str, ...]:
        """The archives `clp revert` searches: clp.conf's, else the distribution's."""
        if self.archive_servers is not None:
            return self.archive_servers
        from clp_alpm.osrelease import distribution_archives  # not on the hooks' path

        return distribution_archives(self.root)

    @property
    def chrooted(self) -> bool:
        return os.path.realpath(self.root) != "/"

    @property
    def feed_level(self) -> str:
        """FeedSigLevel, which defaults to SigLevel: what the feed's index and patches need."""
        return self.feed_siglevel or self.siglevel

    def patch_path(self, patch_id: str) -> str:
        """Target path of a patch's extracted directory."""
        return f"{self.patch_dir.rstrip('/')}/{patch_id}"


def load_config(
    root: StrPath = "/",
    config_file: StrPath | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read clp.conf for the system at `root`. A missing default file means defaults.

    `config_file` is a host path, as pacman's --config; the default lives inside the root.
    """
    root_path = clean_host_path(root)
    try:
        root_is_dir = is_dir(root_path)
    except OSError as err:  # a root this user may not enter
        raise ConfigError(f"{root_path}: cannot use the root directory ({err.strerror})") from None
    if not root_is_dir:
        raise ConfigError(f"{root_path}: root directory does not exist")
    explicit = config_file is not None
    path = (
        clean_host_path(config_file)
        if config_file is not None
        else resolve_inside(root_path, DEFAULT_CONFIG)
    )
    config = Config(root=root_path, config_file=path)
    if exists(path) or explicit:
        values, warnings = _read_options(path, root_path)
        config = replace(config, **values, warnings=tuple(warnings))
    mirrors = resolve_inside(root_path, DEFAULT_MIRRORS)
    if not config.servers and is_file(mirrors):
        # clpctl's package ships /etc/CLP/mirrors and no clp.conf: its servers still count
        values, warnings = _read_options(mirrors, root_path, section="options")
        config = replace(config, servers=tuple(values.get("servers", ())),
                         warnings=config.warnings + tuple(warnings))  # fmt: skip
    if overrides:
        config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    return config


def _read_options(
    path: str, root: str, section: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    lists: dict[str, list[str]] = {}
    warnings: list[str] = []
    for source, key, value in _iter_lines(path, root, depth=0, section=section):
        spec = _OPTIONS.get(key)
        if spec is None:
            warnings.append(f"{source}: unknown option '{key}' ignored")
            continue
        name, kind = spec
        if kind == "list":
            lists.setdefault(name, []).extend(value.split())
        else:
            values[name] = _convert(source, key, value, kind)
    for name, items in lists.items():
        values[name] = tuple(items)
    return values, warnings


def _whole(value: str) -> bool:
    """1 to 12 ASCII digits, few enough for int() (str.isdigit alone also takes '²', which
    int() refuses)."""
    return value.isascii() and value.isdigit() and len(value) <= 12


def _convert(source: str, key: str, value: str, kind: str) -> object:
    if not value:
        raise ConfigError(f"{source}: {key} needs a value")
    if kind == "path":
        if not value.startswith("/") or "\0" in value or ".." in value.split("/"):
            raise ConfigError(f"{source}: {key} must be an absolute path, got '{value}'")
        return value.rstrip("/") or "/"
    if kind == "siglevel":
        if value not in SIGLEVELS:
            raise ConfigError(f"{source}: {key} must be one of {', '.join(SIGLEVELS)}")
        return value
    if kind == "seconds":
        if not _whole(value) or not 1 <= int(value) <= 86400:
            raise ConfigError(f"{source}: {key} must be a number of seconds (1-86400)")
        return int(value)
    if kind == "boots":
        if not _whole(value) or not 0 <= int(value) <= MAX_HEALTH_BOOTS:
            raise ConfigError(
                f"{source}: {key} must be a whole number from 0 to {MAX_HEALTH_BOOTS} "
                "(0: never undo)"
            )
        return int(value)
    if kind == "rate":
        if not _whole(value) or not 0 <= int(value) <= MAX_RATE:
            raise ConfigError(
                f"{source}: {key} must be a number of bytes per second (0-{MAX_RATE})"
            )
        return int(value)
    if kind == "count":
        if not _whole(value) or not 1 <= int(value) <= MAX_HISTORY:
            raise ConfigError(f"{source}: {key} must be a whole number from 1 to {MAX_HISTORY}")
        return int(value)
    if not value.replace("_", "").isalnum():
        raise ConfigError(f"{source}: {key} has a bad value '{value}'")
    return value


def _iter_lines(
    path: str, root: str, depth: int, section: str | None = None
) -> Iterator[tuple[str, str, str]]:
    """Yield (file:line, key, value) of [options], following Include lines under root.

    An included file continues the section it was included from, as in pacman.conf.
    """
    if depth > MAX_INCLUDE_DEPTH:
        raise ConfigError(f"{path}: Include nested more than {MAX_INCLUDE_DEPTH} deep")
    try:
        text = read_config_bytes(path).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read config file (it is not UTF-8 text)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file ({err.strerror})") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        source = f"{path}:{number}"
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            if section != "options":
                raise ConfigError(
                    f"{source}: unknown section [{section}]; the only one is [options]"
                )
            continue
        key, equal, value = (part.strip() for part in line.partition("="))
        if not equal:
            raise ConfigError(f"{source}: expected 'Key = Value', got '{line}'")
        if section != "options":
            raise ConfigError(f"{source}: '{key}' must be in the [options] section")
        if key == "Include":
            yield from _iter_include(source, value, root, depth, section)
            continue
        yield source, key, value


def read_config_bytes(path: StrPath) -> bytes:
    """The bytes of a configuration file, which must be a regular file (a fifo would block, a
    device never end) of at most MAX_CONFIG_BYTES, holding no NUL byte. Raises ConfigError, or
    the OSError of opening or reading it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file (a fifo, socket or device)")
        chunks, size = [], 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB: not a configuration file"
        )
    data = b"".join(chunks)
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: holds a NUL byte: not a text file")
    return data


def refuse_special_include(source: str, pattern: str) -> None:
    """An Include of /proc, /sys or /dev reads no configuration (a process's environment, a
    device that never ends): refused."""
    clean = "/" + pattern.strip("/")
    for tree in NOT_CONFIG_TREES:
        if clean == tree or clean.startswith(tree + "/"):
            raise ConfigError(
                f"{source}: Include {pattern}: files under {tree} are not configuration files"
            )


def _iter_include(
    source: str, pattern: str, root: str, depth: int, section: str | None
) -> Iterator[tuple[str, str, str]]:
    if not pattern.startswith("/"):
        raise ConfigError(f"{source}: Include needs an absolute path")
    refuse_special_include(source, pattern)
    import glob  # only for an Include

    for match in sorted(glob.glob(under_root(root, pattern))):
        target = target_of(root, match)
        try:  # the match's name is inside the root: what it resolves to must be too
            host = resolve_inside(root, target) if target is not None else match
        except UsageError as err:
            raise ConfigError(f"{source}: Include {pattern}: {err}") from None
        yield from _iter_lines(host, root, depth + 1, section)
