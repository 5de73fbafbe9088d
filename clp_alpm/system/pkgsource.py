"""Where an earlier version of a package can come from: pacman's cache, the Arch Linux Archive,
or a file or URL the user names. Find the versions, order them, fetch one, check its signature.

The Arch Linux Archive serves every package ever built under
`<server>/packages/<first letter>/<name>/`, a web server's directory listing of
`<name>-<version>-<arch>.pkg.tar.<ext>` files and their detached `.sig`s.
"""

from __future__ import annotations

import functools
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from clp_alpm.errors import ConfigError, DownloadError, SignatureError, UsageError
from clp_alpm.system.timeouts import DEFAULT_TIMEOUTS, Timeouts

if TYPE_CHECKING:
    from dataclasses import dataclass

    from clp_alpm.system.signature import SignatureInfo
else:  # no dataclasses (inspect, ast) at run time: see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass

PKG_EXTENSIONS = (".pkg.tar.zst", ".pkg.tar.xz", ".pkg.tar.gz", ".pkg.tar.bz2", ".pkg.tar")

MAX_LISTING_BYTES = 8 * 1024 * 1024
MAX_FILENAME_LENGTH = 255
LISTING_RETRIES = 1

# What makepkg lets through: a name starts with neither '-' nor '.'; pkgver holds no '-', ':',
# '/' or whitespace; pkgrel is numeric with optional dotted parts; epoch is numeric.
_NAME = re.compile(r"[A-Za-z0-9@_+][A-Za-z0-9@._+-]*")
_PKGVER = re.compile(r"[A-Za-z0-9._+~]+")
_PKGREL = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_EPOCH = re.compile(r"[0-9]+")
_ARCH = re.compile(r"[A-Za-z0-9_]+")

# newest_first keeps, of two files of the same version, the one from the best source.
_SOURCE_PRIORITY = {"cache": 0, "archive": 1, "file": 2, "url": 2}

# HTTP answers that mean "there is no such signature file" rather than "the server failed".
# S3-style servers answer 403 for a missing object when listing is not allowed.
_ABSENT_STATUSES = ("HTTP 403", "HTTP 404", "HTTP 410", "no such file")

Progress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class PackageRef:
    """What a package file name says: `<name>-[<epoch>:]<pkgver>-<pkgrel>-<arch><ext>`."""

    name: str
    version: str  # "[epoch:]pkgver-pkgrel", as pacman writes it
    arch: str
    filename: str


@dataclass(frozen=True)
class Available:
    """One version of a package and where to get it."""

    name: str
    version: str
    arch: str
    source: str  # "cache" | "archive" | "file" | "url"
    location: str  # host path (cache, file) or URL (archive, url)
    signature: str | None  # path or URL of a detached .sig known to exist

    def describe(self) -> str:
        if self.source == "cache":
            return f"cache ({Path(self.location).parent})"
        if self.source == "archive":
            return f"archive ({_archive_server(self.location)})"
        return self.source


# --- file names ---------------------------------------------------------------------------------


def parse_package_filename(filename: str) -> PackageRef | None:
    """The package a file name names, or None if it is not a package file name."""
    if len(filename) > MAX_FILENAME_LENGTH:
        return None
    stem = _strip_package_extension(filename)
    if stem is None:
        return None
    parts = stem.rsplit("-", 3)
    if len(parts) != 4:
        return None
    name, full_pkgver, pkgrel, arch = parts
    epoch, colon, pkgver = full_pkgver.rpartition(":")
    if colon and not _EPOCH.fullmatch(epoch):
        return None
    if not (
        _NAME.fullmatch(name)
        and _PKGVER.fullmatch(pkgver)
        and _PKGREL.fullmatch(pkgrel)
        and _ARCH.fullmatch(arch)
    ):
        return None
    return PackageRef(name=name, version=f"{full_pkgver}-{pkgrel}", arch=arch, filename=filename)


def _strip_package_extension(filename: str) -> str | None:
    for extension in PKG_EXTENSIONS:  # longest first: ".pkg.tar" is the last one tried
        if filename.endswith(extension):
            return filename[: -len(extension)]
    return None


def _require_package_name(name: str) -> None:
    if not _NAME.fullmatch(name) or len(name) > MAX_FILENAME_LENGTH:
        raise UsageError(f"'{name}' is not a valid package name")


