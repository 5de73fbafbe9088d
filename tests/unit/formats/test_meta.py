"""PKGINFO.meta: parsing both forms, the schema, hostile XML, and the render/parse round trip."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from clp_alpm.cli.exits import exit_code_for
from clp_alpm.errors import MetadataError, PatchFormatError, UsageError
from clp_alpm.formats import pkginfo
from clp_alpm.formats.meta import (
    MAX_META_BYTES,
    AppliesTo,
    HealthCheck,
    PackageRevert,
    PatchMeta,
    Reference,
    VersionConstraint,
    names_other_record,
    patch_id_is_valid,
)
from clp_alpm.formats.pkginfo import parse_meta, render_meta

# The example PKGINFO.meta of the project's original design, verbatim (comments included).
DESIGN_EXAMPLE = b"""<Package>
  <Name>CLPR261125</Name>                  <!-- patch id; clpctl: required -->
  <Version>1</Version>                     <!-- clpctl: required -->
  <Architecture>x86_64</Architecture>      <!-- x86_64 | aarch64 | any; clpctl: required -->
  <Description>Harden sshd MACs</Description> <!-- clpctl: required -->
  <Date>2026-11-25</Date>
  <Packager>Vincent OS Security &lt;security@example.org&gt;</Packager>
  <Severity>critical</Severity>            <!-- critical | high | medium | low -->
  <References><CVE>CVE-2026-0001</CVE><URL>https://example.org/advisory</URL></References>
  <AppliesTo><Pkg name="openssh" version="&lt;9.9p2-1"/></AppliesTo>
  <Files><File path="/etc/ssh/sshd_config"/><File path="/etc/ssh/sshd_config.d/50-clp.conf"/></Files>
  <Revert><Pkg name="nvidia-utils" to="550.78-1" until="555.58-2"/></Revert>
  <Trigger><Pkg name="openssh"/></Trigger> <!-- re-run after this package is installed/upgraded -->
  <Restart><Service>sshd.service</Service></Restart>
  <HealthCheck timeout="30">systemctl is-active sshd.service</HealthCheck>
