"""PKGINFO.meta: the metadata of a .clp patch.

Two forms are read. The XML form (clpctl 2.1 and CLP) has root <Package> and is validated
against clp_alpm/formats/pkginfo.xsd, then checked here for what the schema cannot say clearly.
The legacy INI form (clpctl up to 2.0) is a [Package] section with Name, Version,
Architecture (clpctl's code spells it Architechture) and Description.

The input comes from archives downloaded from the network and is read by root, so the XML
parser never expands entities, never loads a DTD or anything else over the network or from
disk, and any document with a DOCTYPE or a processing instruction is refused outright.
"""

from __future__ import annotations

import datetime
import functools
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from clp_alpm.errors import MetadataError, UsageError
from clp_alpm.paths import normalize_target_path

MAX_META_BYTES = 256 * 1024
MAX_PATH_LENGTH = 4096
DEFAULT_HEALTH_TIMEOUT = 30

SEVERITIES = ("critical", "high", "medium", "low")
CONSTRAINT_OPS = ("<", "<=", "=", ">=", ">")

_PATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
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

_XML_WHITESPACE = " \t\r\n"
# Beside this module (package data); importlib.resources trips over editable installs.
_SCHEMA_PATH = Path(__file__).with_name("pkginfo.xsd")

_REQUIRED_ELEMENTS = ("Name", "Version", "Architecture", "Description")
_OPTIONAL_ELEMENTS = (
    "Date",
    "Packager",
    "Severity",
    "References",
    "AppliesTo",
    "Files",
    "Revert",
    "Trigger",
    "Restart",
    "HealthCheck",
    "Supersedes",
)
_PACKAGE_ELEMENTS = _REQUIRED_ELEMENTS + _OPTIONAL_ELEMENTS

# INI keys of clpctl up to 2.0. clpctl writes `Depends=` but never reads it; it is accepted
# and ignored, exactly as clpctl does.
_INI_KEYS = {
    "Name": "Name",
    "Version": "Version",
    "Architecture": "Architecture",
    "Architechture": "Architecture",
    "Description": "Description",
    "Depends": "Depends",
}


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

        order = pyalpm.vercmp(installed, self.version)
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


# ---------------------------------------------------------------------------------------------
# Entry point


def parse_meta(data: bytes, source: str = "PKGINFO.meta") -> PatchMeta:
    """Parse and validate PKGINFO.meta (XML or legacy INI); raise MetadataError if it is bad."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("parse_meta() takes bytes")
    data = bytes(data)
    if len(data) > MAX_META_BYTES:
        raise MetadataError(
            f"{source}: {len(data)} bytes is more than the {MAX_META_BYTES // 1024} KiB "
            "allowed for patch metadata"
        )
    text = decode_utf8(data, source)
    if text.startswith("\ufeff"):
        text = text[1:]
        data = data[3:]
    first = _first_significant_line(text)
    if first is None:
        raise MetadataError(f"{source}: the file is empty")
    if first.startswith("<"):
        return _parse_xml(data, text, source)
    return _parse_ini(text, source)


def decode_utf8(data: bytes, source: str, what: str = "patch metadata") -> str:
    """`data` as text; MetadataError naming the line of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise MetadataError(
            f"{source}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); "
            f"{what} must be UTF-8"
        ) from None


def _first_significant_line(text: str) -> str | None:
    for raw in text.split("\n"):
        line = raw.strip()
        if line and not line.startswith(("#", ";")):
            return line
    return None


def _fail(source: str, line: int | None, message: str) -> MetadataError:
    where = f"{source}:{line}" if line else source
    return MetadataError(f"{where}: {message}")


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


# ---------------------------------------------------------------------------------------------
# XML


def _parse_xml(data: bytes, text: str, source: str) -> PatchMeta:
    root = parse_untrusted_xml(data, text, source)
    if root.tag != "Package":
        raise _fail(
            source, root.sourceline, f"the root element must be <Package>, not <{root.tag}>"
        )
    elements = _package_children(root, source)
    _validate_against_schema(root, source)
    return _build_meta(elements, source)


