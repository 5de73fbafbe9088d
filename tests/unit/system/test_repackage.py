"""A package file made from what is installed: a real package (with .MTREE, .INSTALL, a
symlink, an executable, a directory, an extended attribute) installed with real pacman, made
again from its files, and installed with real pacman into a second root."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from clp_alpm.errors import UsageError
from clp_alpm.system.repackage import installed_package, pkginfo, write_package
from tests.kits.pkgkit import pacman

PKGINFO = (
    "pkgname = tool\npkgbase = tool\npkgver = 3.1-2\npkgdesc = a tool\nurl = https://e.org\n"
    "builddate = 1700000000\npackager = Tests <t@localhost>\nsize = 42\narch = any\n"
    "license = MIT\nlicense = BSD\ngroup = tools\ndepend = glibc>=2\noptdepend = zsh: completion\n"
    "provides = tool-bin=3.1\nconflict = oldtool\nreplaces = oldtool\nbackup = etc/tool.conf\n"
)
INSTALL = "post_install() {\n  echo installed\n}\n"


def real_package(directory: Path) -> Path:
    """tool-3.1-2-any.pkg.tar.xz as makepkg would make it, .MTREE made by bsdtar."""
    tree = directory / "tree"
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/share/tool/empty").mkdir(parents=True)
    (tree / "etc").mkdir()
    (tree / ".PKGINFO").write_text(PKGINFO)
    (tree / ".INSTALL").write_text(INSTALL)
    (tree / "usr/bin/tool").write_bytes(b"#!/bin/sh\necho tool\n")
    (tree / "usr/bin/tool").chmod(0o755)
    (tree / "usr/bin/t").symlink_to("tool")
    (tree / "etc/tool.conf").write_text("setting=1\n")
    (tree / "etc/tool.conf").chmod(0o600)
    members = [".PKGINFO", ".INSTALL", "etc", "usr"]
    subprocess.run(
        ["bsdtar", "-czf", ".MTREE", "--format=mtree",
         "--options=!all,use-set,type,uid,gid,mode,time,size,md5,sha256,link", *members],
        cwd=tree, check=True,
    )  # fmt: skip
    path = directory / "tool-3.1-2-any.pkg.tar.xz"
    subprocess.run(["bsdtar", "-cJf", str(path), ".MTREE", *members], cwd=tree, check=True)
    return path


def make_root(path: Path) -> Path:
    for sub in ("etc", "var/lib/pacman", "var/cache/pacman/pkg", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    (path / "etc/pacman.conf").write_text("[options]\nSigLevel = Never\nArchitecture = auto\n")
    return path


def file_states(root: Path) -> dict[str, tuple]:
    states = {}
    for relpath in ("etc/tool.conf", "usr/bin/tool", "usr/bin/t", "usr/share/tool/empty"):
        path = root / relpath
        info = os.lstat(path)
        if path.is_symlink():
            content: bytes | str = os.readlink(path)
        elif path.is_dir():
            content = "dir"
        else:
            content = path.read_bytes()
        states[relpath] = (content, info.st_mode, info.st_uid, info.st_gid, int(info.st_mtime))
    return states


@pytest.fixture
def installed_root(tmp_path: Path) -> Path:
    root = make_root(tmp_path / "root")
    result = pacman(root, "-Udd", str(real_package(tmp_path)), check=False)
    assert result.returncode == 0, result.stderr
    return root


def rebuild(root: Path, dest: Path) -> Path:
    package = installed_package(root, root / "var/lib/pacman", "tool", "3.1-2")
    target = dest / package.filename
    with open(target, "wb") as out:
        write_package(root, package, out)
    return target


def test_the_rebuilt_package_installs_the_same_files_and_database_entry(installed_root, tmp_path):
    (installed_root / "etc/tool.conf").write_text("setting=2\n")  # a changed backup file
    os.utime(installed_root / "etc/tool.conf", (1600000000, 1600000000))
    try:
        os.setxattr(installed_root / "usr/bin/tool", "user.clp", b"\x00\x01bytes")
    except OSError:
        pytest.skip("this file system has no user extended attributes")
    before = file_states(installed_root)
    package = installed_package(installed_root, installed_root / "var/lib/pacman", "tool", "3.1-2")
    assert package.changed_backup == ("/etc/tool.conf",)
    rebuilt = rebuild(installed_root, tmp_path)
    assert rebuilt.name == "tool-3.1-2-any.pkg.tar.xz"

    other = make_root(tmp_path / "other")
    result = pacman(other, "-Udd", str(rebuilt), check=False)
    assert result.returncode == 0, result.stderr
    assert file_states(other) == before  # the files as they are now, owners and times too
    assert os.getxattr(other / "usr/bin/tool", "user.clp") == b"\x00\x01bytes"
    old, new = (r / "var/lib/pacman/local/tool-3.1-2" for r in (installed_root, other))
    assert (new / "mtree").read_bytes() == (old / "mtree").read_bytes()
    # %BACKUP% kept; its md5 is of the file as it is now, the one the copy holds
    assert (old / "files").read_text().split("%BACKUP%")[0] == \
        (new / "files").read_text().split("%BACKUP%")[0]  # fmt: skip
    assert "etc/tool.conf\t" in (new / "files").read_text().split("%BACKUP%")[1]
    assert (new / "install").read_text() == INSTALL
    assert query(other) == query(installed_root)  # what pacman -Qi says, but the dates


def query(root: Path) -> list[str]:
    lines = pacman(root, "-Qi", "tool").stdout.splitlines()
    return [line for line in lines if not line.startswith("Install Date")]


def test_pkginfo_carries_what_the_local_database_knows(installed_root):
    package = installed_package(installed_root, installed_root / "var/lib/pacman", "tool", "3.1-2")
    assert package.changed_backup == ()
    lines = pkginfo(package).splitlines()
    for line in PKGINFO.splitlines():
        assert line in lines, line
    assert lines[0].startswith("#")


def test_reinstalling_it_in_place_restores_the_files(installed_root, tmp_path):
    rebuilt = rebuild(installed_root, tmp_path)
    (installed_root / "usr/bin/tool").write_bytes(b"broken")
    assert pacman(installed_root, "-Udd", str(rebuilt), check=False).returncode == 0
    assert (installed_root / "usr/bin/tool").read_bytes() == b"#!/bin/sh\necho tool\n"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / "usr/bin/tool").unlink(), "tool 3.1-2: /usr/bin/tool is missing"),
        (lambda r: os.rename(r / "usr/share/tool/empty", r / "x"),
         "/usr/share/tool/empty is missing"),
        (lambda r: (r / "usr/bin/tool").unlink() or os.mkfifo(r / "usr/bin/tool"),
         "/usr/bin/tool is not a file, directory or symbolic link"),
        (lambda r: (r / "usr/share/tool/empty").rmdir() or (r / "usr/share/tool/empty").touch(),
         "/usr/share/tool/empty is no longer a directory"),
    ],
)  # fmt: skip
def test_what_stops_a_rebuild_is_named(installed_root, damage, message):
    """A missing file, a missing directory, a fifo where a file was, a file where a dir was."""
    damage(installed_root)
    with pytest.raises(UsageError, match=message):
        installed_package(installed_root, installed_root / "var/lib/pacman", "tool", "3.1-2")


def test_a_symlinked_directory_is_not_followed_out_of_the_root(installed_root, tmp_path):
    outside = tmp_path / "outside"
    (outside / "bin").mkdir(parents=True)
    (outside / "bin/tool").write_text("host file")
    (installed_root / "usr/bin/tool").unlink()
    (installed_root / "usr/bin/t").unlink()
    (installed_root / "usr/bin").rmdir()
    (installed_root / "usr/bin").symlink_to(outside / "bin")  # absolute: read inside the root
    dbpath = installed_root / "var/lib/pacman"
    with pytest.raises(UsageError, match="/usr/bin is no longer a directory"):
        installed_package(installed_root, dbpath, "tool", "3.1-2")
    files = dbpath / "local/tool-3.1-2/files"
    files.write_text(files.read_text().replace("usr/bin/\n", "").replace("usr/bin/t\n", ""))
    with pytest.raises(UsageError, match="/usr/bin/tool is missing"):
        installed_package(installed_root, dbpath, "tool", "3.1-2")


def test_a_package_that_is_not_installed(installed_root):
    dbpath = installed_root / "var/lib/pacman"
    with pytest.raises(UsageError, match="tool 3.0-1 is not installed"):
        installed_package(installed_root, dbpath, "tool", "3.0-1")
    entry = dbpath / "local/tool-3.1-2"
    desc = entry / "desc"
    desc.write_text(desc.read_text().replace("%NAME%\ntool\n", "%NAME%\nother\n"))
    with pytest.raises(UsageError, match="the local database entry names another package"):
        installed_package(installed_root, dbpath, "tool", "3.1-2")


def test_a_bad_path_in_the_database_is_refused(installed_root):
    files = installed_root / "var/lib/pacman/local/tool-3.1-2/files"
    files.write_text(files.read_text().replace("usr/bin/tool\n", "usr/../../etc/shadow\n"))
    with pytest.raises(UsageError, match="lists a bad path 'usr/../../etc/shadow'"):
        installed_package(installed_root, installed_root / "var/lib/pacman", "tool", "3.1-2")


def test_the_members_come_in_makepkg_order(installed_root, tmp_path):
    rebuilt = rebuild(installed_root, tmp_path)
    with tarfile.open(rebuilt) as archive:
        names = archive.getnames()
        pkginfo_data = archive.extractfile(".PKGINFO")
        assert pkginfo_data is not None and b"pkgname = tool" in pkginfo_data.read()
    assert names[:3] == [".PKGINFO", ".MTREE", ".INSTALL"]
    assert {"usr/bin/tool", "usr/bin/t", "etc/tool.conf", "usr/share/tool/empty"} <= set(names)
