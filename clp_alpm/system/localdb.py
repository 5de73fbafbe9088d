"""pacman's local database: which version of each package is installed, and what it needs.

libalpm keeps one directory per installed package, `DBPath/local/NAME-PKGVER-PKGREL` (with the
epoch, `NAME-EPOCH:PKGVER-PKGREL`); pkgver and pkgrel never contain '-', so libalpm itself
splits the name at the last two dashes. `installed_versions` reads that directory listing: it
answers what loading libalpm (about 10 ms) would, and the hooks that ask it run on every pacman
transaction and must start fast. What a listing cannot tell (dependencies, provides, reverse
dependencies) is read through libalpm, loaded only when such a question is asked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from clp_alpm.config import Config
from clp_alpm.errors import ConfigError

# typing costs ~4 ms to import and the hooks start on every transaction: names for type
# checkers only (annotations are strings here)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def installed_versions(dbpath: Path, names: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each name (None when not installed), from the local db at `dbpath`
    (a host path: `Config.host_dbpath`)."""
    wanted = list(names)
    versions: dict[str, str] = {}
    try:
        with os.scandir(Path(dbpath) / "local") as entries:
            for entry in entries:  # as libalpm: directories only, the first of a name wins
                parts = entry.name.rsplit("-", 2)
                if len(parts) == 3 and all(parts) and entry.is_dir(follow_symlinks=False):
                    versions.setdefault(parts[0], f"{parts[1]}-{parts[2]}")
    except FileNotFoundError:
        return {name: None for name in wanted}
    except OSError as err:
        raise ConfigError(f"{dbpath}: cannot read the pacman database ({err.strerror})") from None
    return {name: versions.get(name) for name in wanted}


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    depends: tuple[str, ...]
    provides: tuple[str, ...]
    required_by: tuple[str, ...]


def alpm_handle(root: Path, dbpath: Path) -> Any:
    """A libalpm handle on `root` and its database (a `pyalpm.Handle`: pyalpm has no types).

    Raises ConfigError when libalpm cannot open the database.
    """
    import pyalpm  # lazy: libalpm is only loaded when a package question is asked

    try:
        return pyalpm.Handle(str(root), str(dbpath))
    except pyalpm.error as err:
        raise ConfigError(f"{dbpath}: cannot open the pacman database ({err.args[0]})") from None


def installed_package(config: Config, name: str) -> InstalledPackage | None:
    """The installed package `name`, or None."""
    dbpath = config.host_dbpath
    if not (dbpath / "local").is_dir():
        return None
    package = alpm_handle(config.root, dbpath).get_localdb().get_pkg(name)
    if package is None:
        return None
    return InstalledPackage(
        name=str(package.name),
        version=str(package.version),
        depends=tuple(str(dep) for dep in package.depends),
        provides=tuple(str(item) for item in package.provides),
        required_by=tuple(sorted(str(item) for item in package.compute_requiredby())),
    )
