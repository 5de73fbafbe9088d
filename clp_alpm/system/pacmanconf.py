"""pacman.conf of the target system, read as pacman reads it, with every path under the root.

pycman's config reader globs every Include on the host (it calls `glob.glob(value)` itself,
with no hook to change that), so for `--root /mnt` it would read the rescue system's files
instead of the target's. This is a small reader with pycman's grammar, which is also pacman
6's: only whole lines starting with '#' are comments (pacman splits `IgnorePkg = a # b` into
three names, as pycman does), a `[section]` line opens a section, `Key = Value` or a bare
`Key`, list options split on whitespace (LIST_OPTIONS, the names pycman gives), an included
file continues the section it was included from and a section it opens stays open after it.
Unlike pycman, Include globs are resolved under the root, in sorted order as glob(3) does, and
a pattern that matches nothing is an error, as in pacman (it then opens the literal name and
fails). Errors name the file and line.
"""

from __future__ import annotations

import glob
import os

from clp_alpm.config import Config, read_config_bytes, refuse_special_include
from clp_alpm.errors import ConfigError, UsageError
from clp_alpm.paths import PACMAN_CONF, is_file, resolve_inside, target_of, under_root

TYPE_CHECKING = False  # no typing at run time: see clp_alpm.cli.entry
if TYPE_CHECKING:
    from collections.abc import Sequence
    from dataclasses import dataclass
    from pathlib import Path

    from _typeshed import StrPath
else:  # the listings start without dataclasses (inspect, ast), see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass

DEFAULT_CACHE_DIR = "/var/cache/pacman/pkg"
DEFAULT_GPG_DIR = "/etc/pacman.d/gnupg"
DEFAULT_HOOK_DIR = "/etc/pacman.d/hooks"
MAX_INCLUDE_DEPTH = 10  # pacman's own limit


@dataclass(frozen=True)
class ConfEntry:
    """One directive of pacman.conf, after Include lines were followed."""

    section: str | None
    key: str
    value: str | None  # None for a bare option such as `Color`
    source: str  # "file:line"


# The options whose values accumulate over lines and split on whitespace: the names pycman's
# config reader lists (tests/unit/system/test_pacmanconf.py holds them equal). Not imported
# from pycman: its package loads libalpm and all of pycman's commands (~15 ms a clp start).
LIST_OPTIONS = frozenset({
    "CacheDir", "HookDir", "HoldPkg", "SyncFirst", "IgnoreGroup", "IgnorePkg", "NoExtract",
    "NoUpgrade", "Server",
})  # fmt: skip


def read_pacman_conf(root: StrPath, conf: StrPath, strict: bool = True) -> list[ConfEntry]:
    """Every directive of pacman.conf at host path `conf`, Include globs resolved under `root`.

    Include entries are kept (before the entries they bring in). With strict=False an Include
    that matches nothing or cannot be read is skipped instead of raising ConfigError.
    """
    entries: list[ConfEntry] = []
    _read_conf_file(os.fspath(root), os.fspath(conf), entries, [None], depth=0, strict=strict)
    return entries


def _read_conf_file(
    root: str, path: str, out: list[ConfEntry], section: list[str | None], depth: int,
    strict: bool,
) -> None:  # fmt: skip
    if depth > MAX_INCLUDE_DEPTH:
        raise ConfigError(f"{path}: Include nested more than {MAX_INCLUDE_DEPTH} deep")
    text = _read_conf_text(path)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        source = f"{path}:{number}"
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip()
            if not name:
                raise ConfigError(f"{source}: empty section name")
            section[0] = name
            continue
        key, equal, value = (part.strip() for part in line.partition("="))
        if not key:
            raise ConfigError(f"{source}: expected 'Key = Value', got '{line}'")
        if key == "Include" and equal:
            out.append(ConfEntry(section[0], key, value, source))
            for match in _include_matches(root, value, source, strict):
                _read_included(root, match, out, section, depth, strict)
            continue
        if section[0] is None:
            raise ConfigError(f"{source}: '{key}' is outside any section (pacman refuses this)")
        out.append(ConfEntry(section[0], key, value if equal else None, source))


def _read_included(
    root: str, path: str, out: list[ConfEntry], section: list[str | None], depth: int,
    strict: bool,
) -> None:  # fmt: skip
    try:
        _read_conf_file(root, path, out, section, depth + 1, strict)
    except ConfigError:
        if strict or is_file(path):
            raise  # a file that exists but is broken is an error even for a lenient reader


def _read_conf_text(path: str) -> str:
    try:
        return read_config_bytes(path).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read (it is not UTF-8 text)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None


def _include_matches(root: str, pattern: str, source: str, strict: bool) -> list[str]:
    if not pattern.startswith("/"):
        if strict:
            raise ConfigError(f"{source}: Include needs an absolute path, got '{pattern}'")
        return []
    try:
        refuse_special_include(source, pattern)
    except ConfigError:
        if strict:
            raise
        return []
    try:
        matches = glob_under_root(root, pattern)
    except ConfigError as err:
        if strict:
            raise ConfigError(f"{source}: {err}") from None
        return []
    if not matches and strict:
        raise ConfigError(f"{source}: Include {pattern}: no such file (pacman refuses this)")
    return matches


