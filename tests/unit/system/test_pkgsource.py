"""Versions of a package from pacman's cache, an Arch Linux Archive on 127.0.0.1, files and URLs;
fetching them into the cache; pacman's SigLevel for packages, with real gpg keys."""

from __future__ import annotations

import functools
import os
import socket
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from clp_alpm.errors import ConfigError, DownloadError, SignatureError, UsageError
from clp_alpm.system.pkgsource import (
    PKG_EXTENSIONS,
    Available,
    PackageRef,
    archive_listing_url,
    archive_versions,
    cache_versions,
    check_package_signature,
    fetch,
    given_version,
    newest_first,
    package_siglevel,
    parse_package_filename,
)
from tests.kits import gpgkit
from tests.kits.pkgkit import make_package, make_package_arch

FAST = 5.0  # timeout in seconds for every request to the local servers

# --- file names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "name", "version", "arch"),
    [
        ("nvidia-utils-550.78-1-x86_64.pkg.tar.zst", "nvidia-utils", "550.78-1", "x86_64"),
        ("lib32-nvidia-utils-550.78-1-x86_64.pkg.tar.xz", "lib32-nvidia-utils", "550.78-1",
         "x86_64"),
        ("ffmpeg-2:6.1.1-3-x86_64.pkg.tar.zst", "ffmpeg", "2:6.1.1-3", "x86_64"),
        ("python-pip-24.0-1-any.pkg.tar.gz", "python-pip", "24.0-1", "any"),
        ("libc++-17.0.6-1.1-x86_64.pkg.tar.bz2", "libc++", "17.0.6-1.1", "x86_64"),
        ("r-4.3.2-1-aarch64.pkg.tar", "r", "4.3.2-1", "aarch64"),
        ("vim-9.1.0_beta+r2~git-2-x86_64.pkg.tar.zst", "vim", "9.1.0_beta+r2~git-2", "x86_64"),
        ("a-b-c-d-1-1-any.pkg.tar.zst", "a-b-c-d", "1-1", "any"),
    ],
)  # fmt: skip
def test_parse_package_filename(filename: str, name: str, version: str, arch: str) -> None:
    assert parse_package_filename(filename) == PackageRef(name, version, arch, filename)


@pytest.mark.parametrize("extension", PKG_EXTENSIONS)
def test_every_package_extension_parses(extension: str) -> None:
    ref = parse_package_filename(f"nvidia-utils-1:550.78-1-x86_64{extension}")
    assert ref is not None
    assert (ref.name, ref.version, ref.arch) == ("nvidia-utils", "1:550.78-1", "x86_64")


@pytest.mark.parametrize(
    "filename",
    [
        "nvidia-utils-550.78-1-x86_64.pkg.tar.zst.sig",
        "nvidia-utils-550.78-1-x86_64.pkg.tar.zst.part",
        "nvidia-utils-550.78-1-x86_64.tar.zst",
        "nvidia-utils-550.78-1-x86_64.pkg.tar.Zst",
        "glibc-2.39-x86_64.pkg.tar.zst",  # no pkgrel
        "nvidia-utils-550.78-one-x86_64.pkg.tar.zst",
        "nvidia-utils-a:550.78-1-x86_64.pkg.tar.zst",  # epoch not a number
        "nvidia-utils-1:2:550.78-1-x86_64.pkg.tar.zst",
        "nvidia utils-550.78-1-x86_64.pkg.tar.zst",
        "-nvidia-utils-550.78-1-x86_64.pkg.tar.zst",
        ".nvidia-utils-550.78-1-x86_64.pkg.tar.zst",
        "../nvidia-utils-550.78-1-x86_64.pkg.tar.zst",
        "nvidia-utils-550.78-1-x86-64.pkg.tar.zst",
        "-550.78-1-x86_64.pkg.tar.zst",
        "nvidia-utils-550.78-1-.pkg.tar.zst",
        "nvidia-utils-550.78\n-1-x86_64.pkg.tar.zst",
        "x" * 250 + "-1-1-any.pkg.tar.zst",
        ".pkg.tar.zst",
        "README",
        "",
    ],
)
def test_not_a_package_file_name(filename: str) -> None:
    assert parse_package_filename(filename) is None


# --- pacman's cache -----------------------------------------------------------------------------


