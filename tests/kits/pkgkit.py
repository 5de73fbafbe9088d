"""Tiny real pacman packages for tests, installed into a sandbox root with real pacman."""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
from pathlib import Path


def make_package(
    directory: Path, name: str, version: str, files: dict[str, bytes] | None = None
) -> Path:
    """A `.pkg.tar.xz` with a .PKGINFO and `files` ({relative path: content})."""
    files = files or {}
    pkginfo = (
        f"pkgname = {name}\npkgbase = {name}\npkgver = {version}\npkgdesc = test package\n"
        f"builddate = {int(time.time())}\npackager = Tests <tests@localhost>\n"
        f"size = {sum(len(data) for data in files.values())}\narch = any\n"
    ).encode()
    path = Path(directory) / f"{name}-{version}-any.pkg.tar.xz"
    with tarfile.open(path, "w:xz") as archive:
        for member, data in [(".PKGINFO", pkginfo), *files.items()]:
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return path


def pacman_install(root: Path, *packages: Path) -> None:
    """`pacman -U` into root, with the root's own database and cache and no signatures."""
    conf = root / "etc/pacman.conf"
    if not conf.exists():
        conf.write_text("[options]\nSigLevel = Never\nArchitecture = auto\n")
    (root / "var/cache/pacman/pkg").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["pacman", "-U", "--noconfirm", "--root", str(root), "--dbpath",
         str(root / "var/lib/pacman"), "--config", str(conf), "--cachedir",
         str(root / "var/cache/pacman/pkg"), *map(str, packages)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


_TAR_MODES = {
    ".pkg.tar.xz": "w:xz",
    ".pkg.tar.gz": "w:gz",
    ".pkg.tar.bz2": "w:bz2",
    ".pkg.tar": "w",
}


def make_package_arch(
    directory: Path,
    name: str,
    version: str,
    arch: str,
    files: dict[str, bytes] | None = None,
    extension: str = ".pkg.tar.xz",
) -> Path:
    """Like make_package, for architecture `arch` and any package extension (.pkg.tar.zst
    is made as makepkg makes it: an uncompressed tar piped through zstd)."""
    files = files or {}
    pkginfo = (
        f"pkgname = {name}\npkgbase = {name}\npkgver = {version}\npkgdesc = test package\n"
        f"builddate = {int(time.time())}\npackager = Tests <tests@localhost>\n"
        f"size = {sum(len(data) for data in files.values())}\narch = {arch}\n"
    ).encode()
    path = Path(directory) / f"{name}-{version}-{arch}{extension}"
    buffer = io.BytesIO()
    mode = "w" if extension == ".pkg.tar.zst" else _TAR_MODES[extension]
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for member, data in [(".PKGINFO", pkginfo), *files.items()]:
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    if extension == ".pkg.tar.zst":
        compressed = subprocess.run(
            ["zstd", "-q", "-c", "-19"], input=buffer.getvalue(), check=True,
            capture_output=True, timeout=60,
        ).stdout  # fmt: skip
        path.write_bytes(compressed)
    else:
        path.write_bytes(buffer.getvalue())
    return path
