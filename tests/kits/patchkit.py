"""Test helpers for .clp archives: patch directories, zip and gzip'd tar archives written byte
by byte (so every field can lie), and one builder per hostile archive.

Nothing here uses clp_alpm's own archive code: archives are made the way other tools (or an
attacker) would make them, so the tests check clp against independent input.
"""

from __future__ import annotations

import bz2
import io
import os
import stat
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from clp_alpm.formats.archive import Limits
from clp_alpm.formats.meta import (
    MAX_META_BYTES,
    AppliesTo,
    HealthCheck,
    PackageRevert,
    PatchMeta,
    Reference,
    VersionConstraint,
)

MiB = 1024 * 1024
PATCH_ID = "CLPR261125"
ARCHIVE_NAME = f"{PATCH_ID}.clp"

SCRIPT_NAMES = {
    "script": ("Install-Script.ps1", "Remove-Script.ps1"),
    "patch": ("Install-Patch.ps1", "Remove-Patch.ps1"),
}
INSTALL_BODY = b'Write-Host "installing $env:CLP_PATCH_ID"\n'
REMOVE_BODY = b'Write-Host "removing $env:CLP_PATCH_ID"\n'

# clpctl's example patch (example/CLPRYYMMDD in Vincent-OS/clpctl): INI metadata, its script
# names and its payload paths. The bodies are our own.
CLPCTL_INI_META = (
    b"[Package]\nName=CLPRYYMMDD\nVersion=1\nArchitecture=x86_64\nDescription=Example CLP Patch"
)
CLPCTL_PAYLOAD = {
    "tmp/example-patch/new-file.txt": b"a new file\n",
    "tmp/example-patch/modified-file.txt": b"a modified file\n",
    "tmp/example-patch/removed-file.txt": b"a removed file\n",
}

_XML_ORDER = ("name", "version", "architecture", "description", "date", "packager", "severity")


def listing(root: Path) -> list[str]:
    """Every path under `root`, relative and sorted: what an extraction left."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def private_dir(path: Path) -> Path:
    """A new directory only its owner may enter, as clp's staging directories are."""
    path.mkdir(mode=0o700)
    return path


def meta_xml(**fields: object) -> bytes:
    """PKGINFO.meta in the XML form. Keyword names are the element names in lower case
    (name, version, architecture, description, date, packager, severity) plus `files`, a list
    of absolute paths. A field set to None is left out."""
    values: dict[str, object] = {
        "name": PATCH_ID,
        "version": "1",
        "architecture": "any",
        "description": "x",
    }
    values.update(fields)
    unknown = set(values) - set(_XML_ORDER) - {"files"}
    if unknown:
        raise TypeError(f"meta_xml: unknown fields {sorted(unknown)}")
    lines = ["<Package>"]
    for key in _XML_ORDER:
        if values.get(key) is not None:
            tag = key.capitalize()
            lines.append(f"  <{tag}>{escape(str(values[key]))}</{tag}>")
    files = values.get("files")
    if files:
        lines.append("  <Files>")
        lines += [f"    <File path={quoteattr(str(p))}/>" for p in files]  # type: ignore[union-attr]
        lines.append("  </Files>")
    lines.append("</Package>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def patch_files(
    meta: bytes | None = None,
    install: bytes | None = INSTALL_BODY,
    remove: bytes | None = REMOVE_BODY,
    payload: dict[str, bytes] | None = None,
    pair: str = "script",
) -> dict[str, bytes]:
    """The files of a patch as {relative path: content}; None leaves a file out."""
    install_name, remove_name = SCRIPT_NAMES[pair]
    files: dict[str, bytes] = {}
    files["PKGINFO.meta"] = meta_xml() if meta is None else meta
    if install is not None:
        files[install_name] = install
    if remove is not None:
        files[remove_name] = remove
    files.update(payload or {})
    return files


