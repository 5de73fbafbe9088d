"""PKGINFO.meta, the metadata file of a .clp patch: reading both its forms, and writing it.

Two forms are read. The XML form (clpctl 2.1 and CLP) has root <Package> and is validated
against pkginfo.xsd beside this module, then checked for what the schema cannot say clearly
(the rules of meta.py). The legacy INI form (clpctl up to 2.0) is a [Package] section with
Name, Version, Architecture (clpctl's code spells it Architechture) and Description. Only the
XML form is written.

Reading an archive is lenient, as clpctl (which never validated the metadata) was: an
<Architechture> element (the spelling clpctl 2.0 reads) stands for <Architecture>, unknown
elements of <Package> are passed over with one warning each (PatchMeta.warnings), and a
missing Description is empty. `clp build` and writing stay strict: the canonical form only.

The input comes from archives downloaded from the network and is read by root, so the XML
parser never expands entities, never loads a DTD or anything else over the network or from
disk, and any document with a DOCTYPE or a processing instruction is refused outright. The
feed index CLP.db (feed.py) is read with the same parser and the same element helpers.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Collection
from pathlib import Path
from typing import cast

from lxml import etree

from clp_alpm.errors import MetadataError
from clp_alpm.formats.meta import (
    DEFAULT_HEALTH_TIMEOUT,
    MAX_META_BYTES,
    AppliesTo,
    HealthCheck,
    PackageRevert,
    PatchMeta,
    Reference,
    check_architecture,
    check_date,
    check_package_name,
    check_package_version,
    check_patch_id,
    check_patch_version,
    check_reference,
    check_target_path,
    check_unit_name,
    metadata_error,
    parse_constraint,
    refuse_control_characters,
)

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
INI_KEYS = {
    "Name": "Name",
    "Version": "Version",
    "Architecture": "Architecture",
    "Architechture": "Architecture",
    "Description": "Description",
    "Depends": "Depends",
}


# ---------------------------------------------------------------------------------------------
# Entry point


def bounded_input(
    data: bytes, source: str, limit: tuple[int, str], what: str, error: type[Exception]
) -> bytes:
    """`data` as bytes, or `error` when it is larger than `limit` (bytes, how it is said)."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("the documents clp parses are bytes")
    if len(data) > limit[0]:
        raise error(f"{source}: {len(data)} bytes is more than the {limit[1]} allowed for {what}")
    return bytes(data)


def parse_meta(data: bytes, source: str = "PKGINFO.meta", *, lenient: bool = False) -> PatchMeta:
    """Parse and validate PKGINFO.meta (XML or legacy INI); raise MetadataError if it is bad.
    `lenient` reads the variants clpctl accepted (see the module's docstring)."""
    limit = (MAX_META_BYTES, f"{MAX_META_BYTES // 1024} KiB")
    data = bounded_input(data, source, limit, "patch metadata", MetadataError)
    text = decode_utf8(data, source)
    if text.startswith("\ufeff"):
        text = text[1:]
        data = data[3:]
    first = _first_significant_line(text)
    if first is None:
        raise MetadataError(f"{source}: the file is empty")
    if first.startswith("<"):
        return _parse_xml(data, text, source, lenient)
    return _parse_ini(text, source, lenient)


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


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


# ---------------------------------------------------------------------------------------------
# XML


def _parse_xml(data: bytes, text: str, source: str, lenient: bool = False) -> PatchMeta:
    root = parse_untrusted_xml(data, text, source)
    if root.tag != "Package":
        raise metadata_error(
            source, source_line(root), f"the root element must be <Package>, not <{root.tag}>"
        )
    warnings: list[str] = []
    no_description = False
    if lenient:
        warnings = _tolerate_clpctl_variants(root, source)
        no_description = not any(child.tag == "Description" for child in root)
        if no_description:
            # stands in for the schema only; the description read is empty
            etree.SubElement(root, "Description").text = "-"
    elements = _package_children(root, source)
    _validate_against_schema(root, source)
    meta = _build_meta(elements, source)
    if no_description:
        meta = dataclasses.replace(meta, description="")
    return dataclasses.replace(meta, warnings=tuple(warnings)) if warnings else meta


