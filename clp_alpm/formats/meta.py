"""The metadata of a .clp patch, as clp holds it: the model and the rules its values follow.

`PatchMeta` is what PKGINFO.meta says (pkginfo.py reads and writes that file, in its XML and
legacy INI forms), what the state database stores (`to_dict`/`from_dict`) and, in part, what
the feed index CLP.db lists (feed.py). The check functions here are the rules on single values
that all of those share; each raises MetadataError naming the source and the line.

This module imports no lxml: code that only reads stored metadata (the pacman hook among it)
must not pay for loading it.
"""

from __future__ import annotations

import datetime
import re
import unicodedata

from clp_alpm.errors import MetadataError, UsageError
from clp_alpm.paths import normalize_target_path

# typing costs ~4 ms to import and the hooks start on every transaction: names for type
# checkers only (annotations are strings here)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any
else:  # the pacman hook's path: no dataclasses, see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass, field

MAX_META_BYTES = 256 * 1024
MAX_PATH_LENGTH = 4096
DEFAULT_HEALTH_TIMEOUT = 30

SEVERITIES = ("critical", "high", "medium", "low")
CONSTRAINT_OPS = ("<", "<=", "=", ">=", ">")

_PATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
# The names of clp's other records: a revert is R<n>, a pacman transaction a number. A patch
# named so would shadow one of them (`clp rollback R1`), so no patch may be.
_OTHER_RECORD_ID = re.compile(r"[Rr]?[0-9]+")
# Pseudo filesystems: nothing there is a file a patch could change or clp snapshot.
PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")
# What a terminal would not show as itself: controls, format characters (bidi overrides,
# zero-width ones), surrogates, unassigned code points, line and paragraph separators.
_INVISIBLE = frozenset(("Cc", "Cf", "Cs", "Cn", "Zl", "Zp"))
# pacman's package-name rule (libalpm refuses names starting with '-' or '.').
_PKG_NAME = re.compile(r"[a-z0-9@_+][a-z0-9@._+-]*")
_ARCH = re.compile(r"[a-z0-9_]{1,32}")
# A pacman version, [epoch:]pkgver[-pkgrel]: what real packages use, and nothing that could
# be read as a path, an option or a comparison operator.
_PKG_VERSION = re.compile(r"[A-Za-z0-9._+~:][A-Za-z0-9._+~:-]{0,127}")
_CONSTRAINT = re.compile(r"(<=|>=|<|>|=)\s*(.*)", re.DOTALL)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CVE = re.compile(r"CVE-[0-9]{4}-[0-9]{4,}")
_URL = re.compile(r"https?://[!-~]+")
# A systemd unit name; never starting with '-', so it cannot be read as an option.
_UNIT = re.compile(r"[A-Za-z0-9_:.@\\][A-Za-z0-9_:.@\\-]{0,254}")


# ---------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True)
class VersionConstraint:
    """A version condition such as `<9.9p2-1`, compared with pacman's vercmp."""

    op: str
    version: str

    def __post_init__(self) -> None:
        if self.op not in CONSTRAINT_OPS:
            raise ValueError(f"unknown version operator {self.op!r}")

    def matches(self, installed: str) -> bool:
        """True when the installed version `installed` satisfies this constraint."""
        import pyalpm  # lazy: libalpm is only needed when a constraint is checked

        order: int = pyalpm.vercmp(installed, self.version)
        return {
            "<": order < 0,
            "<=": order <= 0,
            "=": order == 0,
            ">=": order >= 0,
            ">": order > 0,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.op}{self.version}"


@dataclass(frozen=True)
class AppliesTo:
    name: str
    constraint: VersionConstraint | None


@dataclass(frozen=True)
class Reference:
    kind: str  # "CVE" | "URL"
    value: str


@dataclass(frozen=True)
class PackageRevert:
    name: str
    to: str
    until: str | None


@dataclass(frozen=True)
class HealthCheck:
    command: str
    timeout: int = DEFAULT_HEALTH_TIMEOUT