def test_cache_versions_across_two_cache_dirs(tmp_path: Path) -> None:
    first, second = tmp_path / "cache1", tmp_path / "cache2"
    first.mkdir()
    second.mkdir()
    signed = make_package_arch(first, "nvidia-utils", "550.78-1", "x86_64")
    Path(f"{signed}.sig").write_bytes(b"sig")
    any_arch = make_package_arch(first, "nvidia-utils", "551.0-1", "any", extension=".pkg.tar.zst")
    epoch = make_package_arch(
        second, "nvidia-utils", "1:540.0-1", "x86_64", extension=".pkg.tar.gz"
    )
    # Other packages, other architectures and leftovers that must not count.
    make_package_arch(first, "nvidia-utils", "555.58-2", "aarch64")
    make_package_arch(first, "nvidia-utils-beta", "560.0-1", "x86_64")
    make_package_arch(second, "lib32-nvidia-utils", "550.78-1", "x86_64")
    make_package_arch(second, "linux", "6.9.1-1", "x86_64")
    (first / "nvidia-utils-556.0-1-x86_64.pkg.tar.zst.part").write_bytes(b"half")
    (first / "nvidia-utils-9.9-1-x86_64.pkg.tar.xz").mkdir()  # a directory, not a file
    (second / "notes.txt").write_text("junk")
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")

    found = cache_versions(
        [tmp_path / "missing", not_a_dir, first, second], "nvidia-utils", "x86_64"
    )

    assert sorted(found, key=lambda a: a.version) == sorted(
        [
            Available("nvidia-utils", "550.78-1", "x86_64", "cache", str(signed), f"{signed}.sig"),
            Available("nvidia-utils", "551.0-1", "any", "cache", str(any_arch), None),
            Available("nvidia-utils", "1:540.0-1", "x86_64", "cache", str(epoch), None),
        ],
        key=lambda a: a.version,
    )
    assert found[0].describe() == f"cache ({first})"


# --- an Arch Linux Archive on 127.0.0.1 ---------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Archive:
    url: str
    tree: Path
    keyring: gpgkit.Keyring

    def package_dir(self, name: str) -> Path:
        directory = self.tree / "packages" / name[0] / name
        directory.mkdir(parents=True, exist_ok=True)
        return directory


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that stops reading early (a listing over the limit) is expected


def _serve(directory: Path) -> tuple[ThreadingHTTPServer, threading.Thread]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, keyring: gpgkit.Keyring) -> Iterator[Archive]:
    """Laid out like archive.archlinux.org, listed by Python's own directory listing."""
    tree = tmp_path_factory.mktemp("archive")
    server, thread = _serve(tree)
    archive = Archive(f"http://127.0.0.1:{server.server_address[1]}", tree, keyring)
    nvidia = archive.package_dir("nvidia-utils")
    for version, arch, extension, signed in [
        ("550.78-1", "x86_64", ".pkg.tar.zst", True),
        ("555.58-2", "x86_64", ".pkg.tar.zst", False),
        ("1:540.0-1", "x86_64", ".pkg.tar.xz", True),
        ("552.0-1", "any", ".pkg.tar.xz", True),
        ("555.58-2", "aarch64", ".pkg.tar.zst", True),
    ]:
        package = make_package_arch(nvidia, "nvidia-utils", version, arch, {"usr/bin/nv": b"nv"},
                                    extension)  # fmt: skip
        if signed:
            gpgkit.sign(keyring, package, keyring.packager_fpr)
    # A package whose name extends this one's, and junk beside the packages.
    make_package_arch(nvidia, "nvidia-utils-beta", "560.0-1", "x86_64")
    (nvidia / "nvidia-utils-556.0-1-x86_64.pkg.tar.zst.sig").write_bytes(b"sig of nothing")
    (nvidia / "README").write_text("junk")
    try:
        yield archive
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_archive_listing_with_several_versions_and_signatures(archive: Archive) -> None:
    listing_url = f"{archive.url}/packages/n/nvidia-utils/"
    assert archive_listing_url(archive.url + "/", "nvidia-utils") == listing_url

    versions, problems = archive_versions([archive.url], "nvidia-utils", "x86_64", timeout=FAST)

    assert problems == []
    by_version = {(a.version, a.arch): a for a in versions}
    assert sorted(by_version) == [
        ("1:540.0-1", "x86_64"), ("550.78-1", "x86_64"), ("552.0-1", "any"),
        ("555.58-2", "x86_64"),
    ]  # fmt: skip
    signed = by_version[("550.78-1", "x86_64")]
    assert signed.source == "archive"
    assert signed.location == f"{listing_url}nvidia-utils-550.78-1-x86_64.pkg.tar.zst"
    assert signed.signature == f"{signed.location}.sig"
    assert by_version[("555.58-2", "x86_64")].signature is None
    # Python's listing writes the epoch's ':' as %3A; the entry decodes it and the URL keeps it.
    with urllib.request.urlopen(listing_url, timeout=FAST) as response:
        assert 'href="nvidia-utils-1%3A540.0-1-x86_64.pkg.tar.xz"' in response.read().decode()
    epoch = by_version[("1:540.0-1", "x86_64")]
    assert epoch.location == f"{listing_url}nvidia-utils-1%3A540.0-1-x86_64.pkg.tar.xz"
    assert epoch.signature == f"{epoch.location}.sig"
    assert signed.describe() == f"archive ({archive.url})"