</Package>
"""  # noqa: E501 (kept verbatim)

DESIGN_EXPECTED = PatchMeta(
    name="CLPR261125",
    version="1",
    architecture="x86_64",
    description="Harden sshd MACs",
    date="2026-11-25",
    packager="Vincent OS Security <security@example.org>",
    severity="critical",
    references=(
        Reference("CVE", "CVE-2026-0001"),
        Reference("URL", "https://example.org/advisory"),
    ),
    applies_to=(AppliesTo("openssh", VersionConstraint("<", "9.9p2-1")),),
    files=("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/50-clp.conf"),
    reverts=(PackageRevert("nvidia-utils", "550.78-1", "555.58-2"),),
    triggers=("openssh",),
    restart=("sshd.service",),
    health_check=HealthCheck("systemctl is-active sshd.service", 30),
    legacy=False,
)

# clpctl's example/CLPRYYMMDD/PKGINFO.meta on master, byte for byte (no trailing newline).
CLPCTL_EXAMPLE_INI = (
    b"[Package]\nName=CLPRYYMMDD\nVersion=1\nArchitecture=x86_64\nDescription=Example CLP Patch"
)

REQUIRED = {
    "Name": "<Name>CLPR261125</Name>",
    "Version": "<Version>1</Version>",
    "Architecture": "<Architecture>x86_64</Architecture>",
    "Description": "<Description>Harden sshd MACs</Description>",
}


def xml(*extra: str, drop: str | None = None, first: str = "") -> bytes:
    """A <Package> with the four required elements (one per line, from line 2) plus `extra`."""
    children = [text for tag, text in REQUIRED.items() if tag != drop] + list(extra)
    return (first + "<Package>\n" + "\n".join(children) + "\n</Package>\n").encode()


def error_of(data: bytes, source: str = "PKGINFO.meta") -> str:
    with pytest.raises(MetadataError) as caught:
        parse_meta(data, source)
    return str(caught.value)


# -- the XML form ------------------------------------------------------------------------------


def test_design_example_parses_to_expected_values() -> None:
    assert parse_meta(DESIGN_EXAMPLE) == DESIGN_EXPECTED


def test_to_dict_is_json_ready() -> None:
    data = json.loads(json.dumps(parse_meta(DESIGN_EXAMPLE).to_dict()))
    assert data["name"] == "CLPR261125"
    assert data["applies_to"] == [{"name": "openssh", "op": "<", "version": "9.9p2-1"}]
    assert data["reverts"] == [{"name": "nvidia-utils", "to": "550.78-1", "until": "555.58-2"}]
    assert data["references"][0] == {"kind": "CVE", "value": "CVE-2026-0001"}
    assert data["health_check"] == {"command": "systemctl is-active sshd.service", "timeout": 30}
    assert data["files"] == ["/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/50-clp.conf"]
    assert data["legacy"] is False
    assert data["supersedes"] == []


def test_element_order_does_not_matter() -> None:
    root = etree.fromstring(DESIGN_EXAMPLE, etree.XMLParser(remove_comments=True))
    children = list(root)
    for child in children:
        root.remove(child)
    for child in reversed(children):
        root.append(child)
    shuffled = etree.tostring(root)
    assert shuffled.index(b"<HealthCheck") < shuffled.index(b"<Name>")
    assert parse_meta(shuffled) == DESIGN_EXPECTED


def test_crlf_line_ends_parse_the_same() -> None:
    assert parse_meta(DESIGN_EXAMPLE.replace(b"\n", b"\r\n")) == DESIGN_EXPECTED


def test_whitespace_around_text_and_attributes_is_trimmed() -> None:
    data = (
        b"<?xml version='1.0' encoding='utf-8'?>\n<Package>\n  <Name>\n    CLPR1\n  </Name>\n"
        b"<Version> 2 </Version><Architecture>\tany\n</Architecture>"
        b"<Description>\n  Two\n  lines\n</Description>"
        b'<AppliesTo><Pkg name=" openssh " version=" &gt;= 1.0 "/></AppliesTo>'
        b"<HealthCheck>\n  true\n</HealthCheck></Package>"
    )
    meta = parse_meta(data)
    assert (meta.name, meta.version, meta.architecture) == ("CLPR1", "2", "any")
    assert meta.description == "Two\n  lines"
    assert meta.applies_to == (AppliesTo("openssh", VersionConstraint(">=", "1.0")),)
    assert meta.health_check == HealthCheck("true", 30)


def test_optional_elements_may_be_absent_or_empty() -> None:
    meta = parse_meta(xml("<Files/>", "<Revert></Revert>", "<References/>"))
    assert meta == PatchMeta("CLPR261125", "1", "x86_64", "Harden sshd MACs")


def test_file_paths_are_normalised() -> None:
    meta = parse_meta(xml('<Files><File path="/etc//ssh/./sshd_config/"/></Files>'))
    assert meta.files == ("/etc/ssh/sshd_config",)


@pytest.mark.parametrize("tag", list(REQUIRED))
def test_each_missing_required_element_is_named(tag: str) -> None:
    assert error_of(xml(drop=tag)) == f"PKGINFO.meta:1: <Package> has no <{tag}> element"


def test_wrong_severity_lists_the_valid_ones() -> None:
    message = error_of(xml("<Severity>urgent</Severity>"))
    assert message == (
        "PKGINFO.meta:6: 'urgent' is not a valid value for <Severity> "
        "(one of: critical, high, medium, low)"
    )


def test_schema_error_names_the_line_of_an_unknown_element() -> None:
    data = xml("<Date>2026-11-25</Date>", "<Foo>bar</Foo>")
    assert error_of(data) == "PKGINFO.meta:7: element 'Foo' is not allowed here"


def test_error_names_the_given_source() -> None:
    message = error_of(xml("<Foo/>"), source="CLPR261125.clp:PKGINFO.meta")
    assert message == "CLPR261125.clp:PKGINFO.meta:6: element 'Foo' is not allowed here"


def test_unknown_nested_element_and_attribute_are_refused() -> None:
    assert error_of(xml("<References><GHSA>x</GHSA></References>")) == (
        "PKGINFO.meta:6: element 'GHSA' is not allowed here"
    )
    assert error_of(xml('<Files><File path="/x" mode="0644"/></Files>')) == (
        "PKGINFO.meta:6: attribute 'mode' of <File> is not allowed"
    )
    assert error_of(xml('<Revert><Pkg name="a"/></Revert>')) == (
        "PKGINFO.meta:6: <Pkg> needs the attribute 'to'"
    )


def test_duplicate_element_is_refused_with_both_lines() -> None:
    assert error_of(xml("<Version>2</Version>")) == (
        "PKGINFO.meta:6: <Version> is given twice (first on line 3)"
    )


def test_empty_required_element_is_refused() -> None:
    assert error_of(xml("<Description>  </Description>", drop="Description")) == (
        "PKGINFO.meta:5: <Description> must not be empty"
    )


def test_unclosed_tag_names_the_line() -> None:
    data = (
        b"<Package>\n<Name>CLPR1</Name>\n<Version>1\n<Architecture>any</Architecture>\n</Package>\n"
    )
    assert error_of(data) == (
        "PKGINFO.meta:5: malformed XML: <Version> (opened on line 3) "
        "is not closed before </Package>"
    )


def test_truncated_document_names_the_line() -> None:
    data = b"<Package>\n<Name>CLPR1</Name>\n"
    assert (
        error_of(data) == "PKGINFO.meta:3: malformed XML: the file ends before <Package> is closed"
    )


def test_root_must_be_package_without_namespace() -> None:
    assert error_of(b"<Patch><Name>x</Name></Patch>") == (
        "PKGINFO.meta:1: the root element must be <Package>, not <Patch>"
    )
    namespaced = xml().replace(b"<Package>", b'<Package xmlns="urn:x">')
    assert "the root element must be <Package>" in error_of(namespaced)


# -- the legacy INI form -------------------------------------------------------------------


def test_clpctl_example_ini_without_trailing_newline() -> None:
    assert not CLPCTL_EXAMPLE_INI.endswith(b"\n")
    assert parse_meta(CLPCTL_EXAMPLE_INI) == PatchMeta(
        name="CLPRYYMMDD",
        version="1",
        architecture="x86_64",
        description="Example CLP Patch",
        legacy=True,
    )


def test_ini_as_clpctl_code_writes_it() -> None:
    # ClpFile.ToFile: the misspelt key, an empty Depends, CRLF line ends from WriteAllLines.
    data = (
        b"[Package]\r\nName=CLPR250101\r\nVersion=3\r\nArchitechture=aarch64\r\n"
        b"Description=Fix = signs kept\r\nDepends=\r\n"
    )
    meta = parse_meta(data)
    assert meta == PatchMeta("CLPR250101", "3", "aarch64", "Fix = signs kept", legacy=True)


def test_ini_with_comments_and_blank_lines() -> None:
    data = b"# written by hand\n\n[Package]\n# the id\nName = CLPR1\n\nVersion=1\n"
    data += b"Architecture=any\nDescription=  spaced out  \n\n"
    meta = parse_meta(data)
    assert (meta.name, meta.architecture, meta.description) == ("CLPR1", "any", "spaced out")
    assert meta.legacy


@pytest.mark.parametrize("key", ["Name", "Version", "Architecture", "Description"])
def test_ini_missing_key_is_named_with_line(key: str) -> None:
    lines = [
        "# header comment",
        "[Package]",
        "Name=CLPR1",
        "Version=1",
        "Architecture=x86_64",
        "Description=d",
    ]
    data = "\n".join(line for line in lines if not line.startswith(key + "=")).encode()
    assert error_of(data) == f"PKGINFO.meta:2: [Package] has no '{key}' key"


def test_ini_bad_lines_are_refused() -> None:
    base = "[Package]\nName=CLPR1\nVersion=1\nArchitecture=any\nDescription=d\n"
    assert error_of((base + "Colour=red\n").encode()) == "PKGINFO.meta:6: unknown key 'Colour'"
    assert error_of((base + "Architechture=any\n").encode()) == (
        "PKGINFO.meta:6: 'Architechture' is given twice (first on line 4)"
    )
    assert error_of(base.replace("Name=CLPR1", "Name=../x").encode()) == (
        "PKGINFO.meta:2: patch name '../x' is not valid: use 1 to 64 letters, digits, '.', "
        "'_', '+' or '-', starting with a letter or digit"
    )
    assert (
        error_of(base.replace("Name=CLPR1", "Name=").encode()) == "PKGINFO.meta:2: 'Name' is empty"
    )
    assert error_of(b"Name=CLPR1\n") == "PKGINFO.meta:1: expected the [Package] header first"
    assert error_of(base.replace("Description=d", "Description=\x1b[2J").encode()) == (
        "PKGINFO.meta:5: the line contains the control character '\\x1b'"
    )


# -- hostile XML -----------------------------------------------------------------------------


def test_xxe_external_entity_is_refused_and_the_file_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-7f3a9c")
    data = (
        f'<?xml version="1.0"?>\n<!DOCTYPE Package [\n  <!ENTITY xxe SYSTEM "file://{secret}">\n]>\n'
        "<Package><Name>CLPR1</Name><Version>1</Version><Architecture>any</Architecture>"
        "<Description>&xxe;</Description></Package>"
    ).encode()
    with pytest.raises(MetadataError) as caught:
        parse_meta(data)
    assert str(caught.value) == "PKGINFO.meta:2: a DOCTYPE is not allowed (no DTDs, no entities)"
    assert "TOP-SECRET" not in repr(caught.value)
    assert caught.value.__cause__ is None


def test_xxe_through_a_parameter_entity_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-51b2")
    data = (
        f'<!DOCTYPE Package [<!ENTITY % file SYSTEM "file://{secret}">\n'
        "<!ENTITY % eval \"<!ENTITY &#x25; leak SYSTEM 'file:///nonexistent/%file;'>\">"
        "%eval; %leak;]>\n<Package/>"
    ).encode()
    message = error_of(data)
    assert message == "PKGINFO.meta:1: a DOCTYPE is not allowed (no DTDs, no entities)"
    assert "TOP-SECRET" not in message


def test_safe_parser_alone_never_expands_an_external_entity(tmp_path: Path) -> None:
    # Defence in depth: even if a DOCTYPE slipped past the check, the parser options hold.
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-c0de")
    data = (
        f'<!DOCTYPE Package [<!ENTITY xxe SYSTEM "file://{secret}">]>'
        "<Package><Description>&xxe;</Description></Package>"
    ).encode()
    root = etree.fromstring(data, pkginfo.safe_parser())
    assert b"TOP-SECRET" not in etree.tostring(root)
    assert "TOP-SECRET" not in "".join(root.itertext())


def test_billion_laughs_is_refused_quickly() -> None:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    data = (
        f"<!DOCTYPE Package [{entities}]>\n<Package><Name>CLPR1</Name><Version>1</Version>"
        "<Architecture>any</Architecture><Description>&lol9;</Description></Package>"
    ).encode()
    started = time.monotonic()
    assert error_of(data) == "PKGINFO.meta:1: a DOCTYPE is not allowed (no DTDs, no entities)"
    assert time.monotonic() - started < 1


def test_internal_entity_is_refused() -> None:
    data = xml(first='<!DOCTYPE Package [<!ENTITY v "1">]>\n').replace(b">1<", b">&v;<")
    assert error_of(data) == "PKGINFO.meta:1: a DOCTYPE is not allowed (no DTDs, no entities)"


def test_undeclared_entity_is_refused() -> None:
    data = xml().replace(b"Harden sshd MACs", b"&foo;")
    assert error_of(data) == (
        "PKGINFO.meta:5: malformed XML: unknown entity '&foo;' (entities are not allowed)"
    )


def test_processing_instructions_are_refused() -> None:
    assert error_of(xml(first='<?xml-stylesheet href="x.xsl"?>\n')) == (
        "PKGINFO.meta:1: processing instruction '<?xml-stylesheet' is not allowed"
    )
    assert error_of(xml("<?php system('id'); ?>")) == (
        "PKGINFO.meta:6: processing instruction '<?php' is not allowed"
    )
    # The XML declaration itself is fine.
    assert parse_meta(xml(first='<?xml version="1.0" encoding="UTF-8"?>\n')).name == "CLPR261125"


def test_invalid_utf8_is_refused_with_line() -> None:
    data = xml().replace(b"Harden sshd MACs", b"Harden \xff sshd")
    message = error_of(data)
    assert message.startswith("PKGINFO.meta:5: not valid UTF-8 (byte 0xff at offset ")
    assert message.endswith("patch metadata must be UTF-8")


def test_other_declared_encoding_is_refused() -> None:
    data = xml(first='<?xml version="1.0" encoding="ISO-8859-1"?>\n')
    assert error_of(data) == (
        "PKGINFO.meta:1: declares encoding 'ISO-8859-1'; patch metadata must be UTF-8"
    )


def test_utf8_bom_and_non_ascii_text_are_fine() -> None:
    data = b"\xef\xbb\xbf" + xml().replace(b"Harden sshd MACs", "Durcir sshd — é".encode())
    assert parse_meta(data).description == "Durcir sshd — é"


def test_c1_control_character_is_refused() -> None:
    data = xml().replace(b"Harden sshd MACs", "Harden \u009b2J".encode())
    assert error_of(data) == "PKGINFO.meta:5: <Description> contains the control character '\\x9b'"


def test_oversized_input_is_refused_before_parsing() -> None:
    data = xml("<!--" + "x" * (300 * 1024) + "-->")
    assert len(data) > MAX_META_BYTES
    message = error_of(data)
    assert message == (
        f"PKGINFO.meta: {len(data)} bytes is more than the 256 KiB allowed for patch metadata"
    )


def test_input_exactly_at_the_limit_is_accepted() -> None:
    data = xml()
    data += b" " * (MAX_META_BYTES - len(data))
    assert len(data) == MAX_META_BYTES
    assert parse_meta(data).name == "CLPR261125"


def test_deep_nesting_is_refused() -> None:
    data = xml("<Files>" + "<a>" * 300 + "</a>" * 300 + "</Files>")
    assert error_of(data) == "PKGINFO.meta:6: malformed XML: elements are nested too deeply"


def test_empty_input_is_refused() -> None:
    assert error_of(b"") == "PKGINFO.meta: the file is empty"
    assert error_of(b" \n\n# nothing\n") == "PKGINFO.meta: the file is empty"


# -- semantic checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "-x", "a b", "x" * 65])
def test_bad_patch_name_is_refused(name: str) -> None:
    data = xml(f"<Name>{name}</Name>", drop="Name")
    assert error_of(data) == (
        f"PKGINFO.meta:5: patch name '{name}' is not valid: use 1 to 64 letters, digits, '.', "
        "'_', '+' or '-', starting with a letter or digit"
    )


def test_empty_patch_name_is_refused() -> None:
    assert error_of(xml("<Name></Name>", drop="Name")) == "PKGINFO.meta:5: <Name> must not be empty"


def test_patch_id_is_valid() -> None:
    for good in ("CLPR261125", "CLPRYYMMDD", "a", "1.0+fix_2-b", "x" * 64):
        assert patch_id_is_valid(good), good
    for bad in ("", "..", "../x", "a/b", ".x", "x" * 65, "CLPR1\n", "a\0b", "é"):
        assert not patch_id_is_valid(bad), bad


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("etc/ssh/sshd_config", "file path 'etc/ssh/sshd_config' must be absolute (start with /)"),
        ("/etc/../etc/shadow", "file path '/etc/../etc/shadow' must not contain '..'"),
        ("/..", "file path '/..' must not contain '..'"),
        ("/", "file path '/' is the root directory itself"),
        ("//./", "file path '//./' is the root directory itself"),
        ("", "file path '' must be absolute (start with /)"),
        ("/etc/a&#10;b", "file path '/etc/a\\nb' contains a control character"),
    ],
)
def test_bad_file_path_is_refused(path: str, problem: str) -> None:
    data = xml("<Date>2026-11-25</Date>", f'<Files>\n<File path="{path}"/></Files>')
    assert error_of(data) == f"PKGINFO.meta:8: {problem}"


def test_duplicate_file_after_normalising_is_refused() -> None:
    data = xml('<Files>\n<File path="/etc/hosts"/>\n<File path="/etc/./hosts/"/>\n</Files>')
    assert error_of(data) == (
        "PKGINFO.meta:8: file '/etc/./hosts/' is listed twice (as '/etc/hosts', first on line 7)"
    )


@pytest.mark.parametrize(
    ("constraint", "problem"),
    [
        ("9.9p2-1", "must start with <, <=, =, >= or > (e.g. '<9.9p2-1')"),
        ("~1.0", "must start with <, <=, =, >= or > (e.g. '<9.9p2-1')"),
        ("&lt;", "has no valid version after '<'"),
        ("=&lt;1.0", "has no valid version after '='"),
        ("&gt;=1.0 2", "has no valid version after '>='"),
        ("&gt;=/etc", "has no valid version after '>='"),
    ],
)
def test_bad_version_constraint_is_refused(constraint: str, problem: str) -> None:
    data = xml(f'<AppliesTo><Pkg name="openssh" version="{constraint}"/></AppliesTo>')
    raw = constraint.replace("&lt;", "<").replace("&gt;", ">")
    assert error_of(data) == f"PKGINFO.meta:6: version constraint '{raw}' {problem}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<9.9p2-1", VersionConstraint("<", "9.9p2-1")),
        ("<=1:2.0-1", VersionConstraint("<=", "1:2.0-1")),
        ("=2.0-1", VersionConstraint("=", "2.0-1")),
        (">=1.0", VersionConstraint(">=", "1.0")),
        (">1.0rc1", VersionConstraint(">", "1.0rc1")),
    ],
)
def test_version_constraints_parse(text: str, expected: VersionConstraint) -> None:
    escaped = text.replace("<", "&lt;").replace(">", "&gt;")
    meta = parse_meta(xml(f'<AppliesTo><Pkg name="glibc" version="{escaped}"/></AppliesTo>'))
    assert meta.applies_to == (AppliesTo("glibc", expected),)


def test_version_constraint_matches_with_pacman_vercmp() -> None:
    below = VersionConstraint("<", "9.9p2-1")
    assert below.matches("9.9p1-1")
    assert not below.matches("9.9p2-1")
    assert not below.matches("1:1.0-1")  # an epoch beats any version without one
    assert VersionConstraint(">=", "1.10").matches("1.10")
    assert VersionConstraint(">", "1.9").matches("1.10")
    assert VersionConstraint("<", "1.0").matches("1.0rc1")
    assert VersionConstraint("=", "2.0-1").matches("2.0-1")
    assert not VersionConstraint("=", "2.0-1").matches("2.0-2")
    assert VersionConstraint("<=", "2.0").matches("2.0")
    assert str(below) == "<9.9p2-1"
    with pytest.raises(ValueError):
        VersionConstraint("!=", "1.0")


@pytest.mark.parametrize("date", ["2026-02-30", "2026-13-01", "2026-1-05", "25/11/2026", "2026"])
def test_bad_date_is_refused(date: str) -> None:
    assert error_of(xml(f"<Date>{date}</Date>")) == (
        f"PKGINFO.meta:6: date '{date}' is not a real date in the form YYYY-MM-DD"
    )


def test_leap_day_is_a_real_date() -> None:
    assert parse_meta(xml("<Date>2028-02-29</Date>")).date == "2028-02-29"


@pytest.mark.parametrize(
    ("timeout", "problem"),
    [
        ("0", "attribute 'timeout' of <HealthCheck> must be at least 1, not '0'"),
        ("3601", "attribute 'timeout' of <HealthCheck> must be at most 3600, not '3601'"),
        ("ten", "'ten' is not a valid value for attribute 'timeout' of <HealthCheck>"),
    ],
)
def test_bad_health_check_timeout_is_refused(timeout: str, problem: str) -> None:
    data = xml(f'<HealthCheck timeout="{timeout}">true</HealthCheck>')
    assert error_of(data) == f"PKGINFO.meta:6: {problem}"


def test_health_check_timeout_bounds_are_accepted() -> None:
    assert parse_meta(xml('<HealthCheck timeout="3600">x</HealthCheck>')).health_check == (
        HealthCheck("x", 3600)
    )
    assert parse_meta(xml('<HealthCheck timeout="1">x</HealthCheck>')).health_check == (
        HealthCheck("x", 1)
    )


@pytest.mark.parametrize(
    ("element", "problem"),
    [
        ('<Trigger><Pkg name="OpenSSH"/></Trigger>', "'OpenSSH' is not a valid package name"),
        ('<Revert><Pkg name="-rf" to="1"/></Revert>', "'-rf' is not a valid package name"),
        ('<AppliesTo><Pkg name="../x"/></AppliesTo>', "'../x' is not a valid package name"),
        ('<Revert><Pkg name="a" to="../1"/></Revert>', "to='../1' is not a valid package version"),
        (
            '<Revert><Pkg name="a" to="1" until="-2"/></Revert>',
            "until='-2' is not a valid package version",
        ),
        (
            '<Revert><Pkg name="a" to="1"/><Pkg name="a" to="2"/></Revert>',
            "package 'a' is listed twice in <Revert>",
        ),
        (
            '<Trigger><Pkg name="a"/><Pkg name="a"/></Trigger>',
            "package 'a' is listed twice in <Trigger>",
        ),
        ("<Restart><Service>--force</Service></Restart>", "'--force' is not a valid systemd unit"),
        ("<References><CVE>CVE-26-1</CVE></References>", "'CVE-26-1' is not a CVE id"),
        ("<References><URL>file:///etc</URL></References>", "'file:///etc' is not an http://"),
    ],
)
def test_bad_package_service_and_reference_values_are_refused(element: str, problem: str) -> None:
    assert error_of(xml(element)).startswith(f"PKGINFO.meta:6: {problem}")


def test_architecture_rule() -> None:
    assert parse_meta(xml("<Architecture>armv7h</Architecture>", drop="Architecture")).architecture
    assert error_of(xml("<Architecture>x86-64</Architecture>", drop="Architecture")) == (
        "PKGINFO.meta:5: architecture 'x86-64' is not valid (e.g. x86_64, aarch64 or any)"
    )


def test_patch_version_must_not_contain_whitespace() -> None:
    assert error_of(xml("<Version>1 beta</Version>", drop="Version")) == (
        "PKGINFO.meta:5: patch version '1 beta' must not contain whitespace"
    )


def test_metadata_error_is_a_usage_error() -> None:
    with pytest.raises(PatchFormatError) as caught:
        parse_meta(b"<Package/>")
    assert isinstance(caught.value, UsageError)
    assert exit_code_for(caught.value) == 2


# -- Supersedes ------------------------------------------------------------------------------


def test_supersedes_lists_the_replaced_patches_in_order() -> None:
    meta = parse_meta(
        xml("<Supersedes>\n<Patch>CLPR261101</Patch>\n<Patch> CLPR261015 </Patch>\n</Supersedes>")
    )
    assert meta.supersedes == ("CLPR261101", "CLPR261015")
    assert meta.to_dict()["supersedes"] == ["CLPR261101", "CLPR261015"]


def test_supersedes_is_optional_and_may_be_empty() -> None:
    assert parse_meta(xml()).supersedes == ()
    assert parse_meta(xml("<Supersedes/>")).supersedes == ()
    # Existing positional and keyword constructors still work: the field comes last.
    assert PatchMeta("CLPR1", "1", "any", "d").supersedes == ()


@pytest.mark.parametrize(
    ("element", "problem"),
    [
        (
            "<Supersedes>\n<Patch>../CLPR1</Patch></Supersedes>",
            "PKGINFO.meta:7: patch name '../CLPR1' is not valid",
        ),
        (
            "<Supersedes>\n<Patch>CLPR1</Patch>\n<Patch>CLPR1</Patch></Supersedes>",
            "PKGINFO.meta:8: patch 'CLPR1' is listed twice in <Supersedes> (first on line 7)",
        ),
        (
            "<Supersedes>\n<Patch>CLPR261125</Patch></Supersedes>",
            "PKGINFO.meta:7: patch 'CLPR261125' cannot supersede itself",
        ),
        ("<Supersedes><Patch></Patch></Supersedes>", "PKGINFO.meta:6: <Patch> must not be empty"),
        (
            "<Supersedes><Pkg name='openssh'/></Supersedes>",
            "PKGINFO.meta:6: element 'Pkg' is not allowed here",
        ),
        (
            "<Supersedes>CLPR1</Supersedes>",
            "PKGINFO.meta:6: <Supersedes> must hold elements only, not text",
        ),
        (
            "<Supersedes/><Supersedes/>",
            "PKGINFO.meta:6: <Supersedes> is given twice (first on line 6)",
        ),
    ],
)
def test_bad_supersedes_is_refused(element: str, problem: str) -> None:
    assert error_of(xml(element)).startswith(problem)


def test_render_writes_supersedes() -> None:
    meta = PatchMeta("CLPR2", "1", "any", "d", supersedes=("CLPR1", "CLPR0"))
    data = render_meta(meta)
    assert b"<Supersedes>\n    <Patch>CLPR1</Patch>\n    <Patch>CLPR0</Patch>\n" in data
    assert parse_meta(data) == meta
    with pytest.raises(MetadataError, match="cannot supersede itself"):
        render_meta(PatchMeta("CLPR2", "1", "any", "d", supersedes=("CLPR2",)))


# -- rendering ---------------------------------------------------------------------------------


def test_render_writes_the_declaration_and_reads_back() -> None:
    data = render_meta(DESIGN_EXPECTED)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Package>\n')
    assert parse_meta(data) == DESIGN_EXPECTED


def test_render_of_a_legacy_meta_gives_the_xml_form() -> None:
    legacy = parse_meta(CLPCTL_EXAMPLE_INI)
    again = parse_meta(render_meta(legacy))
    assert again.legacy is False
    assert (again.name, again.description) == ("CLPRYYMMDD", "Example CLP Patch")


def test_render_refuses_an_invalid_meta() -> None:
    with pytest.raises(MetadataError, match="patch name '../x' is not valid"):
        render_meta(PatchMeta("../x", "1", "any", "d"))
    with pytest.raises(MetadataError, match="cannot write the metadata"):
        render_meta(PatchMeta("CLPR1", "1", "any", "bell \x07"))


def _from(pattern: str) -> st.SearchStrategy[str]:
    return st.from_regex(pattern, fullmatch=True)


# Text that XML can carry and that our reader keeps as is: no controls but tab and newline,
# no surrogates or non-characters, and no whitespace at either end (that is trimmed).
_xml_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cn", "Cc", "Cf", "Zl", "Zp"))
    | st.sampled_from("\t\n<>&'\""),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip(" \t\r\n") == s and s != "")
_pkg_name = _from(r"[a-z0-9@_+][a-z0-9@._+-]{0,20}")
_pkg_version = _from(r"([0-9]:)?[0-9][A-Za-z0-9._+~]{0,10}(-[0-9]{1,2})?")
_path_part = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cn", "Cc", "Cf", "Zl", "Zp"), blacklist_characters="/"
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))
_path = (
    st.lists(_path_part, min_size=1, max_size=5)
    .map(lambda parts: "/" + "/".join(parts))
    .filter(lambda path: path.split("/")[1] not in ("proc", "sys", "dev"))
)

metas = st.builds(
    PatchMeta,
    name=_from(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}").filter(lambda n: not names_other_record(n)),
    version=_from(r"[0-9A-Za-z.:_+~-]{1,12}"),
    architecture=_from(r"[a-z0-9_]{1,12}"),
    description=_xml_text,
    date=st.none() | st.dates().map(lambda d: d.isoformat()),
    packager=st.none() | _xml_text,
    severity=st.none() | st.sampled_from(["critical", "high", "medium", "low"]),
    references=st.lists(
        st.builds(Reference, st.just("CVE"), _from(r"CVE-[0-9]{4}-[0-9]{4,7}"))
        | st.builds(Reference, st.just("URL"), _from(r"https?://[!-~]{1,30}")),
        max_size=3,
    ).map(tuple),
    applies_to=st.lists(
        st.builds(
            AppliesTo,
            _pkg_name,
            st.none()
            | st.builds(
                VersionConstraint, st.sampled_from(["<", "<=", "=", ">=", ">"]), _pkg_version
            ),
        ),
        max_size=3,
    ).map(tuple),
    files=st.lists(_path, max_size=4, unique=True).map(tuple),
    reverts=st.lists(
        st.builds(PackageRevert, _pkg_name, _pkg_version, st.none() | _pkg_version),
        max_size=3,
        unique_by=lambda r: r.name,
    ).map(tuple),
    triggers=st.lists(_pkg_name, max_size=3, unique=True).map(tuple),
    restart=st.lists(_from(r"[a-z0-9][a-z0-9@_.:-]{0,15}\.service"), max_size=3, unique=True).map(
        tuple
    ),
    health_check=st.none() | st.builds(HealthCheck, _xml_text, st.integers(1, 3600)),
    legacy=st.just(False),
    supersedes=st.lists(
        _from(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}").filter(lambda n: not names_other_record(n)),
        max_size=3,
        unique=True,
    ).map(tuple),
).filter(lambda meta: meta.name not in meta.supersedes)


@settings(max_examples=150, deadline=None)
@given(metas)
def test_render_then_parse_gives_the_same_meta(meta: PatchMeta) -> None:
    assert parse_meta(render_meta(meta)) == meta