def parse_untrusted_xml(
    data: bytes, text: str, source: str, what: str = "patch metadata"
) -> etree._Element:
    """The root element of the XML document `data` (whose UTF-8 text is `text`), parsed with
    no DTD, no entities and no network; a DOCTYPE, a processing instruction or another
    declared encoding is refused (MetadataError naming the line). Sizes are the caller's."""
    _refuse_before_parsing(text, source, what)
    root = _parse_tree(data, source)
    _refuse_dtd_pis_and_entities(root, source)
    return root


def _refuse_before_parsing(text: str, source: str, what: str) -> None:
    """Refuse a DOCTYPE and a non-UTF-8 declaration before the parser sees the document."""
    # A DOCTYPE is where entities (XXE, billion laughs) and external DTDs live. Refusing the
    # document before parsing means not even the internal subset is ever processed.
    index = text.find("<!DOCTYPE")
    if index >= 0:
        raise _fail(
            source, _line_of(text, index), "a DOCTYPE is not allowed (no DTDs, no entities)"
        )
    declaration = re.match(r"<\?xml\s[^>]*?\bencoding\s*=\s*([\"'])(.*?)\1", text)
    if declaration and declaration.group(2).lower() != "utf-8":
        raise _fail(
            source,
            1,
            f"declares encoding '{declaration.group(2)}'; {what} must be UTF-8",
        )


def safe_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        encoding="utf-8",
    )


def _parse_tree(data: bytes, source: str) -> etree._Element:
    try:
        return etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as e:
        message = _plain_syntax_message(e.msg or "")
        raise _fail(source, e.lineno, message) from None


_SYNTAX_REWRITES: tuple[tuple[str, str], ...] = (
    (
        r"Opening and ending tag mismatch: (\S+) line (\d+) and (\S+)",
        r"<\1> (opened on line \2) is not closed before </\3>",
    ),
    (r"Premature end of data in tag (\S+) line (\d+)", r"the file ends before <\1> is closed"),
    (r"Entity '(.*)' not defined", r"unknown entity '&\1;' (entities are not allowed)"),
    (r"Extra content at the end of the document", "unexpected content after the closing root tag"),
    (r"Excessive depth in document.*", "elements are nested too deeply"),
    (
        r"Resource limit exceeded: (Text node too long|Buffer size limit exceeded).*",
        "a text runs on for more than the 10 MB the parser allows in one piece",
    ),
    (r"Start tag expected, '<' not found", "not an XML document"),
    (r"Document is empty", "the file is empty"),
    (r"Attribute (\S+) redefined", r"attribute '\1' is given twice"),
    (r"Namespace prefix (\S+) on (\S+) is not defined", r"unknown namespace prefix '\1' on <\2>"),
)


def _plain_syntax_message(raw: str) -> str:
    first = raw.strip().split("\n")[0].strip()
    first = re.sub(r",? line \d+, column \d+$", "", first).strip()
    for pattern, replacement in _SYNTAX_REWRITES:
        match = re.fullmatch(pattern, first)
        if match:
            return "malformed XML: " + match.expand(replacement)
    return f"malformed XML: {first}"


def _refuse_dtd_pis_and_entities(root: etree._Element, source: str) -> None:
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _fail(source, 1, "a DOCTYPE is not allowed (no DTDs, no entities)")
    outside = [*root.itersiblings(preceding=True), *root.itersiblings()]
    for node in [*outside, *root.iter(etree.ProcessingInstruction, etree.Entity)]:
        if isinstance(node, etree._ProcessingInstruction):
            raise _fail(
                source,
                node.sourceline,
                f"processing instruction '<?{node.target}' is not allowed",
            )
        if isinstance(node, etree._Entity):
            raise _fail(source, node.sourceline, f"entity '{node.text}' is not allowed")


def _package_children(root: etree._Element, source: str) -> dict[str, etree._Element]:
    """The children of <Package> by name (unknown ones are the schema's to report)."""
    return package_children(root, _PACKAGE_ELEMENTS, _REQUIRED_ELEMENTS, source)


