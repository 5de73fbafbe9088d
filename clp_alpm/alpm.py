"""Read-only questions to libalpm about the target system (through pyalpm)."""

from __future__ import annotations

from .config import Config


def installed_versions(config: Config, names: list[str]) -> dict[str, str | None]:
    """Installed version of each package name (None when not installed), from the local db."""
    dbpath = config.host_dbpath
    if not (dbpath / "local").is_dir():
        return {name: None for name in names}
    import pyalpm  # lazy: libalpm is only loaded when a package question is asked

    handle = pyalpm.Handle(str(config.root), str(dbpath))
    localdb = handle.get_localdb()
    versions: dict[str, str | None] = {}
    for name in names:
        package = localdb.get_pkg(name)
        versions[name] = str(package.version) if package is not None else None
    return versions