def _tolerate_clpctl_variants(root: etree._Element, source: str) -> list[str]:
    """Make what clpctl accepted canonical in `root`: <Architechture> (clpctl 2.0's spelling)
    becomes <Architecture> when that is not given too; an unknown child is removed, with one
    warning line each."""
    warnings: list[str] = []
    spelled_right = any(child.tag == "Architecture" for child in root)
    for child in list(root):
        if child.tag == "Architechture":
            if spelled_right:
                raise metadata_error(
                    source,
                    source_line(child),
                    "both <Architecture> and <Architechture> (clpctl 2.0's spelling) are given",
                )
            child.tag = "Architecture"
            spelled_right = True
            continue
        if child.tag not in _PACKAGE_ELEMENTS:
            line = source_line(child)
            where = f"{source}:{line}" if line else source
            warnings.append(f"{where}: unknown element <{child.tag}> ignored")
            root.remove(child)
    return warnings


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
        raise metadata_error(
            source, _line_of(text, index), "a DOCTYPE is not allowed (no DTDs, no entities)"
        )
    declaration = re.match(r"<\?xml\s[^>]*?\bencoding\s*=\s*([\"'])(.*?)\1", text)
    if declaration and declaration.group(2).lower() != "utf-8":
        raise metadata_error(
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
        raise metadata_error(source, e.lineno, message) from None


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
    if _has_dtd(root):
        raise metadata_error(source, 1, "a DOCTYPE is not allowed (no DTDs, no entities)")
    outside = [*root.itersiblings(preceding=True), *root.itersiblings()]
    for node in [*outside, *root.iter(etree.ProcessingInstruction, etree.Entity)]:
        if isinstance(node, etree._ProcessingInstruction):
            raise metadata_error(
                source,
                source_line(node),
                f"processing instruction '<?{node.target!s}' is not allowed",
            )
        if isinstance(node, etree._Entity):
            raise metadata_error(source, source_line(node), f"entity '{node.text}' is not allowed")


def source_line(node: etree._Element) -> int | None:
    """The line `node` starts on in its document; None when lxml does not know it."""
    # lxml-stubs 0.5 give sourceline no type (it is only written in a comment there).
    return cast("int | None", node.sourceline)


def _has_dtd(root: etree._Element) -> bool:
    docinfo = root.getroottree().docinfo
    # lxml-stubs 0.5 lack DocInfo.doctype and declare that both DTDs are never None.
    doctype: str | None = docinfo.doctype  # type: ignore[attr-defined]
    if doctype:
        return True
    internal: etree.DTD | None = docinfo.internalDTD
    external: etree.DTD | None = docinfo.externalDTD
    return internal is not None or external is not None


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
            first = source_line(found[child.tag])
            raise metadata_error(
                source, source_line(child), f"<{child.tag}> is given twice (first on line {first})"
            )
        found[child.tag] = child
    for name in required:
        if name not in found:
            raise metadata_error(source, source_line(package), f"<Package> has no <{name}> element")
    return found


@functools.cache
def _schema() -> etree.XMLSchema:
    schema_bytes = _SCHEMA_PATH.read_bytes()
    return etree.XMLSchema(etree.fromstring(schema_bytes, safe_parser()))


def _validate_against_schema(root: etree._Element, source: str) -> None:
    schema = _schema()
    if schema.validate(root.getroottree()):
        return
    # lxml-stubs 0.5 declare the error log empty; it is a sequence of log entries.
    error = schema.error_log[0]  # type: ignore[index]
    line: int = error.line
    message: str = error.message
    raise metadata_error(source, line, _plain_schema_message(message))


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
    refuse_control_characters(value, f"<{element.tag}>", source, source_line(element))
    return value


def element_attribute(element: etree._Element, name: str, source: str) -> str | None:
    value = element.get(name)
    if value is None:
        return None
    value = value.strip(_XML_WHITESPACE)
    refuse_control_characters(value, f"attribute '{name}'", source, source_line(element))
    return value


def _build_meta(elements: dict[str, etree._Element], source: str) -> PatchMeta:
    def text_of(tag: str) -> str | None:
        return element_text(elements[tag], source) if tag in elements else None

    def line_of(tag: str) -> int | None:
        return source_line(elements[tag]) if tag in elements else None

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
    check_reference(element.tag, value, source, source_line(element))
    return Reference(kind=element.tag, value=value)


def parse_applies_to(element: etree._Element, source: str) -> AppliesTo:
    name = element_attribute(element, "name", source) or ""
    check_package_name(name, source, source_line(element))
    raw = element_attribute(element, "version", source)
    constraint = None if raw is None else parse_constraint(raw, source, source_line(element))
    return AppliesTo(name=name, constraint=constraint)


def parse_supersedes(elements: list[etree._Element], own_name: str, source: str) -> tuple[str, ...]:
    """The patch ids of <Supersedes><Patch>ID</Patch>...</Supersedes> of the patch `own_name`."""
    ids: list[str] = []
    first_line: dict[str, int | None] = {}
    for element in elements:
        patch_id = element_text(element, source)
        check_patch_id(patch_id, source, source_line(element))
        if patch_id == own_name:
            raise metadata_error(
                source, source_line(element), f"patch '{own_name}' cannot supersede itself"
            )
        if patch_id in first_line:
            raise metadata_error(
                source,
                source_line(element),
                f"patch '{patch_id}' is listed twice in <Supersedes> "
                f"(first on line {first_line[patch_id]})",
            )
        first_line[patch_id] = source_line(element)
        ids.append(patch_id)
    return tuple(ids)


def _files(elements: list[etree._Element], source: str) -> tuple[str, ...]:
    paths: list[str] = []
    first_line: dict[str, int | None] = {}
    for element in elements:
        raw = element.get("path", "")
        clean = check_target_path(raw, source, source_line(element))
        if clean in first_line:
            raise metadata_error(
                source,
                source_line(element),
                f"file '{raw}' is listed twice (as '{clean}', first on line {first_line[clean]})",
            )
        first_line[clean] = source_line(element)
        paths.append(clean)
    return tuple(paths)


def _reverts(elements: list[etree._Element], source: str) -> tuple[PackageRevert, ...]:
    reverts: list[PackageRevert] = []
    seen: set[str] = set()
    for element in elements:
        line = source_line(element)
        name = element_attribute(element, "name", source) or ""
        check_package_name(name, source, line)
        if name in seen:
            raise metadata_error(source, line, f"package '{name}' is listed twice in <Revert>")
        seen.add(name)
        to = element_attribute(element, "to", source) or ""
        until = element_attribute(element, "until", source)
        check_package_version(to, "to", source, line)
        if until is not None:
            check_package_version(until, "until", source, line)
        reverts.append(PackageRevert(name=name, to=to, until=until))
    return tuple(reverts)


def _triggers(elements: list[etree._Element], source: str) -> tuple[str, ...]:
    names: list[str] = []
    for element in elements:
        name = element_attribute(element, "name", source) or ""
        check_package_name(name, source, source_line(element))
        if name in names:
            raise metadata_error(
                source, source_line(element), f"package '{name}' is listed twice in <Trigger>"
            )
        names.append(name)
    return tuple(names)


def _services(elements: list[etree._Element], source: str) -> tuple[str, ...]:
    services: list[str] = []
    for element in elements:
        unit = element_text(element, source)
        check_unit_name(unit, source, source_line(element))
        if unit in services:
            raise metadata_error(source, source_line(element), f"service '{unit}' is listed twice")
        services.append(unit)
    return tuple(services)


def _health_check(element: etree._Element, source: str) -> HealthCheck:
    timeout = element_attribute(element, "timeout", source)
    # The schema has already checked that timeout is an integer from 1 to 3600.
    return HealthCheck(
        command=element_text(element, source),
        timeout=int(timeout) if timeout is not None else DEFAULT_HEALTH_TIMEOUT,
    )


# ---------------------------------------------------------------------------------------------
# Legacy INI (clpctl up to 2.0)


def _parse_ini(text: str, source: str, lenient: bool = False) -> PatchMeta:
    header_line: int | None = None
    values: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        refuse_control_characters(line, "the line", source, number)
        if line.startswith("["):
            if header_line is not None or line != "[Package]":
                raise metadata_error(source, number, f"unexpected section '{line}'; only [Package]")
            header_line = number
            continue
        if header_line is None:
            raise metadata_error(source, number, "expected the [Package] header first")
        key, separator, value = line.partition("=")
        key = key.strip()
        if not separator:
            raise metadata_error(source, number, f"expected 'Key=Value', found '{line}'")
        if key not in INI_KEYS:
            raise metadata_error(source, number, f"unknown key '{key}'")
        field = INI_KEYS[key]
        if field in values:
            raise metadata_error(
                source, number, f"'{key}' is given twice (first on line {values[field][1]})"
            )
        values[field] = (value.strip(), number)

    if header_line is None:
        raise metadata_error(source, None, "no [Package] section")
    if lenient:
        values.setdefault("Description", ("", header_line))
    for field in _REQUIRED_ELEMENTS:
        if lenient and field == "Description":
            continue
        if field not in values:
            raise metadata_error(source, header_line, f"[Package] has no '{field}' key")
        if not values[field][0]:
            raise metadata_error(source, values[field][1], f"'{field}' is empty")

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