def glob_under_root(root: StrPath, pattern: str) -> list[str]:
    """Host paths matching the target glob `pattern`, sorted; the root itself is never a glob."""
    try:
        clean = under_root("/", pattern)
    except UsageError as err:
        raise ConfigError(f"Include {pattern}: {err}") from None
    prefix = glob.escape(os.fspath(root).rstrip("/"))
    found = []
    for match in sorted(glob.glob(prefix + clean)):
        target = target_of(root, match)
        try:  # the match's name is inside the root: what it resolves to must be too
            found.append(resolve_inside(root, target) if target is not None else match)
        except UsageError as err:
            raise ConfigError(f"Include {pattern}: {err}") from None
    return found


@dataclass(frozen=True)
class PacmanSettings:
    """What clp needs from pacman.conf. Paths are host paths unless said otherwise."""

    conf: Path  # host path of pacman.conf used (pacman's --config); may not exist
    root: Path
    dbpath: Path
    cache_dirs: tuple[Path, ...]
    gpgdir: Path
    local_file_siglevel: str  # raw pacman.conf strings, "" when unset (pacman's default applies)
    remote_file_siglevel: str
    ignore_pkgs: tuple[str, ...]
    includes: tuple[str, ...]  # Include patterns of [options] (target paths)
    siglevel: str = ""
    repos: tuple[str, ...] = ()  # sync repositories, in pacman.conf order
    hook_dirs: tuple[Path, ...] = ()  # HookDir entries (default /etc/pacman.d/hooks) under root
    extra_hook_dirs: tuple[Path, ...] = ()  # --hookdir (host paths), also in hook_dirs
    log_file: Path | None = None  # LogFile under root, None when unset (pacman's default)
    entries: tuple[ConfEntry, ...] = ()  # everything read, for a pacman.conf pacman can use


def pacman_settings(
    config: Config, pacman_conf: StrPath | None = None, extra_cache_dirs: Sequence[StrPath] = ()
) -> PacmanSettings:
    """Read the target's pacman.conf (or the host path given, as pacman's --config).

    A missing default pacman.conf means pacman's defaults; a missing explicit one is an error.
    """
    from pathlib import Path  # the settings' paths: not for reading pacman.conf (`clp pins`)

    conf = Path(pacman_conf if pacman_conf is not None else config.host(PACMAN_CONF))
    if pacman_conf is not None or conf.exists():
        entries = read_pacman_conf(config.root, conf)
    else:
        entries = []
    options = [entry for entry in entries if entry.section == "options"]
    lists = _collect_lists(options)
    singles = {entry.key: entry.value or "" for entry in options}
    cache_dirs = [Path(path) for path in extra_cache_dirs]
    cache_dirs += _host_paths(config, lists.get("CacheDir", [DEFAULT_CACHE_DIR]), "CacheDir")
    hook_dirs = _host_paths(config, lists.get("HookDir", [DEFAULT_HOOK_DIR]), "HookDir")
    gpgdir = (
        Path(config.keyring_override)
        if config.keyring_override
        else _host_paths(config, [singles.get("GPGDir") or DEFAULT_GPG_DIR], "GPGDir")[0]
    )
    log_file = singles.get("LogFile")
    extra_hook_dirs = tuple(Path(path) for path in config.extra_hook_dirs)
    return PacmanSettings(
        conf=conf,
        root=Path(config.root),
        dbpath=Path(config.host_dbpath),
        cache_dirs=tuple(dict.fromkeys(cache_dirs)),
        gpgdir=gpgdir,
        local_file_siglevel=_joined(options, "LocalFileSigLevel"),
        remote_file_siglevel=_joined(options, "RemoteFileSigLevel"),
        ignore_pkgs=tuple(lists.get("IgnorePkg", [])),
        includes=tuple(e.value or "" for e in options if e.key == "Include"),
        siglevel=_joined(options, "SigLevel"),
        repos=_repositories(entries),
        hook_dirs=tuple(dict.fromkeys([*hook_dirs, *extra_hook_dirs])),
        extra_hook_dirs=extra_hook_dirs,
        log_file=_host_paths(config, [log_file], "LogFile")[0] if log_file else None,
        entries=tuple(entries),
    )


def _repositories(entries: list[ConfEntry]) -> tuple[str, ...]:
    names = (entry.section for entry in entries if entry.section not in (None, "options"))
    return tuple(dict.fromkeys(name for name in names if name))


def _collect_lists(options: list[ConfEntry]) -> dict[str, list[str]]:
    list_options = LIST_OPTIONS
    lists: dict[str, list[str]] = {}
    for entry in options:
        if entry.key in list_options and entry.value is not None:
            lists.setdefault(entry.key, []).extend(entry.value.split())
    return lists


def _joined(options: list[ConfEntry], key: str) -> str:
    # pacman applies each SigLevel line on top of the previous ones: joining them is the same
    return " ".join(entry.value for entry in options if entry.key == key and entry.value)


def _host_paths(config: Config, target_paths: list[str], key: str) -> list[Path]:
    from pathlib import Path

    paths = []
    for target in target_paths:
        try:
            paths.append(Path(config.host(target)))
        except UsageError as err:
            raise ConfigError(f"pacman.conf: {key}: {err}") from None
    return paths