def write_patch_dir(
    directory: Path,
    meta: bytes | None = None,
    install: bytes | None = INSTALL_BODY,
    remove: bytes | None = REMOVE_BODY,
    payload: dict[str, bytes] | None = None,
    pair: str = "script",
) -> Path:
    """A patch source directory as `clp build` takes it; scripts are made executable."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in patch_files(meta, install, remove, payload, pair).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o755 if name.endswith(".ps1") else 0o644)
    return directory


# -- raw deflate and gzip -----------------------------------------------------------------------


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


_ZERO_CHUNK = bytes(MiB)


@dataclass(frozen=True)
class Zeros:
    """`count` zero bytes in a deflate stream, without compressing them all (fast)."""

    count: int


def deflate_pieces(pieces: Iterable[bytes | Zeros]) -> tuple[bytes, int, int]:
    """One raw deflate stream of `pieces`; returns (stream, crc32, length).

    Each piece is compressed from a fresh state and ends on a byte boundary (full flush), so
    the compressed form of 1 MiB of zeros can simply be repeated: a 200 MiB bomb in ~1 ms.
    """
    out: list[bytes] = []
    crc = length = 0
    zero_block = _flushed(_ZERO_CHUNK)
    for piece in pieces:
        if isinstance(piece, Zeros):
            whole, rest = divmod(piece.count, MiB)
            out.append(zero_block * whole)
            for _ in range(whole):
                crc = zlib.crc32(_ZERO_CHUNK, crc)
            length += whole * MiB
            piece = bytes(rest)
        if piece:
            out.append(_flushed(piece))
            crc = zlib.crc32(piece, crc)
            length += len(piece)
    out.append(b"\x03\x00")  # an empty final block
    return b"".join(out), crc, length


def _flushed(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


def gzip_member(deflated: bytes, crc: int, length: int) -> bytes:
    header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x02\xff"
    return header + deflated + struct.pack("<II", crc & 0xFFFFFFFF, length & 0xFFFFFFFF)


def gzip_bytes(data: bytes) -> bytes:
    return gzip_member(raw_deflate(data), zlib.crc32(data), len(data))


# -- zip, byte by byte --------------------------------------------------------------------------

_DOS_DATE_1980 = (0 << 9) | (1 << 5) | 1


@dataclass
class ZipItem:
    """One zip entry; every header field can be set to lie.

    name: str (encoded UTF-8) or bytes (written as is). mode: the Unix mode with its type bits
    (default: a directory 0755 for names ending in '/', else a regular file 0644).
    compressed: bytes written as the entry's data instead of compressing `data`.
    declared_size / crc: written instead of the true values. same_data_as: index of an earlier
    item whose local header and data this central record points to (no data of its own).
    """

    name: str | bytes
    data: bytes = b""
    method: int = 8
    flags: int | None = None
    mode: int | None = None
    external_attr: int | None = None
    create_system: int = 3
    declared_size: int | None = None
    crc: int | None = None
    compressed: bytes | None = None
    same_data_as: int | None = None

    def raw_name(self) -> bytes:
        return self.name if isinstance(self.name, bytes) else self.name.encode("utf-8")

    def flag_bits(self) -> int:
        if self.flags is not None:
            return self.flags
        return 0x800 if isinstance(self.name, str) and not self.name.isascii() else 0

    def attributes(self) -> int:
        if self.external_attr is not None:
            return self.external_attr
        mode = self.mode
        if mode is None:
            is_dir = self.raw_name().endswith(b"/")
            mode = (stat.S_IFDIR | 0o755) if is_dir else (stat.S_IFREG | 0o644)
        return (mode << 16) | (0x10 if stat.S_ISDIR(mode) else 0)

    def payload(self) -> bytes:
        if self.compressed is not None:
            return self.compressed
        return raw_deflate(self.data) if self.method == 8 else self.data


ZipInput = ZipItem | tuple[str | bytes, bytes]


def zip_bytes(items: Sequence[ZipInput], comment: bytes = b"") -> bytes:
    """A zip archive of `items` (ZipItem or (name, data)), in order, as bytes."""
    body, central, count = _zip_parts(items)
    return body + central + _zip_end(count, len(central), len(body), comment)


def _zip_parts(items: Sequence[ZipInput], start: int = 0) -> tuple[bytes, bytes, int]:
    """(local headers with data, central directory records, count) of `items`, the local part
    meant to be written at offset `start`."""
    entries = [i if isinstance(i, ZipItem) else ZipItem(i[0], i[1]) for i in items]
    body = bytearray()
    central = bytearray()
    offsets: list[int] = []
    for item in entries:
        name = item.raw_name()
        crc = zlib.crc32(item.data) if item.crc is None else item.crc
        size = len(item.data) if item.declared_size is None else item.declared_size
        if item.same_data_as is not None:
            offset = offsets[item.same_data_as]
            payload = entries[item.same_data_as].payload()
        else:
            offset = start + len(body)
            payload = item.payload()
            body += _local_header(name, item.flag_bits(), item.method, crc, len(payload), size)
            body += payload
        offsets.append(offset)
        central += _central_record(
            name, item.create_system, item.flag_bits(), item.method, crc, len(payload), size,
            item.attributes(), offset,
        )  # fmt: skip
    return bytes(body), bytes(central), len(entries)


def _local_header(name: bytes, flags: int, method: int, crc: int, csize: int, size: int) -> bytes:
    return struct.pack(
        "<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, method, 0, _DOS_DATE_1980, crc, csize, size,
        len(name), 0,
    ) + name  # fmt: skip


def _central_record(
    name: bytes, system: int, flags: int, method: int, crc: int, csize: int, size: int,
    attributes: int, offset: int,
) -> bytes:  # fmt: skip
    return struct.pack(
        "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", (system << 8) | 20, 20, flags, method, 0,
        _DOS_DATE_1980, crc, csize, size, len(name), 0, 0, 0, 0, attributes, offset,
    ) + name  # fmt: skip


def _zip_end(count: int, central_size: int, central_offset: int, comment: bytes = b"") -> bytes:
    return struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, central_size, central_offset,
        len(comment),
    ) + comment  # fmt: skip


def make_zip(path: Path, items: Sequence[ZipInput], comment: bytes = b"") -> Path:
    path.write_bytes(zip_bytes(items, comment))
    return path


def zip_items(files: dict[str, bytes], prefix: str = "") -> list[ZipItem]:
    return [
        ZipItem(
            prefix + name,
            data,
            mode=stat.S_IFREG | (0o755 if name.endswith(".ps1") else 0o644),
        )
        for name, data in files.items()
    ]


def good_zip_items(**extra_payload: bytes) -> list[ZipItem]:
    return zip_items(patch_files(payload=dict(extra_payload)))


def sparse_stored_zip(path: Path, files: dict[str, bytes], big_name: str, big_size: int) -> Path:
    """A zip with `files` plus a stored entry of `big_size` zero bytes left as a hole in the
    file: a huge payload that costs neither time nor disk to make."""
    body, central, count = _zip_parts(zip_items(files))
    crc = 0
    for _ in range(big_size // MiB):
        crc = zlib.crc32(_ZERO_CHUNK, crc)
    crc = zlib.crc32(bytes(big_size % MiB), crc)
    name = big_name.encode()
    mode = (stat.S_IFREG | 0o644) << 16
    central += _central_record(name, 3, 0, 0, crc, big_size, big_size, mode, len(body))
    with open(path, "wb") as out:
        out.write(body)
        out.write(_local_header(name, 0, 0, crc, big_size, big_size))
        out.seek(big_size, io.SEEK_CUR)  # the hole reads as zeros
        central_start = out.tell()
        out.write(central)
        out.write(_zip_end(count + 1, len(central), central_start))
    return path


def set_zip_field(data: bytes, name: str, **fields: int) -> bytes:
    """Rewrite crc / compress_size / file_size of entry `name` in both its headers."""
    offsets = {"crc": (14, 16), "csize": (18, 20), "usize": (22, 24)}
    raw = bytearray(data)
    encoded = name.encode()
    for signature, names_at, base in ((b"PK\x03\x04", 26, 0), (b"PK\x01\x02", 28, 2)):
        start = 0
        while (start := raw.find(signature, start)) >= 0:
            length = struct.unpack_from("<H", raw, start + names_at)[0]
            header = 30 if signature == b"PK\x03\x04" else 46
            if raw[start + header : start + header + length] == encoded:
                for key, value in fields.items():
                    local_at, central_at = offsets[key]
                    struct.pack_into(
                        "<I", raw, start + (local_at if base == 0 else central_at), value
                    )
            start += 4
    return bytes(raw)


# -- tar.gz -------------------------------------------------------------------------------------


@dataclass
class TarItem:
    """One tar member. `name` may hold surrogate escapes for raw non-UTF-8 bytes."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    mode: int | None = None
    linkname: str = ""
    declared_size: int | None = None
    pax: dict[str, str] | None = None  # pax header records (written in PAX format)

    def info(self) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self.name)
        info.type = self.type
        info.mode = (
            self.mode
            if self.mode is not None
            else (0o755 if self.type == tarfile.DIRTYPE else 0o644)
        )
        info.linkname = self.linkname
        info.size = (
            len(self.data)
            if self.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
            else 0
        )
        if self.declared_size is not None:
            info.size = self.declared_size
        info.mtime = 0
        if self.pax:
            info.pax_headers = dict(self.pax)
        return info


TarInput = TarItem | tuple[str, bytes]


def tar_bytes(items: Sequence[TarInput], tar_format: int = tarfile.GNU_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=tar_format, encoding="utf-8", errors="surrogateescape"
    ) as archive:
        for item in items:
            item = item if isinstance(item, TarItem) else TarItem(item[0], item[1])
            info = item.info()
            data = io.BytesIO(item.data) if info.size > 0 else None
            archive.addfile(info, data)
    return buffer.getvalue()


def make_targz(
    path: Path,
    items: Sequence[TarInput],
    *,
    tar_format: int = tarfile.GNU_FORMAT,
    members: int = 1,
    trailing: bytes = b"",
) -> Path:
    """A gzip'd tar of `items`, split over `members` concatenated gzip members."""
    data = tar_bytes(items, tar_format)
    path.write_bytes(gzip_split(data, members) + trailing)
    return path