def test_archive_down_or_without_the_package_is_a_problem_not_an_error(archive: Archive) -> None:
    down = _closed_port_url()

    versions, problems = archive_versions(
        [down, archive.url, f"{archive.url}/mirror"], "nvidia-utils", "x86_64", timeout=FAST
    )

    assert {a.version for a in versions} == {"1:540.0-1", "550.78-1", "552.0-1", "555.58-2"}
    assert len(problems) == 2
    assert problems[0].startswith(f"{down}/packages/n/nvidia-utils/: connection refused")
    assert problems[1] == f"{archive.url}/mirror/packages/n/nvidia-utils/: HTTP 404"

    versions, problems = archive_versions([archive.url], "no-such-package", "x86_64", timeout=FAST)
    assert versions == []
    assert problems == [f"{archive.url}/packages/n/no-such-package/: HTTP 404"]


def test_hostile_listing_yields_only_files_of_this_directory(archive: Archive) -> None:
    directory = archive.package_dir("linux")
    (directory / "index.html").write_text(
        """<!DOCTYPE html><html><body><script>alert(1)</script>
        <a href="../">../</a>
        <a href="?C=M;O=A">sort</a>
        <a href="http://evil.example/linux-1.0-1-x86_64.pkg.tar.zst">abs</a>
        <a href="/elsewhere/linux-2.0-1-x86_64.pkg.tar.zst">rooted</a>
        <a href="%2E%2E%2Flinux-3.0-1-x86_64.pkg.tar.zst">encoded dots</a>
        <a href="sub%2Flinux-3.1-1-x86_64.pkg.tar.zst">encoded slash</a>
        <a href="linux-3.2-1-x86_64.pkg.tar.zst%00">nul</a>
        <a href="linux-3.3-1-x86_64.pkg.tar.zst%FF">bad utf-8</a>
        <A HREF='linux-6.9.1-1-x86_64.pkg.tar.zst'>upper case tag</A>
        <a href="linux-2%3A6.8-1-x86_64.pkg.tar.zst#frag">epoch</a>
        <a href="linux-2%3A6.8-1-x86_64.pkg.tar.zst.sig">sig</a>
        <a href="linux-6.7-1-x86_64.pkg.tar.zst?download=1">query</a>
        <a href="linux-6.10-1-x86_64.pkg.tar.zst" <a href="linux-6.11-1-x86_64.pkg.tar.zst">
        <a>no href</a><a href="">empty</a>
        </body>""",
        encoding="utf-8",
    )

    versions, problems = archive_versions([archive.url], "linux", "x86_64", timeout=FAST)

    assert problems == []
    listing_url = f"{archive.url}/packages/l/linux/"
    assert {(a.version, a.location, a.signature) for a in versions} == {
        ("6.9.1-1", f"{listing_url}linux-6.9.1-1-x86_64.pkg.tar.zst", None),
        ("2:6.8-1", f"{listing_url}linux-2%3A6.8-1-x86_64.pkg.tar.zst",
         f"{listing_url}linux-2%3A6.8-1-x86_64.pkg.tar.zst.sig"),
        ("6.7-1", f"{listing_url}linux-6.7-1-x86_64.pkg.tar.zst", None),
        # an unclosed tag: its first href counts, as in a browser
        ("6.10-1", f"{listing_url}linux-6.10-1-x86_64.pkg.tar.zst", None),
    }  # fmt: skip


