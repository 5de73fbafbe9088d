"""libalpm for clp: read the local and sync databases, plan a revert, commit it with `pacman -U`.

pyalpm is used for READING and PLANNING only (see NOTES-libalpm.md): a transaction through
pyalpm segfaults on some prepare() errors, never asks libalpm's questions and runs no hook in
/etc/pacman.d/hooks. The commit is `pacman -U` with the planned files, in its own process.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from clp_alpm.config import Config
from clp_alpm.errors import ConfigError, LockError, OperationFailed, UsageError
from clp_alpm.paths import under_root

PACMAN_CONF = "/etc/pacman.conf"
DEFAULT_CACHE_DIR = "/var/cache/pacman/pkg"
DEFAULT_GPG_DIR = "/etc/pacman.d/gnupg"
DEFAULT_HOOK_DIR = "/etc/pacman.d/hooks"
MAX_INCLUDE_DEPTH = 10  # pacman's own limit
MAX_DETAIL_LINES = 5

# ------------------------------------------------------------------------------------------------
# pacman.conf
#
# The user chose pycman's reader, but pycman.config globs every Include on the HOST (it opens
# `glob.glob(value)` itself, with no hook to change that), so for `--root /mnt` it would read the
# rescue system's files instead of the target's. This is a small reader with pycman's grammar,
# which is also pacman 6's: only whole lines starting with '#' are comments (pacman splits
# `IgnorePkg = a # b` into three names, as pycman does), a `[section]` line opens a section,
# `Key = Value` or a bare `Key`, list options split on whitespace (pycman's LIST_OPTIONS), an
# included file continues the section it was included from and a section it opens stays open
# after it. Unlike pycman, Include globs are resolved under the root, in sorted order as glob(3)
# does, and a pattern that matches nothing is an error, as in pacman (it then opens the literal
# name and fails). Errors name the file and line.
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfEntry:
    """One directive of pacman.conf, after Include lines were followed."""

    section: str | None
    key: str
    value: str | None  # None for a bare option such as `Color`
    source: str  # "file:line"


def _list_options() -> frozenset[str]:
    from pycman.config import LIST_OPTIONS  # lazy: pycman loads libalpm

    return frozenset(LIST_OPTIONS)


def read_pacman_conf(root: Path, conf: Path, strict: bool = True) -> list[ConfEntry]:
    """Every directive of pacman.conf at host path `conf`, Include globs resolved under `root`.

    Include entries are kept (before the entries they bring in). With strict=False an Include
    that matches nothing or cannot be read is skipped instead of raising ConfigError.
    """
    entries: list[ConfEntry] = []
    _read_conf_file(Path(root), Path(conf), entries, [None], depth=0, strict=strict)
    return entries


def _read_conf_file(
    root: Path, path: Path, out: list[ConfEntry], section: list[str | None], depth: int,
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
    root: Path, path: Path, out: list[ConfEntry], section: list[str | None], depth: int,
    strict: bool,
) -> None:  # fmt: skip
    try:
        _read_conf_file(root, path, out, section, depth + 1, strict)
    except ConfigError:
        if strict or path.is_file():
            raise  # a file that exists but is broken is an error even for a lenient reader


def _read_conf_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read (it is not UTF-8 text)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None


def _include_matches(root: Path, pattern: str, source: str, strict: bool) -> list[Path]:
    if not pattern.startswith("/"):
        if strict:
            raise ConfigError(f"{source}: Include needs an absolute path, got '{pattern}'")
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


def glob_under_root(root: Path, pattern: str) -> list[Path]:
    """Host paths matching the target glob `pattern`, sorted; the root itself is never a glob."""
    try:
        clean = under_root(Path("/"), pattern)
    except UsageError as err:
        raise ConfigError(f"Include {pattern}: {err}") from None
    prefix = glob.escape(str(root).rstrip("/"))
    return sorted(Path(match) for match in glob.glob(prefix + str(clean)))


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
    log_file: Path | None = None  # LogFile under root, None when unset (pacman's default)
    entries: tuple[ConfEntry, ...] = ()  # everything read, for a pacman.conf pacman can use


def pacman_settings(
    config: Config, pacman_conf: Path | None = None, extra_cache_dirs: Sequence[Path] = ()
) -> PacmanSettings:
    """Read the target's pacman.conf (or the host path given, as pacman's --config).

    A missing default pacman.conf means pacman's defaults; a missing explicit one is an error.
    """
    conf = Path(pacman_conf) if pacman_conf is not None else config.host(PACMAN_CONF)
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
    gpgdir = _host_paths(config, [singles.get("GPGDir") or DEFAULT_GPG_DIR], "GPGDir")[0]
    log_file = singles.get("LogFile")
    return PacmanSettings(
        conf=conf,
        root=config.root,
        dbpath=config.host_dbpath,
        cache_dirs=tuple(dict.fromkeys(cache_dirs)),
        gpgdir=gpgdir,
        local_file_siglevel=_joined(options, "LocalFileSigLevel"),
        remote_file_siglevel=_joined(options, "RemoteFileSigLevel"),
        ignore_pkgs=tuple(lists.get("IgnorePkg", [])),
        includes=tuple(e.value or "" for e in options if e.key == "Include"),
        siglevel=_joined(options, "SigLevel"),
        repos=_repositories(entries),
        hook_dirs=tuple(dict.fromkeys(hook_dirs)),
        log_file=_host_paths(config, [log_file], "LogFile")[0] if log_file else None,
        entries=tuple(entries),
    )


def _repositories(entries: list[ConfEntry]) -> tuple[str, ...]:
    names = (entry.section for entry in entries if entry.section not in (None, "options"))
    return tuple(dict.fromkeys(name for name in names if name))


def _collect_lists(options: list[ConfEntry]) -> dict[str, list[str]]:
    list_options = _list_options()
    lists: dict[str, list[str]] = {}
    for entry in options:
        if entry.key in list_options and entry.value is not None:
            lists.setdefault(entry.key, []).extend(entry.value.split())
    return lists


def _joined(options: list[ConfEntry], key: str) -> str:
    # pacman applies each SigLevel line on top of the previous ones: joining them is the same
    return " ".join(entry.value for entry in options if entry.key == key and entry.value)


def _host_paths(config: Config, target_paths: list[str], key: str) -> list[Path]:
    paths = []
    for target in target_paths:
        try:
            paths.append(config.host(target))
        except UsageError as err:
            raise ConfigError(f"pacman.conf: {key}: {err}") from None
    return paths


# ------------------------------------------------------------------------------------------------
# The local and sync databases (read only)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    depends: tuple[str, ...]
    provides: tuple[str, ...]
    required_by: tuple[str, ...]


def _handle(root: Path, dbpath: Path):
    import pyalpm  # lazy: libalpm is only loaded when a package question is asked

    try:
        return pyalpm.Handle(str(root), str(dbpath))
    except pyalpm.error as err:
        raise ConfigError(f"{dbpath}: cannot open the pacman database ({err.args[0]})") from None


def installed_versions(config: Config, names: list[str]) -> dict[str, str | None]:
    """Installed version of each package name (None when not installed), from the local db."""
    from clp_alpm.system.localdb import installed_versions as read_local

    return read_local(config.host_dbpath, names)


def installed_package(config: Config, name: str) -> InstalledPackage | None:
    """The installed package `name`, or None."""
    dbpath = config.host_dbpath
    if not (dbpath / "local").is_dir():
        return None
    package = _handle(config.root, dbpath).get_localdb().get_pkg(name)
    if package is None:
        return None
    return InstalledPackage(
        name=str(package.name),
        version=str(package.version),
        depends=tuple(str(dep) for dep in package.depends),
        provides=tuple(str(item) for item in package.provides),
        required_by=tuple(sorted(str(item) for item in package.compute_requiredby())),
    )


def sync_versions(config: Config, settings: PacmanSettings, name: str) -> list[str]:
    """Versions of `name` in the sync databases already on disk, newest first. No network.

    The databases are read as pacman left them after its last -Sy (which verified them), so
    no signature level is set here.
    """
    import pyalpm

    if not (settings.dbpath / "sync").is_dir() or not settings.repos:
        return []
    handle = _handle(config.root, settings.dbpath)
    versions: list[str] = []
    for repo in settings.repos:
        if not (settings.dbpath / "sync" / f"{repo}.db").is_file():
            continue
        try:
            package = handle.register_syncdb(repo, 0).get_pkg(name)
        except pyalpm.error:
            continue  # an unreadable database offers nothing; pacman -Sy will say why
        if package is not None and str(package.version) not in versions:
            versions.append(str(package.version))
    return sort_versions(versions)


def sort_versions(versions: Sequence[str]) -> list[str]:
    """Newest first, by pacman's vercmp."""
    import pyalpm

    return sorted(versions, key=functools.cmp_to_key(pyalpm.vercmp), reverse=True)