def gzip_split(data: bytes, members: int = 1) -> bytes:
    step = -(-len(data) // members)
    return b"".join(gzip_bytes(data[i : i + step]) for i in range(0, len(data), step))


def tar_items(files: dict[str, bytes], prefix: str = "") -> list[TarItem]:
    return [
        TarItem(prefix + name, data, mode=0o755 if name.endswith(".ps1") else 0o644)
        for name, data in files.items()
    ]


def good_tar_items(**extra_payload: bytes) -> list[TarItem]:
    return tar_items(patch_files(payload=dict(extra_payload)))


# -- bombs --------------------------------------------------------------------------------------


def zip_bomb(path: Path, size: int = 200 * MiB) -> Path:
    """A valid patch plus one deflated entry of `size` zero bytes (~1000:1)."""
    stream, crc, length = deflate_pieces([Zeros(size)])
    bomb = ZipItem("tmp/zeros", compressed=stream, declared_size=length, crc=crc)
    return make_zip(path, [*good_zip_items(), bomb])


def targz_bomb(path: Path, size: int = 1000 * MiB) -> Path:
    """A gzip'd tar whose first member declares `size` bytes, all zeros (~1000:1)."""
    info = tarfile.TarInfo("tmp/zeros")
    info.size = size
    header = info.tobuf(tarfile.GNU_FORMAT)
    rest = tar_bytes(good_tar_items())  # the patch files and the end marker
    stream, crc, length = deflate_pieces([header, Zeros(size), rest])
    path.write_bytes(gzip_member(stream, crc, length))
    return path


# -- hostile archives ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HostileCase:
    """An archive clp must refuse: `build(path)` writes it; the error must match `match`."""

    id: str
    build: Callable[[Path], object]
    match: str
    limits: Limits | None = field(default=None)


def _zip_with(*bad: ZipInput, base: Sequence[ZipInput] | None = None) -> Callable[[Path], Path]:
    return lambda path: make_zip(path, [*(good_zip_items() if base is None else base), *bad])


def _tar_with(*bad: TarInput, base: Sequence[TarInput] | None = None) -> Callable[[Path], Path]:
    return lambda path: make_targz(path, [*(good_tar_items() if base is None else base), *bad])


def _without(*names: str) -> list[ZipItem]:
    return [i for i in good_zip_items() if i.name not in names]


def _truncated(build: Callable[[Path], object]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        build(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return write


def _concatenated_zips(path: Path) -> None:
    path.write_bytes(zip_bytes([("junk.txt", b"hidden")]) + zip_bytes(good_zip_items()))


def _bad_meta_crc(path: Path) -> None:
    data = zip_bytes(good_zip_items())
    path.write_bytes(set_zip_field(data, "PKGINFO.meta", crc=0x12345678))


def _damaged_tar_header(path: Path) -> None:
    data = bytearray(tar_bytes([*good_tar_items(), ("tmp/later", b"after the damage")]))
    second = 512 + 512  # header of the 2nd member: after the 1st header and its data block
    data[second + 148 : second + 156] = b"0000000\0"  # a wrong checksum
    path.write_bytes(gzip_bytes(bytes(data)))


def _tar_cut_inside_complete_gzip(path: Path) -> None:
    data = tar_bytes([*good_tar_items(), ("tmp/big", bytes(range(256)) * 40)])
    cut = data.index(b"tmp/big") + 512 + 5000  # in the middle of tmp/big's data
    path.write_bytes(gzip_bytes(data[:cut]))


def _tar_long_name_bomb(path: Path) -> None:
    long_name = tarfile.TarInfo("././@LongLink")
    long_name.type = tarfile.GNUTYPE_LONGNAME
    body = (b"abcdefghij" * (MiB // 10 + 1))[:MiB]
    long_name.size = len(body)
    data = long_name.tobuf(tarfile.GNU_FORMAT) + body + tar_bytes(good_tar_items())
    path.write_bytes(gzip_bytes(data))


def _tar_trailing_data(path: Path) -> None:
    data = tar_bytes(good_tar_items()) + b"hidden data after the end marker" * 100
    path.write_bytes(gzip_bytes(data))


_LONG_NAME = "tmp/" + "/".join(["a" * 250] * 5)
_DEEP_NAME = "/".join(["d"] * 33) + "/f"
_XXE_META = (
    b'<?xml version="1.0"?>\n<!DOCTYPE Package [<!ENTITY x SYSTEM "file:///etc/shadow">]>\n'
    b"<Package><Name>&x;</Name><Version>1</Version><Architecture>any</Architecture>"
    b"<Description>x</Description></Package>"
)
_SMALL_TOTAL = Limits(max_total_size=MiB, max_file_size=MiB)

HOSTILE_CASES: list[HostileCase] = [
    # names
    HostileCase("zip-dotdot", _zip_with(("../evil", b"x")), r"'\.\./evil' escapes the archive"),
    HostileCase("zip-dotdot-inside", _zip_with(("tmp/../../evil", b"x")), "escapes the archive"),
    HostileCase("zip-absolute", _zip_with(("/etc/passwd", b"x")), "is an absolute path"),
    HostileCase("zip-backslash", _zip_with(("a\\..\\b", b"x")), "backslash"),
    HostileCase("zip-nul", _zip_with(("tmp/a\0b", b"x")), "NUL byte"),
    HostileCase("zip-empty-name", _zip_with(("", b"x")), "empty name"),
    HostileCase("zip-dot-file", _zip_with(ZipItem(".", b"x")), "empty name"),
    HostileCase("zip-control-char", _zip_with(("tmp/a\nb", b"x")), "control character"),
    HostileCase(
        "zip-invalid-utf8", _zip_with(ZipItem(b"tmp/\xff\xfe", b"x", flags=0x800)), "UTF-8"
    ),
    HostileCase(
        "zip-non-ascii-unflagged",
        _zip_with(ZipItem("tmp/café".encode(), b"x", flags=0)),
        "not marked as UTF-8",
    ),
    HostileCase("zip-name-too-long", _zip_with((_LONG_NAME, b"x")), "name that is too long"),
    HostileCase("zip-component-too-long", _zip_with(("tmp/" + "a" * 256, b"x")), "component"),
    HostileCase("zip-too-deep", _zip_with((_DEEP_NAME, b"x")), "nested too deep"),
    # types
    HostileCase(
        "zip-symlink",
        _zip_with(ZipItem("tmp/link", b"/etc/shadow", mode=stat.S_IFLNK | 0o777)),
        "'tmp/link' is a symbolic link",
    ),
    HostileCase(
        "zip-chardev", _zip_with(ZipItem("tmp/c", mode=stat.S_IFCHR | 0o644)), "character device"
    ),
    HostileCase(
        "zip-blockdev", _zip_with(ZipItem("tmp/b", mode=stat.S_IFBLK | 0o644)), "block device"
    ),
    HostileCase("zip-fifo", _zip_with(ZipItem("tmp/p", mode=stat.S_IFIFO | 0o644)), "FIFO"),
    HostileCase("zip-socket", _zip_with(ZipItem("tmp/s", mode=stat.S_IFSOCK | 0o644)), "socket"),
    HostileCase(
        "zip-file-named-like-dir",
        _zip_with(ZipItem("tmp/a/", mode=stat.S_IFREG | 0o644)),
        "ends with '/'",
    ),
    # duplicates and collisions
    HostileCase("zip-duplicate", _zip_with(("tmp/a", b"1"), ("tmp/a", b"2")), "duplicate"),
    HostileCase("zip-collide-dot", _zip_with(("tmp/a", b"1"), ("tmp/./a", b"2")), "collides with"),
    HostileCase(
        "zip-collide-slashes", _zip_with(("tmp/a", b"1"), ("tmp//a", b"2")), "collides with"
    ),
    HostileCase(
        "zip-collide-trailing-slash", _zip_with(("tmp/a", b"1"), ("tmp/a/", b"")), "collides"
    ),
    HostileCase(
        "zip-collide-nfc-nfd",
        _zip_with(("tmp/caf\u00e9", b"1"), ("tmp/cafe\u0301", b"2")),
        "collides with",
    ),
    HostileCase(
        "zip-file-and-dir",
        _zip_with(("tmp", b"1"), ("tmp/a", b"2")),
        "inside 'tmp', which is a file",
    ),
    HostileCase(
        "zip-overlapping-entries",
        _zip_with(ZipItem("tmp/alias", same_data_as=0)),
        "overlaps",
    ),
    HostileCase("zip-concatenated", _concatenated_zips, "before its first entry"),
    # zip features
    HostileCase("zip-encrypted", _zip_with(ZipItem("tmp/secret", b"x", flags=0x1)), "encrypted"),
    HostileCase(
        "zip-bzip2",
        _zip_with(ZipItem("tmp/b", b"x" * 100, method=12, compressed=bz2.compress(b"x" * 100))),
        "compression method 12",
    ),
    HostileCase(
        "zip-unknown-method",
        _zip_with(ZipItem("tmp/b", b"x", method=99, compressed=b"x")),
        "compression method 99",
    ),
    HostileCase(
        "zip-stored-lying-size",
        _zip_with(ZipItem("tmp/s", b"0123456789", method=0, declared_size=5)),
        "lying header",
    ),
    # sizes and bombs
    HostileCase(
        "zip-too-many-entries",
        lambda path: make_zip(
            path, [*good_zip_items(), *(ZipItem(f"tmp/{i}", method=0) for i in range(10_000))]
        ),
        "too many entries",
    ),
    HostileCase(
        "zip-file-too-large",
        _zip_with(ZipItem("tmp/huge", compressed=b"\x03\x00", declared_size=1536 * MiB)),
        "'tmp/huge' is too large",
    ),
    HostileCase(
        "zip-total-too-large",
        _zip_with(("tmp/a", bytes(600 * 1024)), ("tmp/b", bytes(600 * 1024))),
        "total size is too large",
        _SMALL_TOTAL,
    ),
    HostileCase("zip-ratio-bomb", zip_bomb, "compression ratio of"),
    HostileCase(
        "file-larger-than-limit",
        _zip_with(ZipItem("tmp/a", os.urandom(5000), method=0)),
        "more than the 4096 a patch may have",
        Limits(max_total_size=4096),
    ),
    # damage
    HostileCase("not-an-archive", lambda path: path.write_text("hello\n"), "neither a zip"),
    HostileCase("empty-file", lambda path: path.write_bytes(b""), "neither a zip"),
    HostileCase("zip-truncated", _truncated(_zip_with()), "not a valid zip archive"),
    HostileCase("zip-meta-bad-crc", _bad_meta_crc, "Bad CRC-32"),
    # metadata and scripts
    HostileCase(
        "zip-meta-missing",
        lambda p: make_zip(p, _without("PKGINFO.meta")),
        "PKGINFO.meta is missing",
    ),
    HostileCase(
        "zip-meta-too-large",
        lambda p: make_zip(
            p, [*_without("PKGINFO.meta"), ("PKGINFO.meta", b" " * (MAX_META_BYTES + 1))]
        ),
        "PKGINFO.meta is larger than",
    ),
    HostileCase(
        "zip-meta-is-a-directory",
        lambda p: make_zip(p, [*_without("PKGINFO.meta"), ("PKGINFO.meta/", b"")]),
        "PKGINFO.meta is a directory",
    ),
    HostileCase(
        "zip-meta-doctype",
        lambda p: make_zip(p, [*_without("PKGINFO.meta"), ("PKGINFO.meta", _XXE_META)]),
        "DOCTYPE",
    ),
    HostileCase(
        "zip-no-scripts",
        lambda p: make_zip(p, _without(*SCRIPT_NAMES["script"])),
        "neither Install-Script.ps1/Remove-Script.ps1 nor Install-Patch.ps1/Remove-Patch.ps1",
    ),
    HostileCase(
        "zip-half-documented-pair",
        lambda p: make_zip(p, _without("Remove-Script.ps1")),
        "Install-Script.ps1 is there but Remove-Script.ps1 is missing",
    ),
    HostileCase(
        "zip-half-clpctl-pair",
        lambda p: make_zip(
            p, [*_without(*SCRIPT_NAMES["script"]), ("Remove-Patch.ps1", REMOVE_BODY)]
        ),
        "Remove-Patch.ps1 is there but Install-Patch.ps1 is missing",
    ),
    # gzip'd tar
    HostileCase("tar-dotdot", _tar_with(("../evil", b"x")), "escapes the archive"),
    HostileCase("tar-absolute", _tar_with(("/etc/passwd", b"x")), "absolute path"),
    HostileCase(
        "tar-symlink",
        _tar_with(TarItem("tmp/link", type=tarfile.SYMTYPE, linkname="/etc/shadow")),
        "symbolic link",
    ),
    HostileCase(
        "tar-hardlink",
        _tar_with(TarItem("tmp/link", type=tarfile.LNKTYPE, linkname="PKGINFO.meta")),
        "hard link",
    ),
    HostileCase(
        "tar-chardev", _tar_with(TarItem("tmp/c", type=tarfile.CHRTYPE)), "character device"
    ),
    HostileCase("tar-blockdev", _tar_with(TarItem("tmp/b", type=tarfile.BLKTYPE)), "block device"),
    HostileCase("tar-fifo", _tar_with(TarItem("tmp/p", type=tarfile.FIFOTYPE)), "FIFO"),
    HostileCase(
        "tar-contiguous", _tar_with(TarItem("tmp/c", b"x", type=tarfile.CONTTYPE)), "contiguous"
    ),
    HostileCase("tar-unknown-type", _tar_with(TarItem("tmp/v", type=b"V")), "unsupported tar type"),
    HostileCase(
        "tar-negative-size",
        _tar_with(TarItem("tmp/n", declared_size=-1024)),
        "negative size",
    ),
    HostileCase(
        "tar-pax-sparse",
        lambda path: make_targz(
            path,
            [
                *good_tar_items(),
                TarItem(
                    "tmp/s", b"0123456789", pax={"GNU.sparse.map": "0,10", "GNU.sparse.size": "99"}
                ),
            ],
            tar_format=tarfile.PAX_FORMAT,
        ),
        "sparse file",
    ),
    HostileCase("tar-invalid-utf8", _tar_with(("tmp/caf\udce9", b"x")), "not valid UTF-8"),
    HostileCase("tar-duplicate", _tar_with(("tmp/a", b"1"), ("tmp/a", b"2")), "duplicate"),
    HostileCase(
        "tar-collide-nfc-nfd",
        _tar_with(("tmp/caf\u00e9", b"1"), ("tmp/cafe\u0301", b"2")),
        "collides with",
    ),
    HostileCase("tar-file-and-dir", _tar_with(("tmp", b"1"), ("tmp/a", b"2")), "which is a file"),
    HostileCase(
        "tar-too-many-entries",
        _tar_with(*((f"tmp/{i}", b"") for i in range(10))),
        "too many entries",
        Limits(max_entries=8),
    ),
    HostileCase("tar-gzip-bomb", targz_bomb, "gzip bomb"),
    HostileCase("tar-long-name-bomb", _tar_long_name_bomb, "tar header is larger than"),
    HostileCase("tar-damaged-header", _damaged_tar_header, "damaged tar header"),
    HostileCase("tar-truncated-gzip", _truncated(_tar_with()), "truncated"),
    HostileCase("tar-truncated-tar", _tar_cut_inside_complete_gzip, "truncated|unexpected end"),
    HostileCase("tar-trailing-data", _tar_trailing_data, "data after the end of the tar"),
    HostileCase(
        "tar-garbage-after-gzip",
        lambda path: make_targz(path, good_tar_items(), trailing=b"junk after the gzip stream"),
        "not a valid gzip'd tar",
    ),
]


# Every field of PKGINFO.meta set, optional attributes both present and absent.
FULL_META = PatchMeta(
    name="CLPR261125",
    version="2",
    architecture="x86_64",
    description="Harden sshd MACs",
    date="2026-11-25",
    packager="Vincent OS Security <security@example.org>",
    severity="high",
    references=(
        Reference("CVE", "CVE-2026-0001"),
        Reference("URL", "https://example.org/advisory"),
    ),
    applies_to=(
        AppliesTo("openssh", VersionConstraint("<", "9.9p2-1")),
        AppliesTo("openssl", None),
    ),
    files=("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/50-clp.conf"),
    reverts=(
        PackageRevert("nvidia-utils", "550.78-1", "555.58-2"),
        PackageRevert("mesa", "1:24.1.0-1", None),
    ),
    triggers=("openssh", "linux"),
    restart=("sshd.service", "sshd.socket"),
    health_check=HealthCheck("systemctl is-active sshd.service", 45),
    legacy=False,
    supersedes=("CLPR261101", "CLPR261015"),
)


# -- ambiguous zips (tests/hostile/test_zip_structure.py) ---------------------------------------
#
# Each is a zip that some reader would read one way and another reader another way: the local
# headers, the central directory and the end record(s) do not describe exactly the same entries,
# or leave bytes that belong to none of them.


@dataclass
class RawEntry:
    """One entry as its two headers will say it; the local fields can be set to lie."""

    name: bytes
    payload: bytes  # as stored (deflated or not)
    crc: int
    size: int
    method: int
    flags: int
    attributes: int
    local_name: bytes | None = None
    local_fields: dict[str, int] = field(default_factory=dict)  # flags method crc csize usize
    descriptor: bytes = b""  # written after the data

    def local(self) -> bytes:
        fields = {
            "flags": self.flags,
            "method": self.method,
            "crc": self.crc,
            "csize": len(self.payload),
            "usize": self.size,
        } | self.local_fields
        name = self.name if self.local_name is None else self.local_name
        return (
            _local_header(
                name,
                fields["flags"],
                fields["method"],
                fields["crc"],
                fields["csize"],
                fields["usize"],
            )  # fmt: skip
            + self.payload
            + self.descriptor
        )

    def central(self, offset: int) -> bytes:
        return _central_record(
            self.name, 3, self.flags, self.method, self.crc, len(self.payload), self.size,
            self.attributes, offset,
        )  # fmt: skip


def raw_entries(items: Sequence[ZipItem] | None = None) -> list[RawEntry]:
    return [
        RawEntry(
            item.raw_name(),
            item.payload(),
            zlib.crc32(item.data),
            len(item.data),
            item.method,
            item.flag_bits(),
            item.attributes(),
        )  # fmt: skip
        for item in (good_zip_items() if items is None else items)
    ]


def raw_zip(
    entries: Sequence[RawEntry],
    *,
    listed: Sequence[int] | None = None,
    prepend: bytes = b"",
    offsets_include_prepended: bool = True,
    before_central: bytes = b"",
    comment: bytes = b"",
    trailing: bytes = b"",
    end_count: int | None = None,
    offsets: dict[int, int] | None = None,
) -> bytes:
    """A zip of `entries` laid out in order; the central directory lists those in `listed`
    (default: all), at the offsets they have (or those `offsets` says)."""
    body = bytearray(prepend)
    where: list[int] = []
    for entry in entries:
        where.append(len(body) if offsets_include_prepended else len(body) - len(prepend))
        body += entry.local()
    body += before_central
    chosen = range(len(entries)) if listed is None else listed
    central = b"".join(entries[i].central((offsets or {}).get(i, where[i])) for i in chosen)
    start = len(body) if offsets_include_prepended else len(body) - len(prepend)
    count = len(chosen) if end_count is None else end_count
    return bytes(body) + central + _zip_end(count, len(central), start, comment) + trailing


def _entry(entries: list[RawEntry], name: str) -> RawEntry:
    return next(e for e in entries if e.name == name.encode())


def zip_local_lies(name: str, **fields: int) -> Callable[[Path], None]:
    """A zip whose entry `name` has other `fields` in its local header than in the central
    directory (flags, method, crc, csize, usize)."""

    def build(path: Path) -> None:
        entries = raw_entries()
        _entry(entries, name).local_fields = dict(fields)
        path.write_bytes(raw_zip(entries))

    return build


def zip_local_name(name: str, local_name: str) -> Callable[[Path], None]:
    """A zip whose entry `name` is `local_name` in its local header."""

    def build(path: Path) -> None:
        entries = raw_entries([*good_zip_items(), ZipItem(name, b"data")])
        _entry(entries, name).local_name = local_name.encode()
        path.write_bytes(raw_zip(entries))

    return build


def zip_hidden_entry(position: str) -> Callable[[Path], None]:
    """A zip with a local entry (tmp/hidden) that the central directory does not list, at the
    `position` 'first', 'middle' or 'last' of the entries."""

    def build(path: Path) -> None:
        entries = raw_entries()
        hidden = raw_entries([ZipItem("tmp/hidden", b"run me")])[0]
        at = {"first": 0, "middle": 2, "last": len(entries)}[position]
        entries.insert(at, hidden)
        listed = [i for i in range(len(entries)) if i != at]
        path.write_bytes(raw_zip(entries, listed=listed))

    return build


def zip_second_directory_in_comment(*, at_the_very_end: bool) -> Callable[[Path], None]:
    """A zip whose comment holds a second central directory and end record, listing a local
    entry (tmp/hidden) that the first directory skips: readers that search the end record
    from the end of the file read the second one, those that trust the comment length the
    first."""

    def build(path: Path) -> None:
        entries = raw_entries()
        hidden = raw_entries([ZipItem("tmp/hidden", b"run me")])[0]
        body = bytearray()
        offsets = []
        for entry in [*entries, hidden]:
            offsets.append(len(body))
            body += entry.local()
        real_cd = b"".join(e.central(o) for e, o in zip(entries, offsets[:-1], strict=True))
        fake_cd = b"".join(e.central(o) for e, o in zip([*entries, hidden], offsets, strict=True))
        end_of_real = len(body) + len(real_cd)
        # the comment: the fake directory, then its end record, pointing at the fake directory
        fake_start = end_of_real + 22
        tail = b"" if at_the_very_end else b"  (signed-off)"
        fake_end = _zip_end(len(entries) + 1, len(fake_cd), fake_start)
        comment = fake_cd + fake_end + tail
        real_end = _zip_end(len(entries), len(real_cd), len(body), comment)
        path.write_bytes(bytes(body) + real_cd + real_end)

    return build


def zip_with_comment(comment: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(raw_zip(raw_entries(), comment=comment))


def zip64_end_disagreeing(field_name: str) -> Callable[[Path], None]:
    """A zip with zip64 end records whose `field_name` ('entries' or 'offset') says other than
    the (non-sentinel) value in the classic end record."""

    def build(path: Path) -> None:
        entries = raw_entries()
        body = bytearray()
        offsets = []
        for entry in entries:
            offsets.append(len(body))
            body += entry.local()
        central = b"".join(e.central(o) for e, o in zip(entries, offsets, strict=True))
        cd_start = len(body)
        count = len(entries)
        z64_count = count + 1 if field_name == "entries" else count
        z64_offset = offsets[1] if field_name == "offset" else cd_start
        z64_at = cd_start + len(central)
        zip64_end = struct.pack(
            "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, z64_count, z64_count,
            len(central), z64_offset,
        )  # fmt: skip
        locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, z64_at, 1)
        end = _zip_end(count, len(central), cd_start)
        path.write_bytes(bytes(body) + central + zip64_end + locator + end)

    return build


def zip_end_count(count: int) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(raw_zip(raw_entries(), end_count=count))


def zip_split_disk(path: Path) -> None:
    data = bytearray(raw_zip(raw_entries()))
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 4, 1, 1)
    path.write_bytes(bytes(data))


def zip_entry_inside_another(path: Path) -> None:
    """The central directory points an extra entry into the middle of another's data, where
    a local header was planted inside that stored data."""
    planted = raw_entries([ZipItem("tmp/inner", b"evil", method=0)])[0].local()
    items = [*good_zip_items(), ZipItem("tmp/outer", b"x" * 10 + planted + b"y" * 10, method=0)]
    entries = raw_entries(items)
    body_before = sum(len(e.local()) for e in entries[:-1])
    outer = entries[-1]
    inner_offset = body_before + 30 + len(outer.name) + 10
    inner = raw_entries([ZipItem("tmp/inner", b"evil", method=0)])[0]
    data = raw_zip([*entries, inner], offsets={len(entries): inner_offset})
    # the inner entry's own local header was appended after outer: cut it out again, so that
    # only the planted copy inside outer's data remains
    cut = data.rindex(inner.local())
    path.write_bytes(_rebuild_end(data[:cut] + data[cut + len(inner.local()) :]))


def _rebuild_end(data: bytes) -> bytes:
    """`data` with its central directory offset in the end record made right again (after
    bytes were cut before the directory)."""
    end = data.rindex(b"PK\x05\x06")
    size = struct.unpack_from("<I", data, end + 12)[0]
    out = bytearray(data)
    struct.pack_into("<I", out, end + 16, end - size)
    return bytes(out)


def zip_descriptor_lies(path: Path) -> None:
    """An entry with a data descriptor whose CRC-32 disagrees with the central directory."""
    entries = raw_entries(good_zip_items(extra=b"described"))
    entry = _entry(entries, "extra")
    entry.flags |= 0x08
    entry.local_fields = {"crc": 0, "csize": 0, "usize": 0}
    entry.descriptor = struct.pack("<4sIII", b"PK\x07\x08", 0xDEADBEEF, len(entry.payload), 9)
    path.write_bytes(raw_zip(entries))


def zip_deflate_with_junk(path: Path) -> None:
    """A deflated entry whose data holds bytes after the end of its deflate stream."""
    entries = raw_entries(good_zip_items(extra=b"payload"))
    entry = _entry(entries, "extra")
    entry.payload += b"hidden after the stream"
    path.write_bytes(raw_zip(entries))


def zip_bad_payload_crc(path: Path) -> None:
    """A payload entry (not PKGINFO.meta) whose CRC-32 is wrong in both headers: only a
    reader that reads every byte sees it."""
    items = [*good_zip_items(), ZipItem("tmp/payload", b"payload" * 100)]
    path.write_bytes(set_zip_field(zip_bytes(items), "tmp/payload", crc=0x12345678))


def zip_directory_with_data(path: Path) -> None:
    items = [*good_zip_items(), ZipItem("tmp/dir/", b"data in a directory", method=0)]
    path.write_bytes(zip_bytes(items))


def zip_central_garbage(path: Path) -> None:
    """Bytes inside the central directory's declared size that are no record."""
    entries = raw_entries()
    body = b"".join(e.local() for e in entries)
    offsets = [0]
    for e in entries[:-1]:
        offsets.append(offsets[-1] + len(e.local()))
    central = b"".join(e.central(o) for e, o in zip(entries, offsets, strict=True)) + b"junk"
    path.write_bytes(body + central + _zip_end(len(entries), len(central), len(body)))


def _with_stub(stub: bytes, *, adjusted: bool) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(
        raw_zip(raw_entries(), prepend=stub, offsets_include_prepended=adjusted)
    )


def _gap_before_central(path: Path) -> None:
    path.write_bytes(raw_zip(raw_entries(), before_central=b"\0" * 64))


ZIP_STRUCTURE_CASES: list[HostileCase] = [
    HostileCase(
        "zip-data-after-end-record",
        lambda p: p.write_bytes(raw_zip(raw_entries(), trailing=b"appended by someone")),
        "data after the end of the zip archive",
    ),
    HostileCase(
        "zip-zip-after-end-record",
        lambda p: p.write_bytes(zip_bytes(good_zip_items()) + zip_bytes([("tmp/x", b"x")])),
        "before its first entry|data after the end",
    ),
    HostileCase(
        "zip-second-directory-in-comment-at-end",
        zip_second_directory_in_comment(at_the_very_end=True),
        "second central directory",
    ),
    HostileCase(
        "zip-second-directory-in-comment",
        zip_second_directory_in_comment(at_the_very_end=False),
        "comment holds zip records",
    ),
    HostileCase(
        "zip-local-header-in-comment",
        zip_with_comment(raw_entries([ZipItem("tmp/x", b"x")])[0].local()),
        "comment holds zip records",
    ),
    HostileCase("zip-hidden-entry-first", zip_hidden_entry("first"), "before its first entry"),
    HostileCase("zip-hidden-entry-middle", zip_hidden_entry("middle"), "does not list"),
    HostileCase("zip-hidden-entry-last", zip_hidden_entry("last"), "does not list"),
    HostileCase(
        "zip-local-name-differs",
        zip_local_name("tmp/good", "tmp/evil"),
        "'tmp/good' is named 'tmp/evil' in its local header",
    ),
    HostileCase(
        "zip-local-name-longer",
        zip_local_name("tmp/good", "tmp/../../../etc/cron.d/x"),
        "in its local header",
    ),
    HostileCase(
        "zip-local-size-differs",
        zip_local_lies("Install-Script.ps1", usize=5),
        "has size 5 in its local header",
    ),
    HostileCase(
        "zip-local-compressed-size-differs",
        zip_local_lies("Install-Script.ps1", csize=3),
        "has compressed size 3 in its local header",
    ),
    HostileCase(
        "zip-local-crc-differs",
        zip_local_lies("Install-Script.ps1", crc=0xCAFEBABE),
        "has CRC-32 0xcafebabe in its local header",
    ),
    HostileCase(
        "zip-local-method-differs",
        zip_local_lies("PKGINFO.meta", method=0),
        "has compression method 0 in its local header",
    ),
    HostileCase(
        "zip-local-flags-differ",
        zip_local_lies("PKGINFO.meta", flags=0x0800),
        "has flags 0x0800 in its local header",
    ),
    HostileCase(
        "zip-local-says-encrypted",
        zip_local_lies("Remove-Script.ps1", flags=0x0001),
        "has flags 0x0001 in its local header",
    ),
    HostileCase("zip-entry-inside-another", zip_entry_inside_another, "overlaps entry 'tmp/outer'"),
    HostileCase(
        "zip-prepended-stub", _with_stub(b"#!/bin/sh\nexit 0\n", adjusted=True), "prepended"
    ),
    HostileCase(
        "zip-prepended-unadjusted",
        _with_stub(b"MZ" + bytes(200), adjusted=False),
        "prepended",
    ),
    HostileCase("zip-gap-before-directory", _gap_before_central, "unknown data"),
    HostileCase(
        "zip64-end-disagrees-on-entries",
        zip64_end_disagreeing("entries"),
        "zip64 end record says entries",
    ),
    HostileCase(
        "zip64-end-disagrees-on-offset",
        zip64_end_disagreeing("offset"),
        "zip64 end record says central directory offset",
    ),
    HostileCase("zip-end-count-too-low", zip_end_count(2), "its end record says 2"),
    HostileCase("zip-end-count-too-high", zip_end_count(9), "its end record says 9"),
    HostileCase("zip-split-over-disks", zip_split_disk, "several disks"),
    HostileCase("zip-central-garbage", zip_central_garbage, "something else than its records"),
    HostileCase("zip-descriptor-disagrees", zip_descriptor_lies, "data descriptor that disagrees"),
    HostileCase(
        "zip-deflate-trailing-junk", zip_deflate_with_junk, "data after the end of its compressed"
    ),
    HostileCase("zip-payload-bad-crc", zip_bad_payload_crc, "'tmp/payload' fails its check"),
    HostileCase("zip-directory-with-data", zip_directory_with_data, "is a directory but declares"),
    # gzip'd tar: what follows the archive
    HostileCase(
        "tar-second-archive-in-second-gzip-member",
        lambda p: p.write_bytes(
            gzip_bytes(tar_bytes(good_tar_items())) + gzip_bytes(tar_bytes([("tmp/x", b"x")]))
        ),
        "data after the end of the tar",
    ),
    HostileCase(
        "tar-second-archive-after-end-marker",
        lambda p: p.write_bytes(
            gzip_bytes(tar_bytes(good_tar_items()) + tar_bytes([("tmp/x", b"x")]))
        ),
        "data after the end of the tar",
    ),
    HostileCase(
        "tar-zeros-after-gzip",
        lambda p: make_targz(p, good_tar_items(), trailing=bytes(1024)),
        "not a valid gzip'd tar",
    ),
    HostileCase(
        "tar-zip-after-gzip",
        lambda p: make_targz(p, good_tar_items(), trailing=zip_bytes(good_zip_items())),
        "not a valid gzip'd tar",
    ),
    HostileCase(
        "tar-pax-path-overrides-name",
        lambda p: make_targz(
            p,
            [*good_tar_items(), TarItem("tmp/harmless", b"x", pax={"path": "../../etc/evil"})],
            tar_format=tarfile.PAX_FORMAT,
        ),
        "escapes the archive",
    ),
]


# -- names that mislead (tests/hostile/test_names.py) -------------------------------------------

# Characters that reorder or hide what a terminal shows: each must be refused in a name or a
# path, and the error must name it as U+XXXX, never print it.
INVISIBLE_CHARACTERS = {
    "rlo": "\u202e",  # RIGHT-TO-LEFT OVERRIDE
    "lro": "\u202d",  # LEFT-TO-RIGHT OVERRIDE
    "rli": "\u2067",  # RIGHT-TO-LEFT ISOLATE
    "pdi": "\u2069",  # POP DIRECTIONAL ISOLATE
    "rlm": "\u200f",  # RIGHT-TO-LEFT MARK
    "alm": "\u061c",  # ARABIC LETTER MARK
    "zwsp": "\u200b",  # ZERO WIDTH SPACE
    "zwj": "\u200d",  # ZERO WIDTH JOINER
    "bom": "\ufeff",  # ZERO WIDTH NO-BREAK SPACE
    "soft-hyphen": "\u00ad",
    "line-separator": "\u2028",
    "mongolian-vowel-separator": "\u180e",
}


def with_meta(meta: bytes) -> Callable[[Path], Path]:
    """A good zip patch whose PKGINFO.meta is `meta`."""
    return lambda path: make_zip(path, [*_without("PKGINFO.meta"), ("PKGINFO.meta", meta)])


def _codepoint(char: str) -> str:
    """The pattern an error naming `char` matches: U+202E."""
    return rf"U\+{ord(char):04X}"


NAME_CASES: list[HostileCase] = [
    *(
        HostileCase(
            f"zip-entry-{key}", _zip_with((f"tmp/report{char}txt.sh", b"x")), _codepoint(char)
        )
        for key, char in INVISIBLE_CHARACTERS.items()
    ),
    HostileCase("tar-entry-rlo", _tar_with(("tmp/evil\u202egpj.sh", b"x")), r"U\+202E"),
    HostileCase("tar-entry-zwsp", _tar_with(("tmp/ssh\u200b/config", b"x")), r"U\+200B"),
    HostileCase(
        "zip-prefix-dir-rlo",
        lambda p: make_zip(p, zip_items(patch_files(), prefix="CLPR\u202e1/")),
        r"U\+202E",
    ),
    *(
        HostileCase(f"meta-path-{key}", with_meta(meta_xml(files=[path])), _codepoint(char))
        for key, char, path in (
            ("rlo", "\u202e", "/etc/\u202egifnoc.sh"),
            ("zwsp", "\u200b", "/etc/ssh/sshd_config\u200b"),
            ("bom", "\ufeff", "/etc/\ufeffhosts"),
            ("paragraph-separator", "\u2029", "/etc/a\u2029b"),
            ("lri", "\u2066", "/etc/\u2066x\u2069"),
        )
    ),
    HostileCase(
        "meta-description-rlo", with_meta(meta_xml(description="safe \u202eexe.")), r"U\+202E"
    ),
    HostileCase("meta-packager-zwj", with_meta(meta_xml(packager="Vin\u200dcent")), r"U\+200D"),
    HostileCase("meta-name-rlo", with_meta(meta_xml(name="CLPR\u202e261125")), r"U\+202E"),
    # patch IDs spelled like clp's other records
    *(
        HostileCase(f"meta-name-{name}", with_meta(meta_xml(name=name)), "shadow")
        for name in ("R1", "R42", "r7", "12345")
    ),
    HostileCase(
        "meta-ini-name-R1",
        with_meta(b"[Package]\nName=R1\nVersion=1\nArchitecture=any\nDescription=x\n"),
        "shadow",
    ),
]


# -- malformed PKGINFO.meta (tests/hostile/test_metadata.py) ------------------------------------

_HEAD = "<Name>CLPR261125</Name><Version>1</Version><Architecture>any</Architecture>"
_PACKAGE = f"<Package>{_HEAD}<Description>x</Description></Package>"


def _xml(text: str, declaration: str = '<?xml version="1.0" encoding="utf-8"?>\n') -> bytes:
    return (declaration + text).encode("utf-8")


_LAUGHS = (
    '<!DOCTYPE Package [<!ENTITY a "lol">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + "]>"
)

METADATA_CASES: list[HostileCase] = [
    HostileCase(
        "meta-billion-laughs",
        with_meta(_xml(_LAUGHS + _PACKAGE.replace("<Description>x", "<Description>&j;"))),
        "DOCTYPE|DTD",
    ),
    HostileCase(
        "meta-external-dtd",
        with_meta(_xml('<!DOCTYPE Package SYSTEM "http://127.0.0.1:9/evil.dtd">' + _PACKAGE)),
        "DOCTYPE|DTD",
    ),
    HostileCase(
        "meta-parameter-entity",
        with_meta(
            _xml('<!DOCTYPE Package [<!ENTITY % p SYSTEM "file:///etc/shadow"> %p;]>' + _PACKAGE)
        ),
        "DOCTYPE|DTD",
    ),
    HostileCase(
        "meta-internal-dtd-only",
        with_meta(_xml("<!DOCTYPE Package [<!ELEMENT Package ANY>]>" + _PACKAGE)),
        "DOCTYPE|DTD",
    ),
    HostileCase(
        "meta-processing-instruction",
        with_meta(_xml('<?xml-stylesheet href="file:///etc/shadow"?>' + _PACKAGE)),
        "processing instruction",
    ),
    HostileCase(
        "meta-huge-attribute",
        with_meta(meta_xml(files=["/etc/" + "a" * 200_000])),
        "longer than 4096",
    ),
    HostileCase(
        "meta-latin1-declared-utf8",
        with_meta(_xml(_PACKAGE).replace(b"<Description>x", b"<Description>caf\xe9")),
        "UTF-8",
    ),
    HostileCase(
        "meta-utf16",
        with_meta(('<?xml version="1.0" encoding="utf-16"?>\n' + _PACKAGE).encode("utf-16")),
        "UTF-8",
    ),
    HostileCase(
        "meta-declares-latin1",
        with_meta(
            _xml(_PACKAGE, '<?xml version="1.0" encoding="ISO-8859-1"?>\n').replace(
                b"<Description>x", b"<Description>caf\xe9"
            )
        ),
        "UTF-8|encoding",
    ),
    HostileCase(
        "meta-duplicate-name",
        with_meta(_xml(_PACKAGE.replace("<Version>", "<Name>CLPR999999</Name><Version>"))),
        "Name",
    ),
    HostileCase(
        "meta-duplicate-files",
        with_meta(
            _xml(
                _PACKAGE.replace(
                    "</Package>",
                    '<Files><File path="/etc/a"/></Files><Files><File path="/etc/b"/></Files>'
                    "</Package>",
                )
            )
        ),
        "Files",
    ),
    HostileCase(
        "meta-two-roots",
        with_meta(_xml(_PACKAGE + _PACKAGE)),
        "content after the closing root tag",
    ),
    HostileCase("meta-empty", with_meta(b""), "empty|PKGINFO.meta"),
    HostileCase("meta-binary", with_meta(bytes(range(256))), "UTF-8|PKGINFO.meta"),
    HostileCase(
        "meta-wrong-root",
        with_meta(_xml(_PACKAGE.replace("Package>", "Evil>"))),
        "Package",
    ),
    HostileCase(
        "meta-deep-nesting",
        with_meta(
            _xml(_PACKAGE.replace("</Package>", "<X>" * 5000 + "</X>" * 5000 + "</Package>"))
        ),
        "PKGINFO.meta",
    ),
    HostileCase(
        "meta-nul-character-reference",
        with_meta(
            _xml(
                _PACKAGE.replace(
                    "</Package>", '<Files><File path="/etc/a&#0;b"/></Files></Package>'
                )
            )
        ),
        "PKGINFO.meta",
    ),
    HostileCase(
        "meta-raw-nul",
        with_meta(_xml(_PACKAGE).replace(b"<Description>x", b"<Description>x\0y")),
        "PKGINFO.meta",
    ),
    # declared paths
    HostileCase("meta-path-dotdot", with_meta(meta_xml(files=["/etc/../etc/shadow"])), "'..'"),
    HostileCase("meta-path-relative", with_meta(meta_xml(files=["etc/hosts"])), "absolute"),
    HostileCase("meta-path-root", with_meta(meta_xml(files=["/"])), "root directory itself"),
    HostileCase("meta-path-slashes-root", with_meta(meta_xml(files=["//./"])), "root directory"),
    HostileCase(
        "meta-path-twice-after-normalising",
        with_meta(meta_xml(files=["/etc/hosts", "/etc//hosts/"])),
        "twice",
    ),
    HostileCase(
        "meta-path-proc", with_meta(meta_xml(files=["/proc/sys/kernel/core_pattern"])), "/proc"
    ),
    HostileCase("meta-path-proc-slashes", with_meta(meta_xml(files=["//proc//self/mem"])), "/proc"),
    HostileCase("meta-path-sys", with_meta(meta_xml(files=["/sys/power/state"])), "/sys"),
    HostileCase("meta-path-dev-node", with_meta(meta_xml(files=["/dev/sda"])), "/dev"),
    HostileCase("meta-path-dev-itself", with_meta(meta_xml(files=["/dev/"])), "/dev"),
    HostileCase("meta-path-dev-shm", with_meta(meta_xml(files=["/dev/shm/x"])), "/dev"),
    HostileCase("meta-path-newline", with_meta(meta_xml(files=["/etc/a\nb"])), "control character"),
]