def _wanted(ref: PackageRef | None, name: str, arch: str) -> bool:
    return ref is not None and ref.name == name and ref.arch in (arch, "any")


# --- pacman's cache -----------------------------------------------------------------------------


def cache_versions(cache_dirs: Sequence[Path], name: str, arch: str) -> list[Available]:
    """Files of package `name` (for `arch` or "any") in pacman's cache dirs (host paths).

    A cache dir that does not exist or cannot be read is skipped, as pacman skips it.
    """
    found: list[Available] = []
    for directory in cache_dirs:
        try:
            with os.scandir(directory) as entries:
                names = sorted(entry.name for entry in entries if entry.is_file())
        except OSError:
            continue
        for filename in names:
            ref = parse_package_filename(filename)
            if not _wanted(ref, name, arch):
                continue
            assert ref is not None
            path = Path(directory) / filename
            sig = Path(str(path) + ".sig")
            found.append(
                Available(
                    name=ref.name,
                    version=ref.version,
                    arch=ref.arch,
                    source="cache",
                    location=str(path),
                    signature=str(sig) if os.path.lexists(sig) else None,
                )
            )
    return found


# --- the Arch Linux Archive ---------------------------------------------------------------------


def archive_versions(
    servers: Sequence[str], name: str, arch: str, timeout: Timeouts | float = DEFAULT_TIMEOUTS
) -> tuple[list[Available], list[str]]:
    """Versions of `name` (for `arch` or "any") listed by each archive server.

    Returns (versions, problems): a server that cannot be reached or has no listing for the
    package adds one line to `problems` ("<listing URL>: HTTP 404") instead of raising.
    """
    _require_package_name(name)
    versions: list[Available] = []
    problems: list[str] = []
    from clp_alpm.system.download import fetch_bytes

    for server in servers:
        listing_url = archive_listing_url(server, name)
        try:
            _, body = fetch_bytes(
                [listing_url], max_size=MAX_LISTING_BYTES, timeout=timeout, retries=LISTING_RETRIES
            )
        except DownloadError as err:
            problems.append(_download_problem(listing_url, err))
            continue
        try:
            hrefs = _listed_hrefs(body)
        except (AssertionError, ValueError):  # html.parser on markup it gives up on
            problems.append(f"{listing_url}: cannot read the directory listing")
            continue
        versions.extend(_listed_versions(listing_url, hrefs, name, arch))
    return versions, problems


def archive_listing_url(server: str, name: str) -> str:
    """`<server>/packages/<first letter>/<name>/`, the archive's directory of one package."""
    base = server.rstrip("/")
    return f"{base}/packages/{_quote(name[0])}/{_quote(name)}/"


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="@+")


def _listed_versions(
    listing_url: str, filenames: set[str], name: str, arch: str
) -> list[Available]:
    found = []
    for filename in sorted(filenames):
        ref = parse_package_filename(filename)
        if not _wanted(ref, name, arch):
            continue
        assert ref is not None
        url = listing_url + _quote(filename)
        found.append(
            Available(
                name=ref.name,
                version=ref.version,
                arch=ref.arch,
                source="archive",
                location=url,
                signature=url + ".sig" if filename + ".sig" in filenames else None,
            )
        )
    return found