def package_children(
    package: etree._Element, known: Collection[str], required: Collection[str], source: str
) -> dict[str, etree._Element]:
    """The children of <Package> whose names are in `known`, by name; others are skipped.
    Refuses a child given twice and a missing `required` one, naming the line: PKGINFO.meta
    and CLP.db share these rules."""
    found: dict[str, etree._Element] = {}
    for child in package:
        if not isinstance(child.tag, str) or child.tag not in known:
            continue
        if child.tag in found:
            first = found[child.tag].sourceline
            raise _fail(
                source, child.sourceline, f"<{child.tag}> is given twice (first on line {first})"
            )
        found[child.tag] = child
    for name in required:
        if name not in found:
            raise _fail(source, package.sourceline, f"<Package> has no <{name}> element")
    return found


@functools.cache
def _schema() -> etree.XMLSchema:
    schema_bytes = _SCHEMA_PATH.read_bytes()
    return etree.XMLSchema(etree.fromstring(schema_bytes, safe_parser()))


def _validate_against_schema(root: etree._Element, source: str) -> None:
    schema = _schema()
    if schema.validate(root.getroottree()):
        return
    error = schema.error_log[0]
    raise _fail(source, error.line, _plain_schema_message(error.message))


def _plain_schema_message(raw: str) -> str:
    """Rewrite a libxml2 schema message into one plain sentence."""
    match = re.match(r"Element '([^']*)'(?:, attribute '([^']*)')?: (.*)", raw.strip(), re.DOTALL)
    if not match:
        return raw.strip()
    element, attribute, rest = match.groups()
    subject = f"attribute '{attribute}' of <{element}>" if attribute else f"<{element}>"
    rest = rest.strip()

    if rest.startswith("This element is not expected"):
        return f"element '{element}' is not allowed here"
    missing = re.match(r"Missing child element\(s\)\. Expected is \( (\S+) \)", rest)
    if missing:
        return f"<{element}> has no <{missing.group(1)}> element"
    if rest.startswith("Missing child element"):
        return f"<{element}> is missing a required element"
    enum = re.match(r"\[facet 'enumeration'\] The value '(.*)' is not an element of the set", rest)
    if enum:
        allowed = ", ".join(re.findall(r"'([^']*)'", rest.split("set", 1)[1]))
        return f"'{enum.group(1)}' is not a valid value for {subject} (one of: {allowed})"
    bound = re.match(r"\[facet '(min|max)Inclusive'\] The value '(.*)' is", rest)
    if bound:
        limits = re.search(r"\('([^']*)'\)", rest)
        word = "at least" if bound.group(1) == "min" else "at most"
        limit = limits.group(1) if limits else "?"
        return f"{subject} must be {word} {limit}, not '{bound.group(2)}'"
    if rest.startswith(("[facet 'minLength']", "[facet 'pattern']")):
        return f"{subject} must not be empty"
    bad_value = re.match(r"'(.*)' is not a valid value of the atomic type", rest, re.DOTALL)
    if bad_value:
        return f"'{bad_value.group(1)}' is not a valid value for {subject}"
    if rest.startswith("Element content is not allowed"):
        return f"<{element}> must hold text only, not elements"
    if rest.startswith("Character content other than whitespace is not allowed"):
        return f"<{element}> must hold elements only, not text"
    required = re.match(r"The attribute '([^']*)' is required but missing", rest)
    if required:
        return f"<{element}> needs the attribute '{required.group(1)}'"
    if re.match(r"The attribute '([^']*)' is not allowed", rest):
        return f"{subject} is not allowed"
    return f"{subject}: {rest.rstrip('.')}"


# -- from elements to the model ---------------------------------------------------------------


def element_text(element: etree._Element, source: str) -> str:
    value = (element.text or "").strip(_XML_WHITESPACE)
    _refuse_control_characters(value, f"<{element.tag}>", source, element.sourceline)
    return value


def element_attribute(element: etree._Element, name: str, source: str) -> str | None:
    value = element.get(name)
    if value is None:
        return None
    value = value.strip(_XML_WHITESPACE)
    _refuse_control_characters(value, f"attribute '{name}'", source, element.sourceline)
    return value


def _refuse_control_characters(value: str, what: str, source: str, line: int | None) -> None:
    # Metadata is shown in terminals: escape sequences (C0/C1 controls) must not get through.
    for char in value:
        if char not in "\t\n" and unicodedata.category(char) == "Cc":
            raise _fail(source, line, f"{what} contains the control character {char!r}")