# ------------------------------------------------------------------------------------------------
# Planning a revert: does the set of package files leave every dependency satisfied?
# ------------------------------------------------------------------------------------------------

_DEPENDENCY = re.compile(r"^(?P<name>[^<>=\s]+)(?:(?P<op>>=|<=|=|<|>)(?P<version>\S+))?$")


@dataclass(frozen=True)
class _Facts:
    """Plain copies of what libalpm knows about one package (no libalpm object kept)."""

    name: str
    version: str
    depends: tuple[str, ...]
    provides: tuple[str, ...]


@dataclass(frozen=True)
class _Offer:
    package: _Facts
    version: str | None  # None for an unversioned provides


@dataclass(frozen=True)
class DependencyProblem:
    """A dependency the world after the revert would leave unsatisfied."""

    package: str  # the package whose dependency breaks
    needs: str  # its dependency, as written in its .PKGINFO
    offered: str | None  # the version of the needed name after the revert (None: none)
    offered_by: str | None = None  # the package offering it, when that is not the needed name
    in_revert: bool = False  # `package` is one the revert installs
    reverted: tuple[str, str] | None = None  # (name, version) of the reverted package concerned
    installed: str | None = None  # installed version of `package`

    def describe(self) -> str:
        needed = _parse_dependency(self.needs)[0]
        if self.in_revert:
            who = f"{self.package} {self.reverted[1]}" if self.reverted else self.package
            if self.offered_by is None and self.offered is None:
                return f"{who} needs {self.needs}, which nothing installed provides"
            return f"{who} needs {self.needs} but the system would have {self._offer(needed)}"
        if self.offered_by is None and self.offered is None:
            source = " ".join(self.reverted) if self.reverted else "the revert"
            return f"{self.package} needs {self.needs}, which {source} does not provide"
        return f"{self.package} needs {self.needs} but the revert brings {self._offer(needed)}"

    def _offer(self, needed: str) -> str:
        if self.offered_by is None or self.offered_by == needed:
            return f"{needed} {self.offered}" if self.in_revert else str(self.offered)
        if self.offered is None:
            return f"{needed} without a version (from {self.offered_by})"
        return f"{needed}={self.offered} (from {self.offered_by})"


