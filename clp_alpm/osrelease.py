"""os-release(5) of the target system: what the distribution says it is.

Read from `/etc/os-release`, or else `/usr/lib/os-release`, with symbolic links resolved inside
the root (Arch links the first to the second). The feed reads the edition (`VARIANT_ID`) from
it; the configuration reads which distribution this is (`ID`, `ID_LIKE`) for the default
ArchiveServer.
"""

from __future__ import annotations

import shlex

from clp_alpm.errors import ConfigError
from clp_alpm.paths import resolve_in_root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _typeshed import StrPath

OS_RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release")
MAX_OS_RELEASE_BYTES = 64 * 1024

# The archive of every package a distribution ever shipped, by os-release ID (or an ID_LIKE
# word): the Arch Linux Archive serves Arch's and, for a distribution built on Arch's
# repositories, theirs.
DISTRIBUTION_ARCHIVES = {"arch": "https://archive.archlinux.org"}


def read_os_release(root: StrPath) -> str | None:
    """The text of the system's os-release at `root`; None when neither file exists."""
    for target in OS_RELEASE_FILES:
        host = resolve_in_root(root, target)
        if host is None:
            continue
        try:
            with open(host, "rb") as stream:
                data = stream.read(MAX_OS_RELEASE_BYTES)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        except OSError as e:
            raise ConfigError(f"{host}: cannot read: {e.strerror}") from None
        return data.decode("utf-8", errors="replace")
    return None


def os_release_value(text: str, key: str) -> str | None:
    """The value of `key` in os-release text (shell-style assignments; the last one wins)."""
    value: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, rest = line.partition("=")
        if not separator or name != key:
            continue
        try:
            words = shlex.split(rest, comments=True, posix=True)
        except ValueError:
            continue  # an unbalanced quote: the line is not an assignment
        if len(words) <= 1:
            value = words[0] if words else ""
    return value or None


def distribution_archives(root: StrPath) -> tuple[str, ...]:
    """The archive servers of the distribution at `root`: the one of its `ID`, else of the
    first `ID_LIKE` word that has one; none when os-release names no such distribution."""
    text = read_os_release(root)
    if text is None:
        return ()
    ids = [os_release_value(text, "ID") or ""]
    ids += (os_release_value(text, "ID_LIKE") or "").split()
    for word in ids:
        if word in DISTRIBUTION_ARCHIVES:
            return (DISTRIBUTION_ARCHIVES[word],)
    return ()
