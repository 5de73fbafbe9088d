"""libalpm opened on the target's databases, for what a directory listing cannot answer.

Loading libalpm costs about 10 ms, so nothing on the hook path imports this module: the hooks
read versions from the listing (`localdb.py`).
"""

from __future__ import annotations

import os
from typing import Any

from clp_alpm.config import Config
from clp_alpm.errors import ConfigError
from clp_alpm.paths import is_dir

TYPE_CHECKING = False  # no dataclasses (inspect, ast) at run time: see clp_alpm/plaindata.py
if TYPE_CHECKING:
    from dataclasses import dataclass

    from _typeshed import StrPath
else:
    from clp_alpm.plaindata import dataclass


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    depends: tuple[str, ...]
    provides: tuple[str, ...]
    required_by: tuple[str, ...]


def alpm_handle(root: StrPath, dbpath: StrPath) -> Any:
    """A libalpm handle on `root` and its database (a `pyalpm.Handle`: pyalpm has no types).

    Raises ConfigError when libalpm cannot open the database.
    """
    import pyalpm  # lazy: libalpm is only loaded when a package question is asked

    try:
        return pyalpm.Handle(os.fspath(root), os.fspath(dbpath))
    except pyalpm.error as err:
        raise ConfigError(f"{dbpath}: cannot open the pacman database ({err.args[0]})") from None


def installed_package(config: Config, name: str) -> InstalledPackage | None:
    """The installed package `name`, or None."""
    dbpath = config.host_dbpath
    if not is_dir(os.path.join(dbpath, "local")):
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