def _build_meta(elements: dict[str, etree._Element], source: str) -> PatchMeta:
    def text_of(tag: str) -> str | None:
        return element_text(elements[tag], source) if tag in elements else None

    def line_of(tag: str) -> int | None:
        return elements[tag].sourceline if tag in elements else None

    name = text_of("Name") or ""
    version = text_of("Version") or ""
    architecture = text_of("Architecture") or ""
    check_patch_id(name, source, line_of("Name"))
    check_patch_version(version, source, line_of("Version"))
    check_architecture(architecture, source, line_of("Architecture"))
    date = text_of("Date")
    if date is not None:
        check_date(date, source, line_of("Date"))

    def children(tag: str) -> list[etree._Element]:
        return [c for c in elements[tag] if isinstance(c.tag, str)] if tag in elements else []

    return PatchMeta(
        name=name,
        version=version,
        architecture=architecture,
        description=text_of("Description") or "",
        date=date,
        packager=text_of("Packager"),
        severity=text_of("Severity"),
        references=tuple(_reference(c, source) for c in children("References")),
        applies_to=tuple(parse_applies_to(c, source) for c in children("AppliesTo")),
        files=_files(children("Files"), source),
        reverts=_reverts(children("Revert"), source),
        triggers=_triggers(children("Trigger"), source),
        restart=_services(children("Restart"), source),
        health_check=_health_check(elements["HealthCheck"], source)
        if "HealthCheck" in elements
        else None,
        supersedes=parse_supersedes(children("Supersedes"), name, source),
    )


def _reference(element: etree._Element, source: str) -> Reference:
    value = element_text(element, source)
    if element.tag == "CVE" and not _CVE.fullmatch(value):
        raise _fail(source, element.sourceline, f"'{value}' is not a CVE id (CVE-YYYY-NNNN)")
    if element.tag == "URL" and not _URL.fullmatch(value):
        raise _fail(source, element.sourceline, f"'{value}' is not an http:// or https:// URL")
    return Reference(kind=element.tag, value=value)


def parse_applies_to(element: etree._Element, source: str) -> AppliesTo:
    name = element_attribute(element, "name", source) or ""
    _check_package_name(name, source, element.sourceline)
    raw = element_attribute(element, "version", source)
    constraint = None if raw is None else _parse_constraint(raw, source, element.sourceline)
    return AppliesTo(name=name, constraint=constraint)


def _parse_constraint(raw: str, source: str, line: int | None) -> VersionConstraint:
    match = _CONSTRAINT.fullmatch(raw)
    if not match:
        raise _fail(
            source,
            line,
            f"version constraint '{raw}' must start with <, <=, =, >= or > (e.g. '<9.9p2-1')",
        )
    op, version = match.groups()
    if not _PKG_VERSION.fullmatch(version):
        raise _fail(source, line, f"version constraint '{raw}' has no valid version after '{op}'")
    return VersionConstraint(op=op, version=version)


def parse_supersedes(elements: list[etree._Element], own_name: str, source: str) -> tuple[str, ...]:
    """The patch ids of <Supersedes><Patch>ID</Patch>...</Supersedes> of the patch `own_name`."""
    ids: list[str] = []
    first_line: dict[str, int | None] = {}
    for element in elements:
        patch_id = element_text(element, source)
        check_patch_id(patch_id, source, element.sourceline)
        if patch_id == own_name:
            raise _fail(source, element.sourceline, f"patch '{own_name}' cannot supersede itself")
        if patch_id in first_line:
            raise _fail(
                source,
                element.sourceline,
                f"patch '{patch_id}' is listed twice in <Supersedes> "
                f"(first on line {first_line[patch_id]})",
            )
        first_line[patch_id] = element.sourceline
        ids.append(patch_id)
    return tuple(ids)


def _files(elements: list[etree._Element], source: str) -> tuple[str, ...]:
    paths: list[str] = []
    first_line: dict[str, int | None] = {}
    for element in elements:
        raw = element.get("path", "")
        clean = _check_target_path(raw, source, element.sourceline)
        if clean in first_line:
            raise _fail(
                source,
                element.sourceline,
                f"file '{raw}' is listed twice (as '{clean}', first on line {first_line[clean]})",
            )
        first_line[clean] = element.sourceline
        paths.append(clean)
    return tuple(paths)