def test_oversized_listing_is_a_problem(archive: Archive) -> None:
    directory = archive.package_dir("bigpkg")
    (directory / "index.html").write_bytes(b"<a>" * (3 * 1024 * 1024))

    versions, problems = archive_versions([archive.url], "bigpkg", "x86_64", timeout=FAST)

    assert versions == []
    assert len(problems) == 1
    assert problems[0].startswith(f"{archive.url}/packages/b/bigpkg/: ")
    assert "limit" in problems[0]


def test_archive_refuses_a_name_that_is_no_package_name() -> None:
    with pytest.raises(UsageError, match="'../etc' is not a valid package name"):
        archive_versions(["http://127.0.0.1:9"], "../etc", "x86_64")


# --- ordering -----------------------------------------------------------------------------------


def _available(version: str, source: str = "cache", location: str = "") -> Available:
    return Available("nvidia-utils", version, "x86_64", source, location or source, None)


def test_newest_first_by_vercmp_and_best_source_for_duplicates() -> None:
    ordered = newest_first(
        [
            _available("550.78-1", "archive"),
            _available("555.58-2", "url", "first"),
            _available("556.0rc1-1"),
            _available("1:540.0-1", "archive"),
            _available("555.58-10", "archive"),
            _available("550.78-1", "cache"),
            _available("555.58-2", "file", "second"),
            _available("556.0-1", "file"),
            _available("550.78-1", "url"),
        ]
    )

    assert [(a.version, a.source, a.location) for a in ordered] == [
        ("1:540.0-1", "archive", "archive"),
        ("556.0-1", "file", "file"),
        ("556.0rc1-1", "cache", "cache"),
        ("555.58-10", "archive", "archive"),
        ("555.58-2", "url", "first"),
        ("550.78-1", "cache", "cache"),
    ]


# --- versions named on the command line ---------------------------------------------------------


def test_given_version_local_file(tmp_path: Path) -> None:
    package = make_package_arch(tmp_path, "nvidia-utils", "1:550.78-1", "x86_64")
    unsigned = make_package(tmp_path, "nvidia-utils", "549.0-1")
    Path(f"{package}.sig").write_bytes(b"sig")

    relative = os.path.relpath(package)
    given = given_version(relative)
    assert given == Available(
        "nvidia-utils", "1:550.78-1", "x86_64", "file", str(package), f"{package}.sig"
    )
    assert given.describe() == "file"
    assert given_version(f"file://{unsigned}").signature is None
    assert given_version(str(unsigned)).version == "549.0-1"


def test_given_version_refuses_bad_input(tmp_path: Path) -> None:
    junk = tmp_path / "nvidia-utils.tar.gz"
    junk.write_bytes(b"junk")
    with pytest.raises(UsageError, match="'nvidia-utils.tar.gz' is not a package file name"):
        given_version(str(junk))
    with pytest.raises(UsageError, match="no such file"):
        given_version(str(tmp_path / "nvidia-utils-550.78-1-x86_64.pkg.tar.zst"))
    folder = tmp_path / "nvidia-utils-550.78-1-x86_64.pkg.tar.zst"
    folder.mkdir()
    with pytest.raises(UsageError, match="not a regular file"):
        given_version(str(folder))
    with pytest.raises(UsageError, match="unsupported URL"):
        given_version("ftp://example.org/nvidia-utils-550.78-1-x86_64.pkg.tar.zst")
    with pytest.raises(UsageError, match="'index.html' is not a package file name"):
        given_version("http://127.0.0.1:9/index.html")


def test_given_version_url_with_and_without_signature(archive: Archive) -> None:
    listing_url = f"{archive.url}/packages/n/nvidia-utils/"
    signed_url = f"{listing_url}nvidia-utils-1%3A540.0-1-x86_64.pkg.tar.xz"
    unsigned_url = f"{listing_url}nvidia-utils-555.58-2-x86_64.pkg.tar.zst"

    signed = given_version(signed_url, timeout=FAST)
    unsigned = given_version(unsigned_url, timeout=FAST)

    assert signed == Available(
        "nvidia-utils", "1:540.0-1", "x86_64", "url", signed_url, f"{signed_url}.sig"
    )
    assert (unsigned.version, unsigned.signature, unsigned.describe()) == ("555.58-2", None, "url")