def _listed_hrefs(body: bytes) -> set[str]:
    """File names that the listing links to, in this directory only (nothing is executed)."""
    from html.parser import HTMLParser

    class HrefCollector(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.hrefs: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                # Of repeated attributes the first counts, as in a browser.
                href = next((value for key, value in attrs if key == "href"), None)
                if href:
                    self.hrefs.append(href)

    collector = HrefCollector()
    collector.feed(body.decode("utf-8", "replace"))
    collector.close()
    names = set()
    for href in collector.hrefs:
        name = _href_filename(href)
        if name is not None:
            names.add(name)
    return names


def _href_filename(href: str) -> str | None:
    path = href.strip().split("#", 1)[0].split("?", 1)[0]
    try:
        name = urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    # Checked after decoding, which reveals what "%2F" or "%2E%2E" hide.
    if not name or "/" in name or "\\" in name or ".." in name or not name.isprintable():
        return None
    return name


def _archive_server(url: str) -> str:
    """The server part of an archive URL, without any user:password."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    path = parts.path
    cut = path.rfind("/packages/")
    prefix = path[:cut] if cut >= 0 else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, prefix, "", ""))


def _download_problem(url: str, err: DownloadError) -> str:
    """`<url>: <reason>` out of download.py's "<name>: download failed: <url>: <reason>"."""
    _, found, detail = err.message.partition(": download failed: ")
    return detail if found and detail else f"{url}: {err.message}"


def _is_absent(err: DownloadError) -> bool:
    # download.py reports the HTTP status only inside its message.
    return any(f": {status}" in err.message for status in _ABSENT_STATUSES)


# --- a version named on the command line --------------------------------------------------------


def given_version(spec: str, timeout: Timeouts | float = DEFAULT_TIMEOUTS) -> Available:
    """A package file named on the command line: a local path (must exist) or an http(s) URL.

    For a URL, `<url>.sig` is probed so that the plan can tell whether the package is signed.
    """
    scheme = urllib.parse.urlsplit(spec).scheme.lower() if "://" in spec else ""
    if scheme in ("http", "https"):
        return _given_url(spec, timeout)
    if scheme == "file":
        from urllib.request import url2pathname

        return _given_file(url2pathname(urllib.parse.urlsplit(spec).path))
    if scheme:
        raise UsageError(f"{spec}: unsupported URL; give a package file or an http(s):// URL")
    return _given_file(spec)


def _given_file(spec: str) -> Available:
    path = Path(os.path.abspath(spec))
    if not path.exists():
        raise UsageError(f"{spec}: no such file")
    if not path.is_file():
        raise UsageError(f"{spec}: not a regular file")
    ref = _require_package_file_name(path.name, spec)
    sig = Path(str(path) + ".sig")
    return Available(
        name=ref.name,
        version=ref.version,
        arch=ref.arch,
        source="file",
        location=str(path),
        signature=str(sig) if os.path.lexists(sig) else None,
    )


def _given_url(url: str, timeout: Timeouts | float) -> Available:
    parts = urllib.parse.urlsplit(url)
    filename = urllib.parse.unquote(parts.path.rpartition("/")[2])
    from clp_alpm.system.download import fetch_bytes
    from clp_alpm.system.signature import MAX_SIGNATURE_BYTES

    ref = _require_package_file_name(filename, url)
    sig_url = _signature_url(url)
    try:
        fetch_bytes([sig_url], max_size=MAX_SIGNATURE_BYTES, timeout=timeout, retries=1)
        signature: str | None = sig_url
    except DownloadError as err:
        if not _is_absent(err):
            raise
        signature = None
    return Available(
        name=ref.name, version=ref.version, arch=ref.arch, source="url", location=url,
        signature=signature,
    )  # fmt: skip


def _require_package_file_name(filename: str, spec: str) -> PackageRef:
    ref = parse_package_filename(filename)
    if ref is None:
        raise UsageError(
            f"{spec}: '{filename}' is not a package file name "
            "(expected NAME-VERSION-REL-ARCH.pkg.tar.zst or another .pkg.tar.* file)"
        )
    return ref


def _signature_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path + ".sig"))


# --- ordering -----------------------------------------------------------------------------------


def newest_first(versions: Iterable[Available]) -> list[Available]:
    """Newest version first, by pacman's vercmp; of two files of one version, the one from the
    better source (cache, then archive, then a file or URL) stays, else the first seen."""
    import pyalpm  # lazy: libalpm is only loaded when versions are compared

    kept: dict[tuple[str, str], Available] = {}
    for item in versions:
        key = (item.name, item.version)
        previous = kept.get(key)
        if previous is None or _priority(item) < _priority(previous):
            kept[key] = item

    def newer_first(a: Available, b: Available) -> int:
        return int(pyalpm.vercmp(b.version, a.version))

    return sorted(kept.values(), key=functools.cmp_to_key(newer_first))


def _priority(item: Available) -> int:
    return _SOURCE_PRIORITY.get(item.source, len(_SOURCE_PRIORITY))


# --- fetching -----------------------------------------------------------------------------------


