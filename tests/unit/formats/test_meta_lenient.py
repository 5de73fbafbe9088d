"""PKGINFO.meta read leniently, as clpctl read it (it never validated the metadata), while
`clp build` and writing keep to the canonical form."""

from __future__ import annotations

import pytest

from clp_alpm.errors import MetadataError
from clp_alpm.formats.pkginfo import parse_meta, render_meta

# clpctl 2.0's XML reading spells the element <Architechture>; <Depends> is one it writes
CLPCTL_20_XML = (
    b"<Package>\n  <Name>CLPR250101</Name>\n  <Version>1</Version>\n"
    b"  <Architechture>x86_64</Architechture>\n  <Depends>openssh</Depends>\n"
    b"  <Maintainer>someone</Maintainer>\n</Package>"
)


def test_clpctl_variants_read_leniently_with_one_warning_per_unknown_element() -> None:
    meta = parse_meta(CLPCTL_20_XML, "x.clp: PKGINFO.meta", lenient=True)
    assert (meta.name, meta.version, meta.architecture) == ("CLPR250101", "1", "x86_64")
    assert meta.description == ""
    assert meta.warnings == (
        "x.clp: PKGINFO.meta:5: unknown element <Depends> ignored",
        "x.clp: PKGINFO.meta:6: unknown element <Maintainer> ignored",
    )
    assert "warnings" not in meta.to_dict()  # what lenient reading passed over is not stored


def test_strict_reading_refuses_the_same() -> None:
    with pytest.raises(MetadataError) as err:
        parse_meta(CLPCTL_20_XML)
    assert "PKGINFO.meta:1: <Package> has no <Architecture> element" in err.value.message


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"<Package><Name>CLPR1</Name><Version>1</Version></Package>", "<Architecture>"),
        (
            b"<Package><Name>CLPR1</Name><Version>1</Version><Architecture>any</Architecture>"
            b"<Architechture>any</Architechture></Package>",
            "both <Architecture> and <Architechture>",
        ),
        (
            b"<Package><Name>CLPR1</Name><Version>1</Version><Architechture>any"
            b"</Architechture><Architechture>x86_64</Architechture></Package>",
            "both <Architecture> and <Architechture>",
        ),
        (
            b"<Package><Name>../x</Name><Version>1</Version><Architecture>any</Architecture>"
            b"</Package>",
            "patch name '../x' is not valid",
        ),
        (
            b"<Package><Name>CLPR1</Name><Version>1</Version><Architecture>any</Architecture>"
            b"<Files><Bogus/></Files></Package>",
            "not allowed here",  # inside a known element, the schema still rules
        ),
        (
            b"<Package><Name>CLPR1</Name><Version>1</Version><Architecture>any</Architecture>"
            b"<Description></Description></Package>",
            "Description",  # given but empty is still an error
        ),
        (b"<Package><Name>CLPR1</Name>", "malformed XML"),
    ],
)
def test_lenient_reading_still_refuses_what_is_broken(data: bytes, problem: str) -> None:
    with pytest.raises(MetadataError) as err:
        parse_meta(data, lenient=True)
    assert problem in err.value.message


def test_many_unknown_elements_are_each_one_line() -> None:
    unknown = b"".join(b"<X%d>v</X%d>" % (n, n) for n in range(200))
    data = (
        b"<Package><Name>CLPR1</Name><Version>1</Version><Architecture>any</Architecture>"
        + unknown
        + b"<Description>d</Description></Package>"
    )
    meta = parse_meta(data, lenient=True)
    assert len(meta.warnings) == 200 and meta.description == "d"


def test_ini_without_description_is_read_leniently_only() -> None:
    data = b"[Package]\nName=CLPR1\nVersion=1\nArchitechture=any\n"
    assert parse_meta(data, lenient=True).description == ""
    with pytest.raises(MetadataError, match="has no 'Description' key"):
        parse_meta(data)


def test_what_lenient_reading_gives_is_written_canonically() -> None:
    data = (
        b"<Package><Name>CLPR1</Name><Version>1</Version><Architechture>any</Architechture>"
        b"<Description>d</Description><Depends>x</Depends></Package>"
    )
    canonical = render_meta(parse_meta(data, lenient=True))
    assert b"<Architecture>any</Architecture>" in canonical and b"Depends" not in canonical
    assert parse_meta(canonical).warnings == ()