@dataclass(frozen=True)
class PatchMeta:
    name: str
    version: str
    architecture: str
    description: str
    date: str | None = None
    packager: str | None = None
    severity: str | None = None
    references: tuple[Reference, ...] = ()
    applies_to: tuple[AppliesTo, ...] = ()
    files: tuple[str, ...] = ()
    reverts: tuple[PackageRevert, ...] = ()
    triggers: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    health_check: HealthCheck | None = None
    legacy: bool = False
    supersedes: tuple[str, ...] = ()  # patch ids this patch replaces
    # what lenient reading passed over (clpctl's variants), one line each; not stored
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for `clp info --json`)."""
        return {
            "name": self.name,
            "version": self.version,
            "architecture": self.architecture,
            "description": self.description,
            "date": self.date,
            "packager": self.packager,
            "severity": self.severity,
            "references": [{"kind": r.kind, "value": r.value} for r in self.references],
            "applies_to": [
                {
                    "name": a.name,
                    "op": a.constraint.op if a.constraint else None,
                    "version": a.constraint.version if a.constraint else None,
                }
                for a in self.applies_to
            ],
            "files": list(self.files),
            "reverts": [{"name": r.name, "to": r.to, "until": r.until} for r in self.reverts],
            "triggers": list(self.triggers),
            "restart": list(self.restart),
            "health_check": (
                {"command": self.health_check.command, "timeout": self.health_check.timeout}
                if self.health_check
                else None
            ),
            "legacy": self.legacy,
            "supersedes": list(self.supersedes),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PatchMeta:
        """The inverse of to_dict(); keys an older clp did not store take their defaults."""
        check = values.get("health_check")
        return cls(
            name=values["name"],
            version=values["version"],
            architecture=values["architecture"],
            description=values["description"],
            date=values.get("date"),
            packager=values.get("packager"),
            severity=values.get("severity"),
            references=tuple(
                Reference(r["kind"], r["value"]) for r in values.get("references", ())
            ),
            applies_to=tuple(
                AppliesTo(
                    a["name"],
                    VersionConstraint(a["op"], a["version"]) if a.get("op") else None,
                )
                for a in values.get("applies_to", ())
            ),
            files=tuple(values.get("files", ())),
            reverts=tuple(
                PackageRevert(r["name"], r["to"], r.get("until")) for r in values.get("reverts", ())
            ),
            triggers=tuple(values.get("triggers", ())),
            restart=tuple(values.get("restart", ())),
            health_check=(
                HealthCheck(check["command"], check.get("timeout", DEFAULT_HEALTH_TIMEOUT))
                if check
                else None
            ),
            legacy=bool(values.get("legacy", False)),
            supersedes=tuple(values.get("supersedes", ())),
        )


def patch_id_is_valid(name: str) -> bool:
    """True when `name` can be a patch id (it becomes a directory name under /opt/CLP)."""
    return isinstance(name, str) and _PATCH_ID.fullmatch(name) is not None


def names_other_record(name: str) -> bool:
    """True when `name` is spelled as a revert's id (R1) or a transaction's number (12)."""
    return _OTHER_RECORD_ID.fullmatch(name) is not None


def invisible_character(text: str, allowed: str = "") -> str | None:
    """The first character of `text` (but those in `allowed`) a terminal would not show as
    itself: a control, a bidi override, a zero-width or other format character."""
    if text.isprintable():
        return None
    for char in text:
        if char not in allowed and unicodedata.category(char) in _INVISIBLE:
            return char
    return None


def describe_codepoint(char: str) -> str:
    """'U+202E (RIGHT-TO-LEFT OVERRIDE)': a character named without printing it."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


# ---------------------------------------------------------------------------------------------
# Rules on values, shared by PKGINFO.meta's two forms and CLP.db


def metadata_error(source: str, line: int | None, message: str) -> MetadataError:
    """The MetadataError for `message` about `source`, at `line` when it is known."""
    where = f"{source}:{line}" if line else source
    return MetadataError(f"{where}: {message}")


def refuse_control_characters(value: str, what: str, source: str, line: int | None) -> None:
    """Refuse a control character other than tab and newline in `value` (`what` names it), and
    any other character a terminal would not show as itself (a bidi override, a zero-width
    character): metadata is shown in terminals, and must read as what it is."""
    char = invisible_character(value, allowed="\t\n")
    if char is None:
        return
    if unicodedata.category(char) == "Cc":
        raise metadata_error(source, line, f"{what} contains the control character {char!r}")
    raise metadata_error(source, line, f"{what} contains the character {describe_codepoint(char)}")


def check_patch_id(name: str, source: str, line: int | None) -> None:
    if not patch_id_is_valid(name):
        char = invisible_character(name)
        why = f"it contains {describe_codepoint(char)}; " if char is not None else ""
        raise metadata_error(
            source,
            line,
            f"patch name '{name}' is not valid: {why}use 1 to 64 letters, digits, '.', '_', "
            "'+' or '-', starting with a letter or digit",
        )
    if names_other_record(name):
        raise metadata_error(
            source,
            line,
            f"patch name '{name}' is spelled as a revert's ID (R1) or a transaction's number; "
            "it would shadow that record: give the patch a name with letters in it "
            "(e.g. CLPR261125)",
        )


