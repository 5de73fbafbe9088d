"""A .clp patch archive: what inspection found in one, the limits it keeps, the names it uses.

A .clp is a zip archive (clpctl 2.1 and CLP) or, as clpctl up to 2.0 made them, a gzip'd tar.
PKGINFO.meta, the two scripts and the payload sit at the top of the archive, or all under one
single top-level directory (what `tar czf X.clp X/` makes), which is then stripped.

A `PatchArchive` comes from inspect.inspect_patch, once every name, size and type in the
file has been checked; extract.py writes out exactly what it describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clp_alpm.errors import PatchFormatError
from clp_alpm.formats.meta import PatchMeta

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

META_NAME = "PKGINFO.meta"
# The documented names first: when both pairs are complete, the Install-Script pair is used.
SCRIPT_PAIRS: tuple[tuple[str, str], ...] = (
    ("Install-Script.ps1", "Remove-Script.ps1"),
    ("Install-Patch.ps1", "Remove-Patch.ps1"),
)
CONTAINER_ZIP = "zip"
CONTAINER_TARGZ = "tar.gz"

# a piece read at a time: small enough that reading, hashing, the CRC-32 and writing it out
# stay in the CPU's cache (1 MiB pieces cost a third more CPU time on a 1 GiB payload)
CHUNK_SIZE = 256 * KiB
RATIO_MIN_SIZE = MiB  # the compression ratio is only checked above this size
NAME_MAX = 255  # bytes in one path component (Linux)


@dataclass(frozen=True)
class Limits:
    """What an archive may hold. Sizes are uncompressed, as the archive declares them."""

    max_entries: int = 10_000
    max_total_size: int = 2 * GiB
    max_file_size: int = 1 * GiB
    max_ratio: int = 200  # uncompressed / compressed, per entry above RATIO_MIN_SIZE
    max_name_length: int = 1024  # bytes
    max_depth: int = 32


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Entry:
    """One entry of a patch: a normalised relative POSIX path, prefix stripped."""

    name: str
    size: int
    is_dir: bool
    executable: bool


@dataclass(frozen=True)
class PatchArchive:
    """An inspected .clp: its container, metadata, scripts and entries, and the SHA-256 of the
    whole file, which extraction checks again."""

    path: Path
    container: str  # "zip" | "tar.gz"
    meta: PatchMeta
    install_script: str
    remove_script: str
    entries: tuple[Entry, ...]
    sha256: str  # of the whole file
    size: int
    prefix: str  # "" or "dirname/"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for --json output)."""
        return {
            "path": str(self.path),
            "container": self.container,
            "sha256": self.sha256,
            "size": self.size,
            "prefix": self.prefix,
            "scripts": {"install": self.install_script, "remove": self.remove_script},
            "entries": [
                {"name": e.name, "size": e.size, "type": "dir" if e.is_dir else "file"}
                for e in self.entries
            ],
            "meta": self.meta.to_dict(),
            "warnings": list(self.meta.warnings),
        }


def choose_scripts(files: set[str], dirs: set[str], label: str) -> tuple[str, str]:
    """The (install, remove) script names among the top-level `files`; refuses a bad set."""
    for name in (n for pair in SCRIPT_PAIRS for n in pair):
        if name in dirs:
            raise PatchFormatError(f"{label}: {name} is a directory, not a script")
    for install, remove in SCRIPT_PAIRS:
        if (install in files) != (remove in files):
            present, missing = (install, remove) if install in files else (remove, install)
            raise PatchFormatError(
                f"{label}: {present} is there but {missing} is missing; a patch needs both"
            )
    for install, remove in SCRIPT_PAIRS:
        if install in files:
            return install, remove
    names = " nor ".join(f"{install}/{remove}" for install, remove in SCRIPT_PAIRS)
    raise PatchFormatError(f"{label}: has neither {names}")
