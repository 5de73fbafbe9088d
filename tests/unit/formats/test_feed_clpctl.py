"""CLP.db as every generation of clpctl wrote it (Vincent-OS/clpctl UpdateCommand.cs): 1.x text,
2.0 XML with one root <Name>, 2.1 //Package at any depth; and hostile variants of each."""

from __future__ import annotations

import time

import pytest

from clp_alpm.errors import FeedError
from clp_alpm.formats.feed import (
    FORMAT_CLPCTL_1,
    FORMAT_CLPCTL_20,
    FORMAT_PACKAGES,
    MAX_INDEX_BYTES,
    FeedEntry,
    FeedIndex,
    applicable_edition,
    parse_index,
    render_index,
)


def test_clpctl_1_text_index() -> None:
    # clpctl 1.x splits on '\n', takes lines starting with "Name=" and the value after '='
    data = b"# header\r\nName=CLPR250101\r\nVersion=ignored\nName= CLPR250102 \n\nName=CLPR3=x\n"
    index = parse_index(data)
    assert index == FeedIndex(
        (
            FeedEntry("CLPR250101", None, None),
            FeedEntry("CLPR250102", None, None),
            FeedEntry("CLPR3", None, None),
        ),
        format=FORMAT_CLPCTL_1,
    )
    entry = index.entries[0]
    assert entry.edition is None and entry.listed_version is None
    assert applicable_edition(entry, "server") and applicable_edition(entry, None)
    assert index.to_dict()["format"] == "clpctl-1"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"Name=../../etc\n", "CLP.db:1: patch name '../../etc' is not valid"),
        (b"x\nName=\n", "CLP.db:2: patch name '' is not valid"),
        (b"Name=CLPR1\nName=CLPR1\n", "CLP.db:2: patch 'CLPR1' is listed twice (first on line 1)"),
        (b"hello world\n", "CLP.db: no 'Name=' line and no XML: this is not a patch index"),
        (b" Name=CLPR1\n", "CLP.db: no 'Name=' line and no XML"),  # clpctl: StartsWith
        (b"Name=CLPR1\x00\n", "CLP.db:1: patch name 'CLPR1\x00' is not valid"),
    ],
)
def test_clpctl_1_hostile_text(data: bytes, problem: str) -> None:
    with pytest.raises(FeedError) as err:
        parse_index(data)
    assert problem in err.value.message


def test_clpctl_20_index_with_one_root_name() -> None:
    data = b'<?xml version="1.0" encoding="utf-8"?>\n<CLP>\n  <Name> CLPR250101 </Name>\n</CLP>'
    assert parse_index(data) == FeedIndex(
        (FeedEntry("CLPR250101", None, None),), format=FORMAT_CLPCTL_20
    )
    # whatever the root is called, and beside other elements
    other = b"<Database><Date>x</Date><Name>CLPR2</Name></Database>"
    assert parse_index(other).entries == (FeedEntry("CLPR2", None, None),)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            b"<CLP><Name>CLPR1</Name><Name>CLPR2</Name></CLP>",
            "CLP.db:1: the root holds 2 <Name> elements; a clpctl 2.0 index lists one patch",
        ),
        (b"<CLP><Name>../x</Name></CLP>", "CLP.db:1: patch name '../x' is not valid"),
        (b"<CLP><Name><b>CLPR1</b></Name></CLP>", "CLP.db:1: patch name '' is not valid"),
        (b"<CLP><Name>CLPR1</Name>", "CLP.db:1: malformed XML"),
        (
            b"<CLP><Name>CLPR1</Name><Package><Name>CLPR2</Name><Version>1</Version>"
            b"<Architecture>any</Architecture></Package></CLP>",
            "both a <Name> (a clpctl 2.0 index) and <Package> elements (clpctl 2.1): "
            "refused as ambiguous",
        ),
    ],
)
def test_clpctl_20_hostile_xml(data: bytes, problem: str) -> None:
    with pytest.raises(FeedError) as err:
        parse_index(data)
    assert problem in err.value.message