def fetch(
    available: Available,
    cache_dir: Path,
    progress: Progress | None = None,
    timeout: Timeouts | float = DEFAULT_TIMEOUTS,
) -> Path:
    """A local path of the package file: cache and file sources as they are; archive and URL
    sources are downloaded, with their .sig, into `cache_dir` (pacman's cache, where a later
    rollback finds them again)."""
    filename = _checked_filename(available)
    if available.source in ("cache", "file"):
        return Path(available.location)
    if available.source not in ("archive", "url"):
        raise UsageError(f"{filename}: unknown package source '{available.source}'")
    from clp_alpm.system.download import download  # only now: http, ssl and email are heavy
    from clp_alpm.system.signature import MAX_SIGNATURE_BYTES

    dest = Path(cache_dir) / filename
    download([available.location], dest, progress=progress, timeout=timeout)
    sig_dest = Path(str(dest) + ".sig")
    signature = available.signature
    if signature is not None:
        download([signature], sig_dest, max_size=MAX_SIGNATURE_BYTES, timeout=timeout)
    elif available.source == "url":
        try:
            download([_signature_url(available.location)], sig_dest,
                     max_size=MAX_SIGNATURE_BYTES, timeout=timeout)  # fmt: skip
        except DownloadError as err:
            if not _is_absent(err):
                raise
    return dest


def sha256_of(path: Path) -> str:
    """The sha256 of a file's content, read in blocks."""
    import hashlib  # not for a revert from the cache, which hashes nothing

    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked_filename(available: Available) -> str:
    """The file name of `available`, which must name the same package and version.

    The name becomes a path in the cache dir, so it is checked even for hand-made Availables.
    """
    if available.source in ("archive", "url"):
        path = urllib.parse.urlsplit(available.location).path
        filename = urllib.parse.unquote(path.rpartition("/")[2])
    else:
        filename = Path(available.location).name
    ref = parse_package_filename(filename)
    if ref is None or ref.name != available.name or ref.version != available.version:
        raise UsageError(
            f"{available.location}: does not name a package file of "
            f"{available.name} {available.version}"
        )
    return filename


# --- signatures ---------------------------------------------------------------------------------

_SIGLEVEL_VALUES = ("Never", "Optional", "Required", "TrustedOnly", "TrustAll")
# pacman.conf(5) documents "Required DatabaseOptional" as the default and Arch ships it. The
# pacman binary alone (no SigLevel line) would use Optional; we do not weaken to that.
DEFAULT_PACKAGE_CHECK = "Required"


def package_siglevel(level: str, setting: str = "SigLevel") -> str:
    """What pacman's SigLevel words ask of packages: "Never", "Optional" or "Required".

    Words apply left to right, the later winning, so the words of SigLevel followed by those of
    LocalFileSigLevel (or RemoteFileSigLevel) give the level pacman merges from the two.
    "Database*" words do not concern packages. TrustedOnly and TrustAll are accepted; TrustAll
    changes nothing here (see check_package_signature).
    """
    check = DEFAULT_PACKAGE_CHECK
    for word in level.split():
        if word.startswith("Database"):
            value, for_packages = word[len("Database") :], False
        elif word.startswith("Package"):
            value, for_packages = word[len("Package") :], True
        else:
            value, for_packages = word, True
        if value not in _SIGLEVEL_VALUES:
            raise ConfigError(
                f"pacman.conf: invalid value for '{setting}': '{word}' (expected Never, "
                "Optional, Required, TrustedOnly or TrustAll, optionally prefixed with "
                "Package or Database)"
            )
        if for_packages and value in ("Never", "Optional", "Required"):
            check = value
    return check


def check_package_signature(
    path: Path, level: str, keyring: Path, *, setting: str = "SigLevel"
) -> SignatureInfo | None:
    """Check `<path>.sig` as pacman's SigLevel `level` asks for packages.

    Returns who signed, or None when nothing was checked (Never; Optional without a .sig).
    `setting` names the pacman.conf option the level came from, for the messages.

    TrustAll (pacman: accept signatures by keys of marginal or unknown trust) is not honoured:
    a signature must come from a key the keyring trusts fully, exactly as with TrustedOnly.
    clp runs as root to downgrade system packages and will not weaken that check.
    """
    path = Path(path)
    check = package_siglevel(level, setting)
    if check == "Never":
        return None
    sig = Path(str(path) + ".sig")
    # lexists: a dangling symlink is a signature that cannot be read, not a missing one.
    if not os.path.lexists(sig):
        if check == "Optional":
            return None
        raise SignatureError(
            f"{path.name}: no signature ({sig.name} missing) and pacman's {setting} requires one"
        )
    from clp_alpm.system.signature import verify_detached  # (and gpg's plumbing) when it checks

    return verify_detached(path, sig, keyring)