def check_patch_version(version: str, source: str, line: int | None) -> None:
    if not version:
        raise metadata_error(source, line, "the patch version is empty")
    if re.search(r"\s", version):
        raise metadata_error(source, line, f"patch version '{version}' must not contain whitespace")


def check_architecture(architecture: str, source: str, line: int | None) -> None:
    if not _ARCH.fullmatch(architecture):
        raise metadata_error(
            source,
            line,
            f"architecture '{architecture}' is not valid (e.g. x86_64, aarch64 or any)",
        )


def check_date(date: str, source: str, line: int | None) -> None:
    if _DATE.fullmatch(date):
        try:
            datetime.date.fromisoformat(date)
            return
        except ValueError:
            pass
    raise metadata_error(source, line, f"date '{date}' is not a real date in the form YYYY-MM-DD")


def check_package_name(name: str, source: str, line: int | None) -> None:
    if not _PKG_NAME.fullmatch(name):
        raise metadata_error(source, line, f"'{name}' is not a valid package name")


def check_package_version(version: str, what: str, source: str, line: int | None) -> None:
    """Refuse `version` unless it is a pacman version; `what` names the attribute holding it."""
    if not _PKG_VERSION.fullmatch(version):
        raise metadata_error(source, line, f"{what}='{version}' is not a valid package version")


def parse_constraint(raw: str, source: str, line: int | None) -> VersionConstraint:
    """The constraint `raw` ('<9.9p2-1', '>= 1.0'); refuses a bad operator or version."""
    match = _CONSTRAINT.fullmatch(raw)
    if not match:
        raise metadata_error(
            source,
            line,
            f"version constraint '{raw}' must start with <, <=, =, >= or > (e.g. '<9.9p2-1')",
        )
    op, version = match.groups()
    if not _PKG_VERSION.fullmatch(version):
        raise metadata_error(
            source, line, f"version constraint '{raw}' has no valid version after '{op}'"
        )
    return VersionConstraint(op=op, version=version)


def check_reference(kind: str, value: str, source: str, line: int | None) -> None:
    """Refuse a <CVE> that is no CVE id and a <URL> that is no http(s) URL."""
    if kind == "CVE" and not _CVE.fullmatch(value):
        raise metadata_error(source, line, f"'{value}' is not a CVE id (CVE-YYYY-NNNN)")
    if kind == "URL" and not _URL.fullmatch(value):
        raise metadata_error(source, line, f"'{value}' is not an http:// or https:// URL")


def check_unit_name(unit: str, source: str, line: int | None) -> None:
    if not _UNIT.fullmatch(unit):
        raise metadata_error(source, line, f"'{unit}' is not a valid systemd unit name")


def check_target_path(raw: str, source: str, line: int | None) -> str:
    """`raw`, a path the patch changes, normalised; refuses anything but an absolute path
    below the root with no '..' and no control character."""
    char = invisible_character(raw)
    if char is not None and unicodedata.category(char) == "Cc":
        raise metadata_error(source, line, f"file path {raw!r} contains a control character")
    if char is not None:
        shown = ascii(raw) if len(raw) <= 200 else ascii(raw[:200]) + "..."
        raise metadata_error(
            source, line, f"file path {shown} contains the character {describe_codepoint(char)}"
        )
    if len(raw) > MAX_PATH_LENGTH:
        raise metadata_error(source, line, f"file path is longer than {MAX_PATH_LENGTH} characters")
    if not raw.startswith("/"):
        raise metadata_error(source, line, f"file path '{raw}' must be absolute (start with /)")
    if ".." in raw.split("/"):
        raise metadata_error(source, line, f"file path '{raw}' must not contain '..'")
    try:
        clean = normalize_target_path(raw)
    except UsageError as e:
        raise metadata_error(source, line, f"file path is not valid: {e}") from None
    if clean == "/":
        raise metadata_error(source, line, f"file path '{raw}' is the root directory itself")
    for pseudo in PSEUDO_FILESYSTEMS:
        if clean == pseudo or clean.startswith(pseudo + "/"):
            raise metadata_error(
                source,
                line,
                f"file path '{clean}' is under {pseudo}, a pseudo filesystem of the kernel "
                "(devices and processes, no files a patch can change)",
            )
    return clean
