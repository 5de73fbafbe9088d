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


CACHE = "var/cache/pacman/pkg"


def pacman(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Real pacman on the sandbox. pacman reads Include paths on the host, so it gets a copy
    of the root's pacman.conf whose Include points at the root's pins file."""
    host_conf = root.parent / "pacman.host.conf"
    host_conf.write_text((root / "etc/pacman.conf").read_text().replace(
        "Include = /etc/", f"Include = {root}/etc/"))  # fmt: skip
    return subprocess.run(
        ["pacman", "--noconfirm", "--root", str(root), "--dbpath", str(root / "var/lib/pacman"),
         "--config", str(host_conf), "--cachedir", str(root / CACHE), *args],
        capture_output=True, text=True, timeout=120, check=check,
    )  # fmt: skip


def build(directory: Path, name: str, version: str, depends: tuple[str, ...] = (),
          content: bytes | None = None) -> Path:  # fmt: skip
    """A real package file `<name>-<version>-any.pkg.tar.xz` owning /usr/share/<name>/VERSION."""
    lines = [f"pkgname = {name}", f"pkgbase = {name}", f"pkgver = {version}",
             "pkgdesc = test package", f"builddate = {int(time.time())}",
             "packager = Tests <tests@localhost>", "size = 10", "arch = any"]  # fmt: skip
    lines += [f"depend = {dep}" for dep in depends]
    path = directory / f"{name}-{version}-any.pkg.tar.xz"
    with tarfile.open(path, "w:xz") as archive:
        pkginfo = ("\n".join(lines) + "\n").encode()
        files = [(".PKGINFO", pkginfo), (f"usr/share/{name}/VERSION", content or version.encode())]
        for member, data in files:
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return path


def installed(root: Path, name: str) -> str | None:
    result = pacman(root, "-Q", name, check=False)
    return result.stdout.split()[1] if result.returncode == 0 else None


PINNED_PACMAN_CONF = (
    "[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n"
    "Include = /etc/pacman.d/clp-pins.conf\n"
)


def install_demo_versions(root: Path) -> Path:
    """`root` with a pacman.conf that includes clp's pins, a cache, and `demo` 1.0-1 then
    2.0-1 installed, so that both versions sit in the cache as on a real system."""
    (root / CACHE).mkdir(parents=True, exist_ok=True)
    (root / "etc/pacman.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/pacman.conf").write_text(PINNED_PACMAN_CONF)
    (root / "etc/pacman.d/clp-pins.conf").write_text("")
    for version in ("1.0-1", "2.0-1"):
        pacman(root, "-U", str(build(root / CACHE, "demo", version)))
    assert installed(root, "demo") == "2.0-1"
    return root
