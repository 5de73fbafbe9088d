"""Fuzzing the readers of untrusted input with hypothesis: random bytes and mutations of a
valid input (bytes flipped, cut, inserted, repeated) given to the archive readers, the patch
metadata parser, the feed index parser and the two configuration parsers. Each may accept
the input or refuse it with one of clp's own errors (errors.ClpError: a one-line message for
the user); any other exception is a bug. An archive the readers accept is extracted into a
staging directory, and nothing may be written beside it. The snapshot record reader's quick
path and its every-check path must agree on every record, changed a field at a time.

Profiles and the count of cases: tests/fuzz/conftest.py.
"""

from __future__ import annotations

import contextlib
import gzip
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from clp_alpm.config import load_config
from clp_alpm.errors import ClpError
from clp_alpm.formats.extract import extract_patch
from clp_alpm.formats.feed import FeedEntry, FeedIndex, parse_index, render_index
from clp_alpm.formats.inspect import inspect_patch
from clp_alpm.formats.meta import check_target_path, parse_constraint
from clp_alpm.formats.pkginfo import parse_meta
from clp_alpm.store.model import FileState, _as_written
from clp_alpm.system.pacmanconf import pacman_settings, read_pacman_conf
from tests.kits.fuzzkit import count
from tests.kits.hostilekit import fingerprint
from tests.kits.patchkit import (
    good_tar_items,
    good_zip_items,
    make_targz,
    make_zip,
    meta_xml,
    tar_bytes,
)


def _seed(build: Callable[[Path], object]) -> bytes:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "seed"
        build(path)
        return path.read_bytes()


