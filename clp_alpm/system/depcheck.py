"""Planning a revert: does a set of package files leave every dependency satisfied?

The installed packages come from libalpm, the planned ones from their .PKGINFO; the check
follows libalpm's rules (provides, versioned dependencies, vercmp). Pure: nothing here writes.
pyalpm plans, it never commits: the commit is `pacman -U` of the same files (`system/pacman.py`
says why).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from clp_alpm.config import Config
from clp_alpm.errors import ConfigError, UsageError
from clp_alpm.paths import is_dir
from clp_alpm.system.libalpm import alpm_handle

TYPE_CHECKING = False  # no dataclasses (inspect, ast) at run time: see clp_alpm/plaindata.py
if TYPE_CHECKING:
    from dataclasses import dataclass
else:
    from clp_alpm.plaindata import dataclass

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

    order: int = pyalpm.vercmp(version, wanted)
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


def _load_files(files: Sequence[Path], meanwhile: Callable[[], None]) -> dict[str, _Facts]:
    """Name, version, depends and provides of each package file, from its .PKGINFO; while
    bsdtar reads them, `meanwhile` runs (libalpm loads the local database).

    Read with `bsdtar --fast-read`, which stops at .PKGINFO (the first member): libalpm's
    load_pkg reads the whole archive for its file list, seconds for a large driver package,
    and this plan needs none of that (pacman -U checks the archive itself)."""
    readers = [(path, _start_reading(path)) for path in files]
    loaded: dict[str, _Facts] = {}
    try:
        meanwhile()
        for path, reader in readers:
            facts = _finish_reading(path, reader)
            if facts.name in loaded:
                raise UsageError(f"{path}: a second package file for {facts.name}")
            loaded[facts.name] = facts
    finally:
        for _, reader in readers:  # what an error left running: ended, and waited for
            if isinstance(reader, subprocess.Popen) and reader.returncode is None:
                reader.kill()
                reader.communicate()
    return loaded


def _copy_facts(package: Any) -> _Facts:
    """Plain values of a libalpm package (a `pyalpm.Package`, which dangles once its handle is
    released)."""
    return _Facts(
        name=str(package.name),
        version=str(package.version),
        depends=tuple(str(dep) for dep in package.depends),
        provides=tuple(str(item) for item in package.provides),
    )


def read_pkginfo(path: Path) -> _Facts:
    return _finish_reading(path, _start_reading(path))


def _start_reading(path: Path) -> subprocess.Popen[bytes] | UsageError:
    try:
        return subprocess.Popen(
            ["bsdtar", "--fast-read", "-x", "-O", "-f", str(path), ".PKGINFO"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
    except OSError as err:
        return UsageError(f"{path}: cannot load the package ({err})")


def _finish_reading(path: Path, reader: subprocess.Popen[bytes] | UsageError) -> _Facts:
    if isinstance(reader, UsageError):
        raise reader
    try:
        stdout, stderr = reader.communicate(timeout=120)
    except subprocess.TimeoutExpired as err:
        reader.kill()
        reader.communicate()
        raise UsageError(f"{path}: cannot load the package ({err})") from None
    values: dict[str, list[str]] = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        key, equal, value = line.partition(" = ")
        if equal and not key.startswith("#"):
            values.setdefault(key.strip(), []).append(value.strip())
    if reader.returncode != 0 or "pkgname" not in values or "pkgver" not in values:
        reason = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no .PKGINFO"]
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
    if not is_dir(dbpath):
        raise ConfigError(f"{dbpath}: no pacman database here")
    installed: dict[str, _Facts] = {}

    def read_installed() -> None:
        handle = alpm_handle(config.root, dbpath)
        installed.update((facts.name, facts)
                         for facts in map(_copy_facts, handle.get_localdb().pkgcache))  # fmt: skip

    reverting = _load_files(files, read_installed)
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

    from clp_alpm.system.syncdb import sort_versions  # (and the sync code) for a failed plan

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