def _parse_dependency(dependency: str) -> tuple[str, str | None, str | None]:
    match = _DEPENDENCY.match(dependency.strip())
    if match is None:
        return dependency.strip(), None, None
    return match["name"], match["op"], match["version"]


def _version_satisfies(version: str | None, op: str | None, wanted: str | None) -> bool:
    if op is None or wanted is None:
        return True
    if version is None:
        return False  # libalpm: an unversioned provides never satisfies a versioned dependency
    import pyalpm

    order = pyalpm.vercmp(version, wanted)
    return {
        "=": order == 0, ">=": order >= 0, "<=": order <= 0, ">": order > 0, "<": order < 0,
    }[op]  # fmt: skip


def _offers(world: Mapping[str, _Facts]) -> dict[str, list[_Offer]]:
    """name -> every package of `world` offering it (by its own name or by provides)."""
    index: dict[str, list[_Offer]] = {}
    for package in world.values():
        index.setdefault(package.name, []).append(_Offer(package, package.version))
        for provided in package.provides:
            name, _, version = provided.partition("=")
            index.setdefault(name.strip(), []).append(_Offer(package, version.strip() or None))
    return index


def _satisfied(index: Mapping[str, list[_Offer]], dependency: str) -> bool:
    name, op, wanted = _parse_dependency(dependency)
    return any(_version_satisfies(o.version, op, wanted) for o in index.get(name, []))


