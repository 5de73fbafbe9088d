"""Package reverts: bring packages back to earlier versions through pacman, pinned, undoable.

pyalpm does the thinking (installed versions, dependencies of the planned set); the commit is
one `pacman -U` of the planned files, so that every hook directory, pacman's SigLevels and its
own questions apply as for any other transaction (docs/ARCHITECTURE.md says why not pyalpm).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clp_alpm.errors import UsageError
from clp_alpm.ops import steps
from clp_alpm.ops.commit import commit
from clp_alpm.ops.session import LOG_TAG, Session
from clp_alpm.ops.steps import OperationKind, StepKind
from clp_alpm.store.journal import Step
from clp_alpm.store.records import RevertRecord, RevertState
from clp_alpm.system import depcheck, pins, pkgsource
from clp_alpm.system.localdb import installed_versions
from clp_alpm.system.pacman import checked_pacman_options, refuse_if_pacman_runs
from clp_alpm.system.timeouts import timeouts_of

TYPE_CHECKING = False  # no dataclasses (inspect, ast) at run time: see clp_alpm/plaindata.py
if TYPE_CHECKING:
    from dataclasses import dataclass
else:
    from clp_alpm.plaindata import dataclass


@dataclass(frozen=True)
class Request:
    """One package the user wants back: an exact version, or a file/URL, or None (ask/pick)."""

    name: str
    version: str | None = None
    given: str | None = None  # a package file path or URL from the command line
    until: str | None = None  # the pin is lifted once a repository offers this version


@dataclass(frozen=True)
class Choice:
    name: str
    installed: str
    available: pkgsource.Available


@dataclass(frozen=True)
class VersionList:
    name: str
    installed: str
    versions: tuple[pkgsource.Available, ...]
    searched: tuple[str, ...]  # where clp looked, for "not found" messages
    problems: tuple[str, ...]  # archives that could not be read

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "installed": self.installed,
            "versions": [
                {"version": a.version, "source": a.source, "location": a.location}
                for a in self.versions
            ],
            "searched": list(self.searched),
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class PackageCopy:
    """A checked package file: where the plan's pacman finds it (`path`), where it is while
    planning (`checked`), and the steps that put it at `path` (none when it is there now)."""

    path: Path
    checked: Path
    origin: str  # "cache (DIR)", "archive (URL)", "file", "url", "the installed files"
    steps: tuple[Step, ...] = ()
    warning: str | None = None  # what the user should know of this copy


@dataclass(frozen=True)
class RevertPlan:
    choices: tuple[Choice, ...]
    files: tuple[Path, ...]
    steps: tuple[Step, ...]
    pins_included: bool
    rollback_copies: tuple[str, ...]  # for each choice: where the way back comes from
    no_way_back: tuple[str, ...]  # "NAME VERSION: why" of every version with no copy anywhere
    warnings: tuple[str, ...] = ()  # of the copies made

    def to_dict(self) -> dict[str, Any]:
        return {
            "packages": [
                {
                    "name": c.name,
                    "from": c.installed,
                    "to": c.available.version,
                    "source": c.available.describe(),
                    "rollback_copy": copy,
                }  # fmt: skip
                for c, copy in zip(self.choices, self.rollback_copies, strict=True)
            ],
            "steps": [step.description for step in self.steps],
            "pins_included": self.pins_included,
            "no_way_back": list(self.no_way_back),
            "warnings": list(self.warnings),
        }


# -- what can be had -----------------------------------------------------------------------


def list_versions(
    session: Session,
    name: str,
    given: str | None = None,
    on_cached: Callable[[VersionList], None] | None = None,
) -> VersionList:
    """Every version of `name` clp can get, newest first: cache dirs, archives, a given file.

    What the caches hold is known at once: `on_cached` gets it before any server is asked
    (each server then says it is being asked, and waits at most clp.conf's timeouts)."""
    installed, cached, searched = _cached(session, name)
    if on_cached is not None:
        on_cached(_listing(name, installed, cached, searched, []))
    archived, problems = ask_archives(session, name)
    found = cached + archived
    searched += [f"archive {server}" for server in session.config.archive_server_urls]
    if given is not None:
        found.append(pkgsource.given_version(given, timeouts_of(session.config)))
        searched.append(given)
    return _listing(name, installed, found, searched, problems)


def _cached(session: Session, name: str) -> tuple[str, list[pkgsource.Available], list[str]]:
    """The installed version of `name`, the files of it pacman's caches hold, and the places
    searched; UsageError when it is not installed."""
    installed = installed_versions(session.config.host_dbpath, [name])[name]
    if installed is None:
        raise UsageError(f"package '{name}' is not installed")
    settings = session.pacman()
    cached = pkgsource.cache_versions(settings.cache_dirs, name, session.config.architecture)
    return installed, cached, [f"cache {path}" for path in settings.cache_dirs]


def _listing(
    name: str,
    installed: str,
    found: list[pkgsource.Available],
    searched: list[str],
    problems: list[str],
) -> VersionList:
    versions = [a for a in pkgsource.newest_first(found) if a.name == name]
    return VersionList(name, installed, tuple(versions), tuple(searched), tuple(problems))


def ask_archives(session: Session, name: str) -> tuple[list[pkgsource.Available], list[str]]:
    """The versions of `name` each ArchiveServer lists, saying which server is being asked;
    and a line for each server that could not be read."""
    config = session.config
    found: list[pkgsource.Available] = []
    problems: list[str] = []
    waits = timeouts_of(config)
    for server in config.archive_server_urls:
        session.events.waiting(f"asking {server} for the versions of {name}...")
        versions, trouble = pkgsource.archive_versions([server], name, config.architecture, waits)
        found += versions
        problems += trouble
    return found, problems


def pick_default(versions: VersionList) -> pkgsource.Available | None:
    """The newest version older than the installed one (what --noconfirm takes)."""
    from pyalpm import vercmp

    older = [a for a in versions.versions if vercmp(a.version, versions.installed) < 0]
    return older[0] if older else None


# -- planning ------------------------------------------------------------------------------


def plan_revert(
    session: Session,
    requests: Sequence[Request],
    *,
    allow_upgrade: bool = False,
    reason: str = "reverted with clp",
    patch: str | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
    no_rollback_copy: bool = False,
    pacman_options: Sequence[str] = (),
) -> RevertPlan:
    """Choose the versions, fetch them, check signatures and dependencies, and find the way
    back: a copy of each installed version in a cache or an archive, or else one made from
    its installed files. Nothing on the system changes: downloads are staged in StateDir, and
    the plan's first steps copy into pacman's cache what the revert installs and replaces.

    `no_rollback_copy`: a version with no copy anywhere does not stop the revert (it cannot be
    rolled back then; `no_way_back` says which). `pacman_options` (given after `--`) go to
    its pacman, when each is one clp can pass on."""
    options = checked_pacman_options(pacman_options)
    refuse_if_pacman_runs(session.pacman().dbpath)
    choices = [_choose(session, request, allow_upgrade) for request in requests]
    copies = [_fetch_checked(session, choice.available, progress) for choice in choices]
    files = [copy.path for copy in copies]
    problems = depcheck.check_revert_set(session.config, [copy.checked for copy in copies])
    if problems:
        targets = {c.name: c.available.version for c in choices}
        hint = depcheck.suggest_together(problems, _cached_by_name(session, problems), targets)
        raise UsageError(
            "the revert would break dependencies: "
            + "; ".join(problem.describe() for problem in problems)
            + (f". Revert them together: {hint}" if hint else "")
        )
    targets = {c.name: c.available.version for c in choices}
    previous = {c.name: c.installed for c in choices}
    # The way back must exist before the way there is taken: the installed versions' files.
    backs: dict[str, PackageCopy] = {}
    no_way_back: list[str] = []
    for choice in choices:
        back, searched = find_copy(session, choice.name, choice.installed, progress, rebuild=True)
        if back is not None:
            backs[choice.name] = back
        elif no_rollback_copy:
            no_way_back.append(f"{choice.name} {choice.installed}: {searched}")
        else:
            raise UsageError(
                f"{choice.name} {choice.installed} {searched}: without a copy of it clp could "
                "not undo this revert; add an ArchiveServer to /etc/CLP/clp.conf, or run "
                "again with --no-rollback-copy to revert without a way back"
            )
    previous_files = {name: str(back.path) for name, back in backs.items()}
    current_pins = pins.read_pins(session.config)  # a pins file clp cannot read stops us now
    new_pins = [
        pins.Pin(c.name, c.available.version, r.until, reason)
        for c, r in zip(choices, requests, strict=True)
    ]
    pin_list = [pin.__dict__ for pin in new_pins]
    packages = [
        {"name": c.name, "from": c.installed, "to": c.available.version,
         "source": c.available.describe(), "rollback_copy": c.name in backs}
        for c in choices
    ]  # fmt: skip
    names = ", ".join(f"{c.name} {c.installed} -> {c.available.version}" for c in choices)
    record_id = session.state.next_revert_id()
    copy_steps = [step for copy in [*copies, *backs.values()] for step in copy.steps]
    steps_ = (
        *copy_steps,
        steps.pacman_upgrade(
            files=[str(f) for f in files],
            previous=previous,
            targets=targets,
            previous_files=previous_files,
            moves=names,
            no_way_back=bool(no_way_back),
            pacman_options=options,
        ),
        steps.pin(pin_list, f"pin {', '.join(targets)} in {pins.PINS_FILE}"),
        steps.record_revert(record_id, {"packages": packages, "patch": patch}),
    )
    wanted = {pin.name for pin in new_pins}
    # rendered now to refuse bad names before anything changes
    pins.render_pins([p for p in current_pins if p.name not in wanted] + new_pins)
    included = pins.pins_included(session.config, session.config.pacman_conf)
    rollback_copies = tuple(
        backs[c.name].origin if c.name in backs else "none" for c in choices
    )  # fmt: skip
    warnings = tuple(copy.warning for copy in backs.values() if copy.warning)
    return RevertPlan(
        tuple(choices), tuple(files), steps_, included, rollback_copies, tuple(no_way_back),
        warnings,
    )  # fmt: skip


def _cached_by_name(
    session: Session, problems: Sequence[depcheck.DependencyProblem]
) -> dict[str, list[str]]:
    """Versions of the packages the problems name that the cache holds, for the hint."""
    settings = session.pacman()
    names = {problem.package for problem in problems}
    return {
        name: [
            a.version
            for a in pkgsource.cache_versions(
                settings.cache_dirs, name, session.config.architecture
            )
        ]  # fmt: skip
        for name in names
    }


def _choose(session: Session, request: Request, allow_upgrade: bool) -> Choice:
    from pyalpm import vercmp

    versions = _cache_only(session, request) or list_versions(session, request.name, request.given)
    if request.given is not None:
        wanted = pkgsource.given_version(request.given, timeouts_of(session.config)).version
    elif request.version is not None:
        wanted = request.version
    else:
        default = pick_default(versions)
        if default is None:
            raise UsageError(
                f"no version of {request.name} older than {versions.installed} was found "
                f"(searched: {', '.join(versions.searched) or 'nowhere'})"
            )
        wanted = default.version
    match = next((a for a in versions.versions if a.version == wanted), None)
    if match is None:
        where = ", ".join(versions.searched) or "nowhere"
        extra = f"; {'; '.join(versions.problems)}" if versions.problems else ""
        raise UsageError(f"{request.name} {wanted} was not found (searched: {where}{extra})")
    order = vercmp(wanted, versions.installed)
    if order == 0:
        raise UsageError(f"{request.name} {wanted} is already installed")
    if order > 0 and not allow_upgrade:
        raise UsageError(
            f"{request.name} {wanted} is newer than the installed {versions.installed}: "
            "that is an upgrade, not a revert (use --allow-upgrade if you mean it)"
        )
    return Choice(request.name, versions.installed, match)


def _cache_only(session: Session, request: Request) -> VersionList | None:
    """The listing of the caches alone when it holds the exact version asked for: no archive
    is asked then (the cache is the best source of a version, and the one newest_first keeps);
    None when the whole listing is needed (no version given, or not in the caches)."""
    if request.version is None or request.given is not None:
        return None
    installed, cached, searched = _cached(session, request.name)
    listing = _listing(request.name, installed, cached, searched, [])
    return listing if any(a.version == request.version for a in listing.versions) else None


def _fetch_checked(
    session: Session,
    available: pkgsource.Available,
    progress: Callable[[str, int, int | None], None] | None,
) -> PackageCopy:
    """The package file, its signature checked as pacman.conf asks, and the step that copies
    it into pacman's cache unless it is there. A download is checked in a private staging dir
    and copied by that step only: an unverified file must never sit in the cache, where the
    next run would take it for a local (more trusted) one."""
    settings = session.pacman()
    remote = available.source in ("archive", "url")
    name = available.location.rsplit("/", 1)[-1]
    report = (lambda done, total: progress(name, done, total)) if progress else None
    where = Path(session.incoming()) if remote else settings.cache_dirs[0]
    path = pkgsource.fetch(available, where, report, timeouts_of(session.config))
    # pacman merges SigLevel, then the file-specific line, word by word from left to right
    specific = settings.remote_file_siglevel if remote else settings.local_file_siglevel
    setting = "RemoteFileSigLevel" if remote else "LocalFileSigLevel"
    level = f"{settings.siglevel} {specific}".strip()
    pkgsource.check_package_signature(path, level, settings.gpgdir, setting=setting)
    origin = available.describe()
    if available.source == "cache":
        return PackageCopy(path, path, origin)
    dest = settings.cache_dirs[0] / path.name
    digest = pkgsource.sha256_of(path)
    if os.path.lexists(dest) and (not dest.is_file() or pkgsource.sha256_of(dest) != digest):
        raise UsageError(f"{dest} already exists with other content: move it away first")
    signed = os.path.lexists(f"{path}.sig")
    step = steps.cache_package(str(path), str(dest), pkgsource.sha256_of(path), signed)
    return PackageCopy(dest, path, origin, (step,))


def find_copy(
    session: Session,
    name: str,
    version: str,
    progress: Callable[[str, int, int | None], None] | None = None,
    rebuild: bool = False,
) -> tuple[PackageCopy | None, str]:
    """A checked file of `name` `version`: from the cache, else an archive, else (`rebuild`,
    for the installed version) made from the installed files. (None, why) when there is none:
    "is in no package cache or archive (searched: ...)[ and cannot be made ...]"."""
    settings = session.pacman()
    arch = session.config.architecture
    for available in pkgsource.cache_versions(settings.cache_dirs, name, arch):
        if available.version == version:  # the cache first: no archive is asked then
            return _fetch_checked(session, available, progress), ""
    archived, problems = ask_archives(session, name)
    for available in archived:
        if available.version == version:
            return _fetch_checked(session, available, progress), ""
    servers = session.config.archive_server_urls
    searched = [str(path) for path in settings.cache_dirs] + list(servers)
    extra = f"; {'; '.join(problems)}" if problems else ""
    why = f"is in no package cache or archive (searched: {', '.join(searched)}{extra})"
    if not rebuild:
        return None, why
    try:
        return _rebuilt_copy(session, name, version), ""
    except UsageError as err:
        return None, f"{why} and cannot be made from the installed files ({err.message})"


def _rebuilt_copy(session: Session, name: str, version: str) -> PackageCopy:
    """The step that makes a package file of the installed `name` `version` in the cache;
    UsageError when the files or pacman's LocalFileSigLevel do not allow it."""
    settings = session.pacman()
    level = f"{settings.siglevel} {settings.local_file_siglevel}".strip()
    if pkgsource.package_siglevel(level, "LocalFileSigLevel") == "Required":
        raise UsageError("pacman's LocalFileSigLevel requires a signature, which it cannot have")
    from clp_alpm.system import repackage  # (and tarfile) only when a copy must be made

    config = session.config
    installed = repackage.installed_package(config.root, config.host_dbpath, name, version)
    dest = settings.cache_dirs[0] / installed.filename
    if os.path.lexists(dest):
        raise UsageError(f"{dest} is in the way")
    step = steps.rebuild_package(name, version, str(dest))
    warning = None
    if installed.changed_backup:
        warning = (
            f"the copy of {name} {version} made from its files holds your changes to "
            f"{', '.join(installed.changed_backup)}: after a rollback, pacman takes them for "
            "the package's own, and a later upgrade replaces them without a .pacnew"
        )
    return PackageCopy(dest, dest, "the installed files", (step,), warning)


def version_copy(session: Session, name: str, version: str, hint: str) -> PackageCopy:
    """A checked file of `name` `version` (see find_copy); UsageError with the places searched
    and `hint`, what the user can do, when there is none."""
    installed = installed_versions(session.config.host_dbpath, [name])[name]
    copy, why = find_copy(session, name, version, rebuild=installed == version)
    if copy is None:
        raise UsageError(f"{name} {version} {why}: {hint}")
    return copy


# -- committing ----------------------------------------------------------------------------


def revert(session: Session, plan: RevertPlan) -> RevertRecord:
    revert_id = plan.steps[-1].args["id"]
    upgrade = next(step for step in plan.steps if step.kind == StepKind.PACMAN_UPGRADE)
    session.log.write(LOG_TAG, f"revert {revert_id}: {upgrade.description}")
    commit(session, OperationKind.REVERT, revert_id, plan.steps)
    record = session.state.get_revert(revert_id)
    assert record is not None
    return record


def find_revert(session: Session, key: str) -> RevertRecord | None:
    """A revert by its id (R3), or the newest applied revert of a package name."""
    record = session.state.get_revert(key)
    if record is not None:
        return record
    applied = [
        r for r in session.state.list_reverts()
        if r.state == RevertState.APPLIED and any(p["name"] == key for p in r.packages)
    ]  # fmt: skip
    return applied[-1] if applied else None


def rollback_revert(
    session: Session, record: RevertRecord, plan: Sequence[Step] | None = None
) -> RevertRecord:
    """Roll back `record` by `plan` (planned now when not given)."""
    if plan is None:
        plan = plan_revert_rollback(session, record)
    session.log.write(LOG_TAG, f"rollback of revert {record.id}")
    commit(session, OperationKind.REVERT_ROLLBACK, record.id, plan)
    result = session.state.get_revert(record.id)
    assert result is not None
    return result


def plan_revert_rollback(session: Session, record: RevertRecord) -> tuple[Step, ...]:
    """Steps that bring a revert's packages back to the versions they had before it."""
    if record.state != RevertState.APPLIED:
        raise UsageError(f"revert {record.id} is {record.state}, not applied")
    refuse_if_pacman_runs(session.pacman().dbpath)
    names = [p["name"] for p in record.packages]
    _refuse_if_reverted_since(session, record, names)
    installed = installed_versions(session.config.host_dbpath, names)
    for package in record.packages:
        if installed[package["name"]] != package["to"]:
            now = installed[package["name"]] or "not installed"
            raise UsageError(
                f"{package['name']} is {now} now, not the {package['to']} that {record.id} "
                f"installed: {record.id} has nothing left to roll back"
            )
    copies = [version_copy(session, p["name"], p["from"], _rollback_hint(record, p))
              for p in record.packages]  # fmt: skip
    files = [str(copy.path) for copy in copies]
    targets = {p["name"]: p["from"] for p in record.packages}
    previous = {p["name"]: p["to"] for p in record.packages}
    backs = {p["name"]: version_copy(session, p["name"], p["to"], _rollback_hint(record, p))
             for p in record.packages}  # fmt: skip
    previous_files = {name: str(copy.path) for name, copy in backs.items()}
    moves = ", ".join(f"{n} {previous[n]} -> {targets[n]}" for n in targets)
    copy_steps = [step for copy in [*copies, *backs.values()] for step in copy.steps]
    return (
        *copy_steps,
        steps.unpin(names),
        steps.pacman_upgrade(
            files=files,
            previous=previous,
            targets=targets,
            previous_files=previous_files,
            moves=moves,
        ),
        steps.record_revert_rolled_back(record.id),
    )


def _rollback_hint(record: RevertRecord, package: dict[str, Any]) -> str:
    name, version = package["name"], package["from"]
    lost = " (it was made with --no-rollback-copy)" if package.get("rollback_copy") is False else ""
    return (
        f"{record.id} cannot be rolled back without it{lost}; put {name}-{version}-*.pkg.tar.* "
        "in the package cache or add an ArchiveServer to /etc/CLP/clp.conf"
    )


def _refuse_if_reverted_since(session: Session, record: RevertRecord, names: list[str]) -> None:
    later = [
        r.id for r in session.state.list_reverts()
        if r.state == RevertState.APPLIED and r.created_at > record.created_at
        and any(p["name"] in names for p in r.packages)
    ]  # fmt: skip
    if later:
        raise UsageError(
            f"{', '.join(later)} reverted the same packages after {record.id}: "
            f"roll back {later[-1]} first"
        )