def _check_target_path(raw: str, source: str, line: int | None) -> str:
    if any(unicodedata.category(c) == "Cc" for c in raw):
        raise _fail(source, line, f"file path {raw!r} contains a control character")
    if len(raw) > MAX_PATH_LENGTH:
        raise _fail(source, line, f"file path is longer than {MAX_PATH_LENGTH} characters")
    if not raw.startswith("/"):
        raise _fail(source, line, f"file path '{raw}' must be absolute (start with /)")
    if ".." in raw.split("/"):
        raise _fail(source, line, f"file path '{raw}' must not contain '..'")
    try:
        clean = normalize_target_path(raw)
    except UsageError as e:
        raise _fail(source, line, f"file path is not valid: {e}") from None
    if clean == "/":
        raise _fail(source, line, f"file path '{raw}' is the root directory itself")
    return clean


def _reverts(elements: list[etree._Element], source: str) -> tuple[PackageRevert, ...]:
    reverts: list[PackageRevert] = []
    seen: set[str] = set()
    for element in elements:
        line = element.sourceline
        name = element_attribute(element, "name", source) or ""
        _check_package_name(name, source, line)
        if name in seen:
            raise _fail(source, line, f"package '{name}' is listed twice in <Revert>")
        seen.add(name)
        to = element_attribute(element, "to", source) or ""
        until = element_attribute(element, "until", source)
        _check_package_version(to, "to", source, line)
        if until is not None:
            _check_package_version(until, "until", source, line)
        reverts.append(PackageRevert(name=name, to=to, until=until))
    return tuple(reverts)


def _triggers(elements: list[etree._Element], source: str) -> tuple[str, ...]:
    names: list[str] = []
    for element in elements:
        name = element_attribute(element, "name", source) or ""
        _check_package_name(name, source, element.sourceline)
        if name in names:
            raise _fail(
                source, element.sourceline, f"package '{name}' is listed twice in <Trigger>"
            )
        names.append(name)
    return tuple(names)


def _services(elements: list[etree._Element], source: str) -> tuple[str, ...]:
    services: list[str] = []
    for element in elements:
        unit = element_text(element, source)
        if not _UNIT.fullmatch(unit):
            raise _fail(source, element.sourceline, f"'{unit}' is not a valid systemd unit name")
        if unit in services:
            raise _fail(source, element.sourceline, f"service '{unit}' is listed twice")
        services.append(unit)
    return tuple(services)


def _health_check(element: etree._Element, source: str) -> HealthCheck:
    timeout = element_attribute(element, "timeout", source)
    # The schema has already checked that timeout is an integer from 1 to 3600.
    return HealthCheck(
        command=element_text(element, source),
        timeout=int(timeout) if timeout is not None else DEFAULT_HEALTH_TIMEOUT,
    )


# -- field rules shared by both forms ---------------------------------------------------------


def check_patch_id(name: str, source: str, line: int | None) -> None:
    if not patch_id_is_valid(name):
        raise _fail(
            source,
            line,
            f"patch name '{name}' is not valid: use 1 to 64 letters, digits, '.', '_', '+' "
            "or '-', starting with a letter or digit",
        )


def check_patch_version(version: str, source: str, line: int | None) -> None:
    if not version:
        raise _fail(source, line, "the patch version is empty")
    if re.search(r"\s", version):
        raise _fail(source, line, f"patch version '{version}' must not contain whitespace")