def _best_offer(index: Mapping[str, list[_Offer]], name: str, prefer: set[str]) -> _Offer | None:
    offers = index.get(name, [])
    ranked = sorted(offers, key=lambda o: (o.package.name != name, o.package.name not in prefer))
    return ranked[0] if ranked else None


def _load_files(files: Sequence[Path]) -> dict[str, _Facts]:
    """Name, version, depends and provides of each package file, from its .PKGINFO.

    Read with `bsdtar --fast-read`, which stops at .PKGINFO (the first member): libalpm's
    load_pkg reads the whole archive for its file list, seconds for a large driver package,
    and this plan needs none of that (pacman -U checks the archive itself)."""
    loaded: dict[str, _Facts] = {}
    for path in files:
        facts = read_pkginfo(path)
        if facts.name in loaded:
            raise UsageError(f"{path}: a second package file for {facts.name}")
        loaded[facts.name] = facts
    return loaded


def _copy_facts(package) -> _Facts:
    """Plain values of a libalpm package (it dangles once its handle is released)."""
    return _Facts(
        name=str(package.name),
        version=str(package.version),
        depends=tuple(str(dep) for dep in package.depends),
        provides=tuple(str(item) for item in package.provides),
    )


def read_pkginfo(path: Path) -> _Facts:
    try:
        result = subprocess.run(
            ["bsdtar", "--fast-read", "-x", "-O", "-f", str(path), ".PKGINFO"],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UsageError(f"{path}: cannot load the package ({err})") from None
    values: dict[str, list[str]] = {}
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        key, equal, value = line.partition(" = ")
        if equal and not key.startswith("#"):
            values.setdefault(key.strip(), []).append(value.strip())
    if result.returncode != 0 or "pkgname" not in values or "pkgver" not in values:
        reason = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [
            "no .PKGINFO"
        ]
        raise UsageError(f"{path}: cannot load the package ({reason[0]})")
    return _Facts(
        name=values["pkgname"][0],
        version=values["pkgver"][0],
        depends=tuple(values.get("depend", ())),
        provides=tuple(values.get("provides", ())),
    )


def check_revert_set(config: Config, files: Sequence[Path]) -> list[DependencyProblem]:
    """Dependency problems of installing `files` over the installed packages. Pure: no writes.

    (1) An installed package (not in the set) whose dependency, met today, would no longer be
    met; (2) a package of the set whose dependency the new world does not meet.
    """
    if not files:
        return []
    dbpath = config.host_dbpath
    if not dbpath.is_dir():
        raise ConfigError(f"{dbpath}: no pacman database here")
    handle = _handle(config.root, dbpath)
    reverting = _load_files(files)
    installed = {facts.name: facts for facts in map(_copy_facts, handle.get_localdb().pkgcache)}
    del handle
    old_index = _offers(installed)
    new_index = _offers({**installed, **reverting})
    problems = _problems_of_dependents(installed, reverting, old_index, new_index)
    problems += _problems_of_reverted(reverting, new_index)
    return problems


def _problems_of_dependents(
    installed: Mapping[str, _Facts], reverting: Mapping[str, _Facts],
    old_index: Mapping[str, list[_Offer]], new_index: Mapping[str, list[_Offer]],
) -> list[DependencyProblem]:  # fmt: skip
    problems = []
    for package in installed.values():
        if package.name in reverting:
            continue
        for dependency in package.depends:
            if not _satisfied(old_index, dependency) or _satisfied(new_index, dependency):
                continue  # broken already (not the revert's doing), or still fine
            name = _parse_dependency(dependency)[0]
            concerned = _reverted_offering(old_index, name, reverting)
            offer = _best_offer(new_index, name, set(reverting))
            problems.append(_problem(package.name, dependency, offer, False, concerned,
                                     package.version))  # fmt: skip
    return problems


def _reverted_offering(
    old_index: Mapping[str, list[_Offer]], name: str, reverting: Mapping[str, _Facts]
) -> tuple[str, str] | None:
    for offer in old_index.get(name, []):
        if offer.package.name in reverting:
            new = reverting[offer.package.name]
            return new.name, new.version
    return None


def _problems_of_reverted(
    reverting: Mapping[str, _Facts], new_index: Mapping[str, list[_Offer]]
) -> list[DependencyProblem]:
    problems = []
    for package in reverting.values():
        for dependency in package.depends:
            if _satisfied(new_index, dependency):
                continue
            name = _parse_dependency(dependency)[0]
            offer = _best_offer(new_index, name, set())
            problems.append(_problem(package.name, dependency, offer, True,
                                     (package.name, package.version), None))  # fmt: skip
    return problems


def _problem(
    package: str, needs: str, offer: _Offer | None, in_revert: bool,
    reverted: tuple[str, str] | None, installed: str | None,
) -> DependencyProblem:  # fmt: skip
    name = _parse_dependency(needs)[0]
    offered_by = None
    if offer is not None and offer.package.name != name:
        offered_by = offer.package.name
    return DependencyProblem(
        package=package,
        needs=needs,
        offered=offer.version if offer is not None else None,
        offered_by=offered_by,
        in_revert=in_revert,
        reverted=reverted,
        installed=installed,
    )


def suggest_together(
    problems: Sequence[DependencyProblem],
    available: Mapping[str, list[str]],
    targets: Mapping[str, str] | None = None,
) -> str | None:
    """The `clp revert a=1 b=2` line that reverts what the problems need reverted too.

    `available`: versions clp can install, by package name. `targets`: the revert asked for
    (name -> version), by default the reverted packages the problems name. None when a problem
    has no fix by reverting one more package to an available version.
    """
    if not problems:
        return None
    line = dict(targets or {})
    for problem in problems:
        if problem.reverted and problem.reverted[0] not in line:
            line[problem.reverted[0]] = problem.reverted[1]
    added: dict[str, str] = {}
    for problem in problems:
        fix = _fix_for(problem, available, line)
        if fix is None or added.get(fix[0], fix[1]) != fix[1]:
            return None
        added[fix[0]] = fix[1]
    line.update(sorted(added.items()))
    return "clp revert " + " ".join(f"{name}={version}" for name, version in line.items())


def _fix_for(
    problem: DependencyProblem, available: Mapping[str, list[str]], line: Mapping[str, str]
) -> tuple[str, str] | None:
    import pyalpm

    if problem.in_revert:
        # a reverted package needs an older (or newer) version of what it depends on
        name, op, wanted = _parse_dependency(problem.needs)
        if name in line or op is None:
            return None
        fitting = [v for v in available.get(name, []) if _version_satisfies(v, op, wanted)]
        return (name, sort_versions(fitting)[0]) if fitting else None
    # an installed package needs the newer version: revert it too, to the reverted package's
    # version when it has one (split packages share it), else to its newest older version
    versions = available.get(problem.package, [])
    if problem.package in line or not versions:
        return None
    if problem.reverted and problem.reverted[1] in versions:
        return problem.package, problem.reverted[1]
    if problem.installed is None:
        return None
    older = [v for v in versions if pyalpm.vercmp(v, problem.installed) < 0]
    return (problem.package, sort_versions(older)[0]) if older else None


# ------------------------------------------------------------------------------------------------
# The commit: pacman -U
# ------------------------------------------------------------------------------------------------

# pacman takes these on the host even with --root: the generated pacman.conf leaves them out and
# the command line (or the HookDir lines written first) gives them under the root
_HOST_PATH_OPTIONS = frozenset({"RootDir", "DBPath", "CacheDir", "GPGDir", "HookDir", "LogFile"})


def pacman_lock(settings: PacmanSettings) -> Path | None:
    """pacman's lock file, when some pacman (or libalpm user) holds it or left it behind."""
    lock = settings.dbpath / "db.lck"
    return lock if lock.exists() else None


def pacman_upgrade(
    settings: PacmanSettings,
    files: Sequence[Path],
    env: Mapping[str, str] | None = None,
    timeout: float = 3600,
) -> None:
    """Install `files` with `pacman -U --noconfirm`, as pacman itself would for this system.

    Raises LockError when pacman's database is locked, OperationFailed with pacman's errors
    when it fails. A failure found before the commit (dependencies, conflicts, file conflicts,
    signatures) changed nothing; one during it (a full disk, a timeout) may have installed some
    of the files: ask installed_versions() before undoing anything.
    """
    paths = _checked_files(files)
    _run_transaction(settings, "-U", [str(path) for path in paths], env, timeout)


def pacman_remove(
    settings: PacmanSettings,
    names: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 3600,
) -> None:
    """Remove packages with `pacman -R --noconfirm` (never -dd: pacman refuses to break a
    dependency, and nothing is removed then). Errors as pacman_upgrade's."""
    for name in names:
        if not name or name.startswith("-") or "/" in name:
            raise UsageError(f"'{name}' is not a package name")
    if not names:
        raise UsageError("pacman -R: no package names given")
    _run_transaction(settings, "-R", list(names), env, timeout)


def _run_transaction(
    settings: PacmanSettings,
    operation: str,
    targets: list[str],
    env: Mapping[str, str] | None,
    timeout: float,
) -> None:
    if pacman_lock(settings) is not None:
        raise LockError(f"{settings.dbpath / 'db.lck'}: pacman's database is locked")
    with tempfile.TemporaryDirectory(prefix="clp-pacman-") as private:
        command = _pacman_command(settings, Path(private), operation) + targets
        returncode, stdout, stderr = _run_pacman(command, _pacman_environment(env), timeout)
    if returncode != 0:
        message = _failure_message(stdout, stderr)
        if "unable to lock database" in message:
            raise LockError(f"{settings.dbpath / 'db.lck'}: pacman's database is locked")
        raise OperationFailed(f"pacman {operation} failed: {message}")


def _checked_files(files: Sequence[Path]) -> list[Path]:
    if not files:
        raise UsageError("pacman -U: no package files given")
    paths = []
    for file in files:
        path = Path(file).absolute()  # never an argument pacman could take for an option
        if "://" in str(path):
            raise UsageError(f"{path}: a file name with '://' would be taken for a URL")
        if not path.is_file():
            raise UsageError(f"{path}: no such package file")
        paths.append(path)
    return paths


def _pacman_command(settings: PacmanSettings, private: Path, operation: str) -> list[str]:
    conf = _config_for_pacman(settings, private)
    command = ["pacman", operation, "--noconfirm", "--root", str(settings.root),
               "--dbpath", str(settings.dbpath), "--config", str(conf)]  # fmt: skip
    for cache_dir in settings.cache_dirs:
        command += ["--cachedir", str(cache_dir)]
    command += ["--gpgdir", str(settings.gpgdir)]
    if _is_root_slash(settings.root):
        return command
    if settings.log_file is not None:
        command += ["--logfile", str(settings.log_file)]
    return command


def _is_root_slash(root: Path) -> bool:
    return Path(root).resolve() == Path("/")


def _config_for_pacman(settings: PacmanSettings, private: Path) -> Path:
    """The --config for pacman: the real file for `/`; for another root, the same directives
    with Include lines inlined from under the root and every path option under the root.

    pacman globs Include and takes HookDir, CacheDir, GPGDir and LogFile on the host even with
    --root, so with the real file it would read the rescue system's includes (and fail on one
    missing there, such as clp's pins) and skip the target's /etc/pacman.d/hooks.
    """
    if _is_root_slash(settings.root) and settings.conf.is_file():
        return settings.conf
    lines = ["[options]", *(f"HookDir = {directory}" for directory in settings.hook_dirs)]
    section: str | None = "options"
    for entry in settings.entries:
        if entry.key == "Include":
            continue
        if entry.section == "options" and entry.key in _HOST_PATH_OPTIONS:
            continue
        if entry.section != section:
            section = entry.section
            lines.append(f"[{section}]")
        lines.append(entry.key if entry.value is None else f"{entry.key} = {entry.value}")
    generated = private / "pacman.conf"
    generated.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return generated


def _pacman_environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The caller's environment, with pacman's messages in English so its errors can be read
    (LC_MESSAGES only: hooks keep the user's character set)."""
    environment = dict(os.environ)
    if "LC_ALL" in environment:
        environment["LANG"] = environment.pop("LC_ALL")
    environment.pop("LANGUAGE", None)
    environment["LC_MESSAGES"] = "C"
    environment.update(extra or {})
    return environment


def _run_pacman(command: list[str], environment: dict[str, str], timeout: float):
    """Run pacman to the end, whatever happens to clp meanwhile: killing pacman inside its
    transaction is what breaks systems. It runs in its own session (a Ctrl-C at the terminal
    does not reach it); on timeout, Ctrl-C or SIGTERM it gets one SIGINT, which pacman obeys at
    a safe point, and clp waits for it to be done before it goes on (to undo, say)."""
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=environment, text=True, errors="replace", start_new_session=True,
        )  # fmt: skip
    except OSError as err:
        raise OperationFailed(f"cannot run pacman: {err.strerror}") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as stop:
        process.send_signal(signal.SIGINT)
        _wait_through_interrupts(process)
        if isinstance(stop, KeyboardInterrupt):
            raise
        raise OperationFailed(
            f"pacman -U did not finish within {timeout:g} s and was interrupted"
        ) from None
    return process.returncode, stdout, stderr


def _wait_through_interrupts(process: subprocess.Popen) -> None:
    while True:
        try:
            process.communicate()
            return
        except KeyboardInterrupt:
            continue  # a second Ctrl-C must not leave pacman running on its own


def _failure_message(stdout: str, stderr: str) -> str:
    errors = [line[len("error:") :].strip() for line in stderr.splitlines()
              if line.startswith("error:")]  # fmt: skip
    if not errors:
        errors = [line.strip() for line in stderr.splitlines() if line.strip()][-2:]
    details = [line.strip().removeprefix(":: ") for line in stdout.splitlines() if _is_detail(line)]
    if len(details) > MAX_DETAIL_LINES:
        hidden = len(details) - MAX_DETAIL_LINES
        details = details[:MAX_DETAIL_LINES] + [f"and {hidden} more"]
    return "; ".join(errors + details) or "pacman exited with an error and said nothing"


def _is_detail(line: str) -> bool:
    """pacman's stdout lines that say why a transaction failed (not progress or questions)."""
    line = line.strip()
    if " exists in filesystem" in line:
        return True
    return line.startswith(":: ") and not line.endswith("...") and "? [" not in line
