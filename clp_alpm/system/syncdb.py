"""pacman's sync databases, read through libalpm as pacman's last `-Sy` left them; no network."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from clp_alpm.config import Config
from clp_alpm.system.libalpm import alpm_handle
from clp_alpm.system.pacmanconf import PacmanSettings


def sync_versions(config: Config, settings: PacmanSettings, name: str) -> list[str]:
    """Versions of `name` in the sync databases already on disk, newest first. No network.

    The databases are read as pacman left them after its last -Sy (which verified them), so
    no signature level is set here.
    """
    import pyalpm

    if not (settings.dbpath / "sync").is_dir() or not settings.repos:
        return []
    handle = alpm_handle(config.root, settings.dbpath)
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
