"""pacman's sync databases: as pacman's last `-Sy` left them, and clp's private copy.

The private copy (`StateDir/sync`, laid out as a DBPath) is what pacman-contrib's checkupdates
keeps: clp refreshes it with `pacman -Sy --dbpath` so that it can tell whether a repository now
offers a version without refreshing pacman's own databases behind the administrator's back (a
`-Sy` without the `-u` that follows it would leave a partial upgrade waiting to happen).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from clp_alpm.config import Config
from clp_alpm.system.libalpm import alpm_handle
from clp_alpm.system.pacman import pacman_refresh
from clp_alpm.system.pacmanconf import PacmanSettings

PRIVATE_DBPATH = "sync"  # under StateDir
REFRESH_TIMEOUT = 120.0  # seconds for the whole `pacman -Sy`; pacman drops a stalled mirror
_WORK_PREFIX = "refresh-"


def sync_versions(config: Config, settings: PacmanSettings, name: str) -> list[str]:
    """Versions of `name` in the sync databases already on disk, newest first. No network."""
    return offered_versions(config, settings, [name], [settings.dbpath]).get(name, [])


def offered_versions(
    config: Config, settings: PacmanSettings, names: Iterable[str], dbpaths: Sequence[Path]
) -> dict[str, list[str]]:
    """The versions of each of `names` that the sync databases under each DBPath of `dbpaths`
    offer, newest first (a name none offers is left out). No network.

    The databases are read as pacman left them after the `-Sy` that verified them, so no
    signature level is set here. A database that is missing or unreadable offers nothing.
    """
    import pyalpm

    wanted = list(dict.fromkeys(names))
    found: dict[str, list[str]] = {}
    for dbpath in dbpaths:
        present = [r for r in settings.repos if os.path.isfile(dbpath / "sync" / f"{r}.db")]
        if not present or not wanted:
            continue
        handle = alpm_handle(config.root, dbpath)
        for repo in present:
            try:
                database = handle.register_syncdb(repo, 0)
                packages = [(name, database.get_pkg(name)) for name in wanted]
            except pyalpm.error:
                continue  # an unreadable database offers nothing; pacman -Sy will say why
            for name, package in packages:
                if package is not None:
                    versions = found.setdefault(name, [])
                    if str(package.version) not in versions:
                        versions.append(str(package.version))
    return {name: sort_versions(versions) for name, versions in found.items()}


def sort_versions(versions: Sequence[str]) -> list[str]:
    """Newest first, by pacman's vercmp."""
    import pyalpm

    return sorted(versions, key=functools.cmp_to_key(pyalpm.vercmp), reverse=True)


def private_dbpath(config: Config) -> Path:
    """The DBPath of clp's private copy of the sync databases (host path)."""
    return Path(config.host_in_state_dir(PRIVATE_DBPATH))


def refresh_private_copy(
    config: Config, settings: PacmanSettings, timeout: float = REFRESH_TIMEOUT
) -> Path:
    """Bring clp's private copy of the sync databases up to date; returns its DBPath.

    It starts from whichever is newer of each database, pacman's or the copy's, so an
    unchanged repository is not downloaded again; `pacman -Sy --dbpath` then runs on a work
    directory of its own (with its own lock: two clps may refresh at once, and pacman may run),
    and the databases it leaves replace the copy's one by one, each whole. pacman's own
    databases are only read. Raises OperationFailed when pacman fails or times out (the copy is
    then as it was).
    """
    private = private_dbpath(config)
    if not settings.repos:
        return private
    (private / "sync").mkdir(parents=True, exist_ok=True, mode=0o700)
    _remove_stale_work(private, timeout)
    with tempfile.TemporaryDirectory(prefix=_WORK_PREFIX, dir=private) as work_name:
        work = Path(work_name)
        (work / "sync").mkdir()
        local = settings.dbpath / "local"
        if local.is_dir():
            (work / "local").symlink_to(local)
        for repo in settings.repos:
            _seed(repo, [settings.dbpath / "sync", private / "sync"], work / "sync")
        pacman_refresh(settings, work, timeout)
        for repo in settings.repos:
            for name in (f"{repo}.db", f"{repo}.db.sig"):
                if (work / "sync" / name).is_file():
                    os.replace(work / "sync" / name, private / "sync" / name)
    return private


def _seed(repo: str, sources: Sequence[Path], target: Path) -> None:
    """Copy the newest `repo.db` of `sources` (and its signature), times kept: pacman then
    asks the mirror only for a newer one."""
    candidates = [d for d in sources if (d / f"{repo}.db").is_file()]
    if not candidates:
        return
    newest = max(candidates, key=lambda d: (d / f"{repo}.db").stat().st_mtime_ns)
    for name in (f"{repo}.db", f"{repo}.db.sig"):
        if (newest / name).is_file():
            shutil.copy2(newest / name, target / name)


def _remove_stale_work(private: Path, timeout: float) -> None:
    """Work directories a killed clp left behind (older than any refresh can last)."""
    limit = time.time() - 2 * timeout
    for entry in private.glob(f"{_WORK_PREFIX}*"):
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink() and entry.stat().st_mtime < limit:
                shutil.rmtree(entry)
