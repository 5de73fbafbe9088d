"""The one check every case of the hostile corpus (tests/hostile/) makes: the input is refused
with its documented exit code and one line naming the problem, no traceback, and nothing changed
in the sandbox root or in a canary directory outside it (where a link that leaves the root
would lead)."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# What a refused command may still touch under the root: SQLite's files and clp's lock (opened
# to read the records), the snapshot store's gc stamp (a writing session collects garbage on
# its way out, refused or not) and the log line saying what was refused.
MAY_CHANGE = (
    "var/lib/clp/clp.db",
    "var/lib/clp/clp.db-wal",
    "var/lib/clp/clp.db-shm",
    "var/lib/clp/clp.db-journal",
    "var/lib/clp/lock",
    "var/lib/clp/snapshots/gc-clean",  # the stamp of a whole gc, which every session may run
    "var/log/CLP.log",
    "etc/pacman.d/gnupg",
)
# Directories clp may create to hold those (compared as entries only when they are not plain
# directories: a link there is a change like any other).
MAY_CREATE = ("var/lib/clp",)


def fingerprint(
    directory: Path, skip: tuple[str, ...] = (), may_create: tuple[str, ...] = ()
) -> dict[str, tuple[object, ...]]:
    """Every entry under directory, links not followed: type and mode, owner, size, and the
    content's hash (a link's target for a link)."""
    found: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(directory))
            if any(rel == s or rel.startswith(s + "/") for s in skip):
                continue
            info = os.lstat(path)
            if rel in may_create and stat.S_ISDIR(info.st_mode):
                continue
            if stat.S_ISLNK(info.st_mode):
                content: object = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = None
            found[rel] = (info.st_mode, info.st_uid, info.st_gid, info.st_size, content)
    return found


@dataclass
class Fence:
    """The sandbox root and a canary directory outside it, as they were before a case ran."""

    root: Path
    canary: Path
    root_before: dict[str, tuple[object, ...]] = field(default_factory=dict)
    canary_before: dict[str, tuple[object, ...]] = field(default_factory=dict)

    def close(self) -> Fence:
        """Take the 'before' picture: call it once the hostile setup is in place."""
        self.root_before = fingerprint(self.root, MAY_CHANGE, MAY_CREATE)
        self.canary_before = fingerprint(self.canary)
        return self

    def changes(self) -> list[str]:
        root_now, canary_now = (
            fingerprint(self.root, MAY_CHANGE, MAY_CREATE),
            fingerprint(self.canary),
        )
        return _differences("root", self.root_before, root_now) + _differences(
            "canary", self.canary_before, canary_now
        )


def _differences(
    where: str, before: dict[str, tuple[object, ...]], after: dict[str, tuple[object, ...]]
) -> list[str]:
    def what(name: str) -> str:
        return "added" if name not in before else "removed" if name not in after else "changed"

    changed = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
    return [f"{where}: {name} {what(name)}" for name in changed]


def assert_refused(
    result: subprocess.CompletedProcess[str],
    fence: Fence,
    naming: str | tuple[str, ...],
    code: int = 2,
) -> None:
    """The case's verdict: `code`, one `error:` line on stderr that says `naming` (any of
    them, case-insensitive), no traceback, nothing changed outside what a refusal may touch."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    wanted = (naming,) if isinstance(naming, str) else naming
    assert any(w.lower() in errors[0].lower() for w in wanted), (wanted, errors[0])
    assert fence.changes() == [], fence.changes()


# Characters that must never reach a terminal raw (they reorder or hide what is shown).
_INVISIBLE = ("Cf", "Zl", "Zp", "Cs")


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one `error:` line of a refused command."""
    return next(line for line in result.stderr.splitlines() if line.startswith("error: "))


def assert_shown_escaped(result: subprocess.CompletedProcess[str]) -> None:
    """Nothing clp printed holds a bidi override, a zero-width or another invisible character
    (they are written <U+202E>, or named U+202E in an error)."""
    for stream in (result.stdout, result.stderr):
        hidden = [c for c in stream if unicodedata.category(c) in _INVISIBLE]
        assert not hidden, [f"U+{ord(c):04X}" for c in hidden]


def assert_apply_and_verify_refuse(
    clp: Callable[..., subprocess.CompletedProcess[str]],
    root: Path,
    patch: Path,
    fence: Fence,
    match: str,
    code: int = 2,
) -> str:
    """`clp apply` and `clp verify` of `patch` both refuse it, with the same exit status and
    the same error line matching the pattern `match`, change nothing, and print nothing
    invisible. Verify and apply run the one check, so they must never disagree."""
    applied = clp("--root", str(root), "apply", str(patch), "--noconfirm")
    assert_refused(applied, fence, naming="", code=code)
    assert re.search(match, error_line(applied)), (match, applied.stderr)
    assert_shown_escaped(applied)
    verified = clp("--root", str(root), "verify", str(patch))
    assert_refused(verified, fence, naming="", code=code)
    assert error_line(verified) == error_line(applied)
    assert_shown_escaped(verified)
    return error_line(applied)
