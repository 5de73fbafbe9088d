"""pacman's local database: which version of each package is installed, and what it needs.

libalpm keeps one directory per installed package, `DBPath/local/NAME-PKGVER-PKGREL` (with the
epoch, `NAME-EPOCH:PKGVER-PKGREL`); pkgver and pkgrel never contain '-', so libalpm itself
splits the name at the last two dashes. `installed_versions` reads that directory listing: it
answers what loading libalpm (about 10 ms) would, and the hooks that ask it run on every pacman
transaction and must start fast. What a listing cannot tell (dependencies, provides, reverse
dependencies) is read through libalpm (`libalpm.py`), loaded only when such a question is asked.
"""

from __future__ import annotations

import os

from clp_alpm.errors import ConfigError

TYPE_CHECKING = False  # the hooks' path: no collections at run time
if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed import StrPath


def installed_versions(dbpath: StrPath, names: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each name (None when not installed), from the local db at `dbpath`
    (a host path: `Config.host_dbpath`)."""
    wanted = list(names)
    versions: dict[str, str] = {}
    try:
        with os.scandir(os.path.join(dbpath, "local")) as entries:
            for entry in entries:  # as libalpm: directories only, the first of a name wins
                parts = entry.name.rsplit("-", 2)
                if len(parts) == 3 and all(parts) and entry.is_dir(follow_symlinks=False):
                    versions.setdefault(parts[0], f"{parts[1]}-{parts[2]}")
    except FileNotFoundError:
        return {name: None for name in wanted}
    except OSError as err:
        raise ConfigError(f"{dbpath}: cannot read the pacman database ({err.strerror})") from None
    return {name: versions.get(name) for name in wanted}