def test_given_url_on_a_server_that_is_down_fails_with_a_download_error() -> None:
    with pytest.raises(DownloadError, match="connection refused"):
        given_version(f"{_closed_port_url()}/nvidia-utils-550.78-1-x86_64.pkg.tar.zst", FAST)


# --- fetching -----------------------------------------------------------------------------------


def test_fetch_from_archive_lands_in_the_cache_dir_with_its_signature(
    archive: Archive, tmp_path: Path
) -> None:
    versions, _ = archive_versions([archive.url], "nvidia-utils", "x86_64", timeout=FAST)
    epoch = next(a for a in versions if a.version == "1:540.0-1")
    cache = tmp_path / "cache"
    cache.mkdir()
    calls: list[tuple[int, int | None]] = []

    path = fetch(epoch, cache, progress=lambda done, total: calls.append((done, total)))

    original = archive.package_dir("nvidia-utils") / "nvidia-utils-1:540.0-1-x86_64.pkg.tar.xz"
    assert path == cache / "nvidia-utils-1:540.0-1-x86_64.pkg.tar.xz"
    assert path.read_bytes() == original.read_bytes()
    assert Path(f"{path}.sig").read_bytes() == Path(f"{original}.sig").read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == [path.name, f"{path.name}.sig"]
    assert calls[-1] == (path.stat().st_size, path.stat().st_size)
    # A later scan of the cache finds it there, signed.
    assert cache_versions([cache], "nvidia-utils", "x86_64") == [
        Available("nvidia-utils", "1:540.0-1", "x86_64", "cache", str(path), f"{path}.sig")
    ]
    check_package_signature(path, "Required", archive.keyring.homedir)


def test_fetch_url_with_and_without_signature(archive: Archive, tmp_path: Path) -> None:
    listing_url = f"{archive.url}/packages/n/nvidia-utils/"
    unsigned_url = f"{listing_url}nvidia-utils-555.58-2-x86_64.pkg.tar.zst"
    signed_url = f"{listing_url}nvidia-utils-550.78-1-x86_64.pkg.tar.zst"
    unsigned = Available("nvidia-utils", "555.58-2", "x86_64", "url", unsigned_url, None)
    signed = Available("nvidia-utils", "550.78-1", "x86_64", "url", signed_url, None)

    unsigned_path = fetch(unsigned, tmp_path)
    signed_path = fetch(signed, tmp_path)

    assert not Path(f"{unsigned_path}.sig").exists()  # its 404 was ignored
    original = archive.package_dir("nvidia-utils") / signed_path.name
    assert Path(f"{signed_path}.sig").read_bytes() == Path(f"{original}.sig").read_bytes()
    assert unsigned_path.read_bytes() == (original.parent / unsigned_path.name).read_bytes()


def test_fetch_local_sources_returns_them_in_place(tmp_path: Path) -> None:
    package = make_package_arch(tmp_path, "nvidia-utils", "550.78-1", "x86_64")
    cache = tmp_path / "cache"
    cache.mkdir()
    for source in ("cache", "file"):
        item = Available("nvidia-utils", "550.78-1", "x86_64", source, str(package), None)
        assert fetch(item, cache) == package
    assert list(cache.iterdir()) == []


def test_fetch_refuses_a_location_that_does_not_name_the_package(tmp_path: Path) -> None:
    for location in [
        "http://127.0.0.1:9/packages/n/nvidia-utils/..%2F..%2Fetc%2Fpasswd",
        "http://127.0.0.1:9/nvidia-utils-999-1-x86_64.pkg.tar.zst",
        "http://127.0.0.1:9/other-550.78-1-x86_64.pkg.tar.zst",
    ]:
        item = Available("nvidia-utils", "550.78-1", "x86_64", "archive", location, None)
        with pytest.raises(UsageError, match="does not name a package file of nvidia-utils"):
            fetch(item, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_fetch_of_a_vanished_package_fails_with_a_download_error(
    archive: Archive, tmp_path: Path
) -> None:
    location = f"{archive.url}/packages/n/nvidia-utils/nvidia-utils-1.0-1-x86_64.pkg.tar.zst"
    item = Available("nvidia-utils", "1.0-1", "x86_64", "archive", location, None)
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(item, tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("", "Required"),  # pacman.conf(5)'s documented default
        ("Required DatabaseOptional", "Required"),
        ("Optional TrustedOnly", "Optional"),
        ("PackageRequired", "Required"),
        ("Never", "Never"),
        ("PackageNever TrustAll", "Never"),
        ("DatabaseNever", "Required"),
        ("DatabaseNever DatabaseOptional", "Required"),
        ("Never PackageOptional", "Optional"),
        ("Optional DatabaseRequired", "Optional"),
        ("Required Optional", "Optional"),
        ("PackageTrustAll", "Required"),
        # SigLevel's words then LocalFileSigLevel's, as pacman merges them
        ("Required DatabaseOptional Optional", "Optional"),
        ("PackageRequired PackageTrustedOnly DatabaseOptional DatabaseTrustedOnly", "Required"),
        ("  Optional\tTrustAll  ", "Optional"),
    ],
)
def test_package_siglevel(level: str, expected: str) -> None:
    assert package_siglevel(level) == expected


