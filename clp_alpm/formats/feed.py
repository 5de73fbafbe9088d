"""The patch feed: `CLP.db`, the index a mirror serves beside the `<Name>.clp` files.

CLP.db is XML with one <Package> per patch. Name, Version and Architecture are what clpctl 2.1
reads; CLP adds Description, SHA256, Size, Date, Severity, Supersedes and AppliesTo, which
clpctl ignores. In CLP.db a non-numeric <Version> names the edition the patch is for
(VARIANT_ID in /etc/os-release); a numeric one is a patch version for every edition.

    <Database generated="2026-11-25T12:00:00Z" expires="2026-12-25T12:00:00Z" version="1">
      <Package>
        <Name>CLPR261125</Name><Version>1</Version><Architecture>x86_64</Architecture>
        <SHA256>…</SHA256><Size>2048</Size>
        <Supersedes><Patch>CLPR261101</Patch></Supersedes>
        <AppliesTo><Pkg name="openssh" version="&lt;9.9p2-1"/></AppliesTo>
      </Package>
    </Database>

Every generation of clpctl's CLP.db is read too, each as clpctl read it:

    1.x   text, one `Name=<ID>` line per patch (other lines are ignored)
    2.0   XML whose root holds one <Name>: the one patch it lists
    2.1   XML with <Package> elements at any depth (clpctl selects //Package), each with
          Name, Version (the edition: VARIANT_ID, compared case-insensitively) and
          Architecture

`generated` is when `clp repo-add` wrote the index and `expires` when it stops being good
(`clp repo-add --expires DAYS`): a client refuses an index past its `expires`, so that a
mirror frozen on an old but validly signed index is noticed. Indexes of clpctl and of older
clp releases have no `expires` and are read as before.

clpctl 1.x and 2.0 entries say nothing of version, architecture or edition: the patch's own
metadata decides when it is applied. `clp repo-add --edition` writes the edition in <Version>
for clpctl 2.1 clients and the patch version beside it in <PatchVersion>, which clp reads.

The index comes from the network and is read by root: it is parsed with the same hostile-XML
rules as PKGINFO.meta (pkginfo.parse_untrusted_xml). Unlike PKGINFO.meta, unknown elements are
ignored, so that a newer feed still reads; a known element with a bad value is an error naming
its line. Signatures (CLP.db.sig) are checked elsewhere, before the index is parsed.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from clp_alpm.atomicfile import write_atomically
from clp_alpm.errors import FeedError, MetadataError, OperationFailed
from clp_alpm.formats.inspect import inspect_patch
from clp_alpm.formats.meta import (
    SEVERITIES,
    AppliesTo,
    check_architecture,
    check_date,
    check_patch_id,
    check_patch_version,
)
from clp_alpm.formats.pkginfo import (
    add_element,
    add_supersedes_and_applies_to,
    bounded_input,
    decode_utf8,
    element_attribute,
    element_text,
    package_children,
    parse_applies_to,
    parse_supersedes,
    parse_untrusted_xml,
    source_line,
)
from clp_alpm.osrelease import os_release_value, read_os_release

MAX_INDEX_BYTES = 16 * 1024 * 1024
INDEX_NAME = "CLP.db"
SIGNATURE_SUFFIX = ".sig"
INDEX_FORMAT_VERSION = "1"
ROOT_ELEMENT = "Database"
PATCH_SUFFIX = ".clp"
CLPCTL_PATCH_SUFFIX = ".CLP"  # clpctl's name for the same file

_KNOWN_ELEMENTS = (
    "Name",
    "Version",
    "PatchVersion",
    "Architecture",
    "Description",
    "SHA256",
    "Size",
    "Date",
    "Severity",
    "Supersedes",
    "AppliesTo",
)
_REQUIRED_ELEMENTS = ("Name", "Version", "Architecture")
_WHAT = "a patch index"

# Only digits and dots: a patch version for every edition. Anything else names an edition.
_NUMERIC_VERSION = re.compile(r"[0-9.]*[0-9][0-9.]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SIZE = re.compile(r"[0-9]{1,19}")
_MAX_SIZE = 2**63 - 1
_STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_SERVER_SCHEMES = ("http", "https", "file")
_SERVER_VARIABLE = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")


# The generations of CLP.db (FeedIndex.format)
FORMAT_PACKAGES = "packages"  # <Package> elements: clp, and clpctl 2.1
FORMAT_CLPCTL_20 = "clpctl-2.0"  # XML whose root holds one <Name>
FORMAT_CLPCTL_1 = "clpctl-1"  # text, Name=<ID> lines
_TEXT_NAME_PREFIX = "Name="


# ---------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True)
class FeedEntry:
    """One <Package> of CLP.db: a patch the mirror serves as `<name>.clp` (or `.CLP`).

    `version` and `architecture` are None in the indexes of clpctl 1.x and 2.0, which name the
    patch only. A non-numeric `version` names an edition; `patch_version` is then the patch's
    version when the index gives it (<PatchVersion>, written by `clp repo-add --edition`)."""

    name: str
    version: str | None
    architecture: str | None
    description: str | None = None
    sha256: str | None = None
    size: int | None = None
    date: str | None = None
    severity: str | None = None
    supersedes: tuple[str, ...] = ()
    applies_to: tuple[AppliesTo, ...] = ()
    patch_version: str | None = None

    @property
    def edition(self) -> str | None:
        """The edition (os-release VARIANT_ID) the Version names, or None for a numeric one
        (or none at all): a patch for every edition."""
        if self.version is None or _NUMERIC_VERSION.fullmatch(self.version):
            return None
        return self.version

    @property
    def listed_version(self) -> str | None:
        """The patch version the index states, or None when it states none."""
        if self.patch_version is not None:
            return self.patch_version
        return self.version if self.edition is None else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "version": self.version,
            "edition": self.edition,
            "patch_version": self.listed_version,
            "architecture": self.architecture,
            "description": self.description,
            "sha256": self.sha256,
            "size": self.size,
            "date": self.date,
            "severity": self.severity,
            "supersedes": list(self.supersedes),
            "applies_to": [
                {
                    "name": a.name,
                    "op": a.constraint.op if a.constraint else None,
                    "version": a.constraint.version if a.constraint else None,
                }
                for a in self.applies_to
            ],
        }


@dataclass(frozen=True)
class FeedIndex:
    entries: tuple[FeedEntry, ...]
    generated: str | None = None  # RFC 3339 UTC, "YYYY-mm-ddTHH:MM:SSZ"
    format: str = FORMAT_PACKAGES  # which generation of CLP.db it was read from
    expires: str | None = None  # the same form; None: the index never expires (older feeds)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"generated": self.generated, "expires": self.expires, "format": self.format,
                "entries": [e.to_dict() for e in self.entries]}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Reading


def parse_index(data: bytes, source: str = INDEX_NAME) -> FeedIndex:
    """Parse and check a CLP.db of any generation (clp's, clpctl 2.1's, 2.0's XML, 1.x's
    text); raise FeedError naming `source` and the line if it is bad."""
    limit = (MAX_INDEX_BYTES, f"{MAX_INDEX_BYTES // (1024 * 1024)} MiB")
    data = bounded_input(data, source, limit, "a patch index", FeedError)
    with _as_feed_error():
        text = decode_utf8(data, source, _WHAT)
        if text.startswith("\ufeff"):
            text = text[1:]
            data = data[3:]
        if not text.strip():
            raise FeedError(f"{source}: the file is empty")
        if not text.lstrip().startswith("<"):
            return _parse_text_index(text, source)
        root = parse_untrusted_xml(data, text, source, _WHAT)
        packages = _package_elements(root, source)
        if not packages:
            single = _single_name_entry(root, source)
            if single is not None:
                return FeedIndex(entries=(single,), format=FORMAT_CLPCTL_20)
        generated, expires = _root_attributes(root, source)
        entries = tuple(_entry(package, source) for package in packages)
    _refuse_duplicate_entries(entries, packages, source)
    return FeedIndex(entries=entries, generated=generated, expires=expires)


def _parse_text_index(text: str, source: str) -> FeedIndex:
    """clpctl 1.x: every line that starts with `Name=` names a patch, the value being what
    lies between the first `=` and the next (clpctl splits on '='); other lines are ignored."""
    entries: list[FeedEntry] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        if raw.strip().startswith("[") and raw.strip().endswith("]"):
            raise _fail(
                source,
                number,
                f"{raw.strip()} is a section of an INI file (a PKGINFO.meta?): "
                "this is not a patch index",
            )
        if not raw.startswith(_TEXT_NAME_PREFIX):
            continue
        name = raw.split("=")[1].strip()
        check_patch_id(name, source, number)
        if name in first_line:
            raise _fail(
                source, number, f"patch '{name}' is listed twice (first on line {first_line[name]})"
            )
        first_line[name] = number
        entries.append(FeedEntry(name, None, None))
    if not entries:
        raise _fail(source, None, "no 'Name=' line and no XML: this is not a patch index")
    return FeedIndex(entries=tuple(entries), format=FORMAT_CLPCTL_1)


def _single_name_entry(root: etree._Element, source: str) -> FeedEntry | None:
    """clpctl 2.0: the root holds one <Name>, the one patch the index lists (clpctl reads the
    first one only, so more than one is refused as ambiguous). None when there is no <Name>."""
    names = [child for child in root if child.tag == "Name"]
    if not names:
        return None
    if len(names) > 1:
        raise _fail(
            source,
            source_line(names[1]),
            f"the root holds {len(names)} <Name> elements; a clpctl 2.0 index lists one "
            "patch (clpctl reads only the first): refused as ambiguous",
        )
    name = element_text(names[0], source) or ""
    check_patch_id(name, source, source_line(names[0]))
    return FeedEntry(name, None, None)


@contextmanager
def _as_feed_error() -> Iterator[None]:
    """meta's and pkginfo's checks raise MetadataError: here a FeedError with the same message."""
    try:
        yield
    except MetadataError as e:
        raise FeedError(e.message) from None


def _fail(source: str, line: int | None, message: str) -> FeedError:
    return FeedError(f"{source}:{line}: {message}" if line else f"{source}: {message}")


def _root_attributes(root: etree._Element, source: str) -> tuple[str | None, str | None]:
    version = element_attribute(root, "version", source)
    if version is not None and version != INDEX_FORMAT_VERSION:
        raise _fail(
            source,
            source_line(root),
            f"index format version '{version}' is not supported "
            f"(this clp reads version {INDEX_FORMAT_VERSION})",
        )
    generated = element_attribute(root, "generated", source)
    if generated is not None and _parse_stamp(generated) is None:
        raise _fail(
            source,
            source_line(root),
            f"generated='{generated}' is not a UTC time in the form YYYY-MM-DDTHH:MM:SSZ",
        )
    expires = element_attribute(root, "expires", source)
    if expires is not None:
        until = _parse_stamp(expires)
        if until is None:
            raise _fail(
                source,
                source_line(root),
                f"expires='{expires}' is not a UTC time in the form YYYY-MM-DDTHH:MM:SSZ",
            )
        since = None if generated is None else _parse_stamp(generated)
        if since is not None and until <= since:
            raise _fail(
                source,
                source_line(root),
                f"expires='{expires}' is not later than generated='{generated}'",
            )
    return generated, expires


def _package_elements(root: etree._Element, source: str) -> list[etree._Element]:
    """The <Package> elements at any depth, as clpctl 2.1 selects them (//Package). A
    <Package> inside another, or beside a <Name> of the root (clpctl 2.0's shape), is refused:
    which patches the index lists would be ambiguous. A root with other content but no
    <Package> and no <Name> is not an index (an HTML error page served as CLP.db, a
    PKGINFO.meta); an empty root is."""
    packages = [p for p in root.iter("Package") if p is not root]
    for package in packages:
        outer = next((p for p in package.iterancestors("Package")), None)
        if outer is not None:
            raise _fail(
                source,
                source_line(package),
                f"a <Package> inside the <Package> of line {source_line(outer)}: "
                "refused as ambiguous",
            )
    if packages:
        stray = next((child for child in root if child.tag == "Name"), None)
        if stray is not None:
            raise _fail(
                source,
                source_line(stray),
                "the root holds both a <Name> (a clpctl 2.0 index) and <Package> elements "
                "(clpctl 2.1): refused as ambiguous",
            )
        return packages
    if root.tag != "Package" and any(child.tag == "Name" for child in root):
        return []  # clpctl 2.0 (a root <Package> is a PKGINFO.meta)
    has_elements = any(isinstance(child.tag, str) for child in root)
    has_text = any(text.strip() for text in root.itertext())
    if has_elements or has_text:
        name = etree.QName(root).localname
        raise _fail(
            source,
            source_line(root),
            f"<{name}> holds no <Package> elements: this is not a patch index",
        )
    return []


def _entry(package: etree._Element, source: str) -> FeedEntry:
    elements = package_children(package, _KNOWN_ELEMENTS, _REQUIRED_ELEMENTS, source)

    def text_of(tag: str) -> str | None:
        return element_text(elements[tag], source) if tag in elements else None

    def line_of(tag: str) -> int | None:
        return source_line(elements[tag]) if tag in elements else None

    def children(tag: str, child_tag: str) -> list[etree._Element]:
        return [c for c in elements[tag] if c.tag == child_tag] if tag in elements else []

    name = text_of("Name") or ""
    version = text_of("Version") or ""
    architecture = text_of("Architecture") or ""
    check_patch_id(name, source, line_of("Name"))
    check_patch_version(version, source, line_of("Version"))
    check_architecture(architecture, source, line_of("Architecture"))
    patch_version = text_of("PatchVersion")
    if patch_version is not None:
        check_patch_version(patch_version, source, line_of("PatchVersion"))
        if not _NUMERIC_VERSION.fullmatch(patch_version):
            raise _fail(
                source,
                line_of("PatchVersion"),
                f"<PatchVersion> '{patch_version}' is not a version (digits and dots)",
            )
    return FeedEntry(
        patch_version=patch_version,
        name=name,
        version=version,
        architecture=architecture,
        description=text_of("Description") or None,
        sha256=_sha256(text_of("SHA256"), source, line_of("SHA256")),
        size=_size(text_of("Size"), source, line_of("Size")),
        date=_date(text_of("Date"), source, line_of("Date")),
        severity=_severity(text_of("Severity"), source, line_of("Severity")),
        supersedes=parse_supersedes(children("Supersedes", "Patch"), name, source),
        applies_to=tuple(parse_applies_to(c, source) for c in children("AppliesTo", "Pkg")),
    )


def _sha256(value: str | None, source: str, line: int | None) -> str | None:
    if value is not None and not _SHA256.fullmatch(value):
        raise _fail(source, line, f"SHA256 '{value}' is not 64 lowercase hexadecimal digits")
    return value


def _size(value: str | None, source: str, line: int | None) -> int | None:
    if value is None:
        return None
    if not _SIZE.fullmatch(value) or int(value) > _MAX_SIZE:
        raise _fail(source, line, f"size '{value}' is not a whole number of bytes")
    return int(value)


def _date(value: str | None, source: str, line: int | None) -> str | None:
    if value is not None:
        check_date(value, source, line)
    return value


def _severity(value: str | None, source: str, line: int | None) -> str | None:
    if value is not None and value not in SEVERITIES:
        raise _fail(
            source,
            line,
            f"'{value}' is not a valid value for <Severity> (one of: {', '.join(SEVERITIES)})",
        )
    return value


def _refuse_duplicate_entries(
    entries: tuple[FeedEntry, ...], packages: list[etree._Element], source: str
) -> None:
    first_line: dict[tuple[str, str | None], int | None] = {}
    for entry, package in zip(entries, packages, strict=True):
        key = (entry.name, None if entry.version is None else entry.version.casefold())
        if key in first_line:
            raise _fail(
                source,
                source_line(package),
                f"patch '{entry.name}' version '{entry.version}' is listed twice "
                f"(first on line {first_line[key]})",
            )
        first_line[key] = source_line(package)


# ---------------------------------------------------------------------------------------------
# Writing


def render_index(index: FeedIndex) -> bytes:
    """Canonical CLP.db for `index`; raises FeedError if it would not read back the same."""
    try:
        body = etree.tostring(_index_tree(index), encoding="unicode", pretty_print=True)
        data = ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError) as e:
        raise FeedError(f"{INDEX_NAME}: cannot write the index: {e}") from None
    again = parse_index(data)  # what we write must be what we accept
    if again != index:
        raise FeedError(f"{INDEX_NAME}: cannot write the index: {_first_difference(index, again)}")
    return data


def _index_tree(index: FeedIndex) -> etree._Element:
    root = etree.Element(ROOT_ELEMENT)
    if index.generated is not None:
        root.set("generated", index.generated)
    if index.expires is not None:
        root.set("expires", index.expires)
    root.set("version", INDEX_FORMAT_VERSION)
    for entry in index.entries:
        _add_entry(root, entry)
    return root


def _add_entry(root: etree._Element, entry: FeedEntry) -> None:
    package = etree.SubElement(root, "Package")
    add = add_element

    if entry.version is None or entry.architecture is None:
        raise ValueError(f"patch '{entry.name}' has no version or architecture")
    add(package, "Name", entry.name)
    add(package, "Version", entry.version)
    if entry.patch_version is not None:
        add(package, "PatchVersion", entry.patch_version)
    add(package, "Architecture", entry.architecture)
    optional = (
        ("Description", entry.description),
        ("SHA256", entry.sha256),
        ("Size", None if entry.size is None else str(entry.size)),
        ("Date", entry.date),
        ("Severity", entry.severity),
    )
    for tag, value in optional:
        if value is not None:
            add(package, tag, value)
    add_supersedes_and_applies_to(package, entry.supersedes, entry.applies_to)


def _first_difference(wanted: FeedIndex, read: FeedIndex) -> str:
    if wanted.generated != read.generated:
        return f"generated={wanted.generated!r} does not read back the same"
    if wanted.expires != read.expires:
        return f"expires={wanted.expires!r} does not read back the same"
    for mine, theirs in zip(wanted.entries, read.entries, strict=False):
        if mine != theirs:
            changed = [
                f.name for f in fields(mine) if getattr(mine, f.name) != getattr(theirs, f.name)
            ]
            return (
                f"patch '{mine.name}': {', '.join(changed)} would not read back as written "
                "(empty, or with whitespace at either end?)"
            )
    return "the index would not read back as written"


DEFAULT_VALID_DAYS = 30  # how long an index `clp repo-add` writes stays good
MAX_VALID_DAYS = 3660


def build_index(
    directory: Path,
    generated: str | None = None,
    editions: tuple[str, ...] = (),
    valid_days: int = 0,
) -> FeedIndex:
    """The index of every `*.clp` and `*.CLP` in `directory` (`clp repo-add DIR`), sorted by
    file name, good for `valid_days` days after `generated` (0: it never expires).

    Each patch is inspected in full; one bad patch or a file not named `<Name>.clp` (or
    `<Name>.CLP`, clpctl's name) refuses the whole run. `generated` defaults to now (UTC).
    With `editions`, each patch is listed once per edition, the edition in <Version> where
    clpctl 2.1 looks for it, the patch's version beside it in <PatchVersion> for clp.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FeedError(f"{directory}: not a directory")
    if generated is None:
        generated = utc_stamp()
    elif _parse_stamp(generated) is None:
        raise FeedError(
            f"generated='{generated}' is not a UTC time in the form YYYY-MM-DDTHH:MM:SSZ"
        )
    if not 0 <= valid_days <= MAX_VALID_DAYS:
        raise FeedError(f"--expires {valid_days}: give a number of days from 0 to {MAX_VALID_DAYS}")
    since = _parse_stamp(generated)
    assert since is not None
    expires = (
        utc_stamp((since + datetime.timedelta(days=valid_days)).replace(tzinfo=datetime.UTC))
        if valid_days
        else None
    )
    for edition in editions:
        check_edition(edition)
    if len({e.casefold() for e in editions}) != len(editions):
        raise FeedError(f"an edition is given twice: {', '.join(editions)}")
    # File names are unique and each must be <Name>.clp or .CLP (not both), so no patch name
    # can come twice.
    entries = tuple(_entry_of_patch(path) for path in _patch_files(directory))
    if editions:
        entries = tuple(
            dataclasses.replace(entry, version=edition, patch_version=entry.version)
            for entry in entries
            for edition in editions
        )
    return FeedIndex(entries=entries, generated=generated, expires=expires)


_EDITION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def check_edition(edition: str) -> None:
    """An edition names a VARIANT_ID of os-release: a word that is not a version number."""
    if not _EDITION.fullmatch(edition) or _NUMERIC_VERSION.fullmatch(edition):
        raise FeedError(
            f"edition '{edition}' is not valid: an edition is an os-release VARIANT_ID "
            "(e.g. workstation), letters, digits, '.', '_', '+' or '-', not a version number"
        )


def _patch_files(directory: Path) -> list[Path]:
    try:
        names = sorted(entry.name for entry in os.scandir(directory))
    except OSError as e:
        raise FeedError(f"{directory}: cannot list the directory: {e.strerror}") from None
    present = set(names)
    for name in names:
        if name.endswith(CLPCTL_PATCH_SUFFIX):
            lower = name[: -len(CLPCTL_PATCH_SUFFIX)] + PATCH_SUFFIX
            links = (directory / lower).is_symlink() or (directory / name).is_symlink()
            if lower in present and not links:
                raise FeedError(
                    f"{name} and {lower} are both here: keep one of them (a link serves "
                    "the other name)"
                )
        elif name.lower().endswith(PATCH_SUFFIX) and not name.endswith(PATCH_SUFFIX):
            stem = name[: -len(PATCH_SUFFIX)]
            raise FeedError(
                f"{name}: mirrors serve patches as <Name>.clp (or clpctl's <Name>.CLP); "
                f"rename it to {stem}{PATCH_SUFFIX}"
            )
    return [
        directory / name
        for name in names
        if name.endswith((PATCH_SUFFIX, CLPCTL_PATCH_SUFFIX))
        and not name.startswith(".")
        and not (directory / name).is_symlink()  # a link serving another name of a patch
    ]


def _entry_of_patch(path: Path) -> FeedEntry:
    archive = inspect_patch(path)  # PatchFormatError naming the file if it is bad
    meta = archive.meta
    expected = f"{meta.name}{PATCH_SUFFIX}"
    if path.name not in (expected, f"{meta.name}{CLPCTL_PATCH_SUFFIX}"):
        raise FeedError(
            f"{path.name}: the patch inside is named {meta.name}; mirrors serve it as "
            f"{expected}, so rename the file to {expected}"
        )
    return FeedEntry(
        name=meta.name,
        version=meta.version,
        architecture=meta.architecture,
        description=meta.description or None,
        sha256=archive.sha256,
        size=archive.size,
        date=meta.date,
        severity=meta.severity,
        supersedes=meta.supersedes,
        applies_to=meta.applies_to,
    )


def write_index(directory: Path, index: FeedIndex) -> Path:
    """Write `index` as DIR/CLP.db atomically and remove DIR/CLP.db.sig, which would not match
    the new index (sign it again afterwards). Returns the path of CLP.db."""
    directory = Path(directory)
    data = render_index(index)
    target = directory / INDEX_NAME
    signature = directory / (INDEX_NAME + SIGNATURE_SUFFIX)
    try:
        # The old signature goes first: a crash in between leaves an unsigned old index, never
        # a new index beside a signature that does not match it.
        signature.unlink(missing_ok=True)
        write_atomically(target, data)
    except OSError as e:
        where = e.filename or target
        raise OperationFailed(f"{where}: cannot write the patch index: {e.strerror or e}") from None
    return target


# ---------------------------------------------------------------------------------------------
# Editions, mirrors, freshness


def read_variant_id(root: Path) -> str | None:
    """VARIANT_ID of the system at `root`, from /etc/os-release or else /usr/lib/os-release
    (symbolic links resolved inside `root`); None when the file or the variable is absent."""
    text = read_os_release(root)
    return None if text is None else os_release_value(text, "VARIANT_ID")


def applicable_edition(entry: FeedEntry, variant_id: str | None) -> bool:
    """True when `entry` is for this edition: a numeric version (or none) is for every
    edition, an edition name only for the system whose VARIANT_ID is that name, compared
    case-insensitively as clpctl compares them."""
    edition = entry.edition
    return edition is None or (
        variant_id is not None and edition.casefold() == variant_id.casefold()
    )


def expand_server(server: str, arch: str) -> str:
    """A `Server =` value with `$arch` expanded, as pacman does; only http://, https:// and
    file:// servers are accepted."""
    server = server.strip()
    if not re.fullmatch(r"[a-z0-9_]{1,32}", arch):
        raise FeedError(f"architecture '{arch}' is not valid (e.g. x86_64, aarch64)")
    if any(c.isspace() or not c.isprintable() for c in server):
        raise FeedError(f"server {server!r} contains a space or a control character")

    def expand(match: re.Match[str]) -> str:
        if match.group(0) == "$arch":
            return arch
        raise FeedError(
            f"server '{server}': unknown variable '{match.group(0)}' (only $arch is expanded)"
        )

    expanded = _SERVER_VARIABLE.sub(expand, server)
    parts = urlsplit(expanded)
    scheme = parts.scheme.lower()
    if scheme not in _SERVER_SCHEMES:
        raise FeedError(
            f"server '{server}' is not an http://, https:// or file:// URL"
            + (f" (scheme '{parts.scheme}')" if parts.scheme else "")
        )
    if scheme in ("http", "https") and not parts.hostname:
        raise FeedError(f"server '{server}' names no host")
    if scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path):
        raise FeedError(f"server '{server}' must be file:///absolute/path")
    return expanded


def utc_stamp(moment: datetime.datetime | None = None) -> str:
    """`moment` (default: now) as an RFC 3339 UTC stamp, "YYYY-mm-ddTHH:MM:SSZ"."""
    moment = moment or datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime(_STAMP_FORMAT)


def newer_than(generated: str | None, last_seen: str | None) -> bool | None:
    """Compare the `generated` stamp of an index with the last one seen: True when it is as
    new or newer (a mirror may serve the same index again), False when it is older (a stale
    mirror or a replay), None when either is unknown."""
    if generated is None or last_seen is None:
        return None
    stamps = []
    for stamp in (generated, last_seen):
        parsed = _parse_stamp(stamp)
        if parsed is None:
            raise FeedError(f"'{stamp}' is not a UTC time in the form YYYY-MM-DDTHH:MM:SSZ")
        stamps.append(parsed)
    return stamps[0] >= stamps[1]


FUTURE_SKEW = datetime.timedelta(hours=1)  # how far ahead of this clock a signer's may run


def check_timely(index: FeedIndex, now: datetime.datetime | None = None) -> None:
    """Refuse an index stamped beyond FUTURE_SKEW into the future (a signer's clock gone
    wrong: accepting it would make every later, correct index look like a replay) and one
    past its `expires` (a mirror frozen on an old index, or a feed nobody re-signs)."""
    moment = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    moment = moment.replace(tzinfo=None)
    if index.generated is not None:
        since = _parse_stamp(index.generated)
        if since is not None and since > moment + FUTURE_SKEW:
            raise FeedError(
                f"index generated {index.generated} lies in the future (this clock says "
                f"{utc_stamp(now)}): refused; the publisher's clock is wrong"
            )
    if index.expires is not None:
        until = _parse_stamp(index.expires)
        if until is not None and until <= moment:
            raise FeedError(
                f"index expired on {index.expires} (generated {index.generated or 'unknown'}): "
                "the mirror is frozen on an old index, or the feed is no longer re-signed"
            )


def in_the_future(stamp: str, now: datetime.datetime | None = None) -> bool:
    """True when `stamp` lies more than FUTURE_SKEW ahead of now (False if unreadable)."""
    parsed = _parse_stamp(stamp)
    moment = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    return parsed is not None and parsed > moment.replace(tzinfo=None) + FUTURE_SKEW


def _parse_stamp(stamp: str) -> datetime.datetime | None:
    if not isinstance(stamp, str) or not _STAMP.fullmatch(stamp):
        return None
    try:
        return datetime.datetime.strptime(stamp, _STAMP_FORMAT)
    except ValueError:
        return None