def check_architecture(architecture: str, source: str, line: int | None) -> None:
    if not _ARCH.fullmatch(architecture):
        raise _fail(
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
    raise _fail(source, line, f"date '{date}' is not a real date in the form YYYY-MM-DD")


def _check_package_name(name: str, source: str, line: int | None) -> None:
    if not _PKG_NAME.fullmatch(name):
        raise _fail(source, line, f"'{name}' is not a valid package name")


def _check_package_version(version: str, what: str, source: str, line: int | None) -> None:
    if not _PKG_VERSION.fullmatch(version):
        raise _fail(source, line, f"{what}='{version}' is not a valid package version")


# ---------------------------------------------------------------------------------------------
# Legacy INI (clpctl up to 2.0)


def _parse_ini(text: str, source: str) -> PatchMeta:
    header_line: int | None = None
    values: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        _refuse_control_characters(line, "the line", source, number)
        if line.startswith("["):
            if header_line is not None or line != "[Package]":
                raise _fail(source, number, f"unexpected section '{line}'; only [Package]")
            header_line = number
            continue
        if header_line is None:
            raise _fail(source, number, "expected the [Package] header first")
        key, separator, value = line.partition("=")
        key = key.strip()
        if not separator:
            raise _fail(source, number, f"expected 'Key=Value', found '{line}'")
        if key not in _INI_KEYS:
            raise _fail(source, number, f"unknown key '{key}'")
        field = _INI_KEYS[key]
        if field in values:
            raise _fail(
                source, number, f"'{key}' is given twice (first on line {values[field][1]})"
            )
        values[field] = (value.strip(), number)

    if header_line is None:
        raise _fail(source, None, "no [Package] section")
    for field in _REQUIRED_ELEMENTS:
        if field not in values:
            raise _fail(source, header_line, f"[Package] has no '{field}' key")
        if not values[field][0]:
            raise _fail(source, values[field][1], f"'{field}' is empty")

    name, name_line = values["Name"]
    version, version_line = values["Version"]
    architecture, arch_line = values["Architecture"]
    check_patch_id(name, source, name_line)
    check_patch_version(version, source, version_line)
    check_architecture(architecture, source, arch_line)
    return PatchMeta(
        name=name,
        version=version,
        architecture=architecture,
        description=values["Description"][0],
        legacy=True,
    )


# ---------------------------------------------------------------------------------------------
# Writing


def render_meta(meta: PatchMeta) -> bytes:
    """Canonical XML for `meta`; raises MetadataError if `meta` would not read back as valid."""
    try:
        root = _build_tree(meta)
        body = etree.tostring(root, encoding="unicode", pretty_print=True)
        data = ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError) as e:
        raise MetadataError(f"PKGINFO.meta: cannot write the metadata: {e}") from None
    parse_meta(data)  # what we write must be what we accept
    return data


def add_element(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def add_supersedes_and_applies_to(
    parent: etree._Element, supersedes: tuple[str, ...], applies_to: tuple[AppliesTo, ...]
) -> None:
    """The two elements PKGINFO.meta and CLP.db write the same way."""
    if supersedes:
        element = add_element(parent, "Supersedes")
        for patch_id in supersedes:
            add_element(element, "Patch", patch_id)
    if applies_to:
        element = add_element(parent, "AppliesTo")
        for target in applies_to:
            pkg = add_element(element, "Pkg")
            pkg.set("name", target.name)
            if target.constraint is not None:
                pkg.set("version", str(target.constraint))


def _build_tree(meta: PatchMeta) -> etree._Element:
    root = etree.Element("Package")
    add = add_element

    add(root, "Name", meta.name)
    add(root, "Version", meta.version)
    add(root, "Architecture", meta.architecture)
    add(root, "Description", meta.description)
    for tag, value in (("Date", meta.date), ("Packager", meta.packager)):
        if value is not None:
            add(root, tag, value)
    if meta.severity is not None:
        add(root, "Severity", meta.severity)
    if meta.references:
        references = add(root, "References")
        for reference in meta.references:
            add(references, reference.kind, reference.value)
    add_supersedes_and_applies_to(root, meta.supersedes, meta.applies_to)
    if meta.files:
        files = add(root, "Files")
        for path in meta.files:
            add(files, "File").set("path", path)
    if meta.reverts:
        reverts = add(root, "Revert")
        for revert in meta.reverts:
            pkg = add(reverts, "Pkg")
            pkg.set("name", revert.name)
            pkg.set("to", revert.to)
            if revert.until is not None:
                pkg.set("until", revert.until)
    if meta.triggers:
        triggers = add(root, "Trigger")
        for name in meta.triggers:
            add(triggers, "Pkg").set("name", name)
    if meta.restart:
        restart = add(root, "Restart")
        for service in meta.restart:
            add(restart, "Service", service)
    if meta.health_check is not None:
        check = add(root, "HealthCheck", meta.health_check.command)
        check.set("timeout", str(meta.health_check.timeout))
    return root