ZIP_SEED = _seed(lambda path: make_zip(path, good_zip_items(**{"etc/a.conf": b"a=1\n"})))
TARGZ_SEED = _seed(lambda path: make_targz(path, good_tar_items(**{"etc/a.conf": b"a=1\n"})))
TAR_SEED = tar_bytes(good_tar_items())  # a plain tar: what the gzip layer unpacks to
META_XML_SEED = meta_xml(files=["/etc/app.conf", "/etc/x"], severity="high", date="2026-11-25")
META_INI_SEED = b"[Package]\nName=CLPR261125\nVersion=1\nArchitecture=any\nDescription=x\n"
FEED_SEED = render_index(
    FeedIndex(
        entries=(
            FeedEntry(
                name="CLPR261125",
                version="1",
                architecture="x86_64",
                description="d",
                sha256="0123456789abcdef" * 4,
                size=2048,
                date="2026-11-25",
                severity="critical",
                supersedes=("CLPR261101",),
            ),
        ),  # fmt: skip
        generated="2026-11-25T12:00:00Z",
    )
)
CLP_CONF_SEED = (
    b"[options]\nSigLevel = Required\nServer = https://example.org/$arch\nHistoryLimit = 10\n"
    b"PatchDir = /opt/CLP\nArchiveServer = https://archive.example.org\n"
)
PACMAN_CONF_SEED = (
    b"[options]\nArchitecture = auto\nSigLevel = Required DatabaseOptional\nIgnorePkg = a b\n"
    b"Include = /etc/pacman.d/*.conf\nCacheDir = /var/cache/pacman/pkg\n\n[core]\n"
    b"Server = https://mirror.example.org/$repo/os/$arch\n"
)


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` with a few random edits: flipped bytes, a cut, an insertion, a repeated slice."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if edit == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif edit == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif edit == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 256))]
        else:
            del data[at:]
    return bytes(data)


def inputs(seed: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(mutated(seed), st.binary(max_size=2048))


def _archive_case(data: bytes, name: str) -> None:
    """inspect, and extract what inspect accepts: clp's errors only, nothing written outside
    the staging directory."""
    with tempfile.TemporaryDirectory(prefix="clp-fuzz-") as top:
        fenced = Path(top)
        patch = fenced / name
        patch.write_bytes(data)
        staging = fenced / "staging"
        staging.mkdir()
        before = fingerprint(fenced, skip=("staging",))
        with contextlib.suppress(ClpError):
            extract_patch(inspect_patch(patch), staging)
        assert fingerprint(fenced, skip=("staging",)) == before


@given(inputs(ZIP_SEED))
def test_zip_reader(data: bytes) -> None:
    count("zip")
    _archive_case(data, "CLPR261125.clp")


@given(st.one_of(inputs(TARGZ_SEED), mutated(TAR_SEED).map(gzip.compress)))
def test_targz_reader(data: bytes) -> None:
    count("tar.gz")
    _archive_case(data, "CLPR261125.CLP")


@given(st.one_of(inputs(META_XML_SEED), inputs(META_INI_SEED)), st.booleans())
def test_metadata_parser(data: bytes, lenient: bool) -> None:
    count("PKGINFO.meta")
    with contextlib.suppress(ClpError):
        parse_meta(data, lenient=lenient)


@given(st.text(max_size=300))
def test_metadata_values(text: str) -> None:
    count("metadata values")
    for check in (lambda: check_target_path(text, "f", 1), lambda: parse_constraint(text, "f", 1)):
        with contextlib.suppress(ClpError):
            check()


@given(inputs(FEED_SEED))
def test_feed_index_parser(data: bytes) -> None:
    count("CLP.db")
    with contextlib.suppress(ClpError):
        parse_index(data)


def _conf_case(data: bytes, path: str, read: Callable[[Path, Path], object]) -> None:
    with tempfile.TemporaryDirectory(prefix="clp-fuzz-") as top:
        root = Path(top) / "root"
        (root / "etc/pacman.d").mkdir(parents=True)
        (root / "etc/CLP").mkdir(parents=True)
        (root / "etc/pacman.d/extra.conf").write_text("[options]\nIgnorePkg = c\n")
        conf = root / path
        conf.write_bytes(data)
        before = fingerprint(Path(top))
        with contextlib.suppress(ClpError):
            read(root, conf)
        assert fingerprint(Path(top)) == before


@given(inputs(CLP_CONF_SEED))
def test_clp_conf_parser(data: bytes) -> None:
    count("clp.conf")
    _conf_case(data, "etc/CLP/clp.conf", lambda root, conf: load_config(root))


@given(inputs(PACMAN_CONF_SEED))
def test_pacman_conf_parser(data: bytes) -> None:
    count("pacman.conf")

    def read(root: Path, conf: Path) -> None:
        read_pacman_conf(root, conf)
        pacman_settings(load_config(root), conf)

    _conf_case(data, "etc/pacman.conf", read)


def test_the_seeds_are_accepted() -> None:
    """The mutations start from valid inputs: each seed itself parses."""
    _archive_case(ZIP_SEED, "CLPR261125.clp")
    assert parse_meta(META_XML_SEED).name == "CLPR261125"
    assert parse_meta(META_INI_SEED, lenient=True).name == "CLPR261125"
    assert len(parse_index(FEED_SEED).entries) == 1
    with tempfile.TemporaryDirectory() as top:
        for seed, name in ((ZIP_SEED, "CLPR261125.clp"), (TARGZ_SEED, "CLPR261125.CLP")):
            path = Path(top) / name
            path.write_bytes(seed)
            assert inspect_patch(path).meta.name == "CLPR261125"


RECORD_SEEDS = [
    FileState("/etc/app.conf", "file", 0o644, 0, 0, 1_796_000_000_123_456_789, 12,
              "ab" * 32, ino=77, ctime_ns=1_796_000_000_123_456_789,
              packed=("cd" * 16, 100, 20)).to_dict(),
    FileState("/etc/big.conf", "file", 0o600, 5, 6, 1, 1 << 40, "ef" * 32, ino=1, ctime_ns=2)
    .to_dict(),
    FileState("/etc/link", "symlink", 0o777, target="../x", mtime_ns=3, ino=4).to_dict(),
    FileState("/etc/app.d", "dir", 0o755, 0, 0, 5, ino=6, ctime_ns=7).to_dict(),
    FileState("/etc/app.conf.pacnew", "absent").to_dict(),
    FileState("/etc/a/b/c.conf", "absent", created_dirs=("/etc/a", "/etc/a/b")).to_dict(),
    FileState("/etc/cap", "file", 0o755, digest="01" * 32, xattrs=(("security.capability",
              "0102"),)).to_dict(),
]  # fmt: skip
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 64), 1 << 64) | st.floats()
    | st.text(max_size=70) | st.sampled_from(["", "file", "dir", "symlink", "absent", "/etc/x",
                                              "ab" * 32, "cd" * 16, "/etc//x", "/"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8,
)  # fmt: skip


# values at the edges of what a record's fields take, and of the other JSON types
EDGES = [-1, 0, 1, 0o7777, 0o10000, -(1 << 63), 1 << 64, True, False, None, 0.0, 1.5, "", "0",
         [], [[]], [""], ["/etc"], [["user.x", "00"]], {}, "/etc/x", "ab" * 32, "AB" * 32,
         "ab" * 31, "cd" * 16, "CD" * 16, "zz" * 16, "x\0y", "../x", "/etc/a/../b", "fifo",
         "socket", "File", "file ", ["cd" * 16, 100], ["cd" * 16, 100, 20, 0],
         ["zz" * 16, 100, 20], ["CD" * 16, 100, 20], ["cd" * 16, True, 20]]  # fmt: skip
EDGE_VALUES = st.sampled_from(EDGES)


@st.composite
def record_dicts(draw: st.DrawFn) -> dict[str, object]:
    """A record as to_dict writes it, a few of its fields (or its pack's) replaced, removed
    or added."""
    record = dict(draw(st.sampled_from(RECORD_SEEDS)))
    values = st.one_of(EDGE_VALUES, JSON_VALUES)
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from([*RECORD_SEEDS[0], "pack", "extra"]))
        edit = draw(st.sampled_from(["remove", "replace", "pack"]))
        if edit == "remove":
            record.pop(name, None)
        elif edit == "replace":
            record[name] = draw(values)
        else:
            pack = record.get("pack")
            pack = list(pack) if isinstance(pack, list) and pack else ["cd" * 16, 100, 20]
            pack[draw(st.integers(0, len(pack) - 1))] = draw(values)
            record["pack"] = pack
    return record


def _typed(value: object) -> object:
    """`value` with the type of every part beside it: 12 and 12.0 (or True and 1) differ."""
    if isinstance(value, (list, tuple)):
        return (type(value), [_typed(item) for item in value])
    return (type(value), value)


def _read_record(read: Callable[[object], FileState], data: object) -> object:
    try:
        record = read(data)
    except ClpError as err:
        return ("refused", type(err), str(err))
    return ("read", [(name, _typed(value)) for name, value in record.__dict__.items()])


@given(record_dicts())
def test_snapshot_record_readers_agree(data: dict[str, object]) -> None:
    count("snapshot record")
    assert _read_record(FileState.from_dict, data) == _read_record(
        FileState.from_dict_checked, data
    )


def test_every_record_seed_is_read_alike() -> None:
    """...and every one without created directories or xattrs by the quick path."""
    for seed in RECORD_SEEDS:
        quick = not seed["created_dirs"] and not seed["xattrs"]
        assert (_as_written(FileState, seed) is not None) is quick, seed
        record = FileState.from_dict(seed)
        assert _read_record(FileState.from_dict, seed) == _read_record(
            FileState.from_dict_checked, seed
        )
        assert record.to_dict() == seed


def test_snapshot_record_readers_agree_on_every_single_edge() -> None:
    """Every field of every seed (and each place of its pack) removed or set to each edge
    value: the cases a random draw may miss."""
    cases = 0
    for seed in RECORD_SEEDS:
        for name in [*RECORD_SEEDS[0], "pack", "extra"]:
            edits: list[dict[str, object]] = [{k: v for k, v in seed.items() if k != name}]
            edits += [seed | {name: value} for value in EDGES]
            if name == "pack":
                for place in range(3):
                    for value in EDGES:
                        pack: list[object] = ["cd" * 16, 100, 20]
                        pack[place] = value
                        edits.append(seed | {"pack": pack})
            for data in edits:
                cases += 1
                assert _read_record(FileState.from_dict, data) == _read_record(
                    FileState.from_dict_checked, data
                ), data
    assert cases > 3000