def test_clpctl_21_packages_at_any_depth_and_editions_case_insensitive() -> None:
    data = (
        b"<Root><Group><Package><Name>CLPR1</Name><Version>Workstation</Version>"
        b"<Architecture>x86_64</Architecture></Package></Group>"
        b"<Deep><Er><Package><Name>CLPR2</Name><Version>server</Version>"
        b"<Architecture>any</Architecture></Package></Er></Deep></Root>"
    )
    index = parse_index(data)
    assert index.format == FORMAT_PACKAGES
    assert [e.name for e in index.entries] == ["CLPR1", "CLPR2"]
    first, second = index.entries
    assert first.edition == "Workstation" and first.listed_version is None
    assert applicable_edition(first, "workstation") and applicable_edition(first, "WORKSTATION")
    assert not applicable_edition(second, "workstation")


def test_the_same_patch_once_per_edition_with_its_version_beside() -> None:
    index = FeedIndex(
        (
            FeedEntry("CLPR1", "workstation", "any", patch_version="3"),
            FeedEntry("CLPR1", "server", "any", patch_version="3"),
        )
    )
    data = render_index(index)
    assert b"<Version>workstation</Version>\n    <PatchVersion>3</PatchVersion>" in data
    again = parse_index(data)
    assert again == index
    assert [(e.edition, e.listed_version) for e in again.entries] == [
        ("workstation", "3"),
        ("server", "3"),
    ]
    assert again.entries[0].to_dict()["patch_version"] == "3"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            b"<R><Package><Name>CLPR1</Name><Version>server</Version>"
            b"<Architecture>any</Architecture><Package><Name>CLPR2</Name></Package></Package></R>",
            "CLP.db:1: a <Package> inside the <Package> of line 1: refused as ambiguous",
        ),
        (
            b"<R><Package><Name>CLPR1</Name><Version>Server</Version><Architecture>any"
            b"</Architecture></Package><Package><Name>CLPR1</Name><Version>server</Version>"
            b"<Architecture>any</Architecture></Package></R>",
            "patch 'CLPR1' version 'server' is listed twice",
        ),
        (
            b"<R><Package><Name>CLPR1</Name><Version>server</Version><PatchVersion>beta"
            b"</PatchVersion><Architecture>any</Architecture></Package></R>",
            "<PatchVersion> 'beta' is not a version (digits and dots)",
        ),
        (b"<R><Package><Name>CLPR1</Name></Package></R>", "<Version>"),
        (b"<R><Package>", "CLP.db:1: malformed XML"),
    ],
)
def test_clpctl_21_hostile_xml(data: bytes, problem: str) -> None:
    with pytest.raises(FeedError) as err:
        parse_index(data)
    assert problem in err.value.message


def test_text_and_xml_at_once_is_read_as_the_first_byte_says() -> None:
    # An index that starts as XML is XML: a Name= line inside it is text, not a patch.
    data = b"<CLP>\nName=CLPR9\n</CLP>"
    with pytest.raises(FeedError) as err:
        parse_index(data)
    assert "holds no <Package> elements" in err.value.message
    # One that starts as text is clpctl 1.x: XML after it is a line like any other.
    assert parse_index(b"Name=CLPR1\n<CLP><Name>CLPR2</Name></CLP>\n").entries == (
        FeedEntry("CLPR1", None, None),
    )


@pytest.mark.parametrize("shape", ["text", "xml"])
def test_huge_legacy_indexes_are_refused_before_parsing(shape: str) -> None:
    line = b"Name=CLPR1\n" if shape == "text" else b"<Name>CLPR1</Name>"
    data = line * (MAX_INDEX_BYTES // len(line) + 1)
    started = time.monotonic()
    with pytest.raises(FeedError) as err:
        parse_index(data)
    assert "is more than the 16 MiB allowed for a patch index" in err.value.message
    assert time.monotonic() - started < 2


def test_many_text_names_within_the_limit_read_in_time() -> None:
    data = b"".join(b"Name=CLPR%d\n" % n for n in range(100_000))
    started = time.monotonic()
    assert len(parse_index(data).entries) == 100_000
    assert time.monotonic() - started < 10


def test_legacy_entries_cannot_be_written() -> None:
    with pytest.raises(FeedError) as err:
        render_index(FeedIndex((FeedEntry("CLPR1", None, None),)))
    assert "cannot write the index" in err.value.message