@pytest.mark.parametrize(
    "level", ["Bogus", "required", "PackageSometimes", "DatabaseFoo", "Package"]
)
def test_package_siglevel_refuses_unknown_words(level: str) -> None:
    with pytest.raises(ConfigError, match=f"invalid value for 'LocalFileSigLevel': '{level}'"):
        package_siglevel(f"Required {level}", "LocalFileSigLevel")


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory, keyring: gpgkit.Keyring) -> dict[str, Path]:
    """One package per signature state: good, missing, untrusted key, tampered, dangling."""
    directory = tmp_path_factory.mktemp("signed")
    made = {}
    for state in ("good", "missing", "untrusted", "tampered", "dangling"):
        made[state] = make_package_arch(directory, f"pkg-{state}", "1.0-1", "x86_64")
    gpgkit.sign(keyring, made["good"], keyring.packager_fpr)
    gpgkit.sign(keyring, made["untrusted"], keyring.untrusted_fpr)
    gpgkit.sign(keyring, made["tampered"], keyring.packager_fpr)
    with made["tampered"].open("ab") as handle:
        handle.write(b"\0")
    Path(f"{made['dangling']}.sig").symlink_to(directory / "nowhere.sig")
    return made


REFUSED = "refused"  # SignatureError expected


@pytest.mark.parametrize(
    ("level", "state", "outcome"),
    [
        ("Never", "good", "unchecked"),
        ("Never", "missing", "unchecked"),
        ("Never", "untrusted", "unchecked"),
        ("Never", "tampered", "unchecked"),
        ("PackageNever TrustAll", "untrusted", "unchecked"),
        ("Optional", "good", "verified"),
        ("Optional", "missing", "unchecked"),
        ("Optional", "untrusted", REFUSED),
        ("Optional", "tampered", REFUSED),
        ("Optional", "dangling", REFUSED),
        ("Optional TrustAll", "untrusted", REFUSED),  # TrustAll does not weaken the check
        ("Required", "good", "verified"),
        ("Required", "missing", REFUSED),
        ("Required", "untrusted", REFUSED),
        ("Required", "tampered", REFUSED),
        ("", "missing", REFUSED),
        ("DatabaseNever", "missing", REFUSED),
    ],
)
def test_check_package_signature(
    packages: dict[str, Path], keyring: gpgkit.Keyring, level: str, state: str,
    outcome: str,
) -> None:  # fmt: skip
    path = packages[state]
    if outcome is REFUSED:
        with pytest.raises(SignatureError, match=path.name.replace(".", r"\.")):
            check_package_signature(path, level, keyring.homedir)
        return
    info = check_package_signature(path, level, keyring.homedir)
    if outcome == "unchecked":
        assert info is None
    else:
        assert info is not None and info.fingerprint == keyring.packager_fpr


def test_signature_errors_say_what_is_wrong(
    packages: dict[str, Path], keyring: gpgkit.Keyring
) -> None:
    missing = packages["missing"]
    with pytest.raises(SignatureError) as err:
        check_package_signature(missing, "Required DatabaseOptional", keyring.homedir,
                                setting="LocalFileSigLevel")  # fmt: skip
    assert str(err.value) == (
        f"{missing.name}: no signature ({missing.name}.sig missing) "
        "and pacman's LocalFileSigLevel requires one"
    )
    with pytest.raises(SignatureError, match="untrusted key"):
        check_package_signature(packages["untrusted"], "Optional TrustAll", keyring.homedir)
    with pytest.raises(SignatureError, match="BADSIG"):
        check_package_signature(packages["tampered"], "Required", keyring.homedir)
