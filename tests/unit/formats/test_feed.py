"""The patch feed: CLP.db read and written, editions, `clp repo-add` indexes, mirrors, replays."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clp_alpm.cli.exits import exit_code_for
from clp_alpm.errors import FeedError, MetadataError, PatchFormatError, UsageError
from clp_alpm.formats.build import build_patch
from clp_alpm.formats.feed import (
    MAX_INDEX_BYTES,
    FeedEntry,
    FeedIndex,
    applicable_edition,
    build_index,
    check_timely,
    expand_server,
    in_the_future,
    newer_than,
    parse_index,
    read_variant_id,
    render_index,
    write_index,
)
from clp_alpm.formats.meta import AppliesTo, PatchMeta, VersionConstraint, names_other_record
from clp_alpm.formats.pkginfo import render_meta
from tests.kits.patchkit import make_zip, meta_xml, patch_files, write_patch_dir, zip_items

STAMP = "2026-11-25T12:00:00Z"
SHA = "0123456789abcdef" * 4
ROOT_OPEN = f'<Database generated="{STAMP}" version="1">'

FULL_ENTRY = FeedEntry(
    name="CLPR261125",
    version="1",
    architecture="x86_64",
    description="Harden sshd MACs <& 'quoted' \"too\">",
    sha256=SHA,
    size=2048,
    date="2026-11-25",
    severity="critical",
    supersedes=("CLPR261101", "CLPR261015"),
    applies_to=(
        AppliesTo("openssh", VersionConstraint("<", "9.9p2-1")),
        AppliesTo("glibc", None),
    ),
)


def package(*extra: str, name: str = "CLPR261125", version: str = "1", arch: str = "x86_64") -> str:
    """A <Package> spread over lines: <Package> on the first, then Name, Version, Architecture,
    then one line per `extra`."""
    lines = [
        "<Package>",
        f"<Name>{name}</Name>",
        f"<Version>{version}</Version>",
        f"<Architecture>{arch}</Architecture>",
        *extra,
        "</Package>",
    ]
    return "\n".join(lines)


def index_xml(*packages: str, root: str = ROOT_OPEN, close: str = "</Database>") -> bytes:
    """An index with the root on line 1 and the packages after it: the first package's
    <Package> is on line 2, its Name on 3, Version 4, Architecture 5, extras from 6."""
    return ("\n".join([root, *packages, close]) + "\n").encode()


def error_of(data: bytes, source: str = "CLP.db") -> str:
    with pytest.raises(FeedError) as caught:
        parse_index(data, source)
    return str(caught.value)


# -- reading and writing ----------------------------------------------------------------------


def test_clp_written_index_round_trip() -> None:
    index = FeedIndex(
        entries=(FULL_ENTRY, FeedEntry("CLPR261126", "workstation", "any")),
        generated=STAMP,
    )
    data = render_index(index)
    assert data.startswith(
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<Database generated="2026-11-25T12:00:00Z" version="1">\n  <Package>\n'
    )
    assert b"<Supersedes>\n      <Patch>CLPR261101</Patch>" in data
    assert b'<Pkg name="openssh" version="&lt;9.9p2-1"/>' in data
    assert parse_index(data) == index


def test_to_dict_is_json_ready() -> None:
    index = FeedIndex((FULL_ENTRY, FeedEntry("CLPR2", "server", "any")), STAMP)
    data = json.loads(json.dumps(index.to_dict()))
    assert data["generated"] == STAMP
    first, second = data["entries"]
    assert first["sha256"] == SHA and first["size"] == 2048 and first["edition"] is None
    assert first["supersedes"] == ["CLPR261101", "CLPR261015"]
    assert first["applies_to"][0] == {"name": "openssh", "op": "<", "version": "9.9p2-1"}
    assert first["applies_to"][1] == {"name": "glibc", "op": None, "version": None}
    assert second["edition"] == "server" and second["description"] is None


def test_clpctl_style_minimal_feed_parses() -> None:
    data = (
        b"<?xml version='1.0' encoding='utf-8'?>\r\n<Packages>\r\n  <Package>\r\n"
        b"    <Name>CLPR250101</Name>\r\n    <Version>1</Version>\r\n"
        b"    <Architecture>x86_64</Architecture>\r\n  </Package>\r\n"
        b"  <Package><Name>CLPR250102</Name><Version>2</Version>"
        b"<Architecture>any</Architecture></Package>\r\n</Packages>"
    )
    assert parse_index(data) == FeedIndex(
        entries=(
            FeedEntry("CLPR250101", "1", "x86_64"),
            FeedEntry("CLPR250102", "2", "any"),
        ),
        generated=None,
    )


def test_utf8_bom_and_non_ascii_text_are_fine() -> None:
    data = b"\xef\xbb\xbf" + index_xml(package("<Description>Durcir sshd — é</Description>"))
    assert parse_index(data).entries[0].description == "Durcir sshd — é"


@pytest.mark.parametrize(
    "data",
    [
        f"{ROOT_OPEN}</Database>".encode(),
        b"<Database/>",
        b'<?xml version="1.0"?>\n<Packages>\n  <!-- nothing yet -->\n</Packages>\n',
    ],
)
def test_an_empty_database_is_a_valid_empty_index(data: bytes) -> None:
    assert parse_index(data).entries == ()


def test_an_empty_index_round_trips() -> None:
    for index in (FeedIndex((), STAMP), FeedIndex(())):
        assert parse_index(render_index(index)) == index


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            b"<html>\n<body><h1>404 Not Found</h1></body></html>",
            "CLP.db:1: <html> holds no <Package> elements: this is not a patch index",
        ),
        (
            meta_xml(),  # a PKGINFO.meta served as CLP.db
            "CLP.db:1: <Package> holds no <Package> elements: this is not a patch index",
        ),
        (
            b"<Database>Name=CLPR1\nVersion=1</Database>",
            "CLP.db:1: <Database> holds no <Package> elements: this is not a patch index",
        ),
        (b"", "CLP.db: the file is empty"),
        (b"\n  \n", "CLP.db: the file is empty"),
        (
            b"[Package]\nName=CLPR1\n",
            "CLP.db:1: [Package] is a section of an INI file (a PKGINFO.meta?): "
            "this is not a patch index",
        ),
    ],
)
def test_what_is_not_an_index_is_refused(data: bytes, problem: str) -> None:
    assert error_of(data) == problem


def test_error_names_the_given_source() -> None:
    message = error_of(index_xml(package("<Size>-1</Size>")), "https://m.example/CLP/CLP.db")
    assert message == "https://m.example/CLP/CLP.db:6: size '-1' is not a whole number of bytes"


def test_unknown_elements_are_ignored() -> None:
    data = index_xml(
        "<Mirror>https://elsewhere.example/</Mirror>",
        package(
            "<Maintainer>someone</Maintainer>",
            '<Signature type="ed25519"><Key>abc</Key></Signature>',
            "<Supersedes><Patch>CLPR1</Patch><Range from='CLPR0' to='CLPR9'/></Supersedes>",
            "<AppliesTo><Pkg name='openssh'/><Group name='base'/></AppliesTo>",
        ),
        root=f'<Database generated="{STAMP}" version="1" mirror-hint="x">',
    )
    entry = parse_index(data).entries[0]
    assert entry == FeedEntry(
        "CLPR261125",
        "1",
        "x86_64",
        supersedes=("CLPR1",),
        applies_to=(AppliesTo("openssh", None),),
    )


def test_the_same_patch_for_two_editions_is_fine() -> None:
    data = index_xml(package(version="workstation"), package(version="server"))
    assert [e.edition for e in parse_index(data).entries] == ["workstation", "server"]


# -- bad values, each named with its line --------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            "<SHA256>" + SHA.upper() + "</SHA256>",
            f"SHA256 '{SHA.upper()}' is not 64 lowercase hexadecimal digits",
        ),
        ("<SHA256>abc123</SHA256>", "SHA256 'abc123' is not 64 lowercase hexadecimal digits"),
        ("<SHA256></SHA256>", "SHA256 '' is not 64 lowercase hexadecimal digits"),
        ("<Size>-1</Size>", "size '-1' is not a whole number of bytes"),
        ("<Size>1.5</Size>", "size '1.5' is not a whole number of bytes"),
        ("<Size>1e9</Size>", "size '1e9' is not a whole number of bytes"),
        ("<Size>99999999999999999999</Size>", "size '99999999999999999999' is not a whole"),
        ("<Size/>", "size '' is not a whole number of bytes"),
        ("<Date>2026-02-30</Date>", "date '2026-02-30' is not a real date in the form YYYY-MM-DD"),
        ("<Date>25/11/2026</Date>", "date '25/11/2026' is not a real date"),
        (
            "<Severity>urgent</Severity>",
            "'urgent' is not a valid value for <Severity> (one of: critical, high, medium, low)",
        ),
        ("<Supersedes><Patch>../x</Patch></Supersedes>", "patch name '../x' is not valid"),
        (
            "<Supersedes><Patch>CLPR261125</Patch></Supersedes>",
            "patch 'CLPR261125' cannot supersede itself",
        ),
        (
            "<AppliesTo><Pkg name='openssh' version='9.9'/></AppliesTo>",
            "version constraint '9.9' must start with <, <=, =, >= or >",
        ),
        ("<AppliesTo><Pkg name='-rf'/></AppliesTo>", "'-rf' is not a valid package name"),
        ("<Description>bell \u0007</Description>", "PCDATA invalid Char value 7"),
        ("<Description>\u009b2J</Description>", "<Description> contains the control character"),
        ("<Version>2</Version>", "<Version> is given twice (first on line 4)"),
    ],
)
def test_bad_values_are_refused_with_their_line(extra: str, problem: str) -> None:
    message = error_of(index_xml(package(extra)))
    assert message.startswith("CLP.db:6: "), message
    assert problem in message


@pytest.mark.parametrize(
    ("kwargs", "line", "problem"),
    [
        ({"name": "../etc"}, 3, "patch name '../etc' is not valid"),
        ({"name": "a/b"}, 3, "patch name 'a/b' is not valid"),
        ({"version": "1 beta"}, 4, "patch version '1 beta' must not contain whitespace"),
        ({"arch": "x86-64"}, 5, "architecture 'x86-64' is not valid"),
        ({"arch": ""}, 5, "architecture '' is not valid"),
    ],
)
def test_bad_required_values_are_refused(kwargs: dict[str, str], line: int, problem: str) -> None:
    message = error_of(index_xml(package(**kwargs)))
    assert message.startswith(f"CLP.db:{line}: {problem}"), message


@pytest.mark.parametrize("tag", ["Name", "Version", "Architecture"])
def test_a_missing_required_element_is_named(tag: str) -> None:
    text = package().replace(f"<{tag}>", "<Gone>").replace(f"</{tag}>", "</Gone>")
    assert error_of(index_xml(package(), text)) == f"CLP.db:7: <Package> has no <{tag}> element"


def test_a_duplicate_name_and_version_is_refused() -> None:
    data = index_xml(package(), package(version="2"), package())
    assert error_of(data) == (
        "CLP.db:12: patch 'CLPR261125' version '1' is listed twice (first on line 2)"
    )


@pytest.mark.parametrize(
    ("root", "problem"),
    [
        (
            '<Database generated="2026-11-25 12:00:00">',
            "generated='2026-11-25 12:00:00' is not a UTC time in the form YYYY-MM-DDTHH:MM:SSZ",
        ),
        (
            '<Database generated="2026-11-25T12:00:00+01:00">',
            "generated='2026-11-25T12:00:00+01:00' is not a UTC time",
        ),
        ('<Database generated="2026-02-30T12:00:00Z">', "generated='2026-02-30T12:00:00Z'"),
        (
            '<Database version="2">',
            "index format version '2' is not supported (this clp reads version 1)",
        ),
    ],
)
def test_bad_root_attributes_are_refused(root: str, problem: str) -> None:
    message = error_of(index_xml(package(), root=root))
    assert message.startswith(f"CLP.db:1: {problem}"), message


# -- hostile XML --------------------------------------------------------------------------------


def test_xxe_is_refused_and_the_file_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-feed-91c")
    data = (
        f'<?xml version="1.0"?>\n<!DOCTYPE Database [<!ENTITY x SYSTEM "file://{secret}">]>\n'
        "<Database><Package><Name>&x;</Name><Version>1</Version>"
        "<Architecture>any</Architecture></Package></Database>"
    ).encode()
    with pytest.raises(FeedError) as caught:
        parse_index(data)
    assert str(caught.value) == "CLP.db:2: a DOCTYPE is not allowed (no DTDs, no entities)"
    assert "TOP-SECRET" not in repr(caught.value)
    assert caught.value.__cause__ is None


def test_billion_laughs_is_refused_quickly() -> None:
    entities = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)
    )
    data = (
        f"<!DOCTYPE Database [{entities}]>\n<Database><Package><Name>CLPR1</Name>"
        "<Version>1</Version><Architecture>any</Architecture>"
        "<Description>&l9;</Description></Package></Database>"
    ).encode()
    started = time.monotonic()
    assert error_of(data) == "CLP.db:1: a DOCTYPE is not allowed (no DTDs, no entities)"
    assert time.monotonic() - started < 1


def test_undeclared_entity_is_refused() -> None:
    data = index_xml(package("<Description>&foo;</Description>"))
    assert error_of(data) == (
        "CLP.db:6: malformed XML: unknown entity '&foo;' (entities are not allowed)"
    )


def test_processing_instructions_are_refused() -> None:
    data = b'<?xml-stylesheet href="x.xsl"?>\n' + index_xml(package())
    assert error_of(data) == "CLP.db:1: processing instruction '<?xml-stylesheet' is not allowed"
    data = index_xml(package("<?php system('id'); ?>"))
    assert error_of(data) == "CLP.db:6: processing instruction '<?php' is not allowed"


def test_invalid_utf8_is_refused_with_its_line() -> None:
    data = index_xml(package("<Description>cafX</Description>")).replace(b"cafX", b"caf\xe9")
    message = error_of(data)
    assert message.startswith("CLP.db:6: not valid UTF-8 (byte 0xe9 at offset ")
    assert message.endswith("a patch index must be UTF-8")


def test_another_declared_encoding_is_refused() -> None:
    data = b'<?xml version="1.0" encoding="ISO-8859-1"?>\n' + index_xml(package())
    assert error_of(data) == (
        "CLP.db:1: declares encoding 'ISO-8859-1'; a patch index must be UTF-8"
    )


def test_an_index_larger_than_16_mib_is_refused_before_parsing() -> None:
    # Padded with comments of 1 MiB: the parser refuses a single text of more than 10 MB.
    comment = b"<!--" + b"x" * (1024 * 1024 - 7) + b"-->\n"
    data = index_xml(package(), *[comment.decode()] * 15)
    at_limit = data.replace(b"</Database>", b" " * (MAX_INDEX_BYTES - len(data)) + b"</Database>")
    assert len(at_limit) == MAX_INDEX_BYTES
    assert parse_index(at_limit).entries[0].name == "CLPR261125"
    too_big = at_limit + b" "
    started = time.monotonic()
    assert error_of(too_big) == (
        f"CLP.db: {MAX_INDEX_BYTES + 1} bytes is more than the 16 MiB allowed for a patch index"
    )
    assert time.monotonic() - started < 0.5


def test_a_text_longer_than_the_parser_allows_is_refused_plainly() -> None:
    data = index_xml(package("<Description>" + "x" * (11 * 1024 * 1024) + "</Description>"))
    assert error_of(data) == (
        "CLP.db:6: malformed XML: a text runs on for more than the 10 MB the parser allows "
        "in one piece"
    )


def test_deep_nesting_is_refused() -> None:
    data = index_xml(package("<Extra>" + "<a>" * 300 + "</a>" * 300 + "</Extra>"))
    assert error_of(data) == "CLP.db:6: malformed XML: elements are nested too deeply"


def test_feed_error_is_a_usage_error_not_a_metadata_error() -> None:
    with pytest.raises(FeedError) as caught:
        parse_index(index_xml(package(name="../x")))
    assert isinstance(caught.value, UsageError)
    assert not isinstance(caught.value, MetadataError)
    assert exit_code_for(caught.value) == 2


# -- rendering refuses what it could not read back ------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (FeedEntry("../x", "1", "any"), "patch name '../x' is not valid"),
        (FeedEntry("CLPR1", "1", "any", sha256="XYZ"), "SHA256 'XYZ' is not 64 lowercase"),
        (FeedEntry("CLPR1", "1", "any", size=-5), "size '-5' is not a whole number"),
        (FeedEntry("CLPR1", "1", "any", description=" padded"), "description would not read"),
        (FeedEntry("CLPR1", "1", "any", description=""), "description would not read back"),
        (FeedEntry("CLPR1", "1", "any", description="bell \x07"), "cannot write the index"),
    ],
)
def test_render_refuses_an_entry_that_would_not_read_back(entry: FeedEntry, problem: str) -> None:
    with pytest.raises(FeedError, match=problem.replace("(", r"\(")):
        render_index(FeedIndex((entry,), STAMP))


def test_render_refuses_a_bad_generated_stamp() -> None:
    with pytest.raises(FeedError, match="generated='yesterday' is not a UTC time"):
        render_index(FeedIndex((), "yesterday"))


_patch_id = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}", fullmatch=True).filter(
    lambda name: not names_other_record(name)
)
_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cn", "Cc", "Cf", "Zl", "Zp"))
    | st.sampled_from("\t\n<>&'\""),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip(" \t\r\n") == s)
_entries = st.builds(
    FeedEntry,
    name=_patch_id,
    version=st.from_regex(r"[0-9.]{1,6}|[a-z][a-z0-9._-]{0,10}", fullmatch=True),
    architecture=st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True),
    description=st.none() | _text,
    sha256=st.none() | st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    size=st.none() | st.integers(0, 2**63 - 1),
    date=st.none() | st.dates().map(lambda d: d.isoformat()),
    severity=st.none() | st.sampled_from(["critical", "high", "medium", "low"]),
    supersedes=st.lists(_patch_id, max_size=3, unique=True).map(tuple),
    applies_to=st.lists(
        st.builds(
            AppliesTo,
            st.from_regex(r"[a-z0-9@_+][a-z0-9@._+-]{0,12}", fullmatch=True),
            st.none()
            | st.builds(
                VersionConstraint,
                st.sampled_from(["<", "<=", "=", ">=", ">"]),
                st.from_regex(r"([0-9]:)?[0-9][A-Za-z0-9._+~]{0,8}(-[0-9])?", fullmatch=True),
            ),
        ),
        max_size=2,
    ).map(tuple),
).filter(lambda e: e.name not in e.supersedes)
_stamps = st.datetimes(
    min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(9999, 12, 31)
).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(_entries, max_size=4, unique_by=lambda e: (e.name, e.version)),
    st.none() | _stamps,
)
def test_render_then_parse_gives_the_same_index(entries: list[FeedEntry], generated) -> None:
    index = FeedIndex(tuple(entries), generated)
    assert parse_index(render_index(index)) == index


# -- editions -------------------------------------------------------------------------------


def write_os_release(root: Path, text: str, where: str = "etc/os-release") -> Path:
    path = root / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


OS_RELEASE = """\
NAME="Vincent OS"
PRETTY_NAME="Vincent OS (Workstation Edition)"
ID=vincent
ID_LIKE=arch
# the edition, quoted as os-release(5) allows
VARIANT="Workstation Edition"
VARIANT_ID="workstation"
"""


def test_editions_against_a_real_os_release(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_os_release(root, OS_RELEASE)
    variant = read_variant_id(root)
    assert variant == "workstation"
    numeric = FeedEntry("CLPR1", "1", "any")
    dotted = FeedEntry("CLPR2", "2.10", "any")
    workstation = FeedEntry("CLPR3", "workstation", "any")
    server = FeedEntry("CLPR4", "server", "any")
    assert (numeric.edition, dotted.edition) == (None, None)
    assert (workstation.edition, server.edition) == ("workstation", "server")
    assert applicable_edition(numeric, variant)
    assert applicable_edition(dotted, variant)
    assert applicable_edition(workstation, variant)
    assert not applicable_edition(server, variant)
    # A system that names no edition takes only the patches for every edition.
    assert applicable_edition(numeric, None)
    assert not applicable_edition(workstation, None)
    # clpctl 2.1 compares the edition with VARIANT_ID case-insensitively (issue 11): so does clp
    assert applicable_edition(FeedEntry("CLPR5", "Workstation", "any"), variant)
    assert not applicable_edition(FeedEntry("CLPR6", "Server", "any"), variant)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("VARIANT_ID=server", "server"),
        ("VARIANT_ID='server'", "server"),
        ('VARIANT_ID="server" # trailing comment', "server"),
        ('VARIANT_ID="ser\\"ver"', 'ser"ver'),
        ("VARIANT_ID=", None),
        ('VARIANT_ID=""', None),
        ('VARIANT_ID="unbalanced', None),
        ("#VARIANT_ID=server", None),
        ("VARIANT=server", None),
        ("VARIANT_ID=server\nVARIANT_ID=kiosk", "kiosk"),
    ],
)
def test_variant_id_quoting(tmp_path: Path, line: str, expected: str | None) -> None:
    write_os_release(tmp_path, f"NAME=x\n{line}\nID=vincent\n")
    assert read_variant_id(tmp_path) == expected


def test_variant_id_falls_back_to_usr_lib(tmp_path: Path) -> None:
    write_os_release(tmp_path, "VARIANT_ID=server\n", "usr/lib/os-release")
    assert read_variant_id(tmp_path) == "server"
    # /etc/os-release wins when it exists, even without a VARIANT_ID.
    write_os_release(tmp_path, "ID=vincent\n")
    assert read_variant_id(tmp_path) is None


def test_variant_id_absent(tmp_path: Path) -> None:
    assert read_variant_id(tmp_path) is None


@pytest.mark.parametrize("link", ["../usr/lib/os-release", "/usr/lib/os-release"])
def test_os_release_symlinks_resolve_inside_the_root(tmp_path: Path, link: str) -> None:
    # Arch links /etc/os-release to ../usr/lib/os-release; an absolute link must be read
    # inside the root too, not from the machine clp runs on.
    root = tmp_path / "root"
    write_os_release(root, "VARIANT_ID=kiosk\n", "usr/lib/os-release")
    (root / "etc").mkdir()
    (root / "etc/os-release").symlink_to(link)
    assert read_variant_id(root) == "kiosk"


def test_os_release_symlink_loop_is_absent(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").symlink_to("os-release")
    assert read_variant_id(tmp_path) is None


# -- clp repo-add: build_index and write_index ---------------------------------------------------


def make_patch(tmp_path: Path, out_dir: Path, meta: bytes, file_name: str) -> Path:
    src = write_patch_dir(tmp_path / "src" / file_name, meta=meta)
    out_dir.mkdir(parents=True, exist_ok=True)
    build_patch(src, out_dir / file_name)
    return out_dir / file_name


def test_build_index_from_real_patches(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    rich = PatchMeta(
        name="CLPR261125",
        version="2",
        architecture="x86_64",
        description="Harden sshd MACs",
        date="2026-11-25",
        severity="high",
        applies_to=(AppliesTo("openssh", VersionConstraint("<", "9.9p2-1")),),
        supersedes=("CLPR261101",),
    )
    second = make_patch(tmp_path, repo, render_meta(rich), "CLPR261125.clp")
    first = make_patch(
        tmp_path, repo, meta_xml(name="CLPR261101", version="workstation"), "CLPR261101.clp"
    )
    (repo / "README.txt").write_text("not a patch\n")
    (repo / "CLPR261125.clp.sig").write_bytes(b"not a patch either")

    index = build_index(repo, generated=STAMP)

    assert index.generated == STAMP
    assert [e.name for e in index.entries] == ["CLPR261101", "CLPR261125"]  # sorted
    for entry, path in zip(index.entries, (first, second), strict=True):
        assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry.size == path.stat().st_size
    assert index.entries[0] == FeedEntry(
        "CLPR261101",
        "workstation",
        "any",
        description="x",
        sha256=index.entries[0].sha256,
        size=index.entries[0].size,
    )
    assert index.entries[1] == FeedEntry(
        "CLPR261125",
        "2",
        "x86_64",
        description="Harden sshd MACs",
        sha256=index.entries[1].sha256,
        size=index.entries[1].size,
        date="2026-11-25",
        severity="high",
        supersedes=("CLPR261101",),
        applies_to=(AppliesTo("openssh", VersionConstraint("<", "9.9p2-1")),),
    )

    written = write_index(repo, index)
    assert written == repo / "CLP.db"
    assert parse_index(written.read_bytes(), str(written)) == index


def test_build_index_stamps_now_by_default(tmp_path: Path) -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    index = build_index(tmp_path)
    after = datetime.datetime.now(datetime.UTC)
    assert index.generated is not None
    stamp = datetime.datetime.strptime(index.generated, "%Y-%m-%dT%H:%M:%SZ")
    assert before <= stamp.replace(tzinfo=datetime.UTC) <= after


def test_build_index_refuses_a_bad_generated(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="generated='now' is not a UTC time"):
        build_index(tmp_path, generated="now")


def test_an_empty_directory_gives_an_empty_index(tmp_path: Path) -> None:
    index = build_index(tmp_path, generated=STAMP)
    assert index == FeedIndex((), STAMP)
    path = write_index(tmp_path, index)
    assert parse_index(path.read_bytes()) == index


def test_a_patch_whose_file_name_does_not_match_its_name_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_patch(tmp_path, repo, meta_xml(name="CLPR261101"), "CLPR261101.clp")
    make_patch(tmp_path, repo, meta_xml(name="CLPR261125"), "security-fix.clp")
    with pytest.raises(FeedError) as caught:
        build_index(repo)
    assert str(caught.value) == (
        "security-fix.clp: the patch inside is named CLPR261125; mirrors serve it as "
        "CLPR261125.clp, so rename the file to CLPR261125.clp"
    )


def test_a_broken_patch_refuses_the_whole_run(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_patch(tmp_path, repo, meta_xml(name="CLPR261101"), "CLPR261101.clp")
    (repo / "CLPR261102.clp").write_bytes(b"this is not a zip\n")
    with pytest.raises(PatchFormatError) as caught:
        build_index(repo)
    assert str(caught.value).startswith("CLPR261102.clp: not a .clp patch")
    assert not (repo / "CLP.db").exists()


def test_a_patch_with_bad_metadata_is_named(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_patch(tmp_path, repo, meta_xml(name="CLPR261101"), "CLPR261101.clp")
    # A well-made archive whose PKGINFO.meta claims a patch id no directory may have.
    bad_meta = meta_xml(name="../CLPR261102")
    make_zip(repo / "CLPR261102.clp", zip_items(patch_files(meta=bad_meta)))
    with pytest.raises(PatchFormatError) as caught:
        build_index(repo)
    assert str(caught.value).startswith(
        "CLPR261102.clp: PKGINFO.meta:2: patch name '../CLPR261102' is not valid"
    )


def test_build_index_of_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="not a directory"):
        build_index(tmp_path / "nowhere")


def test_write_index_replaces_atomically_and_removes_a_stale_signature(tmp_path: Path) -> None:
    old = render_index(FeedIndex((FeedEntry("CLPR1", "1", "any"),), "2026-11-01T00:00:00Z"))
    (tmp_path / "CLP.db").write_bytes(old)
    (tmp_path / "CLP.db.sig").write_bytes(b"signature of the old index")
    (tmp_path / "CLPR1.clp.sig").write_bytes(b"a patch signature stays")
    reader = open(tmp_path / "CLP.db", "rb")  # noqa: SIM115 (held open across the write)
    try:
        new_index = FeedIndex((FULL_ENTRY,), STAMP)
        path = write_index(tmp_path, new_index)
        # The file was replaced, not rewritten in place: a reader keeps the whole old index.
        assert reader.read() == old
    finally:
        reader.close()
    assert path.read_bytes() == render_index(new_index)
    assert path.stat().st_mode & 0o777 == 0o644
    assert not (tmp_path / "CLP.db.sig").exists()
    assert (tmp_path / "CLPR1.clp.sig").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CLP.db", "CLPR1.clp.sig"]


def test_write_index_of_a_bad_index_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "CLP.db").write_bytes(b"old")
    (tmp_path / "CLP.db.sig").write_bytes(b"old sig")
    with pytest.raises(FeedError):
        write_index(tmp_path, FeedIndex((FeedEntry("../x", "1", "any"),), STAMP))
    assert (tmp_path / "CLP.db").read_bytes() == b"old"
    assert (tmp_path / "CLP.db.sig").read_bytes() == b"old sig"
    assert sorted(os.listdir(tmp_path)) == ["CLP.db", "CLP.db.sig"]


# -- mirrors and freshness -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        (
            "https://repo.example.org/vincent-os/$arch/CLP/",
            "https://repo.example.org/vincent-os/x86_64/CLP/",
        ),
        ("  http://127.0.0.1:8080/CLP  ", "http://127.0.0.1:8080/CLP"),
        ("HTTPS://Repo.Example.org/CLP", "HTTPS://Repo.Example.org/CLP"),
        ("file:///srv/clp/$arch", "file:///srv/clp/x86_64"),
        ("https://m.example/$arch/$arch", "https://m.example/x86_64/x86_64"),
    ],
)
def test_expand_server(server: str, expected: str) -> None:
    assert expand_server(server, "x86_64") == expected


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        ("ftp://repo.example.org/CLP", "is not an http://, https:// or file:// URL (scheme 'ftp')"),
        ("repo.example.org/CLP", "is not an http://, https:// or file:// URL"),
        ("/srv/clp", "is not an http://, https:// or file:// URL"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("https:///CLP", "names no host"),
        ("file://otherhost/srv/clp", "must be file:///absolute/path"),
        ("https://m.example/$repo/os/$arch", "unknown variable '$repo' (only $arch is expanded)"),
        ("https://m.example/a b", "contains a space or a control character"),
        ("https://m.example/\x1b[2J", "contains a space or a control character"),
    ],
)
def test_expand_server_refuses_bad_servers(server: str, problem: str) -> None:
    with pytest.raises(FeedError) as caught:
        expand_server(server, "x86_64")
    assert problem in str(caught.value)


def test_expand_server_refuses_a_bad_architecture() -> None:
    with pytest.raises(FeedError, match="architecture '../x' is not valid"):
        expand_server("https://m.example/$arch", "../x")


def test_newer_than() -> None:
    assert newer_than(STAMP, STAMP) is True  # the same index served again is not a replay
    assert newer_than("2026-11-26T00:00:00Z", STAMP) is True
    assert newer_than("2026-11-25T11:59:59Z", STAMP) is False
    assert newer_than("2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z") is False
    assert newer_than(None, STAMP) is None
    assert newer_than(STAMP, None) is None
    assert newer_than(None, None) is None
    with pytest.raises(FeedError, match="'last tuesday' is not a UTC time"):
        newer_than(STAMP, "last tuesday")


# --- time: a future stamp, an expiry ----------------------------------------------------------

_NOW = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("generated", "expires", "refused"),
    [
        ("2026-12-01T12:59:00Z", None, None),  # within the hour of skew
        ("2026-12-01T13:01:00Z", None, "lies in the future"),
        ("2099-01-01T00:00:00Z", "2099-02-01T00:00:00Z", "lies in the future"),
        ("2026-11-01T00:00:00Z", "2026-12-01T11:59:59Z", "expired on 2026-12-01T11:59:59Z"),
        ("2026-11-01T00:00:00Z", "2026-12-01T12:00:01Z", None),
        (None, None, None),  # clpctl's indexes have no stamps
    ],
)
def test_check_timely(generated, expires, refused):
    index = FeedIndex((), generated, expires=expires)
    if refused is None:
        check_timely(index, _NOW)
    else:
        with pytest.raises(FeedError, match=refused):
            check_timely(index, _NOW)


def test_in_the_future():
    assert in_the_future("2026-12-01T13:00:01Z", _NOW)
    assert not in_the_future("2026-12-01T13:00:00Z", _NOW)
    assert not in_the_future("garbage", _NOW)


def test_expires_reads_back_and_must_follow_generated(tmp_path):
    index = build_index(tmp_path, generated=STAMP, valid_days=7)
    assert index.expires == "2026-12-02T12:00:00Z"
    assert parse_index(render_index(index)) == index
    with pytest.raises(FeedError, match="is not later than generated"):
        parse_index(b'<Database generated="2026-11-25T12:00:00Z" expires="2026-11-25T12:00:00Z"/>')
    with pytest.raises(FeedError, match="expires='soon' is not a UTC time"):
        parse_index(b'<Database expires="soon"/>')
    with pytest.raises(FeedError, match="--expires 4000"):
        build_index(tmp_path, generated=STAMP, valid_days=4000)
